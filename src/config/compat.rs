//! `[[imap_compat]]`: capabilities to hide from an IMAP client that misbehaves with them,
//! keyed on what the client says in `ID` (RFC 2971). Empty by default: an entry is added
//! only for a real client that needs one, with the reason written beside it. Dovecot has
//! the same knob (`imap_client_workarounds`), keyed on nothing; this one touches only the
//! client named.
//!
//! ```toml
//! [[imap_compat]]
//! client = "Some Mail App"     # the ID "name" value, compared without case
//! version = "1.2"              # optional: a prefix of the ID "version" value
//! hide = ["COMPRESS=DEFLATE"]  # capabilities left out of CAPABILITY for that client
//! reason = "what breaks, and where it was reported"
//! ```

use serde::Deserialize;

use super::{Builder, ConfigError};

/// One entry of `[[imap_compat]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatRule {
    /// The `ID` "name" value it applies to (compared without case).
    pub client: String,
    /// A prefix of the `ID` "version" value, or `None` for every version.
    pub version: Option<String>,
    /// Capabilities (upper case) left out of what that client is told.
    pub hide: Vec<String>,
    /// Why the entry exists.
    pub reason: String,
}

impl CompatRule {
    /// Whether the client that sent these `ID` parameters is the one this rule names.
    pub fn matches(&self, id: &[(String, Option<String>)]) -> bool {
        let field = |k: &str| {
            id.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .and_then(|(_, v)| v.as_deref())
        };
        field("name").is_some_and(|n| n.trim().eq_ignore_ascii_case(self.client.trim()))
            && self
                .version
                .as_deref()
                .is_none_or(|want| field("version").is_some_and(|v| v.starts_with(want)))
    }
}

/// One `[[imap_compat]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawCompat {
    client: String,
    version: Option<String>,
    hide: Vec<String>,
    reason: String,
}

impl Builder<'_> {
    /// `[[imap_compat]]`: a client name, capabilities to hide, and a reason.
    pub(super) fn compat(&self, raw: Vec<RawCompat>) -> Result<Vec<CompatRule>, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("imap_compat[{i}].{k}");
            if r.client.trim().is_empty() {
                return Err(self.err(&key("client"), "must name the client (its ID \"name\")"));
            }
            if r.reason.trim().is_empty() {
                return Err(self.err(&key("reason"), "say why the entry exists"));
            }
            let mut hide = Vec::with_capacity(r.hide.len());
            for c in r.hide {
                let c = c.trim().to_ascii_uppercase();
                if c.is_empty() || !c.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(self.err(&key("hide"), format!("{c:?} is not a capability")));
                }
                if ["IMAP4REV1", "IMAP4REV2"].contains(&c.as_str()) {
                    return Err(self.err(&key("hide"), format!("{c} cannot be hidden")));
                }
                hide.push(c);
            }
            out.push(CompatRule {
                client: r.client,
                version: r.version,
                hide,
                reason: r.reason,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn rules_parse_match_on_id_and_name_their_errors() {
        assert!(Config::defaults().imap_compat.is_empty());
        let c = Config::parse(
            "[[imap_compat]]\nclient = \"Some App\"\nversion = \"1.\"\nhide = [\"compress=deflate\"]\nreason = \"r\"\n",
            "t",
        )
        .unwrap();
        let r = &c.imap_compat[0];
        assert_eq!(r.hide, ["COMPRESS=DEFLATE"]);
        let id = |n: &str, v: &str| {
            vec![
                ("name".to_string(), Some(n.to_string())),
                ("Version".to_string(), Some(v.to_string())),
            ]
        };
        assert!(r.matches(&id("some app", "1.4")));
        assert!(!r.matches(&id("some app", "2.0")));
        assert!(!r.matches(&id("Other", "1.4")));
        let e = Config::parse(
            "[[imap_compat]]\nclient = \"x\"\nhide = []\nreason = \"\"\n",
            "t",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("imap_compat[0].reason"));
        assert_eq!(e.line, Some(4));
    }
}
