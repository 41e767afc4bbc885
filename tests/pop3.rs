//! POP3 end to end (issue 6): the real daemon, Python's poplib as the client, test mail
//! delivered over the daemon's own SMTP MX listener.

mod common;

use common::{Server, py_deliver};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const ALICE: &str = "alice@home.arpa";
const PW: &str = "alice-password-1";

/// Two messages: a plain one and one with lines that need dot-stuffing.
const RAW1: &str =
    r#"b"From: x@example.com\r\nTo: alice@home.arpa\r\nSubject: first\r\n\r\nhello\r\n""#;
const RAW2: &str = r#"b"From: x@example.com\r\nTo: alice@home.arpa\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n""#;

/// A daemon with alice and the two messages in her INBOX.
fn server_with_mail(extra: &str) -> Server {
    let s = Server::start_with(extra);
    s.add_user(ALICE, PW);
    s.python(&format!(
        "{}{}",
        py_deliver("x@example.com", &[ALICE], RAW1),
        py_deliver("x@example.com", &[ALICE], RAW2)
    ));
    s
}

fn py_login(port: &str) -> String {
    let connect = match port {
        "pop3s" => "poplib.POP3_SSL(H, PORT['pop3s'], context=CTX, timeout=TIMEOUT)",
        _ => "poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)",
    };
    format!(
        "def login():\n    p = {connect}\n    p.user({ALICE:?})\n    p.pass_({PW:?})\n    return p\n"
    )
}

#[test]
fn stls_user_pass_stat_list_uidl_top_retr() {
    let s = server_with_mail("");
    s.python(&format!(
        r#"
RAW = [{RAW1}, {RAW2}]
p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)
check("STLS" in p.capa(), p.capa())
p.stls(context=CTX)
check("STLS" not in p.capa(), "STLS offered inside TLS")
p.user({ALICE:?})
check(p.pass_({PW:?}).startswith(b"+OK"))
count, total = p.stat()
check(count == 2, "STAT", count)
sizes = [int(l.split()[1]) for l in p.list()[1]]
check(total == sum(sizes), total, sizes)
uids = [l.split()[1] for l in p.uidl()[1]]
check(len(set(uids)) == 2, uids)
for u in uids:
    v, n = u.split(b".")
    check(v.isdigit() and n.isdigit(), "UIDL is uidvalidity.uid", u)
for i, raw in enumerate(RAW, 1):
    lines = p.retr(i)[1]
    orig = raw.split(b"\r\n")[:-1]
    check(lines[0].startswith(b"Authentication-Results: "), lines[0])
    check(any(l.startswith(b"Received: from ") for l in lines[:8]), lines[:8])
    check(lines[-len(orig):] == orig, "message intact", lines)
    # RFC 1939 §11: the size is the octets as sent, every line ending a CRLF.
    check(sizes[i - 1] == sum(len(l) + 2 for l in lines), sizes[i - 1], lines)
top0 = p.top(2, 0)[1]
check(top0[-1] == b"" and b"Subject: dots" in top0 and b".leading dot" not in top0, top0)
top1 = p.top(2, 1)[1]
check(top1[-1] == b".leading dot" and len(top1) == len(top0) + 1, top1)
check(p.quit().startswith(b"+OK"))
"#
    ));
}

#[test]
fn auth_plain_over_pop3s() {
    let s = server_with_mail("");
    s.python(&format!(
        r#"
p = poplib.POP3_SSL(H, PORT['pop3s'], context=CTX, timeout=TIMEOUT)
caps = p.capa()
check("SASL" in caps and "PLAIN" in caps["SASL"], caps)
check("STLS" not in caps, "STLS on the implicit TLS port", caps)
ir = base64.b64encode(b"\0" + {ALICE:?}.encode() + b"\0" + {PW:?}.encode()).decode()
check(p._shortcmd("AUTH PLAIN " + ir).startswith(b"+OK"))
check(p.stat()[0] == 2)
p.quit()
p = poplib.POP3_SSL(H, PORT['pop3s'], context=CTX, timeout=TIMEOUT)
bad = base64.b64encode(b"\0" + {ALICE:?}.encode() + b"\0wrong").decode()
expect_error("[AUTH]", p._shortcmd, "AUTH PLAIN " + bad)
p.quit()
"#
    ));
}

#[test]
fn dele_rset_then_dele_quit_removes_for_good() {
    let s = server_with_mail("");
    s.python(&format!(
        r#"
{login}
p = login()
uid2 = p.uidl(2).split()[2]
p.dele(1)
check(p.stat()[0] == 1)
expect_error("-ERR", p.retr, 1)
p.rset()
check(p.stat()[0] == 2, "RSET restores")
p.dele(1)
check(p.quit().startswith(b"+OK"))
p = login()
check(p.stat()[0] == 1, "deleted at QUIT")
check(p.uidl(1).split()[2] == uid2, "UIDL stable", uid2)
check(b"Subject: dots" in p.top(1, 0)[1])
p.quit()
"#,
        login = py_login("pop3s")
    ));
}

#[test]
fn dropped_connection_applies_no_deletion() {
    let s = server_with_mail("");
    s.python(&format!(
        r#"
{login}
p = login()
p.dele(1)
p.dele(2)
p.sock.shutdown(socket.SHUT_RDWR)
p.file.close()
p.sock.close()
# The lock is released when the daemon sees the close; allow it a moment.
q = None
for _ in range(200):
    try:
        q = login()
        break
    except poplib.error_proto as e:
        check("IN-USE" in str(e), e)
        time.sleep(0.05)
check(q is not None, "the lock was never released")
check(q.stat()[0] == 2, "no deletion without QUIT")
p = q
p.quit()
"#,
        login = py_login("pop3")
    ));
}

#[test]
fn second_session_gets_in_use() {
    let s = server_with_mail("");
    s.python(&format!(
        r#"
{login}
a = login()
b = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)
b.user({ALICE:?})
expect_error("[IN-USE]", b.pass_, {PW:?})
a.quit()
b.user({ALICE:?})
check(b.pass_({PW:?}).startswith(b"+OK"), "the lock is released by QUIT")
b.quit()
"#,
        login = py_login("pop3s")
    ));
}

#[test]
fn wrong_password_is_refused() {
    let s = server_with_mail("");
    s.python(&format!(
        r#"
p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)
p.user({ALICE:?})
expect_error("[AUTH]", p.pass_, "not-the-password")
p.user("ghost@home.arpa")
expect_error("[AUTH]", p.pass_, {PW:?})
p.quit()
"#
    ));
}

#[test]
fn plaintext_user_pass_from_loopback_is_allowed() {
    let s = server_with_mail("");
    s.python(&format!(
        r#"
p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)
check("USER" in p.capa())
p.user({ALICE:?})
check(p.pass_({PW:?}).startswith(b"+OK"))
check(p.stat()[0] == 2)
p.quit()
"#
    ));
}

#[test]
fn plaintext_refused_outside_plaintext_networks() {
    let s = server_with_mail("[auth]\nplaintext_networks = [\"10.0.0.0/8\"]\n");
    s.python(&format!(
        r#"
p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)
caps = p.capa()
check("USER" not in caps and "SASL" not in caps and "STLS" in caps, caps)
expect_error("[AUTH]", p.user, {ALICE:?})
ir = base64.b64encode(b"\0" + {ALICE:?}.encode() + b"\0" + {PW:?}.encode()).decode()
expect_error("[AUTH]", p._shortcmd, "AUTH PLAIN " + ir)
p.stls(context=CTX)
check("USER" in p.capa())
p.user({ALICE:?})
check(p.pass_({PW:?}).startswith(b"+OK"))
p.quit()
"#
    ));
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
fn shutdown_sends_the_pop3_goodbye_and_exits_cleanly() {
    let mut s = Server::start();
    let mut c = connect(s.port("pop3"));
    assert!(read_line(&mut c).starts_with("+OK"));
    c.get_mut().write_all(b"CAPA\r\n").unwrap();
    while read_line(&mut c) != ".\r\n" {}
    let status = s.terminate();
    assert_eq!(
        read_line(&mut c),
        "-ERR [SYS/TEMP] server shutting down\r\n"
    );
    assert!(status.success(), "{status}: {}", s.log());
}

#[test]
fn per_ip_cap_refuses_with_sys_temp() {
    let s = Server::start_with("[limits]\nmax_connections_per_ip = 2\n");
    let mut a = connect(s.port("pop3"));
    let mut b = connect(s.port("pop3s"));
    assert!(read_line(&mut a).starts_with("+OK"));
    let _ = &mut b; // holds a place (TLS handshake pending is enough)
    std::thread::sleep(Duration::from_millis(200));
    let mut c = connect(s.port("pop3"));
    assert_eq!(
        read_line(&mut c),
        "-ERR [SYS/TEMP] too many connections, try again later\r\n"
    );
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "closed after the busy line");
    drop((a, b));
}

#[test]
fn idle_connection_is_closed_without_a_response() {
    let s = Server::start_with("[limits]\npop3_idle_timeout = 1\n");
    let mut c = connect(s.port("pop3"));
    assert!(read_line(&mut c).starts_with("+OK"));
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "RFC 1939 §3: no response on autologout");
}

#[test]
fn port_in_use_is_a_one_line_error_naming_service_and_address() {
    let mut ports = common::free_ports();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    ports[5] = port; // pop3
    let err = match Server::try_start_on("", ports) {
        Ok(_) => panic!("started although {port} is in use"),
        Err(e) => e,
    };
    assert!(err.contains("exited with exit status: 1"), "{err}");
    let line = format!("letterbox: cannot listen for pop3 on 127.0.0.1:{port}: ");
    assert!(err.contains(&line), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("letterbox:")).count(),
        1,
        "{err}"
    );
}
