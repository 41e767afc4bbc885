//! Bookkeeping of mail pulled from remote accounts (`[[fetch]]`, `crate::fetch`): per local
//! account and remote source (`user@host:port/folder`), the remote folder's UIDVALIDITY, the
//! highest remote UID dealt with, and the content hashes of the messages pulled.
//!
//! [`Op::Pull`](super::Op::Pull) writes the pulled messages AND the new mark in one
//! transaction, so a kill at any point leaves either both or neither: a message is never
//! fetched twice nor lost.
//!
//! Why the highest UID is enough: the puller asks for `UID n+1:*` and deals with the answers
//! in ascending UID order, and UIDs within one UIDVALIDITY only grow (RFC 9051 §2.3.1.1), so
//! everything at or below the mark was pulled (or skipped as too large, listed in
//! [`PullState::skipped`]) and everything above is new.
//!
//! A UIDVALIDITY change (the remote rebuilt the folder) resets the mark to 0: the whole
//! folder is looked at again, and messages whose bytes (SHA-256 of exactly what the remote
//! sends) were pulled before from the same source are not delivered again. Message-ID is not
//! used: two different messages can carry the same one (mailing-list copies, broken
//! clients), and a false match would drop mail.
//!
//! The tables were added without a schema version bump (as `QUOTAS`): older builds never
//! open them.

use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::records::{dec, enc};
use super::schema::{PULL_HASHES, PULL_STATE};
use super::{Change, MailboxSel, NewMessage, Reader, Result, Target, messages, quota::Quota};

/// At most this many skipped UIDs are remembered per source (the oldest are dropped; a
/// dropped one is then treated as pulled: with `remote_action` delete or move it would be
/// acted on, which is why the list is long).
pub const MAX_SKIPPED: usize = 10_000;

/// The state of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullState {
    /// The remote folder's UIDVALIDITY when the mark was set.
    pub uidvalidity: u32,
    /// Every remote UID up to this one was dealt with.
    pub last_uid: u32,
    /// UIDs at or below the mark that were not pulled (larger than `max_message_size`):
    /// the remote action never touches them.
    pub skipped: Vec<u32>,
    /// Messages delivered from this source, ever.
    pub pulled: u64,
    /// Messages skipped as too large, ever.
    pub skipped_total: u64,
}

/// One remote message of [`Op::Pull`](super::Op::Pull), in ascending UID order.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The remote UID.
    pub uid: u32,
    /// SHA-256 of the bytes the remote sent.
    pub remote_hash: [u8; 32],
    /// The message to deliver (our headers added); `None` when it was too large.
    pub message: Option<Arc<NewMessage>>,
    /// INBOX or Junk (the verdict of the checks).
    pub mailbox: MailboxSel,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
}

/// Applies a pull: delivers each new message and advances the mark, in the caller's
/// transaction. Messages at or below the mark, and messages whose bytes were pulled from
/// this source before, are not delivered again. Answers what was delivered.
#[allow(clippy::too_many_arguments)]
pub(super) fn pull(
    tx: &WriteTransaction,
    account: u64,
    source: &str,
    uidvalidity: u32,
    list: &[Pulled],
    quota: Quota,
    changes: &mut Vec<Change>,
) -> Result<Vec<(u64, u32, u32)>> {
    let mut state: PullState = {
        let t = tx.open_table(PULL_STATE)?;
        let v = t.get((account, source))?;
        v.map(|v| dec(v.value())).transpose()?.unwrap_or_default()
    };
    if state.uidvalidity != uidvalidity {
        state.uidvalidity = uidvalidity;
        state.last_uid = 0;
        state.skipped.clear();
    }
    let mut out = Vec::new();
    {
        let mut hashes = tx.open_table(PULL_HASHES)?;
        for m in list {
            if m.uid <= state.last_uid {
                continue;
            }
            match &m.message {
                Some(_) if hashes.get((account, source, m.remote_hash))?.is_some() => {}
                Some(msg) => {
                    let target = [Target {
                        account,
                        mailbox: m.mailbox.clone(),
                    }];
                    let d = messages::deliver(
                        tx,
                        msg,
                        &target,
                        0,
                        &[],
                        m.internal_date,
                        true,
                        quota,
                        changes,
                    )?;
                    out.extend(d);
                    hashes.insert((account, source, m.remote_hash), ())?;
                    state.pulled += 1;
                }
                None => {
                    state.skipped.push(m.uid);
                    state.skipped_total += 1;
                    if state.skipped.len() > MAX_SKIPPED {
                        state.skipped.remove(0);
                    }
                }
            }
            state.last_uid = m.uid;
        }
    }
    let mut t = tx.open_table(PULL_STATE)?;
    t.insert((account, source), enc(&state)?.as_slice())?;
    Ok(out)
}

impl Reader {
    /// The bookkeeping of one source, if it was ever pulled from.
    pub fn pull_state(&self, account: u64, source: &str) -> Result<Option<PullState>> {
        match self.tx().open_table(PULL_STATE) {
            Ok(t) => t
                .get((account, source))?
                .map(|v| dec(v.value()))
                .transpose(),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Op, Output, Store};

    fn pulled(uid: u32, body: &str, big: bool) -> Pulled {
        let raw = format!("Subject: {body}\r\n\r\n{body}\r\n").into_bytes();
        Pulled {
            uid,
            remote_hash: super::super::blobs::hash(&raw),
            message: (!big).then(|| Arc::new(NewMessage::new(raw))),
            mailbox: MailboxSel::Inbox,
            internal_date: 0,
        }
    }

    fn op(account: u64, uidvalidity: u32, list: Vec<Pulled>) -> Op {
        Op::Pull {
            account,
            source: "u@h:993/INBOX".into(),
            uidvalidity,
            messages: list,
        }
    }

    fn count(out: Output) -> usize {
        match out {
            Output::Delivered(d) => d.len(),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn the_mark_moves_with_the_mail_and_nothing_comes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), 0).unwrap();
        let Output::Id(acct) = store
            .write(Op::CreateAccount {
                address: "a@home.arpa".into(),
                password_hash: "x".into(),
            })
            .unwrap()
        else {
            panic!()
        };
        let src = "u@h:993/INBOX";
        assert_eq!(store.read(|r| r.pull_state(acct, src)).unwrap(), None);
        let out = store
            .write(op(
                acct,
                7,
                vec![
                    pulled(3, "a", false),
                    pulled(5, "b", true),
                    pulled(9, "c", false),
                ],
            ))
            .unwrap();
        assert_eq!(count(out), 2);
        let st = store.read(|r| r.pull_state(acct, src)).unwrap().unwrap();
        assert_eq!((st.uidvalidity, st.last_uid, st.pulled), (7, 9, 2));
        assert_eq!(st.skipped, [5]);
        // The same again (a retry after a lost answer): nothing new.
        let out = store
            .write(op(acct, 7, vec![pulled(9, "c", false)]))
            .unwrap();
        assert_eq!(count(out), 0);
        // New UIDVALIDITY: the mark restarts; known bytes are not delivered again.
        let out = store
            .write(op(
                acct,
                8,
                vec![pulled(1, "a", false), pulled(2, "d", false)],
            ))
            .unwrap();
        assert_eq!(count(out), 1);
        let st = store.read(|r| r.pull_state(acct, src)).unwrap().unwrap();
        assert_eq!((st.uidvalidity, st.last_uid, st.pulled), (8, 2, 3));
        assert!(st.skipped.is_empty());
        let inbox = store.read(|r| r.mailbox(acct, "INBOX")).unwrap().unwrap();
        assert_eq!(inbox.exists, 3);
        store.close();
    }
}
