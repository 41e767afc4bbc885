//! POP3 wire format: command lines in, replies out. Pure functions, no state.
//!
//! This module owns
//! - splitting a command line into a [`Verb`] and its arguments, and parsing the arguments
//!   into a [`Command`] (RFC 1939 §3: case-insensitive keyword, arguments separated by spaces);
//! - the single-line replies `+OK` / `-ERR` with the RFC 2449 §8 response codes ([`Reply`],
//!   [`RespCode`]);
//! - multi-line responses (RFC 1939 §3): byte-stuffing, the `.` terminator, and turning the
//!   stored message bytes into CRLF lines whatever their line endings ([`encode_message`],
//!   [`message_size`]).
//!
//! The session ([`super::session`]) decides which command is valid when; this module only
//! knows shapes.

use crate::sasl::Secret;
use std::borrow::Cow;
use std::fmt;

/// Longest command line we accept, CRLF included: RFC 2449 §4 raises RFC 1939's limit to
/// 255 octets.
pub const MAX_COMMAND_LINE: usize = 255;

/// Longest `AUTH` command line we accept, CRLF included. RFC 5034 §4 tells clients not to send
/// an initial response that would push `AUTH` past 255 octets, but some clients do, so we are
/// lenient up to this size. It is also the most the line reader buffers in the command phase.
pub const MAX_AUTH_LINE: usize = 512;

/// Longest SASL continuation line (the client's answer to `+ `), CRLF included. A PLAIN
/// response with 255-octet authzid, user and password is about 1 KiB of base64.
pub const MAX_SASL_LINE: usize = 2048;

/// The command keywords we recognise. Kept apart from [`Command`] so the session can check
/// its state table before looking at the arguments (STYLE habit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// RFC 1939 §7.
    User,
    /// RFC 1939 §7.
    Pass,
    /// RFC 1939 §7; recognised so it can be refused clearly.
    Apop,
    /// RFC 5034 §4.
    Auth,
    /// RFC 2595 §4.
    Stls,
    /// RFC 2449 §5.
    Capa,
    /// RFC 1939 §4 and §6.
    Quit,
    /// RFC 1939 §5.
    Stat,
    /// RFC 1939 §5.
    List,
    /// RFC 1939 §5.
    Retr,
    /// RFC 1939 §5.
    Dele,
    /// RFC 1939 §5.
    Noop,
    /// RFC 1939 §5.
    Rset,
    /// RFC 1939 §7.
    Top,
    /// RFC 1939 §7.
    Uidl,
}

impl Verb {
    /// Every verb, for exhaustive tests and tables.
    pub const ALL: [Verb; 15] = [
        Verb::User,
        Verb::Pass,
        Verb::Apop,
        Verb::Auth,
        Verb::Stls,
        Verb::Capa,
        Verb::Quit,
        Verb::Stat,
        Verb::List,
        Verb::Retr,
        Verb::Dele,
        Verb::Noop,
        Verb::Rset,
        Verb::Top,
        Verb::Uidl,
    ];

    /// The keyword as sent on the wire (upper case).
    pub fn keyword(self) -> &'static str {
        match self {
            Verb::User => "USER",
            Verb::Pass => "PASS",
            Verb::Apop => "APOP",
            Verb::Auth => "AUTH",
            Verb::Stls => "STLS",
            Verb::Capa => "CAPA",
            Verb::Quit => "QUIT",
            Verb::Stat => "STAT",
            Verb::List => "LIST",
            Verb::Retr => "RETR",
            Verb::Dele => "DELE",
            Verb::Noop => "NOOP",
            Verb::Rset => "RSET",
            Verb::Top => "TOP",
            Verb::Uidl => "UIDL",
        }
    }

    /// Looks a keyword up case-insensitively (RFC 1939 §3).
    pub fn parse(keyword: &[u8]) -> Option<Verb> {
        Verb::ALL
            .into_iter()
            .find(|v| v.keyword().as_bytes().eq_ignore_ascii_case(keyword))
    }
}

/// A message number as the client sent it (1-based, RFC 1939 §5). Numbers too large for
/// `u64` saturate to `u64::MAX`, which never names a message, so they get "no such message".
pub type MsgNum = u64;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`.
    User(String),
    /// `PASS secret`: everything after the first space, spaces included (RFC 1939 §7 allows
    /// treating spaces as part of the password).
    Pass(Secret<String>),
    /// `APOP name digest`; arguments are ignored because APOP is not offered.
    Apop,
    /// `AUTH [mechanism [initial-response]]` (RFC 5034 §4). `mechanism` is `None` for the bare
    /// `AUTH` some clients send to list mechanisms.
    Auth {
        /// The SASL mechanism name as sent.
        mechanism: Option<String>,
        /// The base64 initial response, `=` meaning empty.
        initial: Option<Vec<u8>>,
    },
    /// `STLS`.
    Stls,
    /// `CAPA`.
    Capa,
    /// `QUIT`.
    Quit,
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<MsgNum>),
    /// `RETR msg`.
    Retr(MsgNum),
    /// `DELE msg`.
    Dele(MsgNum),
    /// `NOOP`.
    Noop,
    /// `RSET`.
    Rset,
    /// `TOP msg n`; `n` saturates at `u64::MAX` ("all of the body").
    Top(MsgNum, u64),
    /// `UIDL [msg]`.
    Uidl(Option<MsgNum>),
}

impl Command {
    /// The keyword of this command.
    pub fn verb(&self) -> Verb {
        match self {
            Command::User(_) => Verb::User,
            Command::Pass(_) => Verb::Pass,
            Command::Apop => Verb::Apop,
            Command::Auth { .. } => Verb::Auth,
            Command::Stls => Verb::Stls,
            Command::Capa => Verb::Capa,
            Command::Quit => Verb::Quit,
            Command::Stat => Verb::Stat,
            Command::List(_) => Verb::List,
            Command::Retr(_) => Verb::Retr,
            Command::Dele(_) => Verb::Dele,
            Command::Noop => Verb::Noop,
            Command::Rset => Verb::Rset,
            Command::Top(..) => Verb::Top,
            Command::Uidl(_) => Verb::Uidl,
        }
    }
}

/// Why a command line did not parse. Each maps to a plain `-ERR` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Empty line or unknown keyword.
    Unknown,
    /// Known keyword, bad arguments; the text says what was expected.
    Syntax(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown => f.write_str("unknown command"),
            ParseError::Syntax(s) => f.write_str(s),
        }
    }
}

/// Splits a command line (CRLF already removed) into its keyword and the rest after the
/// first space. Leading spaces are tolerated.
pub fn split_verb(line: &[u8]) -> Result<(Verb, &[u8]), ParseError> {
    let line = trim_start_spaces(line);
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[][..]),
    };
    Verb::parse(keyword)
        .map(|v| (v, rest))
        .ok_or(ParseError::Unknown)
}

/// Parses the arguments of `verb` (the bytes after the keyword and its space).
pub fn parse_args(verb: Verb, args: &[u8]) -> Result<Command, ParseError> {
    let words: Vec<&[u8]> = args
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let none = |c: Command, usage: &'static str| {
        if words.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax(usage))
        }
    };
    match verb {
        Verb::User => match words.as_slice() {
            [name] => Ok(Command::User(utf8(name, "USER name")?)),
            _ => Err(ParseError::Syntax("usage: USER name")),
        },
        Verb::Pass => {
            // RFC 1939 §7: PASS has exactly one argument, which may contain spaces.
            if args.is_empty() {
                return Err(ParseError::Syntax("usage: PASS password"));
            }
            Ok(Command::Pass(Secret::new(utf8(args, "PASS password")?)))
        }
        Verb::Apop => Ok(Command::Apop),
        Verb::Auth => match words.as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [mech] => Ok(Command::Auth {
                mechanism: Some(utf8(mech, "AUTH mechanism [initial-response]")?),
                initial: None,
            }),
            [mech, ir] => Ok(Command::Auth {
                mechanism: Some(utf8(mech, "AUTH mechanism [initial-response]")?),
                initial: Some(ir.to_vec()),
            }),
            _ => Err(ParseError::Syntax(
                "usage: AUTH mechanism [initial-response]",
            )),
        },
        Verb::Stls => none(Command::Stls, "usage: STLS"),
        Verb::Capa => none(Command::Capa, "usage: CAPA"),
        Verb::Quit => none(Command::Quit, "usage: QUIT"),
        Verb::Stat => none(Command::Stat, "usage: STAT"),
        Verb::Noop => none(Command::Noop, "usage: NOOP"),
        Verb::Rset => none(Command::Rset, "usage: RSET"),
        Verb::List => match words.as_slice() {
            [] => Ok(Command::List(None)),
            [n] => Ok(Command::List(Some(number(n, "usage: LIST [msg]")?))),
            _ => Err(ParseError::Syntax("usage: LIST [msg]")),
        },
        Verb::Uidl => match words.as_slice() {
            [] => Ok(Command::Uidl(None)),
            [n] => Ok(Command::Uidl(Some(number(n, "usage: UIDL [msg]")?))),
            _ => Err(ParseError::Syntax("usage: UIDL [msg]")),
        },
        Verb::Retr => match words.as_slice() {
            [n] => Ok(Command::Retr(number(n, "usage: RETR msg")?)),
            _ => Err(ParseError::Syntax("usage: RETR msg")),
        },
        Verb::Dele => match words.as_slice() {
            [n] => Ok(Command::Dele(number(n, "usage: DELE msg")?)),
            _ => Err(ParseError::Syntax("usage: DELE msg")),
        },
        Verb::Top => match words.as_slice() {
            [n, lines] => Ok(Command::Top(
                number(n, "usage: TOP msg lines")?,
                number(lines, "usage: TOP msg lines")?,
            )),
            _ => Err(ParseError::Syntax("usage: TOP msg lines")),
        },
    }
}

/// Parses a whole command line (CRLF already removed).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let (verb, args) = split_verb(line)?;
    parse_args(verb, args)
}

fn trim_start_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    s
}

fn utf8(b: &[u8], usage: &'static str) -> Result<String, ParseError> {
    String::from_utf8(b.to_vec()).map_err(|_| ParseError::Syntax(usage))
}

/// Decimal digits only (no sign, RFC 1939 §3 "numeric arguments"); saturates instead of
/// overflowing so a 40-digit number is just "too big".
fn number(b: &[u8], usage: &'static str) -> Result<u64, ParseError> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Syntax(usage));
    }
    Ok(b.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Checks a UIDL value: 1 to 70 characters in 0x21..=0x7E (RFC 1939 §7, UIDL).
pub fn is_valid_uid(uid: &str) -> bool {
    (1..=70).contains(&uid.len()) && uid.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Extended response codes (RFC 2449 §8, RFC 3206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    /// `[IN-USE]`: the maildrop is locked by another session (RFC 2449 §8.1.1).
    InUse,
    /// `[SYS/TEMP]`: a transient system problem; try again later (RFC 3206 §4).
    SysTemp,
    /// `[SYS/PERM]`: a lasting system problem (RFC 3206 §4).
    SysPerm,
    /// `[AUTH]`: a problem with the credentials or the login policy (RFC 3206 §5).
    Auth,
}

impl RespCode {
    /// The code as written between brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            RespCode::InUse => "IN-USE",
            RespCode::SysTemp => "SYS/TEMP",
            RespCode::SysPerm => "SYS/PERM",
            RespCode::Auth => "AUTH",
        }
    }
}

/// A single-line status reply (RFC 1939 §3: `+OK` or `-ERR`, then text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `+OK` when true, `-ERR` otherwise.
    pub ok: bool,
    /// Response code, only ever on `-ERR` here (RFC 2449 §8).
    pub code: Option<RespCode>,
    /// Human-readable text; must not contain CR or LF.
    pub text: Cow<'static, str>,
}

impl Reply {
    /// `+OK text`.
    pub fn ok(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: true,
            code: None,
            text: text.into(),
        }
    }

    /// `-ERR text`.
    pub fn err(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: false,
            code: None,
            text: text.into(),
        }
    }

    /// `-ERR [code] text`.
    pub fn err_code(code: RespCode, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: false,
            code: Some(code),
            text: text.into(),
        }
    }

    /// Appends the encoded line, CRLF included. CR and LF in the text become spaces, so a
    /// reply is always exactly one line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.ok { b"+OK" } else { b"-ERR" });
        if let Some(code) = self.code {
            out.extend_from_slice(b" [");
            out.extend_from_slice(code.as_str().as_bytes());
            out.push(b']');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            out.extend(
                self.text
                    .bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The encoded line as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends one line of a multi-line response, byte-stuffed (RFC 1939 §3), with CRLF.
pub fn encode_line(line: &[u8], out: &mut Vec<u8>) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// Appends the multi-line terminator `.` CRLF (RFC 1939 §3).
pub fn encode_terminator(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// Splits raw message bytes into lines without their endings. A line ends at CRLF, at a bare
/// LF or at a bare CR (each becomes one CRLF on the wire). A last line without an ending is
/// still yielded; an ending at the very end of the input does not yield an empty line.
pub fn lines(raw: &[u8]) -> Lines<'_> {
    Lines { rest: raw }
}

/// Iterator returned by [`lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                self.rest = &[];
                Some(rest)
            }
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                self.rest = rest.get(i + skip..).unwrap_or(&[]);
                Some(&rest[..i])
            }
        }
    }
}

/// The size of a stored message as POP3 reports it in STAT, LIST and RETR: the octets of its
/// lines once every line ends in CRLF (bare LF and bare CR count as CRLF, and a last line
/// without an ending counts the CRLF we add), not counting byte-stuffing dots nor the
/// terminator. RFC 1939 §11 lets the server count "as sent"; this is what [`encode_message`]
/// sends minus the stuffing. The store should compute it once with this function.
pub fn message_size(raw: &[u8]) -> u64 {
    lines(raw).map(|l| l.len() as u64 + 2).sum()
}

/// Appends a stored message as the body of a multi-line response, terminator included
/// (RFC 1939 §5 RETR, §7 TOP). Every line ends in CRLF, lines starting with `.` are
/// byte-stuffed, and a message without a final newline gets one before the terminator.
///
/// With `top_lines = Some(n)` only the header, the blank line that ends it and the first `n`
/// body lines are sent (RFC 1939 §7 TOP). A message with no blank line is all header.
pub fn encode_message(raw: &[u8], top_lines: Option<u64>, out: &mut Vec<u8>) {
    out.reserve(raw.len() + raw.len() / 32 + 5);
    let mut in_header = true;
    let mut body_left = top_lines.unwrap_or(u64::MAX);
    for line in lines(raw) {
        if in_header {
            if line.is_empty() {
                in_header = false;
            }
        } else if top_lines.is_some() {
            if body_left == 0 {
                break;
            }
            body_left -= 1;
        }
        encode_line(line, out);
    }
    encode_terminator(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Result<Command, ParseError> {
        parse_command(s.as_bytes())
    }

    #[test]
    fn parse_table() {
        let ok: &[(&str, Command)] = &[
            ("STAT", Command::Stat),
            ("stat", Command::Stat),
            ("  sTaT", Command::Stat),
            ("STAT  ", Command::Stat),
            ("LIST", Command::List(None)),
            (" list  100  ", Command::List(Some(100))),
            ("UIDL 7", Command::Uidl(Some(7))),
            ("UIDL", Command::Uidl(None)),
            ("RETR 1", Command::Retr(1)),
            ("DELE 0", Command::Dele(0)),
            ("TOP 1 0", Command::Top(1, 0)),
            (
                "TOP 99999999999999999999999 99999999999999999999999",
                Command::Top(u64::MAX, u64::MAX),
            ),
            ("USER alice", Command::User("alice".into())),
            ("PASS a b  c ", Command::Pass(Secret::new("a b  c ".into()))),
            ("NOOP", Command::Noop),
            ("RSET", Command::Rset),
            ("QUIT", Command::Quit),
            ("CAPA", Command::Capa),
            ("STLS", Command::Stls),
            ("APOP a 0123", Command::Apop),
            (
                "AUTH",
                Command::Auth {
                    mechanism: None,
                    initial: None,
                },
            ),
            (
                "AUTH plain",
                Command::Auth {
                    mechanism: Some("plain".into()),
                    initial: None,
                },
            ),
            (
                "AUTH PLAIN AGFsaWNlAHB3",
                Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some(b"AGFsaWNlAHB3".to_vec()),
                },
            ),
        ];
        for (line, want) in ok {
            assert_eq!(cmd(line).as_ref(), Ok(want), "{line:?}");
            assert_eq!(cmd(line).unwrap().verb(), want.verb());
        }
        let bad = [
            "",
            "   ",
            "FOO",
            "STATX",
            "ST",
            "\0",
            "LIST -1",
            "LIST +1",
            "LIST 1 2",
            "LIST x",
            "RETR",
            "RETR 1 2",
            "DELE",
            "TOP 1",
            "TOP 1 -1",
            "TOP a 1",
            "USER",
            "USER a b",
            "PASS",
            "STAT 1",
            "NOOP x",
            "QUIT now",
            "AUTH PLAIN a b",
        ];
        for line in bad {
            assert!(cmd(line).is_err(), "{line:?} parsed");
        }
        assert_eq!(cmd("FOO"), Err(ParseError::Unknown));
        assert!(parse_command(b"USER \xff").is_err());
        assert!(parse_command(b"PASS \xff").is_err());
    }

    #[test]
    fn verbs_round_trip() {
        for v in Verb::ALL {
            assert_eq!(Verb::parse(v.keyword().as_bytes()), Some(v));
            assert_eq!(
                Verb::parse(v.keyword().to_ascii_lowercase().as_bytes()),
                Some(v)
            );
        }
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::ok("hi").to_bytes(), b"+OK hi\r\n");
        assert_eq!(Reply::ok("").to_bytes(), b"+OK\r\n");
        assert_eq!(
            Reply::err_code(RespCode::InUse, "locked").to_bytes(),
            b"-ERR [IN-USE] locked\r\n"
        );
        assert_eq!(
            Reply::err_code(RespCode::SysTemp, "x").to_bytes(),
            b"-ERR [SYS/TEMP] x\r\n"
        );
        assert_eq!(Reply::err("a\r\nb").to_bytes(), b"-ERR a  b\r\n");
    }

    fn enc(raw: &[u8], top: Option<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_message(raw, top, &mut out);
        out
    }

    #[test]
    fn message_encoding() {
        let table: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\rb\r", b"a\r\nb\r\n.\r\n"),
            (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
            (b"\n\n", b"\r\n\r\n.\r\n"),
            (b".\n", b"..\r\n.\r\n"),
            (b"..x\r\n.\r\n", b"...x\r\n..\r\n.\r\n"),
            (
                b"H: v\n\n.\nbody\n. \n",
                b"H: v\r\n\r\n..\r\nbody\r\n.. \r\n.\r\n",
            ),
            // A smuggling attempt: lone CR/LF around a dot must not end the response early.
            (b"x\n.\r\ny\r.\rz", b"x\r\n..\r\ny\r\n..\r\nz\r\n.\r\n"),
        ];
        for (raw, want) in table {
            assert_eq!(enc(raw, None), *want, "{:?}", String::from_utf8_lossy(raw));
            // The reported size is what is sent minus stuffing dots and the terminator.
            let dots = want.windows(3).filter(|w| *w == b"\n..").count()
                + usize::from(want.starts_with(b".."));
            assert_eq!(
                message_size(raw) as usize,
                want.len() - 3 - dots,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn top_lines() {
        let msg = b"A: 1\nB: 2\n\nl1\n.l2\nl3\n";
        assert_eq!(enc(msg, Some(0)), b"A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(
            enc(msg, Some(2)),
            b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n"
        );
        assert_eq!(enc(msg, Some(u64::MAX)), enc(msg, None));
        // No blank line: all header.
        assert_eq!(enc(b"A: 1\r\nB: 2", Some(0)), b"A: 1\r\nB: 2\r\n.\r\n");
        // Blank line only at the end.
        assert_eq!(enc(b"A: 1\r\n\r\n", Some(5)), b"A: 1\r\n\r\n.\r\n");
    }

    #[test]
    fn uid_validity() {
        assert!(is_valid_uid("a"));
        assert!(is_valid_uid(&"x".repeat(70)));
        assert!(!is_valid_uid(&"x".repeat(71)));
        assert!(!is_valid_uid(""));
        assert!(!is_valid_uid("a b"));
        assert!(!is_valid_uid("é"));
    }
}
