//! SMTP: the protocol core shared by the MX listener (port 25) and the submission
//! listeners (587 STARTTLS, 465 implicit TLS), SPEC §2 and §5.
//!
//! - [`codes`]: reply codes and enhanced status codes, each with its RFC.
//! - [`codec`]: command lines to [`Command`]s (an adapter over smtp-proto), [`Reply`]
//!   to bytes.
//! - [`session`]: the sans-I/O state machine: bytes in, [`Step`]s out; policy
//!   questions go to the driver as [`Event`]s and come back as [`Decision`]s.
//! - [`driver`]: the tokio side and the listeners' policy: recipients, sender ownership on
//!   submission, sender verification on the MX listener ([`crate::mail::verify`]: SPF,
//!   DKIM, ARC, DMARC and `Authentication-Results`), `Received`, delivery into the store
//!   (INBOX, or Junk for DMARC quarantine) and the outbound queue.
//!
//! `codec` and `session` import neither tokio nor redb (STYLE layout rule).

pub mod codec;
pub mod codes;
pub mod driver;
pub mod session;

pub use codec::{Body, Command, MailFrom, Reply, Verb};
pub use session::{Decision, Envelope, Event, Mode, Session, SessionConfig, Step};
