//! The household's data in bulk: `letterbox import` (mbox, Google Takeout, Maildir) and
//! `letterbox export` (mboxrd, Maildir); backup, verify, restore and scheduled backups
//! ([`backup`]). The formats are sans-I/O ([`mbox`], [`maildir`]'s pure functions,
//! [`backup`]'s format); [`import`], [`export`] and [`backup`] hold the drivers that read
//! files and talk to the store or the daemon.

pub mod backup;
pub mod export;
pub mod import;
pub mod maildir;
pub mod mbox;
