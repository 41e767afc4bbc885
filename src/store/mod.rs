//! The mail store: the only module that touches redb. One database file,
//! `letterbox.redb`, in `data_dir`.
//!
//! # Writes and group commit
//! Every write is an [`Op`] (plain data) sent to one writer thread. The thread takes
//! whatever ops are waiting, applies them all in one write transaction and commits once
//! (one fsync), then answers each caller and publishes the [`Change`]s. A caller is
//! answered only after the commit is durable (SPEC §5). If one op of a batch fails, the
//! batch is aborted and every op is re-run in a transaction of its own, so a bad op
//! never takes its neighbours down. Flag changes are "lazy": a batch of only lazy ops
//! commits without fsync, and the writer makes it durable within a second (or sooner,
//! with the next durable commit).
//!
//! # Reads
//! Reads use redb's MVCC read transactions through [`Reader`]; they never wait for the
//! writer. redb calls block, so async callers go through [`Store::call`].

mod accounts;
pub mod backup;
mod blobs;
pub mod change;
pub mod fetched;
pub mod greylist;
mod imports;
pub mod load;
mod mailboxes;
mod messages;
mod migrate;
mod queue;
pub mod quota;
pub mod records;
mod schema;
pub mod spam;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use tokio::sync::broadcast;

pub use change::Change;
pub use imports::Imported;
pub use quota::{Limit, Quota, QuotaSetting, Usage};
pub use records::{
    Account, DkimAlgorithm, DkimKey, Mailbox, MessageRow, QueueItem, RcptState, SpecialUse, flag,
};
pub use schema::SCHEMA_VERSION;

use crate::mail::message::ParsedMessage;

/// File name of the database inside `data_dir`.
pub const DB_FILE: &str = "letterbox.redb";
/// Deliveries are refused while less than this much space is free (Postfix
/// `queue_minfree` does the same), so a full card fails cleanly instead of mid-commit.
pub const MIN_FREE_BYTES: u64 = 32 * 1024 * 1024;
/// How long a lazy (flag) change may wait before it is made durable (SPEC §5).
pub const LAZY_FLUSH: Duration = Duration::from_secs(1);
/// At most this many ops share one commit.
const MAX_BATCH: usize = 512;

/// Store errors. `Full` and `Storage` are temporary (SMTP 452/451); the others are
/// answers about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The thing named does not exist.
    NotFound(String),
    /// The thing named exists already.
    Exists(String),
    /// The request is not valid (bad address, reserved name ...).
    Invalid(String),
    /// Not enough free space for this write; nothing was written.
    Full,
    /// The account's quota has no room for this (RFC 9208); nothing was written.
    OverQuota,
    /// An I/O or database error; nothing of the op was committed.
    Storage(String),
    /// The file is not a Letterbox database or is damaged; it was not modified.
    Corrupt(String),
    /// The file was written by a newer Letterbox.
    NewerSchema {
        /// Version in the file.
        found: u64,
        /// Version this build understands.
        supported: u64,
    },
    /// Another process has the database open.
    Locked,
    /// The store is shutting down.
    Closed,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotFound(s) => write!(f, "{s} not found"),
            Error::Exists(s) => write!(f, "{s} already exists"),
            Error::Invalid(s) => write!(f, "{s}"),
            Error::Full => write!(f, "not enough free space on the data partition"),
            Error::OverQuota => write!(f, "the account is over its quota"),
            Error::Storage(s) => write!(f, "storage error: {s}"),
            Error::Corrupt(s) => write!(
                f,
                "the database is damaged or not a Letterbox database ({s}); it was left untouched"
            ),
            Error::NewerSchema { found, supported } => write!(
                f,
                "the database has schema version {found} but this letterbox supports up to {supported}; it was left untouched (upgrade letterbox)"
            ),
            Error::Locked => write!(f, "the database is in use by another process"),
            Error::Closed => write!(f, "the store is closed"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// True for errors worth retrying later (SMTP 4xx).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Full | Error::OverQuota | Error::Storage(_) | Error::Closed | Error::Locked
        )
    }
}

fn storage_err(e: impl std::fmt::Display) -> Error {
    let s = e.to_string();
    if s.contains("No space left") || s.contains("StorageFull") || s.contains("os error 28") {
        Error::Full
    } else {
        Error::Storage(s)
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { storage_err(e) }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// A message ready to be stored: bytes, their hash and the parsed structure,
/// computed by the caller so the writer thread only writes.
#[derive(Debug)]
pub struct NewMessage {
    /// The raw message.
    pub raw: Vec<u8>,
    /// SHA-256 of `raw`.
    pub hash: [u8; 32],
    /// postcard-encoded [`ParsedMessage`].
    pub parsed: Vec<u8>,
}

impl NewMessage {
    /// Hashes and parses `raw` (CPU work; call it off the async threads for big messages).
    pub fn new(raw: Vec<u8>) -> NewMessage {
        let hash = blobs::hash(&raw);
        let parsed = crate::mail::message::parse(&raw);
        let parsed = postcard::to_allocvec(&parsed).unwrap_or_default();
        NewMessage { raw, hash, parsed }
    }
}

/// Which mailbox of an account a delivery goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxSel {
    /// The INBOX.
    Inbox,
    /// The account's `\Junk` mailbox (INBOX if it has none).
    Junk,
    /// A mailbox by id (APPEND).
    Id(u64),
}

/// One destination of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The account.
    pub account: u64,
    /// The mailbox.
    pub mailbox: MailboxSel,
}

/// How STORE combines flags (RFC 9051 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMode {
    /// `FLAGS`
    Replace,
    /// `+FLAGS`
    Add,
    /// `-FLAGS`
    Remove,
}

/// A write operation. Ops are data so that a failed batch can be re-run op by op.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create an account with its standard mailboxes.
    CreateAccount {
        /// Primary address (also the login).
        address: String,
        /// argon2id PHC string.
        password_hash: String,
    },
    /// Delete an account, its addresses, mailboxes and messages.
    DeleteAccount {
        /// Primary address.
        address: String,
    },
    /// Change a password.
    SetPassword {
        /// Primary address.
        address: String,
        /// argon2id PHC string.
        password_hash: String,
    },
    /// Point an alias (or `@domain` catch-all) at an account.
    AddAlias {
        /// The alias.
        alias: String,
        /// Any address of the target account.
        target: String,
    },
    /// Remove an alias.
    DeleteAlias {
        /// The alias.
        alias: String,
    },
    /// Set an account's quota (`letterbox user quota`); `None` leaves a limit as it is.
    SetQuota {
        /// Primary address.
        address: String,
        /// Bytes of mail.
        storage: Option<Limit>,
        /// Messages.
        messages: Option<Limit>,
    },
    /// Store one message into several mailboxes (one blob, one commit).
    Deliver {
        /// The message.
        message: Arc<NewMessage>,
        /// Where to.
        targets: Vec<Target>,
        /// Initial flags.
        flags: u8,
        /// Initial keywords.
        keywords: Vec<String>,
        /// INTERNALDATE, unix seconds.
        internal_date: i64,
        /// True for SMTP deliveries (for the mail LED).
        delivered: bool,
    },
    /// Store several messages into one mailbox in one transaction: all of them or none
    /// (IMAP APPEND, RFC 9051 §6.3.12, with RFC 3502 MULTIAPPEND). Answers
    /// `Delivered` with one entry per message, in order.
    Append {
        /// Owner.
        account: u64,
        /// Mailbox id.
        mailbox: u64,
        /// The messages, in order.
        messages: Vec<Appended>,
    },
    /// Change flags (lazy durability).
    SetFlags {
        /// Mailbox id.
        mailbox: u64,
        /// UIDs to change.
        uids: Vec<u32>,
        /// Replace, add or remove.
        mode: FlagMode,
        /// System flag bits.
        flags: u8,
        /// Keywords.
        keywords: Vec<String>,
        /// CONDSTORE UNCHANGEDSINCE (RFC 7162 §3.1.3).
        unchanged_since: Option<u64>,
    },
    /// Expunge `uids`, or every `\Deleted` message when `None`.
    Expunge {
        /// Mailbox id.
        mailbox: u64,
        /// UIDs (UID EXPUNGE, POP3 DELE) or all deleted.
        uids: Option<Vec<u32>>,
    },
    /// COPY or MOVE (RFC 6851).
    Copy {
        /// Source mailbox.
        from: u64,
        /// Source UIDs.
        uids: Vec<u32>,
        /// Destination mailbox.
        to: u64,
        /// True for MOVE.
        remove: bool,
    },
    /// CREATE (missing parents are created too, RFC 9051 §6.3.4).
    CreateMailbox {
        /// Owner.
        account: u64,
        /// Name.
        name: String,
        /// CREATE-SPECIAL-USE (RFC 6154 §3).
        special_use: Option<SpecialUse>,
    },
    /// DELETE.
    DeleteMailbox {
        /// Owner.
        account: u64,
        /// Name.
        name: String,
    },
    /// RENAME, with children; INBOX is moved into a new mailbox (RFC 9051 §6.3.6).
    RenameMailbox {
        /// Owner.
        account: u64,
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// SUBSCRIBE / UNSUBSCRIBE.
    Subscribe {
        /// Owner.
        account: u64,
        /// Name.
        name: String,
        /// Subscribe or not.
        on: bool,
    },
    /// Put a message in the outbound queue.
    Enqueue {
        /// The message.
        message: Arc<NewMessage>,
        /// Envelope sender.
        mail_from: String,
        /// Remote recipients.
        rcpts: Vec<String>,
        /// Unix seconds now.
        now: i64,
    },
    /// Replace a queue item (after an attempt).
    QueueUpdate(QueueItem),
    /// Remove a queue item.
    QueueDelete(u64),
    /// Store a domain's DKIM keys unless it has keys already; answers `Id(1)` when
    /// stored, `Id(0)` when keys existed (they are kept).
    PutDkimKeys {
        /// The domain.
        domain: String,
        /// Its keys.
        keys: Vec<DkimKey>,
    },
    /// Mail pulled from a remote account (`[[fetch]]`): the new messages and the new
    /// UIDVALIDITY/UID mark in one commit (fetched.rs). Answers `Delivered`.
    Pull {
        /// The local account.
        account: u64,
        /// The remote source (`user@host:port/folder`).
        source: String,
        /// The remote folder's UIDVALIDITY.
        uidvalidity: u32,
        /// The messages, in ascending UID order.
        messages: Vec<fetched::Pulled>,
    },
    /// Set a counter in the meta table.
    SetMeta(&'static str, u64),
    /// A batch of `letterbox import`: the messages and the source's new progress in one
    /// commit (imports.rs). Fails unless the recorded progress is `from`. Answers `Id(n)`
    /// with the number of message rows added.
    Import {
        /// Owner.
        account: u64,
        /// Names the source (kind and canonical path).
        source: String,
        /// Progress before this batch.
        from: u64,
        /// Progress after it.
        to: u64,
        /// The messages.
        messages: Vec<Imported>,
        /// Mailboxes to create even if no message goes there.
        create: Vec<String>,
    },
    /// A change to the greylisting state (greylist.rs); lazy, like flags.
    Greylist {
        /// The change.
        update: greylist::Update,
        /// The bounds to keep.
        limits: greylist::Limits,
        /// Unix seconds now.
        now: i64,
    },
    /// Daemon start: counts an unclean start if the last run did not end cleanly.
    MarkRunning,
    /// Clean shutdown.
    MarkStopped,
    /// Learning junk filter (spam.rs): apply trained messages to the statistics and
    /// remove their queue entries (lazy durability: a lost batch is re-run from the queue).
    SpamTrain {
        /// The messages.
        items: Vec<spam::TrainItem>,
        /// Unix seconds now.
        now: i64,
    },
    /// Learning junk filter: queue INBOX messages kept a week as ham (lazy).
    SpamKept {
        /// Owner.
        account: u64,
        /// The messages' blobs.
        blobs: Vec<[u8; 32]>,
    },
    /// Learning junk filter: reputation tokens of addresses the person wrote to (lazy).
    SpamSent {
        /// The sender's account.
        account: u64,
        /// Reputation token hashes.
        keys: Vec<u64>,
        /// Unix seconds now.
        now: i64,
    },
    /// As `Deliver`, with one message per target (each with its own `X-Spam-*` fields),
    /// all in one commit. Answers `Delivered`.
    DeliverEach {
        /// (message, target) pairs.
        items: Vec<(Arc<NewMessage>, Target)>,
        /// INTERNALDATE, unix seconds.
        internal_date: i64,
        /// True for SMTP deliveries.
        delivered: bool,
    },
}

impl Op {
    /// Ops that may wait up to [`LAZY_FLUSH`] for durability.
    fn lazy(&self) -> bool {
        matches!(
            self,
            Op::SetFlags { .. }
                | Op::Subscribe { .. }
                | Op::Greylist { .. }
                | Op::SpamTrain { .. }
                | Op::SpamSent { .. }
                | Op::SpamKept { .. }
        )
    }
    /// Ops that add data and so need free space.
    fn grows(&self) -> Option<u64> {
        match self {
            Op::Deliver { message, .. } | Op::Enqueue { message, .. } => {
                Some(message.raw.len() as u64)
            }
            Op::Append { messages, .. } => {
                Some(messages.iter().map(|m| m.message.raw.len() as u64).sum())
            }
            Op::Pull { messages, .. } => Some(
                messages
                    .iter()
                    .filter_map(|m| m.message.as_ref())
                    .map(|m| m.raw.len() as u64)
                    .sum(),
            ),
            Op::Import { messages, .. } => {
                Some(messages.iter().map(|m| m.message.raw.len() as u64).sum())
            }
            Op::DeliverEach { items, .. } => {
                Some(items.iter().map(|(m, _)| m.raw.len() as u64).sum())
            }
            _ => None,
        }
    }
}

/// One message of [`Op::Append`].
#[derive(Debug, Clone)]
pub struct Appended {
    /// The message.
    pub message: Arc<NewMessage>,
    /// Initial flags.
    pub flags: u8,
    /// Initial keywords.
    pub keywords: Vec<String>,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
}

/// What an op returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Output {
    /// Nothing to report.
    #[default]
    None,
    /// A new id (account, mailbox, queue item).
    Id(u64),
    /// Where a delivery went: (mailbox id, uidvalidity, uid) per target.
    Delivered(Vec<(u64, u32, u32)>),
    /// Flags after the change: (uid, flags, keywords, modseq); plus UIDs that failed
    /// UNCHANGEDSINCE (RFC 7162 MODIFIED).
    Flags {
        /// Changed or unchanged rows as they are now.
        rows: Vec<(u32, u8, Vec<String>, u64)>,
        /// UIDs not changed because of UNCHANGEDSINCE.
        modified: Vec<u32>,
    },
    /// Expunged UIDs, ascending.
    Expunged(Vec<u32>),
    /// COPYUID data (RFC 4315 §3): destination uidvalidity and (source, dest) pairs.
    Copied {
        /// Destination UIDVALIDITY.
        uidvalidity: u32,
        /// (source uid, destination uid).
        pairs: Vec<(u32, u32)>,
    },
    /// MarkRunning: true when the previous run ended uncleanly.
    Unclean(bool),
}

struct Job {
    op: Op,
    reply: mpsc::SyncSender<Result<Output>>,
}

struct Inner {
    path: PathBuf,
    min_free: u64,
    db: RwLock<Option<Arc<Database>>>,
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    changes: broadcast::Sender<Change>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// `\Recent` (RFC 3501 §2.3.2): per mailbox, the first UID no session has claimed yet.
    /// Kept in memory only, so that a SELECT never writes to the card: the marks start at
    /// each mailbox's UIDNEXT when the store opens (messages that arrived before a restart
    /// are no longer recent), and at 1 for a mailbox created since.
    recent: std::sync::Mutex<std::collections::HashMap<u64, u32>>,
    /// `[quota]`: the limits of accounts that have none of their own.
    default_quota: RwLock<Quota>,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Sums for `letterbox status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Accounts.
    pub accounts: u64,
    /// Message rows in all mailboxes.
    pub messages: u64,
    /// Distinct bodies stored.
    pub blobs: u64,
    /// Bytes of distinct bodies.
    pub blob_bytes: u64,
    /// Outbound queue items.
    pub queue: u64,
    /// Unix seconds of the oldest queue item still pending, if any.
    pub oldest_queued: Option<i64>,
    /// Unseen messages over all INBOXes.
    pub inbox_unseen: u64,
    /// Unclean starts counted so far.
    pub unclean_starts: u64,
    /// Fault 4 waits for acknowledgement.
    pub fault4_pending: bool,
    /// Size of the database file.
    pub file_bytes: u64,
}

/// Opens redb, mapping its errors to ours; a corrupt file is refused, never rewritten.
fn open_db(path: &Path) -> Result<Database> {
    let existed = path.exists();
    // redb's debug builds panic on some corruption checks (release builds return
    // Corrupted); treat both the same.
    let res = std::panic::catch_unwind(|| {
        let mut b = Database::builder();
        b.set_cache_size(16 * 1024 * 1024);
        if existed {
            b.open(path)
        } else {
            b.create(path)
        }
    });
    match res {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(Error::Locked),
        Ok(Err(redb::DatabaseError::UpgradeRequired(v))) => Err(Error::Corrupt(format!(
            "redb file format {v} needs an upgrade"
        ))),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))) if existed => {
            if e.kind() == std::io::ErrorKind::InvalidData
                || e.kind() == std::io::ErrorKind::UnexpectedEof
            {
                Err(Error::Corrupt(e.to_string()))
            } else {
                Err(Error::Storage(e.to_string()))
            }
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(s)))) => {
            Err(Error::Corrupt(s))
        }
        Ok(Err(e)) => Err(Error::Corrupt(e.to_string())),
        Err(_) => Err(Error::Corrupt("redb refused the file".into())),
    }
}

/// Is this file plausibly a redb database? Checked before redb opens it, so that a
/// foreign or damaged file is refused without redb trying to repair (write) it.
fn looks_like_redb(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Storage(format!("{}: {e}", path.display()))),
    };
    let mut magic = [0u8; 9];
    match f.read_exact(&mut magic) {
        Ok(()) if &magic == b"redb\x1A\x0A\xA9\x0D\x0A" => Ok(()),
        Ok(()) => Err(Error::Corrupt("not a redb file".into())),
        Err(_) if f.metadata().map(|m| m.len() == 0).unwrap_or(false) => {
            Err(Error::Corrupt("empty file".into()))
        }
        Err(e) => Err(Error::Corrupt(e.to_string())),
    }
}

/// Creates a new database under a temporary name, initialises it with a durable
/// commit, and renames it into place (then syncs the directory). A power cut during
/// the very first start therefore leaves either no database or a complete one, never a
/// half-written file that would be refused as damaged on the next boot. A leftover
/// temporary file is from such an interrupted creation and holds no mail: it is removed.
fn create_atomically(data_dir: &Path, path: &Path) -> Result<()> {
    let tmp = data_dir.join(format!("{DB_FILE}.new"));
    let io = |e: std::io::Error| Error::Storage(format!("{}: {e}", tmp.display()));
    match std::fs::remove_file(&tmp) {
        Ok(()) => tracing::warn!(
            "removed {} left by an interrupted first start",
            tmp.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    {
        let db = open_db(&tmp)?;
        migrate::check_and_migrate(&db)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

impl Store {
    /// Opens (or creates) the store in `data_dir`, migrating an older schema and
    /// refusing a newer or damaged one untouched; starts the writer thread.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Store::open_with(data_dir, MIN_FREE_BYTES)
    }

    /// As [`Store::open`], refusing deliveries while less than `min_free` bytes are
    /// free (0 disables the check; the full-disk test uses that to reach a real
    /// ENOSPC inside a commit).
    pub fn open_with(data_dir: &Path, min_free: u64) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Storage(format!("{}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            create_atomically(data_dir, &path)?;
        }
        looks_like_redb(&path)?;
        if path.exists() {
            // redb marks a file on every read-write open, so look at the schema through
            // a read-only open first: a newer database must stay byte-for-byte untouched.
            // (A file that needs crash repair cannot be opened read-only; the normal
            // open below repairs it, as it must after a power cut.)
            if let Ok(Ok(ro)) = std::panic::catch_unwind(|| redb::ReadOnlyDatabase::open(&path)) {
                migrate::refuse_newer(&ro)?;
            }
        }
        let db = open_db(&path)?;
        migrate::check_and_migrate(&db)?;
        let recent = (Reader {
            tx: db.begin_read()?,
        })
        .all_uidnext()?
        .into_iter()
        .collect();
        let (tx, rx) = mpsc::channel::<Job>();
        let (changes, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            path,
            min_free,
            db: RwLock::new(Some(Arc::new(db))),
            jobs: std::sync::Mutex::new(Some(tx)),
            changes,
            writer: std::sync::Mutex::new(None),
            recent: std::sync::Mutex::new(recent),
            default_quota: RwLock::new(Quota::default()),
        });
        let weak = Arc::downgrade(&inner);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(weak, rx))
            .map_err(|e| Error::Storage(e.to_string()))?;
        if let Ok(mut w) = inner.writer.lock() {
            *w = Some(handle);
        }
        Ok(Store { inner })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Subscribes to committed changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// Runs one write op; returns once it is committed (durably, unless lazy).
    /// Blocking: async code calls it through [`Store::call`].
    pub fn write(&self, op: Op) -> Result<Output> {
        let (reply, rx) = mpsc::sync_channel(1);
        {
            let guard = self.inner.jobs.lock().map_err(|_| Error::Closed)?;
            let sender = guard.as_ref().ok_or(Error::Closed)?;
            sender.send(Job { op, reply }).map_err(|_| Error::Closed)?;
        }
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Sets the limits of accounts that have none of their own (`[quota]`).
    pub fn set_default_quota(&self, quota: Quota) {
        if let Ok(mut q) = self.inner.default_quota.write() {
            *q = quota;
        }
    }

    /// The limits of accounts that have none of their own.
    pub fn default_quota(&self) -> Quota {
        self.inner
            .default_quota
            .read()
            .map_or(Quota::default(), |q| *q)
    }

    /// Claims the messages of `mailbox` below `uidnext` that no session has claimed as
    /// `\Recent` yet (RFC 3501 §2.3.2: exactly one session sees each new message as recent);
    /// returns the first claimed UID, so the caller's recent messages are `first..uidnext`.
    pub fn claim_recent(&self, mailbox: u64, uidnext: u32) -> u32 {
        let Ok(mut marks) = self.inner.recent.lock() else {
            return uidnext;
        };
        let mark = marks.entry(mailbox).or_insert(1);
        let first = *mark;
        *mark = (*mark).max(uidnext);
        first
    }

    /// The first UID of `mailbox` that no session has claimed as `\Recent` (EXAMINE and
    /// STATUS look without claiming).
    pub fn recent_mark(&self, mailbox: u64) -> u32 {
        self.inner
            .recent
            .lock()
            .map_or(u32::MAX, |m| m.get(&mailbox).copied().unwrap_or(1))
    }

    /// Runs a read against a consistent snapshot.
    pub fn read<R>(&self, f: impl FnOnce(&Reader) -> Result<R>) -> Result<R> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        f(&Reader { tx })
    }

    /// Runs blocking store work from async code.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .map_err(|_| Error::Closed)?
    }

    fn db(&self) -> Result<Arc<Database>> {
        self.inner
            .db
            .read()
            .map_err(|_| Error::Closed)?
            .clone()
            .ok_or(Error::Closed)
    }

    /// Flushes lazy changes, stops the writer and closes the file (final commit).
    pub fn close(&self) {
        if let Ok(mut j) = self.inner.jobs.lock() {
            j.take();
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        if let Ok(mut db) = self.inner.db.write() {
            db.take();
        }
    }

    /// Free bytes on the data partition (statvfs).
    pub fn free_space(&self) -> Option<u64> {
        free_space(self.inner.path.parent().unwrap_or(Path::new(".")))
    }
}

/// Free bytes available to us on the file system holding `dir`.
pub fn free_space(dir: &Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

fn writer_loop(inner: std::sync::Weak<Inner>, rx: mpsc::Receiver<Job>) {
    let mut lazy_deadline: Option<Instant> = None;
    loop {
        let first = match lazy_deadline {
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(j) => Some(j),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(j) => Some(j),
                Err(_) => break,
            },
        };
        let Some(inner) = inner.upgrade() else { break };
        let Some(first) = first else {
            // Make the lazy commits durable with an empty durable commit.
            if flush(&inner).is_ok() {
                lazy_deadline = None;
            } else {
                lazy_deadline = Some(Instant::now() + LAZY_FLUSH);
            }
            continue;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|j| !j.op.lazy());
        match run_batch(&inner, batch, durable) {
            true if durable => lazy_deadline = None,
            true => {
                lazy_deadline.get_or_insert(Instant::now() + LAZY_FLUSH);
            }
            false => {}
        }
    }
    // Final commit: make any lazy changes durable before the file closes.
    if let Some(inner) = inner.upgrade()
        && lazy_deadline.is_some()
    {
        let _ = flush(&inner);
    }
}

fn flush(inner: &Inner) -> Result<()> {
    let db = inner
        .db
        .read()
        .map_err(|_| Error::Closed)?
        .clone()
        .ok_or(Error::Closed)?;
    let tx = db.begin_write()?;
    tx.commit()?;
    Ok(())
}

/// Applies a batch in one transaction; returns whether it committed.
fn run_batch(inner: &Inner, batch: Vec<Job>, durable: bool) -> bool {
    let db = match inner.db.read().ok().and_then(|d| d.clone()) {
        Some(db) => db,
        None => {
            for j in batch {
                let _ = j.reply.send(Err(Error::Closed));
            }
            return false;
        }
    };
    // Space check up front: a full card refuses new mail instead of failing a commit.
    let free = free_space(inner.path.parent().unwrap_or(Path::new(".")));
    let mut jobs = Vec::with_capacity(batch.len());
    let mut need = 0u64;
    for j in batch {
        if let (Some(n), Some(free)) = (j.op.grows(), free)
            && inner.min_free > 0
        {
            if free
                < inner
                    .min_free
                    .saturating_add(need)
                    .saturating_add(n.saturating_mul(2))
            {
                let _ = j.reply.send(Err(Error::Full));
                continue;
            }
            need = need.saturating_add(n.saturating_mul(2));
        }
        jobs.push(j);
    }
    if jobs.is_empty() {
        return true;
    }
    let attempt = |jobs: &[Job]| -> Result<(Vec<Result<Output>>, Vec<Change>)> {
        let mut tx = db.begin_write()?;
        tx.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })?;
        let mut changes = Vec::new();
        let mut outs = Vec::with_capacity(jobs.len());
        let quota = inner.default_quota.read().map_or(Quota::default(), |q| *q);
        for j in jobs {
            match apply(&tx, &j.op, quota, &mut changes) {
                Ok(o) => outs.push(Ok(o)),
                Err(e) => {
                    let _ = tx.abort();
                    return Err(e);
                }
            }
        }
        tx.commit()?;
        Ok((outs, changes))
    };
    match attempt(&jobs) {
        Ok((outs, changes)) => {
            // Publish before answering: a caller that has its answer can rely on the
            // event being queued for every subscriber.
            for c in changes {
                let _ = inner.changes.send(c);
            }
            for (j, o) in jobs.into_iter().zip(outs) {
                let _ = j.reply.send(o);
            }
            true
        }
        Err(e) if jobs.len() > 1 && !matches!(e, Error::Storage(_) | Error::Full) => {
            // One op failed on its own merits: run each alone.
            let mut any = false;
            for j in jobs {
                let one = std::slice::from_ref(&j);
                match attempt(one) {
                    Ok((mut outs, changes)) => {
                        any = true;
                        for c in changes {
                            let _ = inner.changes.send(c);
                        }
                        let _ = j.reply.send(outs.pop().unwrap_or(Ok(Output::None)));
                    }
                    Err(e) => {
                        let _ = j.reply.send(Err(e));
                    }
                }
            }
            any
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed; reopening the database");
            for j in jobs {
                let _ = j.reply.send(Err(e.clone()));
            }
            drop(db);
            reopen(inner);
            false
        }
    }
}

/// After a failed commit redb refuses writes until reopened; reopening repairs it.
fn reopen(inner: &Inner) {
    let Ok(mut slot) = inner.db.write() else {
        return;
    };
    let Some(old) = slot.take() else { return };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(old);
    match open_db(&inner.path) {
        Ok(db) => *slot = Some(Arc::new(db)),
        Err(e) => tracing::error!(error = %e, "could not reopen the database"),
    }
}

fn apply(
    tx: &WriteTransaction,
    op: &Op,
    quota: Quota,
    changes: &mut Vec<Change>,
) -> Result<Output> {
    match op {
        Op::SetQuota {
            address,
            storage,
            messages,
        } => quota::set(tx, address, *storage, *messages).map(|_| Output::None),
        Op::CreateAccount {
            address,
            password_hash,
        } => accounts::create(tx, address, password_hash, changes).map(Output::Id),
        Op::DeleteAccount { address } => {
            accounts::delete(tx, address, changes).map(|_| Output::None)
        }
        Op::SetPassword {
            address,
            password_hash,
        } => accounts::set_password(tx, address, password_hash).map(|_| Output::None),
        Op::AddAlias { alias, target } => {
            accounts::add_alias(tx, alias, target, changes).map(|_| Output::None)
        }
        Op::DeleteAlias { alias } => {
            accounts::delete_alias(tx, alias, changes).map(|_| Output::None)
        }
        Op::Deliver {
            message,
            targets,
            flags,
            keywords,
            internal_date,
            delivered,
        } => messages::deliver(
            tx,
            message,
            targets,
            *flags,
            keywords,
            *internal_date,
            *delivered,
            quota,
            changes,
        )
        .map(Output::Delivered),
        Op::Append {
            account,
            mailbox,
            messages: list,
        } => {
            let target = [Target {
                account: *account,
                mailbox: MailboxSel::Id(*mailbox),
            }];
            let mut out = Vec::with_capacity(list.len());
            for m in list {
                let d = messages::deliver(
                    tx,
                    &m.message,
                    &target,
                    m.flags,
                    &m.keywords,
                    m.internal_date,
                    false,
                    quota,
                    changes,
                )?;
                out.extend(d);
            }
            Ok(Output::Delivered(out))
        }
        Op::SetFlags {
            mailbox,
            uids,
            mode,
            flags,
            keywords,
            unchanged_since,
        } => messages::set_flags(
            tx,
            *mailbox,
            uids,
            *mode,
            *flags,
            keywords,
            *unchanged_since,
            changes,
        ),
        Op::Expunge { mailbox, uids } => {
            messages::expunge(tx, *mailbox, uids.as_deref(), changes).map(Output::Expunged)
        }
        Op::Copy {
            from,
            uids,
            to,
            remove,
        } => messages::copy(tx, *from, uids, *to, *remove, quota, changes),
        Op::CreateMailbox {
            account,
            name,
            special_use,
        } => mailboxes::create(tx, *account, name, *special_use, changes).map(Output::Id),
        Op::DeleteMailbox { account, name } => {
            mailboxes::delete(tx, *account, name, changes).map(|_| Output::None)
        }
        Op::RenameMailbox { account, from, to } => {
            mailboxes::rename(tx, *account, from, to, changes).map(|_| Output::None)
        }
        Op::Subscribe { account, name, on } => {
            mailboxes::subscribe(tx, *account, name, *on).map(|_| Output::None)
        }
        Op::Enqueue {
            message,
            mail_from,
            rcpts,
            now,
        } => queue::enqueue(tx, message, mail_from, rcpts, *now, changes).map(Output::Id),
        Op::QueueUpdate(item) => queue::update(tx, item, changes).map(|_| Output::None),
        Op::QueueDelete(id) => queue::delete(tx, *id, changes).map(|_| Output::None),
        Op::PutDkimKeys { domain, keys } => {
            queue::put_dkim_keys(tx, domain, keys).map(|stored| Output::Id(u64::from(stored)))
        }
        Op::Pull {
            account,
            source,
            uidvalidity,
            messages: list,
        } => fetched::pull(tx, *account, source, *uidvalidity, list, quota, changes)
            .map(Output::Delivered),
        Op::SetMeta(key, v) => {
            migrate::set_meta(tx, key, *v)?;
            Ok(Output::None)
        }
        Op::Import {
            account,
            source,
            from,
            to,
            messages: list,
            create,
        } => imports::apply(
            tx, *account, source, *from, *to, list, create, quota, changes,
        )
        .map(Output::Id),
        Op::Greylist {
            update,
            limits,
            now,
        } => greylist::apply(tx, update, *limits, *now).map(|_| Output::None),
        Op::MarkRunning => migrate::mark_running(tx).map(Output::Unclean),
        Op::MarkStopped => migrate::set_meta(tx, "running", 0).map(|_| Output::None),
        Op::SpamTrain { items, now } => spam::train(tx, items, *now).map(|_| Output::None),
        Op::SpamKept { account, blobs } => {
            spam::record(tx, *account, blobs, spam::Class::Ham).map(|_| Output::None)
        }
        Op::SpamSent { account, keys, now } => {
            spam::sent(tx, *account, keys, *now).map(|_| Output::None)
        }
        Op::DeliverEach {
            items,
            internal_date,
            delivered,
        } => {
            let mut out = Vec::with_capacity(items.len());
            for (m, t) in items {
                out.extend(messages::deliver(
                    tx,
                    m,
                    std::slice::from_ref(t),
                    0,
                    &[],
                    *internal_date,
                    *delivered,
                    quota,
                    changes,
                )?);
            }
            Ok(Output::Delivered(out))
        }
    }
}

/// A consistent read-only view of the store.
pub struct Reader {
    tx: ReadTransaction,
}

impl Reader {
    /// The raw redb transaction, for the store's submodules.
    pub(crate) fn tx(&self) -> &ReadTransaction {
        &self.tx
    }

    /// A meta counter (0 when unset).
    pub fn meta(&self, key: &str) -> Result<u64> {
        let t = self.tx.open_table(schema::META)?;
        Ok(t.get(key)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Totals for `letterbox status`.
    pub fn stats(&self, file_bytes: u64) -> Result<Stats> {
        use redb::ReadableTableMetadata;
        let mut s = Stats {
            accounts: self.tx.open_table(schema::ACCOUNTS)?.len()?,
            messages: self.tx.open_table(schema::MESSAGES)?.len()?,
            blobs: self.tx.open_table(schema::BLOBS)?.len()?,
            unclean_starts: self.meta("unclean_starts")?,
            fault4_pending: self.meta("fault4_pending")? != 0,
            file_bytes,
            ..Stats::default()
        };
        s.blob_bytes = self.meta(blobs::BLOB_BYTES)?;
        let q = self.queue()?;
        s.queue = q.len() as u64;
        s.oldest_queued = q
            .iter()
            .filter(|i| i.rcpts.iter().any(|(_, st)| *st == RcptState::Pending))
            .map(|i| i.created)
            .min();
        for acct in self.accounts()? {
            if let Some(mb) = self.mailbox(acct.id, "INBOX")? {
                s.inbox_unseen += u64::from(mb.unseen);
            }
        }
        Ok(s)
    }

    /// Parsed envelope and structure of a blob.
    pub fn parsed(&self, blob: &[u8; 32]) -> Result<Option<ParsedMessage>> {
        blobs::parsed(self, blob)
    }

    /// Raw bytes of a blob.
    pub fn blob(&self, blob: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        blobs::get(self, blob)
    }
}

/// Current unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub use accounts::{normalize_address, split_address};
pub use mailboxes::normalize_name;

#[cfg(test)]
mod tests;
