//! Mail in bulk, in and out of the store: `letterbox import` (mbox, Google Takeout,
//! Maildir) and `letterbox export` (mboxrd, Maildir). The formats are sans-I/O
//! ([`mbox`], [`maildir`]'s pure functions); [`import`] and [`export`] are the drivers
//! that read files and talk to the store or the daemon.

pub mod export;
pub mod import;
pub mod maildir;
pub mod mbox;
