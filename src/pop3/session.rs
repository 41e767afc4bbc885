//! The POP3 session as a sans-I/O state machine (STYLE habit 1): bytes in with
//! [`Session::feed`], [`Step`]s out of [`Session::next`]. It owns the protocol states of
//! RFC 1939 (AUTHORIZATION → TRANSACTION → UPDATE), the table of which command is valid in
//! which state, the maildrop snapshot with its deletion marks, STLS, USER/PASS and SASL.
//!
//! It never touches a socket, the store or a clock. Whatever needs the outside world is an
//! [`Event`] the driver answers with a [`Decision`]:
//! - [`Event::Authenticate`]: check the credentials, lock the maildrop, snapshot the INBOX;
//! - [`Event::Retrieve`]: read one message's stored bytes;
//! - [`Event::Commit`]: apply the deletions in one durable commit and release the lock.
//!
//! # Driver contract
//! - Write [`Session::greeting`] first.
//! - Call [`Session::next`] until it returns [`Step::NeedMoreInput`] and only then read from the
//!   socket and [`Session::feed`] what was read. Reading only then keeps the input buffer
//!   bounded (one read plus one partial line), and output is bounded per [`Step::Write`].
//! - On [`Step::Event`] answer with [`Session::answer`] (after any delay the failed-login
//!   limiter imposes); until then `next` returns [`Step::Wait`] and no input is processed
//!   (RFC 2449 §6.6 PIPELINING: commands are handled strictly in order).
//! - On [`Step::StartTls`] run the TLS handshake, then call [`Session::tls_established`].
//!   Bytes the client pipelined after `STLS` have already been discarded (the STARTTLS
//!   command-injection fix, CVE-2011-0411); anything fed before `tls_established` is dropped.
//! - On [`Step::Close`] flush and close.
//! - Timers are the driver's: RFC 1939 §3 asks for an inactivity autologout of at least
//!   10 minutes in TRANSACTION ([`Session::phase`] tells which phase applies). On server
//!   shutdown write [`Session::shutdown_reply`] and close, but let an outstanding
//!   [`Event::Commit`] finish first so a `+OK` is never owed for a lost commit.
//! - A connection that drops before `QUIT` applies no deletions (RFC 1939 §6: the UPDATE
//!   state is entered only by QUIT): the session simply stops being driven and the driver
//!   releases the maildrop lock without a commit.

use super::codec::{
    self, Command, MAX_AUTH_LINE, MAX_COMMAND_LINE, MAX_SASL_LINE, Reply, RespCode, Verb,
};
use crate::sasl::{self, Credentials, Exchange, Mechanism, Next};
use std::collections::VecDeque;

/// Output is handed out in [`Step::Write`]s of about this size at most while pipelined
/// commands are being answered (a single RETR is written whole).
const WRITE_BATCH: usize = 64 * 1024;

/// Per-connection settings, decided by the driver before the session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our host name, shown in the greeting and the goodbye.
    pub hostname: String,
    /// Whether the listener has a certificate, so `STLS` can be offered (RFC 2595 §4).
    pub tls_available: bool,
    /// Whether credentials may be sent without TLS on this connection (client address in
    /// `[auth] plaintext_networks`, SPEC §3).
    pub plaintext_auth_allowed: bool,
    /// Failed logins (wrong credentials) after which the connection is closed.
    pub max_auth_failures: u32,
}

/// One message of the maildrop snapshot taken at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildropEntry {
    /// The UIDL value: 1 to 70 characters in 0x21..=0x7E, stable for the life of the message
    /// and never reused (RFC 1939 §7; see [`codec::is_valid_uid`]).
    pub uid: String,
    /// The size as sent, computed by [`codec::message_size`]: every line ending counted as
    /// CRLF, byte-stuffing not counted (RFC 1939 §11).
    pub size: u64,
}

/// What the driver must do next (the shared [`crate::step::Step`] shape).
pub type Step = crate::step::Step<Event>;

/// Work for the driver; each is answered with one [`Decision`].
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Check these credentials; on success lock the account's maildrop and snapshot its INBOX.
    /// Answer with `LoggedIn`, `AuthFailed`, `InUse` or `Unavailable`.
    Authenticate {
        /// From USER/PASS or a SASL exchange.
        credentials: Credentials,
    },
    /// Read the stored bytes of one message. Answer with `Message`, `MessageGone` or
    /// `Unavailable`.
    Retrieve {
        /// 0-based index into the maildrop given in `LoggedIn`.
        index: usize,
        /// `Some(n)` for TOP: the session cuts the message itself, the driver may ignore it.
        top_lines: Option<u64>,
    },
    /// QUIT in TRANSACTION (RFC 1939 §6): remove these messages in one durable commit, then
    /// release the maildrop lock. Sent even when `deleted` is empty so the lock is released.
    /// Answer with `Committed` or `CommitFailed`.
    Commit {
        /// 0-based maildrop indices, ascending, no duplicates.
        deleted: Vec<usize>,
    },
}

/// The driver's answer to an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated and locked; the maildrop as it is now, in message-number order.
    LoggedIn {
        /// Message `n` is `maildrop[n - 1]`.
        maildrop: Vec<MaildropEntry>,
    },
    /// Wrong credentials, unknown user, or refused by policy.
    AuthFailed,
    /// Another session holds the maildrop (RFC 2449 §8.1.1).
    InUse,
    /// The raw stored bytes of the requested message (any line endings).
    Message(Vec<u8>),
    /// The message was removed meanwhile (for example expunged over IMAP).
    MessageGone,
    /// The deletions are durable and the lock is released.
    Committed,
    /// The commit failed; nothing was removed.
    CommitFailed,
    /// A transient server problem (store unavailable) for any event: `-ERR [SYS/TEMP]`.
    Unavailable,
}

/// The RFC 1939 protocol states, as used by the command table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// RFC 1939 §4: before login.
    Authorization,
    /// RFC 1939 §5: logged in, maildrop locked.
    Transaction,
    /// RFC 1939 §6: after QUIT, while the deletions are committed.
    Update,
}

/// The command table (STYLE habit 3): which verbs each state accepts. Checked once, before
/// the arguments are parsed and before dispatch.
pub fn allowed(phase: Phase, verb: Verb) -> bool {
    use Verb::*;
    match phase {
        // RFC 1939 §4 and §7 (USER, PASS, APOP), RFC 5034 §4 (AUTH), RFC 2595 §4 (STLS),
        // RFC 2449 §5 (CAPA in either state).
        Phase::Authorization => matches!(verb, User | Pass | Apop | Auth | Stls | Capa | Quit),
        // RFC 1939 §5 and §7 (TOP, UIDL), RFC 2449 §5.
        Phase::Transaction => matches!(
            verb,
            Stat | List | Retr | Dele | Noop | Rset | Quit | Top | Uidl | Capa
        ),
        // RFC 1939 §6: the session ends in UPDATE; no command is read.
        Phase::Update => false,
    }
}

/// Splits fed bytes into lines with a cap, discarding over-long lines in bounded memory
/// (STYLE habit 5).
#[derive(Default)]
struct LineReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as lines.
    consumed: usize,
    /// Bytes of `buf` after `consumed` known to hold no LF.
    scanned: usize,
    /// Inside an over-long line: drop bytes up to its LF.
    discarding: bool,
}

/// Never prints the buffer: it may hold a `PASS` line.
impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReader")
            .field("buffered", &self.buffered())
            .field("discarding", &self.discarding)
            .finish()
    }
}

/// One line from the [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line without its CRLF (or bare LF).
    Complete(Vec<u8>),
    /// A line longer than the cap ended here; its bytes are gone.
    TooLong,
}

impl LineReader {
    fn feed(&mut self, input: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(input);
    }

    /// Unconsumed bytes.
    fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.consumed)
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed.min(self.buf.len()));
            self.consumed = 0;
        }
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.consumed = 0;
        self.scanned = 0;
        self.discarding = false;
    }

    /// The next complete line, if any. `max` counts the CRLF.
    fn next_line(&mut self, max: usize) -> Option<Line> {
        let rest = self.buf.get(self.consumed..).unwrap_or(&[]);
        let from = self.scanned.min(rest.len());
        match rest[from..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let len = from + i + 1; // with the LF
                let line = rest.get(..len - 1).unwrap_or(&[]);
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.consumed += len;
                self.scanned = 0;
                if std::mem::take(&mut self.discarding) || len > max {
                    return Some(Line::TooLong);
                }
                Some(Line::Complete(line))
            }
            None => {
                if self.discarding || rest.len() >= max {
                    // Even if its LF came next this line would exceed `max`: drop what we have
                    // and the rest of it as it arrives.
                    self.discarding = true;
                    self.clear_keep_discarding();
                } else {
                    self.scanned = rest.len();
                    self.compact();
                }
                None
            }
        }
    }

    fn clear_keep_discarding(&mut self) {
        self.buf.clear();
        self.consumed = 0;
        self.scanned = 0;
    }
}

/// The maildrop snapshot with its deletion marks (RFC 1939 §5: DELE only marks).
#[derive(Debug)]
struct Maildrop {
    entries: Vec<MaildropEntry>,
    deleted: Vec<bool>,
    live_count: usize,
    live_size: u64,
}

impl Maildrop {
    fn new(entries: Vec<MaildropEntry>) -> Maildrop {
        let mut m = Maildrop {
            deleted: vec![false; entries.len()],
            entries,
            live_count: 0,
            live_size: 0,
        };
        m.reset();
        m
    }

    fn reset(&mut self) {
        self.deleted.iter_mut().for_each(|d| *d = false);
        self.live_count = self.entries.len();
        self.live_size = self
            .entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.size));
    }

    /// The 0-based index of a client's message number if it names a message not marked as
    /// deleted (RFC 1939 §5: deleted messages "may not be referenced").
    fn live(&self, msg: u64) -> Option<usize> {
        let index = usize::try_from(msg).ok()?.checked_sub(1)?;
        match self.deleted.get(index) {
            Some(false) => Some(index),
            _ => None,
        }
    }

    fn summary(&self) -> String {
        format!("{} messages ({} octets)", self.live_count, self.live_size)
    }
}

/// What the session is doing, with the data each state needs (STYLE habit 2).
#[derive(Debug)]
enum State {
    /// RFC 1939 §4. `user` is the name from USER awaiting PASS.
    Authorization { user: Option<String> },
    /// RFC 5034 §4: an AUTH exchange waiting for the client's next response line.
    Sasl(Exchange),
    /// RFC 1939 §5.
    Transaction(Maildrop),
    /// RFC 1939 §6: QUIT sent [`Event::Commit`]; the session ends after the answer.
    Update,
    /// Between `STLS` and the handshake's end; all input is dropped.
    TlsHandshake,
    /// Finished; `next` returns [`Step::Close`].
    Closed,
}

/// What an outstanding event is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Login,
    Retrieve {
        msg: u64,
        index: usize,
        top: Option<u64>,
    },
    Commit,
}

/// One POP3 connection's protocol state. See the module documentation for the driver
/// contract.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    tls_active: bool,
    state: State,
    awaiting: Option<Awaiting>,
    auth_failures: u32,
    reader: LineReader,
    /// Steps handed out by `next`; a `Write` is only ever followed by control steps.
    queue: VecDeque<Step>,
}

impl Session {
    /// A session for a new connection; `tls_active` is true on the implicit-TLS port (995).
    pub fn new(cfg: SessionConfig, tls_active: bool) -> Session {
        Session {
            cfg,
            tls_active,
            state: State::Authorization { user: None },
            awaiting: None,
            auth_failures: 0,
            reader: LineReader::default(),
            queue: VecDeque::new(),
        }
    }

    /// The greeting to write when the connection opens (RFC 1939 §4). No APOP timestamp:
    /// APOP is not offered.
    pub fn greeting(&self) -> Vec<u8> {
        Reply::ok(format!("{} POP3 server ready", self.cfg.hostname)).to_bytes()
    }

    /// POP3's own goodbye when the server shuts down mid-session (RFC 3206 §4 SYS/TEMP:
    /// the client should simply try again later).
    pub fn shutdown_reply(&self) -> Vec<u8> {
        Reply::err_code(RespCode::SysTemp, "server shutting down").to_bytes()
    }

    /// What to write when the inactivity autologout timer fires: nothing. RFC 1939 §3:
    /// the server "MUST close the TCP connection without removing any messages or sending
    /// any response to the client".
    pub fn timeout_reply(&self) -> Vec<u8> {
        Vec::new()
    }

    /// The line for a connection refused before any session starts because the server has
    /// too many connections (RFC 3206 §4 SYS/TEMP: try again later).
    pub fn busy_reply() -> Vec<u8> {
        Reply::err_code(RespCode::SysTemp, "too many connections, try again later").to_bytes()
    }

    /// The protocol phase, for the driver's timeouts and logs.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Authorization { .. } | State::Sasl(_) | State::TlsHandshake => {
                Phase::Authorization
            }
            State::Transaction(_) => Phase::Transaction,
            State::Update | State::Closed => Phase::Update,
        }
    }

    /// Whether TLS is active on the connection.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// Bytes held in the input buffer (unread input and a partial line, including consumed
    /// bytes not yet compacted away). With the driver contract above this stays under one
    /// read plus [`MAX_SASL_LINE`].
    pub fn buffered_bytes(&self) -> usize {
        self.reader.buf.len()
    }

    /// True while a command line has begun to arrive but is not complete (a partial
    /// line, or the rest of an over-long one being dropped): the driver's idle timeout
    /// then runs from the line's first byte.
    pub fn mid_command(&self) -> bool {
        self.reader.buffered() > 0 || self.reader.discarding
    }

    /// Hands the session bytes read from the client.
    pub fn feed(&mut self, input: &[u8]) {
        match self.state {
            // RFC 2595 §4: nothing sent in clear after STLS counts; after close nothing does.
            State::TlsHandshake | State::Closed => {}
            _ => self.reader.feed(input),
        }
    }

    /// The next thing the driver should do.
    // Named after imap-next's `next`; not an `Iterator`: it never ends (Close repeats).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Step {
        while self.can_read() && self.pending_output() < WRITE_BATCH {
            let max = match self.state {
                State::Sasl(_) => MAX_SASL_LINE,
                _ => MAX_AUTH_LINE,
            };
            match self.reader.next_line(max) {
                Some(line) => self.handle_line(line),
                None => break,
            }
        }
        if let Some(step) = self.queue.pop_front() {
            return step;
        }
        match self.state {
            State::Closed => Step::Close,
            State::TlsHandshake => Step::Wait,
            _ if self.awaiting.is_some() => Step::Wait,
            _ => Step::NeedMoreInput,
        }
    }

    /// The TLS handshake after `STLS` finished. The session starts over in AUTHORIZATION with
    /// no knowledge from before (RFC 2595 §4: the client must discard what it learnt, and so
    /// do we, e.g. a USER given in clear).
    pub fn tls_established(&mut self) {
        self.tls_active = true;
        if matches!(self.state, State::TlsHandshake) {
            self.state = State::Authorization { user: None };
        }
        self.reader.clear();
    }

    /// Answers the outstanding [`Event`]. A decision that does not fit the event is a driver
    /// bug: the client gets `-ERR [SYS/TEMP]` and the connection is closed. A decision with
    /// no event outstanding is ignored.
    pub fn answer(&mut self, decision: Decision) {
        let Some(awaiting) = self.awaiting.take() else {
            return;
        };
        match (awaiting, decision) {
            (Awaiting::Login, Decision::LoggedIn { maildrop }) => {
                debug_assert!(maildrop.iter().all(|e| codec::is_valid_uid(&e.uid)));
                let m = Maildrop::new(maildrop);
                self.reply(Reply::ok(format!("maildrop has {}", m.summary())));
                self.state = State::Transaction(m);
            }
            (Awaiting::Login, Decision::AuthFailed) => {
                self.state = State::Authorization { user: None };
                self.auth_failures = self.auth_failures.saturating_add(1);
                // RFC 3206 §5.
                self.reply(Reply::err_code(RespCode::Auth, "authentication failed"));
                if self.auth_failures >= self.cfg.max_auth_failures {
                    self.close();
                }
            }
            (Awaiting::Login, Decision::InUse) => {
                self.state = State::Authorization { user: None };
                // RFC 2449 §8.1.1.
                self.reply(Reply::err_code(RespCode::InUse, "mailbox already locked"));
            }
            (Awaiting::Login, Decision::Unavailable) => {
                self.state = State::Authorization { user: None };
                self.reply(temp_failure());
            }
            (Awaiting::Retrieve { index, top, .. }, Decision::Message(raw)) => {
                let mut out = Vec::new();
                match top {
                    // RFC 1939 §5 RETR: "+OK" then the message.
                    None => {
                        let size = match &self.state {
                            State::Transaction(m) => m.entries.get(index).map(|e| e.size),
                            _ => None,
                        };
                        let size = size.unwrap_or_else(|| codec::message_size(&raw));
                        Reply::ok(format!("{size} octets")).encode(&mut out);
                    }
                    // RFC 1939 §7 TOP.
                    Some(_) => Reply::ok("top of message follows").encode(&mut out),
                }
                codec::encode_message(&raw, top, &mut out);
                drop(raw);
                self.write(out);
            }
            (Awaiting::Retrieve { msg, .. }, Decision::MessageGone) => {
                self.reply(Reply::err(format!("message {msg} no longer exists")));
            }
            (Awaiting::Retrieve { .. }, Decision::Unavailable) => self.reply(temp_failure()),
            (Awaiting::Commit, Decision::Committed) => {
                // RFC 1939 §6: +OK only once the deletions are durable (SPEC §5).
                self.reply(Reply::ok(format!(
                    "{} POP3 server signing off",
                    self.cfg.hostname
                )));
                self.close();
            }
            (Awaiting::Commit, Decision::CommitFailed | Decision::Unavailable) => {
                // RFC 1939 §6 "-ERR some deleted messages not removed"; RFC 3206 §4.
                self.reply(Reply::err_code(
                    RespCode::SysTemp,
                    "deleted messages not removed, try again later",
                ));
                self.close();
            }
            (_, _) => {
                self.reply(Reply::err_code(RespCode::SysTemp, "internal server error"));
                self.close();
            }
        }
    }

    fn can_read(&self) -> bool {
        self.awaiting.is_none()
            && !matches!(
                self.state,
                State::Closed | State::TlsHandshake | State::Update
            )
            && self.queue.iter().all(|s| matches!(s, Step::Write(_)))
    }

    fn pending_output(&self) -> usize {
        self.queue
            .iter()
            .map(|s| match s {
                Step::Write(b) => b.len(),
                _ => 0,
            })
            .sum()
    }

    fn write(&mut self, bytes: Vec<u8>) {
        if let Some(Step::Write(last)) = self.queue.back_mut() {
            last.extend_from_slice(&bytes);
        } else {
            self.queue.push_back(Step::Write(bytes));
        }
    }

    fn reply(&mut self, reply: Reply) {
        if let Some(Step::Write(last)) = self.queue.back_mut() {
            reply.encode(last);
        } else {
            self.queue.push_back(Step::Write(reply.to_bytes()));
        }
    }

    fn event(&mut self, event: Event, awaiting: Awaiting) {
        self.awaiting = Some(awaiting);
        self.queue.push_back(Step::Event(event));
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.reader.clear();
        self.queue.push_back(Step::Close);
    }

    /// Whether credentials may be sent now (SPEC §3 `[auth] plaintext_networks`; RFC 2595 §2.2
    /// lets a server refuse plaintext passwords outside TLS).
    fn credentials_allowed(&self) -> bool {
        self.tls_active || self.cfg.plaintext_auth_allowed
    }

    fn handle_line(&mut self, line: Line) {
        let line = match line {
            Line::Complete(line) => line,
            Line::TooLong => {
                if matches!(self.state, State::Sasl(_)) {
                    self.state = State::Authorization { user: None };
                }
                // RFC 2449 §4 limits command lines; the excess was dropped unread.
                self.reply(Reply::err("line too long"));
                return;
            }
        };
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Sasl(exchange) => {
                self.state = State::Authorization { user: None };
                self.sasl_step(exchange.step(&line));
            }
            state => {
                self.state = state;
                self.command(&line);
            }
        }
    }

    fn command(&mut self, line: &[u8]) {
        let (verb, args) = match codec::split_verb(line) {
            Ok(v) => v,
            Err(e) => return self.reply(Reply::err(e.to_string())),
        };
        // RFC 2449 §4: 255 octets with CRLF; only AUTH (initial response) may use more.
        if verb != Verb::Auth && line.len() + 2 > MAX_COMMAND_LINE {
            return self.reply(Reply::err("line too long"));
        }
        if !allowed(self.phase(), verb) {
            return self.reply(Reply::err(format!(
                "{} not valid in this state",
                verb.keyword()
            )));
        }
        match codec::parse_args(verb, args) {
            Ok(cmd) => self.dispatch(cmd),
            Err(e) => self.reply(Reply::err(e.to_string())),
        }
    }

    /// Runs a command the table allows in the current state.
    fn dispatch(&mut self, cmd: Command) {
        match cmd {
            Command::Capa => self.capa(),
            Command::Quit => self.quit(),
            Command::User(name) => self.user(name),
            Command::Pass(password) => self.pass(password),
            // RFC 1939 §7 makes APOP optional; it needs plaintext-equivalent stored secrets.
            Command::Apop => self.reply(Reply::err("APOP not supported, use USER/PASS or AUTH")),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
            Command::Stls => self.stls(),
            Command::Stat => self.with_maildrop(|m| Reply::ok(stat_line(m)).to_bytes()),
            Command::List(msg) => self.list_or_uidl(msg, |i, e| format!("{} {}", i, e.size)),
            Command::Uidl(msg) => self.list_or_uidl(msg, |i, e| format!("{} {}", i, e.uid)),
            Command::Retr(msg) => self.retrieve(msg, None),
            Command::Top(msg, n) => self.retrieve(msg, Some(n)),
            Command::Dele(msg) => self.dele(msg),
            // RFC 1939 §5 NOOP.
            Command::Noop => self.reply(Reply::ok("")),
            // RFC 1939 §5 RSET: unmark every deleted message.
            Command::Rset => self.with_maildrop(|m| {
                m.reset();
                Reply::ok(format!("maildrop has {}", m.summary())).to_bytes()
            }),
        }
    }

    /// RFC 2449 §5 CAPA. Valid in: Authorization, Transaction. Login-related capabilities are
    /// listed only in AUTHORIZATION, where their commands are valid.
    fn capa(&mut self) {
        let mut caps: Vec<&str> = vec!["TOP", "UIDL"]; // RFC 2449 §6.1, §6.8
        let authorization = self.phase() == Phase::Authorization;
        if authorization && self.credentials_allowed() {
            caps.push("USER"); // §6.2
            caps.push("SASL PLAIN LOGIN"); // §6.3, RFC 5034 §3
        }
        caps.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]); // §6.4, RFC 3206 §6, §6.6
        if authorization && self.cfg.tls_available && !self.tls_active {
            caps.push("STLS"); // RFC 2595 §4
        }
        caps.push("IMPLEMENTATION Letterbox"); // §6.9
        let mut out = Reply::ok("capability list follows").to_bytes();
        for cap in caps {
            codec::encode_line(cap.as_bytes(), &mut out);
        }
        codec::encode_terminator(&mut out);
        self.write(out);
    }

    /// RFC 1939 §4 (QUIT in AUTHORIZATION) and §6 (QUIT in TRANSACTION enters UPDATE).
    /// Valid in: Authorization, Transaction.
    fn quit(&mut self) {
        match std::mem::replace(&mut self.state, State::Update) {
            State::Transaction(m) => {
                let deleted = m
                    .deleted
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| d.then_some(i))
                    .collect();
                self.event(Event::Commit { deleted }, Awaiting::Commit);
            }
            _ => {
                self.reply(Reply::ok(format!(
                    "{} POP3 server signing off",
                    self.cfg.hostname
                )));
                self.close();
            }
        }
    }

    fn refuse_plaintext(&mut self) {
        // RFC 3206 §5: AUTH covers "an attempt to authenticate in violation of policy".
        self.reply(Reply::err_code(
            RespCode::Auth,
            "plaintext authentication not allowed without TLS, use STLS or port 995",
        ));
    }

    /// RFC 1939 §7 USER. Valid in: Authorization. Always `+OK`: whether a user exists is not
    /// revealed before the password.
    fn user(&mut self, name: String) {
        if !self.credentials_allowed() {
            return self.refuse_plaintext();
        }
        self.state = State::Authorization { user: Some(name) };
        self.reply(Reply::ok("send PASS"));
    }

    /// RFC 1939 §7 PASS. Valid in: Authorization, right after a successful USER.
    fn pass(&mut self, password: sasl::Secret<String>) {
        if !self.credentials_allowed() {
            return self.refuse_plaintext();
        }
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            _ => None,
        };
        let Some(username) = user else {
            return self.reply(Reply::err("send USER first"));
        };
        let credentials = Credentials {
            authzid: None,
            username,
            password,
        };
        self.event(Event::Authenticate { credentials }, Awaiting::Login);
    }

    /// RFC 5034 §4 AUTH. Valid in: Authorization.
    fn auth(&mut self, mechanism: Option<String>, initial: Option<Vec<u8>>) {
        self.state = State::Authorization { user: None };
        let Some(mechanism) = mechanism else {
            // Bare AUTH lists the mechanisms: not in RFC 5034 (it uses CAPA), but sent by old
            // Outlook versions and answered by Dovecot the same way.
            let mut out = Reply::ok("").to_bytes();
            if self.credentials_allowed() {
                codec::encode_line(b"PLAIN", &mut out);
                codec::encode_line(b"LOGIN", &mut out);
            }
            codec::encode_terminator(&mut out);
            return self.write(out);
        };
        let Some(mech) = Mechanism::parse(&mechanism) else {
            return self.reply(Reply::err("unsupported authentication mechanism"));
        };
        if !self.credentials_allowed() {
            return self.refuse_plaintext();
        }
        self.sasl_step(Exchange::start(mech, initial.as_deref()));
    }

    /// Handles the outcome of a SASL start or step (RFC 5034 §4).
    fn sasl_step(&mut self, result: Result<(Exchange, Next), sasl::SaslError>) {
        match result {
            Ok((exchange, Next::Challenge(challenge))) => {
                let mut out = b"+ ".to_vec();
                out.extend_from_slice(challenge.as_bytes());
                out.extend_from_slice(b"\r\n");
                self.write(out);
                self.state = State::Sasl(exchange);
            }
            Ok((_, Next::Done(credentials))) => {
                self.state = State::Authorization { user: None };
                self.event(Event::Authenticate { credentials }, Awaiting::Login);
            }
            // RFC 5034 §4: "*" cancels, and the server rejects the AUTH with -ERR.
            Err(e) => {
                self.state = State::Authorization { user: None };
                self.reply(Reply::err(e.to_string()));
            }
        }
    }

    /// RFC 2595 §4 STLS. Valid in: Authorization, once, when TLS is available.
    fn stls(&mut self) {
        if self.tls_active {
            return self.reply(Reply::err("TLS already active"));
        }
        if !self.cfg.tls_available {
            return self.reply(Reply::err("STLS not available"));
        }
        self.reply(Reply::ok("begin TLS negotiation"));
        // Bytes pipelined after STLS were sent in clear and must not be acted on once TLS is up.
        self.reader.clear();
        self.state = State::TlsHandshake;
        self.queue.push_back(Step::StartTls);
    }

    /// Runs `f` on the maildrop and writes its output. The table guarantees TRANSACTION.
    fn with_maildrop(&mut self, f: impl FnOnce(&mut Maildrop) -> Vec<u8>) {
        let out = match &mut self.state {
            State::Transaction(m) => f(m),
            _ => Reply::err("no maildrop").to_bytes(),
        };
        self.write(out);
    }

    /// RFC 1939 §5 LIST and §7 UIDL. Valid in: Transaction. Deleted messages are not listed.
    fn list_or_uidl(&mut self, msg: Option<u64>, line: fn(usize, &MaildropEntry) -> String) {
        self.with_maildrop(|m| match msg {
            Some(msg) => match m.live(msg).and_then(|i| Some((i, m.entries.get(i)?))) {
                Some((i, e)) => Reply::ok(line(i + 1, e)).to_bytes(),
                None => no_such_message(msg).to_bytes(),
            },
            None => {
                let mut out = Reply::ok(m.summary()).to_bytes();
                for (i, e) in m.entries.iter().enumerate() {
                    if m.deleted.get(i) == Some(&false) {
                        codec::encode_line(line(i + 1, e).as_bytes(), &mut out);
                    }
                }
                codec::encode_terminator(&mut out);
                out
            }
        });
    }

    /// RFC 1939 §5 RETR and §7 TOP. Valid in: Transaction.
    fn retrieve(&mut self, msg: u64, top: Option<u64>) {
        let index = match &self.state {
            State::Transaction(m) => m.live(msg),
            _ => None,
        };
        match index {
            Some(index) => self.event(
                Event::Retrieve {
                    index,
                    top_lines: top,
                },
                Awaiting::Retrieve { msg, index, top },
            ),
            None => self.reply(no_such_message(msg)),
        }
    }

    /// RFC 1939 §5 DELE: only marks; UPDATE removes. Valid in: Transaction.
    fn dele(&mut self, msg: u64) {
        self.with_maildrop(|m| match m.live(msg) {
            Some(i) => {
                if let (Some(d), Some(e)) = (m.deleted.get_mut(i), m.entries.get(i)) {
                    *d = true;
                    m.live_count = m.live_count.saturating_sub(1);
                    m.live_size = m.live_size.saturating_sub(e.size);
                }
                Reply::ok(format!("message {msg} deleted")).to_bytes()
            }
            None => no_such_message(msg).to_bytes(),
        });
    }
}

/// RFC 1939 §5 STAT: `+OK count size`, deleted messages not counted.
fn stat_line(m: &Maildrop) -> String {
    format!("{} {}", m.live_count, m.live_size)
}

fn no_such_message(msg: u64) -> Reply {
    if msg == u64::MAX {
        Reply::err("no such message")
    } else {
        Reply::err(format!("no such message: {msg}"))
    }
}

fn temp_failure() -> Reply {
    Reply::err_code(
        RespCode::SysTemp,
        "temporary server failure, try again later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::encode;

    const HOST: &str = "letterbox.test";

    fn cfg(plaintext: bool) -> SessionConfig {
        SessionConfig {
            hostname: HOST.into(),
            tls_available: true,
            plaintext_auth_allowed: plaintext,
            max_auth_failures: 3,
        }
    }

    /// The fake driver: a store with one account and a maildrop, answering every event at
    /// once and recording what it was asked.
    #[derive(Debug, Clone)]
    struct Fake {
        messages: Vec<(&'static str, Vec<u8>)>,
        in_use: bool,
        commit_ok: bool,
        commits: Vec<Vec<usize>>,
        logins: Vec<String>,
        tls_starts: usize,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                messages: vec![
                    ("uid-a", b"Subject: one\r\n\r\nhello\r\n".to_vec()),
                    (
                        "uid-b",
                        b"Subject: two\n\n.dotted\nline two\n..\nlast".to_vec(),
                    ),
                    ("uid-c", b"Subject: three\r\n\r\nx\r\n".to_vec()),
                ],
                in_use: false,
                commit_ok: true,
                commits: vec![],
                logins: vec![],
                tls_starts: 0,
            }
        }

        fn decide(&mut self, event: Event) -> Decision {
            match event {
                Event::Authenticate { credentials } => {
                    self.logins.push(credentials.username.clone());
                    if credentials.username != "alice" || credentials.password.expose() != "pw" {
                        Decision::AuthFailed
                    } else if self.in_use {
                        Decision::InUse
                    } else {
                        Decision::LoggedIn {
                            maildrop: self
                                .messages
                                .iter()
                                .map(|(uid, raw)| MaildropEntry {
                                    uid: uid.to_string(),
                                    size: codec::message_size(raw),
                                })
                                .collect(),
                        }
                    }
                }
                Event::Retrieve { index, .. } => match self.messages.get(index) {
                    Some((_, raw)) => Decision::Message(raw.clone()),
                    None => Decision::MessageGone,
                },
                Event::Commit { deleted } => {
                    self.commits.push(deleted);
                    if self.commit_ok {
                        Decision::Committed
                    } else {
                        Decision::CommitFailed
                    }
                }
            }
        }
    }

    /// Drives `s` until it needs input or closes; returns what it wrote.
    fn drive(s: &mut Session, fake: &mut Fake, closed: &mut bool) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            match s.next() {
                Step::Write(b) => out.extend_from_slice(&b),
                Step::Event(e) => {
                    let d = fake.decide(e);
                    s.answer(d);
                }
                Step::NeedMoreInput => return out,
                Step::Wait => panic!("fake answers at once; Wait is unexpected"),
                Step::Compress => panic!("POP3 never compresses"),
                Step::StartTls => {
                    fake.tls_starts += 1;
                    s.tls_established();
                }
                Step::Close => {
                    *closed = true;
                    return out;
                }
            }
        }
    }

    /// Transcript DSL: `tc.cmd("STAT", "+OK 3 ...")` feeds a line and checks the reply starts
    /// with the expected text.
    struct Tc {
        s: Session,
        fake: Fake,
        closed: bool,
    }

    impl Tc {
        fn new(cfg: SessionConfig, tls: bool) -> Tc {
            let s = Session::new(cfg, tls);
            assert!(s.greeting().starts_with(b"+OK "));
            Tc {
                s,
                fake: Fake::new(),
                closed: false,
            }
        }

        fn plain() -> Tc {
            Tc::new(cfg(true), false)
        }

        fn logged_in() -> Tc {
            let mut tc = Tc::plain();
            tc.cmd("USER alice", "+OK");
            tc.cmd("PASS pw", "+OK maildrop has 3 messages");
            tc
        }

        fn send(&mut self, bytes: &[u8]) -> String {
            self.s.feed(bytes);
            let out = drive(&mut self.s, &mut self.fake, &mut self.closed);
            String::from_utf8(out).unwrap()
        }

        #[track_caller]
        fn cmd(&mut self, line: &str, expect: &str) -> String {
            let out = self.send(format!("{line}\r\n").as_bytes());
            assert!(
                out.starts_with(expect),
                "{line:?}: expected {expect:?}, got {out:?}"
            );
            assert!(out.ends_with("\r\n"), "{out:?}");
            out
        }
    }

    fn sample(verb: Verb) -> &'static str {
        match verb {
            Verb::User => "USER alice",
            Verb::Pass => "PASS pw",
            Verb::Apop => "APOP alice c4c9334bac560ecc979e58001b3e22fb",
            Verb::Auth => "AUTH",
            Verb::Stls => "STLS",
            Verb::Capa => "CAPA",
            Verb::Quit => "QUIT",
            Verb::Stat => "STAT",
            Verb::List => "LIST",
            Verb::Retr => "RETR 1",
            Verb::Dele => "DELE 1",
            Verb::Noop => "NOOP",
            Verb::Rset => "RSET",
            Verb::Top => "TOP 1 0",
            Verb::Uidl => "UIDL",
        }
    }

    #[test]
    fn command_table_exhaustive() {
        let expected = |phase: Phase, verb: Verb| -> bool {
            use Verb::*;
            match phase {
                Phase::Authorization => [User, Pass, Apop, Auth, Stls, Capa, Quit].contains(&verb),
                Phase::Transaction => {
                    [Stat, List, Retr, Dele, Noop, Rset, Quit, Top, Uidl, Capa].contains(&verb)
                }
                Phase::Update => false,
            }
        };
        for phase in [Phase::Authorization, Phase::Transaction, Phase::Update] {
            for verb in Verb::ALL {
                assert_eq!(
                    allowed(phase, verb),
                    expected(phase, verb),
                    "{phase:?} {verb:?}"
                );
            }
        }
        // And through the session: every command in every reachable state.
        for verb in Verb::ALL {
            let refused = format!("-ERR {} not valid in this state", verb.keyword());
            let mut tc = Tc::plain();
            let out = tc.send(format!("{}\r\n", sample(verb)).as_bytes());
            assert_eq!(
                out.starts_with(&refused),
                !expected(Phase::Authorization, verb),
                "AUTHORIZATION {verb:?}: {out:?}"
            );
            let mut tc = Tc::logged_in();
            let out = tc.send(format!("{}\r\n", sample(verb)).as_bytes());
            assert_eq!(
                out.starts_with(&refused),
                !expected(Phase::Transaction, verb),
                "TRANSACTION {verb:?}: {out:?}"
            );
        }
        // UPDATE: after QUIT nothing more is read while the commit is outstanding, and the
        // session closes after it.
        for verb in Verb::ALL {
            let mut tc = Tc::logged_in();
            tc.s.feed(format!("QUIT\r\n{}\r\n", sample(verb)).as_bytes());
            assert!(matches!(tc.s.next(), Step::Event(Event::Commit { .. })));
            assert_eq!(tc.s.phase(), Phase::Update);
            assert_eq!(tc.s.next(), Step::Wait);
            tc.s.answer(Decision::Committed);
            assert!(matches!(tc.s.next(), Step::Write(b) if b.starts_with(b"+OK")));
            assert_eq!(tc.s.next(), Step::Close);
            assert_eq!(tc.s.next(), Step::Close);
        }
    }

    #[test]
    fn user_pass_login() {
        let mut tc = Tc::plain();
        tc.cmd("PASS pw", "-ERR send USER first");
        tc.cmd("USER alice", "+OK");
        tc.cmd("PASS wrong", "-ERR [AUTH] authentication failed");
        // A failed PASS forgets the USER (RFC 1939 §7).
        tc.cmd("PASS pw", "-ERR send USER first");
        tc.cmd("USER alice", "+OK");
        tc.cmd("PASS pw", "+OK maildrop has 3 messages (");
        assert_eq!(tc.s.phase(), Phase::Transaction);
        assert_eq!(tc.fake.logins, ["alice", "alice"]);
    }

    #[test]
    fn too_many_failures_close() {
        let mut tc = Tc::plain();
        for i in 0..3 {
            assert!(!tc.closed, "closed after {i}");
            tc.cmd("USER alice", "+OK");
            tc.cmd("PASS nope", "-ERR [AUTH] authentication failed");
        }
        assert!(tc.closed);
        assert_eq!(tc.s.next(), Step::Close);
    }

    #[test]
    fn in_use_and_unavailable() {
        let mut tc = Tc::plain();
        tc.fake.in_use = true;
        tc.cmd("USER alice", "+OK");
        tc.cmd("PASS pw", "-ERR [IN-USE] mailbox already locked");
        assert_eq!(tc.s.phase(), Phase::Authorization);
        assert!(!tc.closed);

        let mut s = Session::new(cfg(true), false);
        s.feed(b"USER a\r\nPASS b\r\n");
        assert!(matches!(s.next(), Step::Write(_)));
        assert!(matches!(s.next(), Step::Event(Event::Authenticate { .. })));
        s.answer(Decision::Unavailable);
        assert_eq!(
            s.next(),
            Step::Write(b"-ERR [SYS/TEMP] temporary server failure, try again later\r\n".to_vec())
        );
        assert_eq!(s.next(), Step::NeedMoreInput);
    }

    #[test]
    fn wrong_decision_closes() {
        let mut s = Session::new(cfg(true), false);
        s.answer(Decision::Committed); // nothing outstanding: ignored
        assert_eq!(s.next(), Step::NeedMoreInput);
        s.feed(b"USER a\r\nPASS b\r\n");
        s.next();
        assert!(matches!(s.next(), Step::Event(_)));
        s.answer(Decision::Message(vec![]));
        assert!(matches!(s.next(), Step::Write(b) if b.starts_with(b"-ERR [SYS/TEMP]")));
        assert_eq!(s.next(), Step::Close);
    }

    #[test]
    fn auth_plain() {
        let ir = encode(b"\0alice\0pw");
        // With initial response.
        let mut tc = Tc::plain();
        tc.cmd(&format!("AUTH PLAIN {ir}"), "+OK maildrop has 3");
        // Without: "+ " continuation.
        let mut tc = Tc::plain();
        assert_eq!(tc.cmd("AUTH PLAIN", "+ "), "+ \r\n");
        tc.cmd(&ir, "+OK maildrop has 3");
        // Lower-case mechanism, wrong password.
        let mut tc = Tc::plain();
        tc.cmd("auth plain", "+ ");
        tc.cmd(
            &encode(b"\0alice\0bad"),
            "-ERR [AUTH] authentication failed",
        );
        // Cancel with "*" (RFC 5034 §4).
        tc.cmd("AUTH PLAIN", "+ ");
        tc.cmd("*", "-ERR authentication cancelled");
        tc.cmd("STAT", "-ERR STAT not valid");
        // Garbage.
        tc.cmd("AUTH PLAIN !!!", "-ERR invalid base64");
        tc.cmd("AUTH PLAIN =", "-ERR malformed");
        tc.cmd("AUTH CRAM-MD5", "-ERR unsupported");
        // LOGIN, two challenges.
        tc.cmd("AUTH LOGIN", &format!("+ {}", encode(b"Username:")));
        tc.cmd(&encode(b"alice"), &format!("+ {}", encode(b"Password:")));
        tc.cmd(&encode(b"pw"), "+OK");
        // Bare AUTH lists mechanisms.
        let mut tc = Tc::plain();
        assert_eq!(tc.cmd("AUTH", "+OK"), "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
        // A SASL response may be longer than a command line, up to MAX_SASL_LINE.
        let long = encode(&[b"\0alice\0".as_slice(), &[b'p'; 700]].concat());
        tc.cmd("AUTH PLAIN", "+ ");
        tc.cmd(&long, "-ERR [AUTH] authentication failed");
        tc.cmd("AUTH PLAIN", "+ ");
        tc.cmd(&"A".repeat(MAX_SASL_LINE), "-ERR line too long");
        tc.cmd("NOOP", "-ERR NOOP not valid");
    }

    #[test]
    fn credentials_refused_without_tls() {
        let refused = "-ERR [AUTH] plaintext authentication not allowed";
        let mut tc = Tc::new(cfg(false), false);
        let capa = tc.cmd("CAPA", "+OK");
        assert!(!capa.contains("USER") && !capa.contains("SASL") && capa.contains("STLS"));
        tc.cmd("USER alice", refused);
        tc.cmd("PASS pw", refused);
        tc.cmd(&format!("AUTH PLAIN {}", encode(b"\0alice\0pw")), refused);
        tc.cmd("AUTH PLAIN", refused);
        assert_eq!(tc.cmd("AUTH", "+OK"), "+OK\r\n.\r\n");
        assert!(tc.fake.logins.is_empty());
        // After STLS the same commands work.
        tc.cmd("STLS", "+OK begin TLS");
        assert_eq!(tc.fake.tls_starts, 1);
        let capa = tc.cmd("CAPA", "+OK");
        assert!(capa.contains("\r\nUSER\r\n") && capa.contains("\r\nSASL PLAIN LOGIN\r\n"));
        assert!(!capa.contains("STLS"));
        tc.cmd("STLS", "-ERR TLS already active");
        tc.cmd("USER alice", "+OK");
        tc.cmd("PASS pw", "+OK");
        // Implicit TLS (port 995).
        let mut tc = Tc::new(cfg(false), true);
        tc.cmd("USER alice", "+OK");
        tc.cmd("PASS pw", "+OK");
    }

    #[test]
    fn capa_lists() {
        let mut tc = Tc::plain();
        assert_eq!(
            tc.cmd("CAPA", "+OK"),
            "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN LOGIN\r\n\
             RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nSTLS\r\nIMPLEMENTATION Letterbox\r\n.\r\n"
        );
        let mut tc = Tc::new(
            SessionConfig {
                tls_available: false,
                ..cfg(true)
            },
            false,
        );
        assert!(!tc.cmd("CAPA", "+OK").contains("STLS"));
        tc.cmd("STLS", "-ERR STLS not available");
        let mut tc = Tc::logged_in();
        assert_eq!(
            tc.cmd("CAPA", "+OK"),
            "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
             PIPELINING\r\nIMPLEMENTATION Letterbox\r\n.\r\n"
        );
    }

    #[test]
    fn stls_discards_pipelined_bytes() {
        let mut s = Session::new(cfg(false), false);
        s.feed(b"STLS\r\nUSER alice\r\nPASS pw\r\n");
        assert_eq!(
            s.next(),
            Step::Write(b"+OK begin TLS negotiation\r\n".to_vec())
        );
        assert_eq!(s.next(), Step::StartTls);
        assert_eq!(s.next(), Step::Wait);
        s.feed(b"more clear text\r\n"); // dropped: fed before the handshake finished
        assert_eq!(s.next(), Step::Wait);
        s.tls_established();
        assert!(s.tls_active());
        assert_eq!(s.next(), Step::NeedMoreInput);
        s.feed(b"PASS pw\r\n");
        assert_eq!(s.next(), Step::Write(b"-ERR send USER first\r\n".to_vec()));
    }

    #[test]
    fn retr_and_top() {
        let mut tc = Tc::logged_in();
        tc.cmd("LIST", "+OK 3 messages");
        // Bare LF, dot-stuffing, no final newline.
        let want2 = "Subject: two\r\n\r\n..dotted\r\nline two\r\n...\r\nlast\r\n";
        let size2 = want2.len() - 2; // two stuffing dots
        assert_eq!(
            tc.cmd("RETR 2", "+OK"),
            format!("+OK {size2} octets\r\n{want2}.\r\n")
        );
        assert_eq!(
            tc.cmd("TOP 2 0", "+OK"),
            "+OK top of message follows\r\nSubject: two\r\n\r\n.\r\n"
        );
        assert_eq!(
            tc.cmd("TOP 2 2", "+OK"),
            "+OK top of message follows\r\nSubject: two\r\n\r\n..dotted\r\nline two\r\n.\r\n"
        );
        assert_eq!(
            tc.cmd("TOP 2 99999999999999999999999", "+OK"),
            format!("+OK top of message follows\r\n{want2}.\r\n")
        );
        assert_eq!(
            tc.cmd("RETR 1", "+OK"),
            "+OK 23 octets\r\nSubject: one\r\n\r\nhello\r\n.\r\n"
        );
        tc.cmd("RETR 0", "-ERR no such message: 0");
        tc.cmd("RETR 4", "-ERR no such message: 4");
        tc.cmd("RETR 99999999999999999999999", "-ERR no such message");
        tc.cmd("TOP 4 1", "-ERR no such message");
        tc.cmd("RETR", "-ERR usage: RETR msg");
        tc.cmd("TOP 1", "-ERR usage: TOP msg lines");
        // Expunged meanwhile over IMAP.
        tc.fake.messages.truncate(2);
        tc.cmd("RETR 3", "-ERR message 3 no longer exists");
        tc.cmd("NOOP", "+OK");
    }

    #[test]
    fn dele_hides_rset_restores() {
        let mut tc = Tc::logged_in();
        let stat = tc.cmd("STAT", "+OK 3 ");
        tc.cmd("DELE 2", "+OK message 2 deleted");
        tc.cmd("DELE 2", "-ERR no such message: 2");
        let size1 = codec::message_size(&tc.fake.messages[0].1);
        let size3 = codec::message_size(&tc.fake.messages[2].1);
        tc.cmd("STAT", &format!("+OK 2 {}\r\n", size1 + size3));
        assert_eq!(
            tc.cmd("LIST", "+OK"),
            format!(
                "+OK 2 messages ({} octets)\r\n1 {size1}\r\n3 {size3}\r\n.\r\n",
                size1 + size3
            )
        );
        assert_eq!(
            tc.cmd("UIDL", "+OK"),
            format!(
                "+OK 2 messages ({} octets)\r\n1 uid-a\r\n3 uid-c\r\n.\r\n",
                size1 + size3
            )
        );
        tc.cmd("LIST 2", "-ERR no such message");
        tc.cmd("UIDL 2", "-ERR no such message");
        tc.cmd("RETR 2", "-ERR no such message");
        tc.cmd("TOP 2 1", "-ERR no such message");
        tc.cmd("LIST 3", &format!("+OK 3 {size3}\r\n"));
        tc.cmd("UIDL 3", "+OK 3 uid-c\r\n");
        tc.cmd("RSET", "+OK maildrop has 3 messages");
        assert_eq!(tc.cmd("STAT", "+OK"), stat);
        tc.cmd("UIDL 2", "+OK 2 uid-b\r\n");
    }

    #[test]
    fn quit_commits_exactly_the_deleted() {
        let mut tc = Tc::logged_in();
        tc.cmd("DELE 3", "+OK");
        tc.cmd("DELE 1", "+OK");
        tc.cmd("QUIT", &format!("+OK {HOST} POP3 server signing off"));
        assert!(tc.closed);
        assert_eq!(tc.fake.commits, [vec![0, 2]]);

        // Nothing deleted: still a Commit, to release the lock.
        let mut tc = Tc::logged_in();
        tc.cmd("DELE 1", "+OK");
        tc.cmd("RSET", "+OK");
        tc.cmd("QUIT", "+OK");
        assert_eq!(tc.fake.commits, [Vec::<usize>::new()]);

        // A failed commit is not acknowledged.
        let mut tc = Tc::logged_in();
        tc.fake.commit_ok = false;
        tc.cmd("DELE 1", "+OK");
        tc.cmd("QUIT", "-ERR [SYS/TEMP] deleted messages not removed");
        assert!(tc.closed);

        // QUIT before login: no commit.
        let mut tc = Tc::plain();
        tc.cmd("QUIT", "+OK");
        assert!(tc.closed && tc.fake.commits.is_empty());
    }

    #[test]
    fn commit_waits_for_answer() {
        let mut s = Session::new(cfg(true), false);
        s.feed(b"USER alice\r\nPASS pw\r\nDELE 1\r\nQUIT\r\n");
        let mut fake = Fake::new();
        assert!(matches!(s.next(), Step::Write(_)));
        let Step::Event(e) = s.next() else { panic!() };
        s.answer(fake.decide(e));
        // +OK login and +OK deleted come batched; then the Commit, and no +OK before it.
        let Step::Write(b) = s.next() else { panic!() };
        assert!(b.ends_with(b"+OK message 1 deleted\r\n"));
        assert_eq!(s.next(), Step::Event(Event::Commit { deleted: vec![0] }));
        assert_eq!(s.next(), Step::Wait);
        assert_eq!(
            s.shutdown_reply(),
            b"-ERR [SYS/TEMP] server shutting down\r\n"
        );
        assert_eq!(
            s.timeout_reply(),
            b"",
            "RFC 1939 §3: close without a response"
        );
        assert_eq!(
            Session::busy_reply(),
            b"-ERR [SYS/TEMP] too many connections, try again later\r\n"
        );
        s.answer(Decision::Committed);
        assert!(matches!(s.next(), Step::Write(b) if b.starts_with(b"+OK")));
        assert_eq!(s.next(), Step::Close);
        s.feed(b"NOOP\r\n");
        assert_eq!(s.next(), Step::Close);
    }

    #[test]
    fn malformed_input_continues() {
        let mut tc = Tc::logged_in();
        tc.cmd("", "-ERR unknown command");
        tc.cmd("XYZZY", "-ERR unknown command");
        tc.cmd("LIST abc", "-ERR usage: LIST [msg]");
        tc.cmd("LIST -1", "-ERR usage");
        tc.cmd("DELE 99999999999999999999999999999", "-ERR no such message");
        tc.cmd("LIST 18446744073709551615", "-ERR no such message");
        tc.cmd("UIDL 18446744073709551616", "-ERR no such message");
        tc.cmd("STAT\0", "-ERR unknown command");
        tc.cmd("\u{7f}\u{1}", "-ERR unknown command");
        tc.cmd("STAT extra", "-ERR usage: STAT");
        // Bare LF ends a command too.
        assert!(tc.send(b"NOOP\n").starts_with("+OK"));
        tc.cmd("STAT", "+OK 3 ");
    }

    #[test]
    fn over_long_lines_are_bounded() {
        let mut tc = Tc::logged_in();
        // 256 octets with CRLF: over RFC 2449's 255.
        tc.cmd(&format!("LIST {}", "1".repeat(249)), "-ERR line too long");
        tc.cmd(&format!("LIST {}", "0".repeat(248)), "-ERR no such message");
        // A huge line fed in pieces: memory stays bounded and one -ERR comes at its end.
        let mut s = Session::new(cfg(true), false);
        for _ in 0..1000 {
            s.feed(&[b'x'; 1000]);
            assert_eq!(s.next(), Step::NeedMoreInput);
            assert!(s.reader.buf.len() <= MAX_AUTH_LINE);
            assert!(!format!("{s:?}").contains("xxx"));
        }
        s.feed(b"yyy\r\nQUIT\r\n");
        let want = format!("-ERR line too long\r\n+OK {HOST} POP3 server signing off\r\n");
        assert_eq!(s.next(), Step::Write(want.into_bytes()));
        assert_eq!(s.next(), Step::Close);
    }

    /// A long pipelined conversation, fed whole, split at every byte boundary and fed one
    /// byte at a time, gives byte-identical output (RFC 2449 §6.6).
    #[test]
    fn pipelined_input_split_everywhere() {
        let ir = encode(b"\0alice\0pw");
        let script = format!(
            "CAPA\r\nNOOP\r\nUSER bob\r\nPASS x\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n{ir}\r\n\
             STAT\r\nLIST\r\nUIDL\r\nLIST 2\r\nUIDL 9\r\nRETR 2\r\nTOP 1 0\r\nDELE 1\r\n\
             DELE 1\r\nSTAT\r\nRSET\r\nDELE 3\nlist\r\nBOGUS\r\n{}\r\nTOP 2 1\r\nCAPA\r\nQUIT\r\n\
             NOOP\r\n",
            "L".repeat(600)
        );
        let script = script.as_bytes();
        let run = |chunks: &[&[u8]]| {
            let mut s = Session::new(cfg(true), false);
            let mut fake = Fake::new();
            let mut closed = false;
            let mut out = Vec::new();
            for c in chunks {
                s.feed(c);
                out.extend(drive(&mut s, &mut fake, &mut closed));
            }
            (String::from_utf8(out).unwrap(), fake.commits, closed)
        };
        let whole = run(&[script]);
        assert!(whole.2, "QUIT closes");
        assert_eq!(whole.1, [vec![2]]);
        assert!(whole.0.ends_with("signing off\r\n"), "{}", whole.0);
        assert_eq!(whole.0.matches("-ERR line too long").count(), 1);
        for i in 0..=script.len() {
            let (a, b) = script.split_at(i);
            assert_eq!(run(&[a, b]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = script.chunks(1).collect();
        assert_eq!(run(&bytes), whole);
        let threes: Vec<&[u8]> = script.chunks(3).collect();
        assert_eq!(run(&threes), whole);
    }

    #[test]
    fn write_batches_are_bounded() {
        let mut s = Session::new(cfg(true), false);
        let mut fake = Fake::new();
        fake.messages = (0..2000)
            .map(|_| ("u", b"x\r\n".to_vec()))
            .collect::<Vec<_>>();
        s.feed(b"USER alice\r\nPASS pw\r\n");
        let mut closed = false;
        drive(&mut s, &mut fake, &mut closed);
        s.feed(&b"LIST\r\n".repeat(100));
        let mut writes = 0;
        loop {
            match s.next() {
                Step::Write(b) => {
                    assert!(b.len() < WRITE_BATCH + 30_000);
                    writes += 1;
                }
                Step::NeedMoreInput => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(writes > 1);
    }
}
