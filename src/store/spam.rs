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

    /// How a message was trained in `account`, if it was.
    pub fn spam_trained(&self, account: u64, blob: &[u8; 32]) -> Result<Option<Class>> {
        let Ok(t) = self.tx().open_table(SPAM_TRAINED) else {
            return Ok(None);
        };
        Ok(t.get((account, *blob))?
            .and_then(|v| Class::from_byte(v.value())))
    }
}
