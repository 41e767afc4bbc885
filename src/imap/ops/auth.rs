//! The commands that change the connection rather than the mailbox: STARTTLS,
//! AUTHENTICATE (with LOGIN's shared checks), ENABLE and COMPRESS. LOGIN itself only
//! raises [`Event::Login`] (in `session.rs`).

use super::super::response::{Code, Data, Response};
use super::{Event, Fail, Mode, Session, no};
use crate::sasl::{Exchange, Mechanism, Next, SaslError};

impl Session {
    /// Valid in: Not Authenticated. RFC 9051 §6.2.1.
    pub(super) fn starttls(&mut self, tag: &str) {
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

    /// Valid in: Authenticated, Selected. RFC 4978 §3: `DEFLATE` is the one algorithm;
    /// once it is active a second COMPRESS gets `NO [COMPRESSIONACTIVE]` (as Dovecot
    /// answers), an unknown algorithm `BAD`. After the tagged OK the driver is told
    /// ([`Step::Compress`](super::Step)) to switch both directions to DEFLATE.
    pub(super) fn compress(&mut self, tag: &str, algorithm: &str) {
        if self.compressed {
            self.finish(
                tag,
                Err(no(Code::CompressionActive, "DEFLATE is active already")),
            );
        } else if !algorithm.eq_ignore_ascii_case("DEFLATE") {
            self.finish(tag, Err(Fail::Bad("Unknown compression algorithm".into())));
        } else {
            self.finish(tag, Ok((None, "DEFLATE active")));
            self.mode = Mode::Compress;
        }
    }

    pub(super) fn plaintext_check(&self) -> Result<(), Fail> {
        if !self.tls && !self.cfg.plaintext_auth_allowed {
            // RFC 9051 §6.2.3: LOGINDISABLED; RFC 5530 PRIVACYREQUIRED.
            return Err(no(Code::PrivacyRequired, "Use STARTTLS first"));
        }
        Ok(())
    }

    /// Valid in: Not Authenticated. RFC 9051 §6.2.2, SASL-IR RFC 4959.
    pub(super) fn authenticate(&mut self, tag: String, mechanism: &str, initial: Option<&String>) {
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

    pub(super) fn sasl_next(&mut self, tag: String, exchange: Exchange, next: Next) {
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

    pub(super) fn sasl_error(&mut self, tag: &str, e: SaslError) {
        self.mode = Mode::Command;
        let text = match e {
            SaslError::Cancelled => "Authentication cancelled",
            _ => "Malformed authentication data",
        };
        self.finish(tag, Err(Fail::Bad(text.into())));
    }

    /// Valid in: Authenticated, Selected. RFC 5161 §3.1.
    pub(super) fn enable(&mut self, tag: &str, caps: &[String]) {
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
}
