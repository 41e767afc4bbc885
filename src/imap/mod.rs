//! IMAP (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2): the codec so far. The framer splits
//! input into commands with literals under size caps, the command parser and encoder,
//! and the response encoder. The session and driver come with the IMAP issue.

pub mod command;
pub mod fragment;
pub mod response;
