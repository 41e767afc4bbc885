//! Quotas end to end (issue 14 §4, RFC 9208): `[quota]` defaults and `letterbox user quota`
//! per account, shown by `user list` and `status`; port 25 refuses a recipient whose quota
//! cannot take the declared SIZE with `452 4.2.2` at RCPT, and a message that does not fit
//! at the end of DATA, storing nothing; IMAP APPEND over quota gets `NO [OVERQUOTA]`.
//! Real clients: Python's smtplib and imaplib against the real daemon.

mod common;

use common::Server;

const ALICE: &str = "alice@home.arpa";
const BOB: &str = "bob@home.arpa";
const PW: &str = "quota-password-1";

#[test]
fn quota_is_set_shown_and_enforced_over_smtp_and_imap() {
    // A default for everyone (50 messages), and Alice's own storage limit below.
    let s = Server::start_with("[quota]\nmessages = 50\n");
    s.add_user(ALICE, PW);
    s.add_user(BOB, PW);
    let out = s.cli(&["user", "quota", ALICE, "--storage", "64K"], "");
    assert!(
        out.contains("quota of alice@home.arpa: storage 64.0 KiB, messages 50"),
        "{out}"
    );
    let out = s.cli(&["user", "quota", BOB, "--messages", "none"], "");
    assert!(out.contains("storage no limit, messages no limit"), "{out}");

    // RFC 1870 SIZE over what is left: refused at RCPT for Alice only; Bob gets it.
    s.python(
        r#"
body = b"From: x@example.com\r\nSubject: big\r\n\r\n" + b"y" * 70000 + b"\r\n"
c = smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT)
c.ehlo("sender.test")
check(c.has_extn("size"), "SIZE advertised")
code, _ = c.mail("x@example.com", ["SIZE=%d" % len(body)])
check(code == 250, code)
code, text = c.rcpt("alice@home.arpa")
check(code == 452 and text.startswith(b"4.2.2"), code, text)
code, _ = c.rcpt("bob@home.arpa")
check(code == 250, code)
code, _ = c.data(body)
check(code == 250, code)
c.quit()

# Without SIZE the recipient is accepted, and the end of DATA refuses the whole message:
# nothing is stored, the sender will retry.
c = smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT)
c.ehlo("sender.test")
c.mail("x@example.com")
code, _ = c.rcpt("alice@home.arpa")
check(code == 250, code)
code, text = c.data(body)
check(code == 452 and text.startswith(b"4.2.2"), code, text)
c.quit()

# A small message fits.
c = smtplib.SMTP(H, PORT["smtp"], timeout=TIMEOUT)
c.sendmail("x@example.com", ["alice@home.arpa"], b"Subject: small\r\n\r\nhi\r\n")
c.quit()
"#,
    );
    // IMAP: the quota as the client sees it, and APPEND over quota.
    s.python(&format!(
        r#"
import imaplib
m = imaplib.IMAP4_SSL(H, PORT["imaps"], ssl_context=CTX, timeout=TIMEOUT)
m.login({ALICE:?}, {PW:?})
typ, data = m.getquotaroot("INBOX")
check(typ == "OK", typ, data)
check(data == [[b'INBOX ""'], [b'"" (STORAGE 1 64 MESSAGE 1 50)']], data)
typ, data = m.append("INBOX", None, None, b"Subject: too big\r\n\r\n" + b"z" * 70000 + b"\r\n")
check(typ == "NO" and b"[OVERQUOTA]" in data[0], typ, data)
typ, data = m.select("INBOX")
check(data == [b"1"], "still one message", data)
m.logout()
"#
    ));
    let list = s.cli(&["user", "list"], "");
    assert!(
        list.lines().any(|l| l.starts_with(ALICE)
            && l.contains("1 messages of 50")
            && l.contains("of 64.0 KiB")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with(BOB) && !l.contains(" of ")),
        "{list}"
    );
    let status = s.cli(&["status"], "");
    assert!(
        status.contains("quota alice@home.arpa: ") && status.contains("of 64.0 KiB"),
        "{status}"
    );
    let json: serde_json::Value = s.status_json();
    let quotas = json["quotas"].as_array().expect("quotas in status --json");
    assert!(
        quotas
            .iter()
            .any(|q| q["address"] == ALICE && q["storage"] == 65536)
    );
}
