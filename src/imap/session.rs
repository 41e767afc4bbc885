//! The IMAP session (RFC 3501, RFC 9051), sans-I/O (STYLE habit 1): bytes in with
//! [`Session::feed`], [`Step`]s out of [`Session::next`]. It owns the protocol: the
//! connection states and the one table of what each allows ([`allowed`], STYLE habit 3),
//! the literal and AUTHENTICATE / IDLE flows, every command's replies, and the
//! session's own view of the selected mailbox.
//!
//! The command handlers live in `imap/ops/` (auth, mailbox, message, sort, view, and
//! context for the live SEARCH / SORT results of RFC 5267), one file per
//! group; they are child modules of this one so they share the session's private state.
//!
//! # Events
//! - [`Event::Login`]: check these credentials (the driver applies the failed-login
//!   limiter); answer with [`Session::answer`].
//! - [`Event::Execute`]: a command (or an IDLE update, or the next chunk of a large
//!   FETCH) needs the store; call [`Session::execute`] with a [`Backend`] on a blocking
//!   thread. It never blocks on the network.
//!
//! # Transport changes
//! - STARTTLS: [`Step::StartTls`] after the tagged OK; bytes pipelined after the command
//!   are dropped. [`Session::tls_established`] when the handshake is done.
//! - COMPRESS=DEFLATE (RFC 4978): [`Step::Compress`] after the tagged OK; the driver puts
//!   `net::deflate` under the session and calls [`Session::compression_started`], which
//!   hands back the bytes that followed the command (compressed, to be inflated and fed).
//!   The session sees only decompressed bytes, so its framer's caps apply to them.
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
use super::command::{Command, CommandBody, FetchAttr, Flag, parse_command, parse_idle_done};
use super::fragment::{
    Event as FrameEvent, FrameError, FrameErrorKind, Framer, FramerConfig, LiteralMode,
};
use super::response::{Code, Data, NamespaceDesc, Response, StatusResponse};
use crate::budget::Hold;
use crate::sasl::{Credentials, Exchange};
pub use crate::step::Step as GenericStep;
use crate::store::{self, Change, Op};

/// What this session's driver must do next.
pub type Step = GenericStep<Event>;

/// Output is handed to the driver in pieces of about this size (a large FETCH is
/// rendered chunk by chunk, so memory stays bounded whatever the mailbox).
const CHUNK_BYTES: usize = 256 * 1024;
/// Messages rendered per FETCH chunk at most.
const CHUNK_MESSAGES: usize = 256;
/// Command-line bytes every connection may hold outside the message-memory budget: the
/// 8192 octets RFC 7162 §4 asks servers to accept. The rest of a longer line (up to
/// `[limits] imap_max_line_length`, 64 KiB by default) is held under the budget.
const LINE_BYTES_FREE: u64 = 8192;
/// Live results (`RETURN (UPDATE)`, RFC 5267 §4.3) a session may hold at once; one
/// more is answered `* NO [NOUPDATE "tag"]`. Each holds one UID (4 bytes) per message
/// of its result, so 10 on a mailbox of 100,000 messages hold at most 4 MB.
const MAX_CONTEXTS: usize = 10;

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
    /// The daemon-wide budget for literal bytes in memory ([`crate::budget`]); `None`:
    /// no bound beyond the framer's caps.
    pub budget: Option<std::sync::Arc<crate::budget::Budget>>,
    /// `[[imap_compat]]`: capabilities hidden from clients named in `ID`.
    pub compat: std::sync::Arc<Vec<crate::config::CompatRule>>,
    /// SORT keys shared by every session ([`super::sort::KeyCache`]); `None`: SORT
    /// reads every message's structure each time.
    pub sort_cache: Option<std::sync::Arc<super::sort::KeyCache>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            tls_available: true,
            plaintext_auth_allowed: true,
            max_message_size: 50 * 1024 * 1024,
            max_auth_failures: 3,
            max_line: 64 * 1024,
            budget: None,
            compat: Default::default(),
            sort_cache: Some(Default::default()),
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
        | GetQuota(_)
        | GetQuotaRoot(_)
        | SetQuota { .. }
        | Status { .. }
        | Append { .. }
        | Idle
        // RFC 4978 §5: command-auth.
        | Compress(_) => {
            matches!(state, Authenticated | Selected)
        }
        // RFC 9051 §6.4, RFC 3691 UNSELECT, RFC 4315 UID EXPUNGE, RFC 6851 MOVE,
        // RFC 5256 SORT and THREAD.
        Check
        | Close
        | Unselect
        | Expunge
        | UidExpunge(_)
        | Search { .. }
        | Sort { .. }
        | Thread { .. }
        // RFC 5267 §4.3.
        | CancelUpdate(_)
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
    /// Keywords; boxed, as most messages have none (memory per selected message
    /// matters with many idle clients on big mailboxes).
    keywords: Box<[String]>,
    modseq: u64,
    /// Expunged in the store but not yet reported to the client.
    gone: bool,
    /// `\Recent` for this session (RFC 3501 §2.3.2; IMAP4rev1 sessions only).
    recent: bool,
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
    /// The keywords the client was told about in FLAGS (RFC 9051 §7.3.5).
    keywords: Vec<String>,
    /// Live SEARCH / SORT results (RFC 5267 §4.3), at most [`MAX_CONTEXTS`]; they end
    /// with the selection.
    contexts: Vec<context::Context>,
}

impl View {
    fn seq_of(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }
    fn last_uid(&self) -> u32 {
        self.msgs.last().map(|m| m.uid).unwrap_or(0)
    }
    fn recent(&self) -> u32 {
        self.msgs.iter().filter(|m| m.recent).count() as u32
    }
    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` for the system flags and the known keywords
    /// (RFC 9051 §7.3.5, §7.1; RFC 3501 §7.2.6).
    fn flag_responses(&self) -> (Data, StatusResponse) {
        let system = [
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        let mut flags = system.to_vec();
        flags.extend(self.keywords.iter().cloned().map(Flag::Keyword));
        let permanent = if self.read_only {
            vec![]
        } else {
            flags.clone()
        };
        (
            Data::Flags(flags),
            StatusResponse::ok(
                None,
                Some(Code::PermanentFlags {
                    flags: permanent,
                    new_keywords: !self.read_only,
                }),
                "Flags permitted",
            ),
        )
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
    /// COMPRESS answered OK: hand out [`Step::Compress`] next.
    Compress,
    /// The driver switches to DEFLATE ([`Session::compression_started`]).
    CompressWait,
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
            // RFC 9208 §4.3, §7.1: APPEND, COPY and MOVE over quota.
            store::Error::OverQuota => Fail::No(Some(Code::OverQuota), "Quota exceeded".into()),
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
    /// COMPRESS=DEFLATE is active (RFC 4978).
    compressed: bool,
    enabled: Enabled,
    pending: Option<Event>,
    /// A store change for the selected mailbox arrived during IDLE.
    dirty: bool,
    /// Close once the pending output is written (after a BYE).
    close_after: bool,
    /// The budget held by the literals of the command being received.
    literal_hold: Hold,
    /// The budget held by the command being executed (its literals), until it is done.
    command_hold: Hold,
    /// Capabilities hidden from this client (`[[imap_compat]]`, after its `ID`).
    hidden: Vec<String>,
    /// The budget held by the part of a command line being received beyond
    /// [`LINE_BYTES_FREE`].
    line_hold: Hold,
    /// Unix seconds of the last [`Session::execute`] (live results are re-evaluated
    /// at that time, RFC 5267 §4.3).
    now: i64,
}

impl Session {
    /// A new session; `tls` is true on the implicit-TLS port.
    pub fn new(cfg: SessionConfig, tls: bool) -> Session {
        let framer = Framer::new(framer_config(&cfg));
        let cfg_budget = cfg.budget.clone();
        Session {
            cfg,
            framer,
            out: Vec::new(),
            state: State::NotAuthenticated { failures: 0 },
            mode: Mode::Command,
            tls,
            compressed: false,
            enabled: Enabled::default(),
            pending: None,
            dirty: false,
            close_after: false,
            literal_hold: Hold::new(cfg_budget.clone()),
            command_hold: Hold::default(),
            hidden: Vec::new(),
            line_hold: Hold::new(cfg_budget.clone()),
            now: 0,
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

    /// The goodbye when the client's compressed input is not valid DEFLATE (RFC 4978;
    /// RFC 9051 §7.1.5 BYE), sent compressed before the connection is closed.
    pub fn bad_compression_reply(&self) -> Vec<u8> {
        Response::from(StatusResponse::bye(
            Some(Code::ClientBug),
            "Invalid compressed data",
        ))
        .to_bytes()
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

    /// True while a command has begun to arrive but is not complete (see
    /// [`Framer::mid_command`]).
    pub fn mid_command(&self) -> bool {
        self.framer.mid_command()
    }

    /// The TLS handshake after [`Step::StartTls`] succeeded.
    pub fn tls_established(&mut self) {
        self.tls = true;
        if matches!(self.mode, Mode::TlsWait | Mode::StartTls) {
            self.mode = Mode::Command;
        }
    }

    /// The driver switched the connection to DEFLATE after [`Step::Compress`] (RFC 4978
    /// §3). Returns the bytes the client sent after the COMPRESS command, which the
    /// session had not framed yet: they are compressed, so the driver must decompress
    /// them and [`Session::feed`] the result. (A client must wait for the tagged reply
    /// before it sends more, so this is normally empty.)
    pub fn compression_started(&mut self) -> Vec<u8> {
        if !matches!(self.mode, Mode::CompressWait | Mode::Compress) {
            return Vec::new();
        }
        self.mode = Mode::Command;
        self.compressed = true;
        self.framer.take_unframed()
    }

    /// True once COMPRESS=DEFLATE is active.
    pub fn is_compressed(&self) -> bool {
        self.compressed
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
                    self.literal_hold.set(0);
                    return Step::StartTls;
                }
                Mode::Compress => {
                    // RFC 4978 §3: compression starts right after the CRLF of the
                    // tagged OK, which was handed out above.
                    self.mode = Mode::CompressWait;
                    return Step::Compress;
                }
                Mode::TlsWait | Mode::CompressWait | Mode::LoginWait { .. } => {
                    return Step::Wait;
                }
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
                    // Every complete command has run: its literals are gone.
                    self.command_hold.set(0);
                    // A long line being received is held under the budget; with no room,
                    // the connection ends (the line cannot be answered before it ends).
                    let line = (self.framer.frame_len() as u64)
                        .saturating_sub(self.literal_hold.held())
                        .saturating_sub(LINE_BYTES_FREE);
                    if !self.line_hold.set(line) {
                        self.line_hold.set(0);
                        self.status(StatusResponse::bye(
                            Some(Code::Unavailable),
                            "Too much data in transit, try again later",
                        ));
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
        self.now = now;
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Exec(cmd) => {
                let Command { tag, body } = *cmd;
                let selected_before = self.state.kind() == StateKind::Selected;
                let allow_expunge = !matches!(
                    body,
                    CommandBody::Fetch { uid: false, .. }
                        | CommandBody::Store { uid: false, .. }
                        | CommandBody::Search { uid: false, .. }
                        // RFC 5256 §3: no EXPUNGE during SORT or THREAD.
                        | CommandBody::Sort { uid: false, .. }
                        | CommandBody::Thread { uid: false, .. }
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
        } else if !self.compressed && self.state.kind() != StateKind::Logout {
            // RFC 4978 §1: offered once logged in, until it is active.
            caps.push("COMPRESS=DEFLATE".into());
        }
        for c in [
            "LITERAL+",
            "MULTIAPPEND",
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
            // RFC 5256, RFC 5957, RFC 5267 (ESORT, and CONTEXT: PARTIAL, UPDATE and
            // CANCELUPDATE), draft-ietf-morg-inthread (REFS).
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "CONTEXT=SEARCH",
            "CONTEXT=SORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "THREAD=REFS",
            "CONDSTORE",
            "QRESYNC",
            "STATUS=SIZE",
            "BINARY",
            "UTF8=ACCEPT",
            // RFC 9208 §3.1: STORAGE and MESSAGE per account (SETQUOTA is the admin's).
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "QUOTA=RES-MESSAGE",
        ] {
            caps.push(c.into());
        }
        caps.push(format!("APPENDLIMIT={}", self.cfg.max_message_size));
        if !self.hidden.is_empty() {
            caps.retain(|c| !self.hidden.iter().any(|h| h.eq_ignore_ascii_case(c)));
        }
        caps
    }

    // -----------------------------------------------------------------------------
    // Framing.
    // -----------------------------------------------------------------------------

    fn on_frame_event(&mut self, ev: FrameEvent) {
        match ev {
            FrameEvent::Frame(frame) => {
                self.line_hold.set(0);
                self.command_hold = std::mem::take(&mut self.literal_hold);
                self.literal_hold = Hold::new(self.cfg.budget.clone());
                self.on_frame(&frame)
            }
            FrameEvent::LiteralAnnounced(ann) => {
                // Sizes over the caps were refused by the framer already
                // (RFC 7888 §4, RFC 7889 APPENDLIMIT). The daemon-wide budget may still
                // have no room: a temporary refusal (RFC 9051 §7.1 UNAVAILABLE).
                let total = self.literal_hold.held().saturating_add(ann.length);
                if !self.literal_hold.set(total) {
                    self.literal_hold.set(0);
                    match self.framer.reject_literal() {
                        Some(ev) => self.on_frame_event(ev),
                        None => self.status(StatusResponse::no(
                            ann.tag.as_deref(),
                            Some(Code::Unavailable),
                            "Too much mail in transit, try again later",
                        )),
                    }
                    return;
                }
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
        self.literal_hold.set(0);
        self.line_hold.set(0);
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
            CommandBody::Id(params) => {
                // `[[imap_compat]]`: what this client is not to be told about.
                if let Some(params) = &params {
                    self.hidden = self
                        .cfg
                        .compat
                        .iter()
                        .filter(|r| r.matches(params))
                        .flat_map(|r| r.hide.iter().cloned())
                        .collect();
                }
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
            CommandBody::Compress(algorithm) => self.compress(&tag, &algorithm),
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

    // -----------------------------------------------------------------------------
    // Commands that need the store.
    // -----------------------------------------------------------------------------

    /// `* QUOTA "" (STORAGE used limit MESSAGE used limit)` (RFC 9208 §5.1, §5.2: STORAGE
    /// in units of 1024 octets, usage rounded up); only the resources that have a limit.
    fn quota_data(&mut self, b: &dyn Backend) -> Result<(), Fail> {
        let (quota, usage) = b.quota(self.account_id()?)?;
        let mut resources = Vec::new();
        if let Some(limit) = quota.storage {
            resources.push((
                "STORAGE".to_string(),
                usage.bytes.div_ceil(1024),
                limit / 1024,
            ));
        }
        if let Some(limit) = quota.messages {
            resources.push(("MESSAGE".to_string(), usage.messages, limit));
        }
        self.send(Data::Quota {
            root: String::new(),
            resources,
        });
        Ok(())
    }

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
            C::GetQuota(root) => {
                // RFC 9208 §4.2: one root per account, named "".
                if !root.is_empty() {
                    return Err(no(Code::NonExistent, "No such quota root"));
                }
                self.quota_data(b)?;
                Ok((None, "GETQUOTA completed"))
            }
            C::GetQuotaRoot(mailbox) => {
                // RFC 9208 §4.3: every mailbox of the account has the root "".
                let mb = self.lookup(b, &mailbox)?;
                self.send(Data::QuotaRoot {
                    mailbox: super::command::Mailbox::new(mb.name),
                    roots: vec![String::new()],
                });
                self.quota_data(b)?;
                Ok((None, "GETQUOTAROOT completed"))
            }
            // RFC 9208 §4.1: limits are the administrator's (`letterbox user quota`);
            // QUOTASET is not advertised.
            C::SetQuota { .. } => Err(no(
                Code::NoPerm,
                "Quotas are set by the administrator (letterbox user quota)",
            )),
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
            C::Sort {
                uid,
                returns,
                criteria,
                charset,
                keys,
            } => self.sort(tag, b, uid, returns, &criteria, &charset, &keys, now),
            C::Thread {
                uid,
                algorithm,
                charset,
                keys,
            } => self.thread(b, uid, algorithm, &charset, &keys, now),
            C::CancelUpdate(tags) => self.cancel_update(&tags),
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

#[path = "ops/auth.rs"]
mod auth;
#[path = "ops/context.rs"]
mod context;
#[path = "ops/mailbox.rs"]
mod mailbox;
#[path = "ops/message.rs"]
mod message;
#[path = "ops/sort.rs"]
mod sort;
#[path = "ops/view.rs"]
mod view;

use mailbox::normalize;
pub use mailbox::pattern_matches;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
