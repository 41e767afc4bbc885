//! POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), SASL AUTH (RFC 5034) and the
//! SYS/AUTH response codes (RFC 3206), for fetch-and-delete and leave-on-server clients.
//!
//! - [`codec`]: command parsing, `+OK`/`-ERR` replies, multi-line encoding of messages.
//! - [`session`]: the sans-I/O state machine (AUTHORIZATION → TRANSACTION → UPDATE). It asks
//!   the driver for store work through [`Event`]s and never does I/O itself.
//! - [`driver`]: the tokio side: listeners 110/995, login, maildrop lock, store reads and
//!   the QUIT commit.
//!
//! The maildrop is the INBOX as it was at login; DELE only marks, and QUIT applies every mark
//! in one durable commit before its `+OK` (SPEC §5). A dropped connection applies nothing.

pub mod codec;
pub mod driver;
pub mod session;

pub use codec::{Command, ParseError, Reply, RespCode, Verb};
pub use session::{Decision, Event, MaildropEntry, Phase, Session, SessionConfig, Step, allowed};
