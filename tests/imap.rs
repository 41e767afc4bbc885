//! IMAP end to end (issue 5): the real daemon, Python's imaplib as the client following
//! the first-sync sequence of Thunderbird and Apple Mail, mail delivered over the daemon's
//! own SMTP MX listener, and POP3 changing the same INBOX.

mod common;

use common::{Server, py_deliver};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

const ALICE: &str = "alice@home.arpa";
const PW: &str = "alice-password-1";

const RAW1: &str = r#"b"From: Bob <bob@example.com>\r\nTo: alice@home.arpa\r\nSubject: first\r\nMessage-ID: <1@example.com>\r\n\r\nhello\r\n""#;
const RAW2: &str = r#"b"From: Carol <carol@example.com>\r\nTo: alice@home.arpa\r\nSubject: pushed\r\n\r\nwhile idling\r\n""#;

/// Helpers shared by the scripts: login and raw IDLE (imaplib 3.11 has no idle()).
const PY_IMAP: &str = r#"
import imaplib, re
imaplib.Commands.setdefault('ID', ('NONAUTH', 'AUTH', 'SELECTED'))
def imap_login(port='imap'):
    if port == 'imaps':
        M = imaplib.IMAP4_SSL(H, PORT['imaps'], ssl_context=CTX, timeout=TIMEOUT)
    else:
        M = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)
    typ, _ = M.login(ALICE, PW)
    check(typ == 'OK', 'login', typ)
    return M
def ok(r, what):
    check(r[0] == 'OK', what, r)
    return r[1]
"#;

fn server_with_mail() -> Server {
    let s = Server::start();
    s.add_user(ALICE, PW);
    s.python(&py_deliver("bob@example.com", &[ALICE], RAW1));
    s
}

fn py(script: &str) -> String {
    format!("ALICE = {ALICE:?}\nPW = {PW:?}\n{PY_IMAP}\n{script}")
}

#[test]
fn first_sync_idle_store_move_expunge_append() {
    let s = server_with_mail();
    s.python(&py(&format!(
        r#"
RAW1 = {RAW1}
M = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)
caps = ok(M.capability(), 'CAPABILITY')[0].decode()
for c in ['IMAP4rev2', 'IDLE', 'UIDPLUS', 'MOVE', 'CONDSTORE', 'QRESYNC', 'SPECIAL-USE',
          'LIST-STATUS', 'ESEARCH', 'AUTH=PLAIN', 'SASL-IR', 'STARTTLS', 'APPENDLIMIT=']:
    check(c in caps, 'capability', c, caps)
ok(M._simple_command('ID', '("name" "imaplib")'), 'ID')
idr = M._untagged_response('OK', [None], 'ID')[1]
check(b'Letterbox' in idr[0], 'ID reply', idr)
ok(M.login(ALICE, PW), 'LOGIN')

# LIST with SPECIAL-USE and STATUS in one round trip (RFC 6154, RFC 5819).
lst = ok(M.list('""', '"*" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))'), 'LIST')
names = {{}}
for l in lst:
    m = re.match(rb'\((.*?)\) "/" (.*)', l)
    names[m.group(2).decode().strip('"')] = m.group(1).decode()
for want, attr in [('INBOX', ''), ('Sent', '\\Sent'), ('Trash', '\\Trash'), ('Drafts', '\\Drafts'),
                   ('Junk', '\\Junk'), ('Archive', '\\Archive')]:
    check(want in names and attr in names[want], want, names)
st = M.untagged_responses.pop('STATUS', [])
check(any(b'INBOX (MESSAGES 1 UNSEEN 1)' in x for x in st), 'LIST-STATUS', st)

typ, data = M.select('INBOX (CONDSTORE)')
check(typ == 'OK' and data == [b'1'], 'SELECT', typ, data)
check(M.untagged_responses.get('HIGHESTMODSEQ'), 'HIGHESTMODSEQ', M.untagged_responses)
res = ok(M.uid('FETCH', '1:*', '(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)'), 'UID FETCH')
head = res[0] if isinstance(res[0], bytes) else res[0][0]
check(b'ENVELOPE (' in head and b'"first"' in head and b'"bob" "example.com"' in head, head)
check(b'BODYSTRUCTURE ("text" "plain"' in head.replace(b'"TEXT" "PLAIN"', b'"text" "plain"'), head)
uid1 = int(re.search(rb'UID (\d+)', head).group(1))
size = int(re.search(rb'RFC822.SIZE (\d+)', head).group(1))
body = ok(M.uid('FETCH', str(uid1), '(BODY.PEEK[])'), 'BODY.PEEK')[0][1]
check(len(body) == size and body.endswith(RAW1), 'delivered bytes', body)
check(body.startswith(b'Authentication-Results: ') and b'\r\nReceived: ' in body[:len(body) - len(RAW1)], body[:80])
flags = ok(M.uid('FETCH', str(uid1), '(FLAGS)'), 'FLAGS')[0]
check(b'\\Seen' not in flags, 'PEEK does not set \\Seen', flags)

# IDLE: a delivery over SMTP arrives as EXISTS within 2 s, no polling.
tag = M._new_tag()
M.send(tag + b' IDLE\r\n')
check(M.readline().startswith(b'+'), 'IDLE continuation')
t0 = time.time()
{deliver}
M.sock.settimeout(2)
line = M.readline()
check(line == b'* 2 EXISTS\r\n', 'pushed EXISTS', line, time.time() - t0)
check(time.time() - t0 < 2, 'push latency', time.time() - t0)
M.sock.settimeout(TIMEOUT)
M.send(b'DONE\r\n')
line = M.readline()
while line.startswith(b'*'):
    line = M.readline()
check(line.startswith(tag + b' OK'), 'IDLE done', line)

ok(M.uid('STORE', str(uid1), '+FLAGS', '(\\Seen)'), 'UID STORE')
flags = ok(M.uid('FETCH', str(uid1), '(FLAGS)'), 'FLAGS')[0]
check(b'\\Seen' in flags, flags)
# UID MOVE to Trash (RFC 6851) with COPYUID.
typ, data = M.uid('MOVE', str(uid1), 'Trash')
check(typ == 'OK', 'MOVE', typ, data)
check(M.untagged_responses.pop('EXPUNGE', None) == [b'1'], 'MOVE expunged message 1')
typ, data = M.status('Trash', '(MESSAGES)')
check(b'MESSAGES 1' in data[0], data)
# The pushed message is now 1: delete and EXPUNGE it.
ok(M.store('1', '+FLAGS.SILENT', '(\\Deleted)'), 'STORE')
typ, data = M.expunge()
check(typ == 'OK' and data == [b'1'], 'EXPUNGE', typ, data)
typ, data = M.select('INBOX')
check(data == [b'0'], 'empty INBOX', data)

# APPEND to Sent with flags and a date; APPENDUID (RFC 4315).
msg = b'From: alice@home.arpa\r\nTo: bob@example.com\r\nSubject: sent\r\n\r\nbye\r\n'
typ, data = M.append('Sent', '(\\Seen)', imaplib.Time2Internaldate(1700000000), msg)
check(typ == 'OK' and b'APPENDUID' in data[0], 'APPEND', typ, data)
uv, auid = re.search(rb'APPENDUID (\d+) (\d+)', data[0]).groups()
M.select('Sent', readonly=True)
resp = ok(M.uid('FETCH', auid.decode(), '(BODY.PEEK[] INTERNALDATE FLAGS)'), 'FETCH Sent')
check(resp[0][1] == msg, resp)
check(b'14-Nov-2023' in resp[1] and b'\\Seen' in resp[1], resp)
M.logout()
"#,
        deliver = py_deliver("carol@example.com", &[ALICE], RAW2)
    )));
}

#[test]
fn authenticate_plain_and_search() {
    let s = server_with_mail();
    s.python(&py(r#"
M = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)
typ, data = M.authenticate('PLAIN', lambda _: ('\0' + ALICE + '\0' + PW).encode())
check(typ == 'OK', 'AUTHENTICATE', typ, data)
M.select('INBOX')
typ, data = M.search(None, 'TEXT', 'HELLO')
check(data == [b'1'], 'SEARCH TEXT', data)
typ, data = M.search('UTF-8', 'SUBJECT', 'nothing-like-this')
check(data == [b''], data)
typ, data = M.uid('SEARCH', 'RETURN', '(COUNT)', 'ALL')
check(typ == 'OK', typ, data)
check(any(b'COUNT 1' in x for x in M.untagged_responses.get('ESEARCH', [])), M.untagged_responses)
M.logout()
"#));
}

#[test]
fn pop3_dele_is_seen_as_expunge_by_an_imap_session() {
    let s = server_with_mail();
    s.python(&py(r#"
M = imap_login()
typ, data = M.select('INBOX')
check(data == [b'1'], data)
p = poplib.POP3(H, PORT['pop3'], timeout=TIMEOUT)
p.user(ALICE)
p.pass_(PW)
p.dele(1)
p.quit()
typ, data = M.noop()
check(M.untagged_responses.get('EXPUNGE') == [b'1'], 'EXPUNGE after POP3 QUIT', M.untagged_responses)
M.logout()
"#));
}

#[test]
fn imaps_and_starttls() {
    let s = server_with_mail();
    s.python(&py(r#"
M = imap_login('imaps')
typ, data = M.select('INBOX')
check(data == [b'1'], data)
M.logout()
M = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)
ok(M.starttls(ssl_context=CTX), 'STARTTLS')
check('STARTTLS' not in M.capabilities, 'no STARTTLS inside TLS', M.capabilities)
ok(M.login(ALICE, PW), 'LOGIN inside TLS')
M.logout()
"#));
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    line
}

#[test]
fn malformed_command_and_over_limit_literal() {
    let s = server_with_mail();
    let c = TcpStream::connect(("127.0.0.1", s.port("imap"))).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut w = c.try_clone().expect("clone");
    let mut r = BufReader::new(c);
    assert!(read_line(&mut r).starts_with("* OK [CAPABILITY "));
    w.write_all(b"a FROBNICATE\r\n").unwrap();
    assert!(read_line(&mut r).starts_with("a BAD "));
    w.write_all(b"b NOOP\r\n").unwrap();
    assert_eq!(read_line(&mut r), "b OK NOOP completed\r\n");
    w.write_all(format!("c LOGIN {ALICE} {PW}\r\n").as_bytes())
        .unwrap();
    assert!(read_line(&mut r).starts_with("c OK "));
    // 100 MB against the 50 MiB default: refused before a single byte is sent.
    w.write_all(b"d APPEND INBOX {100000000}\r\n").unwrap();
    let line = read_line(&mut r);
    assert!(line.starts_with("d NO [TOOBIG]"), "{line}");
    w.write_all(b"e LOGOUT\r\n").unwrap();
    assert!(read_line(&mut r).starts_with("* BYE"));
    assert!(read_line(&mut r).starts_with("e OK"));
}

/// curl as a second, independent client over IMAPS: LIST, then a message by number.
#[test]
fn curl_over_imaps() {
    let s = server_with_mail();
    let base = format!("imaps://127.0.0.1:{}/", s.port("imaps"));
    let curl = |url: &str| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "-k", "--max-time", "20", "--user"])
            .arg(format!("{ALICE}:{PW}"))
            .arg(url);
        let out = common::run_bounded(cmd, b"", common::RUN_TIMEOUT);
        assert!(
            out.status.success(),
            "curl {url}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = curl(&base);
    assert!(list.contains("\"/\" INBOX"), "{list}");
    assert!(list.contains("\\Sent"), "{list}");
    let msg = curl(&format!("{base}INBOX;UID=1"));
    assert!(msg.contains("Subject: first"), "{msg}");
    assert!(msg.ends_with("\r\nhello\r\n"), "{msg:?}");
}

/// SEARCH BODY / TEXT match the decoded text (RFC 9051 §6.4.4, as Dovecot): a base64
/// UTF-8 part and a quoted-printable ISO-8859-1 part, searched with CHARSET UTF-8
/// literals, case-insensitively beyond ASCII; the encoded form itself does not match.
#[test]
fn search_matches_decoded_bodies() {
    let s = server_with_mail();
    let raw = r#"b"From: Dora <dora@example.com>\r\nTo: alice@home.arpa\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"xx\"\r\n\r\n--xx\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes("Schöne Grüße aus Köln".encode()).replace(b"\n", b"\r\n") + b"--xx\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Caf=E9 cr=E8me br=FBl=E9e</p>\r\n--xx--\r\n""#;
    s.python(&py(&format!(
        r#"
{deliver}
M = imap_login()
M.select('INBOX')
def search(key, text):
    M.literal = text.encode('utf-8')
    typ, data = M.search('UTF-8', key)
    check(typ == 'OK', key, text, data)
    return data[0].split()
check(search('BODY', 'KÖLN') == [b'2'], 'base64 UTF-8 body, case-folded')
check(search('BODY', 'crème brûlée') == [b'2'], 'quoted-printable ISO-8859-1 body')
check(search('TEXT', 'grüße') == [b'2'], 'TEXT: the decoded subject and body')
check(search('BODY', 'U2Now') == [], 'the base64 text is not the body')
check(search('BODY', 'hello') == [b'1'], 'a plain body')
# "Café", not "Caf": the Received header's hex trace id may hold "caf" (that flaked).
check(search('TEXT', 'Café') == [b'2'], 'TEXT: the decoded HTML part')
M.logout()
"#,
        deliver = py_deliver("dora@example.com", &[ALICE], raw)
    )));
}

/// Issue 14 through a real client (Python's imaplib): a message that *is* a forwarded
/// message (top-level message/rfc822) holding a multipart with a quoted-printable text
/// and a nested message/rfc822. Part numbers inside the enclosed message (RFC 9051
/// §6.4.5), BINARY / BINARY.SIZE / partial BINARY of the quoted-printable part in
/// decoded octets (RFC 3516, RFC 2045 §6.7), ENVELOPE groups with RFC 3501 §7.4.2
/// markers, and SEARCH TO on a group member with a quoted local part.
#[test]
fn forwarded_message_parts_binary_groups_and_search() {
    let s = server_with_mail();
    s.python(&py(r#"
msg = (b'From: Fwd <fwd@example.org>\r\n'
       b'To: Team: Ann <ann@a.test>, "bob smith"@b.test;, undisclosed-recipients:; (nobody)\r\n'
       b'Subject: forwarded\r\n'
       b'MIME-Version: 1.0\r\n'
       b'Content-Type: message/rfc822\r\n'
       b'\r\n'
       b'From: inner@example.org\r\n'
       b'Subject: inner\r\n'
       b'MIME-Version: 1.0\r\n'
       b'Content-Type: multipart/mixed; boundary="i"\r\n'
       b'\r\n'
       b'--i\r\n'
       b'Content-Type: text/plain; charset=utf-8\r\n'
       b'Content-Transfer-Encoding: quoted-printable\r\n'
       b'\r\n'
       b'caf=C3=A9 soft=  \r\n'
       b'break  \r\n'
       b'--i\r\n'
       b'Content-Type: message/rfc822\r\n'
       b'\r\n'
       b'From: nested@example.org\r\n'
       b'Subject: nested\r\n'
       b'\r\n'
       b'N1\r\n'
       b'--i--\r\n')
M = imap_login()
ok(M.append('INBOX', None, None, msg), 'APPEND')
M.select('INBOX')
n = '2'
def fetch(item):
    d = ok(M.fetch(n, '(' + item + ')'), item)
    return d[0][1] if isinstance(d[0], tuple) else d[0]
inner = msg[msg.index(b'From: inner'):]
check(fetch('BODY.PEEK[1]') == inner, '1 is the enclosed message')
check(fetch('BODY.PEEK[1.HEADER]') == inner[:inner.index(b'\r\n\r\n') + 4], '1.HEADER')
check(fetch('BODY.PEEK[1.TEXT]') == inner[inner.index(b'\r\n\r\n') + 4:], '1.TEXT')
check(fetch('BODY.PEEK[1.1]') == b'caf=C3=A9 soft=  \r\nbreak  ', '1.1', fetch('BODY.PEEK[1.1]'))
check(fetch('BODY.PEEK[1.2]') == b'From: nested@example.org\r\nSubject: nested\r\n\r\nN1', '1.2', fetch('BODY.PEEK[1.2]'))
check(fetch('BODY.PEEK[1.2.MIME]') == b'Content-Type: message/rfc822\r\n\r\n', '1.2.MIME')
check(fetch('BODY.PEEK[1.2.HEADER]') == b'From: nested@example.org\r\nSubject: nested\r\n\r\n', '1.2.HEADER')
check(fetch('BODY.PEEK[1.2.1]') == b'N1', '1.2.1')
check(fetch('BODY.PEEK[1.3]') == b'', '1.3 names no part')
decoded = 'café softbreak'.encode()
check(fetch('BINARY.PEEK[1.1]') == decoded, 'BINARY[1.1]', fetch('BINARY.PEEK[1.1]'))
size = fetch('BINARY.SIZE[1.1]')
check(b'BINARY.SIZE[1.1] %d' % len(decoded) in size, 'BINARY.SIZE', size)
d = ok(M.fetch(n, '(BINARY.PEEK[1.1]<3.2>)'), 'partial BINARY')
check(b'BINARY[1.1]<3>' in d[0][0] and d[0][1] == 'é'.encode(), 'partial BINARY counts decoded octets', d)
check(fetch('BINARY.PEEK[1.2]') == fetch('BODY.PEEK[1.2]'), 'BINARY of a message/rfc822 part')
bs = fetch('BODYSTRUCTURE').upper()
check(b'("MESSAGE" "RFC822"' in bs and b'"QUOTED-PRINTABLE"' in bs, 'BODYSTRUCTURE', bs)
env = fetch('ENVELOPE')
want = (b'((NIL NIL "Team" NIL)("Ann" NIL "ann" "a.test")(NIL NIL "\\"bob smith\\"" "b.test")'
        b'(NIL NIL NIL NIL)(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))')
check(want in env, 'ENVELOPE groups', env)
for key, value in [('TO', '"bob smith@b.test"'), ('TO', 'Team'), ('TO', '"Ann <ann@a.test>"'), ('FROM', 'fwd')]:
    typ, data = M.search(None, key, value)
    check(data == [b'2'], 'SEARCH', key, value, data)
typ, data = M.search(None, 'TO', '"carol"')
check(data == [b''], 'SEARCH TO carol', data)
M.logout()
"#));
}

/// SORT and THREAD (RFC 5256, RFC 5957, RFC 5267) through imaplib's `sort()` and
/// `thread()`, on messages appended with their own dates and reply headers.
#[test]
fn sort_and_thread_with_imaplib() {
    let s = Server::start();
    s.add_user(ALICE, PW);
    s.python(&py(r#"
M = imap_login()
caps = ok(M.capability(), 'CAPABILITY')[0].decode().split()
for c in ['SORT', 'SORT=DISPLAY', 'ESORT', 'THREAD=ORDEREDSUBJECT', 'THREAD=REFERENCES', 'THREAD=REFS']:
    check(c in caps, 'capability', c, caps)
msgs = [
    b"From: Bob <bob@b.example>\r\nTo: zed@z.example\r\nSubject: Re: Lunch\r\nDate: 2 Jan 2026 10:00:00 +0000\r\nMessage-ID: <b@x>\r\nReferences: <a@x>\r\n\r\nok\r\n",
    b"From: Zoe <alice@a.example>\r\nSubject: Lunch\r\nDate: Thu, 1 Jan 2026 11:00:00 +0100\r\nMessage-ID: <a@x>\r\n\r\nnoon?\r\n",
    b"From: =?utf-8?q?=C3=89mile?= <emile@e.example>\r\nSubject: Dinner\r\nDate: 5 Jan 2026 09:00:00 -0500\r\nMessage-ID: <c@x>\r\n\r\nhungry\r\n",
    b"Subject: [list] lunch\r\nDate: 3 Jan 2026 10:00:00 +0000\r\nMessage-ID: <d@x>\r\nIn-Reply-To: <b@x>\r\n\r\nme too\r\n",
]
for m in msgs:
    ok(M.append('INBOX', None, None, m), 'APPEND')
ok(M.select('INBOX'), 'SELECT')
check(ok(M.sort('(SUBJECT)', 'UTF-8', 'ALL'), 'SORT') == [b'3 1 2 4'], 'SORT SUBJECT')
check(ok(M.sort('(REVERSE DATE)', 'UTF-8', 'ALL'), 'SORT') == [b'3 4 1 2'], 'SORT REVERSE DATE')
check(ok(M.sort('(DISPLAYFROM)', 'US-ASCII', 'ALL'), 'SORT') == [b'4 1 3 2'], 'SORT DISPLAYFROM')
check(ok(M.sort('(SUBJECT REVERSE DATE)', 'UTF-8', 'SUBJECT', 'lunch'), 'SORT') == [b'4 1 2'], 'SORT search')
uids = ok(M.uid('SORT', '(DATE)', 'UTF-8', 'ALL'), 'UID SORT')
check(uids == [b'2 1 4 3'], 'UID SORT', uids)
typ, data = M.sort('(DATE)', 'KOI8-R', 'ALL')
check(typ == 'NO', 'BADCHARSET', typ, data)
r = M._simple_command('SORT', 'RETURN (MIN MAX COUNT)', '(SUBJECT)', 'UTF-8', 'ALL')
check(r[0] == 'OK', 'ESORT', r)
es = M.untagged_responses.pop('ESEARCH', [])
check(any(b'MIN 3 MAX 4 COUNT 4' in x for x in es), 'ESORT reply', es)
check(ok(M.thread('REFERENCES', 'UTF-8', 'ALL'), 'THREAD') == [b'(2 1 4)(3)'], 'THREAD REFERENCES')
check(ok(M.thread('ORDEREDSUBJECT', 'UTF-8', 'ALL'), 'THREAD') == [b'(2 (1)(4))(3)'], 'THREAD ORDEREDSUBJECT')
check(ok(M.thread('REFS', 'UTF-8', 'ALL'), 'THREAD') == [b'(2 1 4)(3)'], 'THREAD REFS')
t = ok(M.uid('THREAD', 'REFERENCES', 'UTF-8', 'NOT', 'FROM', 'bob'), 'UID THREAD')
check(t == [b'((2)(4))(3)'], 'UID THREAD', t)
M.logout()
"#));
}
