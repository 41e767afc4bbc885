//! SASL exchanges shared by SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH, as pure
//! state machines: base64 in, credentials or a challenge out. No I/O, no store.
//!
//! PLAIN is RFC 4616; LOGIN is the widely deployed draft-murchison-sasl-login.
//! The initial response (SMTP AUTH RFC 4954 §4, IMAP SASL-IR RFC 4959, POP3 RFC 5034)
//! is handled by passing it to [`Exchange::start`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;

/// A value that must never reach `Debug` output or logs (passwords, tokens).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a sensitive value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// Reads the value; call sites are easy to audit.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Credentials recovered from a finished exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authorization identity, when the client sent one different from `username`.
    pub authzid: Option<String>,
    /// The authentication identity (the login name).
    pub username: String,
    /// The password.
    pub password: Secret<String>,
}

/// The mechanisms we offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// draft-murchison-sasl-login.
    Login,
}

impl Mechanism {
    /// Parses a mechanism name case-insensitively (RFC 4422 §3.1).
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }
}

/// Why an exchange failed. Every variant maps to the protocol's "malformed" reply
/// (SMTP 501 5.5.2, IMAP BAD, POP3 -ERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4422 §3.5 abort).
    Cancelled,
    /// Not valid base64.
    BadBase64,
    /// Decoded, but not of the mechanism's form (or not UTF-8).
    Malformed,
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SaslError::Cancelled => "authentication cancelled",
            SaslError::BadBase64 => "invalid base64",
            SaslError::Malformed => "malformed SASL response",
        })
    }
}

/// What the exchange wants next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this challenge (already base64-encoded; may be empty) and feed the reply line.
    Challenge(String),
    /// The exchange finished with these credentials.
    Done(Credentials),
}

/// One SASL exchange in progress.
#[derive(Debug)]
pub enum Exchange {
    /// PLAIN, waiting for the single response.
    Plain,
    /// LOGIN, waiting for the user name.
    LoginUser,
    /// LOGIN, waiting for the password of this user.
    LoginPass(String),
}

/// Decodes a client line: base64, with `*` meaning abort and `=` meaning empty
/// (RFC 4954 §4: "=" is an empty initial response).
fn decode_line(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_ascii();
    if line == b"*" {
        return Err(SaslError::Cancelled);
    }
    if line == b"=" || line.is_empty() {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| SaslError::BadBase64)
}

/// Encodes bytes as base64 (for challenges).
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Parses a decoded PLAIN message: `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
pub fn parse_plain(msg: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = msg.split(|b| *b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let s = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed);
    let (authz, user, pass) = (s(authz)?, s(user)?, s(pass)?);
    if user.is_empty() || pass.is_empty() {
        return Err(SaslError::Malformed);
    }
    Ok(Credentials {
        authzid: if authz.is_empty() || authz == user {
            None
        } else {
            Some(authz)
        },
        username: user,
        password: Secret::new(pass),
    })
}

impl Exchange {
    /// Starts an exchange. `initial` is the initial response if the client sent one
    /// on the command line (still base64, `=` for empty).
    pub fn start(mech: Mechanism, initial: Option<&[u8]>) -> Result<(Exchange, Next), SaslError> {
        let ex = match mech {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Login => Exchange::LoginUser,
        };
        match initial {
            Some(line) => ex.step(line),
            None => {
                let challenge = match mech {
                    Mechanism::Plain => String::new(),
                    Mechanism::Login => encode(b"Username:"),
                };
                Ok((ex, Next::Challenge(challenge)))
            }
        }
    }

    /// Feeds one client response line (without CRLF).
    pub fn step(self, line: &[u8]) -> Result<(Exchange, Next), SaslError> {
        let data = decode_line(line)?;
        match self {
            Exchange::Plain => {
                let creds = parse_plain(&data)?;
                Ok((Exchange::Plain, Next::Done(creds)))
            }
            Exchange::LoginUser => {
                let user = String::from_utf8(data).map_err(|_| SaslError::Malformed)?;
                if user.is_empty() {
                    return Err(SaslError::Malformed);
                }
                Ok((
                    Exchange::LoginPass(user),
                    Next::Challenge(encode(b"Password:")),
                ))
            }
            Exchange::LoginPass(user) => {
                let pass = String::from_utf8(data).map_err(|_| SaslError::Malformed)?;
                let creds = Credentials {
                    authzid: None,
                    username: user.clone(),
                    password: Secret::new(pass),
                };
                Ok((Exchange::LoginPass(user), Next::Done(creds)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        encode(s).into_bytes()
    }

    #[test]
    fn plain_with_initial_response() {
        let (_, next) = Exchange::start(Mechanism::Plain, Some(&b64(b"\0alice\0pw"))).unwrap();
        let Next::Done(c) = next else {
            panic!("{next:?}")
        };
        assert_eq!(c.username, "alice");
        assert_eq!(c.password.expose(), "pw");
        assert_eq!(c.authzid, None);
    }

    #[test]
    fn plain_with_challenge_and_authzid() {
        let (ex, next) = Exchange::start(Mechanism::Plain, None).unwrap();
        assert_eq!(next, Next::Challenge(String::new()));
        let (_, next) = ex.step(&b64(b"boss\0alice\0pw")).unwrap();
        let Next::Done(c) = next else { panic!() };
        assert_eq!(c.authzid.as_deref(), Some("boss"));
    }

    #[test]
    fn login_two_steps() {
        let (ex, next) = Exchange::start(Mechanism::Login, None).unwrap();
        assert_eq!(next, Next::Challenge(encode(b"Username:")));
        let (ex, next) = ex.step(&b64(b"alice")).unwrap();
        assert_eq!(next, Next::Challenge(encode(b"Password:")));
        let (_, next) = ex.step(&b64(b"secret")).unwrap();
        let Next::Done(c) = next else { panic!() };
        assert_eq!(
            (c.username.as_str(), c.password.expose().as_str()),
            ("alice", "secret")
        );
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(
            Exchange::Plain.step(b"*").unwrap_err(),
            SaslError::Cancelled
        );
        assert_eq!(
            Exchange::Plain.step(b"!!!").unwrap_err(),
            SaslError::BadBase64
        );
        assert_eq!(
            Exchange::Plain.step(&b64(b"alice")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            Exchange::Plain.step(&b64(b"\0\0pw")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            Exchange::Plain.step(&b64(b"a\0b\0c\0d")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            Exchange::Plain.step(&b64(b"\0a\0\xff")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(Mechanism::parse("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse("CRAM-MD5"), None);
    }

    #[test]
    fn secret_never_debug_prints() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }
}
