//! `letterbox import` and `letterbox export` end to end (issue 15 parts 1, 2 and 5): a
//! Google-Takeout-style mbox generated here (labels, multipart, 8-bit and encoded
//! headers, `From ` lines in bodies, CRLF and LF files) is imported while the daemon
//! runs and checked with Python's imaplib (mailboxes, counts, flags, keywords, one blob
//! per multi-label message); exported as mbox, which real mutt opens; re-imported into
//! other accounts from the mbox export and from a Maildir export, and compared message by
//! message. A kill -9 of the importer and then of the daemon in the middle of a big
//! import, then a re-run: nothing twice, nothing missing. A truncated mbox, an unreadable
//! Maildir file and a quota refusal each give one line naming the file and the place.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, run_bounded, wait_until};

const PW: &str = "import-password-1";
const ALICE: &str = "alice@home.arpa";
const BOB: &str = "bob@home.arpa";
const CAROL: &str = "carol@home.arpa";

/// One generated message and what the import must make of it.
struct Gen {
    labels: &'static str,
    mailboxes: Vec<&'static str>,
    seen: bool,
    flagged: bool,
    important: bool,
}

fn takeout_message(i: usize, labels: &str, nl: &str) -> String {
    let body = match i % 4 {
        0 => format!(
            "Content-Type: text/plain; charset=utf-8\n\nHello {i}.\nFrom my desk, a line that starts with From.\n>From the quoted line\n>>From a twice quoted line\n\nFrom here on, a line with From in front but no date.\n"
        ),
        1 => format!(
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus Köln {i}\n--b{i}\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==\n--b{i}--\n"
        ),
        2 => format!("Content-Type: text/plain\n\nbroken MIME follows {i}\n--nope\n"),
        _ => format!("Content-Type: text/plain\n\nplain {i}\n"),
    };
    let subject = match i % 3 {
        0 => format!("=?UTF-8?B?w4ljb2xlIHtpfQ==?= {i}"),
        1 => format!("Café rendezvous {i}"),
        _ => format!("Plain subject {i}"),
    };
    let text = format!(
        "X-GM-THRID: {}\nX-Gmail-Labels: {labels}\nMessage-ID: <m{i}@takeout.test>\nDate: Mon, 1 Jan 2024 10:{:02}:00 +0000\nFrom: Ann Example <ann@example.com>\nTo: alice@home.arpa\nSubject: {subject}\n{body}",
        1000 + i,
        i % 60
    );
    text.replace('\n', nl)
}

/// The mbox's `From ` line and the message, quoted as mboxrd, with `nl` line ends.
fn mbox_entry(i: usize, msg: &str, nl: &str) -> String {
    let quoted: Vec<String> = msg
        .split(nl)
        .map(|l| {
            let n = l.bytes().take_while(|&b| b == b'>').count();
            if l[n..].starts_with("From ") && !l.contains("no date") {
                format!(">{l}")
            } else {
                l.to_string()
            }
        })
        .collect();
    format!(
        "From 1{i:05}@xxx Mon Jan  1 10:{:02}:00 +0000 2024{nl}{}{nl}",
        i % 60,
        quoted.join(nl)
    )
}

fn generate_takeout(dir: &Path) -> (PathBuf, PathBuf, Vec<Gen>) {
    let kinds: [(&str, Vec<&str>, bool, bool, bool); 6] = [
        ("Inbox,Opened", vec!["INBOX"], true, false, false),
        ("Inbox,Unread,Important", vec!["INBOX"], false, false, true),
        ("Sent,Opened", vec!["Sent"], true, false, false),
        (
            "Inbox,Starred,Work/Projects,Family,Category Social",
            vec!["INBOX", "Work/Projects", "Family"],
            true,
            true,
            false,
        ),
        (
            "Archived,Opened,\"Trips, 2024\"",
            vec!["Archive", "Trips, 2024"],
            true,
            false,
            false,
        ),
        (
            "Opened,Category Promotions",
            vec!["Archive"],
            true,
            false,
            false,
        ),
    ];
    let mut gens = Vec::new();
    let mut lf = String::new();
    let mut crlf = String::new();
    for i in 0..36 {
        let (labels, boxes, seen, flagged, important) = kinds[i % kinds.len()].clone();
        // Half the messages in an LF file, half in a CRLF one.
        let (nl, out) = if i < 18 {
            ("\n", &mut lf)
        } else {
            ("\r\n", &mut crlf)
        };
        out.push_str(&mbox_entry(i, &takeout_message(i, labels, nl), nl));
        gens.push(Gen {
            labels,
            mailboxes: boxes,
            seen,
            flagged,
            important,
        });
    }
    let a = dir.join("takeout-lf.mbox");
    let b = dir.join("takeout-crlf.mbox");
    std::fs::write(&a, lf).unwrap();
    std::fs::write(&b, crlf).unwrap();
    (a, b, gens)
}

/// Runs the CLI, returning (success, stdout, stderr).
fn cli(s: &Server, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
    cmd.args(args).arg("--config").arg(&s.config);
    let out = run_bounded(cmd, b"", Duration::from_secs(300));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Python: every mailbox of an account as {name: sorted [(internaldate, flags, sha256)]}.
const DUMP: &str = r#"
import imaplib, hashlib, json, re
def dump(user):
    m = imaplib.IMAP4(H, PORT["imap"], timeout=TIMEOUT)
    m.login(user, PW)
    typ, boxes = m.list()
    out = {}
    for line in boxes:
        name = line.decode().rsplit(' "/" ', 1)[1].strip('"')
        typ, d = m.select('"%s"' % name, readonly=True)
        n = int(d[0])
        rows = []
        if n:
            typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            for part in data:
                if not isinstance(part, tuple):
                    continue
                meta = part[0].decode()
                flags = sorted(f for f in re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split() if f != "\\Recent")
                date = re.search(r'INTERNALDATE "([^"]+)"', meta).group(1)
                rows.append([date, flags, hashlib.sha256(part[1]).hexdigest()])
        out[name] = sorted(rows)
    m.logout()
    return out
"#;

fn dump(s: &Server, user: &str) -> serde_json::Value {
    let out = s.python(&format!(
        "PW = {PW:?}\n{DUMP}\nprint(json.dumps(dump({user:?})))"
    ));
    serde_json::from_str(out.trim()).unwrap()
}

/// The message count `letterbox user list` shows for `user`.
fn user_messages(s: &Server, user: &str) -> u64 {
    let (ok, text, err) = cli(s, &["user", "list"]);
    assert!(ok, "{err}");
    text.lines()
        .find(|l| l.starts_with(user))
        .and_then(|l| l.split('\t').nth(1))
        .and_then(|c| c.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn takeout_import_imap_export_mutt_and_round_trips() {
    let s = Server::start();
    for u in [ALICE, BOB, CAROL] {
        s.add_user(u, PW);
    }
    let (lf, crlf, gens) = generate_takeout(s.dir.path());

    // Import with the daemon running; an IMAP client watching INBOX sees mail arrive.
    let mut watcher = {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(format!(
            "import imaplib, sys\nm = imaplib.IMAP4('127.0.0.1', {}, timeout=60)\nm.login({ALICE:?}, {PW:?})\nm.select('INBOX')\nt = m._new_tag().decode()\nm.send((t + ' IDLE\\r\\n').encode())\nassert m.readline().startswith(b'+')\nprint('idling', flush=True)\nwhile True:\n    l = m.readline()\n    if b'EXISTS' in l and not l.startswith(b'* 0 '):\n        print(l.decode().strip()); break\n",
            s.port("imap")
        ));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    // Wait until the client idles (its first line), so the mail arrives during IDLE.
    let mut watcher_out = std::io::BufReader::new(watcher.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut watcher_out, &mut first).unwrap();
    assert_eq!(first.trim(), "idling");
    for f in [&lf, &crlf] {
        let (ok, out, err) = cli(&s, &["import", ALICE, "--mbox", f.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
        assert!(out.contains("imported 18 messages"), "{out}");
        assert!(err.is_empty(), "no progress bar off a terminal: {err:?}");
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut watcher_out, &mut rest).unwrap();
    let w = watcher.wait_with_output().unwrap();
    assert!(
        rest.contains("EXISTS"),
        "the IDLE client saw no mail arrive: {}",
        String::from_utf8_lossy(&w.stderr)
    );

    // Running it again adds nothing.
    let (ok, out, _) = cli(&s, &["import", ALICE, "--mbox", lf.to_str().unwrap()]);
    assert!(ok && out.contains("already imported"), "{out}");

    let a = dump(&s, ALICE);
    let mut want: std::collections::BTreeMap<&str, Vec<&Gen>> = Default::default();
    for g in &gens {
        for b in &g.mailboxes {
            want.entry(b).or_default().push(g);
        }
    }
    for (mb, list) in &want {
        let rows = a[*mb]
            .as_array()
            .unwrap_or_else(|| panic!("no mailbox {mb}: {a}"));
        assert_eq!(rows.len(), list.len(), "{mb}: {a}");
        let flagged = rows
            .iter()
            .filter(|r| r[1].as_array().unwrap().iter().any(|f| f == "\\Flagged"))
            .count();
        assert_eq!(flagged, list.iter().filter(|g| g.flagged).count(), "{mb}");
        let seen = rows
            .iter()
            .filter(|r| r[1].as_array().unwrap().iter().any(|f| f == "\\Seen"))
            .count();
        assert_eq!(seen, list.iter().filter(|g| g.seen).count(), "{mb}");
        let important = rows
            .iter()
            .filter(|r| r[1].as_array().unwrap().iter().any(|f| f == "$Important"))
            .count();
        assert_eq!(
            important,
            list.iter().filter(|g| g.important).count(),
            "{mb}"
        );
        assert!(
            rows.iter().all(|r| r[0].as_str().unwrap().contains("2024")),
            "{mb}"
        );
    }
    assert!(gens.iter().any(|g| g.labels.contains("Category")));

    // One blob per message although 6 of them are in three mailboxes.
    let st = s.status_json();
    let rows: usize = want.values().map(Vec::len).sum();
    assert_eq!(
        st["store"]["blobs"].as_u64(),
        Some(gens.len() as u64),
        "{st}"
    );
    assert_eq!(st["store"]["messages"].as_u64(), Some(rows as u64), "{st}");

    // The bodies came out un-quoted and in CRLF.
    let body = s.python(&format!(
        r#"
import imaplib
m = imaplib.IMAP4(H, PORT["imap"], timeout=TIMEOUT)
m.login({ALICE:?}, {PW:?})
m.select("INBOX")
typ, d = m.search(None, 'HEADER', 'Message-ID', '<m0@takeout.test>')
typ, data = m.fetch(d[0].split()[0], "(BODY.PEEK[])")
sys.stdout.write(data[0][1].decode())
"#
    ));
    // The file had these as `>From`, `>>From` and `>>>From` (mboxrd); the `From ` line
    // after an empty line but without a date stayed in the body.
    assert!(
        body.contains("\r\nFrom my desk, a line that starts with From.\r\n>From the quoted line\r\n>>From a twice quoted line\r\n\r\nFrom here on, a line with From in front but no date.\r\n"),
        "{body:?}"
    );
    assert!(
        !body.contains("X-Status") && !body.contains("\nStatus:"),
        "{body}"
    );

    // Export as mbox; mutt reads it.
    let out_mbox = s.dir.path().join("export-mbox");
    let (ok, out, err) = cli(&s, &["export", ALICE, "--mbox", out_mbox.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("exported {rows} messages")), "{out}");
    assert!(out_mbox.join("Work/Projects.mbox").is_file());
    assert!(out_mbox.join("Trips, 2024.mbox").is_file());
    mutt_reads(&s, &out_mbox.join("INBOX.mbox"), want["INBOX"].len());

    // Re-import the mbox export into Bob, and a Maildir export into Carol: identical.
    let (ok, out, err) = cli(&s, &["import", BOB, "--mbox", out_mbox.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let out_md = s.dir.path().join("export-maildir");
    let (ok, out, err) = cli(
        &s,
        &["export", ALICE, "--maildir", out_md.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    assert!(out_md.join(".Work.Projects/cur").is_dir());
    let (ok, out, err) = cli(
        &s,
        &["import", CAROL, "--maildir", out_md.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    let b = dump(&s, BOB);
    let c = dump(&s, CAROL);
    // Bob and Carol also have the standard mailboxes, empty like Alice's.
    assert_eq!(a, b, "mbox round trip");
    assert_eq!(a, c, "Maildir round trip");
    let st = s.status_json();
    assert_eq!(
        st["store"]["blobs"].as_u64(),
        Some(gens.len() as u64),
        "{st}"
    );
}

/// Opens `file` in mutt (in tmux) and waits for its index to show `count` messages.
fn mutt_reads(s: &Server, file: &Path, count: usize) {
    if Command::new("mutt").arg("-v").output().is_err() {
        panic!("mutt is not installed (apt-get install mutt)");
    }
    let home = s.dir.path().join("mutt-home");
    std::fs::create_dir_all(&home).unwrap();
    let rc = home.join("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set folder={}\nset spoolfile={}\nset mbox_type=mbox\nset sort=date\nset status_format=\"MSGS=%m UNREAD=%u FLAGGED=%F\"\nset index_format=\"%4C %Z %s\"\nset mark_old=no\n",
            home.display(),
            file.display()
        ),
    )
    .unwrap();
    let socket = s.dir.path().join("tmux.sock");
    let cmd = format!(
        "mutt -n -F {} -R -f {}",
        rc.display(),
        shell_quote(&file.display().to_string())
    );
    let t = common::tmux::Tmux::start(&socket, &[("HOME", &home)], &cmd);
    let screen = t.wait_for(
        "the exported mailbox",
        &[&format!("MSGS={count}"), "Café rendezvous"],
        |_, _| {},
        String::new,
    );
    // Flagged and unread messages come through Status:/X-Status:.
    assert!(screen.contains("FLAGGED=6"), "{screen}");
    assert!(screen.contains("UNREAD=6"), "{screen}");
    t.key("q");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A big generated mbox (plain messages, unique Message-IDs).
fn big_mbox(path: &Path, n: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let pad = "x".repeat(1500);
    for i in 0..n {
        write!(
            f,
            "From s@example.com Tue Jan  2 03:04:05 2024\nMessage-ID: <big{i}@gen.test>\nFrom: s@example.com\nSubject: big {i}\n\n{pad}\nline {i}\n\n"
        )
        .unwrap();
    }
}

#[test]
fn kill9_of_importer_and_daemon_mid_import_then_resume() {
    let mut s = Server::start();
    s.add_user(ALICE, PW);
    // image/cross.sh asks for fewer under qemu-user.
    let n: usize = std::env::var("LB_IMPORT_KILL_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let file = s.dir.path().join("big.mbox");
    big_mbox(&file, n);
    let spawn = |s: &Server| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
        cmd.args(["import", ALICE, "--mbox", file.to_str().unwrap()])
            .arg("--config")
            .arg(&s.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
    };

    // 1. Kill the importer.
    let mut child = spawn(&s);
    wait_until("some messages imported", Duration::from_secs(120), || {
        user_messages(&s, ALICE) > 0
    });
    child.kill().unwrap();
    let _ = child.wait();
    let first = user_messages(&s, ALICE);
    assert!(first < n as u64, "the import finished before the kill");

    // 2. Kill the daemon in the middle of the resumed import.
    let mut child = spawn(&s);
    wait_until("more messages imported", Duration::from_secs(120), || {
        user_messages(&s, ALICE) > first
    });
    s.kill9_and_restart();
    let _ = child.wait();
    let second = user_messages(&s, ALICE);
    assert!(second < n as u64, "the import finished before the kill");

    // 3. Finish it.
    let (ok, out, err) = cli(&s, &["import", ALICE, "--mbox", file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(user_messages(&s, ALICE), n as u64);
    let dup = s.python(&format!(
        r#"
import imaplib, re
m = imaplib.IMAP4(H, PORT["imap"], timeout=60)
m.login({ALICE:?}, {PW:?})
m.select("INBOX", readonly=True)
typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
ids = [re.search(rb"<big(\d+)@", p[1]).group(1) for p in data if isinstance(p, tuple)]
check(len(ids) == {n}, len(ids))
check(len(set(ids)) == {n}, "duplicates", len(ids) - len(set(ids)))
print("ok")
"#
    ));
    assert_eq!(dup.trim(), "ok");
}

#[test]
fn bad_input_one_line_errors_and_quota() {
    let s = Server::start();
    s.add_user(ALICE, PW);
    s.add_user(BOB, PW);

    // A truncated mbox: the whole messages go in, the error names the file and the byte.
    let file = s.dir.path().join("cut.mbox");
    let mut data = String::new();
    for i in 0..3 {
        data.push_str(&format!(
            "From a@b Mon Jan  1 12:00:00 2024\nSubject: m{i}\n\nbody {i}\n\n"
        ));
    }
    let cut_at = data.len();
    data.push_str("From a@b Mon Jan  1 12:00:00 2024\nSubject: cut\n\nthe file ends in the mid");
    std::fs::write(&file, &data).unwrap();
    let (ok, out, err) = cli(&s, &["import", ALICE, "--mbox", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(
        err.contains(&format!("byte {cut_at}")) && err.contains("truncated"),
        "{err}"
    );
    assert!(err.contains("3 messages imported"), "{err}");
    assert_eq!(user_messages(&s, ALICE), 3);

    // An unreadable Maildir file (a directory where a message should be).
    let md = s.dir.path().join("md");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    std::fs::write(md.join("cur/1.a.host:2,S"), "Subject: ok\n\nfine\n").unwrap();
    std::fs::create_dir_all(md.join("cur/2.b.host:2,S")).unwrap();
    let (ok, out, err) = cli(&s, &["import", BOB, "--maildir", md.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cur/2.b.host:2,S") && err.contains("message 2"),
        "{err}"
    );
    assert_eq!(user_messages(&s, BOB), 1);
    // Fixed, the re-run takes the rest without doubling the first.
    std::fs::remove_dir(md.join("cur/2.b.host:2,S")).unwrap();
    std::fs::write(md.join("cur/2.b.host:2,S"), "Subject: two\n\nfine\n").unwrap();
    let (ok, out, err) = cli(&s, &["import", BOB, "--maildir", md.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(user_messages(&s, BOB), 2);

    // Quota: 5 messages at most; the import stops with how far it got.
    let out = s.cli(&["user", "quota", BOB, "--messages", "5"], "");
    assert!(out.contains("messages 5"), "{out}");
    let big = s.dir.path().join("ten.mbox");
    big_mbox(&big, 10);
    let ten_len = std::fs::metadata(&big).unwrap().len() as usize;
    let (ok, out, err) = cli(&s, &["import", BOB, "--mbox", big.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("quota") && err.contains(big.to_str().unwrap()),
        "{err}"
    );
    // What fits went in, one message a commit, and the line says where it stopped.
    assert!(err.contains("3 messages imported"), "{err}");
    assert!(err.contains(&format!("byte {}", 3 * ten_len / 10)), "{err}");
    assert_eq!(user_messages(&s, BOB), 5);
}
