//! Letterbox: a home mail server in one binary, over one redb database.
//!
//! # Layout
//! - [`config`]: the TOML configuration, parsed once into typed structs.
//! - [`store`]: the only module that touches redb: accounts, mailboxes, messages,
//!   blobs, the outbound queue, group commit and change events.
//! - [`mail`]: message parsing shared by the protocols (parse once, at delivery), DKIM
//!   signing and keys, delivery status notifications (RFC 3464).
//! - [`sasl`]: PLAIN and LOGIN exchanges shared by SMTP, IMAP and POP3.
//! - [`auth`]: password hashing and the failed-login limiter.
//! - [`budget`]: the daemon-wide cap on message bytes held in memory while they arrive.
//! - [`tls`]: rustls server configuration, the household CA and its renewal, reload.
//! - [`control`]: the admin requests behind the CLI, and the Unix socket that carries
//!   them to a running daemon.
//! - [`net`]: listeners, connection caps, TLS on accept and STARTTLS, and the pump that
//!   drives a sans-I/O protocol session over a socket.
//! - [`pop3`], [`smtp`], [`imap`]: each protocol's sans-I/O session and codec, and its
//!   tokio driver.
//! - [`queue`]: the outbound queue runner: schedule, MX/relay delivery over SMTP,
//!   DKIM signing at send time, delivery reports.
//! - [`app`]: `serve`: wires the store, TLS, control socket and shutdown.
//! - [`step`]: the step type every sans-I/O protocol session returns.
//! - [`smtp`], [`pop3`]: sans-I/O protocol sessions; [`imap`]: the IMAP codec.
//! - [`data`]: the household's data in bulk: `import` and `export` (mbox with Google
//!   Takeout labels, Maildir; resumable batches through the daemon's control socket or
//!   straight into the store), and backup, verify, restore and scheduled backups.
//! - [`hw`]: LED patterns, button, watchdog, board files, simulated and Linux boards.
//! - [`web`]: the HTTP and HTTPS listeners (axum on hyper): the public page, client
//!   autoconfiguration (Thunderbird, Outlook Autodiscover, Apple profiles), the redirect.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod budget;
pub mod config;
pub mod control;
pub mod data;
pub mod fetch;
pub mod hw;
pub mod imap;
pub mod mail;
pub mod mem;
pub mod net;
pub mod pop3;
pub mod queue;
pub mod sasl;
pub mod smtp;
pub mod spam;
pub mod step;
pub mod store;
pub mod tls;
pub mod web;
