//! The values kept in the tables, encoded with postcard. Changing a field's type or
//! order needs a schema version bump and a migration.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::Error;

/// Encodes a record.
pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(v).map_err(|e| Error::Corrupt(format!("encode: {e}")))
}

/// Decodes a record; a failure means the file holds something this build did not write.
pub(crate) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, Error> {
    postcard::from_bytes(b).map_err(|e| Error::Corrupt(format!("decode: {e}")))
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Stable id.
    pub id: u64,
    /// The primary address, as the user typed it (`Alice@home.arpa`); also the login name.
    pub address: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created: i64,
}

/// What an entry of the address table points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressEntry {
    /// The account that receives mail for this address.
    pub account: u64,
    /// False for the account's primary address, true for an alias.
    pub alias: bool,
}

/// SPECIAL-USE attributes (RFC 6154 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecialUse {
    /// `\Sent`
    Sent,
    /// `\Drafts`
    Drafts,
    /// `\Trash`
    Trash,
    /// `\Junk`
    Junk,
    /// `\Archive`
    Archive,
    /// `\All`
    All,
    /// `\Flagged`
    Flagged,
}

impl SpecialUse {
    /// The IMAP attribute text.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::All => "\\All",
            SpecialUse::Flagged => "\\Flagged",
        }
    }
}

/// The mailboxes every account gets (SPEC §5 "Standard mailboxes").
pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// A mailbox with the counters IMAP SELECT and STATUS need (RFC 9051 §6.3.1, §6.3.11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// Stable id; messages are keyed by it, so RENAME touches one row.
    pub id: u64,
    /// Owner.
    pub account: u64,
    /// Full name with `/` as hierarchy separator; `INBOX` is always spelled so.
    pub name: String,
    /// RFC 9051 §2.3.1.1.
    pub uidvalidity: u32,
    /// The next UID to assign.
    pub uidnext: u32,
    /// RFC 7162 §3.1.1: the highest modseq of any change in the mailbox.
    pub highestmodseq: u64,
    /// SPECIAL-USE attribute.
    pub special_use: Option<SpecialUse>,
    /// Number of messages.
    pub exists: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Sum of message sizes (STATUS=SIZE, RFC 8438).
    pub size: u64,
}

/// System flags as bits (RFC 9051 §2.3.2); keywords are kept by name.
pub mod flag {
    /// `\Seen`
    pub const SEEN: u8 = 1;
    /// `\Answered`
    pub const ANSWERED: u8 = 2;
    /// `\Flagged`
    pub const FLAGGED: u8 = 4;
    /// `\Deleted`
    pub const DELETED: u8 = 8;
    /// `\Draft`
    pub const DRAFT: u8 = 16;
}

/// One message in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRow {
    /// SHA-256 of the body: the key of the shared blob.
    pub blob: [u8; 32],
    /// System flag bits, see [`flag`].
    pub flags: u8,
    /// Keywords (`$Forwarded`, `$Junk` ...), in the order set.
    pub keywords: Vec<String>,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// RFC822.SIZE in octets.
    pub size: u64,
    /// The modseq of the last change to this message (RFC 7162).
    pub modseq: u64,
}

/// Delivery state of one recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptState {
    /// Not delivered yet.
    Pending,
    /// The remote accepted it; never sent again.
    Delivered,
    /// Permanently failed with the remote's reply.
    Failed(String),
}

/// One outbound message (issue 4 delivers these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// Queue id.
    pub id: u64,
    /// Blob of the (signed) message.
    pub blob: [u8; 32],
    /// Envelope sender (`""` for bounces).
    pub mail_from: String,
    /// Recipients and their state.
    pub rcpts: Vec<(String, RcptState)>,
    /// Unix seconds when queued.
    pub created: i64,
    /// Unix seconds of the next attempt.
    pub next_attempt: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// The last temporary error.
    pub last_error: Option<String>,
    /// True once the sender got the "delayed" notice (sent at most once). Added in
    /// schema version 2.
    pub delay_notified: bool,
}

/// A DKIM signing algorithm (RFC 6376 §3.3, RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DkimAlgorithm {
    /// `ed25519-sha256` (RFC 8463).
    Ed25519,
    /// `rsa-sha256` with a 2048-bit key (RFC 6376 §3.3.1, RFC 8301).
    Rsa2048,
}

/// One DKIM key of a domain (schema version 2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimKey {
    /// The selector: the key's DNS name is `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// Algorithm.
    pub algorithm: DkimAlgorithm,
    /// The private key: PKCS#8 DER for Ed25519, PKCS#1 DER for RSA.
    pub private_der: Vec<u8>,
    /// The public key as published in `p=`: the raw 32 bytes for Ed25519 (RFC 8463 §4.2),
    /// SubjectPublicKeyInfo DER for RSA (RFC 6376 §3.6.1).
    pub public: Vec<u8>,
    /// Unix seconds when generated.
    pub created: i64,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("DkimKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}
