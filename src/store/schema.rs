//! Every redb table of the store and the schema version, in one place.
//! Keys are chosen so that one range scan answers the common reads
//! (all messages of a mailbox, all mailboxes of an account).

use redb::TableDefinition;

/// The schema this build writes. A database with a higher number is refused
/// untouched; a lower one is migrated by `migrate.rs`.
///
/// History: 1 = first schema; 2 = `DKIM_KEYS`, and `QueueItem.delay_notified`.
pub const SCHEMA_VERSION: u64 = 2;

/// Counters and flags: `schema_version`, `next_account`, `next_mailbox`,
/// `next_queue`, `last_uidvalidity`, `running`, `unclean_starts`, `fault4_pending`.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Account id → postcard `Account`.
pub(crate) const ACCOUNTS: TableDefinition<u64, &[u8]> = TableDefinition::new("accounts");
/// Normalised address (`local@domain`, or `@domain` for a catch-all) → postcard `AddressEntry`.
pub(crate) const ADDRESSES: TableDefinition<&str, &[u8]> = TableDefinition::new("addresses");
/// Mailbox id → postcard `Mailbox`.
pub(crate) const MAILBOXES: TableDefinition<u64, &[u8]> = TableDefinition::new("mailboxes");
/// (account id, mailbox name) → mailbox id.
pub(crate) const MAILBOX_NAMES: TableDefinition<(u64, &str), u64> =
    TableDefinition::new("mailbox_names");
/// (account id, mailbox name) → () for subscribed names (RFC 9051 §6.3.7 allows
/// subscribing to names that do not exist).
pub(crate) const SUBSCRIPTIONS: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("subscriptions");
/// (mailbox id, uid) → postcard `MessageRow`.
pub(crate) const MESSAGES: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("messages");
/// (mailbox id, uid) → modseq of the expunge (RFC 7162 §3.2.5 VANISHED).
pub(crate) const EXPUNGED: TableDefinition<(u64, u32), u64> = TableDefinition::new("expunged");
/// SHA-256 of the message bytes → the bytes.
pub(crate) const BLOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// SHA-256 → number of message rows and queue items that reference the blob.
pub(crate) const BLOB_REFS: TableDefinition<[u8; 32], u64> = TableDefinition::new("blob_refs");
/// SHA-256 → postcard `ParsedMessage` (envelope and MIME structure).
pub(crate) const PARSED: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("parsed");
/// Queue id → postcard `QueueItem`.
pub(crate) const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
/// Domain (lower case) → postcard `Vec<DkimKey>`: the domain's signing keys (since version 2).
pub(crate) const DKIM_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("dkim_keys");
/// Account id → postcard `QuotaSetting` (quota.rs): limits set with `letterbox user quota`.
/// Added without a version bump; older builds never open it, and a store they wrote has
/// no such table until the first quota is set.
pub(crate) const QUOTAS: TableDefinition<u64, &[u8]> = TableDefinition::new("quotas");
/// (account id, remote source `user@host:port/folder`) → postcard `PullState` (fetched.rs):
/// the remote UIDVALIDITY and the highest remote UID pulled by `[[fetch]]`. Added without a
/// version bump, as `QUOTAS`.
pub(crate) const PULL_STATE: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("pull_state");
/// (account id, remote source, SHA-256 of the remote's bytes) → (): the messages pulled from
/// each source, so a UIDVALIDITY change does not deliver them again (fetched.rs).
pub(crate) const PULL_HASHES: TableDefinition<(u64, &str, [u8; 32]), ()> =
    TableDefinition::new("pull_hashes");
/// (account id, import source key) → how far `letterbox import` got in that source (a
/// byte offset of an mbox, a message count of a Maildir), written in the same commit as
/// the messages (imports.rs). Added without a version bump, like `QUOTAS`.
pub(crate) const IMPORTS: TableDefinition<(u64, &str), u64> = TableDefinition::new("imports");
/// Greylisting (greylist.rs): `spam::triple_key` → unix time the triple was first deferred.
/// Added without a version bump, like `QUOTAS`; this and the next four tables.
pub(crate) const GREY_TRIPLES: TableDefinition<&str, i64> = TableDefinition::new("grey_triples");
/// (first deferred, triple key) → (): `GREY_TRIPLES` oldest first, for expiry and the cap.
pub(crate) const GREY_TRIPLE_AGE: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("grey_triple_age");
/// `spam::network_of` (`198.51.100.0/24`, `2001:db8::/64`) → unix time it last passed.
pub(crate) const GREY_NETS: TableDefinition<&str, i64> = TableDefinition::new("grey_nets");
/// (last passed, network) → (): `GREY_NETS` oldest first.
pub(crate) const GREY_NET_AGE: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("grey_net_age");
/// (account id, recipient domain) → unix time the account last sent mail there through
/// submission: its correspondents skip greylisting when DMARC passes (greylist.rs).
pub(crate) const SENT_TO: TableDefinition<(u64, &str), i64> = TableDefinition::new("sent_to");
/// (account id, token hash) → (spam messages, ham messages, day last seen) of the learning
/// junk filter (spam.rs), at most `spam::MAX_TOKENS` per account. Added without a version
/// bump, like `QUOTAS`.
pub(crate) const SPAM_TOKENS: TableDefinition<(u64, u64), (u32, u32, u32)> =
    TableDefinition::new("spam_tokens");
/// Account id → postcard `SpamState` (spam.rs): messages trained, tokens, queue counters.
pub(crate) const SPAM_STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("spam_state");
/// (account id, blob) → 1 (trained as spam) or 2 (as ham) (spam.rs).
pub(crate) const SPAM_TRAINED: TableDefinition<(u64, [u8; 32]), u8> =
    TableDefinition::new("spam_trained");
/// (account id, seq) → (blob, class): training events waiting for the background task,
/// written in the commit of the MOVE, COPY or STORE that caused them (spam.rs).
pub(crate) const SPAM_QUEUE: TableDefinition<(u64, u64), ([u8; 32], u8)> =
    TableDefinition::new("spam_queue");
