//! Typed change events, published after each commit (never before: a listener that
//! sees a change can read it). IMAP IDLE, POP3 and the mail LED subscribe.

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message was added (delivery, APPEND, COPY, MOVE).
    MessageAdded {
        /// Owner.
        account: u64,
        /// Mailbox id.
        mailbox: u64,
        /// Its UID.
        uid: u32,
        /// Its modseq.
        modseq: u64,
        /// True when it came from SMTP (the amber LED flickers).
        delivered: bool,
    },
    /// Flags of these UIDs changed.
    FlagsChanged {
        /// Owner.
        account: u64,
        /// Mailbox id.
        mailbox: u64,
        /// Changed UIDs.
        uids: Vec<u32>,
        /// The new modseq.
        modseq: u64,
    },
    /// These UIDs were expunged.
    Expunged {
        /// Owner.
        account: u64,
        /// Mailbox id.
        mailbox: u64,
        /// Removed UIDs, ascending.
        uids: Vec<u32>,
        /// The expunge modseq.
        modseq: u64,
    },
    /// A mailbox was created, deleted or renamed.
    MailboxesChanged {
        /// Owner.
        account: u64,
    },
    /// Accounts or aliases changed.
    AccountsChanged,
    /// The outbound queue changed.
    QueueChanged,
}
