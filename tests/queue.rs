//! Outbound delivery end to end (issue 4), with real peers on loopback:
//! - a DNS server (Debian's dnsmasq) on 127.0.0.1 serving MX, A and the TXT records that
//!   `letterbox dkim dns` printed; the daemon uses it through `[dns] nameservers`;
//! - receiving SMTP servers (python3-aiosmtpd) on 127.0.0.x at the `[queue] mx_port` that
//!   accept, greylist once (451) and then accept, reject (550), or accept slowly; and
//!   relays with STARTTLS + AUTH, or offering AUTH without STARTTLS;
//! - DKIM checked by an independent verifier (python3-dkim) against the DNS server.
//!
//! The retry schedule is scaled with `[queue] retry_scale` (no sleeps standing in for
//! minutes). Every wait is bounded.
//!
//! Needs the Debian packages dnsmasq-base, python3-aiosmtpd and python3-dkim, and runs
//! their Python as `/usr/bin/python3`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dnsmasq::{Dnsmasq, free_port, txt_record};
use common::{Server, run_bounded};

const PW: &str = "correct horse battery";
/// Debian's Python, where python3-aiosmtpd and python3-dkim are installed.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";
const WAIT: Duration = Duration::from_secs(90);

/// The receiving servers: one per entry of the JSON config; each saves what it accepts
/// as `out/NNNN-<name>.json` and logs AUTH and DATA events to `out/events.log`.
const PEERS_PY: &str = r#"
import asyncio, json, os, sys, ssl, threading, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

cfg = json.load(open(sys.argv[1]))
OUT = cfg["out"]
lock = threading.Lock()
count = [0]

def event(line):
    with lock:
        with open(os.path.join(OUT, "events.log"), "a") as f:
            f.write(line + "\n")

class Handler:
    def __init__(self, s):
        self.name, self.mode, self.delay = s["name"], s["mode"], s.get("delay", 0)
        self.greylisted = set()
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "reject":
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table" % address
        if self.mode == "tempfail_always":
            return "451 4.3.2 <%s>: mailbox busy, try again later" % address
        if self.mode == "tempfail" and address not in self.greylisted:
            self.greylisted.add(address)
            return "451 4.7.1 <%s>: Recipient address rejected: Greylisted, try again" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"
    async def handle_DATA(self, server, session, envelope):
        event("data %s" % self.name)
        if self.delay:
            await asyncio.sleep(self.delay)
        with lock:
            count[0] += 1
            n = count[0]
        path = os.path.join(OUT, "%04d-%s.json" % (n, self.name))
        with open(path + ".tmp", "w") as f:
            json.dump({"server": self.name, "mail_from": envelope.mail_from,
                       "rcpts": envelope.rcpt_tos, "tls": session.ssl is not None,
                       "authenticated": bool(session.authenticated),
                       "data": envelope.original_content.decode("utf-8", "replace")}, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued"

def authenticator(name):
    def auth(server, session, envelope, mechanism, auth_data):
        event("auth %s tls=%d user=%s pass=%s" % (name, session.ssl is not None,
              auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)
    return auth

controllers = []
for s in cfg["servers"]:
    kw = {}
    if s.get("cert"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(s["cert"], s["key"])
        kw["tls_context"] = ctx
    if s["mode"].startswith("relay"):
        kw["authenticator"] = authenticator(s["name"])
        kw["auth_required"] = True
        # Offer AUTH even in clear, so that only the client's discipline keeps the
        # password inside TLS.
        kw["auth_require_tls"] = False
    c = Controller(Handler(s), hostname=s["ip"], port=s["port"],
                   server_hostname="mx." + s["name"] + ".test", **kw)
    c.start()
    controllers.append(c)
print("ready", flush=True)
sys.stdin.read()
"#;

/// DKIM verification with dkimpy, every signature, against our DNS server.
const VERIFY_PY: &str = r#"
import sys, dkim, dns.resolver
port = int(sys.argv[1])
msg = open(sys.argv[2], "rb").read()
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = port
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    a = r.resolve(name.rstrip("."), "TXT")
    return b"".join(b"".join(x.strings) for x in a)
d = dkim.DKIM(msg)
sigs = [l for l in msg.split(b"\r\n") if l.lower().startswith(b"dkim-signature:")]
ok = []
for i in range(len(sigs)):
    ok.append(d.verify(idx=i, dnsfunc=dnsfunc))
print("signatures", len(sigs), "valid", sum(ok))
for s in sigs:
    print(s.decode()[:80])
if len(sigs) != 2 or not all(ok):
    sys.exit(1)
"#;

/// Kills a child process on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on every 127.0.0.x the receivers use.
fn free_mx_port(ips: &[&str]) -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if ips
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, p)).is_ok())
        {
            return p;
        }
    }
    panic!("no free port on {ips:?}");
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- daemon log\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// dnsmasq on the port already written into the daemon's config, also authoritative for
/// `home.arpa` (NODATA / NXDOMAIN there rather than no answer).
fn start_dns_on(port: u16, records: &[String]) -> Dnsmasq {
    let mut options = vec!["--local=/home.arpa/".to_string()];
    options.extend_from_slice(records);
    Dnsmasq::start_on(port, &options).expect("dnsmasq")
}

/// The TXT records of `letterbox dkim dns --json` as dnsmasq options (long values split
/// into 255-octet strings, RFC 1035 §3.3.14 / RFC 6376 §3.6.2.2).
fn txt_options(records: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in records.as_array().expect("records") {
        // `dkim dns` also prints the SRV and autoconfig records (issue 16).
        if r["type"] != "TXT" {
            continue;
        }
        let name = r["name"].as_str().expect("name");
        let value = r["value"].as_str().expect("value");
        assert!(!value.contains(','), "dnsmasq splits on commas: {value}");
        out.push(txt_record(name, value));
    }
    out
}

/// The receiving servers.
struct Peers {
    _proc: Proc,
    out: PathBuf,
}

impl Peers {
    fn start(dir: &Path, servers: serde_json::Value) -> Peers {
        let out = dir.join("received");
        std::fs::create_dir_all(&out).expect("mkdir");
        let cfg = dir.join("peers.json");
        std::fs::write(
            &cfg,
            serde_json::json!({"out": out, "servers": servers}).to_string(),
        )
        .expect("write");
        let script = dir.join("peers.py");
        std::fs::write(&script, PEERS_PY).expect("write");
        let mut child = Command::new(SYSTEM_PYTHON)
            .arg(&script)
            .arg(&cfg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python3 (apt-get install python3-aiosmtpd)");
        let stdout = child.stdout.take().expect("stdout");
        let proc = Proc(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("ready") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("SMTP peers did not start");
        Peers { _proc: proc, out }
    }

    /// Every message received so far, in order.
    fn received(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter_map(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok())
            .collect()
    }

    fn received_by(&self, server: &str) -> Vec<serde_json::Value> {
        self.received()
            .into_iter()
            .filter(|m| m["server"] == server)
            .collect()
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.out.join("events.log")).unwrap_or_default()
    }
}

fn rcpts(m: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = m["rcpts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Python: submit one message as alice over submission with STARTTLS + AUTH.
fn py_submit(rcpts: &[&str], subject: &str) -> String {
    let list: Vec<String> = rcpts.iter().map(|r| format!("{r:?}")).collect();
    format!(
        r#"
s = smtplib.SMTP(H, PORT['submission'], timeout=TIMEOUT)
s.starttls(context=CTX)
s.login("alice@home.arpa", {PW:?})
refused = s.sendmail("alice@home.arpa", [{}],
    b"From: Alice <alice@home.arpa>\r\nTo: friends\r\nSubject: {subject}\r\n\r\nHello,\r\n.leading dot\r\nbye\r\n")
check(refused == {{}}, refused)
s.quit()
"#,
        list.join(", ")
    )
}

/// Python: alice's INBOX over POP3, joined into one text per message.
const PY_INBOX: &str = r#"
def inbox():
    p = poplib.POP3_SSL(H, PORT['pop3s'], context=CTX, timeout=TIMEOUT)
    p.user("alice@home.arpa")
    p.pass_(PW)
    n = p.stat()[0]
    msgs = [b"\r\n".join(p.retr(i)[1]).decode("utf-8", "replace") for i in range(1, n + 1)]
    p.quit()
    return msgs
"#;

fn queue_json(s: &Server) -> serde_json::Value {
    serde_json::from_str(&s.cli(&["queue", "list", "--json"], "")).expect("queue json")
}

#[test]
fn direct_mx_delivery_signed_retried_and_bounced() {
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let dns_port = free_port();
    let mx_port = free_mx_port(&ips);
    let s = Server::start_with(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n\n\
         [queue]\nretry_scale = 0.001\nmx_port = {mx_port}\ntimeout = \"10s\"\n"
    ));
    s.add_user("alice@home.arpa", PW);
    let text = s.cli(&["dkim", "dns"], "");
    assert!(text.contains("._domainkey.home.arpa."), "{text}");
    assert!(text.contains("v=DKIM1; k=ed25519; p="), "{text}");
    assert!(text.contains("v=DKIM1; k=rsa; p="), "{text}");
    assert!(text.contains("_dmarc.home.arpa."), "{text}");
    assert!(text.contains("v=spf1 mx -all"), "{text}");
    let records: serde_json::Value =
        serde_json::from_str(&s.cli(&["dkim", "dns", "--json"], "")).expect("json");
    let mut dns = vec![
        "--mx-host=ok.test,mx.ok.test,10".to_string(),
        "--host-record=mx.ok.test,127.0.0.2".to_string(),
        // The most preferred MX does not answer: the next one is used (RFC 5321 §5.1).
        "--mx-host=ok.test,mx-dead.ok.test,5".to_string(),
        "--host-record=mx-dead.ok.test,127.0.0.9".to_string(),
        "--mx-host=temp.test,mx.temp.test,10".to_string(),
        "--host-record=mx.temp.test,127.0.0.3".to_string(),
        // No MX at all: the domain's own address (RFC 5321 §5.1).
        "--host-record=bad.test,127.0.0.4".to_string(),
        // Null MX (RFC 7505).
        "--mx-host=nullmx.test,.,0".to_string(),
    ];
    dns.extend(txt_options(&records));
    let _dns = start_dns_on(dns_port, &dns);
    // ok.test offers STARTTLS with a certificate nobody could verify: used anyway.
    let (cert, key) = self_signed(s.dir.path(), "mx.ok.test");
    let peers = Peers::start(
        s.dir.path(),
        serde_json::json!([
            {"name": "ok", "ip": "127.0.0.2", "port": mx_port, "mode": "accept", "cert": cert, "key": key},
            {"name": "temp", "ip": "127.0.0.3", "port": mx_port, "mode": "tempfail"},
            {"name": "bad", "ip": "127.0.0.4", "port": mx_port, "mode": "reject"},
        ]),
    );
    s.python(&py_submit(
        &[
            "a@ok.test",
            "b@temp.test",
            "c@bad.test",
            "d@ok.test",
            "e@nullmx.test",
        ],
        "outbound",
    ));

    // ok.test: one connection, one message for both of its recipients.
    wait_for(
        "delivery to ok.test",
        || !peers.received_by("ok").is_empty(),
        || s.log(),
    );
    let ok = peers.received_by("ok");
    assert_eq!(ok.len(), 1);
    assert_eq!(rcpts(&ok[0]), ["a@ok.test", "d@ok.test"]);
    assert_eq!(ok[0]["mail_from"], "alice@home.arpa");
    assert_eq!(
        ok[0]["tls"], true,
        "opportunistic STARTTLS, certificate not verified"
    );
    let data = ok[0]["data"].as_str().expect("data");
    assert!(
        data.contains("\r\n.leading dot\r\n"),
        "dot-stuffing undone: {data}"
    );

    // DKIM: both signatures verify against exactly the published records.
    let eml = s.dir.path().join("ok.eml");
    std::fs::write(&eml, data).expect("write");
    let verify = s.dir.path().join("verify.py");
    std::fs::write(&verify, VERIFY_PY).expect("write");
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(&verify).arg(dns_port.to_string()).arg(&eml);
    let out = run_bounded(cmd, b"", Duration::from_secs(60));
    assert!(
        out.status.success(),
        "dkimpy: {}{}\n{data}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("a=ed25519-sha256"), "{report}");
    assert!(report.contains("a=rsa-sha256"), "{report}");

    // temp.test: greylisted once, delivered on the (scaled) retry.
    wait_for(
        "the retry to temp.test",
        || !peers.received_by("temp").is_empty(),
        || s.log(),
    );
    assert_eq!(rcpts(&peers.received_by("temp")[0]), ["b@temp.test"]);

    // bad.test (550) and nullmx.test: one bounce in alice's INBOX with the remote's text.
    let out = s.python(&format!(
        "PW = {PW:?}\n{PY_INBOX}\n\
deadline = time.time() + 60\n\
while True:\n    msgs = inbox()\n    if msgs or time.time() > deadline:\n        break\n    time.sleep(0.2)\n\
check(len(msgs) >= 1, 'no bounce')\n\
print(msgs[0])\n\
print('=====', len(msgs))\n"
    ));
    let out = format!("{out}\n--- daemon log\n{}", s.log());
    assert!(out.contains("multipart/report"), "{out}");
    assert!(out.contains("report-type=delivery-status"), "{out}");
    assert!(out.contains("Final-Recipient: rfc822; c@bad.test"), "{out}");
    assert!(out.contains("Action: failed"), "{out}");
    assert!(out.contains("Status: 5.1.1"), "{out}");
    assert!(
        out.contains("550 5.1.1 <c@bad.test>: Recipient address rejected: User unknown"),
        "{out}"
    );
    assert!(out.contains("Subject: outbound"), "original headers: {out}");
    assert!(
        !out.contains("leading dot"),
        "body must not be returned: {out}"
    );
    assert!(
        out.contains("e@nullmx.test") && out.contains("5.1.10"),
        "{out}"
    );

    // Settled: nothing left queued, nobody got anything twice.
    wait_for(
        "an empty queue",
        || queue_json(&s).as_array().is_some_and(|a| a.is_empty()),
        || s.log(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(peers.received_by("ok").len(), 1);
    assert_eq!(peers.received_by("temp").len(), 1);
    assert!(peers.received_by("bad").is_empty());
    let status = s.cli(&["status", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&status).expect("status");
    assert_eq!(v["store"]["queue"], 0, "{status}");
}

/// A self-signed certificate for `name`: (cert PEM path, key PEM path).
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert");
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).expect("write");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write");
    (cert, key)
}

#[test]
fn relay_gets_auth_only_inside_tls() {
    let ips = ["127.0.0.5"];
    let dns_port = free_port();
    let port = free_mx_port(&ips);
    let tmp = tempfile::tempdir().expect("tmp");
    let (cert, key) = self_signed(tmp.path(), "relay.test");
    let pass = tmp.path().join("relay.pass");
    std::fs::write(&pass, "  s3cret relay pw \n").expect("write");
    let s = Server::start_with_env(
        &format!(
            "[dns]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n\n\
             [queue]\nretry_scale = 0.001\ntimeout = \"10s\"\n\n\
             [relay]\nhost = \"relay.test\"\nport = {port}\nusername = \"box@isp.test\"\n\
             password_file = \"{}\"\nsecurity = \"starttls\"\n",
            pass.display()
        ),
        // The relay's certificate is verified: trust our test CA.
        &[("SSL_CERT_FILE", cert.to_str().expect("path"))],
    );
    s.add_user("alice@home.arpa", PW);
    let _dns = start_dns_on(
        dns_port,
        &["--host-record=relay.test,127.0.0.5".to_string()],
    );
    let peers = Peers::start(
        s.dir.path(),
        serde_json::json!([{
            "name": "relay", "ip": "127.0.0.5", "port": port, "mode": "relay",
            "cert": cert, "key": key,
        }]),
    );
    s.python(&py_submit(
        &["x@anywhere.test", "y@elsewhere.test"],
        "via relay",
    ));
    wait_for(
        "delivery through the relay",
        || !peers.received_by("relay").is_empty(),
        || s.log(),
    );
    let got = peers.received_by("relay");
    assert_eq!(got.len(), 1, "one transaction for every recipient");
    assert_eq!(rcpts(&got[0]), ["x@anywhere.test", "y@elsewhere.test"]);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["authenticated"], true);
    let events = peers.events();
    let auths: Vec<&str> = events.lines().filter(|l| l.starts_with("auth")).collect();
    assert_eq!(
        auths,
        ["auth relay tls=1 user=box@isp.test pass=s3cret relay pw"],
        "{events}"
    );
    assert!(
        got[0]["data"]
            .as_str()
            .is_some_and(|d| d.contains("DKIM-Signature:")),
        "signed"
    );
}

#[test]
fn relay_without_starttls_never_gets_the_password() {
    let ips = ["127.0.0.6"];
    let dns_port = free_port();
    let port = free_mx_port(&ips);
    let tmp = tempfile::tempdir().expect("tmp");
    let pass = tmp.path().join("relay.pass");
    std::fs::write(&pass, "s3cret\n").expect("write");
    let s = Server::start_with(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n\n\
         [queue]\nretry_scale = 0.001\ntimeout = \"10s\"\n\n\
         [relay]\nhost = \"127.0.0.6\"\nport = {port}\nusername = \"box@isp.test\"\n\
         password_file = \"{}\"\nsecurity = \"starttls\"\n",
        pass.display()
    ));
    s.add_user("alice@home.arpa", PW);
    // No certificate: the relay offers AUTH in clear but no STARTTLS.
    let peers = Peers::start(
        s.dir.path(),
        serde_json::json!([{"name": "plain", "ip": "127.0.0.6", "port": port, "mode": "relay"}]),
    );
    s.python(&py_submit(&["x@anywhere.test"], "must wait"));
    wait_for(
        "a deferred attempt",
        || {
            queue_json(&s).as_array().is_some_and(|a| {
                a.first().is_some_and(|i| {
                    i["attempts"].as_u64().unwrap_or(0) >= 2
                        && i["last_error"]
                            .as_str()
                            .is_some_and(|e| e.contains("STARTTLS"))
                })
            })
        },
        || s.log(),
    );
    assert!(peers.received().is_empty());
    assert!(!peers.events().contains("auth"), "{}", peers.events());
    // The relay refuses: fault 3 at once, without waiting for the hour (SPEC §6).
    let st = s.status_json();
    assert_eq!(
        st["leds"]["red"]["pattern"],
        serde_json::json!({"code": 3}),
        "{st}"
    );
    let text = s.cli(&["status"], "");
    assert!(
        text.contains(&format!("the relay 127.0.0.6:{port} refuses")) && text.contains("STARTTLS"),
        "{text}"
    );
    let list = s.cli(&["queue", "list"], "");
    assert!(list.contains("x@anywhere.test: pending"), "{list}");
    assert!(list.contains("from alice@home.arpa"), "{list}");
    // The sender is told nothing yet, and `queue delete` removes it.
    let id = queue_json(&s)[0]["id"].as_u64().expect("id");
    s.cli(&["queue", "retry", &id.to_string()], "");
    s.cli(&["queue", "delete", &id.to_string()], "");
    assert!(queue_json(&s).as_array().is_some_and(|a| a.is_empty()));
    // Nothing waits for the relay any more: the fault goes.
    wait_for(
        "fault 3 cleared",
        || s.status_json()["leds"]["red"]["pattern"] == serde_json::json!("off"),
        || s.log(),
    );
}

#[test]
fn kill_9_during_deliveries_loses_nothing() {
    let ips = ["127.0.0.7"];
    let dns_port = free_port();
    let mx_port = free_mx_port(&ips);
    let mut s = Server::start_with(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n\n\
         [queue]\nretry_scale = 0.001\nmx_port = {mx_port}\ntimeout = \"10s\"\n"
    ));
    s.add_user("alice@home.arpa", PW);
    let _dns = start_dns_on(
        dns_port,
        &[
            "--mx-host=slow.test,mx.slow.test,10".to_string(),
            "--host-record=mx.slow.test,127.0.0.7".to_string(),
        ],
    );
    // Each DATA takes a second to be answered, so deliveries are in flight when killed.
    let peers = Peers::start(
        s.dir.path(),
        serde_json::json!([{"name": "slow", "ip": "127.0.0.7", "port": mx_port, "mode": "accept", "delay": 1.0}]),
    );
    const N: usize = 8;
    let mut script = String::new();
    for i in 0..N {
        script.push_str(&py_submit(&["r@slow.test"], &format!("crash {i}")));
    }
    s.python(&script);
    wait_for(
        "a delivery in flight",
        || peers.events().contains("data slow"),
        || s.log(),
    );
    s.kill9_and_restart();
    wait_for(
        "every message after the restart",
        || {
            let subjects: std::collections::HashSet<String> = peers
                .received()
                .iter()
                .filter_map(|m| {
                    let d = m["data"].as_str()?;
                    let i = d.find("Subject: crash ")?;
                    Some(d[i..].lines().next()?.to_string())
                })
                .collect();
            subjects.len() == N
        },
        || s.log(),
    );
    wait_for(
        "an empty queue",
        || queue_json(&s).as_array().is_some_and(|a| a.is_empty()),
        || s.log(),
    );
    // Duplicates only for what was in flight (at most CONCURRENCY = 4 messages).
    let got = peers.received().len();
    assert!(
        (N..=N + 4).contains(&got),
        "{got} deliveries of {N} messages"
    );
}

#[test]
fn delay_notice_then_expiry_bounce() {
    let ips = ["127.0.0.8"];
    let dns_port = free_port();
    let mx_port = free_mx_port(&ips);
    // Scaled so that the 4-hour notice comes after a second and 5 days after 43 s.
    let s = Server::start_with(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n\n\
         [queue]\nretry_scale = 0.0001\nmx_port = {mx_port}\ntimeout = \"10s\"\n"
    ));
    s.add_user("alice@home.arpa", PW);
    let _dns = start_dns_on(
        dns_port,
        &[
            "--mx-host=busy.test,mx.busy.test,10".to_string(),
            "--host-record=mx.busy.test,127.0.0.8".to_string(),
        ],
    );
    let peers = Peers::start(
        s.dir.path(),
        serde_json::json!([{"name": "busy", "ip": "127.0.0.8", "port": mx_port, "mode": "tempfail_always"}]),
    );
    s.python(&py_submit(&["r@busy.test"], "patience"));
    let out = s.python(&format!(
        "PW = {PW:?}\n{PY_INBOX}\n\
deadline = time.time() + 80\n\
while True:\n    msgs = inbox()\n    if len(msgs) >= 2 or time.time() > deadline:\n        break\n    time.sleep(0.5)\n\
check(len(msgs) == 2, 'want a delay notice and a bounce', msgs)\n\
print(msgs[0])\nprint('=====')\nprint(msgs[1])\n"
    ));
    let (delay, bounce) = out.split_once("=====").expect("two messages");
    assert!(delay.contains("Subject: Delayed Mail"), "{delay}");
    assert!(delay.contains("Action: delayed"), "{delay}");
    assert!(delay.contains("Will-Retry-Until:"), "{delay}");
    assert!(
        delay.contains("451 4.3.2 <r@busy.test>: mailbox busy"),
        "{delay}"
    );
    assert!(bounce.contains("Subject: Undelivered Mail"), "{bounce}");
    assert!(bounce.contains("Action: failed"), "{bounce}");
    assert!(bounce.contains("Status: 4.4.7"), "{bounce}");
    assert!(bounce.contains("delivery time expired"), "{bounce}");
    assert!(bounce.contains("mailbox busy"), "{bounce}");
    wait_for(
        "an empty queue",
        || queue_json(&s).as_array().is_some_and(|a| a.is_empty()),
        || s.log(),
    );
    assert!(peers.received().is_empty());
}
