//! The session's window on the store: a small synchronous trait with the reads and
//! the typed write the IMAP commands need. [`Store`] implements it; the session's unit
//! tests run it over a store in a temporary directory, with no sockets.
//!
//! Every method blocks (redb reads, group-committed writes): the driver calls
//! `Session::execute` on a blocking thread (STYLE habit 11).

use crate::mail::message::ParsedMessage;
use crate::store::records::{Mailbox, MessageRow};
use crate::store::{Op, Output, Quota, Result, Store, Usage};

/// One message as FETCH needs it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its row.
    pub row: MessageRow,
    /// Its parse-once structure, when asked for.
    pub parsed: Option<ParsedMessage>,
    /// Its bytes, when asked for.
    pub raw: Option<Vec<u8>>,
}

/// What the IMAP session reads and writes.
pub trait Backend {
    /// Several messages in one consistent read (`None` for UIDs no longer there), with
    /// their structure and bytes when asked. Stops after the message whose bytes take the
    /// total over `max_bytes` (at least one is loaded), so many small messages share one
    /// read transaction while memory stays bounded for large ones; the caller continues
    /// from `uids[result.len()..]`. The default asks message by message.
    fn load(
        &self,
        mailbox: u64,
        uids: &[u32],
        parsed: bool,
        raw: bool,
        max_bytes: u64,
    ) -> Result<Vec<Option<Loaded>>> {
        let mut out = Vec::with_capacity(uids.len());
        let mut bytes = 0u64;
        for &uid in uids {
            if bytes > max_bytes {
                break;
            }
            out.push(match self.message(mailbox, uid)? {
                Some(row) => {
                    let raw = if raw { self.blob(&row.blob)? } else { None };
                    bytes += raw.as_ref().map_or(0, |r| r.len() as u64);
                    Some(Loaded {
                        parsed: if parsed {
                            self.parsed(&row.blob)?
                        } else {
                            None
                        },
                        raw,
                        row,
                    })
                }
                None => None,
            });
        }
        Ok(out)
    }
    /// Every mailbox of an account.
    fn mailboxes(&self, account: u64) -> Result<Vec<Mailbox>>;
    /// Subscribed names of an account.
    fn subscriptions(&self, account: u64) -> Result<Vec<String>>;
    /// A mailbox by name.
    fn mailbox(&self, account: u64, name: &str) -> Result<Option<Mailbox>>;
    /// A mailbox by id.
    fn mailbox_by_id(&self, id: u64) -> Result<Option<Mailbox>>;
    /// Every message of a mailbox, in UID order.
    fn messages(&self, mailbox: u64) -> Result<Vec<(u32, MessageRow)>>;
    /// One message.
    fn message(&self, mailbox: u64, uid: u32) -> Result<Option<MessageRow>>;
    /// The raw bytes of a blob.
    fn blob(&self, blob: &[u8; 32]) -> Result<Option<Vec<u8>>>;
    /// The parse-once structure of a blob.
    fn parsed(&self, blob: &[u8; 32]) -> Result<Option<ParsedMessage>>;
    /// UIDs expunged with a modseq above `modseq` (QRESYNC, RFC 7162 §3.2.5).
    fn expunged_since(&self, mailbox: u64, modseq: u64) -> Result<Vec<u32>>;
    /// Runs a write; returns after the commit (durable unless the op is lazy).
    fn write(&self, op: Op) -> Result<Output>;
    /// Claims the unclaimed `\Recent` messages below `uidnext`; returns the first claimed
    /// UID ([`Store::claim_recent`]).
    fn claim_recent(&self, mailbox: u64, uidnext: u32) -> u32;
    /// The first UID not yet claimed as `\Recent` ([`Store::recent_mark`]).
    fn recent_mark(&self, mailbox: u64) -> u32;
    /// The account's quota in force and its usage (RFC 9208).
    fn quota(&self, account: u64) -> Result<(Quota, Usage)>;
}

impl Backend for Store {
    fn load(
        &self,
        mailbox: u64,
        uids: &[u32],
        parsed: bool,
        raw: bool,
        max_bytes: u64,
    ) -> Result<Vec<Option<Loaded>>> {
        self.read(|r| {
            let mut out = Vec::with_capacity(uids.len());
            let mut bytes = 0u64;
            for &uid in uids {
                if bytes > max_bytes {
                    break;
                }
                out.push(match r.message(mailbox, uid)? {
                    Some(row) => {
                        let raw = if raw { r.blob(&row.blob)? } else { None };
                        bytes += raw.as_ref().map_or(0, |r| r.len() as u64);
                        Some(Loaded {
                            parsed: if parsed { r.parsed(&row.blob)? } else { None },
                            raw,
                            row,
                        })
                    }
                    None => None,
                });
            }
            Ok(out)
        })
    }
    fn mailboxes(&self, account: u64) -> Result<Vec<Mailbox>> {
        self.read(|r| r.mailboxes(account))
    }
    fn subscriptions(&self, account: u64) -> Result<Vec<String>> {
        self.read(|r| r.subscriptions(account))
    }
    fn mailbox(&self, account: u64, name: &str) -> Result<Option<Mailbox>> {
        self.read(|r| r.mailbox(account, name))
    }
    fn mailbox_by_id(&self, id: u64) -> Result<Option<Mailbox>> {
        self.read(|r| r.mailbox_by_id(id))
    }
    fn messages(&self, mailbox: u64) -> Result<Vec<(u32, MessageRow)>> {
        self.read(|r| r.messages(mailbox))
    }
    fn message(&self, mailbox: u64, uid: u32) -> Result<Option<MessageRow>> {
        self.read(|r| r.message(mailbox, uid))
    }
    fn blob(&self, blob: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        self.read(|r| r.blob(blob))
    }
    fn parsed(&self, blob: &[u8; 32]) -> Result<Option<ParsedMessage>> {
        self.read(|r| r.parsed(blob))
    }
    fn expunged_since(&self, mailbox: u64, modseq: u64) -> Result<Vec<u32>> {
        self.read(|r| r.expunged_since(mailbox, modseq))
    }
    fn write(&self, op: Op) -> Result<Output> {
        Store::write(self, op)
    }
    fn claim_recent(&self, mailbox: u64, uidnext: u32) -> u32 {
        Store::claim_recent(self, mailbox, uidnext)
    }
    fn recent_mark(&self, mailbox: u64) -> u32 {
        Store::recent_mark(self, mailbox)
    }
    fn quota(&self, account: u64) -> Result<(Quota, Usage)> {
        let default = self.default_quota();
        self.read(|r| {
            Ok((
                r.quota_setting(account)?.effective(default),
                r.usage(account)?,
            ))
        })
    }
}
