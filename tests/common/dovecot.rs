//! A Dovecot of the test's own (Debian's `dovecot-imapd`): config, passwd-file, Maildirs and
//! runtime files in a temp dir, IMAP on a free loopback port, plain or over implicit TLS with
//! a certificate the test made. Stopped on drop (SIGTERM, then SIGKILL after 10 s). Used as
//! the peer of tests/real_clients.rs (offlineimap3 syncs both ways) and as the remote of
//! tests/fetch.rs (`[[fetch]]` pulls from it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{RUN_TIMEOUT, run_bounded};

/// The Dovecot account.
pub const DC_USER: &str = "alice";
/// Its password.
pub const DC_PW: &str = "dovecot-password-1";

/// A running Dovecot.
pub struct Dovecot {
    child: Child,
    /// Its temp dir (config, `users`, `mail/`, `dovecot.log`).
    pub dir: tempfile::TempDir,
    /// Its IMAP (or IMAPS) port on 127.0.0.1.
    pub port: u16,
}

impl Dovecot {
    /// Plain IMAP (`ssl = no`, plaintext logins allowed) on a free port.
    pub fn start() -> Dovecot {
        Self::start_with(None)
    }

    /// IMAPS only (`ssl = required`), with the PEM certificate and key at these paths.
    pub fn start_tls(cert: &Path, key: &Path) -> Dovecot {
        Self::start_with(Some((cert.to_path_buf(), key.to_path_buf())))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Dovecot {
        super::require("dovecot", "--version", "dovecot-imapd");
        assert!(
            Path::new("/usr/lib/dovecot/imap").exists(),
            "Dovecot's IMAP server is not installed (apt-get install dovecot-imapd)"
        );
        super::retry_start("dovecot", || Dovecot::try_start(tls.as_ref()))
    }

    fn try_start(tls: Option<&(PathBuf, PathBuf)>) -> Result<Dovecot, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let id = |args: &[&str]| {
            let mut c = Command::new("id");
            c.args(args);
            String::from_utf8_lossy(&run_bounded(c, b"", RUN_TIMEOUT).stdout)
                .trim()
                .to_string()
        };
        // As root, Dovecot's usual unprivileged helpers and mail owned by `nobody` (Dovecot
        // refuses mail access as uid 0); otherwise everything runs as the current user.
        let (mail_user, mail_group, users) = if id(&["-u"]) == "0" {
            ("nobody".to_string(), id(&["-gn", "nobody"]), String::new())
        } else {
            let user = id(&["-un"]);
            let users = format!("default_internal_user = {user}\ndefault_login_user = {user}\n");
            (user, id(&["-gn"]), users)
        };
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(d.join(sub)).map_err(|e| e.to_string())?;
        }
        // Dovecot's unprivileged processes must reach into the temp dir.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let mut chown = Command::new("chown");
        chown
            .arg(format!("{mail_user}:{mail_group}"))
            .arg(d.join("mail"));
        let out = run_bounded(chown, b"", RUN_TIMEOUT);
        if !out.status.success() {
            return Err(format!(
                "chown mail: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::fs::write(
            d.join("users"),
            format!("{DC_USER}:{{PLAIN}}{DC_PW}::::::\n"),
        )
        .map_err(|e| e.to_string())?;
        std::fs::set_permissions(d.join("users"), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| e.to_string())?;
        let (ssl, listeners) = match tls {
            None => (
                "ssl = no\ndisable_plaintext_auth = no\n".to_string(),
                format!(
                    "  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
                     inet_listener imaps {{\n    port = 0\n  }}\n"
                ),
            ),
            Some((cert, key)) => (
                format!(
                    "ssl = required\nssl_cert = <{}\nssl_key = <{}\n",
                    cert.display(),
                    key.display()
                ),
                format!(
                    "  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    \
                     address = 127.0.0.1\n    port = {port}\n    ssl = yes\n  }}\n"
                ),
            ),
        };
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             instance_name = lbtest-{port}\nlog_path = {d}/dovecot.log\n{ssl}\
             auth_mechanisms = plain login\nmail_location = maildir:~/Maildir\n{users}\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n  \
             default_fields = uid={mail_user} gid={mail_group} home={d}/mail/%u\n}}\n\
             service imap-login {{\n{listeners}}}\n",
            d = d.display()
        );
        std::fs::write(d.join("dovecot.conf"), conf).map_err(|e| e.to_string())?;
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dovecot: {e}"))?;
        let mut dc = Dovecot { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = dc.child.try_wait() {
                return Err(format!("dovecot exited with {status}: {}", dc.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("dovecot not listening after 30 s: {}", dc.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(dc)
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM: the master stops its children; SIGKILL if it does not end in 10 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
