//! The README's "First five minutes", done as a user does it (issue 13 §6): start `serve`
//! with no accounts, take the password from its first-start banner, deliver a message over
//! the MX listener with the README's own `python3` line, then drive real mutt (Debian's
//! `mutt`) in a detached tmux session with the README's ```muttrc block: accept the
//! household CA's certificate at mutt's prompt with `a` (its fingerprint must be the banner's),
//! read the message, send one over SMTPS with the password, see it arrive, start mutt again
//! (no certificate prompt this time), and end with `letterbox status`.
//!
//! The README's blocks are read from README.md, so the two cannot drift. What differs from a
//! user's run: the ports (free loopback ports instead of 2525/2993/2465, replaced in the
//! blocks), the password (the one this daemon printed), `HOME` (a temporary directory, where
//! the muttrc goes as `~/.muttrc` and mutt writes `~/.mutt_certificates`), `EDITOR` (a
//! script that writes the message text) and the config file: this harness's own, as
//! tests/common/mod.rs writes it (a temporary `data_dir`, a DNS stub so that nothing asks
//! the machine's resolver). The daemon is started here rather than by `common::Server`,
//! which discards stdout, where the banner is printed.
//!
//! Every wait is bounded; the daemon and the tmux server (a private socket in the temporary
//! directory) are killed on drop.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{NxDomain, RUN_TIMEOUT, SERVICES, free_ports, run_bounded};

/// The ports the README names (the host defaults), in the order of [`SERVICES`].
const README_PORTS: [u16; 7] = [2525, 2587, 2465, 2143, 2993, 2110, 2995];
/// What the README's muttrc has in place of the password.
const PASSWORD_PLACEHOLDER: &str = "PASSWORD-FROM-THE-BANNER";
/// How long mutt may take to show what a step waits for.
/// mutt's certificate prompt (GnuTLS build, with `certificate_file` set).
const CERT_PROMPT: &str = "(r)eject, accept (o)nce, (a)ccept always";
/// The text the test's editor writes into the message mutt sends.
const SENT_BODY: &str = "Sent from mutt in the first five minutes.";
const SENT_SUBJECT: &str = "Hello from mutt";

/// The README's "First five minutes" section.
fn readme_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let start = readme
        .find("\n## First five minutes\n")
        .expect("README.md has no \"## First five minutes\" section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The fenced blocks of `section` that open with ```` ```lang ````.
fn fenced_blocks(section: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match current.as_mut() {
            None if line.trim_end() == format!("```{lang}") => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => out.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    out
}

/// `text` with every `127.0.0.1:<README port>` replaced by the test's port; panics unless at
/// least one was there.
fn with_ports(text: &str, ports: [u16; 7]) -> String {
    let mut out = text.to_string();
    for (readme, ours) in README_PORTS.iter().zip(ports) {
        out = out.replace(&format!("127.0.0.1:{readme}"), &format!("127.0.0.1:{ours}"));
        out = out.replace(
            &format!("\"127.0.0.1\", {readme})"),
            &format!("\"127.0.0.1\", {ours})"),
        );
    }
    assert_ne!(
        out, text,
        "no README port (127.0.0.1:25xx etc.) in:\n{text}"
    );
    out
}

/// A daemon started as `letterbox serve`, whose stdout (the banner) and stderr are kept.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    config: PathBuf,
    ports: [u16; 7],
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dns: NxDomain,
}

impl Daemon {
    /// Starts on free ports (again on other ones when a port was taken meanwhile).
    fn start() -> Daemon {
        common::retry_start("letterbox", Daemon::try_start)
    }

    fn try_start() -> Result<Daemon, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ports = free_ports();
        let dns = NxDomain::start()?;
        // The harness's config (tests/common/mod.rs): a temp data_dir, free loopback ports,
        // the DNS stub; every other key keeps its host default, as for `cargo run -- serve`.
        let mut text = format!(
            "[server]\ndata_dir = \"{}\"\n\n[listen]\n",
            dir.path().join("data").display()
        );
        for (s, p) in SERVICES.iter().zip(ports) {
            text.push_str(&format!("{s} = \"127.0.0.1:{p}\"\n"));
        }
        text.push_str(&format!("\n[dns]\nnameservers = [\"{}\"]\n", dns.addr));
        let config = dir.path().join("letterbox.toml");
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_letterbox"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        for (pipe, buf) in [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                &stdout,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                &stderr,
            ),
        ] {
            let (Some(pipe), buf) = (pipe, buf.clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut b) = buf.lock() {
                        b.push_str(&line);
                        b.push('\n');
                    }
                }
            });
        }
        let mut daemon = Daemon {
            child,
            dir,
            config,
            ports,
            stdout,
            stderr,
            _dns: dns,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        // The banner (stdout) comes before "letterbox ready" (stderr), read by two threads.
        while !daemon.log().contains("letterbox ready") || !daemon.banner().contains("Certificate:")
        {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(format!("exited with {status}: {}", daemon.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 60 s: {}", daemon.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    fn log(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn banner(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn port(&self, service: &str) -> u16 {
        let i = SERVICES
            .iter()
            .position(|s| *s == service)
            .expect("service");
        self.ports[i]
    }

    /// `letterbox <args> --config <ours>`; panics unless it succeeds.
    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
        cmd.args(args).arg("--config").arg(&self.config);
        let out = run_bounded(cmd, b"", RUN_TIMEOUT);
        assert!(
            out.status.success(),
            "letterbox {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value after `label` on a line of the banner.
fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {label:?} in the first-start banner:\n{banner}"))
}

/// mutt in tmux (tests/common/tmux.rs), its failures shown with the daemon's log.
struct Tmux(common::tmux::Tmux);

impl Tmux {
    fn start(socket: &Path, env: &[(&str, &Path)], command: &str) -> Tmux {
        Tmux(common::tmux::Tmux::start(socket, env, command))
    }
    fn type_text(&self, text: &str) {
        self.0.type_text(text);
    }
    fn key(&self, key: &str) {
        self.0.key(key);
    }
    fn wait_for(&self, what: &str, texts: &[&str], daemon: &Daemon) -> String {
        self.0.wait_for(
            what,
            texts,
            |_, _| {},
            || format!("--- daemon log\n{}", daemon.log()),
        )
    }
    fn wait_prompt(&self, prompt: &str, daemon: &Daemon) {
        self.0
            .wait_prompt(prompt, || format!("--- daemon log\n{}", daemon.log()));
    }
    fn wait_gone(&self) {
        self.0.wait_gone();
    }
}

#[test]
fn first_five_minutes_with_mutt() {
    common::require("mutt", "-v", "mutt");
    common::require("tmux", "-V", "tmux");

    let section = readme_section();
    let muttrc = fenced_blocks(&section, "muttrc");
    assert_eq!(
        muttrc.len(),
        1,
        "one ```muttrc block in the section:\n{section}"
    );
    let deliver = fenced_blocks(&section, "sh")
        .into_iter()
        .find(|b| b.contains("smtplib"))
        .expect("a ```sh block with the python3 smtplib delivery in the section");

    // `cargo run --release -- serve`: the banner gives the password and the fingerprint.
    let daemon = Daemon::start();
    let banner = daemon.banner();
    assert_eq!(
        banner_value(&banner, "account:"),
        "postmaster@home.arpa",
        "{banner}"
    );
    let password = banner_value(&banner, "password:");
    let fingerprint = banner_value(&banner, "Certificate: SHA-256");
    let fingerprint: String = fingerprint.chars().filter(|c| *c != ':').collect();
    assert_eq!(fingerprint.len(), 64, "SHA-256 in the banner: {banner}");

    // The README's delivery over the MX listener.
    let out = run_bounded(
        {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(with_ports(&deliver, daemon.ports));
            cmd
        },
        b"",
        RUN_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "the README's delivery failed: {}\n--- daemon log\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );

    // ~/.muttrc: the README's block with our ports and the banner's password.
    let home = daemon.dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir home");
    let block = &muttrc[0];
    assert!(
        block.contains(PASSWORD_PLACEHOLDER),
        "the muttrc has no {PASSWORD_PLACEHOLDER}:\n{block}"
    );
    let rc = with_ports(block, daemon.ports).replace(PASSWORD_PLACEHOLDER, &password);
    assert!(
        section.contains(CERT_PROMPT) && section.contains("Press `a`"),
        "the README no longer says to answer {CERT_PROMPT:?} with `a`:\n{section}"
    );
    std::fs::write(home.join(".muttrc"), &rc).expect("write .muttrc");
    let editor = daemon.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        format!("#!/bin/sh\nprintf '%s\\n' '{SENT_BODY}' >> \"$1\"\n"),
    )
    .expect("write editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod editor");
    let env = [("HOME", home.as_path()), ("EDITOR", editor.as_path())];
    let socket = daemon.dir.path().join("tmux.sock");

    {
        let mutt = Tmux::start(&socket, &env, "mutt");
        // The certificate prompt (the household CA is not installed in mutt), the banner's
        // fingerprint, no hostname warning; then `a`.
        let screen = mutt.wait_for(
            "the certificate prompt",
            &[CERT_PROMPT, "SHA256 Fingerprint:"],
            &daemon,
        );
        let shown: String = screen
            .split("SHA256 Fingerprint:")
            .nth(1)
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(64)
            .collect();
        assert_eq!(
            shown.to_ascii_uppercase(),
            fingerprint,
            "mutt's SHA256 fingerprint is not the banner's:\n{screen}\n{banner}"
        );
        assert!(
            !screen.contains("Server hostname does not match certificate"),
            "the certificate names 127.0.0.1 (an IP name on a host run):\n{screen}"
        );
        mutt.key("a");
        // Logged in: the INBOX with the delivered message.
        mutt.wait_for(
            "the INBOX with the delivered message",
            &["=INBOX", "Hello from a friend"],
            &daemon,
        );
        let stored = std::fs::read_to_string(home.join(".mutt_certificates"))
            .expect("`a` stores the certificate in ~/.mutt_certificates");
        assert!(stored.contains("BEGIN CERTIFICATE"), "{stored}");
        mutt.key("Enter");
        mutt.wait_for(
            "the message's body",
            &[
                "Subject: Hello from a friend",
                "Welcome to your own mail server.",
            ],
            &daemon,
        );
        mutt.key("i");
        mutt.wait_for(
            "the index again",
            &["Hello from a friend", "m:Mail"],
            &daemon,
        );
        // Send one to ourselves over SMTPS.
        mutt.key("m");
        mutt.wait_prompt("To:", &daemon);
        mutt.type_text("postmaster@home.arpa");
        mutt.key("Enter");
        mutt.wait_prompt("Subject:", &daemon);
        mutt.type_text(SENT_SUBJECT);
        mutt.key("Enter");
        mutt.wait_for("the compose screen", &["y:Send", SENT_SUBJECT], &daemon);
        mutt.key("y");
        mutt.wait_for(
            "the sent message in the INBOX",
            &["Hello from a friend", SENT_SUBJECT, "=INBOX [Msgs:2"],
            &daemon,
        );
        mutt.key("q");
        mutt.wait_gone();
    }

    // Over IMAP, apart from mutt: the message is in the INBOX and its copy in Sent.
    let script = format!(
        r#"
import imaplib, ssl, sys
M = imaplib.IMAP4_SSL("127.0.0.1", {port}, ssl_context=ssl._create_unverified_context(), timeout=20)
M.login("postmaster@home.arpa", sys.argv[1])
for box in ["INBOX", "Sent"]:
    typ, _ = M.select(box, readonly=True)
    assert typ == "OK", box
    typ, data = M.search(None, 'SUBJECT', '"{SENT_SUBJECT}"')
    nums = data[0].split()
    assert len(nums) == 1, (box, data)
    typ, msg = M.fetch(nums[0], "(BODY.PEEK[])")
    raw = msg[0][1]
    assert b"{SENT_BODY}" in raw, (box, raw)
    assert b"From: " in raw and b"postmaster@home.arpa" in raw, (box, raw)
print("ok")
"#,
        port = daemon.port("imaps")
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script, &password]);
    let out = run_bounded(cmd, b"", RUN_TIMEOUT);
    assert!(
        out.status.success(),
        "the message mutt sent is not in INBOX and Sent: {}{}\n--- daemon log\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );

    // mutt again: the stored certificate is trusted, no prompt; both messages there.
    {
        let mutt = Tmux::start(&socket, &env, "mutt");
        let screen = mutt.wait_for(
            "the INBOX, without a certificate prompt",
            &["=INBOX [Msgs:2", SENT_SUBJECT],
            &daemon,
        );
        assert!(!screen.contains(CERT_PROMPT), "{screen}");
        mutt.key("q");
        mutt.wait_gone();
    }

    // `letterbox status`: every service on its port, the daemon up.
    let status = daemon.cli(&["status"]);
    assert!(status.starts_with("daemon: running"), "{status}");
    for (service, port) in SERVICES.iter().zip(daemon.ports) {
        assert!(
            status.lines().any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(*service) && w.next() == Some(&format!("127.0.0.1:{port}"))
            }),
            "status does not list {service} on {port}:\n{status}"
        );
    }
    assert!(status.contains("service: up"), "{status}");
    assert!(status.contains("unseen in INBOXes: "), "{status}");
}
