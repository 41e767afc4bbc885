//! Greylisting state (`crate::spam::greylist` decides): deferred triples, networks that
//! passed, and the domains each account has written to. Bounded and expired: every
//! [`Update`] first removes a few expired entries from the oldest end (triples older than
//! their retry window, networks older than `greylist_remember`), then, while over
//! `max_entries`, the oldest triple or network. Written as lazy ops (like flags): losing
//! the last second of greylist state on a power cut only makes a sender wait again.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::schema::{GREY_NET_AGE, GREY_NETS, GREY_TRIPLE_AGE, GREY_TRIPLES, SENT_TO};
use super::{Reader, Result};
use crate::spam::greylist::Known;

/// Expired entries removed per update, at most (the rest go with later updates).
const EXPIRE_PER_UPDATE: usize = 64;
/// At most this many (account, domain) pairs are remembered; beyond, new ones are not.
pub const MAX_SENT_TO: u64 = 100_000;

/// One change to the greylist state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A triple was deferred for the first time (or again after its record expired).
    Deferred {
        /// `spam::triple_key`.
        triple: String,
    },
    /// A triple passed: its network is remembered, the triple forgotten.
    Passed {
        /// `spam::network_of`.
        network: String,
        /// `spam::triple_key`.
        triple: String,
    },
    /// A network that passed sent again: its memory is renewed.
    Renew {
        /// `spam::network_of`.
        network: String,
    },
    /// An account sent mail to these domains (lower case).
    SentTo {
        /// The account.
        account: u64,
        /// Recipient domains.
        domains: Vec<String>,
    },
}

/// Bounds of the state, from `[spam]` (durations scaled, in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Triples and networks together.
    pub max_entries: u64,
    /// A triple older than this is dropped.
    pub triple_ttl: i64,
    /// A network that passed longer ago than this is dropped.
    pub network_ttl: i64,
}

pub(super) fn apply(
    tx: &WriteTransaction,
    update: &Update,
    limits: Limits,
    now: i64,
) -> Result<()> {
    expire(tx, limits, now)?;
    match update {
        Update::Deferred { triple } => {
            let mut t = tx.open_table(GREY_TRIPLES)?;
            let old = t.insert(triple.as_str(), now)?.map(|v| v.value());
            drop(t);
            let mut age = tx.open_table(GREY_TRIPLE_AGE)?;
            if let Some(old) = old {
                age.remove((old, triple.as_str()))?;
            }
            age.insert((now, triple.as_str()), ())?;
        }
        Update::Passed { network, triple } => {
            let old = tx
                .open_table(GREY_TRIPLES)?
                .remove(triple.as_str())?
                .map(|v| v.value());
            if let Some(old) = old {
                tx.open_table(GREY_TRIPLE_AGE)?
                    .remove((old, triple.as_str()))?;
            }
            renew(tx, network, now)?;
        }
        Update::Renew { network } => renew(tx, network, now)?,
        Update::SentTo { account, domains } => {
            let mut t = tx.open_table(SENT_TO)?;
            for d in domains {
                let known = t.get((*account, d.as_str()))?.is_some();
                if known || t.len()? < MAX_SENT_TO {
                    t.insert((*account, d.as_str()), now)?;
                }
            }
        }
    }
    evict(tx, limits)
}

fn renew(tx: &WriteTransaction, network: &str, now: i64) -> Result<()> {
    let old = tx
        .open_table(GREY_NETS)?
        .insert(network, now)?
        .map(|v| v.value());
    let mut age = tx.open_table(GREY_NET_AGE)?;
    if let Some(old) = old {
        age.remove((old, network))?;
    }
    age.insert((now, network), ())?;
    Ok(())
}

/// The oldest entry of an age index: (time, key).
fn oldest(age: &impl ReadableTable<(i64, &'static str), ()>) -> Result<Option<(i64, String)>> {
    Ok(age.first()?.map(|(k, _)| {
        let (t, key) = k.value();
        (t, key.to_string())
    }))
}

fn expire(tx: &WriteTransaction, limits: Limits, now: i64) -> Result<()> {
    for (entries, ages, ttl) in [
        (GREY_TRIPLES, GREY_TRIPLE_AGE, limits.triple_ttl),
        (GREY_NETS, GREY_NET_AGE, limits.network_ttl),
    ] {
        let mut t = tx.open_table(entries)?;
        let mut age = tx.open_table(ages)?;
        for _ in 0..EXPIRE_PER_UPDATE {
            match oldest(&age)? {
                Some((when, key)) if now.saturating_sub(when) > ttl => {
                    age.remove((when, key.as_str()))?;
                    t.remove(key.as_str())?;
                }
                _ => break,
            }
        }
    }
    Ok(())
}

fn evict(tx: &WriteTransaction, limits: Limits) -> Result<()> {
    let mut triples = tx.open_table(GREY_TRIPLES)?;
    let mut triple_age = tx.open_table(GREY_TRIPLE_AGE)?;
    let mut nets = tx.open_table(GREY_NETS)?;
    let mut net_age = tx.open_table(GREY_NET_AGE)?;
    // Bounded: each round removes one entry, and there are at most a few over the cap.
    for _ in 0..EXPIRE_PER_UPDATE {
        if triples.len()? + nets.len()? <= limits.max_entries {
            break;
        }
        let (t, n) = (oldest(&triple_age)?, oldest(&net_age)?);
        match (t, n) {
            (Some(t), n) if n.as_ref().is_none_or(|n| t.0 <= n.0) => {
                triple_age.remove((t.0, t.1.as_str()))?;
                triples.remove(t.1.as_str())?;
            }
            (_, Some(n)) => {
                net_age.remove((n.0, n.1.as_str()))?;
                nets.remove(n.1.as_str())?;
            }
            _ => break,
        }
    }
    Ok(())
}

impl Reader {
    /// What greylisting knows about `network`, `triple`, and whether `account` wrote to
    /// `domain`.
    pub fn greylist_known(
        &self,
        network: &str,
        triple: &str,
        account: u64,
        domain: Option<&str>,
    ) -> Result<Known> {
        let get = |def: redb::TableDefinition<&str, i64>, key: &str| -> Result<Option<i64>> {
            match self.tx().open_table(def) {
                Ok(t) => Ok(t.get(key)?.map(|v| v.value())),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let wrote_to = match domain {
            None => false,
            Some(d) => match self.tx().open_table(SENT_TO) {
                Ok(t) => t.get((account, d))?.is_some(),
                Err(redb::TableError::TableDoesNotExist(_)) => false,
                Err(e) => return Err(e.into()),
            },
        };
        Ok(Known {
            network_passed: get(GREY_NETS, network)?,
            triple_seen: get(GREY_TRIPLES, triple)?,
            wrote_to,
        })
    }

    /// Greylist entries: (triples, networks).
    pub fn greylist_len(&self) -> Result<(u64, u64)> {
        let len = |def: redb::TableDefinition<&str, i64>| -> Result<u64> {
            match self.tx().open_table(def) {
                Ok(t) => Ok(t.len()?),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                Err(e) => Err(e.into()),
            }
        };
        Ok((len(GREY_TRIPLES)?, len(GREY_NETS)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Op, Store};
    use super::*;

    const L: Limits = Limits {
        max_entries: 100,
        triple_ttl: 1000,
        network_ttl: 5000,
    };

    fn op(update: Update, now: i64) -> Op {
        Op::Greylist {
            update,
            limits: L,
            now,
        }
    }

    #[test]
    fn triples_pass_networks_are_remembered_and_everything_expires() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let known = |s: &Store| {
            s.read(|r| r.greylist_known("n1", "t1", 1, Some("x.test")))
                .unwrap()
        };
        assert_eq!(known(&s), Known::default());
        s.write(op(
            Update::Deferred {
                triple: "t1".into(),
            },
            10,
        ))
        .unwrap();
        assert_eq!(known(&s).triple_seen, Some(10));
        s.write(op(
            Update::Passed {
                network: "n1".into(),
                triple: "t1".into(),
            },
            400,
        ))
        .unwrap();
        let k = known(&s);
        assert_eq!((k.network_passed, k.triple_seen), (Some(400), None));
        s.write(op(
            Update::SentTo {
                account: 1,
                domains: vec!["x.test".into()],
            },
            401,
        ))
        .unwrap();
        assert!(known(&s).wrote_to);
        // Another triple expires after its ttl; the network after its own.
        s.write(op(
            Update::Deferred {
                triple: "t2".into(),
            },
            500,
        ))
        .unwrap();
        s.write(op(
            Update::Renew {
                network: "n9".into(),
            },
            1600,
        ))
        .unwrap();
        assert_eq!(s.read(|r| r.greylist_len()).unwrap(), (0, 2));
        s.write(op(
            Update::Renew {
                network: "n9".into(),
            },
            5500,
        ))
        .unwrap();
        assert_eq!(s.read(|r| r.greylist_len()).unwrap(), (0, 1));
        assert_eq!(known(&s).network_passed, None);
    }

    #[test]
    fn the_cap_drops_the_oldest() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        for i in 0..150 {
            s.write(op(
                Update::Deferred {
                    triple: format!("t{i}"),
                },
                100 + i,
            ))
            .unwrap();
        }
        assert_eq!(s.read(|r| r.greylist_len()).unwrap(), (100, 0));
        let first = s.read(|r| r.greylist_known("n", "t0", 1, None)).unwrap();
        let last = s.read(|r| r.greylist_known("n", "t149", 1, None)).unwrap();
        assert_eq!((first.triple_seen, last.triple_seen), (None, Some(249)));
    }
}
