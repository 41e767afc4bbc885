//! SMTP: the protocol core shared by the MX listener (port 25) and the submission
//! listeners (587 STARTTLS, 465 implicit TLS), SPEC §2 and §5.
//!
//! - [`codes`]: reply codes and enhanced status codes, each with its RFC.
//! - [`codec`]: command lines to [`Command`]s (an adapter over smtp-proto), [`Reply`]
//!   to bytes.
//! - [`session`]: the sans-I/O state machine: bytes in, [`Step`]s out; policy
//!   questions go to the driver as [`Event`]s and come back as [`Decision`]s.
//!
//! Neither file imports tokio or redb (STYLE layout rule): the tokio driver, the
//! inbound/submission policy and the store live beside this module.

pub mod codec;
pub mod codes;
pub mod session;

pub use codec::{Body, Command, MailFrom, Reply, Verb};
pub use session::{Decision, Envelope, Event, Mode, Session, SessionConfig, Step};
