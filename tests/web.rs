//! The web listeners (issue 16 part 1) against the real binary: every autoconfiguration
//! answer is fetched, parsed, and then followed to the letter (the ports and security it
//! names) with Python's imaplib, poplib and smtplib; the public page and the redirect; and
//! hostile HTTP (over-long heads, slowloris, smuggling forms, traversal in path and query
//! parameters, huge bodies) with the daemon's memory checked afterwards.

mod common;

use common::Server;

const PASSWORD: &str = "correct horse battery";

fn server() -> Server {
    let s = Server::start();
    s.add_user("alice@home.arpa", PASSWORD);
    s
}

/// Python helpers: the web ports, an HTTPS GET/POST with the unverified context, and a
/// login with exactly the named service, port and security.
const WEB_PRELUDE: &str = r#"
import urllib.request, urllib.error, xml.etree.ElementTree as ET, plistlib, imaplib, hashlib
HTTP = int(os.environ["LB_PORT_HTTP"])
HTTPS = int(os.environ["LB_PORT_HTTPS"])
ADDR = "alice@home.arpa"
PW = "correct horse battery"
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
OPENER = urllib.request.build_opener(urllib.request.HTTPSHandler(context=CTX), NoRedirect())
def fetch(url, data=None, headers={}):
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        r = OPENER.open(req, timeout=TIMEOUT)
        return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
def login(kind, host, port, security):
    check(host == H, "host", host)
    if kind == "imap":
        if security == "ssl":
            c = imaplib.IMAP4_SSL(host, port, ssl_context=CTX, timeout=TIMEOUT)
        else:
            c = imaplib.IMAP4(host, port, timeout=TIMEOUT); c.starttls(ssl_context=CTX)
        typ, _ = c.login(ADDR, PW); check(typ == "OK", kind, port); c.logout()
    elif kind == "pop3":
        if security == "ssl":
            c = poplib.POP3_SSL(host, port, context=CTX, timeout=TIMEOUT)
        else:
            c = poplib.POP3(host, port, timeout=TIMEOUT); c.stls(context=CTX)
        c.user(ADDR); c.pass_(PW); c.quit()
    elif kind == "smtp":
        if security == "ssl":
            c = smtplib.SMTP_SSL(host, port, context=CTX, timeout=TIMEOUT)
        else:
            c = smtplib.SMTP(host, port, timeout=TIMEOUT); c.starttls(context=CTX)
        c.login(ADDR, PW)
        c.sendmail(ADDR, [ADDR], "From: %s\r\nTo: %s\r\nSubject: autoconfig %d\r\n\r\nhi\r\n" % (ADDR, ADDR, port))
        c.quit()
    else:
        raise SystemExit("unknown kind " + kind)
    print("ok", kind, port, security)
"#;

fn py(s: &Server, script: &str) -> String {
    s.python(&format!("{WEB_PRELUDE}\n{script}"))
}

#[test]
fn thunderbird_autoconfig_leads_to_working_logins() {
    let s = server();
    let out = py(
        &s,
        r#"
for url in ["https://%s:%d/mail/config-v1.1.xml?emailaddress=%s" % (H, HTTPS, ADDR),
            "http://%s:%d/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=%s" % (H, HTTP, ADDR),
            "http://%s:%d/mail/config-v1.1.xml" % (H, HTTP)]:
    st, hd, body = fetch(url)
    check(st == 200, url, st, body)
    root = ET.fromstring(body)
    prov = root.find("emailProvider")
    check([d.text for d in prov.findall("domain")] == ["home.arpa"], body)
    n = 0
    for srv in prov.findall("incomingServer") + prov.findall("outgoingServer"):
        sock = srv.find("socketType").text
        check(srv.find("username").text == "%EMAILADDRESS%")
        login(srv.get("type"), srv.find("hostname").text, int(srv.find("port").text),
              {"SSL": "ssl", "STARTTLS": "starttls"}[sock])
        n += 1
    check(n == 6, "servers", n)
st, _, body = fetch("https://%s:%d/mail/config-v1.1.xml?emailaddress=bob@elsewhere.example" % (H, HTTPS))
check(st == 404, "foreign domain", st)
"#,
    );
    assert_eq!(out.matches("ok ").count(), 18, "{out}");
    // Each SMTP login sent one message to alice (6 per round, 3 rounds / 2 SMTP each).
    common::wait_until(
        "the autoconfig test messages are delivered",
        std::time::Duration::from_secs(30),
        || {
            s.python_output(
                "import imaplib\nc = imaplib.IMAP4_SSL(H, PORT['imaps'], ssl_context=CTX)\nc.login('alice@home.arpa', 'correct horse battery')\ntyp, d = c.select('INBOX')\nsys.exit(0 if int(d[0]) >= 6 else 1)\n",
            )
            .status
            .success()
        },
    );
}

#[test]
fn autodiscover_and_apple_profile_lead_to_working_logins() {
    let s = server();
    let out = py(
        &s,
        r#"
NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
req = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
       '<Request><EMailAddress>%s</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>' % ADDR).encode()
answers = [fetch("https://%s:%d/autodiscover/autodiscover.xml" % (H, HTTPS), req, {"Content-Type": "text/xml"}),
           fetch("http://%s:%d/Autodiscover/Autodiscover.xml" % (H, HTTP), req, {"Content-Type": "text/xml"}),
           fetch("https://%s:%d/autodiscover/autodiscover.xml?email=%s" % (H, HTTPS, ADDR))]
for st, hd, body in answers:
    check(st == 200, st, body)
    root = ET.fromstring(body)
    protos = root.findall(".//%sProtocol" % NS)
    check(len(protos) == 3, body)
    for p in protos:
        t = p.find(NS + "Type").text
        check(p.find(NS + "LoginName").text == ADDR, body)
        enc = p.find(NS + "Encryption").text
        login({"IMAP": "imap", "POP3": "pop3", "SMTP": "smtp"}[t], p.find(NS + "Server").text,
              int(p.find(NS + "Port").text), {"SSL": "ssl", "TLS": "starttls"}[enc])
st, _, body = fetch("https://%s:%d/autodiscover/autodiscover.xml" % (H, HTTPS), b"<Autodiscover/>")
check(st == 400, "no address", st, body)

# The Apple profile: IMAP and SMTP as named, and the certificate the server presents.
st, hd, body = fetch("https://%s:%d/apple/%s" % (H, HTTPS, ADDR))
check(st == 200 and hd["Content-Type"] == "application/x-apple-aspen-config", st, hd)
prof = plistlib.loads(body)
mail = [p for p in prof["PayloadContent"] if p["PayloadType"] == "com.apple.mail.managed"][0]
check(mail["EmailAddress"] == ADDR and mail["IncomingMailServerUsername"] == ADDR)
login("imap", mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
      "ssl" if mail["IncomingMailServerUseSSL"] else "plain")
login("smtp", mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"],
      "ssl" if mail["OutgoingMailServerUseSSL"] else "plain")
cert = [p for p in prof["PayloadContent"] if p["PayloadType"].startswith("com.apple.security.")][0]
# It is the household CA, a root, and the served chain verifies against it alone.
check(cert["PayloadType"] == "com.apple.security.root", cert["PayloadType"])
check(cert["PayloadContent"] == fetch("https://%s:%d/ca.crt" % (H, HTTPS))[2], "profile CA is /ca.crt")
ctx = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(cert["PayloadContent"]))
ctx.wrap_socket(socket.create_connection((H, PORT["imaps"]), timeout=TIMEOUT), server_hostname=H).close()
check(fetch("https://%s:%d/apple?address=%s" % (H, HTTPS, ADDR))[2] == body, "form and path agree")
"#,
    );
    assert_eq!(out.matches("ok ").count(), 11, "{out}");
}

#[test]
fn dns_prints_srv_and_autoconfig_records_under_both_names() {
    let s = server();
    let json: serde_json::Value =
        serde_json::from_str(&s.cli(&["dns", "--json"], "")).expect("dns --json");
    let rec = |name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {json}"))
            .clone()
    };
    let imaps = rec("_imaps._tcp.home.arpa");
    assert_eq!(imaps["type"], "SRV");
    assert_eq!(
        imaps["value"],
        format!("0 1 {} letterbox.home.arpa.", s.port("imaps"))
    );
    for name in [
        "_submission._tcp.home.arpa",
        "_submissions._tcp.home.arpa",
        "_imap._tcp.home.arpa",
        "_pop3._tcp.home.arpa",
        "_pop3s._tcp.home.arpa",
    ] {
        assert_eq!(rec(name)["type"], "SRV");
    }
    assert_eq!(rec("autoconfig.home.arpa")["type"], "CNAME");
    assert_eq!(
        rec("autodiscover.home.arpa")["value"],
        "letterbox.home.arpa."
    );
    assert!(
        rec("home.arpa")["value"]
            .as_str()
            .unwrap()
            .starts_with("v=spf1")
    );
    // The old name prints the same.
    let text = s.cli(&["dns"], "");
    assert_eq!(s.cli(&["dkim", "dns"], ""), text);
    assert!(
        text.contains(&format!(
            "_submissions._tcp.home.arpa.\tIN\tSRV\t0 1 {} letterbox.home.arpa.",
            s.port("submissions")
        )),
        "{text}"
    );
}

#[test]
fn public_page_redirect_and_certificate() {
    let s = server();
    let out = py(
        &s,
        r#"
st, hd, body = fetch("https://%s:%d/" % (H, HTTPS))
check(st == 200, st)
page = body.decode()
csp = hd["Content-Security-Policy"]
check("script-src" not in csp and "unsafe" not in csp and "default-src 'none'" in csp, csp)
check("<script" not in page.lower() and "style=" not in page, "no inline script or style")
served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((H, HTTPS)))
fp = ":".join("%02X" % b for b in hashlib.sha256(served).digest())
check(fp in page, "fingerprint", fp)
check("alice" not in page, "no account on the public page")
check("service: up" in page, "LED words")
for svc in ["imaps", "submission", "https"]:
    check("<tr><td>%s</td><td class=\"up\">up</td>" % svc in page, svc)
# The household CA: both downloads agree, its fingerprint is on the page, and the served
# certificate verifies against it alone (a device trusts it once).
ca = fetch("https://%s:%d/ca.crt" % (H, HTTPS))[2]
check(ssl.PEM_cert_to_DER_cert(fetch("https://%s:%d/ca.pem" % (H, HTTPS))[2].decode()) == ca, "ca.pem")
check(":".join("%02X" % b for b in hashlib.sha256(ca).digest()) in page, "CA fingerprint")
ctx = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(ca))
ctx.wrap_socket(socket.create_connection((H, HTTPS), timeout=TIMEOUT), server_hostname=H).close()
check(fetch("https://%s:%d/style.css" % (H, HTTPS))[0] == 200)
# HTTP: only a redirect, to the same path on HTTPS.
st, hd, body = fetch("http://%s:%d/some/path?x=1" % (H, HTTP))
check(st == 308 and hd["Location"] == "https://%s:%d/some/path?x=1" % (H, HTTPS), st, hd)
st, hd, _ = fetch("http://%s:%d/" % (H, HTTP), headers={"Host": "evil.example/x"})
check(st == 308 and hd["Location"] == "https://%s:%d/" % (H, HTTPS), "bad Host ignored", hd)
# ALPN http/1.1 on HTTPS; the mail listeners do not answer ALPN.
for port, want in [(HTTPS, "http/1.1"), (PORT["imaps"], None)]:
    ctx = ssl._create_unverified_context(); ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection((H, port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw) as t:
            check(t.selected_alpn_protocol() == want, port, t.selected_alpn_protocol())
print("page ok")
"#,
    );
    assert!(out.contains("page ok"), "{out}");
}

#[test]
fn hostile_http_gets_4xx_or_a_close_with_bounded_memory() {
    let s = server();
    let rss = |s: &Server| -> u64 {
        let st = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
        st.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let before = rss(&s);
    let out = py(
        &s,
        r#"
import threading
def raw(port, data, tls=False, wait=TIMEOUT, drip=None):
    sk = socket.create_connection((H, port), timeout=wait)
    if tls:
        sk = CTX.wrap_socket(sk)
    try:
        if drip:
            for piece in drip:
                sk.sendall(piece); time.sleep(1)
        else:
            sk.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while len(out) < 1 << 20:
            b = sk.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, OSError):
        pass
    sk.close()
    return out
def status(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None
for port, tls in [(HTTP, False), (HTTPS, True)]:
    # An over-long header, and too many of them: 431.
    r = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 40000 + b"\r\n\r\n", tls)
    check(status(r) == 431 or r == b"", "long header", r[:80])
    r = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", tls)
    check(status(r) == 431, "many headers", r[:80])
    # Differing duplicate Content-Length: 400.
    r = raw(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello", tls)
    check(status(r) == 400, "duplicate CL", r[:80])
    # Content-Length and Transfer-Encoding: the body is chunked, the connection closes
    # after one answer, so the request hidden behind it is never served.
    smuggled = b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    r = raw(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body) + body, tls)
    check(r.count(b"HTTP/1.1 ") == 1 and b"clientConfig" not in r and status(r) == 400, "CL+TE", r[:200])
    # Transfer-Encoding other than chunked: 400.
    r = raw(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxx", tls)
    check(status(r) == 400, "TE gzip", r[:80])
    # A huge body, announced and chunked: 413, not read to the end.
    r = raw(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n" + b"<" * 200000, tls)
    check(status(r) == 413 or r == b"", "huge CL", r[:80])
    r = raw(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"10000\r\n" + b"<" * 0x10000 + b"\r\n") * 8, tls)
    check(status(r) == 413 or r == b"", "huge chunked", r[:80])
    # Traversal in path and query parameters.
    for target in [b"/apple/..%2F..%2Fetc%2Fpasswd", b"/apple/..%5C..%5Cwin.ini", b"/apple/%2e%2e",
                   b"/apple/a%00b@home.arpa", b"/apple/../../etc/passwd",
                   b"/mail/config-v1.1.xml?emailaddress=../../../etc/passwd",
                   b"/autodiscover/autodiscover.xml?email=%2F%2F@home.arpa", b"/apple?address=<x>@home.arpa"]:
        if not tls and target.startswith(b"/apple"):
            continue
        r = raw(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tls)
        check(status(r) in (400, 404), target, r[:120])
        check(b"root:" not in r, target)
    # A garbage request line.
    r = raw(port, b"\x16\x03\x01GARBAGE\r\n\r\n", tls)
    check(status(r) == 400, "garbage", r[:80])
# Slowloris: the head trickles in one byte a second; the daemon gives up within
# HEADER_TIMEOUT (10 s) and closes (hyper answers 408 or just closes).
t0 = time.time()
r = raw(HTTP, None, wait=40, drip=[b"G", b"E", b"T", b" ", b"/"] + [b"x"] * 30)
took = time.time() - t0
check(took < 25 and (r == b"" or status(r) == 408), "slowloris", took, r[:80])
# Still serving.
st, _, _ = fetch("https://%s:%d/" % (H, HTTPS))
check(st == 200, "alive", st)
print("hostile ok")
"#,
    );
    assert!(out.contains("hostile ok"), "{out}");
    let after = rss(&s);
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

#[test]
fn https_follows_a_sighup_certificate_reload_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let write = |name: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        ck.cert.der().to_vec()
    };
    let first = write("first.example.org");
    let s = Server::start_with(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let served = |s: &Server| -> Vec<u8> {
        let hex = py(
            s,
            "print(ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((H, HTTPS))).hex())",
        );
        (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).unwrap())
            .collect()
    };
    assert_eq!(served(&s), first);
    let second = write("second.example.org");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    common::wait_until(
        "the reload is logged",
        std::time::Duration::from_secs(15),
        || s.log().contains("certificate reloaded"),
    );
    assert_eq!(served(&s), second, "HTTPS serves the reloaded certificate");
    let out = py(
        &s,
        r#"
st, hd, body = fetch("https://%s:%d/" % (H, HTTPS))
served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((H, HTTPS)))
fp = ":".join("%02X" % b for b in hashlib.sha256(served).digest())
check(st == 200 and fp in body.decode(), "the page shows the new fingerprint")
print("reload ok")
"#,
    );
    assert!(out.contains("reload ok"), "{out}");
}

#[test]
fn web_connections_count_against_the_shared_caps() {
    let s = Server::start_with("[limits]\nmax_connections_per_ip = 3\n");
    let out = py(
        &s,
        r#"
idle = [socket.create_connection((H, HTTP), timeout=TIMEOUT) for _ in range(3)]
time.sleep(0.5)
over = socket.create_connection((H, HTTP), timeout=TIMEOUT)
r = b""
while True:
    b = over.recv(4096)
    if not b:
        break
    r += b
check(r.startswith(b"HTTP/1.1 503 "), "over the cap", r)
for c in idle:
    c.close()
time.sleep(0.5)
st, hd, _ = fetch("http://%s:%d/" % (H, HTTP))
check(st == 308, "served again once the others closed", st)
print("caps ok")
"#,
    );
    assert!(out.contains("caps ok"), "{out}");
}
