//! IMAP (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2) with the extensions phones and desktop
//! clients use.
//!
//! - [`fragment`]: the framer: input split into commands with literals under size caps.
//! - [`command`]: the command tree, its parser and encoder.
//! - [`response`]: the response encoder (ENVELOPE, BODYSTRUCTURE included).
//! - [`session`]: the sans-I/O session: states and the command table, every command's
//!   replies, the selected-mailbox view and when store changes reach the client; its
//!   command handlers are in `ops/` (auth, mailbox, message, sort, view, context).
//! - [`fetch`] / [`search`]: pure FETCH rendering and SEARCH evaluation.
//! - [`sort`] / [`thread`]: pure SORT keys and ordering (base subject, sent date,
//!   i;unicode-casemap) and the THREAD algorithms (RFC 5256).
//! - [`backend`]: the store operations the session uses, as a trait.
//! - [`driver`]: the tokio side: listeners, literals, IDLE push, COMPRESS=DEFLATE (over
//!   `net::deflate`), timeouts, goodbye.

pub mod backend;
pub mod command;
pub mod driver;
pub mod fetch;
pub mod fragment;
pub mod response;
pub mod search;
pub mod session;
pub mod sort;
pub mod thread;
