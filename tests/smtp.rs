//! SMTP end to end (issue 3): the real daemon, Python's smtplib (and a raw socket for
//! PIPELINING) as the client; what arrived is read back over POP3.

mod common;

use common::Server;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const PW: &str = "secret-password-1";

/// A daemon with alice and bob, and `ally@` an alias of alice.
fn server() -> Server {
    let s = Server::start();
    s.add_user("alice@home.arpa", PW);
    s.add_user("bob@home.arpa", PW);
    s.cli(&["alias", "add", "ally@home.arpa", "alice@home.arpa"], "");
    s
}

/// Python helper: every message of a mailbox over POP3S, as lists of lines.
const PY_FETCH: &str = r#"
def fetch(user):
    p = poplib.POP3_SSL(H, PORT['pop3s'], context=CTX, timeout=TIMEOUT)
    p.user(user)
    p.pass_(PW)
    n = p.stat()[0]
    msgs = [p.retr(i)[1] for i in range(1, n + 1)]
    p.quit()
    return msgs
def body_of(raw):
    return raw.split(b"\r\n")[:-1]
"#;

fn py(script: &str) -> String {
    format!("PW = {PW:?}\n{PY_FETCH}\n{script}")
}

#[test]
fn mx_delivers_one_copy_per_account_intact() {
    let s = server();
    s.python(&py(r#"
RAW = (b"From: x@example.com\r\nTo: alice@home.arpa, bob@home.arpa\r\nSubject: multi\r\n\r\n"
       b".starts with a dot\r\n..two\r\n.\r\n" + b"y" * 1500 + b"\r\nend\r\n")
with smtplib.SMTP(H, PORT['smtp'], timeout=TIMEOUT) as s:
    code, ehlo = s.ehlo("client.example")
    check(code == 250 and b"PIPELINING" in ehlo and b"STARTTLS" in ehlo, ehlo)
    check(b"AUTH" not in ehlo, "no AUTH on the MX listener", ehlo)
    refused = s.sendmail("x@example.com", ["alice@home.arpa", "bob@home.arpa", "ally@home.arpa"], RAW)
    check(refused == {}, refused)
for user in ["alice@home.arpa", "bob@home.arpa"]:
    msgs = fetch(user)
    check(len(msgs) == 1, user, "has", len(msgs), "messages (alias must not duplicate)")
    lines = msgs[0]
    orig = body_of(RAW)
    check(lines[-len(orig):] == orig, "intact", lines)
    # Authentication-Results (RFC 8601) first, folded, then our Received.
    check(lines[0].startswith(b"Authentication-Results: "), lines[0])
    r = lines.index(b"Received: from client.example ([127.0.0.1])")
    check(all(l.startswith(b"\t") for l in lines[1:r]), "one folded field", lines[:r])
    check(any(b"dmarc=none" in l for l in lines[1:r]), "no DMARC record anywhere", lines[:r])
    check(any(b"with ESMTP id" in l for l in lines[r:r + 4]), lines[r:r + 4])
"#));
}

#[test]
fn relay_refused_on_every_listener_without_auth_and_unknown_user_550() {
    let s = server();
    s.python(&py(r#"
with smtplib.SMTP(H, PORT['smtp'], timeout=TIMEOUT) as s:
    s.ehlo()
    check(s.mail("x@example.com")[0] == 250)
    code, msg = s.rcpt("someone@elsewhere.example")
    check(code == 550 and msg.startswith(b"5.7.1"), code, msg)
    code, msg = s.rcpt("nobody@home.arpa")
    check(code == 550 and msg.startswith(b"5.1.1"), code, msg)
    code, msg = s.rcpt("Postmaster")
    check(code == 250, "RFC 5321 §4.5.1: Postmaster without a domain", code, msg)
    code, msg = s.rcpt("alice@home.arpa")
    check(code == 250, code, msg)
with smtplib.SMTP(H, PORT['submission'], timeout=TIMEOUT) as s:
    s.ehlo()
    code, msg = s.mail("alice@home.arpa")
    check(code == 530, "submission without AUTH", code, msg)
    s.starttls(context=CTX)
    s.ehlo()
    code, msg = s.mail("alice@home.arpa")
    check(code == 530, "submission inside TLS without AUTH", code, msg)
    code, msg = s.rcpt("someone@elsewhere.example")
    check(code == 503, code, msg)
with smtplib.SMTP_SSL(H, PORT['submissions'], context=CTX, timeout=TIMEOUT) as s:
    s.ehlo()
    code, msg = s.mail("alice@home.arpa")
    check(code == 530, "submissions without AUTH", code, msg)
check(fetch("alice@home.arpa") == [], "nothing delivered")
"#));
}

#[test]
fn submission_starttls_auth_plain_and_login() {
    let s = server();
    s.python(&py(r#"
def session():
    s = smtplib.SMTP(H, PORT['submission'], timeout=TIMEOUT)
    s.ehlo()
    s.starttls(context=CTX)
    code, ehlo = s.ehlo()
    check(b"AUTH PLAIN LOGIN" in ehlo, ehlo)
    s.user, s.password = "alice@home.arpa", PW
    return s
s = session()
code, msg = s.auth("PLAIN", s.auth_plain)
check(code == 235, code, msg)
s.sendmail("alice@home.arpa", ["bob@home.arpa"], b"From: Alice <alice@home.arpa>\r\nSubject: plain\r\n\r\nvia PLAIN\r\n")
s.quit()
s = session()
code, msg = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
check(code == 235, code, msg)
s.sendmail("alice+tag@home.arpa", ["bob@home.arpa"], b"From: ally@home.arpa\r\nSubject: login\r\n\r\nvia LOGIN\r\n")
# Not alice's address: envelope, then From: header.
code, msg = s.mail("bob@home.arpa")
check(code == 550 and msg.startswith(b"5.7.1"), code, msg)
s.rset()
try:
    s.sendmail("alice@home.arpa", ["bob@home.arpa"], b"From: bob@home.arpa\r\nSubject: forged\r\n\r\nx\r\n")
    check(False, "forged From: accepted")
except smtplib.SMTPDataError as e:
    check(e.smtp_code == 550 and e.smtp_error.startswith(b"5.7.1"), e)
s.quit()
s = session()
s.password = "wrong"
try:
    s.auth("PLAIN", s.auth_plain)
    check(False, "wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    check(e.smtp_code == 535, e)
s.close()
msgs = fetch("bob@home.arpa")
check(len(msgs) == 2, len(msgs))
first = msgs[0]
check(first[-1] == b"via PLAIN", first)
check(any(l.startswith(b"\t(using TLSv1_") for l in first), "TLS in Received", first)
check(any(b"with ESMTPSA id" in l for l in first), "ESMTPSA", first)
# Date and Message-ID were added (RFC 6409 §8).
check(any(l.startswith(b"Date: ") for l in first), first)
check(any(l.startswith(b"Message-ID: <") for l in first), first)
check(msgs[1][-1] == b"via LOGIN", msgs[1])
"#));
}

#[test]
fn submissions_implicit_tls_delivers_local_and_queues_remote() {
    // No name server answers, so the queued message stays queued (deferred) for the check.
    let s = Server::start_with("[dns]\nnameservers = [\"127.0.0.1:9\"]\n");
    s.add_user("alice@home.arpa", PW);
    s.add_user("bob@home.arpa", PW);
    s.python(&py(r#"
with smtplib.SMTP_SSL(H, PORT['submissions'], context=CTX, timeout=TIMEOUT) as s:
    s.login("alice@home.arpa", PW)
    refused = s.sendmail("alice@home.arpa", ["bob@home.arpa", "friend@remote.example"],
                         b"From: alice@home.arpa\r\nMessage-ID: <mine@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: out\r\n\r\nhello\r\n")
    check(refused == {}, refused)
msgs = fetch("bob@home.arpa")
check(len(msgs) == 1, msgs)
check(msgs[0].count(b"Message-ID: <mine@x>") == 1 and not any(l.startswith(b"Message-ID: <") and l != b"Message-ID: <mine@x>" for l in msgs[0]), "kept, not added", msgs[0])
"#));
    let status = s.cli(&["status", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(v["store"]["queue"], 1, "{status}");
    let services: Vec<&str> = v["daemon"]["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        services,
        [
            "smtp",
            "submission",
            "submissions",
            "imap",
            "imaps",
            "pop3",
            "pop3s",
            "http",
            "https"
        ],
        "{status}"
    );
}

#[test]
fn pipelined_transaction_is_answered_in_order() {
    let s = server();
    s.python(&py(r#"
sock = socket.create_connection((H, PORT['smtp']), timeout=TIMEOUT)
f = sock.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline()
        check(l, "connection closed", lines)
        lines.append(l)
        if l[3:4] == b" ":
            return lines
check(reply()[0].startswith(b"220 "))
sock.sendall(b"EHLO client.example\r\n")
check(any(b"PIPELINING" in l for l in reply()))
sock.sendall(b"MAIL FROM:<x@example.com>\r\nRCPT TO:<alice@home.arpa>\r\n"
             b"RCPT TO:<nobody@home.arpa>\r\nRCPT TO:<bob@home.arpa>\r\nDATA\r\n")
codes = [reply()[-1][:3] for _ in range(5)]
check(codes == [b"250", b"250", b"550", b"250", b"354"], codes)
CHUNK = b"Subject: bdat\r\n\r\nxx\r\n"
sock.sendall(b"Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<bob@home.arpa>\r\n"
             + b"BDAT %d LAST\r\n" % len(CHUNK) + CHUNK + b"QUIT\r\n")
codes = [reply()[-1][:3] for _ in range(5)]
check(codes == [b"250", b"250", b"250", b"250", b"221"], codes)
sock.close()
check(len(fetch("alice@home.arpa")) == 1)
bob = fetch("bob@home.arpa")
check(len(bob) == 2 and bob[0][-1] == b"body" and bob[1][-1] == b"xx", bob)
"#));
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    line
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(c)
}

#[test]
fn global_cap_refuses_with_421() {
    let s = Server::start_with("[limits]\nmax_connections = 1\n");
    let mut a = connect(s.port("smtp"));
    assert!(read_line(&mut a).starts_with("220 "));
    let mut b = connect(s.port("smtp"));
    let line = read_line(&mut b);
    assert!(line.starts_with("421 4.7.0 "), "{line}");
    let mut rest = String::new();
    b.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    a.get_mut().write_all(b"QUIT\r\n").unwrap();
    assert!(read_line(&mut a).starts_with("221 "));
}

#[test]
fn idle_timeout_sends_421_and_shutdown_sends_421() {
    let mut s = Server::start_with("[limits]\nsmtp_idle_timeout = 1\n");
    let mut idle = connect(s.port("submission"));
    assert!(read_line(&mut idle).starts_with("220 "));
    let line = read_line(&mut idle);
    assert!(line.starts_with("421 4.4.2 "), "{line}");

    let mut c = connect(s.port("smtp"));
    assert!(read_line(&mut c).starts_with("220 "));
    c.get_mut().write_all(b"NOOP\r\n").unwrap();
    assert!(read_line(&mut c).starts_with("250 "));
    let status = s.terminate();
    let line = read_line(&mut c);
    assert!(line.starts_with("421 4.3.2 "), "{line}");
    assert!(status.success(), "{status}: {}", s.log());
}
