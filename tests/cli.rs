//! End-to-end tests of the daemon spine, driving the real `letterbox` binary: first
//! start, the CLI over the control socket and without a daemon, one daemon per data
//! directory, clean shutdown, config and argument errors, a damaged or newer
//! database, and SIGHUP certificate reload.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_letterbox");

/// A config with every mail listener disabled (these tests need no ports).
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("letterbox.toml");
    let text = format!(
        "[server]\ndata_dir = \"{}\"\n\n[listen]\nsmtp = \"\"\nsubmission = \"\"\nsubmissions = \"\"\nimap = \"\"\nimaps = \"\"\npop3 = \"\"\npop3s = \"\"\n{extra}",
        dir.join("data").display()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn run(cfg: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(c.stdin.take());
    c.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running daemon; killed on drop so a failing test leaves nothing behind.
struct Daemon {
    child: Child,
    stdout: String,
    log: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(cfg: &Path) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            stdout: String::new(),
            log,
        };
        d.wait_log("letterbox ready", Duration::from_secs(30));
        d
    }

    fn wait_log(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within {within:?}"),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits (bounded) for exit; returns the exit code and everything printed on stdout.
    fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                if let Some(mut out) = self.child.stdout.take() {
                    out.read_to_string(&mut self.stdout).unwrap();
                }
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn first_start_cli_over_socket_and_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let mut d = Daemon::start(&cfg);

    // The control socket is private.
    use std::os::unix::fs::PermissionsExt;
    let sock = dir.path().join("data/control.sock");
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Requests go to the running daemon (which owns the database).
    let st = run(&cfg, &["status"], None);
    assert!(st.status.success(), "{}", text(&st.stderr));
    assert!(
        text(&st.stdout).contains("daemon: running"),
        "{}",
        text(&st.stdout)
    );
    let add = run(
        &cfg,
        &["user", "add", "Alice@home.arpa", "--password-stdin"],
        Some("a long password\n"),
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    let generated = run(&cfg, &["user", "add", "bob@home.arpa"], None);
    assert!(
        text(&generated.stdout).contains("with password: "),
        "{}",
        text(&generated.stdout)
    );
    let dup = run(
        &cfg,
        &["user", "add", "alice@HOME.arpa", "--password-stdin"],
        Some("another password\n"),
    );
    assert!(!dup.status.success());
    assert!(
        text(&dup.stderr).contains("already exists"),
        "{}",
        text(&dup.stderr)
    );
    let foreign = run(&cfg, &["user", "add", "eve@example.org"], None);
    assert!(
        !foreign.status.success()
            && text(&foreign.stderr).contains("not one of this server's domains")
    );
    assert!(
        run(
            &cfg,
            &["alias", "add", "info@home.arpa", "alice@home.arpa"],
            None
        )
        .status
        .success()
    );
    let json = run(&cfg, &["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["daemon"]["running"], true);
    assert_eq!(v["store"]["accounts"], 3);

    // A second daemon on the same data directory is refused.
    let second = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("already running"),
        "{}",
        text(&second.stderr)
    );

    // SIGTERM: clean exit 0; the banner with the first account was printed once.
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(15)), 0);
    assert!(d.stdout.contains("postmaster@home.arpa"), "{}", d.stdout);
    assert!(!sock.exists(), "socket removed on exit");

    // Without a daemon the CLI opens the store itself and sees what the daemon wrote.
    let list = run(&cfg, &["user", "list"], None);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let out = text(&list.stdout);
    for a in ["postmaster@home.arpa", "Alice@home.arpa", "bob@home.arpa"] {
        assert!(out.contains(a), "{out}");
    }
    let st = run(&cfg, &["status"], None);
    assert!(text(&st.stdout).contains("daemon: not running"));
    assert!(
        text(&st.stdout).contains("unclean starts: 0"),
        "{}",
        text(&st.stdout)
    );

    // A restart does not create another first account or print a password.
    let mut d = Daemon::start(&cfg);
    d.signal("INT");
    assert_eq!(d.wait_exit(Duration::from_secs(15)), 0);
    assert!(!d.stdout.contains("password"), "{}", d.stdout);
}

#[test]
fn kill_9_is_counted_as_an_unclean_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let mut d = Daemon::start(&cfg);
    d.child.kill().unwrap();
    d.wait_exit(Duration::from_secs(5));
    let mut d = Daemon::start(&cfg);
    let st = run(&cfg, &["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["store"]["unclean_starts"], 1, "{v}");
    assert_eq!(v["store"]["fault4_pending"], true);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(15)), 0);
}

#[test]
fn config_and_argument_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "\n[limits]\nmax_mesage_size = \"10M\"\n");
    for args in [&["check-config"][..], &["serve"][..], &["status"][..]] {
        let o = run(&cfg, args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(":14:") && err.contains("limits.max_mesage_size"),
            "{err}"
        );
    }
    let good = write_config(dir.path(), "");
    let o = run(&good, &["check-config"], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for bad in [
        &["user", "ad", "x"][..],
        &["user", "add"][..],
        &["status", "--bogus"][..],
    ] {
        let o = Command::new(BIN).args(bad).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert_eq!(
            text(&o.stderr).trim_end().lines().count(),
            1,
            "{}",
            text(&o.stderr)
        );
    }
}

#[test]
fn damaged_or_newer_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("letterbox.redb");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let before = std::fs::read(&db).unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("damaged"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was modified");
    let o = run(&cfg, &["user", "list"], None);
    assert!(!o.status.success() && text(&o.stderr).contains("damaged"));
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_the_old_one_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ck = rcgen::generate_simple_self_signed(vec!["mail.example.org".to_string()]).unwrap();
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let mut d = Daemon::start(&cfg);
    std::fs::write(&cert, "garbage").unwrap();
    d.signal("HUP");
    let line = d.wait_log("SIGHUP", Duration::from_secs(10));
    assert!(line.contains("keeping the old one"), "{line}");
    let ck = rcgen::generate_simple_self_signed(vec!["mail.example.org".to_string()]).unwrap();
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    d.signal("HUP");
    let line = d.wait_log("SIGHUP", Duration::from_secs(10));
    assert!(line.contains("certificate reloaded"), "{line}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(15)), 0);
}
