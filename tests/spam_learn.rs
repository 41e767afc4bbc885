//! The junk filter that learns from each person (issue 17 part 2), end to end: mail
//! arrives over port 25 (smtplib), the person moves spam into Junk and a wrongly moved
//! message back out with IMAP (imaplib UID MOVE, and a `$Junk` keyword), the daemon
//! trains in the background (`letterbox spam status` shows it), and new mail is then
//! sorted: spam into Junk with `X-Spam-Score` and `X-Spam-Flag: YES`, ham into the INBOX.

mod common;

use std::time::Duration;

use common::{Server, wait_until};

const ALICE: &str = "alice@home.arpa";
const PW: &str = "spam-learn-password-1";

/// Python: `spam(i)` and `ham(i)` build varied messages from word lists (seeded).
const GEN: &str = r#"
import imaplib, random, re
rnd = random.Random(17)
SPAM_W = "cheap pills viagra casino winner prize offer limited act now free bonus \
crypto investment guaranteed profit loan credit click unsubscribe discount replica \
watches pharmacy weight loss miracle exclusive deal million dollars inheritance".split()
HAM_W = "dinner friday school kids grandma photos weekend garden train meeting notes \
homework birthday party cake soup recipe holiday tickets football practice library \
book dentist appointment neighbours bicycle repair cousin wedding".split()
def body(words, n):
    return " ".join(rnd.choice(words) for _ in range(n))
def spam(i):
    return ("From: Deals %d <promo%d@offers%d.example>\r\nTo: alice@home.arpa\r\n"
            "Subject: SPAM-%d %s\r\n\r\n%s\r\n" % (i, i, i % 3, i, body(SPAM_W, 4), body(SPAM_W, 40))).encode()
def ham(i):
    return ("From: Friend <friend%d@example.org>\r\nTo: alice@home.arpa\r\n"
            "Subject: HAM-%d %s\r\n\r\n%s\r\n" % (i % 4, i, body(HAM_W, 4), body(HAM_W, 40))).encode()
def deliver(raw):
    with smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT) as s:
        s.sendmail("sender@example.net", ["alice@home.arpa"], raw)
def imap():
    m = imaplib.IMAP4(H, PORT["imap"], timeout=TIMEOUT)
    m.login("alice@home.arpa", "spam-learn-password-1")
    return m
def uids(m, subject):
    typ, data = m.uid("SEARCH", "SUBJECT", subject)
    check(typ == "OK", typ, data)
    return data[0].decode().split()
def header(m, uid):
    typ, data = m.uid("FETCH", uid, "(BODY.PEEK[HEADER])")
    check(typ == "OK", typ, data)
    return data[0][1].decode()
"#;

#[test]
fn imap_moves_train_the_filter_and_port_25_mail_is_sorted() {
    let s = Server::start_with("[spam]\nmin_trained = 5\n");
    s.add_user(ALICE, PW);

    // Untrained: everything lands in the INBOX, unscored.
    s.python(&format!(
        r#"{GEN}
for i in range(12):
    deliver(spam(i))
    deliver(ham(i))
m = imap()
m.select("INBOX")
check(len(uids(m, "SPAM-")) == 12 and len(uids(m, "HAM-")) == 12)
check("X-Spam" not in header(m, uids(m, "SPAM-0")[0]))
# The person moves the spam to Junk, all but one, which gets the $Junk keyword.
spam_uids = uids(m, "SPAM-")
typ, data = m.uid("MOVE", ",".join(spam_uids[1:]), "Junk")
check(typ == "OK", typ, data)
typ, data = m.uid("STORE", spam_uids[0], "+FLAGS", "($Junk)")
check(typ == "OK", typ, data)
# A ham message moved to Junk by mistake, then back: trained as spam, then as ham.
ham0 = uids(m, "HAM-0")[0]
typ, data = m.uid("MOVE", ham0, "Junk")
check(typ == "OK", typ, data)
m.logout()
"#
    ));
    // The first move is applied before the second one is queued.
    wait_until("the first training", Duration::from_secs(30), || {
        let out = s.cli(&["spam", "status", ALICE], "");
        out.contains("13 spam and 0 ham") && out.contains("0 training events queued")
    });
    s.python(&format!(
        r#"{GEN}
m = imap()
m.select("Junk")
ham0 = uids(m, "HAM-0")[0]
typ, data = m.uid("MOVE", ham0, "INBOX")
check(typ == "OK", typ, data)
# The rest of the ham is answered (\Answered trains ham).
m.select("INBOX")
ham = uids(m, "HAM-")
check(len(ham) == 12, ham)
typ, data = m.uid("STORE", ",".join(ham), "+FLAGS", "(\\Answered)")
check(typ == "OK", typ, data)
m.logout()
"#
    ));
    wait_until("the ham training", Duration::from_secs(30), || {
        let out = s.cli(&["spam", "status", ALICE], "");
        out.contains("12 spam and 12 ham") && out.contains("(filtering)")
    });
    let json = s.cli(&["spam", "status", ALICE, "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["spam"], 12, "{json}");
    assert_eq!(v["ham"], 12, "{json}");
    assert!(v["tokens"].as_u64().unwrap_or(0) > 50, "{json}");

    // New mail is sorted by what Alice taught.
    s.python(&format!(
        r#"{GEN}
for i in range(200, 204):
    deliver(spam(i))
    deliver(ham(i))
m = imap()
m.select("Junk")
junk = uids(m, "SPAM-20")
check(len(junk) == 4, "spam in Junk", junk)
for u in junk:
    h = header(m, u)
    check("X-Spam-Flag: YES" in h, h)
    score = float(re.search(r"X-Spam-Score: ([0-9.]+)", h).group(1))
    check(score >= 0.95, h)
check(uids(m, "HAM-20") == [], "no ham in Junk")
m.select("INBOX")
ham = uids(m, "HAM-20")
check(len(ham) == 4, "ham in INBOX", ham)
for u in ham:
    h = header(m, u)
    check("X-Spam-Flag: NO" in h, h)
check(uids(m, "SPAM-20") == [], "no new spam in INBOX")
m.logout()
"#
    ));
    // `status` counts the four junked copies of the last day.
    let st = s.status_json();
    assert_eq!(st["daemon"]["spam"]["junked"], 4, "{st}");
    assert_eq!(st["daemon"]["spam"]["refused_spam"], 0, "{st}");
}

/// An mbox at `path` of three messages, `message(i)` each (headers, blank line, body).
fn write_mbox(path: &std::path::Path, message: impl Fn(usize) -> String) {
    let mut text = String::new();
    for i in 0..3 {
        text.push_str("From x@example.com Mon Dec  7 01:00:00 2026\n");
        text.push_str(&message(i));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write mbox");
}

#[test]
fn spam_train_reads_an_mbox_and_reject_threshold_refuses() {
    let s = Server::start_with("[spam]\nmin_trained = 2\nreject_threshold = 0.99\n");
    s.add_user(ALICE, PW);
    let mbox = s.dir.path().join("spam.mbox");
    write_mbox(&mbox, |i| {
        format!("From: x{i}@spam.example\nSubject: win {i}\n\ncheap pills now {i}\n")
    });
    let train = |class: &str| {
        s.cli(
            &[
                "spam",
                "train",
                ALICE,
                class,
                "--mbox",
                mbox.to_str().unwrap(),
            ],
            "",
        )
    };
    let out = train("--spam");
    assert!(out.contains("trained 3 messages"), "{out}");
    let out = s.cli(&["spam", "status", ALICE], "");
    assert!(out.contains("3 spam and 0 ham"), "{out}");
    // Training the same file again changes nothing (never twice the same way).
    train("--spam");
    let out = s.cli(&["spam", "status", ALICE], "");
    assert!(out.contains("3 spam and 0 ham"), "{out}");
    // As ham: retrained, the spam counts are undone.
    train("--ham");
    let out = s.cli(&["spam", "status", ALICE], "");
    assert!(out.contains("0 spam and 3 ham"), "{out}");
    // Real spam of another kind, then mail over port 25: far over reject_threshold it
    // is refused at the end of DATA (550 5.7.1); the ham is delivered.
    let casino = s.dir.path().join("casino.mbox");
    write_mbox(&casino, |i| {
        format!(
            "From: y{i}@casino.example\nSubject: casino bonus {i}\n\ncasino bonus jackpot spins {i}\n"
        )
    });
    s.cli(
        &[
            "spam",
            "train",
            ALICE,
            "--spam",
            "--mbox",
            casino.to_str().unwrap(),
        ],
        "",
    );
    let out = s.cli(&["spam", "status", ALICE], "");
    assert!(
        out.contains("3 spam and 3 ham") && out.contains("(filtering)"),
        "{out}"
    );
    s.python(
        r#"
c = smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT)
c.ehlo("sender.test")
c.mail("y9@casino.example")
c.rcpt("alice@home.arpa")
code, text = c.data(b"From: y9@casino.example\r\nSubject: casino bonus\r\n\r\ncasino bonus jackpot spins\r\n")
check(code == 550 and text.startswith(b"5.7.1"), code, text)
c.rset()
c.mail("x9@spam.example")
c.rcpt("alice@home.arpa")
code, text = c.data(b"From: x9@spam.example\r\nSubject: win\r\n\r\ncheap pills now\r\n")
check(code == 250, code, text)
c.quit()
"#,
    );
    let st = s.status_json();
    assert_eq!(st["daemon"]["spam"]["refused_spam"], 1, "{st}");
    // Not an mbox: one line naming the file and the offset.
    let bad = s.dir.path().join("bad.mbox");
    std::fs::write(&bad, "hello\n").expect("write");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_letterbox"));
    cmd.args(["spam", "train", ALICE, "--ham", "--mbox"])
        .arg(&bad)
        .arg("--config")
        .arg(&s.config);
    let out = common::run_bounded(cmd, b"", Duration::from_secs(60));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.mbox") && err.contains("byte 0"), "{err}");
}
