//! Command framing: turns a byte stream from an IMAP client into complete command
//! frames (one line plus every literal that line announces), under hard memory caps.
//!
//! This module owns *only* the byte-level split; [`super::command::parse_command`]
//! parses a finished frame. It is sans-I/O: the caller [`Framer::enqueue`]s whatever it
//! read and calls [`Framer::progress`] until it returns `None`. In the spirit of
//! imap-codec's `Fragmentizer`, but it also makes the literal decision explicit.
//!
//! # Literals (RFC 3501 §4.3 / §7.5, RFC 9051 §4.3, RFC 7888, RFC 3516)
//!
//! A line that ends in `{n}\r\n` (synchronizing), `{n+}\r\n` (non-synchronizing,
//! LITERAL+ / LITERAL-) or `~{n}\r\n` / `~{n+}\r\n` (literal8, BINARY, RFC 3516)
//! announces `n` raw bytes that belong to the same command. The framer stops and
//! reports [`Event::LiteralAnnounced`] *before* any literal byte is consumed, and waits
//! for [`Framer::accept_literal`] or [`Framer::reject_literal`]:
//!
//! * synchronizing: on accept the caller sends `+ Ready`; on reject it sends a tagged
//!   `NO [TOOBIG]` (or BAD) and the client will not send the bytes, so the framer simply
//!   drops the partial command.
//! * non-synchronizing: the bytes are already on their way. On reject the framer reads
//!   and throws away `n` bytes (counting, never buffering) and then the rest of that
//!   command, so none of it can be mistaken for a new command (no smuggling). If `n` is
//!   larger than [`FramerConfig::max_discard`] the framer reports [`Event::Fatal`]
//!   instead and the caller sends `* BYE [TOOBIG]` and closes the connection. This is
//!   our reading of RFC 7888 §4 (a server that refuses a non-synchronizing literal
//!   either reads and discards it or closes the connection): discarding costs bandwidth
//!   but no memory, closing bounds both.
//!
//! There is no `{n-}` syntax: LITERAL- (RFC 7888 §4) is a capability that limits
//! `{n+}` to 4096 bytes. The framer does not enforce the 4096 rule; the session can, by
//! rejecting larger non-synchronizing announcements.
//!
//! Literals that exceed the framer's own caps ([`FramerConfig::max_literal`], or
//! [`FramerConfig::max_append_literal`] for APPEND, RFC 7889 APPENDLIMIT) are refused by
//! the framer itself with [`Event::Rejected`] (sync, or non-sync within `max_discard`)
//! or [`Event::Fatal`].
//!
//! # Lines
//!
//! A line ends at LF. Literal announcements are only recognised with CRLF; a bare LF
//! still ends the frame so that the parser can answer BAD instead of hanging. A line
//! longer than [`FramerConfig::max_line`] is reported as soon as the cap is crossed
//! ([`Event::Rejected`] with the tag, if one was read) and the rest of the command is
//! discarded with constant memory; a literal announced at the end of the discarded
//! line is handled as if it had been rejected.
//!
//! Continuation lines that are not commands (AUTHENTICATE responses, RFC 9051 §6.2.2;
//! IDLE's `DONE`, RFC 2177) contain no literal syntax and arrive as ordinary frames.

use std::fmt;

/// Caps the framer enforces. Every buffer the framer owns is bounded by these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramerConfig {
    /// Longest line in bytes, CRLF included.
    pub max_line: usize,
    /// Largest literal accepted in any command but APPEND.
    pub max_literal: u64,
    /// Largest literal accepted in APPEND (advertised as `APPENDLIMIT=`, RFC 7889).
    pub max_append_literal: u64,
    /// Largest whole frame (all lines and literals of one command).
    pub max_frame: u64,
    /// Largest refused non-synchronizing literal that is read and thrown away rather
    /// than closing the connection.
    pub max_discard: u64,
}

impl Default for FramerConfig {
    fn default() -> Self {
        FramerConfig {
            max_line: 64 * 1024,
            max_literal: 1024 * 1024,
            max_append_literal: 50 * 1024 * 1024,
            max_frame: 51 * 1024 * 1024,
            max_discard: 50 * 1024 * 1024,
        }
    }
}

/// How the client announced a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralMode {
    /// `{n}`: the client waits for `+` before sending the bytes.
    Sync,
    /// `{n+}`: LITERAL+ / LITERAL- (RFC 7888); the bytes follow immediately.
    NonSync,
}

/// A literal announced at the end of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralAnnouncement {
    /// The command's tag, when the first line started with one.
    pub tag: Option<String>,
    /// The announced size in bytes.
    pub length: u64,
    /// Synchronizing or not.
    pub mode: LiteralMode,
    /// `~{n}`: a literal8 (RFC 3516), which may contain NUL.
    pub binary: bool,
}

/// Why the framer refused a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameErrorKind {
    /// A line grew past [`FramerConfig::max_line`].
    LineTooLong,
    /// A literal larger than the cap for this command (RFC 7889 / RFC 9051 `TOOBIG`).
    LiteralTooBig {
        /// Announced size (`u64::MAX` when the number did not fit).
        length: u64,
        /// The cap that applied.
        limit: u64,
        /// How it was announced.
        mode: LiteralMode,
    },
    /// The whole command grew past [`FramerConfig::max_frame`].
    FrameTooBig,
}

/// A refused command: what went wrong and the tag to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// Tag of the refused command, if one was read (else answer with `* BAD`).
    pub tag: Option<String>,
    /// What was wrong.
    pub kind: FrameErrorKind,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FrameErrorKind::LineTooLong => f.write_str("line too long"),
            FrameErrorKind::LiteralTooBig { length, limit, .. } => {
                write!(f, "literal of {length} bytes exceeds limit of {limit}")
            }
            FrameErrorKind::FrameTooBig => f.write_str("command too large"),
        }
    }
}

impl std::error::Error for FrameError {}

/// What [`Framer::progress`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete command: its line(s), CRLFs and literal bytes, exactly as received.
    Frame(Vec<u8>),
    /// A literal was announced; call [`Framer::accept_literal`] or
    /// [`Framer::reject_literal`] (and for [`LiteralMode::Sync`] send `+` or a tagged
    /// reply) before calling `progress` again. Stop reading from the socket meanwhile.
    LiteralAnnounced(LiteralAnnouncement),
    /// The framer refused a command and discards the rest of it; answer with a tagged
    /// `BAD` (line) or `NO [TOOBIG]` (literal), or `* BAD` without a tag. Framing goes on.
    Rejected(FrameError),
    /// The framer cannot resynchronise without reading unbounded data: send
    /// `* BYE` and close. Every later `progress` returns `None`.
    Fatal(FrameError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Accumulating a line of the current frame.
    Line,
    /// A literal was announced; waiting for the caller.
    Decide(LiteralAnnouncement),
    /// Copying literal bytes into the frame.
    Literal(u64),
    /// Discarding the rest of a refused command's line.
    Skip,
    /// Discarding the bytes of a refused non-synchronizing literal.
    Swallow(u64),
    /// After [`Event::Fatal`].
    Closed,
}

/// How many trailing bytes of a discarded line are kept to spot a literal announcement
/// (`~{` + 20 digits + `+}\r` fits).
const TAIL: usize = 32;

/// Splits a client byte stream into command frames. See the module docs.
#[derive(Debug)]
pub struct Framer {
    config: FramerConfig,
    input: Vec<u8>,
    pos: usize,
    frame: Vec<u8>,
    line_start: usize,
    state: State,
    /// Last bytes of the line being skipped.
    tail: Vec<u8>,
}

impl Framer {
    /// A framer with the given caps.
    pub fn new(config: FramerConfig) -> Self {
        Framer {
            config,
            input: Vec::new(),
            pos: 0,
            frame: Vec::new(),
            line_start: 0,
            state: State::Line,
            tail: Vec::with_capacity(TAIL),
        }
    }

    /// The caps in force.
    pub fn config(&self) -> &FramerConfig {
        &self.config
    }

    /// Appends bytes read from the client. Call [`Framer::progress`] until it returns
    /// `None` after each call, so that unprocessed input never exceeds one read.
    pub fn enqueue(&mut self, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Takes the input not yet framed, when no command is in progress (right after a
    /// [`Event::Frame`]); empty otherwise. For a change of the byte layer under the
    /// framer (IMAP COMPRESS, RFC 4978 §3): what the client sent after the command is no
    /// longer plain text.
    pub fn take_unframed(&mut self) -> Vec<u8> {
        if self.state != State::Line || !self.frame.is_empty() {
            return Vec::new();
        }
        let rest = self.input.split_off(self.pos);
        self.input.clear();
        self.pos = 0;
        rest
    }

    /// Bytes of the command being received (its lines and the literal bytes so far).
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// Bytes held: unprocessed input plus the partial frame.
    pub fn buffered_len(&self) -> usize {
        self.input.len() - self.pos + self.frame.len() + self.tail.len()
    }

    /// True between the first byte of a command and its end: a partial line or
    /// literal is held, or a refused command's rest is being discarded. The driver bounds
    /// how long a command may take to arrive with this (a slowloris client that sends a
    /// byte now and then never finishes one).
    pub fn mid_command(&self) -> bool {
        !matches!(self.state, State::Line | State::Closed) || self.buffered_len() > 0
    }

    /// True while an announced literal awaits [`Framer::accept_literal`] or
    /// [`Framer::reject_literal`].
    pub fn awaiting_decision(&self) -> bool {
        matches!(self.state, State::Decide(_))
    }

    /// True after [`Event::Fatal`].
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Accepts the pending literal: its bytes become part of the frame. No effect if
    /// none is pending.
    pub fn accept_literal(&mut self) {
        if let State::Decide(ann) = &self.state {
            self.state = State::Literal(ann.length);
        }
    }

    /// Refuses the pending literal and the command it belongs to. A synchronizing
    /// literal's bytes will not come; a non-synchronizing one is read and discarded.
    /// Returns [`Event::Fatal`] when a non-synchronizing literal is larger than
    /// [`FramerConfig::max_discard`] (close the connection), else `None`.
    pub fn reject_literal(&mut self) -> Option<Event> {
        let State::Decide(ann) = &self.state else {
            return None;
        };
        let ann = ann.clone();
        self.drop_frame();
        match ann.mode {
            LiteralMode::Sync => {
                self.state = State::Line;
                None
            }
            LiteralMode::NonSync => self.swallow_or_close(ann.tag, ann.length, u64::MAX),
        }
    }

    /// Processes buffered input. Returns the next event, or `None` when more input is
    /// needed (or a literal decision is pending, or the framer is closed).
    pub fn progress(&mut self) -> Option<Event> {
        let ev = self.step();
        if self.pos > 0 && (ev.is_none() || self.pos * 2 > self.input.len()) {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        ev
    }

    fn step(&mut self) -> Option<Event> {
        loop {
            let avail = &self.input[self.pos..];
            match self.state.clone() {
                State::Closed | State::Decide(_) => return None,
                State::Line => {
                    let line_len = self.frame.len() - self.line_start;
                    let room = self.config.max_line.saturating_sub(line_len);
                    let look = avail.len().min(room);
                    if let Some(i) = avail[..look].iter().position(|&b| b == b'\n') {
                        self.frame.extend_from_slice(&avail[..=i]);
                        self.pos += i + 1;
                        if self.frame.len() as u64 > self.config.max_frame {
                            return Some(self.refuse_rest(FrameErrorKind::FrameTooBig, false));
                        }
                        if let Some(ev) = self.line_done() {
                            return Some(ev);
                        }
                        continue;
                    }
                    if avail.len() > room {
                        // The line cannot end within the cap.
                        self.frame.extend_from_slice(&avail[..look]);
                        self.pos += look;
                        return Some(self.refuse_rest(FrameErrorKind::LineTooLong, true));
                    }
                    self.frame.extend_from_slice(avail);
                    self.pos += avail.len();
                    return None;
                }
                State::Literal(n) => {
                    let take = (avail.len() as u64).min(n) as usize;
                    self.frame.extend_from_slice(&avail[..take]);
                    self.pos += take;
                    let left = n - take as u64;
                    if left > 0 {
                        self.state = State::Literal(left);
                        return None;
                    }
                    self.line_start = self.frame.len();
                    self.state = State::Line;
                }
                State::Swallow(n) => {
                    let take = (avail.len() as u64).min(n) as usize;
                    self.pos += take;
                    let left = n - take as u64;
                    if left > 0 {
                        self.state = State::Swallow(left);
                        return None;
                    }
                    self.tail.clear();
                    self.state = State::Skip;
                }
                State::Skip => {
                    if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                        push_tail(&mut self.tail, &avail[..=i]);
                        self.pos += i + 1;
                        let ann = literal_suffix(&self.tail);
                        self.tail.clear();
                        match ann {
                            Some((length, LiteralMode::NonSync, _)) => {
                                if let Some(ev) = self.swallow_or_close(None, length, u64::MAX) {
                                    return Some(ev);
                                }
                            }
                            // A sync literal will not be sent: the client got our reply.
                            _ => self.state = State::Line,
                        }
                        continue;
                    }
                    push_tail(&mut self.tail, avail);
                    self.pos += avail.len();
                    return None;
                }
            }
        }
    }

    /// A line (ending in LF) was appended to the frame.
    fn line_done(&mut self) -> Option<Event> {
        let line = &self.frame[self.line_start..];
        match literal_suffix(line) {
            None => {
                self.line_start = 0;
                Some(Event::Frame(std::mem::take(&mut self.frame)))
            }
            Some((length, mode, binary)) => {
                let tag = extract_tag(&self.frame);
                let limit = if command_name_is(&self.frame, b"APPEND") {
                    self.config.max_append_literal
                } else {
                    self.config.max_literal
                };
                let total = (self.frame.len() as u64).saturating_add(length);
                if length > limit || total > self.config.max_frame {
                    let limit = limit.min(
                        self.config
                            .max_frame
                            .saturating_sub(self.frame.len() as u64),
                    );
                    self.drop_frame();
                    let err = FrameError {
                        tag,
                        kind: FrameErrorKind::LiteralTooBig {
                            length,
                            limit,
                            mode,
                        },
                    };
                    return Some(match mode {
                        LiteralMode::Sync => {
                            self.state = State::Line;
                            Event::Rejected(err)
                        }
                        LiteralMode::NonSync => {
                            if length <= self.config.max_discard {
                                self.state = State::Swallow(length);
                                Event::Rejected(err)
                            } else {
                                self.state = State::Closed;
                                self.input.clear();
                                self.pos = 0;
                                Event::Fatal(err)
                            }
                        }
                    });
                }
                let ann = LiteralAnnouncement {
                    tag,
                    length,
                    mode,
                    binary,
                };
                self.state = State::Decide(ann.clone());
                Some(Event::LiteralAnnounced(ann))
            }
        }
    }

    /// Refuses the current command and discards the rest of it. `mid_line`: the
    /// current line has not ended yet.
    fn refuse_rest(&mut self, kind: FrameErrorKind, mid_line: bool) -> Event {
        let tag = extract_tag(&self.frame);
        let line = &self.frame[self.line_start..];
        let last = line[line.len().saturating_sub(TAIL)..].to_vec();
        self.drop_frame();
        let err = FrameError { tag, kind };
        if mid_line {
            self.tail = last;
            self.state = State::Skip;
        } else {
            // The whole line was read: a literal it announces counts as refused.
            self.state = State::Line;
            if let Some((length, LiteralMode::NonSync, _)) = literal_suffix(&last)
                && let Some(fatal) = self.swallow_or_close(err.tag.clone(), length, u64::MAX)
            {
                return fatal;
            }
        }
        Event::Rejected(err)
    }

    fn swallow_or_close(&mut self, tag: Option<String>, length: u64, limit: u64) -> Option<Event> {
        if length <= self.config.max_discard {
            self.state = State::Swallow(length);
            None
        } else {
            self.state = State::Closed;
            self.input.clear();
            self.pos = 0;
            Some(Event::Fatal(FrameError {
                tag,
                kind: FrameErrorKind::LiteralTooBig {
                    length,
                    limit: limit.min(self.config.max_discard),
                    mode: LiteralMode::NonSync,
                },
            }))
        }
    }

    fn drop_frame(&mut self) {
        self.frame = Vec::new();
        self.line_start = 0;
    }
}

fn push_tail(tail: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() >= TAIL {
        tail.clear();
        tail.extend_from_slice(&bytes[bytes.len() - TAIL..]);
    } else {
        let excess = (tail.len() + bytes.len()).saturating_sub(TAIL);
        tail.drain(..excess);
        tail.extend_from_slice(bytes);
    }
}

/// If `line` ends with a literal announcement and CRLF, returns its size, mode and
/// whether it is a literal8. A number too large for `u64` yields `u64::MAX`.
pub fn literal_suffix(line: &[u8]) -> Option<(u64, LiteralMode, bool)> {
    let body = line.strip_suffix(b"\r\n")?;
    let body = body.strip_suffix(b"}")?;
    let (body, mode) = match body.strip_suffix(b"+") {
        Some(b) => (b, LiteralMode::NonSync),
        None => (body, LiteralMode::Sync),
    };
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let (rest, num) = body.split_at(body.len() - digits);
    let rest = rest.strip_suffix(b"{")?;
    let binary = rest.ends_with(b"~");
    let mut n: u64 = 0;
    for &d in num {
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(n) => n,
            None => return Some((u64::MAX, mode, binary)),
        };
    }
    Some((n, mode, binary))
}

/// The tag at the start of a frame: `1*<ASTRING-CHAR except "+">` followed by SP.
pub fn extract_tag(frame: &[u8]) -> Option<String> {
    let end = frame.iter().position(|&b| b == b' ')?;
    let tag = &frame[..end];
    if tag.is_empty() || !tag.iter().all(|&b| is_tag_char(b)) {
        return None;
    }
    // All bytes are ASCII, so this cannot fail.
    String::from_utf8(tag.to_vec()).ok()
}

/// `tag = 1*<any ASTRING-CHAR except "+">` (RFC 9051 §9).
pub(crate) fn is_tag_char(b: u8) -> bool {
    b != b'+' && (is_atom_char(b) || b == b']')
}

/// `ATOM-CHAR`: any CHAR except atom-specials (RFC 9051 §9).
pub(crate) fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// True if the second word of the frame is `name` (ASCII case-insensitive).
fn command_name_is(frame: &[u8], name: &[u8]) -> bool {
    let Some(sp) = frame.iter().position(|&b| b == b' ') else {
        return false;
    };
    let rest = &frame[sp + 1..];
    let word_len = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    rest[..word_len].eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> FramerConfig {
        FramerConfig {
            max_line: 64,
            max_literal: 100,
            max_append_literal: 1000,
            max_frame: 5000,
            max_discard: 2000,
        }
    }

    /// Drives a framer like a session would: accepts every literal, collects events.
    fn run(cfg: FramerConfig, chunks: &[&[u8]], accept: bool) -> (Vec<Event>, Framer) {
        let mut f = Framer::new(cfg);
        let mut out = Vec::new();
        for c in chunks {
            f.enqueue(c);
            while let Some(ev) = f.progress() {
                let announced = matches!(ev, Event::LiteralAnnounced(_));
                out.push(ev);
                if announced {
                    if accept {
                        f.accept_literal();
                    } else if let Some(ev) = f.reject_literal() {
                        out.push(ev);
                    }
                }
            }
        }
        (out, f)
    }

    fn frames(evs: &[Event]) -> Vec<Vec<u8>> {
        evs.iter()
            .filter_map(|e| match e {
                Event::Frame(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn literal_suffix_table() {
        type Case<'a> = (&'a [u8], Option<(u64, LiteralMode, bool)>);
        let cases: &[Case] = &[
            (b"a LOGIN {5}\r\n", Some((5, LiteralMode::Sync, false))),
            (b"a LOGIN {5+}\r\n", Some((5, LiteralMode::NonSync, false))),
            (b"a APPEND x ~{12}\r\n", Some((12, LiteralMode::Sync, true))),
            (
                b"a APPEND x ~{0+}\r\n",
                Some((0, LiteralMode::NonSync, true)),
            ),
            (b"a LOGIN {5}\n", None),
            (b"a LOGIN {}\r\n", None),
            (b"a LOGIN {5-}\r\n", None),
            (b"a LOGIN 5}\r\n", None),
            (b"a NOOP\r\n", None),
            (
                b"{99999999999999999999999}\r\n",
                Some((u64::MAX, LiteralMode::Sync, false)),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                literal_suffix(line),
                *want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn tags() {
        assert_eq!(extract_tag(b"a1 NOOP\r\n").as_deref(), Some("a1"));
        assert_eq!(extract_tag(b"a+ NOOP\r\n"), None);
        assert_eq!(extract_tag(b" NOOP\r\n"), None);
        assert_eq!(extract_tag(b"NOOP\r\n"), None);
        assert_eq!(extract_tag(b"a{ NOOP\r\n"), None);
    }

    #[test]
    fn simple_lines_and_pipelining() {
        let (evs, f) = run(
            small(),
            &[b"a NOOP\r\nb CAPABILITY\r\nc LOG", b"OUT\r\n"],
            true,
        );
        assert_eq!(
            frames(&evs),
            vec![
                b"a NOOP\r\n".to_vec(),
                b"b CAPABILITY\r\n".to_vec(),
                b"c LOGOUT\r\n".to_vec()
            ]
        );
        assert_eq!(f.buffered_len(), 0);
    }

    #[test]
    fn bare_lf_ends_a_frame() {
        let (evs, _) = run(small(), &[b"a NOOP\nb NOOP\r\n"], true);
        assert_eq!(
            frames(&evs),
            vec![b"a NOOP\n".to_vec(), b"b NOOP\r\n".to_vec()]
        );
    }

    /// Sync, LITERAL+, literal8 and several literals in one command, fed split at every
    /// byte boundary (and one byte at a time): the frames are always the same.
    #[test]
    fn literals_split_at_every_boundary() {
        let inputs: &[&[u8]] = &[
            b"a LOGIN {3}\r\nbob {6}\r\nsecret\r\nb NOOP\r\n",
            b"a LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n",
            b"A003 APPEND saved-messages (\\Seen) ~{10}\r\nab\x00\r\n\nxyz7\r\n",
            b"a APPEND x {0}\r\n\r\nz NOOP\r\n",
            b"a SEARCH SUBJECT {4+}\r\n{5}\r\n\r\n",
        ];
        for input in inputs {
            let (whole, _) = run(small(), &[input], true);
            assert!(
                whole
                    .iter()
                    .all(|e| !matches!(e, Event::Rejected(_) | Event::Fatal(_)))
            );
            let want = frames(&whole);
            assert_eq!(want.concat(), input.to_vec());
            for cut in 0..=input.len() {
                let (evs, f) = run(small(), &[&input[..cut], &input[cut..]], true);
                assert_eq!(frames(&evs), want, "cut at {cut}");
                assert_eq!(f.buffered_len(), 0);
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            let (evs, _) = run(small(), &bytes, true);
            assert_eq!(frames(&evs), want);
        }
    }

    #[test]
    fn announcement_comes_before_literal_bytes() {
        let mut f = Framer::new(small());
        f.enqueue(b"a1 LOGIN {3}\r\n");
        assert_eq!(
            f.progress(),
            Some(Event::LiteralAnnounced(LiteralAnnouncement {
                tag: Some("a1".into()),
                length: 3,
                mode: LiteralMode::Sync,
                binary: false,
            }))
        );
        assert!(f.awaiting_decision());
        // A pending decision blocks progress even if bytes arrive.
        f.enqueue(b"bob");
        assert_eq!(f.progress(), None);
        f.accept_literal();
        assert_eq!(f.progress(), None);
        f.enqueue(b" pw\r\n");
        assert_eq!(
            f.progress(),
            Some(Event::Frame(b"a1 LOGIN {3}\r\nbob pw\r\n".to_vec()))
        );
    }

    #[test]
    fn rejected_sync_literal_drops_command() {
        let mut f = Framer::new(small());
        f.enqueue(b"a1 APPEND INBOX {50}\r\n");
        assert!(matches!(f.progress(), Some(Event::LiteralAnnounced(_))));
        assert_eq!(f.reject_literal(), None);
        // The client does not send the bytes; its next command frames normally.
        f.enqueue(b"a2 NOOP\r\n");
        assert_eq!(f.progress(), Some(Event::Frame(b"a2 NOOP\r\n".to_vec())));
    }

    #[test]
    fn rejected_non_sync_literal_is_swallowed_with_rest_of_command() {
        // The literal contains something that looks like a command: it must not frame.
        let input =
            b"a1 APPEND INBOX {22+}\r\nx2 DELETE INBOX\r\n12345 (more) {3+}\r\nabc\r\na3 NOOP\r\n";
        for cut in 0..=input.len() {
            let (evs, f) = run(small(), &[&input[..cut], &input[cut..]], false);
            assert_eq!(frames(&evs), vec![b"a3 NOOP\r\n".to_vec()], "cut {cut}");
            assert_eq!(f.buffered_len(), 0);
        }
    }

    #[test]
    fn over_limit_sync_literal_refused_by_framer() {
        let (evs, _) = run(small(), &[b"t LOGIN {101}\r\nt2 NOOP\r\n"], true);
        assert_eq!(
            evs,
            vec![
                Event::Rejected(FrameError {
                    tag: Some("t".into()),
                    kind: FrameErrorKind::LiteralTooBig {
                        length: 101,
                        limit: 100,
                        mode: LiteralMode::Sync
                    }
                }),
                Event::Frame(b"t2 NOOP\r\n".to_vec()),
            ]
        );
        // APPEND has its own, larger cap.
        let (evs, _) = run(small(), &[b"t append x {101}\r\n"], true);
        assert!(matches!(evs[0], Event::LiteralAnnounced(_)));
        let (evs, _) = run(small(), &[b"t APPEND x {1001}\r\n"], true);
        assert!(matches!(
            &evs[0],
            Event::Rejected(FrameError {
                kind: FrameErrorKind::LiteralTooBig { limit: 1000, .. },
                ..
            })
        ));
    }

    #[test]
    fn over_limit_non_sync_literal_swallowed_with_bounded_memory() {
        let mut f = Framer::new(small());
        f.enqueue(b"t APPEND x {1500+}\r\n");
        assert!(matches!(f.progress(), Some(Event::Rejected(_))));
        let chunk = [b'A'; 100];
        for _ in 0..15 {
            f.enqueue(&chunk);
            assert_eq!(f.progress(), None);
            assert!(f.buffered_len() <= 100);
        }
        f.enqueue(b" more\r\nt2 NOOP\r\n");
        assert_eq!(f.progress(), Some(Event::Frame(b"t2 NOOP\r\n".to_vec())));
    }

    #[test]
    fn huge_non_sync_literal_is_fatal() {
        let (evs, f) = run(small(), &[b"t APPEND x {999999+}\r\nxxxx"], true);
        assert!(matches!(&evs[..], [Event::Fatal(FrameError { tag: Some(t), .. })] if t == "t"));
        assert!(f.is_closed());
        assert_eq!(f.buffered_len(), 0);
        // A refusal by the caller above max_discard is fatal too.
        let mut f = Framer::new(FramerConfig {
            max_discard: 10,
            ..small()
        });
        f.enqueue(b"t LOGIN {50+}\r\n");
        assert!(matches!(f.progress(), Some(Event::LiteralAnnounced(_))));
        assert!(matches!(f.reject_literal(), Some(Event::Fatal(_))));
        assert!(f.is_closed());
    }

    #[test]
    fn overlong_line_cut_with_bounded_memory() {
        let mut f = Framer::new(small());
        f.enqueue(b"tag1 SEARCH ");
        assert_eq!(f.progress(), None);
        let mut rejected = None;
        for _ in 0..10_000 {
            f.enqueue(&[b'x'; 37]);
            while let Some(ev) = f.progress() {
                rejected = Some(ev);
            }
            assert!(f.buffered_len() <= 64 + 37 + TAIL, "{}", f.buffered_len());
        }
        assert_eq!(
            rejected,
            Some(Event::Rejected(FrameError {
                tag: Some("tag1".into()),
                kind: FrameErrorKind::LineTooLong
            }))
        );
        f.enqueue(b"\r\nt2 NOOP\r\n");
        assert_eq!(f.progress(), Some(Event::Frame(b"t2 NOOP\r\n".to_vec())));
    }

    #[test]
    fn overlong_line_without_tag_and_with_trailing_literal() {
        let mut long = vec![b'x'; 200];
        long.extend_from_slice(b" {5+}\r\nHELLO\r\nt2 NOOP\r\n");
        let (evs, _) = run(small(), &[&long], true);
        assert_eq!(
            evs,
            vec![
                Event::Rejected(FrameError {
                    tag: None,
                    kind: FrameErrorKind::LineTooLong
                }),
                Event::Frame(b"t2 NOOP\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn second_line_too_long_after_literal() {
        let mut input = b"a LOGIN {3}\r\nbob ".to_vec();
        input.extend_from_slice(&[b'p'; 100]);
        input.extend_from_slice(b"\r\nb NOOP\r\n");
        let (evs, _) = run(small(), &[&input], true);
        assert!(
            matches!(&evs[1], Event::Rejected(FrameError { tag: Some(t), kind: FrameErrorKind::LineTooLong }) if t == "a")
        );
        assert_eq!(frames(&evs), vec![b"b NOOP\r\n".to_vec()]);
    }

    #[test]
    fn many_small_literals_hit_frame_cap() {
        let cfg = FramerConfig {
            max_frame: 200,
            ..small()
        };
        let mut input = b"a SEARCH".to_vec();
        for _ in 0..30 {
            input.extend_from_slice(b" TEXT {10+}\r\n0123456789");
        }
        input.extend_from_slice(b"\r\nb NOOP\r\n");
        let (evs, f) = run(cfg, &[&input], true);
        assert!(
            evs.iter()
                .any(|e| matches!(e, Event::Rejected(FrameError { tag: Some(t), .. }) if t == "a"))
        );
        assert_eq!(frames(&evs), vec![b"b NOOP\r\n".to_vec()]);
        assert_eq!(f.buffered_len(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"a {}+~0123456789\r\n()\"\\*";
        for _ in 0..3000 {
            let mut f = Framer::new(small());
            let len = (next() % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            for chunk in bytes.chunks(1 + (next() % 17) as usize) {
                f.enqueue(chunk);
                while let Some(ev) = f.progress() {
                    if let Event::LiteralAnnounced(_) = ev {
                        if next() % 2 == 0 {
                            f.accept_literal();
                        } else {
                            let _ = f.reject_literal();
                        }
                    }
                }
                assert!(f.buffered_len() <= 5000 + 64);
            }
        }
    }
}
