//! `[acme]`: a certificate from an ACME CA (RFC 8555), such as Let's Encrypt, for a box with a
//! public name. Absent by default (the household CA is used). `[tls] cert key` files win when
//! both are given.
//!
//! ```toml
//! [acme]
//! directory = "https://acme-v02.api.letsencrypt.org/directory"
//! email = "postmaster@example.org"
//! challenge = "http-01"
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::{Builder, ConfigError};

/// How the ACME CA checks that the box holds the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `"http-01"` (RFC 8555 section 8.3): the CA fetches
    /// `http://<host>/.well-known/acme-challenge/<token>` on port 80.
    Http01,
}

/// `[acme]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The directory URL (https).
    pub directory: String,
    /// The contact address given to the CA, if any.
    pub email: Option<String>,
    /// The challenge type.
    pub challenge: AcmeChallenge,
    /// PEM roots to trust for the directory's own HTTPS instead of the system store (a test
    /// CA such as pebble, or a private ACME server).
    pub directory_ca: Option<PathBuf>,
}

/// The `[acme]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub(super) struct RawAcme {
    directory: Option<String>,
    email: Option<String>,
    challenge: Option<String>,
    directory_ca: Option<PathBuf>,
}

impl Builder<'_> {
    /// `[acme]`: `directory` is required and must be an https URL; `email` needs an `@`;
    /// `challenge` is `http-01` (the default). `tls-alpn-01` is refused: not implemented.
    pub(super) fn acme(&self, raw: Option<RawAcme>) -> Result<Option<AcmeConfig>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let directory = match raw.directory {
            Some(d)
                if d.starts_with("https://")
                    && d.len() > 8
                    && !d.chars().any(char::is_whitespace) =>
            {
                d
            }
            Some(_) => return Err(self.err("acme.directory", "must be an https:// URL")),
            None => {
                return Err(self.err(
                    "acme.directory",
                    "is required in [acme], e.g. \"https://acme-v02.api.letsencrypt.org/directory\"",
                ));
            }
        };
        if let Some(e) = &raw.email
            && (!e.contains('@') || e.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(self.err("acme.email", "must be a mail address"));
        }
        let challenge = match raw.challenge.as_deref() {
            None | Some("http-01") => AcmeChallenge::Http01,
            Some("tls-alpn-01") => {
                return Err(self.err(
                    "acme.challenge",
                    "tls-alpn-01 is not supported yet; use \"http-01\"",
                ));
            }
            Some(other) => {
                return Err(self.err(
                    "acme.challenge",
                    format!("unknown challenge {other:?}; use \"http-01\""),
                ));
            }
        };
        if raw
            .directory_ca
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(self.err("acme.directory_ca", "must not be empty"));
        }
        Ok(Some(AcmeConfig {
            directory,
            email: raw.email,
            challenge,
            directory_ca: raw.directory_ca,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn acme_table() {
        assert_eq!(Config::defaults().acme, None);
        let c = Config::parse(
            "[acme]\ndirectory = \"https://127.0.0.1:14000/dir\"\nemail = \"a@example.org\"\n",
            "t",
        )
        .unwrap();
        let a = c.acme.unwrap();
        assert_eq!(a.directory, "https://127.0.0.1:14000/dir");
        assert_eq!(a.challenge, AcmeChallenge::Http01);
        for (text, line, key) in [
            ("[acme]\nemail = \"a@b\"\n", 1, "acme.directory"),
            (
                "[acme]\n\ndirectory = \"http://x/dir\"\n",
                3,
                "acme.directory",
            ),
            (
                "[acme]\ndirectory = \"https://x/d\"\nemail = \"nobody\"\n",
                3,
                "acme.email",
            ),
            (
                "[acme]\ndirectory = \"https://x/d\"\nchallenge = \"dns-01\"\n",
                3,
                "acme.challenge",
            ),
            (
                "[acme]\ndirectory = \"https://x/d\"\nchallenge = \"tls-alpn-01\"\n",
                3,
                "acme.challenge",
            ),
        ] {
            let e = Config::parse(text, "t").unwrap_err();
            assert_eq!(
                (e.line, e.key.as_deref()),
                (Some(line), Some(key)),
                "{text}: {e}"
            );
        }
    }
}
