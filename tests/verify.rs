//! Sender verification end to end (issue 3, parts 2 and 5; SPEC §5 "Verified inbound
//! mail"): a real DNS server, Debian's dnsmasq, started by each test on a free loopback
//! port, serves SPF, DKIM and DMARC records for domains under `.test` (RFC 6761); messages
//! are signed by an independent signer, Debian's python3-dkim (`dknewkey`, `dkimsign`),
//! and sent to the MX listener with Python's smtplib from 127.0.0.1. What arrived is read
//! back over POP3, and Junk straight from the store once the daemon has stopped.
//!
//! Needs the Debian packages `dnsmasq-base` and `python3-dkim`; without them the tests
//! fail and say so. Every wait is bounded; dnsmasq is killed on drop.

mod common;

use common::dnsmasq::{Dnsmasq, txt_record};
use common::{RUN_TIMEOUT, Server, run_bounded};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PW: &str = "secret-password-1";
/// The DKIM selector of the signing domain.
const SELECTOR: &str = "sel";

/// Finds a Debian tool, or fails naming the package to install.
fn tool(name: &str, package: &str) -> PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    let candidates = dirs
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    for dir in candidates {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed: these tests need Debian's {package} \
         (apt-get install -y {package})"
    );
}

/// An RSA-2048 DKIM key made by python3-dkim's `dknewkey`: the private key file and the
/// TXT record to publish.
fn dkim_key(dir: &Path) -> (PathBuf, String) {
    let mut cmd = Command::new(tool("dknewkey", "python3-dkim"));
    cmd.arg(SELECTOR).current_dir(dir);
    let out = run_bounded(cmd, b"", RUN_TIMEOUT);
    assert!(
        out.status.success(),
        "dknewkey failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = std::fs::read_to_string(dir.join(format!("{SELECTOR}.dns"))).expect("key record");
    (
        dir.join(format!("{SELECTOR}.key")),
        record.trim().to_string(),
    )
}

/// `message` with a DKIM-Signature by python3-dkim's `dkimsign` for `domain`.
fn dkim_sign(key: &Path, domain: &str, message: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(tool("dkimsign", "python3-dkim"));
    cmd.args([SELECTOR, domain]).arg(key);
    let out = run_bounded(cmd, message, RUN_TIMEOUT);
    assert!(
        out.status.success() && out.stdout.starts_with(b"DKIM-Signature: "),
        "dkimsign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The zone of every test. `127.0.0.1` is where smtplib connects from.
/// - good.test: SPF allows 127.0.0.1, DKIM key, DMARC p=reject (so it must pass).
/// - strict.test: SPF `-all` for another address, no DMARC record.
/// - reject.test, quarantine.test: SPF `-all` for another address, DMARC p=reject and
///   p=quarantine.
/// - tempspf.test, tempnone.test: SPF includes a name outside `.test`, which dnsmasq (no
///   upstream) refuses, so SPF is `temperror` (RFC 7208 §5.2); DMARC p=reject and p=none.
fn zone(dkim_record: &str) -> Vec<String> {
    let other = "v=spf1 ip4:192.0.2.1 -all";
    [
        ("good.test", "v=spf1 ip4:127.0.0.1 -all"),
        ("_dmarc.good.test", "v=DMARC1; p=reject"),
        ("sel._domainkey.good.test", dkim_record),
        ("strict.test", other),
        ("reject.test", other),
        ("_dmarc.reject.test", "v=DMARC1; p=reject"),
        ("quarantine.test", other),
        ("_dmarc.quarantine.test", "v=DMARC1; p=quarantine"),
        (
            "tempspf.test",
            "v=spf1 include:spf.unreachable.example -all",
        ),
        ("_dmarc.tempspf.test", "v=DMARC1; p=reject"),
        (
            "tempnone.test",
            "v=spf1 include:spf.unreachable.example -all",
        ),
        ("_dmarc.tempnone.test", "v=DMARC1; p=none"),
        ("ready.test", "v=spf1 -all"),
    ]
    .iter()
    .map(|(n, t)| txt_record(n, t))
    .collect()
}

/// A message from `from` to `to`, CRLF line endings.
fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Python helpers: `send(mail_from, rcpt, file)` over the MX listener with HELO
/// `client.test`, `refused(...)` expecting an SMTP error at the end of DATA, `fetch(user)`
/// over POP3, `results(msg)`: the Authentication-Results field unfolded.
const PY_HELPERS: &str = r#"
def send(mail_from, rcpt, path, timeout=TIMEOUT):
    raw = open(path, "rb").read()
    with smtplib.SMTP(H, PORT['smtp'], local_hostname="client.test", timeout=timeout) as s:
        refused = s.sendmail(mail_from, [rcpt], raw)
        check(refused == {}, refused)
def refused(mail_from, rcpt, path, timeout=TIMEOUT):
    try:
        send(mail_from, rcpt, path, timeout)
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode()
    raise SystemExit("check failed: %s was accepted" % path)
def fetch(user):
    p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)
    p.user(user)
    p.pass_(PW)
    msgs = [p.retr(i)[1] for i in range(1, p.stat()[0] + 1)]
    p.quit()
    return msgs
def results(lines):
    check(lines[0].startswith(b"Authentication-Results: "), "A-R first", lines[:3])
    field = [lines[0]]
    for l in lines[1:]:
        if not l.startswith((b"\t", b" ")):
            break
        field.append(l)
    return b" ".join(x.strip() for x in field).decode()
def subject(lines):
    return [l for l in lines if l.startswith(b"Subject: ")][0].decode()
"#;

fn py(files: &Path, script: &str) -> String {
    format!(
        "PW = {PW:?}\nFILES = {:?}\n{PY_HELPERS}\n{script}",
        files.display().to_string()
    )
}

fn dns_table(addr: &str) -> String {
    format!("[dns]\nnameservers = [\"{addr}\"]\n")
}

#[test]
fn dkim_pass_tampered_fail_and_spf_fail_are_recorded() {
    let files = tempfile::tempdir().unwrap();
    let (key, record) = dkim_key(files.path());
    let dns = Dnsmasq::start(&zone(&record));
    let s = Server::start_with(&dns_table(&dns.addr()));
    s.add_user("alice@home.arpa", PW);

    let signed = dkim_sign(
        &key,
        "good.test",
        &message("a@good.test", "alice@home.arpa", "signed", "the body"),
    );
    std::fs::write(files.path().join("signed.eml"), &signed).unwrap();
    // Changed after signing: the body hash no longer matches (RFC 6376 §3.7).
    let text = String::from_utf8(signed).unwrap();
    let tampered = text
        .replace("Subject: signed", "Subject: tampered")
        .replace("the body", "the b0dy");
    std::fs::write(files.path().join("tampered.eml"), tampered).unwrap();
    // SPF -all for another address; a forged result claiming to be ours.
    let mut strict = b"Authentication-Results: letterbox.home.arpa; dkim=pass header.d=strict.test; dmarc=pass\r\n".to_vec();
    strict.extend(message(
        "x@strict.test",
        "alice@home.arpa",
        "strict",
        "unsigned",
    ));
    std::fs::write(files.path().join("strict.eml"), strict).unwrap();

    s.python(&py(
        files.path(),
        r#"
send("a@good.test", "alice@home.arpa", FILES + "/signed.eml")
send("a@good.test", "alice@home.arpa", FILES + "/tampered.eml")
send("x@strict.test", "alice@home.arpa", FILES + "/strict.eml")
msgs = fetch("alice@home.arpa")
check(len(msgs) == 3, len(msgs))
signed, tampered, strict = msgs
check(subject(signed) == "Subject: signed", subject(signed))
r = results(signed)
check(r.startswith("Authentication-Results: letterbox.home.arpa;"), r)
check("spf=pass" in r and "smtp.mailfrom=a@good.test" in r, r)
check("dkim=pass header.i=@good.test header.s=sel" in r, r)
check("dmarc=pass header.from=good.test policy.dmarc=reject" in r, r)
check("arc=none" in r, r)

check(subject(tampered) == "Subject: tampered", subject(tampered))
r = results(tampered)
check("dkim=fail" in r and "dkim=pass" not in r, r)
# SPF still passes aligned, so DMARC passes and the message is delivered.
check("spf=pass" in r and "dmarc=pass" in r, r)

r = results(strict)
check("spf=fail" in r and "smtp.mailfrom=x@strict.test" in r, r)
check("spf=none" in r and "smtp.helo=client.test" in r, "HELO identity checked too", r)
check("dkim=none" in r and "dmarc=none" in r, r)
# RFC 8601 §5: the sender's claim in our name is gone; only our own field names us.
check(sum(1 for l in strict if l.startswith(b"Authentication-Results: letterbox.home.arpa")) == 1, strict)
check(not any(b"header.d=strict.test" in l for l in strict), strict)
print("ok")
"#,
    ));
    drop(dns);
}

#[test]
fn dmarc_reject_is_refused_and_quarantine_goes_to_junk() {
    let files = tempfile::tempdir().unwrap();
    let (key, record) = dkim_key(files.path());
    let dns = Dnsmasq::start(&zone(&record));
    let mut s = Server::start_with(&dns_table(&dns.addr()));
    s.add_user("bob@home.arpa", PW);

    std::fs::write(
        files.path().join("reject.eml"),
        message("ceo@reject.test", "bob@home.arpa", "reject", "pay this"),
    )
    .unwrap();
    // A valid signature, but by good.test: not aligned with From: reject.test (RFC 7489
    // §3.1.1), and SPF passes for good.test only: DMARC fails.
    std::fs::write(
        files.path().join("unaligned.eml"),
        dkim_sign(
            &key,
            "good.test",
            &message("ceo@reject.test", "bob@home.arpa", "unaligned", "pay this"),
        ),
    )
    .unwrap();
    for d in ["tempspf", "tempnone"] {
        std::fs::write(
            files.path().join(format!("{d}.eml")),
            message(&format!("a@{d}.test"), "bob@home.arpa", d, "x"),
        )
        .unwrap();
    }
    std::fs::write(
        files.path().join("quarantine.eml"),
        message(
            "x@quarantine.test",
            "bob@home.arpa",
            "quarantine",
            "maybe spam",
        ),
    )
    .unwrap();

    s.python(&py(
        files.path(),
        r#"
code, text = refused("ceo@reject.test", "bob@home.arpa", FILES + "/reject.eml")
check(code == 550 and text.startswith("5.7.1") and "reject.test" in text, code, text)
code, text = refused("bounce@good.test", "bob@home.arpa", FILES + "/unaligned.eml")
check(code == 550 and text.startswith("5.7.1"), "unaligned DKIM and SPF", code, text)
# The aligned SPF check has a DNS error and the policy is reject: the outcome is unknown.
code, text = refused("a@tempspf.test", "bob@home.arpa", FILES + "/tempspf.eml")
check(code == 451 and text.startswith("4.7.24"), code, text)
# Under p=none the same error cannot change the outcome: delivered, and recorded.
send("a@tempnone.test", "bob@home.arpa", FILES + "/tempnone.eml")
msgs = fetch("bob@home.arpa")
check(len(msgs) == 1 and subject(msgs[0]) == "Subject: tempnone", msgs)
r = results(msgs[0])
check("spf=temperror" in r and "dmarc=temperror" in r and "policy.dmarc=none" in r, r)
send("x@quarantine.test", "bob@home.arpa", FILES + "/quarantine.eml")
check(len(fetch("bob@home.arpa")) == 1, "quarantined mail is not in the INBOX")
"#,
    ));
    let log = s.log();
    assert!(
        log.contains("verdict=Junk") && log.contains("junk=true"),
        "{log}"
    );

    // The quarantined message is in Junk, with its results; nothing else was stored.
    let status = s.terminate();
    assert!(status.success(), "{status}");
    let store = letterbox::store::Store::open(&s.dir.path().join("data")).expect("store opens");
    let (inbox, junk) = store
        .read(|r| {
            let bob = r.account_by_login("bob@home.arpa")?.expect("bob");
            let inbox = r.mailbox(bob.id, "INBOX")?.expect("INBOX");
            let junk = r.mailbox(bob.id, "Junk")?.expect("Junk");
            let rows = r.messages(junk.id)?;
            let bodies = rows
                .iter()
                .map(|(_, row)| r.blob(&row.blob).map(|b| b.unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((inbox.exists, bodies))
        })
        .expect("read store");
    assert_eq!(inbox, 1, "only the p=none message");
    assert_eq!(junk.len(), 1, "one message in Junk");
    let text = String::from_utf8_lossy(&junk[0]);
    assert!(
        text.starts_with("Authentication-Results: letterbox.home.arpa;"),
        "{text}"
    );
    assert!(text.contains("Subject: quarantine"), "{text}");
    assert!(text.contains("spf=fail"), "{text}");
    assert!(
        text.contains("dmarc=fail") && text.contains("policy.dmarc=quarantine"),
        "{text}"
    );
    drop(dns);
}

#[test]
fn unanswered_dns_defers_with_451_not_a_pass() {
    // A name server that never answers: every query times out.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("m.eml"),
        message("ceo@reject.test", "carol@home.arpa", "silent", "x"),
    )
    .unwrap();
    let s = Server::start_with(&dns_table(&addr));
    s.add_user("carol@home.arpa", PW);
    let started = Instant::now();
    s.python(&py(
        files.path(),
        r#"
code, text = refused("ceo@reject.test", "carol@home.arpa", FILES + "/m.eml", timeout=120)
check(code == 451 and text.startswith("4.7."), code, text)
check(fetch("carol@home.arpa") == [], "nothing delivered")
"#,
    ));
    // Bounded by the resolver's timeouts and the verification deadline (45 s).
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn stopped_dns_server_defers_with_451() {
    let files = tempfile::tempdir().unwrap();
    let (_key, record) = dkim_key(files.path());
    let mut dns = Dnsmasq::start(&zone(&record));
    let s = Server::start_with(&dns_table(&dns.addr()));
    s.add_user("dave@home.arpa", PW);
    std::fs::write(
        files.path().join("before.eml"),
        message("a@good.test", "dave@home.arpa", "before", "x"),
    )
    .unwrap();
    std::fs::write(
        files.path().join("after.eml"),
        message("ceo@quarantine.test", "dave@home.arpa", "after", "x"),
    )
    .unwrap();
    s.python(&py(
        files.path(),
        r#"send("a@good.test", "dave@home.arpa", FILES + "/before.eml")"#,
    ));
    let log = dns.log();
    assert!(log.contains("query[TXT] _dmarc.good.test"), "{log}");
    dns.stop();
    s.python(&py(
        files.path(),
        r#"
code, text = refused("ceo@quarantine.test", "dave@home.arpa", FILES + "/after.eml", timeout=120)
check(code == 451 and text.startswith("4.7."), code, text)
msgs = fetch("dave@home.arpa")
check(len(msgs) == 1 and subject(msgs[0]) == "Subject: before", msgs)
check("dmarc=pass" in results(msgs[0]), results(msgs[0]))
"#,
    ));
}
