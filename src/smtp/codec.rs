//! The SMTP wire format, without state: one complete command line in, a typed
//! [`Command`] (or the error [`Reply`] to send) out; a [`Reply`] in, its bytes out.
//!
//! Command parsing is an adapter over `smtp-proto`'s `Request::parse` (Apache-2.0 OR
//! MIT). The adapter adds what the session needs on top of it:
//! - [`Verb::of`] names the command from its first word alone, so the session can check
//!   the command against its state table (and reply 503) before it looks at arguments;
//! - parameters of extensions we do not advertise (DSN, DELIVERBY, FUTURERELEASE,
//!   REQUIRETLS, MT-PRIORITY, MTRK, NO-SOLICITING, CONPERM, CONNEG, RRVS) are refused
//!   with 555 5.5.4 (RFC 5321 §4.1.1.11), whereas smtp-proto parses and returns them;
//! - `RCPT TO:<Postmaster>` keeps its name (smtp-proto maps it to the empty string,
//!   which would read as `<>`), and `MAIL FROM:<postmaster>` is refused (not a valid
//!   reverse-path);
//! - a quoted local part, which smtp-proto returns unquoted, is quoted again in the
//!   canonical form `"a b"@example.org`, so the address stays unambiguous;
//! - addresses that were not valid UTF-8 are refused (501) instead of carrying U+FFFD.
//!
//! Lines are framed (and their length capped) by the session, never here.

#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use super::codes::*;
use crate::sasl::Mechanism;
use smtp_proto::{Error as ProtoError, Request};
use std::fmt;

/// Longest text we put on one reply line: RFC 5321 §4.5.3.1.5 allows 512 octets
/// including the code and CRLF; the code, separator and enhanced code take at most 14.
const MAX_REPLY_TEXT: usize = 490;

/// One SMTP reply: the code, the optional enhanced status code (RFC 2034, RFC 3463) and
/// the text. A text with `\n` in it becomes a multi-line reply (RFC 5321 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// `(class, subject, detail)`, written as `class.subject.detail` on every line.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The human-readable text; `\n` separates lines.
    pub text: String,
}

impl Reply {
    /// A reply with an enhanced status code whose class is the first digit of `code`
    /// (RFC 3463 §2: the class must agree with the reply code).
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<String>) -> Reply {
        let class = u8::try_from(code / 100).unwrap_or(5);
        Reply {
            code,
            enhanced: Some((class, enhanced.0, enhanced.1)),
            text: text.into(),
        }
    }

    /// A reply without an enhanced status code (the greeting, EHLO, 334, 354:
    /// RFC 2034 §3 puts enhanced codes only on 2xx/4xx/5xx replies that end a command).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: text.into(),
        }
    }

    /// `535 5.7.8` Authentication credentials invalid (RFC 4954 §6).
    pub fn auth_failed() -> Reply {
        Reply::new(
            C535_AUTH_BAD_CREDS,
            SE_SEC_AUTH_BAD_CREDS,
            "Authentication credentials invalid",
        )
    }

    /// `550 5.1.1` for a local address with no such user (RFC 3463 §3.2).
    pub fn unknown_user() -> Reply {
        Reply::new(
            C550_MAILBOX_UNAVAILABLE,
            SE_ADDR_UNKNOWN_MAILBOX,
            "No such user here",
        )
    }

    /// `550 5.7.1` relay access denied (RFC 3463 §3.8; RFC 5321 §3.6.2).
    pub fn relay_denied() -> Reply {
        Reply::new(
            C550_MAILBOX_UNAVAILABLE,
            SE_SEC_NOT_AUTHORIZED,
            "Relay access denied",
        )
    }

    /// `451 4.3.0` local error, try again later (store or DNS trouble).
    pub fn temporary_failure() -> Reply {
        Reply::new(
            C451_LOCAL_ERROR,
            SE_SYS_OTHER,
            "Local error in processing, try again later",
        )
    }

    /// True for 4xx and 5xx replies.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form to `out`: `code-text` lines and a final `code text` line,
    /// each ending in CRLF (RFC 5321 §4.2.1). CR and other control characters in the
    /// text are replaced by spaces so a text can never inject a reply line; each line
    /// is cut to fit the 512-octet reply line limit (RFC 5321 §4.5.3.1.5).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            let mut head = format!("{:03}{sep}", self.code.min(999));
            if let Some((c, s, d)) = self.enhanced {
                head.push_str(&format!("{c}.{s}.{d}"));
                if !line.is_empty() {
                    head.push(' ');
                }
            }
            out.extend_from_slice(head.as_bytes());
            let line = truncate(line, MAX_REPLY_TEXT);
            out.extend(
                line.bytes()
                    .map(|b| if b.is_ascii_control() { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// The command word of a line, recognised before its arguments are parsed so that the
/// session can check its state table first (STYLE habit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// EHLO (RFC 5321 §4.1.1.1).
    Ehlo,
    /// HELO (RFC 5321 §4.1.1.1).
    Helo,
    /// MAIL (RFC 5321 §4.1.1.2).
    Mail,
    /// RCPT (RFC 5321 §4.1.1.3).
    Rcpt,
    /// DATA (RFC 5321 §4.1.1.4).
    Data,
    /// BDAT (RFC 3030 §2).
    Bdat,
    /// RSET (RFC 5321 §4.1.1.5).
    Rset,
    /// NOOP (RFC 5321 §4.1.1.9).
    Noop,
    /// QUIT (RFC 5321 §4.1.1.10).
    Quit,
    /// HELP (RFC 5321 §4.1.1.8).
    Help,
    /// VRFY (RFC 5321 §4.1.1.6).
    Vrfy,
    /// EXPN (RFC 5321 §4.1.1.7); not implemented (502).
    Expn,
    /// STARTTLS (RFC 3207).
    StartTls,
    /// AUTH (RFC 4954).
    Auth,
    /// Anything else (500 5.5.1).
    Unknown,
}

impl Verb {
    /// Every recognised verb (not [`Verb::Unknown`]).
    pub const ALL: [Verb; 14] = [
        Verb::Ehlo,
        Verb::Helo,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Bdat,
        Verb::Rset,
        Verb::Noop,
        Verb::Quit,
        Verb::Help,
        Verb::Vrfy,
        Verb::Expn,
        Verb::StartTls,
        Verb::Auth,
    ];

    /// The verb of a command line: its first word, case-insensitively (RFC 5321 §2.4).
    pub fn of(line: &[u8]) -> Verb {
        let end = line
            .iter()
            .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(line.len());
        let word = line.get(..end).unwrap_or_default();
        Verb::ALL
            .into_iter()
            .find(|v| word.eq_ignore_ascii_case(v.name().as_bytes()))
            .unwrap_or(Verb::Unknown)
    }

    /// The command word as written on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Ehlo => "EHLO",
            Verb::Helo => "HELO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Bdat => "BDAT",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Quit => "QUIT",
            Verb::Help => "HELP",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH",
            Verb::Unknown => "?",
        }
    }
}

/// The declared body type (MAIL FROM `BODY=`; RFC 6152 §2, RFC 3030 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// `BODY=7BIT`, or no BODY parameter (RFC 6152 §2).
    #[default]
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030 §3); needs BDAT, DATA is refused.
    BinaryMime,
}

/// The arguments of MAIL FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse-path without angle brackets; `""` is the null sender `<>`.
    /// Not lowercased; a source route is dropped (RFC 5321 §4.1.2, Appendix C).
    pub address: String,
    /// `SIZE=` (RFC 1870), if given and non-zero.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Body,
    /// The `SMTPUTF8` parameter (RFC 6531 §3.4).
    pub smtputf8: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain`.
    Ehlo {
        /// The client's name for itself (domain or address literal).
        host: String,
    },
    /// `HELO domain`.
    Helo {
        /// The client's name for itself.
        host: String,
    },
    /// `MAIL FROM:<reverse-path> [params]`.
    Mail(MailFrom),
    /// `RCPT TO:<forward-path>`; RCPT parameters are all refused (555).
    Rcpt {
        /// The forward-path without brackets, not lowercased.
        address: String,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030 §2).
    Bdat {
        /// Octets in the chunk that follows the command line.
        size: u64,
        /// `LAST` was given.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `HELP [string]`.
    Help,
    /// `VRFY string`.
    Vrfy,
    /// `EXPN string`.
    Expn,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    Auth {
        /// PLAIN or LOGIN; others are refused with 504 while parsing.
        mechanism: Mechanism,
        /// The initial response, still base64 (`=` for empty), if one was given.
        initial_response: Option<String>,
    },
}

/// Parses one complete command line (ending in LF; CRLF or bare LF). Returns the reply
/// to send when the line is not a valid command.
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let mut iter = line.iter();
    let request = Request::parse(&mut iter).map_err(proto_error)?;
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo { host: host.into() },
        Request::Helo { host } => Command::Helo { host: host.into() },
        Request::Mail { from } => Command::Mail(mail_from(line, from)?),
        Request::Rcpt { to } => Command::Rcpt {
            address: rcpt_to(line, to)?,
        },
        Request::Data => Command::Data,
        Request::Bdat { is_last, .. } => Command::Bdat {
            // smtp-proto 0.2.5 `size()` restarts from the next digit once it saturates
            // ("BDAT 99999999999999999999999" comes back as 999), a framing desync: the
            // chunk size is parsed here instead (RFC 3030 §2 `chunk-size = 1*DIGIT`).
            size: exact_number(line.get(4..).unwrap_or_default()).ok_or_else(|| {
                Reply::new(
                    C501_BAD_PARAM_SYNTAX,
                    SE_PROTO_INVALID_ARGS,
                    "Bad chunk size",
                )
            })?,
            last: is_last,
        },
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Quit => Command::Quit,
        Request::Help { .. } => Command::Help,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Expn { .. } => Command::Expn,
        Request::StartTls => Command::StartTls,
        Request::Auth {
            mechanism,
            initial_response,
        } => {
            // RFC 4954 §4: an unsupported mechanism is 504.
            let mechanism = match mechanism {
                smtp_proto::AUTH_PLAIN => Mechanism::Plain,
                smtp_proto::AUTH_LOGIN => Mechanism::Login,
                _ => {
                    return Err(Reply::new(
                        C504_PARAM_NOT_IMPLEMENTED,
                        SE_PROTO_INVALID_ARGS,
                        "Unsupported authentication mechanism",
                    ));
                }
            };
            let initial_response = (!initial_response.is_empty()).then(|| initial_response.into());
            Command::Auth {
                mechanism,
                initial_response,
            }
        }
        Request::Lhlo { .. }
        | Request::Etrn { .. }
        | Request::Atrn { .. }
        | Request::Burl { .. } => return Err(unknown_command()),
    })
}

/// 500 5.5.1 for a command we do not know.
pub fn unknown_command() -> Reply {
    Reply::new(
        C500_UNRECOGNIZED,
        SE_PROTO_INVALID_CMD,
        "Command unrecognized",
    )
}

/// Maps smtp-proto's parse errors onto replies (RFC 5321 §4.2.4, RFC 3463).
fn proto_error(e: ProtoError) -> Reply {
    match e {
        ProtoError::UnknownCommand => unknown_command(),
        ProtoError::InvalidSenderAddress => Reply::new(
            C501_BAD_PARAM_SYNTAX,
            SE_ADDR_BAD_SENDER_SYNTAX,
            "Bad sender address syntax",
        ),
        ProtoError::InvalidRecipientAddress => Reply::new(
            C501_BAD_PARAM_SYNTAX,
            SE_ADDR_BAD_DEST_SYNTAX,
            "Bad recipient address syntax",
        ),
        ProtoError::SyntaxError { syntax } => Reply::new(
            C501_BAD_PARAM_SYNTAX,
            SE_PROTO_INVALID_ARGS,
            format!("Syntax: {syntax}"),
        ),
        ProtoError::InvalidParameter { param } => Reply::new(
            C501_BAD_PARAM_SYNTAX,
            SE_PROTO_INVALID_ARGS,
            format!("Invalid {param} parameter"),
        ),
        ProtoError::UnsupportedParameter { param } => unsupported(&param),
        ProtoError::NeedsMoreData { .. }
        | ProtoError::ResponseTooLong
        | ProtoError::InvalidResponse { .. } => {
            Reply::new(C501_BAD_PARAM_SYNTAX, SE_PROTO_SYNTAX, "Syntax error")
        }
    }
}

/// 555 5.5.4: a MAIL/RCPT parameter we do not implement (RFC 5321 §4.1.1.11).
fn unsupported(param: &str) -> Reply {
    let param: String = param
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    Reply::new(
        C555_UNRECOGNIZED_PARAMS,
        SE_PROTO_INVALID_ARGS,
        format!("Unsupported parameter {param}"),
    )
}

fn mail_from(
    line: &[u8],
    from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>,
) -> Result<MailFrom, Reply> {
    use smtp_proto::{
        MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE,
        MAIL_CONPERM, MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8,
    };
    // Parameters of extensions we do not advertise: RFC 5321 §4.1.1.11 wants 555.
    let refused = [
        (MAIL_RET_FULL | MAIL_RET_HDRS, "RET"),
        (MAIL_REQUIRETLS, "REQUIRETLS"),
        (MAIL_CONPERM, "CONPERM"),
        (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"),
    ];
    for (bits, name) in refused {
        if from.flags & bits != 0 {
            return Err(unsupported(name));
        }
    }
    let others = [
        (from.env_id.is_some(), "ENVID"),
        (from.trans_id.is_some(), "TRANSID"),
        (from.solicit.is_some(), "SOLICIT"),
        (from.mtrk.is_some(), "MTRK"),
        (from.hold_for != 0, "HOLDFOR"),
        (from.hold_until != 0, "HOLDUNTIL"),
        (from.mt_priority != 0, "MT-PRIORITY"),
        (from.by != 0, "BY"),
    ];
    if let Some((_, name)) = others.into_iter().find(|(set, _)| *set) {
        return Err(unsupported(name));
    }
    // AUTH=<mailbox> (RFC 4954 §5) is accepted and ignored: we never relay an identity.
    let body = if from.flags & MAIL_BODY_BINARYMIME != 0 {
        Body::BinaryMime
    } else if from.flags & MAIL_BODY_8BITMIME != 0 {
        Body::EightBitMime
    } else {
        Body::SevenBit
    };
    let bad = || {
        Reply::new(
            C501_BAD_PARAM_SYNTAX,
            SE_ADDR_BAD_SENDER_SYNTAX,
            "Bad sender address syntax",
        )
    };
    let address = if from.address.is_empty() {
        // smtp-proto returns "" for both <> and <postmaster>; only <> is a
        // reverse-path (RFC 5321 §4.1.2).
        if bracketed(line).is_some_and(|b| !b.is_empty()) {
            return Err(bad());
        }
        String::new()
    } else {
        canonical(&from.address).ok_or_else(bad)?
    };
    // Same smtp-proto saturation bug as for BDAT: read SIZE= ourselves (RFC 1870 §4).
    let size = match find_ascii_ci(line, b" SIZE=") {
        Some(at) => Some(
            exact_number(line.get(at + 6..).unwrap_or_default()).ok_or_else(|| {
                Reply::new(
                    C501_BAD_PARAM_SYNTAX,
                    SE_PROTO_INVALID_ARGS,
                    "Invalid SIZE parameter",
                )
            })?,
        ),
        None => None,
    };
    Ok(MailFrom {
        address,
        size: size.filter(|s| *s != 0),
        body,
        smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
    })
}

fn rcpt_to(
    line: &[u8],
    to: smtp_proto::RcptTo<std::borrow::Cow<'_, str>>,
) -> Result<String, Reply> {
    // We do not advertise DSN, CONNEG or RRVS: their parameters get 555 (§4.1.1.11).
    if to.orcpt.is_some() {
        return Err(unsupported("ORCPT"));
    }
    if to.flags & (smtp_proto::RCPT_CONNEG) != 0 {
        return Err(unsupported("CONNEG"));
    }
    if to.flags & (smtp_proto::RCPT_RRVS_CONTINUE | smtp_proto::RCPT_RRVS_REJECT) != 0 {
        return Err(unsupported("RRVS"));
    }
    if to.flags != 0 {
        return Err(unsupported("NOTIFY"));
    }
    let bad = || {
        Reply::new(
            C501_BAD_PARAM_SYNTAX,
            SE_ADDR_BAD_DEST_SYNTAX,
            "Bad recipient address syntax",
        )
    };
    if to.address.is_empty() {
        // smtp-proto maps <Postmaster> to "", as it maps <>. RFC 5321 §4.1.1.3 requires
        // us to accept <Postmaster> (any case, no domain); <> is no forward-path.
        let inner = bracketed(line).ok_or_else(bad)?;
        let name = inner.rsplit(':').next().unwrap_or_default();
        if name.eq_ignore_ascii_case("postmaster") {
            return Ok(name.to_string());
        }
        return Err(bad());
    }
    canonical(&to.address).ok_or_else(bad)
}

/// The decimal number at the start of `s` (after blanks), which must end at a blank,
/// CR or LF; `None` when it has no digits, other characters, or overflows u64.
fn exact_number(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii_start();
    let end = s
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len());
    let digits = s.get(..end)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Position of `needle` (ASCII, matched case-insensitively) in `haystack`.
fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The text between the first `<` and the next `>` of a line, for the two cases where
/// smtp-proto's answer is ambiguous.
fn bracketed(line: &[u8]) -> Option<String> {
    let start = line.iter().position(|b| *b == b'<')?;
    let rest = line.get(start + 1..)?;
    let end = rest.iter().position(|b| *b == b'>')?;
    let inner = rest.get(..end)?;
    Some(String::from_utf8_lossy(inner).trim().to_string())
}

/// Validates an address returned by smtp-proto and re-quotes its local part when it is
/// not a dot-atom (RFC 5321 §4.1.2 `Local-part = Dot-string / Quoted-string`).
/// `None` when the bytes were not UTF-8 (smtp-proto substituted U+FFFD).
fn canonical(address: &str) -> Option<String> {
    if address.contains('\u{FFFD}') || address.chars().any(|c| c.is_control()) {
        return None;
    }
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    if is_dot_string(local) {
        return Some(address.to_string());
    }
    let mut out = String::with_capacity(address.len() + 4);
    out.push('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("\"@");
    out.push_str(domain);
    Some(out)
}

/// RFC 5321 §4.1.2 `Dot-string = Atom *("." Atom)`; UTF-8 allowed as atext (RFC 6531 §3.3).
fn is_dot_string(s: &str) -> bool {
    s.split('.').all(|atom| {
        !atom.is_empty()
            && atom.chars().all(|c| {
                c.is_ascii_alphanumeric() || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~".contains(c)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, Reply> {
        parse_command(line.as_bytes())
    }

    fn code(line: &str) -> u16 {
        p(line).unwrap_err().code
    }

    #[test]
    fn reply_single_and_multi_line() {
        assert_eq!(
            Reply::new(250, SE_OTHER, "OK").to_bytes(),
            b"250 2.0.0 OK\r\n"
        );
        assert_eq!(
            Reply::new(550, SE_ADDR_UNKNOWN_MAILBOX, "no\nsuch user").to_bytes(),
            b"550-5.1.1 no\r\n550 5.1.1 such user\r\n"
        );
        assert_eq!(Reply::plain(334, "").to_bytes(), b"334 \r\n");
        assert!(Reply::auth_failed().to_string().starts_with("535 5.7.8 "));
        assert!(Reply::unknown_user().to_string().starts_with("550 5.1.1 "));
        assert!(Reply::relay_denied().to_string().starts_with("550 5.7.1 "));
        assert!(
            Reply::temporary_failure()
                .to_string()
                .starts_with("451 4.3.0 ")
        );
        assert_eq!(
            Reply::plain(250, "host\nPIPELINING").to_bytes(),
            b"250-host\r\n250 PIPELINING\r\n"
        );
        // A text cannot inject a reply line.
        assert_eq!(
            Reply::new(550, SE_OTHER, "a\r\x00b").to_bytes(),
            b"550 5.0.0 a  b\r\n"
        );
        let long = Reply::new(250, SE_OTHER, "é".repeat(400)).to_bytes();
        assert!(long.len() <= 512, "{}", long.len());
        assert!(std::str::from_utf8(&long).is_ok());
    }

    #[test]
    fn verbs() {
        assert_eq!(Verb::of(b"ehlo x\r\n"), Verb::Ehlo);
        assert_eq!(Verb::of(b"StartTLS\r\n"), Verb::StartTls);
        assert_eq!(Verb::of(b"QUIT"), Verb::Quit);
        assert_eq!(Verb::of(b"MAILX FROM:<>\r\n"), Verb::Unknown);
        assert_eq!(Verb::of(b"\r\n"), Verb::Unknown);
        assert_eq!(Verb::of(b""), Verb::Unknown);
        for v in Verb::ALL {
            assert_eq!(Verb::of(format!("{} x\r\n", v.name()).as_bytes()), v);
        }
    }

    #[test]
    fn mail_from_forms() {
        let m = |l: &str| match p(l) {
            Ok(Command::Mail(m)) => m,
            other => panic!("{l:?}: {other:?}"),
        };
        assert_eq!(m("MAIL FROM:<>\r\n").address, "");
        assert_eq!(
            m("MAIL FROM:<A.B@Example.ORG>\r\n").address,
            "A.B@Example.ORG"
        );
        let x = m("mail from:<a@b> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n");
        assert_eq!(
            x,
            MailFrom {
                address: "a@b".into(),
                size: Some(1000),
                body: Body::EightBitMime,
                smtputf8: true
            }
        );
        assert_eq!(
            m("MAIL FROM:<a@b> BODY=BINARYMIME\n").body,
            Body::BinaryMime
        );
        assert_eq!(m("MAIL FROM:<a@b> BODY=7BIT\r\n").body, Body::SevenBit);
        assert_eq!(m("MAIL FROM:<a@b> AUTH=<>\r\n").address, "a@b");
        // Source route dropped (RFC 5321 Appendix C).
        assert_eq!(m("MAIL FROM:<@x.org,@y.org:a@b>\r\n").address, "a@b");
        // Quoted local part comes back quoted.
        assert_eq!(
            m("MAIL FROM:<\"john doe\"@b>\r\n").address,
            "\"john doe\"@b"
        );
        assert_eq!(m("MAIL FROM:<\"ab\"@b>\r\n").address, "ab@b");
        assert_eq!(m("MAIL FROM:<é@b.org> SMTPUTF8\r\n").address, "é@b.org");
        assert_eq!(code("MAIL FROM:<postmaster>\r\n"), 501);
        assert_eq!(code("MAIL FROM:a@b\r\n"), 501);
        assert_eq!(code("MAIL FROM:<a@b\r\n"), 501);
        assert_eq!(code("MAIL FROM:<a..b@c>\r\n"), 501);
        assert_eq!(code("MAIL FROM:<a@b> BODY=9BIT\r\n"), 501);
        assert_eq!(code("MAIL FROM:<a@b> SIZE=x\r\n"), 501);
        assert_eq!(
            code("MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n"),
            501
        );
        assert_eq!(
            m("MAIL FROM:<a@b> size=18446744073709551614\r\n").size,
            Some(u64::MAX - 1)
        );
        assert_eq!(code("MAIL FROM:<a@b> RET=FULL\r\n"), 555);
        assert_eq!(code("MAIL FROM:<a@b> ENVID=x\r\n"), 555);
        assert_eq!(code("MAIL FROM:<a@b> REQUIRETLS\r\n"), 555);
        assert_eq!(code("MAIL FROM:<a@b> FOO=bar\r\n"), 555);
        assert_eq!(code("MAIL FROM:<\u{1}@b>\r\n"), 501);
        assert_eq!(
            parse_command(b"MAIL FROM:<\xff@b>\r\n").unwrap_err().code,
            501
        );
    }

    #[test]
    fn rcpt_to_forms() {
        let r = |l: &str| match p(l) {
            Ok(Command::Rcpt { address }) => address,
            other => panic!("{l:?}: {other:?}"),
        };
        assert_eq!(r("RCPT TO:<u@Home.Arpa>\r\n"), "u@Home.Arpa");
        assert_eq!(r("RCPT TO:<Postmaster>\r\n"), "Postmaster");
        assert_eq!(r("rcpt to:<postmaster>\n"), "postmaster");
        assert_eq!(code("RCPT TO:<>\r\n"), 501);
        assert_eq!(code("RCPT TO:<a@b> NOTIFY=NEVER\r\n"), 555);
        assert_eq!(code("RCPT TO:<a@b> ORCPT=rfc822;a@b\r\n"), 555);
        assert_eq!(code("RCPT <a@b>\r\n"), 501);
        assert_eq!(code("RCPT TO:\r\n"), 501);
    }

    #[test]
    fn other_commands() {
        assert_eq!(
            p("EHLO client.example\r\n"),
            Ok(Command::Ehlo {
                host: "client.example".into()
            })
        );
        assert_eq!(
            p("HELO [127.0.0.1]\r\n"),
            Ok(Command::Helo {
                host: "[127.0.0.1]".into()
            })
        );
        assert_eq!(code("EHLO\r\n"), 501);
        assert_eq!(
            p("BDAT 100 LAST\r\n"),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert_eq!(
            p("bdat 0 last\r\n"),
            Ok(Command::Bdat {
                size: 0,
                last: true
            })
        );
        assert_eq!(
            p("BDAT 7\r\n"),
            Ok(Command::Bdat {
                size: 7,
                last: false
            })
        );
        assert_eq!(code("BDAT x\r\n"), 501);
        assert_eq!(code("BDAT 99999999999999999999999\r\n"), 501);
        assert_eq!(code("BDAT 5 NOTLAST\r\n"), 501);
        assert_eq!(code("BDAT 18446744073709551616\r\n"), 501);
        assert_eq!(code("BDAT -1\r\n"), 501);
        assert_eq!(
            p("BDAT 1000000  LAST\r\n"),
            Ok(Command::Bdat {
                size: 1000000,
                last: true
            })
        );
        assert_eq!(
            p("AUTH PLAIN\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Plain,
                initial_response: None
            })
        );
        assert_eq!(
            p("AUTH plain =\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Plain,
                initial_response: Some("=".into())
            })
        );
        assert_eq!(
            p("AUTH LOGIN dXNlcg==\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Login,
                initial_response: Some("dXNlcg==".into())
            })
        );
        assert_eq!(code("AUTH CRAM-MD5\r\n"), 504);
        assert_eq!(code("AUTH\r\n"), 501);
        assert_eq!(p("NOOP hello\r\n"), Ok(Command::Noop));
        assert_eq!(p("HELP\r\n"), Ok(Command::Help));
        assert_eq!(p("VRFY someone\r\n"), Ok(Command::Vrfy));
        assert_eq!(code("VRFY\r\n"), 501);
        assert_eq!(p("STARTTLS\r\n"), Ok(Command::StartTls));
        assert_eq!(p("DATA\r\n"), Ok(Command::Data));
        assert_eq!(p("RSET\r\n"), Ok(Command::Rset));
        assert_eq!(p("QUIT\r\n"), Ok(Command::Quit));
        assert_eq!(code("LHLO x\r\n"), 500);
        assert_eq!(code("ETRN x\r\n"), 500);
        assert_eq!(code("FOO\r\n"), 500);
        assert_eq!(code("\r\n"), 500);
    }
}
