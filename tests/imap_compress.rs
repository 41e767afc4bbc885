//! IMAP COMPRESS=DEFLATE (RFC 4978) end to end (issue 14 item 3): the real daemon, and a
//! Python client that compresses with zlib (raw DEFLATE, `wbits=-15`) and flushes the way
//! the clients that broke other servers do: `Z_SYNC_FLUSH` in the middle of commands as
//! well as at their ends, one `Z_PARTIAL_FLUSH`, and the compressed bytes written in
//! small, odd-sized pieces (1, 3, 7... bytes) with pauses. Over implicit TLS (imaps) and
//! STARTTLS (imap): LOGIN, COMPRESS, SELECT, FETCH of a few messages (one of 300 KB, so
//! several DEFLATE blocks), APPEND with synchronizing and non-synchronizing literals,
//! IDLE with a delivery pushed during it (it arrives only because the server
//! sync-flushes each response), LOGOUT. Then the hostile cases: garbage after COMPRESS
//! closes the connection (the daemon lives on), and a decompression bomb (a 24 MiB line
//! in a few KB) is refused as a long line with the daemon's memory unchanged.

mod common;

use common::{Server, py_deliver};

const ALICE: &str = "alice@home.arpa";
const PW: &str = "alice-password-1";

/// A client over a socket with optional DEFLATE, reading responses with literals.
const PY_Z: &str = r#"
import zlib, re, random
SIZES = [1, 3, 7, 2, 11, 5, 13, 1, 64, 3]
class Z:
    def __init__(self, sock):
        self.s = sock; self.c = None; self.d = None; self.buf = b''; self.k = 0
        self.wire_in = 0
    def start(self):
        self.c = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.d = zlib.decompressobj(-15)
    def raw(self, data):
        # Odd-sized pieces with a pause now and then.
        i = 0
        while i < len(data):
            n = SIZES[self.k % len(SIZES)]; self.k += 1
            self.s.sendall(data[i:i + n]); i += n
            if self.k % 7 == 0:
                time.sleep(0.003)
    def send(self, data, split=True, flush=zlib.Z_SYNC_FLUSH):
        if self.c is None:
            return self.raw(data)
        # A sync flush in the middle of the command too, not only at its end.
        cut = len(data) // 2 if split and len(data) > 4 else len(data)
        out = self.c.compress(data[:cut]) + self.c.flush(zlib.Z_SYNC_FLUSH)
        if cut < len(data):
            out += self.c.compress(data[cut:]) + self.c.flush(flush)
        self.raw(out)
    def fill(self):
        raw = self.s.recv(65536)
        if not raw:
            raise EOFError('connection closed')
        self.wire_in += len(raw)
        self.buf += self.d.decompress(raw) if self.d else raw
    def line(self):
        while b'\r\n' not in self.buf:
            self.fill()
        i = self.buf.index(b'\r\n') + 2
        l, self.buf = self.buf[:i], self.buf[i:]
        return l
    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        b, self.buf = self.buf[:n], self.buf[n:]
        return b
    def response(self, tag):
        """Lines up to the tagged one; literal data inline as bytes."""
        out = []
        while True:
            l = self.line()
            m = re.search(rb'\{(\d+)\}\r\n$', l)
            if m:
                out.append(l); out.append(self.take(int(m.group(1))))
                continue
            out.append(l)
            if l.startswith(tag + b' '):
                return out
    def cmd(self, tag, text, want=b'OK', **kw):
        self.send(tag + b' ' + text + b'\r\n', **kw)
        r = self.response(tag)
        check(r[-1].startswith(tag + b' ' + want), tag, text, r[-1])
        return r

def connect(port):
    if port == 'imaps':
        s = CTX.wrap_socket(socket.create_connection((H, PORT['imaps']), timeout=TIMEOUT))
        z = Z(s)
        check(z.line().startswith(b'* OK'), 'greeting')
    else:
        s = socket.create_connection((H, PORT['imap']), timeout=TIMEOUT)
        z = Z(s)
        check(z.line().startswith(b'* OK'), 'greeting')
        z.cmd(b's', b'STARTTLS')
        z.s = CTX.wrap_socket(s)
    return z

def login_compress(port):
    z = connect(port)
    caps = z.cmd(b'c', b'CAPABILITY')[0]
    check(b'COMPRESS' not in caps, 'no COMPRESS before login', caps)
    r = z.cmd(b'l', b'LOGIN %s %s' % (ALICE.encode(), PW.encode()))
    check(b' COMPRESS=DEFLATE' in r[-1], 'COMPRESS=DEFLATE after login', r[-1])
    z.cmd(b'u', b'COMPRESS LZW', want=b'BAD')
    z.cmd(b'z', b'COMPRESS DEFLATE')
    # RFC 4978 §3: everything after the tagged OK's CRLF is compressed.
    check(z.buf == b'', 'plain bytes after the OK', z.buf)
    z.start()
    return z
"#;

fn py(script: &str) -> String {
    format!("ALICE = {ALICE:?}\nPW = {PW:?}\n{PY_Z}\n{script}")
}

/// The big message: 300 KB of lines of random hex (half compressible), so several DEFLATE
/// blocks carry it.
const PY_BIG: &str = r#"
random.seed(14)
BIG = b'From: big@example.com\r\nTo: alice@home.arpa\r\nSubject: big\r\n\r\n' + b''.join(
    b'%d %s\r\n' % (i, random.randbytes(36).hex().encode()) for i in range(4000))
check(len(BIG) > 300000, len(BIG))
"#;

fn session_script(port: &str) -> String {
    let deliver = py_deliver(
        "carol@example.com",
        &[ALICE],
        r#"b"From: carol@example.com\r\nTo: alice@home.arpa\r\nSubject: pushed\r\n\r\nwhile idling\r\n""#,
    );
    let deliver = deliver.replace('\n', "\n    ");
    py(&format!(
        r#"
{PY_BIG}
z = login_compress({port:?})
r = z.cmd(b'x', b'COMPRESS DEFLATE', want=b'NO [COMPRESSIONACTIVE]')
caps = z.cmd(b'c', b'CAPABILITY')[0]
check(b'IMAP4rev2' in caps and b'COMPRESS' not in caps, 'CAPABILITY once compressed', caps)
r = z.cmd(b's', b'SELECT INBOX')
n0 = int([l for l in r if l.endswith(b' EXISTS\r\n')][0].split()[1])
# APPEND the big message with a synchronizing literal: wait for '+' in between.
z.send(b'a APPEND INBOX (\\Seen) {{%d}}\r\n' % len(BIG))
check(z.line().startswith(b'+'), 'continuation')
z.send(BIG + b'\r\n')
r = z.response(b'a')
check(r[-1].startswith(b'a OK [APPENDUID'), r[-1])
# And a small one with LITERAL+, flushed partially (Z_PARTIAL_FLUSH) at its end.
small = b'Subject: small\r\n\r\nsmall body\r\n'
z.send(b'b APPEND INBOX {{%d+}}\r\n' % len(small) + small + b'\r\n', flush=zlib.Z_PARTIAL_FLUSH)
r = z.response(b'b')
check(r[-1].startswith(b'b OK [APPENDUID'), r[-1])
# A NOOP after the partial flush: its bytes complete the held ones.
z.cmd(b'n', b'NOOP')
r = z.cmd(b'f', b'FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])')
fetches = [l for l in r if isinstance(l, bytes) and re.match(rb'\* \d+ FETCH', l)]
check(len(fetches) == n0 + 2, 'FETCH of every message', len(fetches), n0)
r = z.cmd(b'g', b'FETCH %d BODY.PEEK[]' % (n0 + 1))
check(r[1] == BIG, 'big message intact', len(r[1]), len(BIG))
r = z.cmd(b'h', b'FETCH %d BODY.PEEK[]' % (n0 + 2))
check(r[1] == small, 'small message intact', r[1])
before = z.wire_in
# IDLE: the push of a delivery arrives compressed, at once (the server sync-flushes).
z.send(b'i IDLE\r\n')
check(z.line().startswith(b'+'), 'IDLE continuation')
t0 = time.time()
if True:
    {deliver}
z.s.settimeout(3)
l = z.line()
check(l == b'* %d EXISTS\r\n' % (n0 + 3), 'pushed EXISTS', l, time.time() - t0)
check(time.time() - t0 < 3, 'push latency', time.time() - t0)
z.s.settimeout(TIMEOUT)
z.send(b'DONE\r\n')
r = z.response(b'i')
check(r[-1].startswith(b'i OK'), r)
check(z.wire_in - before < 200, 'IDLE traffic compressed', z.wire_in - before)
r = z.cmd(b'y', b'LOGOUT')
check(r[0].startswith(b'* BYE'), r)
try:
    check(z.s.recv(100) in (b'',), 'closed after LOGOUT')
except (ssl.SSLError, ConnectionError):
    pass
print('ok', {port:?}, n0)
"#
    ))
}

fn server() -> Server {
    let s = Server::start();
    s.add_user(ALICE, PW);
    s.python(&py_deliver(
        "bob@example.com",
        &[ALICE],
        r#"b"From: Bob <bob@example.com>\r\nTo: alice@home.arpa\r\nSubject: first\r\n\r\nhello\r\n""#,
    ));
    s
}

#[test]
fn compressed_session_over_imaps_and_starttls() {
    let s = server();
    let out = s.python(&session_script("imaps"));
    assert!(out.contains("ok imaps 1"), "{out}");
    let out = s.python(&session_script("imap"));
    assert!(out.contains("ok imap 4"), "{out}");
}

#[test]
fn garbage_and_bombs_after_compress() {
    let s = server();
    let pid = s.pid();
    let out = s.python(&py(&format!(
        r#"
def rss():
    for l in open('/proc/{pid}/status'):
        if l.startswith('VmRSS:'):
            return int(l.split()[1])
def closed(z):
    z.s.settimeout(5)
    try:
        while True:
            if not z.s.recv(4096):
                return True
    except (ssl.SSLError, ConnectionError):
        return True
    except socket.timeout:
        return False

# Garbage (a reserved block type, RFC 1951 §3.2.3) after COMPRESS: the connection closes.
for port in ['imaps', 'imap']:
    z = login_compress(port)
    z.raw(b'\xff' * 40)
    # A compressed BYE first, then the close.
    z.s.settimeout(5)
    l = z.line()
    check(l == b'* BYE [CLIENTBUG] Invalid compressed data\r\n', 'BYE', l)
    check(closed(z), 'garbage closed the connection', port)
# Valid commands, then garbage: the commands are answered, then the close.
z = login_compress('imaps')
z.send(b'n NOOP\r\n')
z.raw(b'\xfe\xfe\xfe\xfe')
check(z.response(b'n')[-1].startswith(b'n OK'), 'NOOP before the garbage')
check(closed(z), 'closed after the garbage')
# Raw zlib (with its header) instead of raw DEFLATE: the header bytes 78 9c do not form
# a valid first block, so the connection closes.
z = login_compress('imaps')
z.raw(zlib.compress(b'n NOOP\r\n'))
check(closed(z), 'zlib header refused')

# A bomb: a 24 MiB command line in a few KB. The framer's 64 KiB line cap applies to
# the decompressed bytes, which arrive 16 KiB at a time: BAD, the session goes on, and
# the daemon's memory does not grow by the bomb's size.
m0 = rss()
z = login_compress('imaps')
z.send(b'x ' + b'a' * (24 << 20), split=False)
z.send(b'\r\nb NOOP\r\n')
r = z.response(b'b')
check(any(l.startswith(b'x BAD') for l in r), 'long line refused', r[:1])
check(r[-1].startswith(b'b OK'), r[-1])
# A bomb as an APPEND literal over APPENDLIMIT: refused by size before any byte.
z.send(b'c APPEND INBOX {{%d}}\r\n' % (200 << 20))
check(z.response(b'c')[-1].startswith(b'c NO [TOOBIG]'), 'TOOBIG')
z.cmd(b'd', b'NOOP')
m1 = rss()
check(m1 - m0 < 16 * 1024, 'memory grew by', m1 - m0, 'KB')
# The daemon lives on.
z2 = login_compress('imap')
z2.cmd(b'e', b'SELECT INBOX')
print('rss', m0, m1)
"#
    )));
    eprintln!("{out}");
}
