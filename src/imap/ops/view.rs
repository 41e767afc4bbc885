//! Keeping the selected-mailbox view in step with the store, at the points RFC 9051 §7
//! allows (see the `session` module docs).

use super::super::backend::Backend;
use super::super::command::{Flag, SequenceSet};
use super::super::fetch;
use super::super::response::{Code, Data, FetchItem, Response, StatusResponse};
use super::{Fail, Msg, Session, State};

impl Session {
    /// Brings the view up to date with the store and reports the differences
    /// (RFC 9051 §7.4.1 EXPUNGE, §7.3.1 EXISTS, §7.5.2 FETCH; RFC 7162 §3.2.10 VANISHED).
    pub(super) fn sync(&mut self, b: &dyn Backend, allow_expunge: bool) -> Result<(), Fail> {
        let qresync = self.enabled.qresync;
        // Live results (RFC 5267 §4.3) name removed messages by the numbers the client
        // holds before this sync's EXPUNGEs.
        let live = self.has_contexts();
        let mut before: Option<Vec<u32>> = None;
        let condstore = self.enabled.condstore;
        let rev2 = self.enabled.rev2;
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
        // Keywords of the messages the client is about to hear of (announced first).
        let mut keywords: Vec<String> = Vec::new();
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
                if live {
                    before = Some(view.msgs.iter().map(|m| m.uid).collect());
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
        // RFC 3501 §2.3.2: new messages are \Recent for the first session told of them;
        // an IMAP4rev1 session with the mailbox selected read-write claims them, EXAMINE
        // only looks, an IMAP4rev2 session never sees the flag (RFC 9051 removed it).
        let first_recent = match rows.last() {
            Some((newest, _)) if *newest > last && !rev2 => {
                let next = mb.uidnext.max(newest.saturating_add(1));
                if view.read_only {
                    b.recent_mark(view.mailbox)
                } else {
                    b.claim_recent(view.mailbox, next)
                }
            }
            _ => u32::MAX,
        };
        for (uid, row) in &rows {
            if *uid > last {
                view.msgs.push(Msg {
                    uid: *uid,
                    flags: row.flags,
                    keywords: row.keywords.clone().into_boxed_slice(),
                    modseq: row.modseq,
                    gone: false,
                    recent: *uid >= first_recent,
                });
                keywords.extend(row.keywords.iter().cloned());
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
                    keywords.extend(row.keywords.iter().cloned());
                    let mut items = vec![
                        FetchItem::Uid(*uid),
                        FetchItem::Flags(flags_with_recent(row.flags, &row.keywords, m.recent)),
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
            if !rev2 {
                out.push(Data::Recent(view.recent()).into());
            }
        }
        view.uidnext = mb.uidnext;
        view.highestmodseq = if deferred { 0 } else { mb.highestmodseq };
        // With EXPUNGE withheld the view still holds the gone messages: live results
        // wait for the next sync (the view's highestmodseq of 0 forces one).
        let (pre, post) = if live && !deferred {
            self.context_updates(b, before.as_deref())
        } else {
            Default::default()
        };
        self.announce_keywords(&keywords);
        for r in pre.into_iter().chain(out).chain(post) {
            r.encode(&mut self.out);
        }
        Ok(())
    }

    /// Announces keywords the client has not been told about (RFC 9051 §7.3.5, RFC 3501
    /// §7.2.6): when a keyword is used in the selected mailbox for the first time, by this
    /// session or another, an updated `* FLAGS` and `* OK [PERMANENTFLAGS]` go out before
    /// any FETCH that shows it.
    pub(super) fn announce_keywords(&mut self, keywords: &[String]) {
        let State::Selected { view, .. } = &mut self.state else {
            return;
        };
        let mut new = false;
        for k in keywords {
            if !view.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                view.keywords.push(k.clone());
                new = true;
            }
        }
        if new {
            let (flags, permanent) = view.flag_responses();
            self.send(flags);
            self.status(permanent);
        }
    }

    /// RFC 7162 §3.1: the first CONDSTORE-enabling command (FETCH or SEARCH naming MODSEQ,
    /// FETCH CHANGEDSINCE, STORE UNCHANGEDSINCE) while a mailbox is selected is answered
    /// with the mailbox's HIGHESTMODSEQ before its tagged reply.
    pub(super) fn enable_condstore(&mut self, b: &dyn Backend) -> Result<(), Fail> {
        if self.enabled.condstore {
            return Ok(());
        }
        self.enabled.condstore = true;
        let State::Selected { view, .. } = &self.state else {
            return Ok(());
        };
        let highest = match view.highestmodseq {
            0 => b
                .mailbox_by_id(view.mailbox)?
                .map_or(0, |m| m.highestmodseq),
            h => h,
        };
        self.status(StatusResponse::ok(
            None,
            Some(Code::HighestModSeq(highest)),
            "Highest",
        ));
        Ok(())
    }
}

/// A message's flags as FETCH shows them, `\Recent` included for an IMAP4rev1 session
/// that holds it (RFC 3501 §2.3.2).
pub(super) fn flags_with_recent(bits: u8, keywords: &[String], recent: bool) -> Vec<Flag> {
    let mut flags = fetch::flags_of(bits, keywords);
    if recent {
        // After the system flags, before the keywords (as Dovecot orders them).
        flags.insert(flags.len() - keywords.len(), Flag::Recent);
    }
    flags
}
