//! The IMAP session (RFC 3501, RFC 9051), sans-I/O (STYLE habit 1): bytes in with
//! [`Session::feed`], [`Step`]s out of [`Session::next`]. It owns the protocol: the
//! connection states and the one table of what each allows ([`allowed`], STYLE habit 3),
//! the literal and AUTHENTICATE / IDLE flows, every command's replies, and the
//! session's own view of the selected mailbox.
//!
//! # Events
//! - [`Event::Login`]: check these credentials (the driver applies the failed-login
//!   limiter); answer with [`Session::answer`].
//! - [`Event::Execute`]: a command (or an IDLE update, or the next chunk of a large
//!   FETCH) needs the store; call [`Session::execute`] with a [`Backend`] on a blocking
//!   thread. It never blocks on the network.
//!
//! # The selected mailbox view (RFC 9051 §2.3.1.2, §5.2, §7.5.1)
//! The session keeps its own list of UIDs (index + 1 = sequence number) with the flags
//! it last reported. Store changes reach the client only when [`View`] is synced: at the
//! end of each command in the Selected state and, during IDLE, whenever the driver
//! reports a change ([`Session::notify`]). EXPUNGE (or VANISHED with QRESYNC) is
//! withheld at the end of FETCH, STORE and SEARCH (the non-UID forms, RFC 9051 §7.5.1)
//! so a client's sequence numbers never shift under it; a message gone from the store
//! but not yet reported keeps its number and a FETCH of it is answered with
//! `OK [EXPUNGEISSUED]` and no data.

use std::collections::VecDeque;

use super::backend::Backend;
use super::command::{
    Command, CommandBody, FetchAttr, FetchModifiers, Flag, ListReturn, ListSelect, Mailbox,
    SearchReturn, SelectParams, SeqItem, SeqNum, SequenceSet, StatusItem, StoreAction,
    parse_command, parse_idle_done,
};
use super::fetch;
use super::fragment::{
    Event as FrameEvent, FrameError, FrameErrorKind, Framer, FramerConfig, LiteralMode,
};
use super::response::{
    Code, Data, ESearchItem, FetchItem, ListData, MailboxAttr, NamespaceDesc, Response,
    StatusResponse,
};
use super::search;
use crate::sasl::{Credentials, Exchange, Mechanism, Next, SaslError};
pub use crate::step::Step as GenericStep;
use crate::store::records::{Mailbox as StoreMailbox, SpecialUse, flag};
use crate::store::{self, Change, FlagMode, MailboxSel, NewMessage, Op, Output, Target};

/// What this session's driver must do next.
pub type Step = GenericStep<Event>;

/// Output is handed to the driver in pieces of about this size (a large FETCH is
/// rendered chunk by chunk, so memory stays bounded whatever the mailbox).
const CHUNK_BYTES: usize = 256 * 1024;
/// Messages rendered per FETCH chunk at most.
const CHUNK_MESSAGES: usize = 256;

/// Settings from the driver.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// A certificate is available for STARTTLS.
    pub tls_available: bool,
    /// LOGIN / AUTHENTICATE PLAIN are allowed without TLS from this client
    /// (`[auth] plaintext_networks`).
    pub plaintext_auth_allowed: bool,
    /// `APPENDLIMIT` (RFC 7889) = `[limits] max_message_size`.
    pub max_message_size: u64,
    /// Failed logins after which the connection is closed.
    pub max_auth_failures: u32,
    /// Longest command line.
    pub max_line: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            tls_available: true,
            plaintext_auth_allowed: true,
            max_message_size: 50 * 1024 * 1024,
            max_auth_failures: 3,
            max_line: 64 * 1024,
        }
    }
}

/// What the session asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Check a login (LOGIN or AUTHENTICATE); answer with [`Session::answer`].
    Login(Credentials),
    /// Call [`Session::execute`] (on a blocking thread).
    Execute,
}

/// The driver's answer to [`Event::Login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The credentials belong to this account.
    LoggedIn {
        /// Account id.
        account: u64,
    },
    /// Wrong user or password.
    Failed,
    /// The store could not be asked.
    Unavailable,
}

/// The connection states of RFC 9051 §3, without their data (for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// Before LOGIN / AUTHENTICATE.
    NotAuthenticated,
    /// Logged in, no mailbox selected.
    Authenticated,
    /// A mailbox is selected.
    Selected,
    /// After LOGOUT (or BYE).
    Logout,
}

/// Which commands each state allows: the one table, checked before dispatch
/// (RFC 9051 §6.1-§6.4, RFC 3501 §6, and each extension's section).
pub fn allowed(state: StateKind, cmd: &CommandBody) -> bool {
    use CommandBody::*;
    use StateKind::{Authenticated, NotAuthenticated, Selected};
    match cmd {
        // RFC 9051 §6.1, RFC 2971 (ID): any state.
        Capability | Noop | Logout | Id(_) => state != StateKind::Logout,
        // RFC 9051 §6.2.
        StartTls | Authenticate { .. } | Login { .. } => state == NotAuthenticated,
        // RFC 9051 §6.3, RFC 5161 ENABLE, RFC 2177 IDLE, RFC 2342 NAMESPACE.
        Enable(_)
        | Select { .. }
        | Examine { .. }
        | Create { .. }
        | Delete(_)
        | Rename { .. }
        | Subscribe(_)
        | Unsubscribe(_)
        | List { .. }
        | Lsub { .. }
        | Namespace
        | Status { .. }
        | Append { .. }
        | Idle => {
            matches!(state, Authenticated | Selected)
        }
        // RFC 9051 §6.4, RFC 3691 UNSELECT, RFC 4315 UID EXPUNGE, RFC 6851 MOVE.
        Check
        | Close
        | Unselect
        | Expunge
        | UidExpunge(_)
        | Search { .. }
        | Fetch { .. }
        | Store { .. }
        | Copy { .. }
        | Move { .. } => state == Selected,
    }
}

/// One message of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    uid: u32,
    flags: u8,
    keywords: Vec<String>,
    modseq: u64,
    internal_date: i64,
    size: u64,
    /// Expunged in the store but not yet reported to the client.
    gone: bool,
}

/// The session's view of the selected mailbox.
#[derive(Debug, Clone)]
struct View {
    mailbox: u64,
    read_only: bool,
    uidnext: u32,
    /// The store's highestmodseq at the last complete sync (0 forces a rescan).
    highestmodseq: u64,
    msgs: Vec<Msg>,
    /// SEARCHRES `$` (RFC 5182), as UIDs, ascending.
    saved: Vec<u32>,
}

impl View {
    fn seq_of(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }
    fn last_uid(&self) -> u32 {
        self.msgs.last().map(|m| m.uid).unwrap_or(0)
    }
}

enum State {
    NotAuthenticated { failures: u32 },
    Authenticated { account: u64 },
    Selected { account: u64, view: Box<View> },
    Logout,
}

impl State {
    fn kind(&self) -> StateKind {
        match self {
            State::NotAuthenticated { .. } => StateKind::NotAuthenticated,
            State::Authenticated { .. } => StateKind::Authenticated,
            State::Selected { .. } => StateKind::Selected,
            State::Logout => StateKind::Logout,
        }
    }
    fn account(&self) -> Option<u64> {
        match self {
            State::Authenticated { account } | State::Selected { account, .. } => Some(*account),
            _ => None,
        }
    }
}

/// A FETCH in progress, rendered in chunks.
struct FetchJob {
    tag: String,
    uid: bool,
    /// View indices still to render.
    todo: VecDeque<usize>,
    attrs: Vec<FetchAttr>,
    changed_since: Option<u64>,
    expunge_issued: bool,
    unknown_cte: bool,
}

/// What the session is waiting for.
enum Mode {
    /// Reading commands.
    Command,
    /// AUTHENTICATE: the next line is a SASL response.
    Sasl { tag: String, exchange: Exchange },
    /// An [`Event::Login`] is outstanding.
    LoginWait { tag: String },
    /// A command waits for [`Session::execute`].
    Exec(Box<Command>),
    /// A FETCH is being rendered.
    Fetching(Box<FetchJob>),
    /// IDLE (RFC 2177) until `DONE`.
    Idle { tag: String },
    /// STARTTLS answered: hand out [`Step::StartTls`] next.
    StartTls,
    /// The TLS handshake runs.
    TlsWait,
    /// Close after writing.
    Closing,
}

/// Failure of one command, shaped like the reply (STYLE habit 4).
#[derive(Debug)]
enum Fail {
    Bad(String),
    No(Option<Code>, String),
}

impl From<store::Error> for Fail {
    fn from(e: store::Error) -> Fail {
        match e {
            store::Error::NotFound(m) => Fail::No(Some(Code::NonExistent), m),
            store::Error::Exists(m) => Fail::No(Some(Code::AlreadyExists), m),
            store::Error::Invalid(m) => Fail::No(Some(Code::Cannot), m),
            store::Error::Full => Fail::No(Some(Code::OverQuota), "storage is full".into()),
            e if e.is_temporary() => Fail::No(Some(Code::Unavailable), e.to_string()),
            e => {
                tracing::warn!(error = %e, "imap: store error");
                Fail::No(Some(Code::ServerBug), "internal error".into())
            }
        }
    }
}

type Done = Result<(Option<Code>, &'static str), Fail>;

fn no(code: Code, text: &str) -> Fail {
    Fail::No(Some(code), text.to_string())
}

/// Options turned on with ENABLE (RFC 5161) or implied by use (RFC 7162 §3.1).
#[derive(Debug, Clone, Copy, Default)]
struct Enabled {
    condstore: bool,
    qresync: bool,
    rev2: bool,
    utf8: bool,
}

/// One IMAP connection's protocol state.
pub struct Session {
    cfg: SessionConfig,
    framer: Framer,
    out: Vec<u8>,
    state: State,
    mode: Mode,
    tls: bool,
    enabled: Enabled,
    pending: Option<Event>,
    /// A store change for the selected mailbox arrived during IDLE.
    dirty: bool,
    /// Close once the pending output is written (after a BYE).
    close_after: bool,
}

impl Session {
    /// A new session; `tls` is true on the implicit-TLS port.
    pub fn new(cfg: SessionConfig, tls: bool) -> Session {
        let framer = Framer::new(framer_config(&cfg));
        Session {
            cfg,
            framer,
            out: Vec::new(),
            state: State::NotAuthenticated { failures: 0 },
            mode: Mode::Command,
            tls,
            enabled: Enabled::default(),
            pending: None,
            dirty: false,
            close_after: false,
        }
    }

    /// The greeting (RFC 9051 §7.1.1), with the capabilities so clients skip a round trip.
    pub fn greeting(&self) -> Vec<u8> {
        Response::from(StatusResponse::ok(
            None,
            Some(Code::Capability(self.capabilities())),
            "Letterbox IMAP ready",
        ))
        .to_bytes()
    }

    /// The line for connections over the caps.
    pub fn busy_reply() -> Vec<u8> {
        Response::from(StatusResponse::bye(
            Some(Code::Unavailable),
            "Too many connections, try again later",
        ))
        .to_bytes()
    }

    /// The goodbye on server shutdown (RFC 9051 §7.1.5).
    pub fn shutdown_reply(&self) -> Vec<u8> {
        Response::from(StatusResponse::bye(None, "Server shutting down")).to_bytes()
    }

    /// The goodbye on the inactivity timeout (RFC 9051 §5.4 autologout).
    pub fn timeout_reply(&self) -> Vec<u8> {
        Response::from(StatusResponse::bye(None, "Autologout; idle for too long")).to_bytes()
    }

    /// The current state.
    pub fn state(&self) -> StateKind {
        self.state.kind()
    }

    /// True while in IDLE: the driver should also wait for store changes.
    pub fn is_idling(&self) -> bool {
        matches!(self.mode, Mode::Idle { .. })
    }

    /// The account, once logged in (the driver filters store changes by it).
    pub fn account(&self) -> Option<u64> {
        self.state.account()
    }

    /// A committed store change; relevant ones wake an idling session. Pass `None` when
    /// changes may have been missed (a lagging receiver).
    pub fn notify(&mut self, change: Option<&Change>) {
        let State::Selected { view, account } = &self.state else {
            return;
        };
        let relevant = match change {
            None => true,
            Some(
                Change::MessageAdded { mailbox, .. }
                | Change::FlagsChanged { mailbox, .. }
                | Change::Expunged { mailbox, .. },
            ) => *mailbox == view.mailbox,
            Some(Change::MailboxesChanged { account: a }) => a == account,
            Some(_) => false,
        };
        self.dirty |= relevant;
    }

    /// Bytes read from the client.
    pub fn feed(&mut self, input: &[u8]) {
        self.framer.enqueue(input);
    }

    /// The TLS handshake after [`Step::StartTls`] succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
        if matches!(self.mode, Mode::TlsWait | Mode::StartTls) {
            self.mode = Mode::Command;
        }
    }

    /// What to do next.
    // Named after imap-next's `next`; not an `Iterator`: it never ends (Close repeats).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Step {
        loop {
            if !self.out.is_empty() {
                return Step::Write(std::mem::take(&mut self.out));
            }
            if self.close_after {
                return Step::Close;
            }
            if let Some(ev) = self.pending.take() {
                return Step::Event(ev);
            }
            match &self.mode {
                Mode::Closing => return Step::Close,
                Mode::StartTls => {
                    self.mode = Mode::TlsWait;
                    // RFC 9051 §6.2.1 / CVE-2011-0411: nothing sent before the
                    // handshake may be read as a command after it.
                    self.framer = Framer::new(framer_config(&self.cfg));
                    return Step::StartTls;
                }
                Mode::TlsWait | Mode::LoginWait { .. } => return Step::Wait,
                Mode::Exec(_) | Mode::Fetching(_) => return Step::Event(Event::Execute),
                Mode::Idle { .. } if self.dirty => return Step::Event(Event::Execute),
                _ => {}
            }
            match self.framer.progress() {
                None => {
                    if self.framer.is_closed() {
                        self.mode = Mode::Closing;
                        continue;
                    }
                    return Step::NeedMoreInput;
                }
                Some(ev) => self.on_frame_event(ev),
            }
        }
    }

    /// Answers [`Event::Login`].
    pub fn answer(&mut self, decision: Decision) {
        let Mode::LoginWait { tag } = std::mem::replace(&mut self.mode, Mode::Command) else {
            return;
        };
        match decision {
            Decision::LoggedIn { account } => {
                self.state = State::Authenticated { account };
                let caps = self.capabilities();
                self.status(StatusResponse::ok(
                    Some(&tag),
                    Some(Code::Capability(caps)),
                    "Logged in",
                ));
            }
            Decision::Failed => {
                let failures = match &mut self.state {
                    State::NotAuthenticated { failures } => {
                        *failures += 1;
                        *failures
                    }
                    _ => 0,
                };
                self.status(StatusResponse::no(
                    Some(&tag),
                    Some(Code::AuthenticationFailed),
                    "Authentication failed",
                ));
                if failures >= self.cfg.max_auth_failures {
                    self.status(StatusResponse::bye(None, "Too many failed logins"));
                    self.state = State::Logout;
                    self.mode = Mode::Closing;
                }
            }
            Decision::Unavailable => self.status(StatusResponse::no(
                Some(&tag),
                Some(Code::Unavailable),
                "Try again later",
            )),
        }
    }

    /// Runs the outstanding store work ([`Event::Execute`]); `now` is unix seconds.
    pub fn execute(&mut self, b: &dyn Backend, now: i64) {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Exec(cmd) => {
                let Command { tag, body } = *cmd;
                let selected_before = self.state.kind() == StateKind::Selected;
                let allow_expunge = !matches!(
                    body,
                    CommandBody::Fetch { uid: false, .. }
                        | CommandBody::Store { uid: false, .. }
                        | CommandBody::Search { uid: false, .. }
                );
                let res = self.run(&tag, body, b, now);
                // FETCH continues in chunks and finishes itself.
                if matches!(self.mode, Mode::Fetching(_)) {
                    return;
                }
                if matches!(self.mode, Mode::Idle { .. }) {
                    return;
                }
                if selected_before && let Err(e) = self.sync(b, allow_expunge) {
                    tracing::warn!(error = ?e, "imap: sync failed");
                }
                self.finish(&tag, res);
            }
            Mode::Fetching(job) => self.fetch_chunk(*job, b),
            Mode::Idle { tag } => {
                self.mode = Mode::Idle { tag };
                self.dirty = false;
                if let Err(e) = self.sync(b, true) {
                    tracing::warn!(error = ?e, "imap: sync during IDLE failed");
                }
            }
            other => self.mode = other,
        }
    }

    // -----------------------------------------------------------------------------
    // Output helpers.
    // -----------------------------------------------------------------------------

    fn send(&mut self, r: impl Into<Response>) {
        r.into().encode(&mut self.out);
    }

    fn status(&mut self, s: StatusResponse) {
        self.send(s);
    }

    fn finish(&mut self, tag: &str, res: Done) {
        match res {
            Ok((code, text)) => self.status(StatusResponse::ok(Some(tag), code, text)),
            Err(Fail::Bad(text)) => self.status(StatusResponse::bad(Some(tag), None, &text)),
            Err(Fail::No(code, text)) => self.status(StatusResponse::no(Some(tag), code, &text)),
        }
    }

    /// CAPABILITY (RFC 9051 §6.1.1) for the current state and transport.
    pub fn capabilities(&self) -> Vec<String> {
        let mut caps: Vec<String> = vec!["IMAP4rev1".into(), "IMAP4rev2".into()];
        let pre = self.state.kind() == StateKind::NotAuthenticated;
        if pre {
            if !self.tls && self.cfg.tls_available {
                caps.push("STARTTLS".into());
            }
            if !self.tls && !self.cfg.plaintext_auth_allowed {
                // RFC 9051 §6.2.3, RFC 3501 §7.2.1.
                caps.push("LOGINDISABLED".into());
            } else {
                caps.push("AUTH=PLAIN".into());
            }
            caps.push("SASL-IR".into());
        }
        for c in [
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UIDPLUS",
            "MOVE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "CREATE-SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "ESEARCH",
            "SEARCHRES",
            "CONDSTORE",
            "QRESYNC",
            "STATUS=SIZE",
            "BINARY",
            "UTF8=ACCEPT",
        ] {
            caps.push(c.into());
        }
        caps.push(format!("APPENDLIMIT={}", self.cfg.max_message_size));
        caps
    }

    // -----------------------------------------------------------------------------
    // Framing.
    // -----------------------------------------------------------------------------

    fn on_frame_event(&mut self, ev: FrameEvent) {
        match ev {
            FrameEvent::Frame(frame) => self.on_frame(&frame),
            FrameEvent::LiteralAnnounced(ann) => {
                // Sizes over the caps were refused by the framer already
                // (RFC 7888 §4, RFC 7889 APPENDLIMIT).
                self.framer.accept_literal();
                if ann.mode == LiteralMode::Sync {
                    self.send(Response::Continue("Ready".into()));
                }
            }
            FrameEvent::Rejected(err) => self.on_rejected(&err),
            FrameEvent::Fatal(err) => {
                self.status(StatusResponse::bye(Some(Code::TooBig), &err.to_string()));
                self.mode = Mode::Closing;
            }
        }
    }

    fn on_rejected(&mut self, err: &FrameError) {
        let text = err.to_string();
        let tag = err.tag.as_deref();
        let s = match err.kind {
            FrameErrorKind::LineTooLong => StatusResponse::bad(tag, None, &text),
            // RFC 9051 §7.1 TOOBIG, RFC 7889 §4.
            FrameErrorKind::LiteralTooBig { .. } | FrameErrorKind::FrameTooBig => match tag {
                Some(_) => StatusResponse::no(tag, Some(Code::TooBig), &text),
                None => StatusResponse::bad(None, Some(Code::TooBig), &text),
            },
        };
        // A rejected line during AUTHENTICATE or IDLE ends that flow as well.
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Sasl { tag, .. } | Mode::Idle { tag } => {
                self.status(StatusResponse::bad(Some(&tag), None, &text));
            }
            other => {
                self.mode = other;
                self.status(s);
            }
        }
    }

    fn on_frame(&mut self, frame: &[u8]) {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Idle { tag } => {
                // RFC 2177 §3: only DONE ends IDLE.
                match parse_idle_done(frame) {
                    Ok(()) => self.status(StatusResponse::ok(Some(&tag), None, "IDLE terminated")),
                    Err(_) => self.status(StatusResponse::bad(
                        Some(&tag),
                        None,
                        "Expected DONE; IDLE terminated",
                    )),
                }
            }
            Mode::Sasl { tag, exchange } => {
                let line = frame.strip_suffix(b"\n").unwrap_or(frame);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match exchange.step(line) {
                    Ok((ex, next)) => self.sasl_next(tag, ex, next),
                    Err(e) => self.sasl_error(&tag, e),
                }
            }
            other => {
                self.mode = other;
                match parse_command(frame) {
                    Ok(cmd) => self.dispatch(cmd),
                    Err(e) => {
                        let s = StatusResponse::bad(e.tag.as_deref(), None, e.message);
                        self.status(s);
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Dispatch.
    // -----------------------------------------------------------------------------

    fn dispatch(&mut self, cmd: Command) {
        if !allowed(self.state.kind(), &cmd.body) {
            let text = format!(
                "{} is not allowed in the {:?} state",
                cmd.body.name(),
                self.state.kind()
            );
            self.status(StatusResponse::bad(Some(&cmd.tag), None, &text));
            return;
        }
        let Command { tag, body } = cmd;
        match body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.send(Data::Capability(caps));
                self.finish(&tag, Ok((None, "CAPABILITY completed")));
            }
            CommandBody::Logout => {
                // RFC 9051 §6.1.3.
                self.status(StatusResponse::bye(None, "Logging out"));
                self.finish(&tag, Ok((None, "LOGOUT completed")));
                self.state = State::Logout;
                self.mode = Mode::Closing;
            }
            CommandBody::Id(_) => {
                // RFC 2971 §3.1.
                self.send(Data::Id(Some(vec![
                    ("name".into(), Some("Letterbox".into())),
                    ("version".into(), Some(env!("CARGO_PKG_VERSION").into())),
                ])));
                self.finish(&tag, Ok((None, "ID completed")));
            }
            CommandBody::Noop if self.state.kind() != StateKind::Selected => {
                self.finish(&tag, Ok((None, "NOOP completed")));
            }
            CommandBody::StartTls => self.starttls(&tag),
            CommandBody::Login { username, password } => {
                if let Err(f) = self.plaintext_check() {
                    self.finish(&tag, Err(f));
                    return;
                }
                self.mode = Mode::LoginWait { tag };
                self.pending = Some(Event::Login(Credentials {
                    authzid: None,
                    username,
                    password,
                }));
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => self.authenticate(
                tag,
                &mechanism,
                initial_response.as_ref().map(|s| s.expose()),
            ),
            CommandBody::Enable(caps) => self.enable(&tag, &caps),
            CommandBody::Namespace => {
                // RFC 2342 §5: one personal namespace, "/" separator.
                self.send(Data::Namespace {
                    personal: vec![NamespaceDesc {
                        prefix: String::new(),
                        delimiter: Some('/'),
                    }],
                    other: vec![],
                    shared: vec![],
                });
                self.finish(&tag, Ok((None, "NAMESPACE completed")));
            }
            body => self.mode = Mode::Exec(Box::new(Command { tag, body })),
        }
    }

    /// Valid in: Not Authenticated. RFC 9051 §6.2.1.
    fn starttls(&mut self, tag: &str) {
        if self.tls || !self.cfg.tls_available {
            self.finish(
                tag,
                Err(Fail::Bad("TLS is already active or unavailable".into())),
            );
            return;
        }
        self.finish(tag, Ok((None, "Begin TLS negotiation now")));
        self.mode = Mode::StartTls;
    }

    fn plaintext_check(&self) -> Result<(), Fail> {
        if !self.tls && !self.cfg.plaintext_auth_allowed {
            // RFC 9051 §6.2.3: LOGINDISABLED; RFC 5530 PRIVACYREQUIRED.
            return Err(no(Code::PrivacyRequired, "Use STARTTLS first"));
        }
        Ok(())
    }

    /// Valid in: Not Authenticated. RFC 9051 §6.2.2, SASL-IR RFC 4959.
    fn authenticate(&mut self, tag: String, mechanism: &str, initial: Option<&String>) {
        if let Err(f) = self.plaintext_check() {
            self.finish(&tag, Err(f));
            return;
        }
        let Some(mech @ Mechanism::Plain) = Mechanism::parse(mechanism) else {
            self.finish(
                &tag,
                Err(no(Code::Cannot, "Unsupported authentication mechanism")),
            );
            return;
        };
        match Exchange::start(mech, initial.map(|s| s.as_bytes())) {
            Ok((ex, next)) => self.sasl_next(tag, ex, next),
            Err(e) => self.sasl_error(&tag, e),
        }
    }

    fn sasl_next(&mut self, tag: String, exchange: Exchange, next: Next) {
        match next {
            Next::Challenge(c) => {
                self.send(Response::Continue(c));
                self.mode = Mode::Sasl { tag, exchange };
            }
            Next::Done(creds) => {
                if creds.authzid.is_some() {
                    // No proxy logins (RFC 4616 §2 authorization identity).
                    self.mode = Mode::Command;
                    self.finish(
                        &tag,
                        Err(no(
                            Code::AuthorizationFailed,
                            "Authorization identity refused",
                        )),
                    );
                    return;
                }
                self.mode = Mode::LoginWait { tag };
                self.pending = Some(Event::Login(creds));
            }
        }
    }

    fn sasl_error(&mut self, tag: &str, e: SaslError) {
        self.mode = Mode::Command;
        let text = match e {
            SaslError::Cancelled => "Authentication cancelled",
            _ => "Malformed authentication data",
        };
        self.finish(tag, Err(Fail::Bad(text.into())));
    }

    /// Valid in: Authenticated, Selected. RFC 5161 §3.1.
    fn enable(&mut self, tag: &str, caps: &[String]) {
        let mut done = Vec::new();
        for c in caps {
            let c = c.to_ascii_uppercase();
            let slot = match c.as_str() {
                "CONDSTORE" => &mut self.enabled.condstore,
                "QRESYNC" => {
                    // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                    self.enabled.condstore = true;
                    &mut self.enabled.qresync
                }
                "IMAP4REV2" => &mut self.enabled.rev2,
                "UTF8=ACCEPT" => &mut self.enabled.utf8,
                _ => continue,
            };
            if !*slot {
                *slot = true;
                done.push(c);
            }
        }
        self.send(Data::Enabled(done));
        self.finish(tag, Ok((None, "ENABLE completed")));
    }

    // -----------------------------------------------------------------------------
    // Commands that need the store.
    // -----------------------------------------------------------------------------

    fn account_id(&self) -> Result<u64, Fail> {
        self.state
            .account()
            .ok_or_else(|| Fail::Bad("not logged in".into()))
    }

    fn run(&mut self, tag: &str, body: CommandBody, b: &dyn Backend, now: i64) -> Done {
        use CommandBody as C;
        match body {
            C::Noop | C::Check => Ok((None, "completed")),
            C::Select { mailbox, params } => self.select(b, &mailbox, &params, false),
            C::Examine { mailbox, params } => self.select(b, &mailbox, &params, true),
            C::Create {
                mailbox,
                special_use,
            } => self.create(b, &mailbox, &special_use),
            C::Delete(mailbox) => {
                // RFC 9051 §6.3.4.
                let name = normalize(&mailbox);
                if name == "INBOX" {
                    return Err(no(Code::Cannot, "INBOX cannot be deleted"));
                }
                if let State::Selected { view, .. } = &self.state
                    && b.mailbox_by_id(view.mailbox)?
                        .is_some_and(|m| m.name == name)
                {
                    // Deleting the selected mailbox leaves the Selected state.
                    let account = self.account_id()?;
                    self.state = State::Authenticated { account };
                }
                b.write(Op::DeleteMailbox {
                    account: self.account_id()?,
                    name,
                })?;
                Ok((None, "DELETE completed"))
            }
            C::Rename { from, to } => {
                // RFC 9051 §6.3.6 (renaming INBOX moves its messages: the store's job).
                b.write(Op::RenameMailbox {
                    account: self.account_id()?,
                    from: normalize(&from),
                    to: normalize(&to),
                })?;
                Ok((None, "RENAME completed"))
            }
            C::Subscribe(m) => self.subscribe(b, &m, true),
            C::Unsubscribe(m) => self.subscribe(b, &m, false),
            C::List {
                selection,
                reference,
                patterns,
                returns,
            } => self.list(b, &selection, &reference, &patterns, &returns, false),
            C::Lsub { reference, pattern } => self.list(b, &[], &reference, &[pattern], &[], true),
            C::Status { mailbox, items } => {
                let mb = self.lookup(b, &mailbox)?;
                self.status_data(b, &mb, &items)?;
                Ok((None, "STATUS completed"))
            }
            C::Append { mailbox, messages } => self.append(b, &mailbox, messages, now),
            C::Idle => {
                // RFC 2177 §3.
                if self.state.kind() == StateKind::Selected {
                    self.sync(b, true)?;
                }
                self.send(Response::Continue("idling".into()));
                self.dirty = false;
                self.mode = Mode::Idle {
                    tag: tag.to_string(),
                };
                Ok((None, ""))
            }
            C::Close => {
                // RFC 9051 §6.4.1: expunge silently, then leave Selected.
                let account = self.account_id()?;
                if let State::Selected { view, .. } = &self.state
                    && !view.read_only
                {
                    b.write(Op::Expunge {
                        mailbox: view.mailbox,
                        uids: None,
                    })?;
                }
                self.state = State::Authenticated { account };
                Ok((None, "CLOSE completed"))
            }
            C::Unselect => {
                // RFC 3691.
                let account = self.account_id()?;
                self.state = State::Authenticated { account };
                Ok((None, "UNSELECT completed"))
            }
            C::Expunge => self.expunge(b, None),
            C::UidExpunge(set) => self.expunge(b, Some(&set)),
            C::Search {
                uid,
                returns,
                charset,
                criteria,
            } => self.search(tag, b, uid, returns, charset, &criteria, now),
            C::Fetch {
                uid,
                set,
                items,
                modifiers,
            } => self.fetch(tag, b, uid, &set, items.expand(), modifiers),
            C::Store {
                uid,
                set,
                unchanged_since,
                action,
                silent,
                flags,
            } => self.store(b, uid, &set, unchanged_since, action, silent, &flags),
            C::Copy { uid, set, mailbox } => self.copy(b, uid, &set, &mailbox, false),
            C::Move { uid, set, mailbox } => self.copy(b, uid, &set, &mailbox, true),
            other => Err(Fail::Bad(format!("{} cannot run here", other.name()))),
        }
    }

    fn lookup(&self, b: &dyn Backend, name: &Mailbox) -> Result<StoreMailbox, Fail> {
        b.mailbox(self.account_id()?, &normalize(name))?
            .ok_or_else(|| no(Code::NonExistent, "No such mailbox"))
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.2 (SELECT), §6.3.3 (EXAMINE),
    /// RFC 7162 §3.1.8 (CONDSTORE), §3.2.5 (QRESYNC).
    fn select(
        &mut self,
        b: &dyn Backend,
        name: &Mailbox,
        params: &SelectParams,
        read_only: bool,
    ) -> Done {
        let account = self.account_id()?;
        if let State::Selected { .. } = self.state {
            // RFC 9051 §7.1: CLOSED marks where the old mailbox's responses end.
            self.state = State::Authenticated { account };
            self.status(StatusResponse::ok(
                None,
                Some(Code::Closed),
                "Previous mailbox closed",
            ));
        }
        if params.qresync.is_some() && !self.enabled.qresync {
            return Err(Fail::Bad("QRESYNC must be enabled first".into()));
        }
        if params.condstore {
            self.enabled.condstore = true;
        }
        let mb = self.lookup(b, name)?;
        let rows = b.messages(mb.id)?;
        let msgs: Vec<Msg> = rows
            .into_iter()
            .map(|(uid, r)| Msg {
                uid,
                flags: r.flags,
                keywords: r.keywords,
                modseq: r.modseq,
                internal_date: r.internal_date,
                size: r.size,
                gone: false,
            })
            .collect();
        let mut keywords: Vec<String> = Vec::new();
        for m in &msgs {
            for k in &m.keywords {
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.clone());
                }
            }
        }
        let system = vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        let mut flags = system.clone();
        flags.extend(keywords.into_iter().map(Flag::Keyword));
        self.send(Data::Flags(flags));
        self.send(Data::Exists(msgs.len() as u32));
        if !self.enabled.rev2 {
            self.send(Data::Recent(0));
        }
        self.status(StatusResponse::ok(
            None,
            Some(Code::UidValidity(mb.uidvalidity)),
            "UIDs valid",
        ));
        self.status(StatusResponse::ok(
            None,
            Some(Code::UidNext(mb.uidnext)),
            "Predicted next UID",
        ));
        self.status(StatusResponse::ok(
            None,
            Some(Code::PermanentFlags {
                flags: if read_only { vec![] } else { system },
                new_keywords: !read_only,
            }),
            "Flags permitted",
        ));
        self.status(StatusResponse::ok(
            None,
            Some(Code::HighestModSeq(mb.highestmodseq)),
            "Highest",
        ));
        if self.enabled.rev2 {
            // RFC 9051 §6.3.2: a LIST response for the selected mailbox.
            let boxes = b.mailboxes(account)?;
            let prefix = format!("{}/", mb.name);
            let mut attributes = vec![if boxes.iter().any(|o| o.name.starts_with(&prefix)) {
                MailboxAttr::HasChildren
            } else {
                MailboxAttr::HasNoChildren
            }];
            attributes.extend(mb.special_use.map(special_attr));
            self.send(Data::List(ListData {
                attributes,
                delimiter: Some('/'),
                mailbox: Mailbox::new(mb.name.clone()),
                extended: vec![],
            }));
        }
        let view = View {
            mailbox: mb.id,
            read_only,
            uidnext: mb.uidnext,
            highestmodseq: mb.highestmodseq,
            msgs,
            saved: Vec::new(),
        };
        if let Some(q) = &params.qresync
            && q.uid_validity == mb.uidvalidity
        {
            // RFC 7162 §3.2.5.1: what changed since the client's modseq.
            let known = q.known_uids.clone();
            let last = view.last_uid().max(mb.uidnext.saturating_sub(1));
            let vanished: Vec<u32> = b
                .expunged_since(mb.id, q.mod_seq)?
                .into_iter()
                .filter(|u| known.as_ref().is_none_or(|k| k.contains(*u, last)))
                .collect();
            if !vanished.is_empty() {
                self.send(Data::Vanished {
                    earlier: true,
                    uids: SequenceSet::from_sorted(&vanished),
                });
            }
            for (i, m) in view.msgs.iter().enumerate() {
                if m.modseq > q.mod_seq {
                    let items = vec![
                        FetchItem::Uid(m.uid),
                        FetchItem::Flags(fetch::flags_of(m.flags, &m.keywords)),
                        FetchItem::ModSeq(m.modseq),
                    ];
                    self.send(Data::Fetch {
                        seq: i as u32 + 1,
                        items,
                    });
                }
            }
        }
        self.state = State::Selected {
            account,
            view: Box::new(view),
        };
        if read_only {
            Ok((Some(Code::ReadOnly), "EXAMINE completed"))
        } else {
            Ok((Some(Code::ReadWrite), "SELECT completed"))
        }
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.4, RFC 6154 §3 (USE).
    fn create(&mut self, b: &dyn Backend, name: &Mailbox, uses: &[String]) -> Done {
        let special_use = match uses {
            [] => None,
            [one] => Some(
                parse_special_use(one)
                    .ok_or_else(|| no(Code::UseAttr, "Unsupported special-use attribute"))?,
            ),
            _ => return Err(no(Code::UseAttr, "At most one special-use attribute")),
        };
        // RFC 9051 §6.3.4: a trailing separator only says the client wants children.
        let raw = name.as_str().trim_end_matches('/');
        let name = store::normalize_name(raw)?;
        if name == "INBOX" {
            return Err(no(Code::AlreadyExists, "INBOX always exists"));
        }
        b.write(Op::CreateMailbox {
            account: self.account_id()?,
            name,
            special_use,
        })?;
        Ok((None, "CREATE completed"))
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.7 / §6.3.8.
    fn subscribe(&mut self, b: &dyn Backend, name: &Mailbox, on: bool) -> Done {
        let name = normalize(name);
        if on && b.mailbox(self.account_id()?, &name)?.is_none() {
            return Err(no(Code::NonExistent, "No such mailbox"));
        }
        b.write(Op::Subscribe {
            account: self.account_id()?,
            name,
            on,
        })?;
        Ok((
            None,
            if on {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            },
        ))
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.9, RFC 5258 (LIST-EXTENDED),
    /// RFC 5819 (LIST-STATUS), RFC 6154 (SPECIAL-USE), RFC 3501 §6.3.9 (LSUB).
    fn list(
        &mut self,
        b: &dyn Backend,
        selection: &[ListSelect],
        reference: &str,
        patterns: &[String],
        returns: &[ListReturn],
        lsub: bool,
    ) -> Done {
        let account = self.account_id()?;
        if !lsub && patterns.iter().all(String::is_empty) {
            // RFC 9051 §6.3.9: an empty pattern asks for the delimiter.
            self.send(Data::List(ListData {
                attributes: vec![MailboxAttr::NoSelect],
                delimiter: Some('/'),
                mailbox: Mailbox::new(""),
                extended: vec![],
            }));
            return Ok((None, "LIST completed"));
        }
        let boxes = b.mailboxes(account)?;
        let subs = b.subscriptions(account)?;
        let only_subscribed = lsub || selection.contains(&ListSelect::Subscribed);
        let only_special = selection.contains(&ListSelect::SpecialUse);
        let show_subscribed = only_subscribed && !lsub || returns.contains(&ListReturn::Subscribed);
        let status_items: Option<&Vec<StatusItem>> = returns.iter().find_map(|r| match r {
            ListReturn::Status(items) => Some(items),
            _ => None,
        });
        let full: Vec<String> = patterns.iter().map(|p| format!("{reference}{p}")).collect();
        let mut names: Vec<(String, Option<&StoreMailbox>)> =
            boxes.iter().map(|m| (m.name.clone(), Some(m))).collect();
        if only_subscribed {
            for s in &subs {
                if !names.iter().any(|(n, _)| n == s) {
                    names.push((s.clone(), None));
                }
            }
        }
        let mut lines = Vec::new();
        for (name, mb) in &names {
            if !full.iter().any(|p| pattern_matches(p, name)) {
                continue;
            }
            let subscribed = subs.iter().any(|s| s == name);
            if only_subscribed && !subscribed {
                continue;
            }
            if only_special && mb.is_none_or(|m| m.special_use.is_none()) {
                continue;
            }
            let mut attrs = Vec::new();
            match mb {
                None => attrs.push(MailboxAttr::NonExistent),
                Some(m) => {
                    let prefix = format!("{name}/");
                    attrs.push(if boxes.iter().any(|o| o.name.starts_with(&prefix)) {
                        MailboxAttr::HasChildren
                    } else {
                        MailboxAttr::HasNoChildren
                    });
                    if let Some(su) = m.special_use {
                        attrs.push(special_attr(su));
                    }
                }
            }
            if show_subscribed && subscribed {
                attrs.push(MailboxAttr::Subscribed);
            }
            let data = ListData {
                attributes: attrs,
                delimiter: Some('/'),
                mailbox: Mailbox::new(name.clone()),
                extended: vec![],
            };
            lines.push((data, *mb));
        }
        lines.sort_by(|a, b| {
            (!a.0.mailbox.is_inbox(), a.0.mailbox.as_str())
                .cmp(&(!b.0.mailbox.is_inbox(), b.0.mailbox.as_str()))
        });
        for (data, mb) in lines {
            if lsub {
                // RFC 3501 §7.2.3: LSUB carries no child or special-use information.
                let attributes = match mb {
                    None => vec![MailboxAttr::NoSelect],
                    Some(_) => vec![],
                };
                self.send(Data::Lsub(ListData { attributes, ..data }));
                continue;
            }
            self.send(Data::List(data));
            if let (Some(items), Some(mb)) = (status_items, mb) {
                self.status_data(b, mb, items)?;
            }
        }
        Ok((
            None,
            if lsub {
                "LSUB completed"
            } else {
                "LIST completed"
            },
        ))
    }

    /// `* STATUS` data (RFC 9051 §6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE,
    /// RFC 7889 APPENDLIMIT).
    fn status_data(
        &mut self,
        b: &dyn Backend,
        mb: &StoreMailbox,
        items: &[StatusItem],
    ) -> Result<(), Fail> {
        let mut out = Vec::new();
        let mut deleted = None;
        for &it in items {
            let v = match it {
                StatusItem::Messages => u64::from(mb.exists),
                StatusItem::UidNext => u64::from(mb.uidnext),
                StatusItem::UidValidity => u64::from(mb.uidvalidity),
                StatusItem::Unseen => u64::from(mb.unseen),
                StatusItem::Recent => 0,
                StatusItem::Size => mb.size,
                StatusItem::HighestModSeq => mb.highestmodseq,
                StatusItem::AppendLimit => self.cfg.max_message_size,
                StatusItem::Deleted => match deleted {
                    Some(d) => d,
                    None => {
                        let d = b
                            .messages(mb.id)?
                            .iter()
                            .filter(|(_, r)| r.flags & flag::DELETED != 0)
                            .count() as u64;
                        deleted = Some(d);
                        d
                    }
                },
            };
            out.push((it, v));
        }
        self.send(Data::Status {
            mailbox: Mailbox::new(mb.name.clone()),
            items: out,
        });
        Ok(())
    }

    /// Valid in: Authenticated, Selected. RFC 9051 §6.3.12, RFC 4315 APPENDUID,
    /// RFC 3502 MULTIAPPEND.
    fn append(
        &mut self,
        b: &dyn Backend,
        name: &Mailbox,
        messages: Vec<super::command::AppendMessage>,
        now: i64,
    ) -> Done {
        let account = self.account_id()?;
        let Some(mb) = b.mailbox(account, &normalize(name))? else {
            return Err(no(Code::TryCreate, "No such mailbox"));
        };
        let mut uids = Vec::new();
        let mut uidvalidity = mb.uidvalidity;
        for m in messages {
            if m.data.len() as u64 > self.cfg.max_message_size {
                return Err(no(Code::TooBig, "Message too large"));
            }
            let (bits, keywords) = fetch::bits_of(&m.flags);
            let internal_date = m.date.map(|d| d.unix_timestamp()).unwrap_or(now);
            let out = b.write(Op::Deliver {
                message: std::sync::Arc::new(NewMessage::new(m.data)),
                targets: vec![Target {
                    account,
                    mailbox: MailboxSel::Id(mb.id),
                }],
                flags: bits,
                keywords,
                internal_date,
                delivered: false,
            })?;
            if let Output::Delivered(d) = out
                && let Some(&(_, v, uid)) = d.first()
            {
                uidvalidity = v;
                uids.push(uid);
            }
        }
        Ok((
            Some(Code::AppendUid {
                uid_validity: uidvalidity,
                uids: SequenceSet::from_sorted(&uids),
            }),
            "APPEND completed",
        ))
    }

    fn view(&self) -> Result<&View, Fail> {
        match &self.state {
            State::Selected { view, .. } => Ok(view),
            _ => Err(Fail::Bad("no mailbox selected".into())),
        }
    }

    fn view_mut(&mut self) -> Result<&mut View, Fail> {
        match &mut self.state {
            State::Selected { view, .. } => Ok(view),
            _ => Err(Fail::Bad("no mailbox selected".into())),
        }
    }

    /// Valid in: Selected. RFC 9051 §6.4.3 (EXPUNGE), RFC 4315 §2.1 (UID EXPUNGE).
    fn expunge(&mut self, b: &dyn Backend, set: Option<&SequenceSet>) -> Done {
        let view = self.view()?;
        if view.read_only {
            return Err(no(Code::ReadOnly, "Mailbox is read-only"));
        }
        let uids = match set {
            None => None,
            Some(set) => {
                let idx = resolve(view, set, true)?;
                Some(
                    idx.into_iter()
                        .filter_map(|i| view.msgs.get(i))
                        .filter(|m| m.flags & flag::DELETED != 0)
                        .map(|m| m.uid)
                        .collect::<Vec<_>>(),
                )
            }
        };
        if uids.as_ref().is_some_and(Vec::is_empty) {
            return Ok((None, "EXPUNGE completed"));
        }
        b.write(Op::Expunge {
            mailbox: view.mailbox,
            uids,
        })?;
        Ok((None, "EXPUNGE completed"))
    }

    /// Valid in: Selected. RFC 9051 §6.4.4, RFC 4731 (ESEARCH), RFC 5182 (SAVE),
    /// RFC 7162 §3.1.5 (MODSEQ).
    #[allow(clippy::too_many_arguments)]
    fn search(
        &mut self,
        tag: &str,
        b: &dyn Backend,
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
        charset: Option<String>,
        criteria: &[super::command::SearchKey],
        now: i64,
    ) -> Done {
        if let Some(cs) = &charset
            && !cs.eq_ignore_ascii_case("UTF-8")
            && !cs.eq_ignore_ascii_case("US-ASCII")
        {
            return Err(no(
                Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()]),
                "Unsupported charset",
            ));
        }
        let with_modseq = search::uses_modseq(criteria);
        if with_modseq {
            self.enabled.condstore = true;
        }
        let content = search::needs_content(criteria);
        let view = self.view()?;
        let cx = search::Context {
            last_seq: view.msgs.len() as u32,
            last_uid: view.last_uid(),
            saved: &view.saved,
            now,
        };
        let mut hits: Vec<(u32, u32, u64)> = Vec::new();
        for (i, m) in view.msgs.iter().enumerate() {
            if m.gone {
                continue;
            }
            let (mut raw, mut parsed) = (None, None);
            if content {
                let Some(row) = b.message(view.mailbox, m.uid)? else {
                    continue;
                };
                raw = b.blob(&row.blob)?;
                parsed = b.parsed(&row.blob)?;
            }
            let c = search::Candidate {
                seq: i as u32 + 1,
                uid: m.uid,
                flags: m.flags,
                keywords: &m.keywords,
                internal_date: m.internal_date,
                size: m.size,
                modseq: m.modseq,
                raw: raw.as_deref(),
                parsed: parsed.as_ref(),
            };
            if search::matches(criteria, &c, &cx) {
                hits.push((i as u32 + 1, m.uid, m.modseq));
            }
        }
        let ids: Vec<u32> = hits.iter().map(|h| if uid { h.1 } else { h.0 }).collect();
        let max_modseq = hits.iter().map(|h| h.2).max();
        // RFC 9051 §6.4.4: an IMAP4rev2 client gets ESEARCH (ALL) for a plain SEARCH.
        let returns = match returns {
            None if self.enabled.rev2 => Some(vec![SearchReturn::All]),
            r => r,
        };
        match returns {
            None => self.send(Data::Search {
                ids,
                modseq: if with_modseq { max_modseq } else { None },
            }),
            Some(ret) => {
                let ret = if ret.is_empty() {
                    vec![SearchReturn::All]
                } else {
                    ret
                };
                if ret.contains(&SearchReturn::Save) {
                    let mut saved: Vec<u32> = hits.iter().map(|h| h.1).collect();
                    saved.sort_unstable();
                    self.view_mut()?.saved = saved;
                }
                let mut items = Vec::new();
                for r in &ret {
                    match r {
                        SearchReturn::Min => {
                            if let Some(&v) = ids.iter().min() {
                                items.push(ESearchItem::Min(v));
                            }
                        }
                        SearchReturn::Max => {
                            if let Some(&v) = ids.iter().max() {
                                items.push(ESearchItem::Max(v));
                            }
                        }
                        SearchReturn::Count => items.push(ESearchItem::Count(ids.len() as u32)),
                        SearchReturn::All => {
                            if !ids.is_empty() {
                                let mut sorted = ids.clone();
                                sorted.sort_unstable();
                                items.push(ESearchItem::All(SequenceSet::from_sorted(&sorted)));
                            }
                        }
                        SearchReturn::Save => {}
                    }
                }
                if with_modseq && let Some(m) = max_modseq {
                    items.push(ESearchItem::ModSeq(m));
                }
                // RFC 5182 §2.4: SAVE alone returns no ESEARCH.
                if ret != [SearchReturn::Save] {
                    self.send(Data::ESearch {
                        tag: Some(tag.to_string()),
                        uid,
                        items,
                    });
                }
            }
        }
        Ok((None, "SEARCH completed"))
    }

    /// Valid in: Selected. RFC 9051 §6.4.5, RFC 7162 §3.1.4 (CHANGEDSINCE), §3.2.6
    /// (VANISHED). Starts a [`FetchJob`]; [`Session::fetch_chunk`] renders it.
    fn fetch(
        &mut self,
        tag: &str,
        b: &dyn Backend,
        uid: bool,
        set: &SequenceSet,
        mut attrs: Vec<FetchAttr>,
        modifiers: FetchModifiers,
    ) -> Done {
        if modifiers.vanished
            && (!uid || !self.enabled.qresync || modifiers.changed_since.is_none())
        {
            return Err(Fail::Bad(
                "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE".into(),
            ));
        }
        if uid && !attrs.contains(&FetchAttr::Uid) {
            // RFC 9051 §6.4.9: UID FETCH always returns UID.
            attrs.insert(0, FetchAttr::Uid);
        }
        if (modifiers.changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq))
            && !self.enabled.condstore
        {
            self.enabled.condstore = true;
        }
        if modifiers.changed_since.is_some() && !attrs.contains(&FetchAttr::ModSeq) {
            attrs.push(FetchAttr::ModSeq);
        }
        let view = self.view()?;
        let todo: VecDeque<usize> = resolve(view, set, uid)?.into();
        if modifiers.vanished
            && let Some(since) = modifiers.changed_since
        {
            let last = view.last_uid().max(view.uidnext.saturating_sub(1));
            let gone: Vec<u32> = b
                .expunged_since(view.mailbox, since)?
                .into_iter()
                .filter(|u| set.contains(*u, last))
                .collect();
            if !gone.is_empty() {
                self.send(Data::Vanished {
                    earlier: true,
                    uids: SequenceSet::from_sorted(&gone),
                });
            }
        }
        self.mode = Mode::Fetching(Box::new(FetchJob {
            tag: tag.to_string(),
            uid,
            todo,
            attrs,
            changed_since: modifiers.changed_since,
            expunge_issued: false,
            unknown_cte: false,
        }));
        Ok((None, ""))
    }

    fn fetch_chunk(&mut self, mut job: FetchJob, b: &dyn Backend) {
        let res = self.fetch_some(&mut job, b);
        if let Err(f) = res {
            self.finish(&job.tag, Err(f));
            return;
        }
        if !job.todo.is_empty() {
            self.mode = Mode::Fetching(Box::new(job));
            return;
        }
        if let Err(e) = self.sync(b, job.uid) {
            tracing::warn!(error = ?e, "imap: sync failed");
        }
        let res = if job.unknown_cte {
            Err(no(
                Code::UnknownCte,
                "Cannot decode a part's transfer encoding",
            ))
        } else if job.expunge_issued {
            Ok((Some(Code::ExpungeIssued), "Some messages were expunged"))
        } else {
            Ok((None, "FETCH completed"))
        };
        self.finish(&job.tag, res);
    }

    /// Renders the next chunk of a FETCH: up to [`CHUNK_MESSAGES`] messages or about
    /// [`CHUNK_BYTES`] of output. Rows and structures are read in one transaction per
    /// batch; message bytes one message at a time, so memory is bounded by the largest.
    fn fetch_some(&mut self, job: &mut FetchJob, b: &dyn Backend) -> Result<(), Fail> {
        let need_blob = fetch::needs_blob(&job.attrs);
        let need_parsed = fetch::needs_parsed(&job.attrs);
        let sets_seen = fetch::sets_seen(&job.attrs);
        let condstore = self.enabled.condstore;
        let batch = if need_blob { 1 } else { CHUNK_MESSAGES };
        let mut count = 0;
        while count < CHUNK_MESSAGES && self.out.len() < CHUNK_BYTES && !job.todo.is_empty() {
            let view = self.view()?;
            let (mailbox, read_only) = (view.mailbox, view.read_only);
            let take = batch.min(job.todo.len());
            let (idx, uids): (Vec<usize>, Vec<u32>) = job
                .todo
                .drain(..take)
                .filter_map(|i| view.msgs.get(i).map(|m| (i, m.uid)))
                .unzip();
            let mut loaded = b.load(mailbox, &uids, need_parsed, need_blob)?;
            // RFC 9051 §6.4.5: BODY[] (not PEEK) sets \Seen; the FETCH then reports FLAGS.
            let unseen: Vec<u32> = uids
                .iter()
                .zip(&loaded)
                .filter_map(|(u, l)| {
                    l.as_ref()
                        .filter(|l| l.row.flags & flag::SEEN == 0)
                        .map(|_| *u)
                })
                .collect();
            let mut newly_seen = Vec::new();
            let rows = if sets_seen && !read_only && !unseen.is_empty() {
                match b.write(Op::SetFlags {
                    mailbox,
                    uids: unseen,
                    mode: FlagMode::Add,
                    flags: flag::SEEN,
                    keywords: vec![],
                    unchanged_since: None,
                })? {
                    Output::Flags { rows, .. } => rows,
                    _ => Vec::new(),
                }
            } else {
                Vec::new()
            };
            for (u, f, kw, ms) in rows {
                if let Some(l) = uids
                    .iter()
                    .position(|x| *x == u)
                    .and_then(|p| loaded.get_mut(p))
                    .and_then(Option::as_mut)
                {
                    l.row.flags = f;
                    l.row.keywords = kw;
                    l.row.modseq = ms;
                    newly_seen.push(u);
                }
            }
            for ((i, uid), l) in idx.into_iter().zip(uids).zip(loaded) {
                let Some(l) = l else {
                    job.expunge_issued = true;
                    continue;
                };
                if let Some(since) = job.changed_since
                    && l.row.modseq <= since
                {
                    continue;
                }
                let mut attrs = std::borrow::Cow::Borrowed(&job.attrs);
                if newly_seen.contains(&uid) {
                    if !attrs.contains(&FetchAttr::Flags) {
                        attrs.to_mut().push(FetchAttr::Flags);
                    }
                    if condstore && !attrs.contains(&FetchAttr::ModSeq) {
                        attrs.to_mut().push(FetchAttr::ModSeq);
                    }
                }
                let msg = fetch::Message {
                    uid,
                    row: &l.row,
                    flags: fetch::flags_of(l.row.flags, &l.row.keywords),
                    parsed: l.parsed.as_ref(),
                    raw: l.raw.as_deref(),
                };
                match fetch::render(&msg, &attrs) {
                    Ok(items) => self.send(Data::Fetch {
                        seq: i as u32 + 1,
                        items,
                    }),
                    Err(fetch::FetchError::UnknownCte) => job.unknown_cte = true,
                }
                // What the client was told is now what the view knows; flags it was not
                // told about are left for the next sync to report.
                if attrs.contains(&FetchAttr::Flags)
                    && let Ok(view) = self.view_mut()
                    && let Some(vm) = view.msgs.get_mut(i)
                {
                    vm.flags = l.row.flags;
                    vm.keywords = l.row.keywords;
                    vm.modseq = l.row.modseq;
                }
                count += 1;
            }
        }
        Ok(())
    }

    /// Valid in: Selected. RFC 9051 §6.4.6, RFC 7162 §3.1.3 (UNCHANGEDSINCE).
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        b: &dyn Backend,
        uid: bool,
        set: &SequenceSet,
        unchanged_since: Option<u64>,
        action: StoreAction,
        silent: bool,
        flags: &[Flag],
    ) -> Done {
        if unchanged_since.is_some() {
            self.enabled.condstore = true;
        }
        let condstore = self.enabled.condstore;
        let view = self.view()?;
        if view.read_only {
            return Err(no(Code::ReadOnly, "Mailbox is read-only"));
        }
        let idx = resolve(view, set, uid)?;
        let uids: Vec<u32> = idx
            .iter()
            .filter_map(|&i| view.msgs.get(i))
            .filter(|m| !m.gone)
            .map(|m| m.uid)
            .collect();
        let (bits, keywords) = fetch::bits_of(flags);
        let mode = match action {
            StoreAction::Replace => FlagMode::Replace,
            StoreAction::Add => FlagMode::Add,
            StoreAction::Remove => FlagMode::Remove,
        };
        let out = if uids.is_empty() {
            Output::Flags {
                rows: vec![],
                modified: vec![],
            }
        } else {
            b.write(Op::SetFlags {
                mailbox: view.mailbox,
                uids,
                mode,
                flags: bits,
                keywords,
                unchanged_since,
            })?
        };
        let Output::Flags { rows, modified } = out else {
            return Err(Fail::No(
                Some(Code::ServerBug),
                "unexpected store reply".into(),
            ));
        };
        let view = self.view_mut()?;
        let mut fetches = Vec::new();
        for (u, f, kw, ms) in rows {
            let Some(i) = view.seq_of(u) else { continue };
            let Some(m) = view.msgs.get_mut(i) else {
                continue;
            };
            m.flags = f;
            m.keywords = kw.clone();
            m.modseq = ms;
            // RFC 7162 §3.1.3: with UNCHANGEDSINCE, .SILENT still reports MODSEQ.
            if !silent || unchanged_since.is_some() {
                let mut items = Vec::new();
                if uid {
                    items.push(FetchItem::Uid(u));
                }
                if !silent {
                    items.push(FetchItem::Flags(fetch::flags_of(f, &kw)));
                }
                if condstore {
                    items.push(FetchItem::ModSeq(ms));
                }
                fetches.push(Data::Fetch {
                    seq: i as u32 + 1,
                    items,
                });
            }
        }
        let modified_ids: Vec<u32> = if uid {
            modified
        } else {
            modified
                .iter()
                .filter_map(|u| view.seq_of(*u).map(|i| i as u32 + 1))
                .collect()
        };
        for f in fetches {
            self.send(f);
        }
        if !modified_ids.is_empty() {
            let mut m = modified_ids;
            m.sort_unstable();
            return Ok((
                Some(Code::Modified(SequenceSet::from_sorted(&m))),
                "Conditional STORE failed for some messages",
            ));
        }
        Ok((None, "STORE completed"))
    }

    /// Valid in: Selected. RFC 9051 §6.4.7 (COPY), RFC 6851 (MOVE), RFC 4315 COPYUID.
    fn copy(
        &mut self,
        b: &dyn Backend,
        uid: bool,
        set: &SequenceSet,
        dest: &Mailbox,
        remove: bool,
    ) -> Done {
        let account = self.account_id()?;
        let view = self.view()?;
        if remove && view.read_only {
            return Err(no(Code::ReadOnly, "Mailbox is read-only"));
        }
        let idx = resolve(view, set, uid)?;
        let uids: Vec<u32> = idx
            .iter()
            .filter_map(|&i| view.msgs.get(i))
            .filter(|m| !m.gone)
            .map(|m| m.uid)
            .collect();
        let from = view.mailbox;
        let Some(to) = b.mailbox(account, &normalize(dest))? else {
            return Err(no(Code::TryCreate, "No such mailbox"));
        };
        if uids.is_empty() {
            return Ok((
                None,
                if remove {
                    "MOVE completed"
                } else {
                    "COPY completed"
                },
            ));
        }
        let out = b.write(Op::Copy {
            from,
            uids,
            to: to.id,
            remove,
        })?;
        let code = match out {
            Output::Copied { uidvalidity, pairs } if !pairs.is_empty() => {
                let (src, dst): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
                Some(Code::CopyUid {
                    uid_validity: uidvalidity,
                    source: compress(&src),
                    dest: compress(&dst),
                })
            }
            _ => None,
        };
        if remove {
            // RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
            if let Some(code) = code {
                self.status(StatusResponse::ok(None, Some(code), "Moved"));
            }
            Ok((None, "MOVE completed"))
        } else {
            Ok((code, "COPY completed"))
        }
    }

    // -----------------------------------------------------------------------------
    // The view.
    // -----------------------------------------------------------------------------

    /// Brings the view up to date with the store and reports the differences
    /// (RFC 9051 §7.4.1 EXPUNGE, §7.3.1 EXISTS, §7.5.2 FETCH; RFC 7162 §3.2.10 VANISHED).
    fn sync(&mut self, b: &dyn Backend, allow_expunge: bool) -> Result<(), Fail> {
        let qresync = self.enabled.qresync;
        let condstore = self.enabled.condstore;
        let State::Selected { view, .. } = &self.state else {
            return Ok(());
        };
        let Some(mb) = b.mailbox_by_id(view.mailbox)? else {
            // Deleted by another session: nothing sensible remains to show (as Dovecot).
            self.status(StatusResponse::bye(None, "Selected mailbox was deleted"));
            self.state = State::Logout;
            self.close_after = true;
            return Ok(());
        };
        let State::Selected { view, .. } = &mut self.state else {
            return Ok(());
        };
        if mb.highestmodseq == view.highestmodseq && mb.uidnext == view.uidnext {
            return Ok(());
        }
        let rows = b.messages(view.mailbox)?;
        let mut out: Vec<Response> = Vec::new();
        // Expunged: in the view, not in the store.
        let mut deferred = false;
        {
            let mut r = rows.iter().peekable();
            for m in view.msgs.iter_mut() {
                while r.peek().is_some_and(|(u, _)| *u < m.uid) {
                    r.next();
                }
                let present = r.peek().is_some_and(|(u, _)| *u == m.uid);
                if !present {
                    m.gone = true;
                }
            }
        }
        if view.msgs.iter().any(|m| m.gone) {
            if allow_expunge {
                if qresync {
                    let gone: Vec<u32> =
                        view.msgs.iter().filter(|m| m.gone).map(|m| m.uid).collect();
                    out.push(
                        Data::Vanished {
                            earlier: false,
                            uids: SequenceSet::from_sorted(&gone),
                        }
                        .into(),
                    );
                } else {
                    // Highest first: each number is valid when the client reads it.
                    for (i, m) in view.msgs.iter().enumerate().rev() {
                        if m.gone {
                            out.push(Data::Expunge(i as u32 + 1).into());
                        }
                    }
                }
                view.msgs.retain(|m| !m.gone);
                view.saved
                    .retain(|u| rows.binary_search_by_key(u, |(x, _)| *x).is_ok());
            } else {
                deferred = true;
            }
        }
        // Flag changes and new messages.
        let old_len = view.msgs.len();
        let last = view.last_uid();
        for (uid, row) in &rows {
            if *uid > last {
                view.msgs.push(Msg {
                    uid: *uid,
                    flags: row.flags,
                    keywords: row.keywords.clone(),
                    modseq: row.modseq,
                    internal_date: row.internal_date,
                    size: row.size,
                    gone: false,
                });
                continue;
            }
            let Some(i) = view.seq_of(*uid) else { continue };
            let Some(m) = view.msgs.get_mut(i) else {
                continue;
            };
            if m.modseq != row.modseq {
                let changed = m.flags != row.flags || m.keywords != row.keywords;
                m.flags = row.flags;
                m.keywords = row.keywords.clone();
                m.modseq = row.modseq;
                if changed || condstore {
                    let mut items = vec![
                        FetchItem::Uid(*uid),
                        FetchItem::Flags(fetch::flags_of(row.flags, &row.keywords)),
                    ];
                    if condstore {
                        items.push(FetchItem::ModSeq(row.modseq));
                    }
                    out.push(
                        Data::Fetch {
                            seq: i as u32 + 1,
                            items,
                        }
                        .into(),
                    );
                }
            }
        }
        if view.msgs.len() != old_len {
            out.push(Data::Exists(view.msgs.len() as u32).into());
        }
        view.uidnext = mb.uidnext;
        view.highestmodseq = if deferred { 0 } else { mb.highestmodseq };
        for r in out {
            r.encode(&mut self.out);
        }
        Ok(())
    }
}

fn framer_config(cfg: &SessionConfig) -> FramerConfig {
    let d = FramerConfig::default();
    FramerConfig {
        max_line: cfg.max_line,
        max_literal: d.max_literal,
        max_append_literal: cfg.max_message_size,
        max_frame: cfg.max_message_size.saturating_add(1024 * 1024),
        // A refused LITERAL+ literal is read and dropped up to this size (RFC 7888 §4);
        // only larger ones close the connection.
        max_discard: cfg.max_message_size.max(d.max_discard),
    }
}

fn normalize(m: &Mailbox) -> String {
    store::normalize_name(m.as_str()).unwrap_or_else(|_| m.as_str().to_string())
}

fn parse_special_use(s: &str) -> Option<SpecialUse> {
    let s = s.trim_start_matches('\\');
    Some(match s.to_ascii_lowercase().as_str() {
        "sent" => SpecialUse::Sent,
        "drafts" => SpecialUse::Drafts,
        "trash" => SpecialUse::Trash,
        "junk" => SpecialUse::Junk,
        "archive" => SpecialUse::Archive,
        "all" => SpecialUse::All,
        "flagged" => SpecialUse::Flagged,
        _ => return None,
    })
}

fn special_attr(su: SpecialUse) -> MailboxAttr {
    match su {
        SpecialUse::Sent => MailboxAttr::Sent,
        SpecialUse::Drafts => MailboxAttr::Drafts,
        SpecialUse::Trash => MailboxAttr::Trash,
        SpecialUse::Junk => MailboxAttr::Junk,
        SpecialUse::Archive => MailboxAttr::Archive,
        SpecialUse::All => MailboxAttr::All,
        SpecialUse::Flagged => MailboxAttr::Flagged,
    }
}

/// Compresses UIDs in their given order into a set (COPYUID keeps source and
/// destination in matching order, so runs are only merged when ascending by one).
fn compress(uids: &[u32]) -> SequenceSet {
    let mut items = Vec::new();
    let mut it = uids.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&end.wrapping_add(1)) {
            end += 1;
            it.next();
        }
        items.push(if start == end {
            SeqItem::One(SeqNum::Value(start))
        } else {
            SeqItem::Range(SeqNum::Value(start), SeqNum::Value(end))
        });
    }
    if items.is_empty() {
        items.push(SeqItem::One(SeqNum::Value(0)));
    }
    SequenceSet(items)
}

/// The view indices a set names (RFC 9051 §9 sequence-set; `$` RFC 5182). A sequence
/// number past the end is a client error (BAD, RFC 9051 §6.4.8); UIDs that do not
/// exist are simply not matched.
fn resolve(view: &View, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Fail> {
    let n = view.msgs.len() as u32;
    if !uid {
        for item in &set.0 {
            let bad = |s: &SeqNum| matches!(s, SeqNum::Value(v) if *v > n);
            let out_of_range = match item {
                SeqItem::One(s) => bad(s) || (n == 0 && *s == SeqNum::Last),
                SeqItem::Range(a, c) => bad(a) || bad(c) || n == 0,
                SeqItem::Saved => false,
            };
            if out_of_range {
                return Err(Fail::Bad("Invalid message sequence number".into()));
            }
        }
    }
    let last_uid = view.last_uid();
    let saved = set.uses_saved();
    Ok(view
        .msgs
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            let key = if uid { m.uid } else { *i as u32 + 1 };
            let last = if uid { last_uid } else { n };
            set.contains(key, last) || (saved && view.saved.binary_search(&m.uid).is_ok())
        })
        .map(|(i, _)| i)
        .collect())
}

/// LIST pattern matching (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// separator; INBOX matches case-insensitively.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = if pattern
        .get(..5)
        .is_some_and(|h| h.eq_ignore_ascii_case("INBOX"))
        && (name == "INBOX" || name.starts_with("INBOX/"))
    {
        format!("INBOX{}", pattern.get(5..).unwrap_or(""))
            .chars()
            .collect()
    } else {
        pattern.chars().collect()
    };
    let n: Vec<char> = name.chars().collect();
    // reach[j]: the pattern read so far matches the first j characters of the name.
    let mut reach = vec![false; n.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for pc in p {
        let mut next = vec![false; n.len() + 1];
        let mut open = false;
        for (j, slot) in next.iter_mut().enumerate() {
            let here = reach.get(j).copied().unwrap_or(false);
            let prev = j.checked_sub(1).and_then(|k| n.get(k).copied());
            *slot = match pc {
                '*' => {
                    open |= here;
                    open
                }
                '%' => {
                    // A `%` run cannot cross a separator.
                    if prev == Some('/') {
                        open = false;
                    }
                    open |= here;
                    open
                }
                c => {
                    prev == Some(c)
                        && j.checked_sub(1)
                            .and_then(|k| reach.get(k).copied())
                            .unwrap_or(false)
                }
            };
        }
        reach = next;
    }
    reach.last().copied().unwrap_or(false)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
