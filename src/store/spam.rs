//! The learning junk filter's statistics per account (`src/spam/bayes.rs` computes with
//! them, `src/spam/learn.rs` feeds them):
//!
//! - `SPAM_TOKENS`: (account, token hash) → (spam messages, ham messages, day last
//!   seen). At most [`MAX_TOKENS`] per account: past that, the oldest and rarest tokens
//!   are expired down to 90 % in the same commit ([`prune`]).
//! - `SPAM_STATE`: account → [`SpamState`] (messages trained, token count, last training,
//!   the training queue's counters).
//! - `SPAM_TRAINED`: (account, blob) → how that message was trained, so a message is never
//!   trained twice the same way, and training it the other way first undoes the old one.
//! - `SPAM_QUEUE`: (account, seq) → (blob, class): training events written in the same
//!   commit as the MOVE, COPY or STORE that caused them ([`record`]), applied later by the
//!   background task in small batches ([`Op::SpamTrain`](super::Op::SpamTrain)). At most
//!   [`MAX_QUEUED`] wait per account; events beyond are counted as dropped, so a client
//!   moving 100,000 messages back and forth cannot grow the file without bound.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::records::{dec, enc};
use super::schema::{SPAM_QUEUE, SPAM_STATE, SPAM_TOKENS, SPAM_TRAINED};
use super::{Reader, Result};

/// Tokens kept per account at most (about 5 MB of redb pages; see the README's figures).
pub const MAX_TOKENS: u64 = 150_000;
/// Training events waiting per account at most.
pub const MAX_QUEUED: u64 = 20_000;

/// How a message is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Class {
    /// Junk.
    Spam,
    /// Wanted mail.
    Ham,
}

impl Class {
    fn byte(self) -> u8 {
        match self {
            Class::Spam => 1,
            Class::Ham => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Class> {
        match b {
            1 => Some(Class::Spam),
            2 => Some(Class::Ham),
            _ => None,
        }
    }
}

/// An account's filter state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpamState {
    /// Messages trained as spam (net of retraining).
    pub spam: u32,
    /// Messages trained as ham.
    pub ham: u32,
    /// Tokens in `SPAM_TOKENS` for the account.
    pub tokens: u64,
    /// Unix seconds of the last training, 0 if never.
    pub last_trained: i64,
    /// Next queue sequence number.
    pub next_seq: u64,
    /// Events waiting in the queue.
    pub queued: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Tokens expired by the size cap so far.
    pub expired: u64,
}

/// A queued training event, as the background task sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    /// Owner.
    pub account: u64,
    /// Queue sequence number.
    pub seq: u64,
    /// The message's blob.
    pub blob: [u8; 32],
    /// How to train it.
    pub class: Class,
}

/// One event of [`Op::SpamTrain`](super::Op::SpamTrain): the event (removed from the
/// queue, when `seq` is set) and the message's tokens (empty when the message is gone).
#[derive(Debug, Clone)]
pub struct TrainItem {
    /// Owner.
    pub account: u64,
    /// Queue entry to remove, if the item came from the queue.
    pub seq: Option<u64>,
    /// The message's blob (the key of "trained once").
    pub blob: [u8; 32],
    /// How to train it.
    pub class: Class,
    /// Token hashes, sorted and distinct.
    pub tokens: Vec<u64>,
}

fn state_w(tx: &WriteTransaction, account: u64) -> Result<SpamState> {
    let t = tx.open_table(SPAM_STATE)?;
    let v = t.get(account)?;
    v.map(|v| dec(v.value()))
        .transpose()
        .map(|s| s.unwrap_or_default())
}

fn put_state(tx: &WriteTransaction, account: u64, s: &SpamState) -> Result<()> {
    tx.open_table(SPAM_STATE)?
        .insert(account, enc(s)?.as_slice())?;
    Ok(())
}

/// Queues training events for `blobs` of `account` (called inside the MOVE/COPY/STORE
/// commit).
pub(super) fn record(
    tx: &WriteTransaction,
    account: u64,
    blobs: &[[u8; 32]],
    class: Class,
) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let mut st = state_w(tx, account)?;
    {
        let mut q = tx.open_table(SPAM_QUEUE)?;
        for b in blobs {
            if st.queued >= MAX_QUEUED {
                st.dropped += 1;
                continue;
            }
            q.insert((account, st.next_seq), (*b, class.byte()))?;
            st.next_seq += 1;
            st.queued += 1;
        }
    }
    put_state(tx, account, &st)
}

/// Applies trained messages to the statistics (see the module docs).
pub(super) fn train(tx: &WriteTransaction, items: &[TrainItem], now: i64) -> Result<()> {
    let day = u32::try_from(now.max(0) / 86_400).unwrap_or(u32::MAX);
    let mut touched: Vec<(u64, SpamState)> = Vec::new();
    for item in items {
        let idx = match touched.iter().position(|(a, _)| *a == item.account) {
            Some(i) => i,
            None => {
                touched.push((item.account, state_w(tx, item.account)?));
                touched.len() - 1
            }
        };
        let st = &mut touched[idx].1;
        if let Some(seq) = item.seq
            && tx
                .open_table(SPAM_QUEUE)?
                .remove((item.account, seq))?
                .is_some()
        {
            st.queued = st.queued.saturating_sub(1);
        }
        if item.tokens.is_empty() {
            continue;
        }
        let before = tx
            .open_table(SPAM_TRAINED)?
            .get((item.account, item.blob))?
            .and_then(|v| Class::from_byte(v.value()));
        if before == Some(item.class) {
            // Never train a message twice the same way.
            continue;
        }
        let mut t = tx.open_table(SPAM_TOKENS)?;
        if let Some(old) = before {
            // Retraining: undo the old class first.
            match old {
                Class::Spam => st.spam = st.spam.saturating_sub(1),
                Class::Ham => st.ham = st.ham.saturating_sub(1),
            }
            for &tok in &item.tokens {
                let Some(v) = t.get((item.account, tok))? else {
                    continue;
                };
                let (mut s, mut h, d) = v.value();
                drop(v);
                match old {
                    Class::Spam => s = s.saturating_sub(1),
                    Class::Ham => h = h.saturating_sub(1),
                }
                if s == 0 && h == 0 {
                    t.remove((item.account, tok))?;
                    st.tokens = st.tokens.saturating_sub(1);
                } else {
                    t.insert((item.account, tok), (s, h, d))?;
                }
            }
        }
        match item.class {
            Class::Spam => st.spam += 1,
            Class::Ham => st.ham += 1,
        }
        for &tok in &item.tokens {
            let old = t.get((item.account, tok))?.map(|v| v.value());
            let (mut s, mut h) = match old {
                Some((s, h, _)) => (s, h),
                None => {
                    st.tokens += 1;
                    (0, 0)
                }
            };
            match item.class {
                Class::Spam => s = s.saturating_add(1),
                Class::Ham => h = h.saturating_add(1),
            }
            t.insert((item.account, tok), (s, h, day))?;
        }
        drop(t);
        tx.open_table(SPAM_TRAINED)?
            .insert((item.account, item.blob), item.class.byte())?;
        st.last_trained = now;
    }
    for (account, mut st) in touched {
        if st.tokens > MAX_TOKENS {
            prune(tx, account, &mut st, MAX_TOKENS * 9 / 10)?;
        }
        put_state(tx, account, &st)?;
    }
    Ok(())
}

/// Adds `keys` (reputation tokens of addresses the person wrote to) as ham evidence,
/// without counting a trained message.
pub(super) fn sent(tx: &WriteTransaction, account: u64, keys: &[u64], now: i64) -> Result<()> {
    let day = u32::try_from(now.max(0) / 86_400).unwrap_or(u32::MAX);
    let mut st = state_w(tx, account)?;
    {
        let mut t = tx.open_table(SPAM_TOKENS)?;
        for &tok in keys {
            let old = t.get((account, tok))?.map(|v| v.value());
            let (s, h) = match old {
                Some((s, h, _)) => (s, h),
                None => {
                    st.tokens += 1;
                    (0, 0)
                }
            };
            t.insert((account, tok), (s, h.saturating_add(1), day))?;
        }
    }
    put_state(tx, account, &st)
}

/// Expires tokens of `account` down to `keep`: the ones seen least recently go first,
/// and a token seen in many messages counts as a week younger per doubling.
fn prune(tx: &WriteTransaction, account: u64, st: &mut SpamState, keep: u64) -> Result<()> {
    let mut t = tx.open_table(SPAM_TOKENS)?;
    let mut all: Vec<(i64, u64)> = Vec::with_capacity(st.tokens as usize);
    for i in t.range((account, 0)..=(account, u64::MAX))? {
        let (k, v) = i?;
        let (s, h, d) = v.value();
        let n = u64::from(s) + u64::from(h);
        let weight = i64::from(u64::BITS - n.leading_zeros()) * 7;
        all.push((i64::from(d) + weight, k.value().1));
    }
    let total = all.len() as u64;
    if total <= keep {
        st.tokens = total;
        return Ok(());
    }
    let cut = (total - keep) as usize;
    all.select_nth_unstable_by_key(cut - 1, |x| x.0);
    for &(_, tok) in &all[..cut] {
        t.remove((account, tok))?;
    }
    st.tokens = keep;
    st.expired += cut as u64;
    Ok(())
}

impl Reader {
    /// An account's filter state (default when never trained).
    pub fn spam_state(&self, account: u64) -> Result<SpamState> {
        let Ok(t) = self.tx().open_table(SPAM_STATE) else {
            return Ok(SpamState::default());
        };
        t.get(account)?
            .map(|v| dec(v.value()))
            .transpose()
            .map(|s| s.unwrap_or_default())
    }

    /// (spam, ham) counts of `tokens` in `account`'s statistics, in order.
    pub fn spam_counts(&self, account: u64, tokens: &[u64]) -> Result<Vec<(u32, u32)>> {
        let Ok(t) = self.tx().open_table(SPAM_TOKENS) else {
            return Ok(vec![(0, 0); tokens.len()]);
        };
        let mut out = Vec::with_capacity(tokens.len());
        for &tok in tokens {
            out.push(t.get((account, tok))?.map_or((0, 0), |v| {
                let (s, h, _) = v.value();
                (s, h)
            }));
        }
        Ok(out)
    }

    /// Up to `limit` queued training events, oldest first per account.
    pub fn spam_queue(&self, limit: usize) -> Result<Vec<QueuedEvent>> {
        let Ok(t) = self.tx().open_table(SPAM_QUEUE) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for i in t.iter()?.take(limit) {
            let (k, v) = i?;
            let (account, seq) = k.value();
            let (blob, class) = v.value();
            if let Some(class) = Class::from_byte(class) {
                out.push(QueuedEvent {
                    account,
                    seq,
                    blob,
                    class,
                });
            }
        }
        Ok(out)
    }

    /// Bytes of redb pages the filter's token and trained-message tables take, for all
    /// accounts together (4 KiB pages, leaves and branches).
    pub fn spam_stats_bytes(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let mut pages = 0;
        if let Ok(t) = self.tx().open_table(SPAM_TOKENS) {
            let st = t.stats()?;
            pages += st.leaf_pages() + st.branch_pages();
        }
        if let Ok(t) = self.tx().open_table(SPAM_TRAINED) {
            let st = t.stats()?;
            pages += st.leaf_pages() + st.branch_pages();
        }
        Ok(pages * 4096)
    }

    /// How a message was trained in `account`, if it was.
    pub fn spam_trained(&self, account: u64, blob: &[u8; 32]) -> Result<Option<Class>> {
        let Ok(t) = self.tx().open_table(SPAM_TRAINED) else {
            return Ok(None);
        };
        Ok(t.get((account, *blob))?
            .and_then(|v| Class::from_byte(v.value())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{FlagMode, MailboxSel, NewMessage, Op, Output, Store, Target};

    fn open() -> (tempfile::TempDir, Store, u64) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let Output::Id(a) = s
            .write(Op::CreateAccount {
                address: "alice@home.arpa".into(),
                password_hash: "x".into(),
            })
            .unwrap()
        else {
            panic!()
        };
        (d, s, a)
    }

    fn item(account: u64, blob: u8, class: Class, tokens: Vec<u64>) -> TrainItem {
        TrainItem {
            account,
            seq: None,
            blob: [blob; 32],
            class,
            tokens,
        }
    }

    fn counts(s: &Store, a: u64, t: &[u64]) -> Vec<(u32, u32)> {
        s.read(|r| r.spam_counts(a, t)).unwrap()
    }

    #[test]
    fn trains_once_and_retraining_undoes() {
        let (_d, s, a) = open();
        let train = |i: TrainItem| {
            s.write(Op::SpamTrain {
                items: vec![i],
                now: 86_400 * 3,
            })
        };
        train(item(a, 1, Class::Spam, vec![10, 11])).unwrap();
        train(item(a, 2, Class::Ham, vec![11, 12])).unwrap();
        // The same message again, the same way: nothing changes.
        train(item(a, 1, Class::Spam, vec![10, 11])).unwrap();
        assert_eq!(
            counts(&s, a, &[10, 11, 12, 13]),
            [(1, 0), (1, 1), (0, 1), (0, 0)]
        );
        let st = s.read(|r| r.spam_state(a)).unwrap();
        assert_eq!(
            (st.spam, st.ham, st.tokens, st.last_trained),
            (1, 1, 3, 86_400 * 3)
        );
        // Message 1 is ham after all: its spam counts are undone.
        train(item(a, 1, Class::Ham, vec![10, 11])).unwrap();
        assert_eq!(counts(&s, a, &[10, 11, 12]), [(0, 1), (0, 2), (0, 1)]);
        let st = s.read(|r| r.spam_state(a)).unwrap();
        assert_eq!((st.spam, st.ham, st.tokens), (0, 2, 3));
        assert_eq!(
            s.read(|r| r.spam_trained(a, &[1; 32])).unwrap(),
            Some(Class::Ham)
        );
        // Another account's statistics are its own.
        assert_eq!(counts(&s, a + 1, &[10]), [(0, 0)]);
    }

    #[test]
    fn moves_and_keywords_queue_events_in_the_same_commit() {
        let (_d, s, a) = open();
        let m = Arc::new(NewMessage::new(b"Subject: t\r\n\r\nhello\r\n".to_vec()));
        let Output::Delivered(d) = s
            .write(Op::Deliver {
                message: m.clone(),
                targets: vec![Target {
                    account: a,
                    mailbox: MailboxSel::Inbox,
                }],
                flags: 0,
                keywords: vec![],
                internal_date: 1,
                delivered: true,
            })
            .unwrap()
        else {
            panic!()
        };
        let (inbox, _, uid) = d[0];
        let junk = s.read(|r| r.mailbox(a, "Junk")).unwrap().unwrap().id;
        let trash = s.read(|r| r.mailbox(a, "Trash")).unwrap().unwrap().id;
        let queue = |s: &Store| -> Vec<Class> {
            s.read(|r| r.spam_queue(100))
                .unwrap()
                .iter()
                .map(|e| {
                    assert_eq!((e.account, e.blob), (a, m.hash));
                    e.class
                })
                .collect()
        };
        let mv = |from, uid, to| {
            let Output::Copied { pairs, .. } = s
                .write(Op::Copy {
                    from,
                    uids: vec![uid],
                    to,
                    remove: true,
                })
                .unwrap()
            else {
                panic!()
            };
            pairs[0].1
        };
        let uid = mv(inbox, uid, junk);
        assert_eq!(queue(&s), [Class::Spam]);
        let uid = mv(junk, uid, inbox);
        assert_eq!(queue(&s), [Class::Spam, Class::Ham]);
        // Junk to Trash and Trash to INBOX say nothing.
        let uid = mv(inbox, uid, junk);
        let uid = mv(junk, uid, trash);
        let uid = mv(trash, uid, inbox);
        assert_eq!(queue(&s).len(), 3);
        let flags = |kw: &str, f: u8| {
            s.write(Op::SetFlags {
                mailbox: inbox,
                uids: vec![uid],
                mode: FlagMode::Add,
                flags: f,
                keywords: if kw.is_empty() {
                    vec![]
                } else {
                    vec![kw.into()]
                },
                unchanged_since: None,
            })
            .unwrap();
        };
        flags("$Junk", 0);
        flags("$Junk", 0); // already set: no new event
        flags("$NotJunk", 0);
        flags("", crate::store::flag::ANSWERED);
        flags("", crate::store::flag::SEEN); // says nothing
        assert_eq!(queue(&s)[3..], [Class::Spam, Class::Ham, Class::Ham]);
        assert_eq!(s.read(|r| r.spam_state(a)).unwrap().queued, 6);
        // The background step applies them and empties the queue.
        while crate::spam::learn::train_batch(&s).unwrap() > 0 {}
        let st = s.read(|r| r.spam_state(a)).unwrap();
        assert_eq!((st.queued, st.spam + st.ham), (0, 1));
        assert!(queue(&s).is_empty());
    }

    #[test]
    fn the_queue_and_the_tokens_are_bounded() {
        let (_d, s, a) = open();
        s.write(Op::SpamKept {
            account: a,
            blobs: vec![[7; 32]; MAX_QUEUED as usize + 5],
        })
        .unwrap();
        let st = s.read(|r| r.spam_state(a)).unwrap();
        assert_eq!((st.queued, st.dropped), (MAX_QUEUED, 5));
        // Over the cap: the oldest and rarest go, down to 90 %.
        let old: Vec<u64> = (0..MAX_TOKENS / 2).collect();
        let new: Vec<u64> = (MAX_TOKENS..MAX_TOKENS * 2).collect();
        s.write(Op::SpamTrain {
            items: vec![item(a, 1, Class::Spam, old)],
            now: 0,
        })
        .unwrap();
        s.write(Op::SpamTrain {
            items: vec![item(a, 2, Class::Ham, new)],
            now: 86_400 * 100,
        })
        .unwrap();
        let st = s.read(|r| r.spam_state(a)).unwrap();
        assert_eq!(st.tokens, MAX_TOKENS * 9 / 10);
        assert_eq!(
            st.expired,
            MAX_TOKENS / 2 + MAX_TOKENS - MAX_TOKENS * 9 / 10
        );
        // One account at the cap stays under 10 MB of pages (issue 17's bound).
        let bytes = s.read(|r| r.spam_stats_bytes()).unwrap();
        assert!(bytes < 10 << 20, "{bytes}");
        // The old ones went first, then as many new ones as needed.
        let old: Vec<u64> = (0..MAX_TOKENS / 2).collect();
        assert!(counts(&s, a, &old).iter().all(|c| *c == (0, 0)));
        let new: Vec<u64> = (MAX_TOKENS..MAX_TOKENS * 2).collect();
        let kept = counts(&s, a, &new).iter().filter(|c| **c == (0, 1)).count();
        assert_eq!(kept as u64, MAX_TOKENS * 9 / 10);
    }
}
