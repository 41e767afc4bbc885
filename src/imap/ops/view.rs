//! Keeping the selected-mailbox view in step with the store, at the points RFC 9051 §7
//! allows (see the `session` module docs).

use super::super::backend::Backend;
use super::super::command::SequenceSet;
use super::super::fetch;
use super::super::response::{Data, FetchItem, Response, StatusResponse};
use super::{Fail, Msg, Session, State};

impl Session {
    /// Brings the view up to date with the store and reports the differences
    /// (RFC 9051 §7.4.1 EXPUNGE, §7.3.1 EXISTS, §7.5.2 FETCH; RFC 7162 §3.2.10 VANISHED).
    pub(super) fn sync(&mut self, b: &dyn Backend, allow_expunge: bool) -> Result<(), Fail> {
        let qresync = self.enabled.qresync;
        let condstore = self.enabled.condstore;
        let State::Selected { view, .. } = &self.state else {
            return Ok(());
        };
        let Some(mb) = b.mailbox_by_id(view.mailbox)? else {
            // Deleted by another session: nothing sensible remains to show (as Dovecot).
            self.status(StatusResponse::bye(None, "Selected mailbox was deleted"));
            self.state = State::Logout;
            self.close_after = true;
            return Ok(());
        };
        let State::Selected { view, .. } = &mut self.state else {
            return Ok(());
        };
        if mb.highestmodseq == view.highestmodseq && mb.uidnext == view.uidnext {
            return Ok(());
        }
        let rows = b.messages(view.mailbox)?;
        let mut out: Vec<Response> = Vec::new();
        // Expunged: in the view, not in the store.
        let mut deferred = false;
        {
            let mut r = rows.iter().peekable();
            for m in view.msgs.iter_mut() {
                while r.peek().is_some_and(|(u, _)| *u < m.uid) {
                    r.next();
                }
                let present = r.peek().is_some_and(|(u, _)| *u == m.uid);
                if !present {
                    m.gone = true;
                }
            }
        }
        if view.msgs.iter().any(|m| m.gone) {
            if allow_expunge {
                if qresync {
                    let gone: Vec<u32> =
                        view.msgs.iter().filter(|m| m.gone).map(|m| m.uid).collect();
                    out.push(
                        Data::Vanished {
                            earlier: false,
                            uids: SequenceSet::from_sorted(&gone),
                        }
                        .into(),
                    );
                } else {
                    // Highest first: each number is valid when the client reads it.
                    for (i, m) in view.msgs.iter().enumerate().rev() {
                        if m.gone {
                            out.push(Data::Expunge(i as u32 + 1).into());
                        }
                    }
                }
                view.msgs.retain(|m| !m.gone);
                view.saved
                    .retain(|u| rows.binary_search_by_key(u, |(x, _)| *x).is_ok());
            } else {
                deferred = true;
            }
        }
        // Flag changes and new messages.
        let old_len = view.msgs.len();
        let last = view.last_uid();
        for (uid, row) in &rows {
            if *uid > last {
                view.msgs.push(Msg {
                    uid: *uid,
                    flags: row.flags,
                    keywords: row.keywords.clone().into_boxed_slice(),
                    modseq: row.modseq,
                    gone: false,
                });
                continue;
            }
            let Some(i) = view.seq_of(*uid) else { continue };
            let Some(m) = view.msgs.get_mut(i) else {
                continue;
            };
            if m.modseq != row.modseq {
                let changed = m.flags != row.flags || *m.keywords != *row.keywords;
                m.flags = row.flags;
                m.keywords = row.keywords.clone().into_boxed_slice();
                m.modseq = row.modseq;
                if changed || condstore {
                    let mut items = vec![
                        FetchItem::Uid(*uid),
                        FetchItem::Flags(fetch::flags_of(row.flags, &row.keywords)),
                    ];
                    if condstore {
                        items.push(FetchItem::ModSeq(row.modseq));
                    }
                    out.push(
                        Data::Fetch {
                            seq: i as u32 + 1,
                            items,
                        }
                        .into(),
                    );
                }
            }
        }
        if view.msgs.len() != old_len {
            out.push(Data::Exists(view.msgs.len() as u32).into());
        }
        view.uidnext = mb.uidnext;
        view.highestmodseq = if deferred { 0 } else { mb.highestmodseq };
        for r in out {
            r.encode(&mut self.out);
        }
        Ok(())
    }
}
