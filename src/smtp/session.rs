//! The SMTP server session as a sans-I/O state machine: bytes in ([`Session::feed`]),
//! [`Step`]s out ([`Session::next`]). It owns the protocol: line framing with a length
//! cap, the state table, PIPELINING order, DATA dot-unstuffing and its end marker,
//! BDAT chunks, the SASL exchange, the size and recipient caps and the error counters.
//! It owns no policy: every question that needs the store, DNS or the password
//! database is an [`Event`] the driver answers with a [`Decision`].
//!
//! # Driving it
//! ```text
//! write(session.greeting())
//! loop {
//!     match session.next() {
//!         Step::Write(bytes)   => write bytes,
//!         Step::Event(event)   => decide (store, DNS, auth), then session.answer(decision),
//!         Step::NeedMoreInput  => read some bytes, session.feed(&bytes),
//!         Step::Wait           => unreachable if every Event is answered before next(),
//!         Step::StartTls       => upgrade the stream, then session.tls_established(),
//!         Step::Close          => close the connection,
//!     }
//! }
//! ```
//! The session holds at most the bytes fed and not yet consumed, one command line
//! (`max_line`) and one message (`max_message_size`), so a driver that feeds only after
//! `NeedMoreInput` (bounded reads) keeps memory bounded whatever the client sends.
//!
//! # Choices (where the RFCs leave one)
//! - Command lines may be up to `max_line` octets including CRLF (default 1000: RFC 5321
//!   §4.5.3.1.4 says 512, "SMTP extensions may be used to increase this limit", and
//!   SIZE/BODY/SMTPUTF8/AUTH= parameters and an AUTH PLAIN initial response need more).
//!   A longer line is discarded as it streams in and answered `500 5.5.2` at its LF.
//!   The same cap applies to SASL response lines (`500 5.5.6`, RFC 4954 §4).
//!   Command lines may end in a bare LF (as Postfix and mox accept).
//! - DATA: the only end marker is `CRLF . CRLF` (RFC 5321 §4.1.1.4). Bare LF and bare
//!   CR are *kept as data*: `\n.\n`, `\r.\r`, `\n.\r\n`, `\r\n.\n`, `\r.\r\n` never end
//!   the message (SMTP smuggling, CVE-2023-51766 family). A line is a line only after
//!   CRLF, so dot-unstuffing applies only after CRLF. [`Event::Message`] reports
//!   `bare_line_endings` so the driver can refuse such mail (Postfix
//!   `smtpd_forbid_bare_newline`) or normalise it before relaying it.
//! - DATA text lines longer than 1000 octets (RFC 5321 §4.5.3.1.6) are accepted: memory
//!   is bounded by `max_message_size`, not by line length, and real mail has long lines.
//! - SIZE is enforced on the bytes received, whatever was declared: past the limit the
//!   message is no longer stored (its buffer is freed), the rest of DATA or of the BDAT
//!   chunk is consumed and the answer is `552 5.3.4` (RFC 1870 §6.3). A BDAT transaction
//!   that overflows is aborted at the end of that chunk.
//! - A BDAT command refused for its state still has its chunk consumed and discarded
//!   before the reply (RFC 3030 §2), so chunk bytes are never read as commands.
//! - VRFY is answered `252` by the session (no address probing); EXPN is `502`.
//! - BINARYMIME (RFC 3030 §3) is advertised beside CHUNKING: BDAT data is taken
//!   verbatim, so the session supports it for free; DATA after `BODY=BINARYMIME` is 503.
//! - MAIL/RCPT parameters of extensions we do not advertise (DSN and others) are refused
//!   with 555 (RFC 5321 §4.1.1.11); `AUTH=` on MAIL is accepted and ignored.
//! - Protocol errors (500-504, 530, 538, 555, bad SASL data, over-long lines) count
//!   towards `max_errors`; reaching it sends `421 4.7.0` and closes (Postfix
//!   `smtpd_hard_error_limit`). Driver rejections do not count here.
//! - An AUTH rejected by the driver counts towards `max_auth_failures`; reaching it
//!   sends `421 4.7.0` after the rejection and closes. Slowing failed logins down per
//!   IP and account is the driver's (it may delay its answer).
//! - A [`Decision::Reject`] with code 421 closes the session after the reply.

#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use super::codec::{self, Body, Command, MailFrom, Reply, Verb};
use super::codes::*;
use crate::budget::Hold;
use crate::sasl::{Credentials, Exchange, Mechanism, Next, SaslError};
use std::collections::VecDeque;

/// Default cap on a command line, CRLF included (see the module doc).
pub const DEFAULT_MAX_LINE: usize = 1000;
/// Default cap on protocol errors per session before `421` (Postfix's hard limit).
pub const DEFAULT_MAX_ERRORS: u32 = 20;

/// Which listener the session serves (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: inbound mail from the internet; no AUTH offered.
    Mx,
    /// Port 587: submission with STARTTLS (RFC 6409); AUTH required before MAIL.
    Submission,
    /// Port 465: submission over implicit TLS (RFC 8314 §3.3); AUTH required.
    Submissions,
}

impl Mode {
    /// True for the two submission listeners.
    pub fn is_submission(self) -> bool {
        matches!(self, Mode::Submission | Mode::Submissions)
    }
}

/// Per-listener settings, fixed for the life of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our host name, used in the greeting, EHLO and 221/421 replies.
    pub hostname: String,
    /// Which listener this is.
    pub mode: Mode,
    /// Largest message accepted, in octets (advertised as `SIZE`, RFC 1870).
    pub max_message_size: u64,
    /// Largest number of recipients per transaction (RFC 5321 §4.5.3.1.8 wants ≥ 100).
    pub max_recipients: usize,
    /// Largest command or SASL line, CRLF included.
    pub max_line: usize,
    /// A certificate is loaded, so STARTTLS can be offered.
    pub tls_available: bool,
    /// The peer is in `[auth] plaintext_networks`: AUTH is allowed without TLS.
    pub plaintext_auth_allowed: bool,
    /// Rejected AUTH attempts before `421` and close.
    pub max_auth_failures: u32,
    /// Protocol errors before `421` and close.
    pub max_errors: u32,
    /// The daemon-wide budget for message data in memory ([`crate::budget`]); `None`:
    /// no bound beyond `max_message_size`.
    pub budget: Option<std::sync::Arc<crate::budget::Budget>>,
    /// Refuse a client that pipelines without PIPELINING having been advertised (after
    /// HELO, or on the HELO line itself; RFC 2920 §3.1): [`Event::Pipelined`], then
    /// `554 5.7.1` and close. Port 25 for checked clients only (`crate::spam`).
    pub refuse_unadvertised_pipelining: bool,
}

impl SessionConfig {
    /// Defaults: 50 MiB messages (SPEC §3), 100 recipients, 1000-octet lines, no TLS,
    /// no plaintext AUTH, 3 AUTH failures, 20 errors.
    pub fn new(hostname: impl Into<String>, mode: Mode) -> SessionConfig {
        SessionConfig {
            hostname: hostname.into(),
            mode,
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_line: DEFAULT_MAX_LINE,
            tls_available: false,
            plaintext_auth_allowed: false,
            max_auth_failures: 3,
            max_errors: DEFAULT_MAX_ERRORS,
            budget: None,
            refuse_unadvertised_pipelining: false,
        }
    }
}

/// Everything the driver needs to deliver a message and write its `Received` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The EHLO/HELO argument.
    pub helo: String,
    /// EHLO (true) or HELO (false).
    pub esmtp: bool,
    /// The reverse-path; `""` for the null sender.
    pub mail_from: String,
    /// The accepted forward-paths, in order.
    pub rcpt_to: Vec<String>,
    /// The account authenticated with AUTH, if any.
    pub auth: Option<String>,
    /// The transaction ran inside TLS.
    pub tls: bool,
    /// The declared body type.
    pub body: Body,
    /// The SMTPUTF8 parameter was given (RFC 6531).
    pub smtputf8: bool,
    /// The SIZE the client declared, if any.
    pub declared_size: Option<u64>,
    /// The data came with BDAT (RFC 3030) rather than DATA.
    pub chunked: bool,
}

impl Envelope {
    /// The `with` protocol for the `Received` header: RFC 3848 (`SMTP`, `ESMTP`,
    /// `ESMTPA`, `ESMTPS`, `ESMTPSA`) and RFC 6531 §3.7.3 (`UTF8SMTP`…).
    pub fn protocol(&self) -> &'static str {
        match (self.smtputf8, self.esmtp, self.tls, self.auth.is_some()) {
            (true, _, false, false) => "UTF8SMTP",
            (true, _, false, true) => "UTF8SMTPA",
            (true, _, true, false) => "UTF8SMTPS",
            (true, _, true, true) => "UTF8SMTPSA",
            (false, false, _, _) => "SMTP",
            (false, true, false, false) => "ESMTP",
            (false, true, false, true) => "ESMTPA",
            (false, true, true, false) => "ESMTPS",
            (false, true, true, true) => "ESMTPSA",
        }
    }
}

/// A question for the driver. Answer each with [`Session::answer`] before calling
/// [`Session::next`] again (it returns [`Step::Wait`] until then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// EHLO/HELO (the transaction, if any, is already reset, RFC 5321 §4.1.4).
    /// `Accept` sends our EHLO/HELO reply.
    Helo {
        /// The client's name for itself.
        name: String,
        /// EHLO (true) or HELO (false).
        extended: bool,
    },
    /// AUTH finished its exchange. Answer `AuthOk` or `Reject` (535 5.7.8, or 454 4.7.0
    /// on a temporary failure).
    Auth {
        /// PLAIN or LOGIN.
        mechanism: Mechanism,
        /// What the client sent; the password is a `Secret`.
        credentials: Credentials,
    },
    /// MAIL FROM passed the session's checks (syntax, AUTH on submission, SIZE).
    MailFrom {
        /// The reverse-path; `""` for the null sender. Not lowercased.
        address: String,
        /// The declared SIZE.
        size: Option<u64>,
        /// The declared BODY.
        body: Body,
        /// SMTPUTF8 was given.
        smtputf8: bool,
    },
    /// RCPT TO passed the session's checks (syntax, recipient cap).
    RcptTo {
        /// The forward-path, not lowercased (`Postmaster` may come without a domain).
        address: String,
        /// The SIZE the client declared in MAIL FROM (RFC 1870), for the quota check.
        size: Option<u64>,
    },
    /// The client sent more after a command before its reply, without PIPELINING having
    /// been advertised (only with `refuse_unadvertised_pipelining`). Whatever the answer,
    /// the session then refuses with `554 5.7.1` and closes.
    Pipelined {
        /// The command line's verb, for the log.
        verb: String,
    },
    /// A complete message within the size limit. `Accept` only once it is durable.
    Message {
        /// Who sent it to whom, and how.
        envelope: Envelope,
        /// The message: DATA unstuffed (CRLF line ends as received) or BDAT verbatim.
        data: Vec<u8>,
        /// DATA held a bare LF or a bare CR (always false for BDAT, which is binary).
        bare_line_endings: bool,
    },
}

/// The driver's answer to the pending [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; the session sends its success reply.
    Accept,
    /// Refuse with this 4xx/5xx reply (a reply below 400 is replaced by 451 4.3.0).
    /// A 421 reply closes the session.
    Reject(Reply),
    /// The AUTH credentials are good: this is the account (for [`Event::Auth`]; for any
    /// other event it means `Accept`).
    AuthOk {
        /// The authenticated account, carried into later envelopes.
        account: String,
    },
}

/// What the driver must do next (the shared [`crate::step::Step`] shape).
pub type Step = crate::step::Step<Event>;

/// The command phases of the state table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No EHLO/HELO yet.
    Connected = 0,
    /// Greeted, no transaction.
    Ready = 1,
    /// MAIL accepted, no recipient yet.
    Mail = 2,
    /// At least one RCPT accepted.
    Rcpt = 3,
    /// A non-LAST BDAT chunk was received.
    Bdat = 4,
}

const Y: bool = true;
const N: bool = false;

/// Which commands are valid in which phase; checked once, before any argument is
/// parsed (STYLE habit 3). Anything else is `503 5.5.1` (or `554 5.5.1` for DATA/BDAT
/// without a valid recipient, RFC 5321 §3.3).
/// - EHLO/HELO may come at any time and reset the transaction (RFC 5321 §4.1.4).
/// - MAIL only outside a transaction (§4.1.1.2, §3.3); RCPT after MAIL (§4.1.1.3);
///   DATA after a RCPT (§4.1.1.4); BDAT after a RCPT or another BDAT and DATA never
///   after BDAT (RFC 3030 §2, §4).
/// - STARTTLS and AUTH only after EHLO and outside a transaction (RFC 3207 §4,
///   RFC 4954 §4).
/// - RSET, NOOP, QUIT, HELP, VRFY, EXPN anywhere (§4.1.4).
#[rustfmt::skip]
const VALID: [(Verb, [bool; 5]); 14] = [
    //                 Connected Ready Mail Rcpt Bdat
    (Verb::Ehlo,     [Y,        Y,    Y,   Y,   Y]),
    (Verb::Helo,     [Y,        Y,    Y,   Y,   Y]),
    (Verb::StartTls, [N,        Y,    N,   N,   N]),
    (Verb::Auth,     [N,        Y,    N,   N,   N]),
    (Verb::Mail,     [N,        Y,    N,   N,   N]),
    (Verb::Rcpt,     [N,        N,    Y,   Y,   N]),
    (Verb::Data,     [N,        N,    N,   Y,   N]),
    (Verb::Bdat,     [N,        N,    N,   Y,   Y]),
    (Verb::Rset,     [Y,        Y,    Y,   Y,   Y]),
    (Verb::Noop,     [Y,        Y,    Y,   Y,   Y]),
    (Verb::Quit,     [Y,        Y,    Y,   Y,   Y]),
    (Verb::Help,     [Y,        Y,    Y,   Y,   Y]),
    (Verb::Vrfy,     [Y,        Y,    Y,   Y,   Y]),
    (Verb::Expn,     [Y,        Y,    Y,   Y,   Y]),
];

fn allowed(phase: Phase, verb: Verb) -> bool {
    VALID
        .iter()
        .find(|(v, _)| *v == verb)
        .and_then(|(_, row)| row.get(phase as usize))
        .copied()
        .unwrap_or(false)
}

/// The reply for a command the table refuses.
fn bad_sequence(phase: Phase, verb: Verb) -> Reply {
    let text = match (phase, verb) {
        (Phase::Connected, _) => "Send EHLO/HELO first",
        (Phase::Ready, _) => "Send MAIL first",
        (Phase::Mail, Verb::Data | Verb::Bdat) => {
            return Reply::new(
                C554_TRANSACTION_FAILED,
                SE_PROTO_INVALID_CMD,
                "No valid recipients",
            );
        }
        (_, Verb::Mail) => "Nested MAIL command",
        (_, Verb::StartTls | Verb::Auth) => "Not allowed during a mail transaction",
        (Phase::Mail, _) => "Send RCPT first",
        (Phase::Bdat, _) => "Only BDAT may follow BDAT",
        _ => "Bad sequence of commands",
    };
    Reply::new(C503_BAD_CMD_SEQ, SE_PROTO_INVALID_CMD, text)
}

/// A mail transaction in progress (RFC 5321 §3.3).
#[derive(Debug)]
struct Transaction {
    mail: MailFrom,
    rcpts: Vec<String>,
    /// The message so far (unstuffed DATA, or BDAT chunks).
    data: Vec<u8>,
    /// The message outgrew `max_message_size`; `data` was dropped.
    overflow: bool,
    /// The daemon's message memory budget had no room for `data`; it was dropped.
    starved: bool,
    /// What `data`'s buffer holds of that budget.
    hold: Hold,
    /// BDAT was used.
    chunked: bool,
}

impl Transaction {
    fn new(mail: MailFrom, budget: Option<std::sync::Arc<crate::budget::Budget>>) -> Transaction {
        Transaction {
            mail,
            rcpts: Vec::new(),
            data: Vec::new(),
            overflow: false,
            starved: false,
            hold: Hold::new(budget),
            chunked: false,
        }
    }

    /// Appends message bytes, or stops storing once the total would exceed `max` or the
    /// buffer cannot grow within the budget. The buffer grows by doubling (at most to
    /// `max`), and its whole capacity is what is held.
    fn push(&mut self, bytes: &[u8], max: u64) {
        if self.overflow || self.starved || bytes.is_empty() {
            return;
        }
        let total = (self.data.len() as u64).saturating_add(bytes.len() as u64);
        if total > max {
            self.overflow = true;
            self.data = Vec::new();
            self.hold.set(0);
            return;
        }
        let capacity = self.data.capacity() as u64;
        if total > capacity {
            let want = total.max(capacity.saturating_mul(2)).min(max).max(total);
            if !self.hold.set(want) {
                self.starved = true;
                self.data = Vec::new();
                self.hold.set(0);
                return;
            }
            let extra = usize::try_from(want).unwrap_or(usize::MAX) - self.data.len();
            self.data.reserve_exact(extra);
        }
        self.data.extend_from_slice(bytes);
    }
}

/// Where the DATA reader is relative to lines (RFC 5321 §4.5.2). A line starts only
/// after CRLF, so bare LF / bare CR never start one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinePos {
    /// At the start of a line (after CRLF, or the first byte after 354).
    LineStart,
    /// Inside a line.
    Text,
    /// Inside a line, just after a CR.
    Cr,
    /// A line started with `.`, which was dropped (unstuffing).
    Dot,
    /// A line started with `.` then CR: LF now ends the data.
    DotCr,
}

/// DATA receiver: dot-unstuffing and the `CRLF.CRLF` end marker, byte-exact under any
/// split of the input.
#[derive(Debug)]
struct DataReader {
    at: LinePos,
    bare: bool,
}

impl DataReader {
    fn new() -> DataReader {
        DataReader {
            at: LinePos::LineStart,
            bare: false,
        }
    }

    /// Consumes input into `tx`; returns the bytes consumed and whether the end marker
    /// was seen (its bytes are consumed, not stored).
    fn read(&mut self, input: &[u8], tx: &mut Transaction, max: u64) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.at == LinePos::Text {
                // Fast path: copy up to the next CR or LF.
                let rest = input.get(i..).unwrap_or_default();
                match memchr::memchr2(b'\r', b'\n', rest) {
                    None => {
                        tx.push(rest, max);
                        return (input.len(), false);
                    }
                    Some(j) => {
                        tx.push(rest.get(..j).unwrap_or_default(), max);
                        i += j;
                    }
                }
            }
            let Some(&b) = input.get(i) else { break };
            i += 1;
            match self.at {
                LinePos::LineStart if b == b'.' => self.at = LinePos::Dot,
                LinePos::Dot if b == b'\r' => self.at = LinePos::DotCr,
                LinePos::DotCr if b == b'\n' => return (i, true),
                LinePos::DotCr => {
                    // ".\r" then not LF: the dot was stuffing, the CR is data (bare).
                    tx.push(b"\r", max);
                    self.at = LinePos::Cr;
                    self.byte(b, tx, max);
                }
                _ => self.byte(b, tx, max),
            }
        }
        (i, false)
    }

    /// One ordinary data byte in states LineStart/Text/Cr/Dot.
    fn byte(&mut self, b: u8, tx: &mut Transaction, max: u64) {
        tx.push(&[b], max);
        self.at = match (self.at, b) {
            (LinePos::Cr, b'\n') => LinePos::LineStart,
            (LinePos::Cr, b'\r') => {
                self.bare = true;
                LinePos::Cr
            }
            (LinePos::Cr, _) => {
                self.bare = true;
                LinePos::Text
            }
            (_, b'\r') => LinePos::Cr,
            (_, b'\n') => {
                self.bare = true;
                LinePos::Text
            }
            _ => LinePos::Text,
        };
    }
}

/// A framed input line.
enum Line {
    /// A complete line, LF included.
    Complete(Vec<u8>),
    /// The line outgrew the cap; its bytes were discarded up to and including its LF.
    TooLong,
}

/// Frames lines with a length cap, discarding the excess of an over-long line as it
/// arrives (memory stays bounded by the cap; STYLE habit 5).
#[derive(Debug, Default)]
struct LineReader {
    buf: Vec<u8>,
    too_long: bool,
}

impl LineReader {
    fn read(&mut self, input: &[u8], max: usize) -> (usize, Option<Line>) {
        match memchr::memchr(b'\n', input) {
            Some(i) => {
                let part = input.get(..=i).unwrap_or_default();
                let line = if self.too_long || self.buf.len().saturating_add(part.len()) > max {
                    self.buf.clear();
                    Line::TooLong
                } else {
                    self.buf.extend_from_slice(part);
                    Line::Complete(std::mem::take(&mut self.buf))
                };
                self.too_long = false;
                (i + 1, Some(line))
            }
            None => {
                if !self.too_long {
                    if self.buf.len().saturating_add(input.len()) > max {
                        self.too_long = true;
                        self.buf = Vec::new();
                    } else {
                        self.buf.extend_from_slice(input);
                    }
                }
                (input.len(), None)
            }
        }
    }
}

/// What an emitted [`Event`] was about, with what is needed to resume.
#[derive(Debug)]
enum Pending {
    Helo { name: String, extended: bool },
    Mail(MailFrom),
    Rcpt(Transaction, String),
    Auth,
    Message,
    Pipelined,
}

/// The session state; each variant carries its data (STYLE habit 2).
#[derive(Debug)]
enum State {
    /// Before EHLO/HELO.
    Connected,
    /// Greeted, no transaction.
    Ready,
    /// MAIL accepted; RCPTs being collected.
    Mail(Transaction),
    /// Between BDAT chunks.
    Bdat(Transaction),
    /// Receiving DATA.
    Data(Transaction, DataReader),
    /// Receiving a BDAT chunk.
    Chunk {
        tx: Transaction,
        left: u64,
        last: bool,
    },
    /// Discarding the chunk of a refused BDAT, then sending `reply`.
    Discard {
        left: u64,
        reply: Reply,
        then: Box<State>,
    },
    /// Reading SASL response lines.
    Sasl(Mechanism, Exchange),
    /// An Event awaits the driver's answer.
    Pending(Pending),
    /// STARTTLS accepted; waiting for the handshake.
    Tls,
    /// Done.
    Closed,
}

/// One SMTP server session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    tls: bool,
    /// EHLO/HELO name and whether it was EHLO.
    helo: Option<(String, bool)>,
    account: Option<String>,
    auth_failures: u32,
    errors: u32,
    state: State,
    input: Vec<u8>,
    pos: usize,
    line: LineReader,
    steps: VecDeque<Step>,
    /// The budget held by a message handed to the driver, until its answer.
    delivering: Hold,
}

impl Session {
    /// A new session. `tls_active` is true on the implicit-TLS listener (465).
    pub fn new(cfg: SessionConfig, tls_active: bool) -> Session {
        Session {
            cfg,
            tls: tls_active,
            helo: None,
            account: None,
            auth_failures: 0,
            errors: 0,
            state: State::Connected,
            input: Vec::new(),
            pos: 0,
            line: LineReader::default(),
            steps: VecDeque::new(),
            delivering: Hold::default(),
        }
    }

    /// The greeting to send on connect (RFC 5321 §4.2, §3.1): `220 <host> ESMTP Letterbox`.
    pub fn greeting(&self) -> Vec<u8> {
        Reply::plain(
            C220_SERVICE_READY,
            format!("{} ESMTP Letterbox", self.cfg.hostname),
        )
        .to_bytes()
    }

    /// The goodbye for a server shutdown: `421 4.3.2` (RFC 5321 §3.8, RFC 3463 §3.4).
    pub fn shutdown_reply(&self) -> Vec<u8> {
        Reply::new(
            C421_SERVICE_UNAVAILABLE,
            SE_SYS_NOT_ACCEPTING,
            format!("{} Service shutting down", self.cfg.hostname),
        )
        .to_bytes()
    }

    /// The goodbye when the client was idle too long or the session lasted too long:
    /// `421 4.4.2` (RFC 5321 §4.5.3.2 lets the server close on timeout; §3.8 wants a 421
    /// before an unsolicited close; RFC 3463 §3.5 X.4.2 bad connection).
    pub fn timeout_reply(&self) -> Vec<u8> {
        Reply::new(
            C421_SERVICE_UNAVAILABLE,
            SE_NET_BAD_CONNECTION,
            format!("{} Timeout, closing connection", self.cfg.hostname),
        )
        .to_bytes()
    }

    /// The line for a connection refused before any session starts because the server
    /// has too many connections: `421 4.7.0` (RFC 5321 §3.8, RFC 3463 §3.8).
    pub fn busy_reply(hostname: &str) -> Vec<u8> {
        Reply::new(
            C421_SERVICE_UNAVAILABLE,
            SE_SEC_OTHER,
            format!("{hostname} Too many connections, try again later"),
        )
        .to_bytes()
    }

    /// Queues received bytes. Bytes arriving while STARTTLS is pending or after close
    /// are dropped.
    pub fn feed(&mut self, input: &[u8]) {
        if matches!(self.state, State::Tls | State::Closed) {
            return;
        }
        if self.pos > 0 {
            self.input.drain(..self.pos.min(self.input.len()));
            self.pos = 0;
        }
        self.input.extend_from_slice(input);
    }

    /// Drives the session: call until it returns [`Step::NeedMoreInput`],
    /// [`Step::Wait`] or [`Step::Close`].
    // Named after imap-next's `next()`; not an `Iterator`: it never runs dry, it asks.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Step {
        loop {
            if let Some(step) = self.steps.pop_front() {
                return step;
            }
            match self.state {
                State::Closed => return Step::Close,
                State::Pending(_) | State::Tls => return Step::Wait,
                _ => {}
            }
            if !self.advance() {
                return Step::NeedMoreInput;
            }
        }
    }

    /// The driver's answer to the pending [`Event`]; ignored when none is pending.
    pub fn answer(&mut self, decision: Decision) {
        self.delivering = Hold::default();
        let pending = match std::mem::replace(&mut self.state, State::Closed) {
            State::Pending(p) => p,
            other => {
                self.state = other;
                return;
            }
        };
        let reject = |r: Reply| {
            if r.is_error() {
                r
            } else {
                Reply::new(C451_LOCAL_ERROR, SE_SYS_OTHER, "Local error in processing")
            }
        };
        match (pending, decision) {
            (Pending::Helo { .. }, Decision::Reject(r)) => {
                let next = self.idle_state();
                self.finish(reject(r), next);
            }
            (Pending::Helo { name, extended }, _) => {
                let reply = if extended {
                    self.ehlo_reply()
                } else {
                    Reply::plain(C250_COMPLETED, self.cfg.hostname.clone())
                };
                self.helo = Some((name, extended));
                self.finish(reply, State::Ready);
            }
            (Pending::Mail(_), Decision::Reject(r)) => self.finish(reject(r), State::Ready),
            (Pending::Mail(mail), _) => self.finish(
                Reply::new(C250_COMPLETED, SE_ADDR_SENDER_OK, "Sender OK"),
                State::Mail(Transaction::new(mail, self.cfg.budget.clone())),
            ),
            (Pending::Rcpt(tx, _), Decision::Reject(r)) => self.finish(reject(r), State::Mail(tx)),
            (Pending::Rcpt(mut tx, address), _) => {
                tx.rcpts.push(address);
                self.finish(
                    Reply::new(C250_COMPLETED, SE_ADDR_DEST_VALID, "Recipient OK"),
                    State::Mail(tx),
                );
            }
            (Pending::Auth, Decision::AuthOk { account }) => {
                self.account = Some(account);
                self.finish(
                    Reply::new(C235_AUTH_SUCCESS, SE_SEC_OTHER, "Authentication successful"),
                    State::Ready,
                );
            }
            (Pending::Auth, decision) => {
                // `Accept` carries no account: treat it as a temporary failure.
                let r = match decision {
                    Decision::Reject(r) => reject(r),
                    _ => Reply::new(
                        C454_TEMP_AUTH_FAILURE,
                        SE_SEC_OTHER,
                        "Temporary authentication failure",
                    ),
                };
                self.auth_failures = self.auth_failures.saturating_add(1);
                self.finish(r, State::Ready);
                if self.auth_failures >= self.cfg.max_auth_failures
                    && !matches!(self.state, State::Closed)
                {
                    self.close(Reply::new(
                        C421_SERVICE_UNAVAILABLE,
                        SE_SEC_OTHER,
                        format!("{} Too many authentication failures", self.cfg.hostname),
                    ));
                }
            }
            (Pending::Pipelined, _) => self.close(Reply::new(
                C554_TRANSACTION_FAILED,
                SE_SEC_NOT_AUTHORIZED,
                "Pipelining without PIPELINING is not allowed (RFC 2920 section 3.1)",
            )),
            (Pending::Message, Decision::Reject(r)) => self.finish(reject(r), State::Ready),
            (Pending::Message, _) => self.finish(
                Reply::new(C250_COMPLETED, SE_OTHER, "Message accepted"),
                State::Ready,
            ),
        }
    }

    /// The driver finished the TLS handshake after [`Step::StartTls`]. Per RFC 3207
    /// §4.2 everything learnt before is forgotten: EHLO name, AUTH, buffered input; the
    /// client must send EHLO again. Ignored unless STARTTLS is pending.
    pub fn tls_established(&mut self) {
        if !matches!(self.state, State::Tls) {
            return;
        }
        self.tls = true;
        self.helo = None;
        self.account = None;
        self.input.clear();
        self.pos = 0;
        self.line = LineReader::default();
        self.state = State::Connected;
    }

    /// TLS is active (implicit, or after STARTTLS).
    pub fn tls_active(&self) -> bool {
        self.tls
    }

    /// The authenticated account, if any.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// True while message data (DATA or a BDAT chunk) is being received; drivers may
    /// use the longer data timeout then (RFC 5321 §4.5.3.2.5, .2.6).
    pub fn receiving_data(&self) -> bool {
        matches!(
            self.state,
            State::Data(..) | State::Chunk { .. } | State::Discard { .. }
        )
    }

    /// True while a command line has begun to arrive but is not complete (a partial
    /// line, or the rest of an over-long one being dropped; never inside DATA or BDAT
    /// data, which the idle timeout bounds per read and `session_timeout` in all): the
    /// driver's idle timeout then runs from the line's first byte.
    pub fn mid_command(&self) -> bool {
        let unread = self.input.len().saturating_sub(self.pos);
        let in_line = matches!(
            self.state,
            State::Connected | State::Ready | State::Mail(_) | State::Bdat(_) | State::Sasl(..)
        );
        in_line && (unread > 0 || !self.line.buf.is_empty() || self.line.too_long)
    }

    /// Bytes held by the session: unconsumed input, a partial line, the message so far.
    pub fn buffered_bytes(&self) -> usize {
        let tx = match &self.state {
            State::Mail(tx) | State::Bdat(tx) | State::Data(tx, _) => tx.data.len(),
            State::Chunk { tx, .. } => tx.data.len(),
            State::Pending(Pending::Rcpt(tx, _)) => tx.data.len(),
            _ => 0,
        };
        self.input.len().saturating_sub(self.pos) + self.line.buf.len() + tx
    }

    // ---- internals ----

    /// Processes one unit of input (a line, or a run of data). False when nothing
    /// could be done.
    fn advance(&mut self) -> bool {
        let input = self.input.get(self.pos..).unwrap_or_default();
        if input.is_empty() {
            self.input.clear();
            self.pos = 0;
            return false;
        }
        let max = self.cfg.max_message_size;
        match std::mem::replace(&mut self.state, State::Closed) {
            state @ (State::Connected | State::Ready | State::Mail(_) | State::Bdat(_)) => {
                self.state = state;
                let (n, line) = self.line.read(input, self.cfg.max_line);
                self.pos += n;
                match line {
                    Some(Line::Complete(line)) => self.command(&line),
                    Some(Line::TooLong) => self.error(Reply::new(
                        C500_UNRECOGNIZED,
                        SE_PROTO_SYNTAX,
                        "Line too long",
                    )),
                    None => {}
                }
            }
            State::Sasl(mech, ex) => {
                let (n, line) = self.line.read(input, self.cfg.max_line);
                self.pos += n;
                match line {
                    None => self.state = State::Sasl(mech, ex),
                    Some(Line::TooLong) => {
                        // RFC 4954 §4: "500 5.5.6 Authentication Exchange line is too long".
                        self.state = State::Ready;
                        self.error(Reply::new(
                            C500_UNRECOGNIZED,
                            SE_PROTO_AUTH_LINE_TOO_LONG,
                            "Authentication exchange line is too long",
                        ));
                    }
                    Some(Line::Complete(line)) => self.sasl_step(mech, ex, &line),
                }
            }
            State::Data(mut tx, mut reader) => {
                let (n, done) = reader.read(input, &mut tx, max);
                self.pos += n;
                if done {
                    self.message(tx, reader.bare);
                } else {
                    self.state = State::Data(tx, reader);
                }
            }
            State::Chunk { mut tx, left, last } => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                tx.push(input.get(..take).unwrap_or_default(), max);
                self.pos += take;
                let left = left.saturating_sub(take as u64);
                if left == 0 {
                    self.chunk_done(tx, last);
                } else {
                    self.state = State::Chunk { tx, left, last };
                }
            }
            State::Discard { left, reply, then } => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                self.pos += take;
                let left = left.saturating_sub(take as u64);
                if left == 0 {
                    self.state = *then;
                    self.error(reply);
                } else {
                    self.state = State::Discard { left, reply, then };
                }
            }
            state @ (State::Pending(_) | State::Tls | State::Closed) => {
                self.state = state;
                return false;
            }
        }
        if self.errors >= self.cfg.max_errors
            && !matches!(self.state, State::Closed | State::Pending(_) | State::Tls)
        {
            self.close(Reply::new(
                C421_SERVICE_UNAVAILABLE,
                SE_SEC_OTHER,
                format!("{} Too many errors", self.cfg.hostname),
            ));
        }
        true
    }

    /// The command phase of the current state.
    fn phase(&self) -> Phase {
        match &self.state {
            State::Ready => Phase::Ready,
            State::Mail(tx) if tx.rcpts.is_empty() => Phase::Mail,
            State::Mail(_) => Phase::Rcpt,
            State::Bdat(_) => Phase::Bdat,
            _ => Phase::Connected,
        }
    }

    /// Ready if greeted, else Connected: where RSET, EHLO and a finished transaction go.
    fn idle_state(&self) -> State {
        if self.helo.is_some() {
            State::Ready
        } else {
            State::Connected
        }
    }

    /// One command line.
    fn command(&mut self, line: &[u8]) {
        let verb = Verb::of(line);
        // RFC 2920 §3.1: without PIPELINING advertised (no EHLO yet, or HELO), the client
        // waits for each reply; bytes already here after a complete line were sent before
        // it. EHLO may be followed by commands only once PIPELINING is known, so bytes
        // after an EHLO line count too, but not after an EHLO that was answered.
        let unread = self.input.len() > self.pos;
        let advertised = matches!(self.helo, Some((_, true))) && verb != Verb::Helo;
        if self.cfg.refuse_unadvertised_pipelining && unread && !advertised && verb != Verb::Quit {
            let verb =
                String::from_utf8_lossy(line.split(|&b| b == b' ').next().unwrap_or_default())
                    .trim()
                    .chars()
                    .take(16)
                    .collect();
            return self.emit(Event::Pipelined { verb }, Pending::Pipelined);
        }
        if verb == Verb::Unknown {
            return self.error(codec::unknown_command());
        }
        let phase = self.phase();
        if !allowed(phase, verb) {
            let reply = bad_sequence(phase, verb);
            // RFC 3030 §2: the chunk follows a BDAT whatever we answer; consume it.
            if let Ok(Command::Bdat { size, .. }) = codec::parse_command(line)
                && size > 0
            {
                let then = Box::new(std::mem::replace(&mut self.state, State::Closed));
                self.state = State::Discard {
                    left: size,
                    reply,
                    then,
                };
                return;
            }
            return self.error(reply);
        }
        match codec::parse_command(line) {
            Ok(cmd) => self.dispatch(cmd),
            Err(reply) => self.error(reply),
        }
    }

    fn dispatch(&mut self, cmd: Command) {
        let submission = self.cfg.mode.is_submission();
        match cmd {
            Command::Ehlo { host } => self.hello(host, true),
            Command::Helo { host } => self.hello(host, false),
            Command::Mail(mail) => {
                if submission && self.account.is_none() {
                    // RFC 4954 §6: "530 5.7.0 Authentication required".
                    return self.error(Reply::new(
                        C530_SECURITY_REQUIRED,
                        SE_SEC_OTHER,
                        "Authentication required",
                    ));
                }
                if let Some(size) = mail.size
                    && size > self.cfg.max_message_size
                {
                    // RFC 1870 §6.1.
                    return self.reply(Reply::new(
                        C552_MAILBOX_FULL,
                        SE_SYS_MSG_TOO_BIG,
                        "Message size exceeds fixed maximum message size",
                    ));
                }
                if !mail.smtputf8 && !mail.address.is_ascii() {
                    return self.reply(non_ascii());
                }
                self.emit(
                    Event::MailFrom {
                        address: mail.address.clone(),
                        size: mail.size,
                        body: mail.body,
                        smtputf8: mail.smtputf8,
                    },
                    Pending::Mail(mail),
                );
            }
            Command::Rcpt { address } => {
                let State::Mail(tx) = std::mem::replace(&mut self.state, State::Closed) else {
                    // The table admits RCPT only in State::Mail.
                    self.state = State::Ready;
                    return self.error(bad_sequence(Phase::Ready, Verb::Rcpt));
                };
                if tx.rcpts.len() >= self.cfg.max_recipients {
                    // RFC 5321 §4.5.3.1.10: 452 for too many recipients.
                    self.state = State::Mail(tx);
                    return self.reply(Reply::new(
                        C452_STORAGE_FULL,
                        SE_PROTO_TOO_MANY_RCPTS,
                        "Too many recipients",
                    ));
                }
                if !tx.mail.smtputf8 && !address.is_ascii() {
                    self.state = State::Mail(tx);
                    return self.reply(non_ascii());
                }
                self.emit(
                    Event::RcptTo {
                        address: address.clone(),
                        size: tx.mail.size,
                    },
                    Pending::Rcpt(tx, address),
                );
            }
            Command::Data => {
                let State::Mail(tx) = std::mem::replace(&mut self.state, State::Closed) else {
                    self.state = State::Ready;
                    return self.error(bad_sequence(Phase::Ready, Verb::Data));
                };
                if tx.mail.body == Body::BinaryMime {
                    // RFC 3030 §3: BINARYMIME data must come with BDAT.
                    self.state = State::Mail(tx);
                    return self.error(Reply::new(
                        C503_BAD_CMD_SEQ,
                        SE_PROTO_INVALID_CMD,
                        "BODY=BINARYMIME requires BDAT",
                    ));
                }
                self.state = State::Data(tx, DataReader::new());
                self.reply(Reply::plain(
                    C354_CONTINUE,
                    "End data with <CR><LF>.<CR><LF>",
                ));
            }
            Command::Bdat { size, last } => {
                let mut tx = match std::mem::replace(&mut self.state, State::Closed) {
                    State::Mail(tx) | State::Bdat(tx) => tx,
                    other => {
                        self.state = other;
                        return self.error(bad_sequence(Phase::Ready, Verb::Bdat));
                    }
                };
                tx.chunked = true;
                if size == 0 {
                    self.chunk_done(tx, last);
                } else {
                    self.state = State::Chunk {
                        tx,
                        left: size,
                        last,
                    };
                }
            }
            Command::Rset => {
                self.state = self.idle_state();
                self.reply(ok());
            }
            Command::Noop => self.reply(ok()),
            Command::Quit => self.close(Reply::new(
                C221_CLOSING,
                SE_OTHER,
                format!("{} closing connection", self.cfg.hostname),
            )),
            Command::Help => self.reply(Reply::new(
                C214_HELP,
                SE_OTHER,
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH\n\
                 See RFC 5321",
            )),
            Command::Vrfy => self.reply(Reply::new(
                C252_CANNOT_VRFY,
                SE_OTHER,
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn => self.reply(Reply::new(
                C502_NOT_IMPLEMENTED,
                SE_PROTO_INVALID_CMD,
                "EXPN not available",
            )),
            Command::StartTls => {
                if self.tls {
                    return self.error(Reply::new(
                        C503_BAD_CMD_SEQ,
                        SE_PROTO_INVALID_CMD,
                        "TLS already active",
                    ));
                }
                if !self.cfg.tls_available {
                    return self.error(Reply::new(
                        C502_NOT_IMPLEMENTED,
                        SE_PROTO_INVALID_CMD,
                        "STARTTLS not available",
                    ));
                }
                self.reply(Reply::new(
                    C220_SERVICE_READY,
                    SE_OTHER,
                    "Ready to start TLS",
                ));
                // RFC 3207 §4.2 / CVE-2011-0411: nothing sent in plaintext after the
                // STARTTLS line may be acted on once TLS is up.
                self.input.clear();
                self.pos = 0;
                self.line = LineReader::default();
                self.state = State::Tls;
                self.steps.push_back(Step::StartTls);
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                if !submission {
                    return self.error(Reply::new(
                        C502_NOT_IMPLEMENTED,
                        SE_PROTO_INVALID_CMD,
                        "AUTH not available",
                    ));
                }
                if self.account.is_some() {
                    // RFC 4954 §4: AUTH after a successful AUTH.
                    return self.error(Reply::new(
                        C503_BAD_CMD_SEQ,
                        SE_PROTO_INVALID_CMD,
                        "Already authenticated",
                    ));
                }
                if !self.tls && !self.cfg.plaintext_auth_allowed {
                    // RFC 4954 §6.
                    return self.error(Reply::new(
                        C538_ENCRYPTION_NEEDED,
                        SE_SEC_ENCRYPTION_NEEDED,
                        "Encryption required for requested authentication mechanism",
                    ));
                }
                let ir = initial_response.as_deref().map(str::as_bytes);
                match Exchange::start(mechanism, ir) {
                    Ok((ex, Next::Challenge(c))) => {
                        self.state = State::Sasl(mechanism, ex);
                        self.reply(Reply::plain(C334_CONTINUE_AUTH, c));
                    }
                    Ok((_, Next::Done(credentials))) => self.emit(
                        Event::Auth {
                            mechanism,
                            credentials,
                        },
                        Pending::Auth,
                    ),
                    Err(e) => self.error(sasl_error(e)),
                }
            }
        }
    }

    /// EHLO/HELO: resets any transaction (RFC 5321 §4.1.4) and asks the driver.
    fn hello(&mut self, name: String, extended: bool) {
        self.state = self.idle_state();
        self.emit(
            Event::Helo {
                name: name.clone(),
                extended,
            },
            Pending::Helo { name, extended },
        );
    }

    /// One SASL response line (RFC 4954 §4).
    fn sasl_step(&mut self, mech: Mechanism, ex: Exchange, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match ex.step(line) {
            Ok((ex, Next::Challenge(c))) => {
                self.state = State::Sasl(mech, ex);
                self.reply(Reply::plain(C334_CONTINUE_AUTH, c));
            }
            Ok((_, Next::Done(credentials))) => self.emit(
                Event::Auth {
                    mechanism: mech,
                    credentials,
                },
                Pending::Auth,
            ),
            Err(e) => {
                self.state = State::Ready;
                self.error(sasl_error(e));
            }
        }
    }

    /// The end of a BDAT chunk (RFC 3030 §2).
    fn chunk_done(&mut self, tx: Transaction, last: bool) {
        if tx.overflow {
            self.state = self.idle_state();
            return self.reply(too_big());
        }
        if tx.starved {
            self.state = self.idle_state();
            return self.reply(no_memory());
        }
        if last {
            return self.message(tx, false);
        }
        let n = tx.data.len();
        self.state = State::Bdat(tx);
        self.reply(Reply::new(
            C250_COMPLETED,
            SE_OTHER,
            format!("{n} octets received"),
        ));
    }

    /// A complete message: refuse it if too big, else hand it to the driver.
    fn message(&mut self, mut tx: Transaction, bare_line_endings: bool) {
        if tx.overflow {
            self.state = self.idle_state();
            return self.reply(too_big());
        }
        if tx.starved {
            self.state = self.idle_state();
            return self.reply(no_memory());
        }
        // The data stays in memory until the driver answers (verification, delivery).
        self.delivering = std::mem::take(&mut tx.hold);
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        let envelope = Envelope {
            helo,
            esmtp,
            mail_from: tx.mail.address,
            rcpt_to: tx.rcpts,
            auth: self.account.clone(),
            tls: self.tls,
            body: tx.mail.body,
            smtputf8: tx.mail.smtputf8,
            declared_size: tx.mail.size,
            chunked: tx.chunked,
        };
        self.emit(
            Event::Message {
                envelope,
                data: tx.data,
                bare_line_endings,
            },
            Pending::Message,
        );
    }

    /// Our EHLO reply with the extensions this session offers now (RFC 5321 §4.1.1.1).
    fn ehlo_reply(&self) -> Reply {
        let mut lines = vec![
            self.cfg.hostname.clone(),
            "PIPELINING".into(),                           // RFC 2920
            "8BITMIME".into(),                             // RFC 6152
            "SMTPUTF8".into(),                             // RFC 6531
            format!("SIZE {}", self.cfg.max_message_size), // RFC 1870
            "ENHANCEDSTATUSCODES".into(),                  // RFC 2034
            "CHUNKING".into(),                             // RFC 3030
            "BINARYMIME".into(),                           // RFC 3030
        ];
        if self.cfg.tls_available && !self.tls {
            lines.push("STARTTLS".into()); // RFC 3207
        }
        if self.cfg.mode.is_submission() && (self.tls || self.cfg.plaintext_auth_allowed) {
            lines.push("AUTH PLAIN LOGIN".into()); // RFC 4954
        }
        Reply::plain(C250_COMPLETED, lines.join("\n"))
    }

    /// Queues an event; no input is processed until [`Session::answer`].
    fn emit(&mut self, event: Event, pending: Pending) {
        self.steps.push_back(Step::Event(event));
        self.state = State::Pending(pending);
    }

    /// Sends a reply, then moves to `next` (or closes on 421).
    fn finish(&mut self, reply: Reply, next: State) {
        if reply.code == C421_SERVICE_UNAVAILABLE {
            return self.close(reply);
        }
        self.state = next;
        self.reply(reply);
    }

    /// Queues a reply, batching it with the previous write (RFC 2920 §3.2).
    fn reply(&mut self, reply: Reply) {
        if let Some(Step::Write(buf)) = self.steps.back_mut() {
            reply.encode_into(buf);
        } else {
            self.steps.push_back(Step::Write(reply.to_bytes()));
        }
    }

    /// A protocol error reply; counts towards `max_errors`.
    fn error(&mut self, reply: Reply) {
        self.errors = self.errors.saturating_add(1);
        self.reply(reply);
    }

    /// Sends a last reply and closes.
    fn close(&mut self, reply: Reply) {
        self.reply(reply);
        self.state = State::Closed;
        self.input.clear();
        self.pos = 0;
    }
}

fn ok() -> Reply {
    Reply::new(C250_COMPLETED, SE_OTHER, "OK")
}

fn no_memory() -> Reply {
    // RFC 5321 §4.2.2 452, RFC 3463 X.3.1: temporary, the sender retries later.
    Reply::new(
        C452_STORAGE_FULL,
        SE_SYS_FULL,
        "Insufficient system resources, try again later",
    )
}

fn too_big() -> Reply {
    // RFC 1870 §6.3 (and §6.2 for the 552), RFC 3463 X.3.4.
    Reply::new(
        C552_MAILBOX_FULL,
        SE_SYS_MSG_TOO_BIG,
        "Message size exceeds fixed maximum message size",
    )
}

fn non_ascii() -> Reply {
    // RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter.
    Reply::new(
        C553_BAD_MAILBOX,
        SE_MEDIA_NON_ASCII_ADDR,
        "Non-ASCII address requires SMTPUTF8",
    )
}

fn sasl_error(e: SaslError) -> Reply {
    match e {
        // RFC 4954 §4: "*" cancels, answered 501.
        SaslError::Cancelled => Reply::new(
            C501_BAD_PARAM_SYNTAX,
            SE_PROTO_OTHER,
            "Authentication cancelled",
        ),
        SaslError::BadBase64 | SaslError::Malformed => {
            Reply::new(C501_BAD_PARAM_SYNTAX, SE_PROTO_SYNTAX, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::encode;

    /// The fake driver's policy: deterministic answers keyed on the event's content.
    fn policy(e: &Event) -> Decision {
        match e {
            Event::Helo { name, .. } if name == "reject.example" => {
                Decision::Reject(Reply::new(550, SE_SEC_NOT_AUTHORIZED, "go away"))
            }
            Event::MailFrom { address, .. } if address.starts_with("bad@") => {
                Decision::Reject(Reply::new(550, SE_SEC_NOT_AUTHORIZED, "sender refused"))
            }
            Event::RcptTo { address, .. } if address.starts_with("unknown") => {
                Decision::Reject(Reply::new(550, SE_ADDR_UNKNOWN_MAILBOX, "no such user"))
            }
            Event::RcptTo { address, .. } if address.starts_with("temp") => {
                Decision::Reject(Reply::new(451, SE_SYS_OTHER, "try later"))
            }
            Event::RcptTo { address, .. } if address.starts_with("close") => {
                Decision::Reject(Reply::new(421, SE_SYS_OTHER, "bye"))
            }
            Event::Auth { credentials, .. } if credentials.password.expose() == "pw" => {
                Decision::AuthOk {
                    account: credentials.username.clone(),
                }
            }
            Event::Auth { .. } => Decision::Reject(Reply::new(
                535,
                SE_SEC_AUTH_BAD_CREDS,
                "Authentication credentials invalid",
            )),
            _ => Decision::Accept,
        }
    }

    /// Transcript harness: a session plus a fake driver that answers every event with
    /// [`policy`] (unless `manual`), upgrades TLS on StartTls, and records everything.
    struct T {
        s: Session,
        out: Vec<u8>,
        events: Vec<Event>,
        closed: bool,
        starttls: usize,
        manual: bool,
        max_buffered: usize,
    }

    fn cfg(mode: Mode) -> SessionConfig {
        let mut c = SessionConfig::new("mx.home.arpa", mode);
        c.tls_available = true;
        c
    }

    impl T {
        fn new(cfg: SessionConfig, tls: bool) -> T {
            T {
                s: Session::new(cfg, tls),
                out: Vec::new(),
                events: Vec::new(),
                closed: false,
                starttls: 0,
                manual: false,
                max_buffered: 0,
            }
        }
        fn mx() -> T {
            T::new(cfg(Mode::Mx), false)
        }
        /// Submission on 465 (TLS from the start).
        fn sub() -> T {
            T::new(cfg(Mode::Submissions), true)
        }
        /// Feeds raw bytes and drives the session until it needs input.
        fn send(&mut self, raw: impl AsRef<[u8]>) -> &mut T {
            self.s.feed(raw.as_ref());
            self.drive();
            self
        }
        fn drive(&mut self) {
            loop {
                self.max_buffered = self.max_buffered.max(self.s.buffered_bytes());
                match self.s.next() {
                    Step::Write(b) => self.out.extend_from_slice(&b),
                    Step::Event(e) => {
                        let d = policy(&e);
                        self.events.push(e);
                        if !self.manual {
                            self.s.answer(d);
                        }
                    }
                    Step::NeedMoreInput | Step::Wait => break,
                    Step::Compress => panic!("SMTP never compresses"),
                    Step::StartTls => {
                        self.starttls += 1;
                        self.s.tls_established();
                    }
                    Step::Close => {
                        self.closed = true;
                        break;
                    }
                }
            }
        }
        /// Takes the output so far as final reply lines (continuation lines folded in).
        fn replies(&mut self) -> Vec<String> {
            let out = String::from_utf8(std::mem::take(&mut self.out)).unwrap();
            let mut finals = Vec::new();
            for line in out.split_terminator("\r\n") {
                assert!(line.len() >= 3, "short reply line {line:?}");
                if line.as_bytes().get(3) != Some(&b'-') {
                    finals.push(line.to_string());
                }
            }
            finals
        }
        /// Asserts the replies since the last call start with these prefixes, in order.
        fn expect(&mut self, prefixes: &[&str]) -> Vec<String> {
            let got = self.replies();
            assert_eq!(
                got.len(),
                prefixes.len(),
                "replies {got:?}, wanted {prefixes:?}"
            );
            for (g, p) in got.iter().zip(prefixes) {
                assert!(
                    g.starts_with(p),
                    "reply {g:?} does not start with {p:?} (all: {got:?})"
                );
            }
            got
        }
        /// Sends one command line and expects one reply starting with `prefix`.
        fn cmd(&mut self, line: &str, prefix: &str) -> String {
            self.send(format!("{line}\r\n"));
            self.expect(&[prefix]).remove(0)
        }
        fn messages(&self) -> Vec<(Envelope, Vec<u8>, bool)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Message {
                        envelope,
                        data,
                        bare_line_endings,
                    } => Some((envelope.clone(), data.clone(), *bare_line_endings)),
                    _ => None,
                })
                .collect()
        }
        fn login(&mut self) {
            self.cmd("EHLO client.example", "250 ");
            let ir = encode(b"\0alice\0pw");
            self.cmd(&format!("AUTH PLAIN {ir}"), "235 2.7.0");
        }
    }

    #[test]
    fn greeting_and_goodbye() {
        let s = Session::new(cfg(Mode::Mx), false);
        assert_eq!(s.greeting(), b"220 mx.home.arpa ESMTP Letterbox\r\n");
        assert_eq!(
            s.shutdown_reply(),
            b"421 4.3.2 mx.home.arpa Service shutting down\r\n"
        );
        assert_eq!(
            s.timeout_reply(),
            b"421 4.4.2 mx.home.arpa Timeout, closing connection\r\n"
        );
        assert_eq!(
            Session::busy_reply("mx.home.arpa"),
            b"421 4.7.0 mx.home.arpa Too many connections, try again later\r\n"
        );
    }

    fn ehlo_keywords(t: &mut T) -> Vec<String> {
        t.send("EHLO client.example\r\n");
        let out = String::from_utf8(std::mem::take(&mut t.out)).unwrap();
        out.split_terminator("\r\n")
            .skip(1)
            .map(|l| l.get(4..).unwrap().to_string())
            .collect()
    }

    #[test]
    fn ehlo_capabilities_per_mode() {
        let base = [
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            "SIZE 52428800",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "BINARYMIME",
        ];
        let with = |extra: &[&str]| {
            base.iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        // MX without TLS: STARTTLS, never AUTH.
        assert_eq!(ehlo_keywords(&mut T::mx()), with(&["STARTTLS"]));
        let mut c = cfg(Mode::Mx);
        c.plaintext_auth_allowed = true;
        assert_eq!(ehlo_keywords(&mut T::new(c, true)), with(&[]));
        // 587 before TLS: STARTTLS, no AUTH unless plaintext is allowed.
        assert_eq!(
            ehlo_keywords(&mut T::new(cfg(Mode::Submission), false)),
            with(&["STARTTLS"])
        );
        let mut c = cfg(Mode::Submission);
        c.plaintext_auth_allowed = true;
        assert_eq!(
            ehlo_keywords(&mut T::new(c, false)),
            with(&["STARTTLS", "AUTH PLAIN LOGIN"])
        );
        // No certificate: no STARTTLS.
        let mut c = cfg(Mode::Submission);
        c.tls_available = false;
        assert_eq!(ehlo_keywords(&mut T::new(c, false)), with(&[]));
        // 465: TLS from the start, AUTH offered.
        assert_eq!(ehlo_keywords(&mut T::sub()), with(&["AUTH PLAIN LOGIN"]));
        // After STARTTLS on 587: AUTH offered, STARTTLS gone.
        let mut t = T::new(cfg(Mode::Submission), false);
        t.cmd("EHLO c", "250 ");
        t.cmd("STARTTLS", "220 2.0.0");
        assert_eq!(ehlo_keywords(&mut t), with(&["AUTH PLAIN LOGIN"]));
        // The first EHLO line is our host name; HELO gets one line.
        let mut t = T::mx();
        t.send("EHLO c\r\n");
        assert!(t.out.starts_with(b"250-mx.home.arpa\r\n250-PIPELINING\r\n"));
        t.out.clear();
        t.send("HELO c\r\n");
        assert_eq!(t.out, b"250 mx.home.arpa\r\n");
    }

    /// Every command in every phase, against a matrix written out independently of
    /// `VALID`: `+` means the state admits it, `-` means 503/554 bad sequence.
    #[test]
    fn state_table_exhaustive() {
        #[rustfmt::skip]
        let matrix: [(&str, &str); 14] = [
            //                           Conn Ready Mail Rcpt Bdat
            ("EHLO x",                   "+    +     +    +    +"),
            ("HELO x",                   "+    +     +    +    +"),
            ("STARTTLS",                 "-    +     -    -    -"),
            ("AUTH PLAIN AGFsaWNlAHB3",  "-    +     -    -    -"),
            ("MAIL FROM:<a@b.example>",  "-    +     -    -    -"),
            ("RCPT TO:<c@d.example>",    "-    -     +    +    -"),
            ("DATA",                     "-    -     -    +    -"),
            ("BDAT 0",                   "-    -     -    +    +"),
            ("RSET",                     "+    +     +    +    +"),
            ("NOOP",                     "+    +     +    +    +"),
            ("QUIT",                     "+    +     +    +    +"),
            ("HELP",                     "+    +     +    +    +"),
            ("VRFY x",                   "+    +     +    +    +"),
            ("EXPN x",                   "+    +     +    +    +"),
        ];
        assert_eq!(matrix.len(), Verb::ALL.len());
        for mode in [Mode::Mx, Mode::Submission, Mode::Submissions] {
            for (line, row) in matrix {
                let verb = Verb::of(line.as_bytes());
                let flags: Vec<bool> = row.split_whitespace().map(|f| f == "+").collect();
                for (phase, ok) in flags.into_iter().enumerate() {
                    let mut c = cfg(mode);
                    c.plaintext_auth_allowed = true;
                    let mut t = T::new(c, mode == Mode::Submissions);
                    let setup: &[&str] = match phase {
                        0 => &[],
                        1 => &["EHLO c"],
                        _ if mode == Mode::Mx => {
                            &["EHLO c", "MAIL FROM:<s@x>", "RCPT TO:<r@y>", "BDAT 3"]
                        }
                        _ => &[
                            "EHLO c",
                            "AUTH PLAIN AGFsaWNlAHB3",
                            "MAIL FROM:<s@x>",
                            "RCPT TO:<r@y>",
                            "BDAT 3",
                        ],
                    };
                    // Phases 2.. need the setup up to MAIL (2), RCPT (3), BDAT (4).
                    let n = match (phase, mode == Mode::Mx) {
                        (0, _) => 0,
                        (1, _) => 1,
                        (p, true) => p,
                        (p, false) => p + 1,
                    };
                    for l in &setup[..n] {
                        t.send(format!("{l}\r\n"));
                        if l.starts_with("BDAT") {
                            t.send("abc");
                        }
                    }
                    let before = t.replies();
                    assert!(
                        before.iter().all(|r| r.starts_with('2')),
                        "{mode:?} setup {:?}: {before:?}",
                        &setup[..n]
                    );
                    assert_eq!(t.s.phase() as usize, phase, "{mode:?} {line}");
                    t.send(format!("{line}\r\n"));
                    let got = t.replies();
                    let last = got.last().cloned().unwrap_or_default();
                    // Policy refusals that share the 503 code are not the table's.
                    let policy = last.contains("TLS already active")
                        || last.contains("Already authenticated");
                    let seq_err =
                        !policy && (last.starts_with("503 5.5.1") || last.starts_with("554 5.5.1"));
                    assert_eq!(seq_err, !ok, "{mode:?} phase {phase} {line:?} -> {got:?}");
                    assert_eq!(
                        allowed(
                            [
                                Phase::Connected,
                                Phase::Ready,
                                Phase::Mail,
                                Phase::Rcpt,
                                Phase::Bdat
                            ][phase],
                            verb
                        ),
                        ok
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_and_bad_syntax_and_error_limit() {
        let mut t = T::mx();
        t.cmd("FOO bar", "500 5.5.1");
        t.cmd("", "500 5.5.1");
        t.cmd("EHLO", "501 5.5.4");
        t.cmd("EHLO c", "250 ");
        t.cmd("MAIL FROM:<a@b> RET=HDRS", "555 5.5.4");
        t.cmd("MAIL FROM:<a@b", "501 5.5.4");
        t.cmd("MAIL FROM:<a@@b>", "501 5.1.7");
        t.cmd("EXPN list", "502 5.5.1");
        t.cmd("VRFY someone", "252 2.0.0");
        t.cmd("HELP", "214 2.0.0");
        t.cmd("NOOP", "250 2.0.0");
        // 6 errors so far (500, 500, 501, 555, 501, 501) and EXPN's 502 is not one;
        // 13 more leave us one short of 20.
        for _ in 0..13 {
            t.cmd("XYZZY", "500");
        }
        assert!(!t.closed);
        t.send("XYZZY\r\nNOOP\r\n");
        t.expect(&["500 5.5.1", "421 4.7.0 mx.home.arpa Too many errors"]);
        assert!(t.closed);
        t.send("NOOP\r\n");
        assert!(t.out.is_empty());
    }

    #[test]
    fn pipelined_transaction_in_order() {
        let mut t = T::mx();
        t.send(
            "EHLO client.example\r\nMAIL FROM:<s@x.example> BODY=8BITMIME\r\n\
             RCPT TO:<a@home.arpa>\r\nRCPT TO:<unknown@home.arpa>\r\nRCPT TO:<b@home.arpa>\r\n\
             DATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<temp@h>\r\n\
             DATA\r\nRSET\r\nQUIT\r\nNOOP\r\n",
        );
        t.expect(&[
            "250 STARTTLS",
            "250 2.1.0",
            "250 2.1.5",
            "550 5.1.1 no such user",
            "250 2.1.5",
            "354 ",
            "250 2.0.0 Message accepted",
            "250 2.1.0",
            "451 4.3.0 try later",
            "554 5.5.1 No valid recipients",
            "250 2.0.0",
            "221 2.0.0 mx.home.arpa closing",
        ]);
        assert!(t.closed);
        let msgs = t.messages();
        assert_eq!(msgs.len(), 1);
        let (env, data, bare) = &msgs[0];
        assert_eq!(data, b"Subject: hi\r\n\r\nbody\r\n");
        assert!(!bare);
        assert_eq!(
            env,
            &Envelope {
                helo: "client.example".into(),
                esmtp: true,
                mail_from: "s@x.example".into(),
                rcpt_to: vec!["a@home.arpa".into(), "b@home.arpa".into()],
                auth: None,
                tls: false,
                body: Body::EightBitMime,
                smtputf8: false,
                declared_size: None,
                chunked: false,
            }
        );
        assert_eq!(env.protocol(), "ESMTP");
    }

    #[test]
    fn pipelining_without_pipelining_is_refused_when_asked() {
        let strict = || {
            let mut c = cfg(Mode::Mx);
            c.refuse_unadvertised_pipelining = true;
            T::new(c, false)
        };
        let burst = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@home.arpa>\r\n";
        // After HELO, fed in every split: refused once both lines are there.
        for cut in 0..=burst.len() {
            let mut t = strict();
            t.cmd("HELO client.example", "250");
            t.send(&burst[..cut]);
            t.send(&burst[cut..]);
            let got = t.replies();
            if cut != "MAIL FROM:<a@example.org>\r\n".len() {
                assert_eq!(got.len(), 1, "cut {cut}: {got:?}");
                assert!(got[0].starts_with("554 5.7.1"), "cut {cut}: {got:?}");
                assert!(t.closed);
                assert!(
                    matches!(t.events.last(), Some(Event::Pipelined { verb }) if verb == "MAIL")
                );
            } else {
                // The lines came exactly one per read: no pipelining.
                assert_eq!(got.len(), 2, "cut {cut}: {got:?}");
                assert!(!t.closed);
            }
        }
        // On the HELO line itself, before any greeting.
        let mut t = strict();
        t.send("HELO x\r\nMAIL FROM:<a@example.org>\r\n");
        t.expect(&["554 5.7.1"]);
        assert!(t.closed);
        // After EHLO (PIPELINING advertised) the same burst is fine.
        let mut t = strict();
        t.cmd("EHLO client.example", "250");
        t.send(burst);
        t.expect(&["250", "250"]);
        // And without the setting (submission, exempt clients) nothing changes.
        let mut t = T::mx();
        t.cmd("HELO client.example", "250");
        t.send(burst);
        t.expect(&["250", "250"]);
    }

    #[test]
    fn nothing_processed_until_answer() {
        let mut t = T::mx();
        t.manual = true;
        t.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
        assert_eq!(t.events.len(), 1);
        assert!(t.out.is_empty());
        assert_eq!(t.s.next(), Step::Wait);
        t.s.feed(b"NOOP\r\n");
        assert_eq!(t.s.next(), Step::Wait);
        t.s.answer(Decision::Accept);
        t.drive();
        assert_eq!(t.events.len(), 2);
        assert!(matches!(t.events[1], Event::MailFrom { .. }));
        t.expect(&["250 STARTTLS"]);
        t.s.answer(Decision::Accept);
        t.drive();
        t.s.answer(Decision::Reject(Reply::new(
            550,
            SE_ADDR_UNKNOWN_MAILBOX,
            "no",
        )));
        t.drive();
        t.expect(&["250 2.1.0", "550 5.1.1 no", "250 2.0.0 OK"]);
        // answer() with nothing pending is ignored.
        t.s.answer(Decision::Accept);
        assert_eq!(t.s.next(), Step::NeedMoreInput);
        // A Reject that is not an error becomes 451.
        t.send("RSET\r\nMAIL FROM:<x@y>\r\n");
        t.s.answer(Decision::Reject(Reply::new(250, SE_OTHER, "oops")));
        t.drive();
        t.expect(&["250 2.0.0", "451 4.3.0"]);
    }

    #[test]
    fn helo_rejected_and_reset_semantics() {
        let mut t = T::mx();
        t.cmd("EHLO reject.example", "550 5.7.1");
        t.cmd("MAIL FROM:<a@b>", "503 5.5.1 Send EHLO");
        t.cmd("HELO c", "250 mx");
        t.cmd("MAIL FROM:<a@b>", "250 2.1.0");
        t.cmd("RCPT TO:<c@d>", "250 2.1.5");
        // EHLO resets the transaction (RFC 5321 §4.1.4).
        t.cmd("EHLO c", "250 ");
        t.cmd("RCPT TO:<c@d>", "503 5.5.1");
        t.cmd("MAIL FROM:<a@b>", "250");
        t.cmd("RSET", "250 2.0.0");
        t.cmd("DATA", "503 5.5.1");
        t.cmd("MAIL FROM:<bad@b>", "550 5.7.1");
        t.cmd("RCPT TO:<c@d>", "503 5.5.1");
        t.cmd("MAIL FROM:<a@b>", "250");
        t.cmd("MAIL FROM:<a@b>", "503 5.5.1 Nested");
        t.cmd("RCPT TO:<close@d>", "421 4.3.0 bye");
        assert!(t.closed);
    }

    #[test]
    fn starttls_discards_injected_commands() {
        let mut t = T::mx();
        t.cmd("EHLO c", "250 ");
        // CVE-2011-0411: commands sent in the same packet as STARTTLS are dropped.
        t.send("STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\n");
        t.expect(&["220 2.0.0 Ready to start TLS"]);
        assert_eq!(t.starttls, 1);
        assert!(t.s.tls_active());
        assert_eq!(t.events.len(), 1, "{:?}", t.events);
        // RFC 3207 §4.2: EHLO knowledge forgotten.
        t.cmd("MAIL FROM:<a@b>", "503 5.5.1 Send EHLO");
        t.cmd("EHLO c", "250 ");
        t.cmd("STARTTLS", "503 5.5.1 TLS already active");
        t.cmd("MAIL FROM:<a@b>", "250");
        t.cmd("RCPT TO:<a@b>", "250");
        t.send("DATA\r\nx\r\n.\r\n");
        t.expect(&["354", "250"]);
        assert!(t.messages()[0].0.tls);
        assert_eq!(t.messages()[0].0.protocol(), "ESMTPS");
        // Bytes fed while the handshake is pending are dropped too.
        let mut t = T::mx();
        t.manual = true;
        t.send("EHLO c\r\n");
        t.s.answer(Decision::Accept);
        t.s.feed(b"STARTTLS\r\n");
        assert!(matches!(t.s.next(), Step::Write(_)));
        assert_eq!(
            t.s.next(),
            Step::Write(b"220 2.0.0 Ready to start TLS\r\n".to_vec())
        );
        assert_eq!(t.s.next(), Step::StartTls);
        t.s.feed(b"QUIT\r\n");
        assert_eq!(t.s.next(), Step::Wait);
        t.s.tls_established();
        assert_eq!(t.s.next(), Step::NeedMoreInput);
        // No certificate: not available.
        let mut c = cfg(Mode::Mx);
        c.tls_available = false;
        let mut t = T::new(c, false);
        t.cmd("EHLO c", "250 ");
        t.cmd("STARTTLS", "502 5.5.1");
    }

    #[test]
    fn auth_plain_and_login() {
        // PLAIN with initial response.
        let mut t = T::sub();
        t.login();
        assert_eq!(t.s.account(), Some("alice"));
        t.cmd("AUTH PLAIN AGFsaWNlAHB3", "503 5.5.1 Already");
        t.cmd("MAIL FROM:<alice@home.arpa>", "250");
        t.cmd("RCPT TO:<x@example.org>", "250");
        t.send("BDAT 5 LAST\r\nhello");
        t.expect(&["250 2.0.0"]);
        let (env, data, _) = t.messages().remove(0);
        assert_eq!(env.auth.as_deref(), Some("alice"));
        assert_eq!(env.protocol(), "ESMTPSA");
        assert_eq!(data, b"hello");

        // PLAIN without initial response: empty 334, then the response.
        let mut t = T::sub();
        t.cmd("EHLO c", "250 ");
        assert_eq!(t.cmd("AUTH PLAIN", "334"), "334 ");
        t.cmd(&encode(b"\0bob\0pw"), "235");
        assert_eq!(t.s.account(), Some("bob"));
        assert!(matches!(
            &t.events[1],
            Event::Auth { mechanism: Mechanism::Plain, credentials } if credentials.username == "bob"
        ));

        // "AUTH PLAIN =" is an empty initial response: malformed PLAIN.
        let mut t = T::sub();
        t.cmd("EHLO c", "250 ");
        t.cmd("AUTH PLAIN =", "501 5.5.2");

        // LOGIN without initial response.
        let mut t = T::sub();
        t.cmd("EHLO c", "250 ");
        assert_eq!(t.cmd("AUTH LOGIN", "334"), "334 VXNlcm5hbWU6");
        assert_eq!(t.cmd(&encode(b"carol"), "334"), "334 UGFzc3dvcmQ6");
        t.cmd(&encode(b"pw"), "235 2.7.0");
        assert_eq!(t.s.account(), Some("carol"));

        // LOGIN with initial response (the user name).
        let mut t = T::sub();
        t.cmd("EHLO c", "250 ");
        t.cmd(
            &format!("AUTH LOGIN {}", encode(b"dave")),
            "334 UGFzc3dvcmQ6",
        );
        t.cmd(&encode(b"pw"), "235");

        // Cancel, bad base64, unknown mechanism.
        let mut t = T::sub();
        t.cmd("EHLO c", "250 ");
        t.cmd("AUTH LOGIN", "334");
        t.cmd("*", "501 5.5.0 Authentication cancelled");
        t.cmd("AUTH PLAIN", "334");
        t.cmd("!!!", "501 5.5.2");
        t.cmd("AUTH CRAM-MD5", "504 5.5.4");
        t.cmd("MAIL FROM:<a@b>", "530 5.7.0");

        // Over-long SASL line.
        let mut t = T::sub();
        t.cmd("EHLO c", "250 ");
        t.cmd("AUTH PLAIN", "334");
        t.cmd(&"A".repeat(2000), "500 5.5.6");
        t.cmd("NOOP", "250");
    }

    #[test]
    fn auth_refused_outside_tls_and_on_mx() {
        let mut t = T::new(cfg(Mode::Submission), false);
        t.cmd("EHLO c", "250 ");
        t.cmd("AUTH PLAIN AGFsaWNlAHB3", "538 5.7.11");
        t.cmd("MAIL FROM:<a@b>", "530 5.7.0");
        assert!(t.events.iter().all(|e| !matches!(e, Event::Auth { .. })));
        // Allowed from plaintext networks.
        let mut c = cfg(Mode::Submission);
        c.plaintext_auth_allowed = true;
        let mut t = T::new(c, false);
        t.cmd("EHLO c", "250 ");
        t.cmd("AUTH PLAIN AGFsaWNlAHB3", "235");
        // MX: not offered.
        let mut t = T::new(cfg(Mode::Mx), true);
        t.cmd("EHLO c", "250 ");
        t.cmd("AUTH PLAIN AGFsaWNlAHB3", "502 5.5.1");
        // 587 after STARTTLS: allowed, and the session is fresh.
        let mut t = T::new(cfg(Mode::Submission), false);
        t.cmd("EHLO c", "250 ");
        t.cmd("STARTTLS", "220");
        t.cmd("AUTH PLAIN AGFsaWNlAHB3", "503 5.5.1 Send EHLO");
        t.login();
    }

    #[test]
    fn auth_failures_close() {
        let mut t = T::sub();
        t.cmd("EHLO c", "250 ");
        let bad = encode(b"\0alice\0wrong");
        t.cmd(&format!("AUTH PLAIN {bad}"), "535 5.7.8");
        t.cmd(&format!("AUTH PLAIN {bad}"), "535 5.7.8");
        assert!(!t.closed);
        t.send(format!("AUTH PLAIN {bad}\r\n"));
        t.expect(&[
            "535 5.7.8",
            "421 4.7.0 mx.home.arpa Too many authentication",
        ]);
        assert!(t.closed);
        // `Accept` without an account is a temporary failure.
        let mut t = T::sub();
        t.manual = true;
        t.send("EHLO c\r\n");
        t.s.answer(Decision::Accept);
        t.send("AUTH PLAIN AGFsaWNlAHB3\r\n");
        t.s.answer(Decision::Accept);
        t.drive();
        t.expect(&["250 ", "454 4.7.0"]);
        assert_eq!(t.s.account(), None);
    }

    fn data_of(body: &[u8]) -> (Vec<u8>, bool, Vec<String>, T) {
        let mut t = T::mx();
        t.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
        t.send(body);
        t.send("NOOP\r\n");
        let replies = t.replies();
        let msgs = t.messages();
        let (data, bare) = msgs
            .first()
            .map(|(_, d, b)| (d.clone(), *b))
            .unwrap_or_default();
        (data, bare, replies, t)
    }

    #[test]
    fn data_dot_unstuffing() {
        let (d, bare, r, _) = data_of(b"..leading\r\n.\r\n");
        assert_eq!(d, b".leading\r\n");
        assert!(!bare);
        assert_eq!(r.len(), 6, "{r:?}");
        let (d, _, _, _) = data_of(b".\r\n");
        assert_eq!(d, b"");
        let (d, _, _, _) = data_of(b"a\r\n...\r\n. x\r\n..\r\n.\r\n");
        assert_eq!(d, b"a\r\n..\r\n x\r\n.\r\n");
        let (d, _, _, _) = data_of(b"\r\n\r\n.\r\n");
        assert_eq!(d, b"\r\n\r\n");
        // ".\r" followed by something else than LF: dot stuffing, CR kept.
        let (d, bare, _, _) = data_of(b"x\r\n.\r.\r\n.\r\n");
        assert_eq!(d, b"x\r\n\r.\r\n");
        assert!(bare);
        let (d, _, _, _) = data_of(b"x\r\n.\r\r\n.\r\n");
        assert_eq!(d, b"x\r\n\r\r\n");
    }

    /// SMTP smuggling (CVE-2023-51766 family): none of these end the data; they stay
    /// as data, the MAIL after them is message text, and the message is flagged.
    #[test]
    fn smuggling_forms_do_not_end_data() {
        for form in [
            "\n.\n",
            "\r.\r",
            "\n.\r\n",
            "\r\n.\n",
            "\r.\r\n",
            "\r\n.\r\r\n",
        ] {
            let smuggled = format!(
                "Subject: a\r\n\r\nx{form}MAIL FROM:<evil@x>\r\nRCPT TO:<v@home.arpa>\r\nDATA\r\n\
                 Subject: forged\r\n\r\n.\r\n"
            );
            let (d, bare, r, t) = data_of(smuggled.as_bytes());
            let msgs = t.messages();
            assert_eq!(msgs.len(), 1, "{form:?}: {r:?}");
            assert!(bare, "{form:?}");
            assert_eq!(
                r.iter()
                    .filter(|l| l.starts_with("250 2.0.0 Message"))
                    .count(),
                1,
                "{form:?}: {r:?}"
            );
            assert!(
                t.events
                    .iter()
                    .all(|e| !matches!(e, Event::MailFrom { address, .. } if address == "evil@x")),
                "{form:?}"
            );
            let text = String::from_utf8(d).unwrap();
            assert!(text.contains("MAIL FROM:<evil@x>"), "{form:?}: {text:?}");
            assert!(
                text.ends_with("Subject: forged\r\n\r\n"),
                "{form:?}: {text:?}"
            );
        }
    }

    /// The daemon-wide message memory budget (budget.rs): a message whose data does not
    /// fit beside the others in transit is refused with 452 4.3.1 (temporary) and not
    /// kept; the budget is given back when the first one is answered.
    #[test]
    fn message_memory_budget_is_shared_and_refusal_is_temporary() {
        let budget = crate::budget::Budget::new(40_000);
        let mut c = cfg(Mode::Mx);
        c.budget = Some(budget.clone());
        let mut a = T::new(c.clone(), false);
        let mut b = T::new(c, false);
        let body = format!("{}\r\n", "x".repeat(998)).repeat(25);
        let start = "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n";
        // `a`'s 25 KB message is handed to the driver and not answered yet.
        a.send(start).send(&body);
        a.manual = true;
        a.send(".\r\n");
        assert!(budget.used() >= 25_000, "{}", budget.used());
        assert_eq!(a.messages().len(), 1);
        // `b` cannot hold another 25 KB beside it: 452, nothing kept, the session goes on.
        b.send(start).send(&body).send(".\r\nNOOP\r\n");
        b.expect(&["250 ", "250", "250", "354", "452 4.3.1", "250"]);
        assert!(b.messages().is_empty());
        assert!(budget.used() < 40_000);
        // Once `a` is answered its bytes are given back, and `b` gets through.
        a.s.answer(policy(&a.events[a.events.len() - 1]));
        assert_eq!(budget.used(), 0);
        b.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            .send(&body)
            .send(".\r\n");
        b.expect(&["250", "250", "354", "250 2.0.0"]);
        assert_eq!(budget.used(), 0);
        // BDAT is counted the same way.
        let mut a = T::new(b.s.cfg.clone(), false);
        a.send(start.replace("DATA\r\n", "BDAT 30000 LAST\r\n"));
        a.manual = true;
        a.send(vec![b'z'; 30_000]);
        b.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 20000 LAST\r\n")
            .send(vec![b'z'; 20_000]);
        b.expect(&["250", "250", "452 4.3.1"]);
    }

    #[test]
    fn size_enforced_while_streaming_with_bounded_memory() {
        let mut c = cfg(Mode::Mx);
        c.max_message_size = 10_000;
        let mut t = T::new(c.clone(), false);
        t.cmd("EHLO c", "250 ");
        // Declared too big: refused at MAIL (RFC 1870 §6.1).
        t.cmd("MAIL FROM:<a@b> SIZE=10001", "552 5.3.4");
        // Declared small, sent big: refused at the end, nothing stored past the cap.
        t.cmd("MAIL FROM:<a@b> SIZE=100", "250");
        t.cmd("RCPT TO:<c@d>", "250");
        t.cmd("DATA", "354");
        let line = format!("{}\r\n", "x".repeat(998));
        for _ in 0..200 {
            t.send(&line);
        }
        assert!(t.max_buffered <= 10_000 + 1000, "{}", t.max_buffered);
        assert!(t.s.buffered_bytes() <= 1000);
        t.send(".\r\nNOOP\r\n");
        t.expect(&["552 5.3.4", "250 2.0.0 OK"]);
        assert!(t.messages().is_empty());
        // Exactly at the limit is fine.
        let mut t = T::new(c.clone(), false);
        t.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
        t.send(format!("{}\r\n.\r\n", "y".repeat(9_998)));
        t.expect(&["250 ", "250", "250", "354", "250 2.0.0"]);
        assert_eq!(t.messages()[0].1.len(), 10_000);
        // BDAT: the same cap over all chunks; the transaction is aborted.
        let mut t = T::new(c, false);
        t.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
        t.send("BDAT 6000\r\n");
        t.send(vec![b'z'; 6000]);
        t.send("BDAT 6000\r\n");
        for _ in 0..6 {
            t.send(vec![b'z'; 1000]);
        }
        assert!(t.max_buffered <= 10_000 + 1000, "{}", t.max_buffered);
        t.send("BDAT 3 LAST\r\nabcNOOP\r\n");
        t.expect(&[
            "250 ",
            "250",
            "250",
            "250 2.0.0 6000 octets",
            "552 5.3.4",
            "503 5.5.1",
            "250 2.0.0 OK",
        ]);
        assert!(t.messages().is_empty());
    }

    #[test]
    fn overlong_command_lines() {
        let mut t = T::mx();
        t.cmd("EHLO c", "250 ");
        // Exactly 1000 octets with CRLF passes the framing (and fails syntax).
        let ok_len = format!("NOOP {}", "a".repeat(1000 - 7));
        assert_eq!(ok_len.len() + 2, 1000);
        t.cmd(&ok_len, "250");
        let too_long = format!("NOOP {}", "a".repeat(1000 - 6));
        t.cmd(&too_long, "500 5.5.2 Line too long");
        // An endless line is discarded as it streams, with bounded memory.
        for _ in 0..1000 {
            t.send(vec![b'M'; 4096]);
        }
        assert!(t.max_buffered <= 1000 + 4096, "{}", t.max_buffered);
        assert!(t.out.is_empty());
        t.send("\r\nNOOP\r\n");
        t.expect(&["500 5.5.2", "250 2.0.0"]);
    }

    #[test]
    fn bdat_chunks() {
        let mut t = T::mx();
        t.send("EHLO c\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<c@d>\r\n");
        t.send("DATA\r\n");
        t.expect(&["250 ", "250", "250", "503 5.5.1 BODY=BINARYMIME"]);
        // A chunk containing CRLF.CRLF literally, and dots at line starts: verbatim.
        let chunk1 = b"Subject: x\r\n\r\n..dots\r\n.\r\nmore";
        t.send(format!("BDAT {}\r\n", chunk1.len()));
        t.send(chunk1);
        t.send("BDAT 2\r\n\r\n");
        let r = t.expect(&["250 2.0.0", "250 2.0.0"]);
        assert_eq!(r[0], format!("250 2.0.0 {} octets received", chunk1.len()));
        assert_eq!(
            r[1],
            format!("250 2.0.0 {} octets received", chunk1.len() + 2)
        );
        t.cmd("DATA", "503 5.5.1");
        t.cmd("MAIL FROM:<a@b>", "503 5.5.1");
        t.cmd("RCPT TO:<e@f>", "503 5.5.1");
        t.send("BDAT 0 LAST\r\nNOOP\r\n");
        t.expect(&["250 2.0.0 Message accepted", "250 2.0.0 OK"]);
        let (env, data, bare) = t.messages().remove(0);
        assert_eq!(data, b"Subject: x\r\n\r\n..dots\r\n.\r\nmore\r\n");
        assert!(env.chunked && !bare);
        assert_eq!(env.body, Body::BinaryMime);
        // BDAT 0 LAST as the only chunk: an empty message.
        let mut t = T::mx();
        t.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 0 LAST\r\n");
        t.expect(&["250 ", "250", "250", "250 2.0.0 Message"]);
        assert_eq!(t.messages()[0].1, b"");
        // A refused BDAT still has its chunk consumed: it is never read as commands.
        let mut t = T::mx();
        t.send("EHLO c\r\nBDAT 20 LAST\r\nMAIL FROM:<evil@x>\r\nNOOP\r\n");
        t.expect(&["250 ", "503 5.5.1 Send MAIL first", "250 2.0.0 OK"]);
        assert_eq!(t.events.len(), 1);
        let mut t = T::mx();
        t.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<unknown@d>\r\nBDAT 4\r\nQUITNOOP\r\n");
        t.expect(&["250 ", "250", "550", "554 5.5.1", "250 2.0.0 OK"]);
        assert!(!t.closed);
        assert!(!t.s.receiving_data());
    }

    #[test]
    fn recipient_cap_and_utf8() {
        let mut c = cfg(Mode::Mx);
        c.max_recipients = 2;
        let mut t = T::new(c, false);
        t.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nRCPT TO:<3@d>\r\n");
        t.expect(&["250 ", "250", "250", "250", "452 4.5.3"]);
        t.cmd("RSET", "250");
        t.cmd("MAIL FROM:<ä@b.example>", "553 5.6.7");
        t.cmd("MAIL FROM:<a@b>", "250");
        t.cmd("RCPT TO:<ü@d>", "553 5.6.7");
        t.cmd("RSET", "250");
        t.cmd("MAIL FROM:<ä@b.example> SMTPUTF8", "250");
        t.cmd("RCPT TO:<ü@d>", "250");
        t.cmd("RCPT TO:<Postmaster>", "250");
        t.send("DATA\r\nx\r\n.\r\n");
        let (env, _, _) = t.messages().remove(0);
        assert_eq!(env.rcpt_to, ["ü@d", "Postmaster"]);
        assert_eq!(env.protocol(), "UTF8SMTP");
    }

    /// Whole transcripts fed at once, split at every byte boundary, and in 1-byte
    /// chunks, give identical output and events.
    #[test]
    fn split_at_every_byte_boundary() {
        let transcripts: Vec<(Mode, bool, String)> = vec![
            (
                Mode::Mx,
                false,
                "EHLO client.example\r\nMAIL FROM:<s@x> SIZE=50\r\nRCPT TO:<a@h>\r\n\
                 RCPT TO:<unknown@h>\r\nDATA\r\n..stuffed\r\nbare\nlf\r\n.\r.\r\nx\n.\n\
                 \r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<b@h>\r\nBDAT 9\r\n\r\n.\r\n.abcBDAT 0 LAST\r\n\
                 FOO\r\nNOOP\r\nVRFY x\r\nQUIT\r\nNOOP\r\n"
                    .into(),
            ),
            (
                Mode::Submissions,
                true,
                format!(
                    "EHLO c\r\nAUTH LOGIN\r\n{}\r\n{}\r\nAUTH PLAIN {}\r\nMAIL FROM:<alice@h>\r\n\
                     RCPT TO:<r@x>\r\nDATA\r\nhi\r\n..\r\n.\r\nBDAT 3\r\nRSET\r\n\
                     {}\r\nMAIL FROM:<a@h> BODY=BINARYMIME\r\nRCPT TO:<r@x>\r\n\
                     BDAT 5 LAST\r\n\r\n.\r\nQUIT\r\n",
                    encode(b"alice"),
                    encode(b"pw"),
                    encode(b"\0alice\0pw"),
                    "A".repeat(1500)
                ),
            ),
        ];
        for (mode, tls, text) in transcripts {
            let input = text.as_bytes();
            let run = |chunks: &mut dyn Iterator<Item = &[u8]>| {
                let mut t = T::new(cfg(mode), tls);
                for c in chunks {
                    t.send(c);
                }
                (t.out, format!("{:?}", t.events), t.closed)
            };
            let whole = run(&mut std::iter::once(input));
            assert!(whole.2, "transcript should end with QUIT");
            assert!(!whole.0.is_empty());
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                let got = run(&mut [a, b].into_iter());
                assert_eq!(got, whole, "split at {i}");
            }
            let got = run(&mut input.chunks(1));
            assert_eq!(got, whole, "1-byte chunks");
            for n in [2, 3, 7, 64] {
                assert_eq!(run(&mut input.chunks(n)), whole, "{n}-byte chunks");
            }
        }
    }

    #[test]
    fn envelope_protocols() {
        let mut e = Envelope {
            helo: "h".into(),
            esmtp: false,
            mail_from: String::new(),
            rcpt_to: vec![],
            auth: None,
            tls: false,
            body: Body::SevenBit,
            smtputf8: false,
            declared_size: None,
            chunked: false,
        };
        assert_eq!(e.protocol(), "SMTP");
        e.esmtp = true;
        e.auth = Some("a".into());
        assert_eq!(e.protocol(), "ESMTPA");
        e.tls = true;
        assert_eq!(e.protocol(), "ESMTPSA");
        e.smtputf8 = true;
        assert_eq!(e.protocol(), "UTF8SMTPSA");
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic pseudo-random byte soup, biased to protocol characters.
        let alphabet = b"\r\n.:<>@ =\"\\\0\xffBDATMAILRCPTFROMTOEHLOAUTHPLAINSIZE0123456789";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for mode in [Mode::Mx, Mode::Submission, Mode::Submissions] {
            let mut c = cfg(mode);
            c.plaintext_auth_allowed = true;
            c.max_errors = u32::MAX;
            let mut t = T::new(c, false);
            for _ in 0..20_000 {
                let mut chunk = Vec::new();
                for _ in 0..(x % 17) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.push(alphabet[(x % alphabet.len() as u64) as usize]);
                }
                t.send(&chunk);
                if t.closed {
                    t = T::new(cfg(mode), false);
                }
            }
        }
    }
}
