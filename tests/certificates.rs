//! The household CA end to end (issue 16 item 2), through the real binary: clients that
//! trust only `data_dir/tls/ca.pem` (Python's ssl with `cafile=`, curl with `--cacert`)
//! reach IMAPS, submissions and STARTTLS by host name and by 127.0.0.1 with full
//! verification; a store with the old self-signed certificate migrates at start; and with
//! `[tls] lifetime` shortened, the renewal task swaps the certificate while a connection
//! stays open and new connections get the new one.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, require, run_bounded};

const ALICE: &str = "alice@home.arpa";
const PW: &str = "household-pass-1";

/// Python: verified connections to `port` trusting only `ca`, by host name (`server_hostname`
/// over a socket to 127.0.0.1) and by address; prints each peer certificate's SHA-256.
fn py_verified(ca: &std::path::Path) -> String {
    format!(
        r#"
import hashlib, imaplib
CA = {ca:?}
def ctx():
    c = ssl.create_default_context(cafile=CA)
    check(c.verify_mode == ssl.CERT_REQUIRED and c.check_hostname)
    return c
def greet(port, name):
    s = socket.create_connection((H, port), timeout=TIMEOUT)
    t = ctx().wrap_socket(s, server_hostname=name)
    line = t.recv(200)
    fp = hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()
    t.close()
    return line, fp
"#
    )
}

#[test]
fn clients_trusting_only_the_household_ca_connect_without_warnings() {
    let s = Server::start();
    s.add_user(ALICE, PW);
    let ca = s.data_dir.join("tls/ca.pem");
    assert!(ca.exists(), "the household CA is made at first start");

    let out = s.python(&format!(
        r#"{}
fps = set()
for name in ["letterbox.home.arpa", "letterbox.local", "localhost", "127.0.0.1"]:
    line, fp = greet(PORT["imaps"], name)
    check(line.startswith(b"* OK"), name, line)
    fps.add(fp)
    line, fp = greet(PORT["submissions"], name)
    check(line.startswith(b"220"), name, line)
    fps.add(fp)
check(len(fps) == 1, fps)
# The stdlib clients by address, verified, with a login and a submission.
m = imaplib.IMAP4_SSL(H, PORT["imaps"], ssl_context=ctx())
m.login({ALICE:?}, {PW:?})
m.logout()
c = smtplib.SMTP_SSL(H, PORT["submissions"], context=ctx(), timeout=TIMEOUT)
c.login({ALICE:?}, {PW:?})
c.sendmail({ALICE:?}, [{ALICE:?}], "From: " + {ALICE:?} + "\r\nSubject: via the CA\r\n\r\nhello\r\n")
c.quit()
c = smtplib.SMTP(H, PORT["submission"], timeout=TIMEOUT)
c.starttls(context=ctx())
c.login({ALICE:?}, {PW:?})
c.quit()
m = imaplib.IMAP4(H, PORT["imap"])
m.starttls(ssl_context=ctx())
m.login({ALICE:?}, {PW:?})
m.logout()
# Not trusting the CA: the same connection is refused by the client.
try:
    s0 = socket.create_connection((H, PORT["imaps"]), timeout=TIMEOUT)
    ssl.create_default_context().wrap_socket(s0, server_hostname="letterbox.home.arpa")
    raise SystemExit("an untrusted CA was accepted")
except ssl.SSLCertVerificationError as e:
    pass
# A name the certificate does not carry: refused too.
try:
    greet(PORT["imaps"], "www.example.com")
    raise SystemExit("a foreign name was accepted")
except ssl.SSLCertVerificationError as e:
    pass
print(fps.pop())
"#,
        py_verified(&ca)
    ));
    let fp = out.trim().to_string();
    assert_eq!(fp.len(), 64, "{out}");

    // `letterbox status --json` shows the same fingerprint and the CA's.
    let st = s.status_json();
    let tls = &st["daemon"]["tls"];
    assert_eq!(
        tls["sha256"]
            .as_str()
            .unwrap_or("")
            .replace(':', "")
            .to_lowercase(),
        fp,
        "{st}"
    );
    assert!(
        tls["ca_sha256"].as_str().is_some_and(|c| c.len() == 95),
        "{st}"
    );
    assert!(tls["not_after"].as_i64().is_some(), "{st}");

    // curl, trusting only the CA, by host name (--resolve) and by address.
    require("curl", "--version", "curl");
    for (url, resolve) in [
        (
            format!("imaps://letterbox.home.arpa:{}/", s.port("imaps")),
            Some(format!("letterbox.home.arpa:{}:127.0.0.1", s.port("imaps"))),
        ),
        (format!("imaps://127.0.0.1:{}/", s.port("imaps")), None),
    ] {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&ca)
            .args(["-u", &format!("{ALICE}:{PW}"), &url]);
        if let Some(r) = resolve {
            cmd.args(["--resolve", &r]);
        }
        let o = run_bounded(cmd, b"", Duration::from_secs(30));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("INBOX"),
            "curl {url}: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mail = s.dir.path().join("mail.txt");
    std::fs::write(
        &mail,
        format!("From: {ALICE}\r\nSubject: curl\r\n\r\nvia smtps\r\n"),
    )
    .unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca)
        .args([
            "--resolve",
            &format!("letterbox.home.arpa:{}:127.0.0.1", s.port("submissions")),
            "-u",
            &format!("{ALICE}:{PW}"),
            "--mail-from",
            ALICE,
            "--mail-rcpt",
            ALICE,
            "-T",
        ])
        .arg(&mail)
        .arg(format!(
            "smtps://letterbox.home.arpa:{}",
            s.port("submissions")
        ));
    let o = run_bounded(cmd, b"", Duration::from_secs(30));
    assert!(
        o.status.success(),
        "curl smtps: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_store_with_the_old_self_signed_certificate_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tls = data.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let old = rcgen::generate_simple_self_signed(vec!["letterbox.home.arpa".to_string()]).unwrap();
    std::fs::write(tls.join("cert.pem"), old.cert.pem()).unwrap();
    std::fs::write(tls.join("key.pem"), old.signing_key.serialize_pem()).unwrap();
    let mut s = Server::start_with_data_dir("", &data);
    assert_ne!(
        std::fs::read_to_string(tls.join("cert.pem")).unwrap(),
        old.cert.pem(),
        "replaced at start"
    );
    let ca = std::fs::read(tls.join("ca.pem")).unwrap();
    let check = format!(
        "{}\nline, fp = greet(PORT['imaps'], 'letterbox.home.arpa')\ncheck(line.startswith(b'* OK'), line)\nprint(fp)\n",
        py_verified(&tls.join("ca.pem"))
    );
    let fp = s.python(&check);
    // A restart keeps the CA and the server certificate.
    s.restart();
    assert_eq!(
        std::fs::read(tls.join("ca.pem")).unwrap(),
        ca,
        "the CA is kept"
    );
    assert_eq!(s.python(&check), fp, "not reissued without a reason");
}

#[test]
fn renewal_swaps_the_certificate_while_a_connection_stays_open() {
    // 12 s certificates: renewed at 8 s, checked every second.
    let s = Server::start_with("[tls]\nlifetime = 12\n");
    s.add_user(ALICE, PW);
    let ca = s.data_dir.join("tls/ca.pem");
    let out = s.python(&format!(
        r#"{}
old = imaplib.IMAP4_SSL(H, PORT["imaps"], ssl_context=ctx())
old.login({ALICE:?}, {PW:?})
first = hashlib.sha256(old.sock.getpeercert(binary_form=True)).hexdigest()
new = first
deadline = time.time() + 60
while new == first and time.time() < deadline:
    time.sleep(0.5)
    line, new = greet(PORT["imaps"], "letterbox.home.arpa")
check(new != first, "no renewal within 60 s")
# The connection opened before the renewal still works, on the old certificate.
typ, _ = old.noop()
check(typ == "OK", typ)
check(hashlib.sha256(old.sock.getpeercert(binary_form=True)).hexdigest() == first)
typ, data = old.select("INBOX")
check(typ == "OK", typ, data)
old.logout()
# New connections (IMAPS and submissions) verify the new certificate against the same CA.
m = imaplib.IMAP4_SSL(H, PORT["imaps"], ssl_context=ctx())
m.login({ALICE:?}, {PW:?})
m.logout()
line, fp = greet(PORT["submissions"], "127.0.0.1")
check(line.startswith(b"220"), line)
print(first, new)
"#,
        py_verified(&ca)
    ));
    assert!(
        s.log().contains("renewed the household server certificate"),
        "{out}"
    );
}
