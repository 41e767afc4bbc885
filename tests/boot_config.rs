//! The configuration file as the image uses it (issue 9, SPEC §7), against the real daemon:
//!
//! - `[[user]]` accounts are created at start, their plaintext passwords erased from the
//!   file (through a symlink, as `/etc/letterbox/letterbox.toml` points at the boot
//!   partition), aliases added, `postmaster@` led to the first user; a later start keeps
//!   them, and a password written into the file again is applied again;
//! - `serve --survive-bad-config`: a file with a mistake does not stop the box; the error
//!   is written to `letterbox-error.txt` beside the real file, fault 1 shows it, and a
//!   corrected file clears both;
//! - `config-get` prints single settings for the image's shell scripts.
//!
//! Every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Server, free_ports, run_bounded, wait_until};

const PW_A: &str = "alice's first passphrase";
const PW_B: &str = "alice's second passphrase";

/// Python: logs in over IMAPS as `user`/`pw`; prints OK or NO.
fn py_login(user: &str, pw: &str) -> String {
    format!(
        r#"
import imaplib
m = imaplib.IMAP4_SSL(H, PORT['imaps'], ssl_context=CTX, timeout=TIMEOUT)
try:
    m.login({user:?}, {pw:?})
    print("OK")
    m.logout()
except imaplib.IMAP4.error:
    print("NO")
"#
    )
}

#[test]
fn users_from_the_file_are_created_and_their_passwords_erased() {
    let users = format!(
        "[[user]]\naddress = \"alice@home.arpa\"\npassword = \"{PW_A}\"\naliases = [\"info@home.arpa\"]\n\n\
         [[user]]\naddress = \"bob@home.arpa\"\n  password = \"bob's passphrase\"  # set at first boot\n\n"
    );
    let mut s = Server::start_with(&users);
    // The file now holds no plaintext, and still parses to the same users.
    let text = std::fs::read_to_string(&s.config).unwrap();
    assert!(
        !text.contains(PW_A) && !text.contains("bob's passphrase"),
        "{text}"
    );
    assert_eq!(text.matches("erased from this file").count(), 2, "{text}");
    assert!(
        s.log().contains("plaintext passwords erased"),
        "{}",
        s.log()
    );
    assert!(!s.log().contains(PW_A), "the log shows a password");
    assert_eq!(s.python(&py_login("alice@home.arpa", PW_A)).trim(), "OK");
    assert_eq!(
        s.python(&py_login("bob@home.arpa", "bob's passphrase"))
            .trim(),
        "OK"
    );
    // No random postmaster account: postmaster@ leads to the first user, with the alias.
    let users = s.cli(&["user", "list"], "");
    assert!(!users.contains("postmaster"), "{users}");
    let aliases = s.cli(&["alias", "list"], "");
    assert!(
        aliases.contains("postmaster@home.arpa\t-> alice@home.arpa"),
        "{aliases}"
    );
    assert!(
        aliases.contains("info@home.arpa\t-> alice@home.arpa"),
        "{aliases}"
    );

    // A restart with the erased file changes nothing.
    s.restart();
    assert_eq!(s.python(&py_login("alice@home.arpa", PW_A)).trim(), "OK");
    // A password written into the file again is applied at the next start (a reset).
    let text = std::fs::read_to_string(&s.config).unwrap();
    let text = text.replacen(
        "address = \"alice@home.arpa\"\n",
        &format!("address = \"alice@home.arpa\"\npassword = \"{PW_B}\"\n"),
        1,
    );
    std::fs::write(&s.config, text).unwrap();
    s.restart();
    assert_eq!(s.python(&py_login("alice@home.arpa", PW_A)).trim(), "NO");
    assert_eq!(s.python(&py_login("alice@home.arpa", PW_B)).trim(), "OK");
    assert!(!std::fs::read_to_string(&s.config).unwrap().contains(PW_B));
}

/// Starts `serve --config <config> --survive-bad-config --fallback-config <fallback>`,
/// waits (bounded) for "letterbox ready"; returns the child and its log so far.
fn serve_surviving(
    config: &std::path::Path,
    fallback: &std::path::Path,
) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_letterbox"))
        .args(["serve", "--survive-bad-config", "--config"])
        .arg(config)
        .arg("--fallback-config")
        .arg(fallback)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.contains("letterbox ready") {
        assert!(std::time::Instant::now() < deadline, "not ready: {log}");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited with {status}: {log}");
        }
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push_str(&line);
            log.push('\n');
        }
    }
    (child, log)
}

fn cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
    cmd.args(args).arg("--config").arg(config);
    run_bounded(cmd, b"", Duration::from_secs(30))
}

fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        assert!(std::time::Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_file_does_not_stop_the_box_it_shows_fault_one_and_writes_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    let real = boot.join("letterbox.toml");
    let link = etc.join("letterbox.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    std::fs::write(&real, "[server]\ndomains = 42\n").unwrap();
    // The fallback stands in for the appliance defaults, on loopback ports.
    let mut listen = String::new();
    for (s, p) in common::SERVICES.iter().zip(free_ports()) {
        listen.push_str(&format!("{s} = \"127.0.0.1:{p}\"\n"));
    }
    let data = dir.path().join("data");
    let fallback = dir.path().join("fallback.toml");
    std::fs::write(
        &fallback,
        format!(
            "[server]\ndata_dir = \"{}\"\n\n[listen]\n{listen}",
            data.display()
        ),
    )
    .unwrap();
    // Without the flag the start is refused, naming the key and line.
    let out = cli(&link, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2: server.domains"), "{err}");

    let (mut child, log) = serve_surviving(&link, &fallback);
    assert!(log.contains("server.domains"), "{log}");
    let note = std::fs::read_to_string(boot.join("letterbox-error.txt")).unwrap();
    assert!(note.contains("letterbox.toml:2: server.domains"), "{note}");
    assert!(!etc.join("letterbox-error.txt").exists());
    let out = cli(&fallback, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        st["leds"]["red"]["pattern"],
        serde_json::json!({"code": 1}),
        "{st}"
    );
    let out = cli(&fallback, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("configuration error, running with the defaults"),
        "{text}"
    );
    stop(&mut child);

    // Corrected: the note goes, and so does the fault.
    std::fs::write(
        &real,
        format!(
            "[server]\ndata_dir = \"{}\"\n\n[listen]\n{listen}",
            data.display()
        ),
    )
    .unwrap();
    let (mut child, _) = serve_surviving(&link, &fallback);
    assert!(!boot.join("letterbox-error.txt").exists());
    wait_until("fault 1 cleared", Duration::from_secs(10), || {
        let out = cli(&link, &["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .is_ok_and(|st| st["leds"]["red"]["pattern"] == serde_json::json!("off"))
    });
    stop(&mut child);
}

#[test]
fn config_get_prints_settings_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("letterbox.toml");
    std::fs::write(
        &f,
        "[server]\ndomains = [\"example.org\", \"example.net\"]\n[ssh]\nenabled = true\n\
         authorized_keys = [\"ssh-ed25519 AAAAC3Nza one@a\", \"ssh-rsa AAAAB3Nza two@b\"]\n",
    )
    .unwrap();
    let get = |key: &str| {
        let out = cli(&f, &["config-get", key]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(get("ssh.enabled"), (Some(0), "true\n".into()));
    assert_eq!(
        get("ssh.authorized_keys"),
        (
            Some(0),
            "ssh-ed25519 AAAAC3Nza one@a\nssh-rsa AAAAB3Nza two@b\n".into()
        )
    );
    assert_eq!(
        get("server.domains"),
        (Some(0), "example.org\nexample.net\n".into())
    );
    assert_eq!(get("no.such").0, Some(2));
    std::fs::write(&f, "[ssh]\nenabled = \"maybe\"\n").unwrap();
    assert_eq!(get("ssh.enabled").0, Some(2));
    std::fs::write(&f, "").unwrap();
    assert_eq!(get("ssh.enabled"), (Some(0), "false\n".into()));
}
