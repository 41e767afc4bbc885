//! Per-account quotas (RFC 9208: the STORAGE and MESSAGE resources): the limits set for
//! each account (`letterbox user quota`), the daemon-wide defaults (`[quota]`), the usage
//! an account has, and the check that every op adding mail to an account makes inside its
//! own write transaction, so a message that does not fit is refused whole and a message
//! that fits never half-arrives.
//!
//! Usage is the sum over the account's mailboxes of their message count and of their
//! messages' sizes (kept in each mailbox record, so reading it costs one row per mailbox).
//! A body shared with another account (one blob, delivered to two people) counts fully for
//! each, as users expect. A MOVE within an account changes nothing and is never refused:
//! a person over quota can still clean up by moving mail to Trash.
//!
//! The `QUOTAS` table was added without a schema version bump: older builds never open it
//! (they enforce no quota), and a store written by them simply has no such table yet.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::records::{dec, enc};
use super::schema::{MAILBOX_NAMES, MAILBOXES, QUOTAS};
use super::{Error, Reader, Result, accounts};
use crate::store::records::Mailbox;

/// One limit as set for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Limit {
    /// The daemon's default (`[quota]`).
    #[default]
    Default,
    /// No limit, whatever the default.
    Unlimited,
    /// At most this many (bytes for storage, messages for the count).
    Max(u64),
}

/// The limits set for one account (a row of `QUOTAS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuotaSetting {
    /// Bytes of mail.
    pub storage: Limit,
    /// Messages.
    pub messages: Limit,
}

/// The limits in force: `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quota {
    /// Bytes of mail.
    pub storage: Option<u64>,
    /// Messages.
    pub messages: Option<u64>,
}

impl QuotaSetting {
    /// The limits in force with these settings over `default`.
    pub fn effective(&self, default: Quota) -> Quota {
        let pick = |l: Limit, d: Option<u64>| match l {
            Limit::Default => d,
            Limit::Unlimited => None,
            Limit::Max(n) => Some(n),
        };
        Quota {
            storage: pick(self.storage, default.storage),
            messages: pick(self.messages, default.messages),
        }
    }
}

/// What an account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes of its messages (RFC822.SIZE summed over every mailbox).
    pub bytes: u64,
    /// Its messages, over every mailbox.
    pub messages: u64,
}

impl Quota {
    /// Whether `usage` plus `bytes` in `messages` more messages stays within the limits
    /// (RFC 9208 §5: a limit is the most the resource may reach).
    pub fn allows(&self, usage: Usage, bytes: u64, messages: u64) -> bool {
        let fits = |limit: Option<u64>, used: u64, more: u64| {
            limit.is_none_or(|l| used.saturating_add(more) <= l)
        };
        fits(self.storage, usage.bytes, bytes) && fits(self.messages, usage.messages, messages)
    }
}

fn usage_of(mailboxes: impl Iterator<Item = Mailbox>) -> Usage {
    mailboxes.fold(Usage::default(), |u, m| Usage {
        bytes: u.bytes.saturating_add(m.size),
        messages: u.messages.saturating_add(u64::from(m.exists)),
    })
}

/// The account's usage, read inside a write transaction (so it includes this
/// transaction's own additions).
fn usage_w(tx: &WriteTransaction, account: u64) -> Result<Usage> {
    let names = tx.open_table(MAILBOX_NAMES)?;
    let boxes = tx.open_table(MAILBOXES)?;
    let mut list = Vec::new();
    for i in names.range((account, "")..(account + 1, ""))? {
        let (_, id) = i?;
        if let Some(v) = boxes.get(id.value())? {
            list.push(dec::<Mailbox>(v.value())?);
        }
    }
    Ok(usage_of(list.into_iter()))
}

fn setting_w(tx: &WriteTransaction, account: u64) -> Result<QuotaSetting> {
    let t = tx.open_table(QUOTAS)?;
    let v = t.get(account)?;
    v.map_or(Ok(QuotaSetting::default()), |v| dec(v.value()))
}

/// Refuses with [`Error::OverQuota`] unless `bytes` in `messages` more messages fit the
/// account's quota.
pub(super) fn check(
    tx: &WriteTransaction,
    account: u64,
    bytes: u64,
    messages: u64,
    default: Quota,
) -> Result<()> {
    let quota = setting_w(tx, account)?.effective(default);
    if quota == Quota::default() {
        return Ok(());
    }
    if quota.allows(usage_w(tx, account)?, bytes, messages) {
        Ok(())
    } else {
        Err(Error::OverQuota)
    }
}

/// Sets the account's limits (`letterbox user quota`); `None` leaves a limit as it is.
pub(super) fn set(
    tx: &WriteTransaction,
    address: &str,
    storage: Option<Limit>,
    messages: Option<Limit>,
) -> Result<()> {
    let acct = accounts::account_by_address_w(tx, address)?;
    let mut s = setting_w(tx, acct.id)?;
    if let Some(l) = storage {
        s.storage = l;
    }
    if let Some(l) = messages {
        s.messages = l;
    }
    let mut t = tx.open_table(QUOTAS)?;
    if s == QuotaSetting::default() {
        t.remove(acct.id)?;
    } else {
        t.insert(acct.id, enc(&s)?.as_slice())?;
    }
    Ok(())
}

/// Forgets a deleted account's limits.
pub(super) fn forget(tx: &WriteTransaction, account: u64) -> Result<()> {
    tx.open_table(QUOTAS)?.remove(account)?;
    Ok(())
}

impl Reader {
    /// The limits set for an account (defaults when none are).
    pub fn quota_setting(&self, account: u64) -> Result<QuotaSetting> {
        match self.tx().open_table(QUOTAS) {
            Ok(t) => t
                .get(account)?
                .map_or(Ok(QuotaSetting::default()), |v| dec(v.value())),
            // A store from a build before quotas: nothing set.
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(QuotaSetting::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// What an account holds.
    pub fn usage(&self, account: u64) -> Result<Usage> {
        Ok(usage_of(self.mailboxes(account)?.into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_combine_with_the_default_and_bound_inclusively() {
        let default = Quota {
            storage: Some(1000),
            messages: None,
        };
        let s = QuotaSetting {
            storage: Limit::Default,
            messages: Limit::Max(2),
        };
        let q = s.effective(default);
        assert_eq!(q.storage, Some(1000));
        assert_eq!(q.messages, Some(2));
        let used = Usage {
            bytes: 900,
            messages: 1,
        };
        assert!(q.allows(used, 100, 1), "exactly at the limit fits");
        assert!(!q.allows(used, 101, 1));
        assert!(!q.allows(used, 1, 2));
        let none = QuotaSetting {
            storage: Limit::Unlimited,
            messages: Limit::Default,
        };
        assert_eq!(none.effective(default), Quota::default());
        assert!(Quota::default().allows(used, u64::MAX, u64::MAX));
    }
}
