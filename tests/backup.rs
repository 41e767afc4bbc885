//! `letterbox backup`, `backup --verify`, `restore` and scheduled backups, driving the real
//! binary: a backup taken while SMTP mail keeps arriving restores onto a fresh data
//! directory with every message acknowledged before the backup began, the same
//! UIDVALIDITY, UIDs and flags, and the old passwords; damaged files, wrong passphrases
//! and occupied stores are refused with one line; the schedule writes and prunes files
//! and drives fault 6.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{RUN_TIMEOUT, Server, run_bounded, wait_until};

const PASSWORD: &str = "correct horse battery";

/// Runs the CLI with `--config config`; returns the whole output.
fn cli_out(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
    cmd.args(args).arg("--config").arg(config);
    run_bounded(cmd, b"", RUN_TIMEOUT)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a failure with exactly one line on stderr containing `want`.
fn assert_one_line_error(o: &Output, want: &str) -> String {
    let err = text(&o.stderr);
    assert!(
        !o.status.success(),
        "expected failure, got: {err}{}",
        text(&o.stdout)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(
        lines[0].to_lowercase().contains(&want.to_lowercase()),
        "{want:?} not in {err}"
    );
    err
}

/// `uid -> (subject, flags)` of alice's INBOX and its UIDVALIDITY, over IMAP.
fn inbox(server: &Server, password: &str) -> (u32, BTreeMap<u32, (String, String)>) {
    let out = server.python(&format!(
        r#"
import imaplib, re
c = imaplib.IMAP4("127.0.0.1", PORT["imap"], timeout=TIMEOUT)
c.login("alice@home.arpa", {password:?})
typ, d = c.select("INBOX")
check(typ == "OK", d)
uv = c.untagged_responses.get("UIDVALIDITY", [b"0"])[0].decode()
print("UIDVALIDITY", uv)
typ, d = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
for item in d:
    if isinstance(item, tuple):
        meta = item[0].decode()
        uid = re.search(r"UID (\d+)", meta).group(1)
        flags = re.search(r"FLAGS \(([^)]*)\)", meta).group(1)
        subj = item[1].decode().strip().replace("Subject: ", "")
        print("MSG", uid, subj, "|", flags)
c.logout()
"#
    ));
    let mut uv = 0;
    let mut msgs = BTreeMap::new();
    for l in out.lines() {
        if let Some(v) = l.strip_prefix("UIDVALIDITY ") {
            uv = v.trim().parse().unwrap();
        } else if let Some(m) = l.strip_prefix("MSG ") {
            let (uid, rest) = m.split_once(' ').unwrap();
            let (subj, flags) = rest.split_once(" | ").unwrap_or((rest, ""));
            let mut f: Vec<&str> = flags.split_whitespace().collect();
            f.retain(|x| *x != "\\Recent");
            f.sort();
            msgs.insert(uid.parse().unwrap(), (subj.trim().to_string(), f.join(" ")));
        }
    }
    (uv, msgs)
}

fn write_passphrase(dir: &Path, name: &str, pass: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{pass}\n")).unwrap();
    p
}

/// A config file for a data directory without a daemon (restore's target).
fn bare_config(dir: &Path, data: &Path) -> PathBuf {
    let p = dir.join("restore.toml");
    std::fs::write(&p, format!("[server]\ndata_dir = \"{}\"\n", data.display())).unwrap();
    p
}

#[test]
fn backup_during_smtp_ingest_restores_acknowledged_mail_uids_and_passwords() {
    let server = Server::start();
    server.add_user("alice@home.arpa", PASSWORD);
    // Two messages with flags and a keyword before anything else.
    server.python(
        r#"
import imaplib
s = smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT)
for i in range(2):
    s.sendmail("x@example.org", ["alice@home.arpa"], "Subject: early %d\r\n\r\nbody\r\n" % i)
s.quit()
c = imaplib.IMAP4(H, PORT["imap"], timeout=TIMEOUT)
c.login("alice@home.arpa", "correct horse battery")
c.select("INBOX")
typ, d = c.uid("STORE", "1", "+FLAGS", r"(\Flagged \Seen $Important)")
check(typ == "OK", d)
c.logout()
"#,
    );
    // Background ingest: up to 400 messages or 90 s, one line per 250 reply.
    let acks = server.dir.path().join("acks.txt");
    let script = server.dir.path().join("ingest.py");
    std::fs::write(
        &script,
        format!(
            r#"
import smtplib, time, sys
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
end = time.time() + 90
with open({acks:?}, "a") as f:
    for i in range(400):
        if time.time() > end:
            break
        s.sendmail("x@example.org", ["alice@home.arpa"], "Subject: ingest %d\r\n\r\n%s\r\n" % (i, "line of text\r\n" * 50))
        f.write("ack %d\n" % i)
        f.flush()
s.quit()
"#,
            port = server.port("smtp"),
            acks = acks.display().to_string()
        ),
    )
    .unwrap();
    let mut ingest = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let count_acks = || {
        std::fs::read_to_string(&acks)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_until(
        "20 acknowledged deliveries",
        Duration::from_secs(60),
        || count_acks() >= 20,
    );
    // Every message acknowledged before the backup begins must be in it.
    let acked_before = count_acks();
    let pass = write_passphrase(server.dir.path(), "pass", PASSWORD);
    let file = server.dir.path().join("during.backup");
    let out = server.cli(
        &[
            "backup",
            file.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.contains("encrypted"), "{out}");
    // Let the ingest finish (bounded), so the backup demonstrably ran beside it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while ingest.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = ingest.kill();
    let _ = ingest.wait();
    let acked_after = count_acks();
    let (uv_a, msgs_a) = inbox(&server, PASSWORD);
    let verify = server.cli(
        &[
            "backup",
            "--verify",
            file.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        "",
    );
    assert!(verify.contains(": OK: 2 accounts"), "{verify}");

    // Restore onto a fresh box: an empty data directory, no daemon.
    let fresh = tempfile::tempdir().unwrap();
    let data_b = fresh.path().join("data");
    let cfg_b = bare_config(fresh.path(), &data_b);
    let o = cli_out(
        &cfg_b,
        &[
            "restore",
            file.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(data_b.join("tls/key.pem").exists());
    assert!(
        fresh.path().join("restore.toml.restored").exists(),
        "the backup's config was set aside beside the existing one"
    );
    drop(server);
    let restored = Server::start_with_data_dir("", &data_b);
    let (uv_b, msgs_b) = inbox(&restored, PASSWORD);
    assert_eq!(uv_a, uv_b, "UIDVALIDITY kept");
    // Every message of the restored INBOX has the UID, subject and flags it had.
    for (uid, m) in &msgs_b {
        assert_eq!(msgs_a.get(uid), Some(m), "uid {uid}");
    }
    let subjects: std::collections::HashSet<&str> =
        msgs_b.values().map(|(s, _)| s.as_str()).collect();
    for i in 0..acked_before {
        assert!(
            subjects.contains(format!("ingest {i}").as_str()),
            "ingest {i} acknowledged before the backup began is missing ({} restored, {acked_before} acked before, {acked_after} after)",
            msgs_b.len()
        );
    }
    assert!(subjects.contains("early 0") && subjects.contains("early 1"));
    let early0 = msgs_b.values().find(|(s, _)| s == "early 0").unwrap();
    assert_eq!(early0.1, "$Important \\Flagged \\Seen");
    eprintln!(
        "restored {} messages; {acked_before} acked before the backup, {acked_after} in all",
        msgs_b.len()
    );
}

#[test]
fn damaged_files_wrong_passphrases_and_occupied_stores_are_refused() {
    let mut server = Server::start();
    server.add_user("alice@home.arpa", PASSWORD);
    server.python(
        r#"
s = smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT)
for i in range(5):
    s.sendmail("x@example.org", ["alice@home.arpa"], "Subject: m %d\r\n\r\n%s\r\n" % (i, "word " * 2000))
s.quit()
"#,
    );
    let d = server.dir.path();
    let pass = write_passphrase(d, "pass", PASSWORD);
    let wrong = write_passphrase(d, "wrong", "not the passphrase");
    let enc = d.join("enc.backup");
    let plain = d.join("plain.backup");
    server.cli(
        &[
            "backup",
            enc.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        "",
    );
    // Without a passphrase: a loud warning, and the file works.
    let o = cli_out(&server.config, &["backup", plain.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("NOT encrypted"),
        "{}",
        text(&o.stderr)
    );
    let plain_bytes = std::fs::read(&plain).unwrap();
    assert!(
        !plain_bytes.windows(8).any(|w| w == b"LBBACKUP"),
        "compressed, so the magic is not in clear"
    );
    let enc_bytes = std::fs::read(&enc).unwrap();
    assert!(enc_bytes.starts_with(b"age-encryption.org/v1"));
    assert!(!enc_bytes.windows(6).any(|w| w == b"word w"), "encrypted");
    let ok = cli_out(
        &server.config,
        &["backup", "--verify", plain.to_str().unwrap()],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));

    // Wrong passphrase, missing passphrase.
    let o = cli_out(
        &server.config,
        &[
            "backup",
            "--verify",
            enc.to_str().unwrap(),
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert_one_line_error(&o, "wrong passphrase");
    let o = cli_out(
        &server.config,
        &["backup", "--verify", enc.to_str().unwrap()],
    );
    assert_one_line_error(&o, "encrypted");

    // One flipped byte, in the middle and near the end, of both files: verify and
    // restore fail with one line.
    let fresh = tempfile::tempdir().unwrap();
    let data_b = fresh.path().join("data");
    let cfg_b = bare_config(fresh.path(), &data_b);
    for (name, bytes) in [("enc", &enc_bytes), ("plain", &plain_bytes)] {
        for at in [bytes.len() / 2, bytes.len() - 20] {
            let mut b = bytes.clone();
            b[at] ^= 0x01;
            let bad = d.join(format!("{name}-{at}.backup"));
            std::fs::write(&bad, &b).unwrap();
            let args_v = [
                "backup",
                "--verify",
                bad.to_str().unwrap(),
                "--passphrase-file",
                pass.to_str().unwrap(),
            ];
            let e = assert_one_line_error(&cli_out(&server.config, &args_v), "damaged");
            assert!(e.contains(bad.to_str().unwrap()), "names the file: {e}");
            let args_r = [
                "restore",
                bad.to_str().unwrap(),
                "--passphrase-file",
                pass.to_str().unwrap(),
            ];
            assert_one_line_error(&cli_out(&cfg_b, &args_r), "damaged");
            assert!(
                !data_b.join("letterbox.redb").exists(),
                "a failed restore leaves no store"
            );
        }
    }
    // A truncated file.
    let cut = d.join("cut.backup");
    std::fs::write(&cut, &plain_bytes[..plain_bytes.len() / 3]).unwrap();
    let o = cli_out(
        &server.config,
        &["backup", "--verify", cut.to_str().unwrap()],
    );
    assert!(!o.status.success() && text(&o.stderr).lines().count() == 1);

    // Restore refuses while the daemon runs, and over a store with mail without --force.
    let args = [
        "restore",
        enc.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ];
    assert_one_line_error(&cli_out(&server.config, &args), "daemon is running");
    server.terminate();
    assert_one_line_error(&cli_out(&server.config, &args), "--force");
    let mut forced = args.to_vec();
    forced.push("--force");
    let o = cli_out(&server.config, &forced);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("before-restore"),
        "{}",
        text(&o.stdout)
    );
    server.restart();
    let (_, msgs) = inbox(&server, PASSWORD);
    assert_eq!(msgs.len(), 5);
}

#[test]
fn the_schedule_writes_keeps_n_and_raises_fault_6() {
    let extra_dir = tempfile::tempdir().unwrap();
    let dir = extra_dir.path().join("stick");
    std::fs::create_dir(&dir).unwrap();
    let pass = write_passphrase(extra_dir.path(), "pass", PASSWORD);
    let server = Server::start_with(&format!(
        "[backup]\ndir = \"{}\"\nschedule = \"03:30\"\nkeep = 2\npassphrase_file = \"{}\"\n",
        dir.display(),
        pass.display()
    ));
    server.add_user("alice@home.arpa", PASSWORD);
    let st = server.cli(&["status"], "");
    assert!(st.contains("backup schedule: daily at 03:30"), "{st}");
    for _ in 0..4 {
        let out = server.cli(&["debug-backup-now"], "");
        assert!(out.contains("wrote "), "{out}");
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // full_every is 7 by default: one full backup, then incrementals on it. keep = 2
    // keeps the newest two (both incremental) and the full one they need.
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("letterbox-") && f.ends_with(".backup"))
    );
    let full: Vec<&String> = files.iter().filter(|f| !f.contains(".on-")).collect();
    assert_eq!(full.len(), 1, "{files:?}");
    let base_stamp = &full[0]["letterbox-".len()..full[0].len() - ".backup".len()];
    assert!(
        files
            .iter()
            .filter(|f| f.contains(".on-"))
            .all(|f| f.contains(&format!(".on-{base_stamp}."))),
        "{files:?}"
    );
    let newest = dir.join(&files[2]);
    let v = server.cli(
        &[
            "backup",
            "--verify",
            newest.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        v.contains("OK: 2 accounts") && v.contains(" encrypted"),
        "{v}"
    );
    assert!(v.contains("incremental on letterbox-"), "{v}");
    let st = server.status_json();
    assert!(st["faults"].as_array().unwrap().is_empty(), "{st}");
    assert!(st["daemon"]["backup"]["last"]["error"].is_null(), "{st}");

    // The stick is gone: the backup fails, status says so, fault 6 shows.
    std::fs::remove_dir_all(&dir).unwrap();
    let o = cli_out(&server.config, &["debug-backup-now"]);
    assert!(!o.status.success());
    let st = server.status_json();
    assert_eq!(st["faults"][0]["code"], serde_json::json!(6), "{st}");
    let text_status = server.cli(&["status"], "");
    assert!(text_status.contains("FAILED"), "{text_status}");
    // It comes back: the next good backup clears the fault.
    std::fs::create_dir(&dir).unwrap();
    server.cli(&["debug-backup-now"], "");
    let st = server.status_json();
    assert!(st["faults"].as_array().unwrap().is_empty(), "{st}");
    wait_until("one file", Duration::from_secs(5), || {
        std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) == 1
    });
}

/// Sends `n` messages `Subject: {prefix} {i}` with about 30 KB of incompressible body
/// each, so that backup sizes mean something.
fn send_random(server: &Server, prefix: &str, n: usize) {
    server.python(&format!(
        r#"
import base64, os
s = smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT)
for i in range({n}):
    body = base64.encodebytes(os.urandom(22000)).decode().replace("\n", "\r\n")
    s.sendmail("x@example.org", ["alice@home.arpa"], "Subject: {prefix} %d\r\n\r\n%s" % (i, body))
s.quit()
"#
    ));
}

#[test]
fn incremental_backups_restore_everything_and_need_their_exact_base() {
    let server = Server::start();
    server.add_user("alice@home.arpa", PASSWORD);
    send_random(&server, "old", 20);
    let d = server.dir.path();
    let pass = write_passphrase(d, "pass", PASSWORD);
    let pf = pass.to_str().unwrap();
    let stick = d.join("stick");
    std::fs::create_dir(&stick).unwrap();
    let full = stick.join("full.backup");
    let out = server.cli(
        &["backup", full.to_str().unwrap(), "--passphrase-file", pf],
        "",
    );
    assert!(
        out.contains("wrote ") && !out.contains("incremental"),
        "{out}"
    );
    // After the full backup: new mail, a flag, and one old message expunged.
    send_random(&server, "new", 5);
    server.python(
        r#"
import imaplib
c = imaplib.IMAP4(H, PORT["imap"], timeout=TIMEOUT)
c.login("alice@home.arpa", "correct horse battery")
c.select("INBOX")
typ, d = c.uid("STORE", "1", "+FLAGS", r"(\Flagged $Important)")
check(typ == "OK", d)
typ, d = c.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
check(typ == "OK", d)
typ, d = c.expunge()
check(typ == "OK", d)
c.logout()
"#,
    );
    let inc = stick.join("inc.backup");
    let out = server.cli(
        &[
            "backup",
            inc.to_str().unwrap(),
            "--incremental",
            full.to_str().unwrap(),
            "--passphrase-file",
            pf,
        ],
        "",
    );
    // 19 of the 20 old bodies are still used and left to the base.
    assert!(
        out.contains("incremental on full.backup: 19 bodies left to it"),
        "{out}"
    );
    let (full_len, inc_len) = (
        std::fs::metadata(&full).unwrap().len(),
        std::fs::metadata(&inc).unwrap().len(),
    );
    assert!(
        inc_len * 2 < full_len,
        "the incremental ({inc_len} bytes) holds only the 5 new bodies, the full one {full_len}"
    );
    let (uv_a, msgs_a) = inbox(&server, PASSWORD);
    assert_eq!(msgs_a.len(), 24);
    assert!(!msgs_a.contains_key(&2));

    let v = server.cli(
        &[
            "backup",
            "--verify",
            inc.to_str().unwrap(),
            "--passphrase-file",
            pf,
        ],
        "",
    );
    assert!(
        v.contains("OK: 2 accounts, 24 messages")
            && v.contains("incremental on full.backup (19 bodies from it"),
        "{v}"
    );

    // An incremental on an incremental, or on a base elsewhere, is refused.
    let o = cli_out(
        &server.config,
        &[
            "backup",
            stick.join("x.backup").to_str().unwrap(),
            "--incremental",
            inc.to_str().unwrap(),
            "--passphrase-file",
            pf,
        ],
    );
    assert_one_line_error(&o, "itself incremental");
    let o = cli_out(
        &server.config,
        &[
            "backup",
            d.join("y.backup").to_str().unwrap(),
            "--incremental",
            full.to_str().unwrap(),
            "--passphrase-file",
            pf,
        ],
    );
    assert_one_line_error(&o, "same directory");

    // Restore onto a fresh box: every message with its UID, flags and UIDVALIDITY.
    let fresh = tempfile::tempdir().unwrap();
    let data_b = fresh.path().join("data");
    let cfg_b = bare_config(fresh.path(), &data_b);
    let o = cli_out(
        &cfg_b,
        &["restore", inc.to_str().unwrap(), "--passphrase-file", pf],
    );
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));

    // Without its base, with a damaged base, or with another (valid) full backup under
    // the base's name: verify and restore fail with one line and leave no store.
    let other = stick.join("other.backup");
    server.cli(
        &["backup", other.to_str().unwrap(), "--passphrase-file", pf],
        "",
    );
    let full_bytes = std::fs::read(&full).unwrap();
    let mut flipped = full_bytes.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    let cases: [(&str, Option<Vec<u8>>, &str); 3] = [
        ("missing", None, "missing"),
        ("flipped", Some(flipped), "changed or replaced"),
        (
            "other",
            Some(std::fs::read(&other).unwrap()),
            "changed or replaced",
        ),
    ];
    for (name, base_bytes, want) in cases {
        let dir = d.join(name);
        std::fs::create_dir(&dir).unwrap();
        let inc_copy = dir.join("inc.backup");
        std::fs::copy(&inc, &inc_copy).unwrap();
        if let Some(b) = base_bytes {
            std::fs::write(dir.join("full.backup"), b).unwrap();
        }
        let ic = inc_copy.to_str().unwrap();
        let e = assert_one_line_error(
            &cli_out(
                &server.config,
                &["backup", "--verify", ic, "--passphrase-file", pf],
            ),
            want,
        );
        assert!(e.contains("full.backup"), "names the base: {e}");
        let fresh = tempfile::tempdir().unwrap();
        let data_c = fresh.path().join("data");
        let cfg_c = bare_config(fresh.path(), &data_c);
        assert_one_line_error(
            &cli_out(&cfg_c, &["restore", ic, "--passphrase-file", pf]),
            want,
        );
        assert!(!data_c.join("letterbox.redb").exists(), "{name}: no store");
    }

    drop(server);
    let restored = Server::start_with_data_dir("", &data_b);
    let (uv_b, msgs_b) = inbox(&restored, PASSWORD);
    assert_eq!(uv_a, uv_b, "UIDVALIDITY kept");
    assert_eq!(msgs_a, msgs_b, "every UID, subject and flag kept");
    let flagged = &msgs_b[&1];
    assert_eq!(flagged.1, "$Important \\Flagged");
}
