//! `[[fetch]]`: remote IMAPS accounts whose new mail is pulled into a local account (issue
//! 15 part 4; the daemon task is `crate::fetch`). None by default.
//!
//! ```toml
//! [[fetch]]
//! account = "alice@home.arpa"          # the local account (in [server] domains)
//! host = "imap.gmail.com"
//! port = 993                           # implicit TLS only (RFC 8314 §3.3); the default
//! username = "alice.smith@gmail.com"
//! password_file = "/etc/letterbox/gmail-alice"   # an app password; whitespace trimmed
//! folders = ["INBOX"]                  # the default
//! remote_action = "keep"               # or "delete", or "move:Archive"
//! interval = "5m"                      # the default; IDLE is used when offered
//! # ca_file = "/etc/letterbox/isp-ca.pem"  # trust these CAs instead of the system store
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Builder, ConfigError, Seconds, check_domain};

/// What happens on the remote to a message once it is safely stored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAction {
    /// `"keep"` (the default): leave it.
    Keep,
    /// `"delete"`: `\Deleted` and expunge it.
    Delete,
    /// `"move:FOLDER"`: move it to that remote folder.
    Move(String),
}

/// One `[[fetch]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// The local account the mail goes to (lower case, in one of `[server] domains`).
    pub account: String,
    /// The remote IMAPS server: a host name or an IP address; its certificate must name it.
    pub host: String,
    /// The remote port (implicit TLS). Default 993.
    pub port: u16,
    /// The remote login.
    pub username: String,
    /// A file holding the remote password (surrounding whitespace is not part of it).
    pub password_file: PathBuf,
    /// The remote folders pulled. Default `["INBOX"]`.
    pub folders: Vec<String>,
    /// What happens to pulled mail on the remote. Default keep.
    pub remote_action: RemoteAction,
    /// How often to look when the remote does not offer IDLE (and how soon after a failure
    /// the first retry comes). Default 5 minutes.
    pub interval: Duration,
    /// PEM CA certificates trusted for this remote instead of the system trust store.
    pub ca_file: Option<PathBuf>,
}

impl FetchConfig {
    /// `user@host:port`, for logs and status.
    pub fn name(&self) -> String {
        format!("{}@{}:{}", self.username, self.host, self.port)
    }
}

/// One `[[fetch]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawFetch {
    account: String,
    host: String,
    port: Option<u16>,
    username: String,
    password_file: PathBuf,
    folders: Option<Vec<String>>,
    remote_action: Option<String>,
    interval: Option<Seconds>,
    ca_file: Option<PathBuf>,
}

impl Builder<'_> {
    /// `[[fetch]]`: a local account, a remote host, credentials, and what to pull.
    pub(super) fn fetch(
        &self,
        raw: Vec<RawFetch>,
        config: &super::Config,
    ) -> Result<Vec<FetchConfig>, ConfigError> {
        let mut out: Vec<FetchConfig> = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("fetch[{i}].{k}");
            let account = r.account.trim().to_ascii_lowercase();
            let local = account
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && config.is_local_domain(d));
            if !local {
                return Err(self.err(
                    &key("account"),
                    format!(
                        "{account:?} is not an address in one of [server] domains ({})",
                        config.server.domains.join(", ")
                    ),
                ));
            }
            let host = r.host.trim().to_ascii_lowercase();
            if host.parse::<std::net::IpAddr>().is_err()
                && let Err(why) = check_domain(&host)
            {
                return Err(self.err(
                    &key("host"),
                    format!("invalid host {host:?}: expected a host name or IP address; {why}"),
                ));
            }
            if r.port == Some(0) {
                return Err(self.err(&key("port"), "must be between 1 and 65535"));
            }
            if r.username.is_empty() || r.username.chars().any(char::is_control) {
                return Err(self.err(
                    &key("username"),
                    "must not be empty or hold control characters",
                ));
            }
            if r.password_file.as_os_str().is_empty() {
                return Err(self.err(&key("password_file"), "must not be empty"));
            }
            let folders = r.folders.unwrap_or_else(|| vec!["INBOX".to_owned()]);
            if folders.is_empty() {
                return Err(self.err(&key("folders"), "must name at least one folder"));
            }
            for f in &folders {
                if f.is_empty() || f.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                    return Err(self.err(
                        &key("folders"),
                        format!("{f:?} is not a folder name (no quotes, backslashes or controls)"),
                    ));
                }
            }
            let remote_action = match r.remote_action.as_deref().map(str::trim) {
                None | Some("keep") => RemoteAction::Keep,
                Some("delete") => RemoteAction::Delete,
                Some(s) => match s.strip_prefix("move:").map(str::trim) {
                    Some(f)
                        if !f.is_empty()
                            && !f.chars().any(|c| c.is_control() || c == '"' || c == '\\') =>
                    {
                        if folders.iter().any(|x| x == f) {
                            return Err(self.err(
                                &key("remote_action"),
                                format!("moves into {f:?}, which is also pulled"),
                            ));
                        }
                        RemoteAction::Move(f.to_owned())
                    }
                    _ => {
                        return Err(self.err(
                            &key("remote_action"),
                            format!(
                                "{s:?}: expected \"keep\", \"delete\" or \"move:FOLDER\" \
                                 (such as \"move:Archive\")"
                            ),
                        ));
                    }
                },
            };
            if r.ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(self.err(&key("ca_file"), "must not be empty"));
            }
            let entry = FetchConfig {
                account,
                host,
                port: r.port.unwrap_or(993),
                username: r.username,
                password_file: r.password_file,
                folders,
                remote_action,
                interval: r.interval.map_or(Duration::from_secs(5 * 60), |s| s.0),
                ca_file: r.ca_file,
            };
            if out
                .iter()
                .any(|o| o.name() == entry.name() && o.account == entry.account)
            {
                return Err(self.err(
                    &key("username"),
                    format!("{} is listed twice for {}", entry.name(), entry.account),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::RemoteAction;
    use crate::config::Config;

    const BASE: &str = "[[fetch]]\naccount = \"Alice@home.arpa\"\nhost = \"imap.example.org\"\n\
                        username = \"alice\"\npassword_file = \"/p\"\n";

    #[test]
    fn defaults_and_values() {
        assert!(Config::defaults().fetch.is_empty());
        let c = Config::parse(BASE, "t").unwrap();
        let f = &c.fetch[0];
        assert_eq!(f.account, "alice@home.arpa");
        assert_eq!(f.port, 993);
        assert_eq!(f.folders, ["INBOX"]);
        assert_eq!(f.remote_action, RemoteAction::Keep);
        assert_eq!(f.interval.as_secs(), 300);
        let c = Config::parse(
            &format!("{BASE}remote_action = \"move:Old/Pulled\"\ninterval = \"30s\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            c.fetch[0].remote_action,
            RemoteAction::Move("Old/Pulled".into())
        );
        assert_eq!(c.fetch[0].interval.as_secs(), 30);
        let c = Config::parse(&format!("{BASE}remote_action = \"delete\"\n"), "t").unwrap();
        assert_eq!(c.fetch[0].remote_action, RemoteAction::Delete);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let cases = [
            ("account = \"bob@elsewhere.org\"\n", "fetch[0].account"),
            ("remote_action = \"archive\"\n", "fetch[0].remote_action"),
            ("remote_action = \"move:INBOX\"\n", "fetch[0].remote_action"),
            ("port = 0\n", "fetch[0].port"),
            ("folders = []\n", "fetch[0].folders"),
            ("host = \"bad host\"\n", "fetch[0].host"),
        ];
        for (line, key) in cases {
            // The override comes after BASE's keys, so replace the key in BASE instead.
            let name = line.split(" = ").next().unwrap();
            let text: String = BASE
                .lines()
                .filter(|l| !l.starts_with(&format!("{name} = ")))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                + line;
            let e = Config::parse(&text, "t").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{line}: {e}");
            let want = text.lines().position(|l| l == line.trim_end()).unwrap() + 1;
            assert_eq!(e.line, Some(want), "{line}: {e}");
        }
        let e = Config::parse("[[fetch]]\naccount = \"a@home.arpa\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("fetch"), "{e}");
    }
}
