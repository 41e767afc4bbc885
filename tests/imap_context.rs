//! CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267) end to end: the real daemon, Python's
//! imaplib as two clients. One holds live SEARCH and SORT results (`RETURN (UPDATE)`);
//! the other appends, sets flags and expunges, and mail arrives over the daemon's own
//! SMTP listener. The first client checks the `ADDTO` / `REMOVEFROM` lines (with the
//! SORT positions), during IDLE too, and that `CANCELUPDATE` stops them.

mod common;

use common::{Server, py_deliver};

const ALICE: &str = "alice@home.arpa";
const PW: &str = "alice-password-1";

const RAW: &str = r#"b"From: Bob <bob@example.com>\r\nTo: alice@home.arpa\r\nSubject: Kale recipes\r\n\r\nhello\r\n""#;

const PY_CONTEXT: &str = r#"
import imaplib, re
imaplib.Commands.setdefault('CANCELUPDATE', ('SELECTED',))
def login():
    M = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)
    typ, _ = M.login(ALICE, PW)
    check(typ == 'OK', 'login', typ)
    return M
def ok(r, what):
    check(r[0] == 'OK', what, r)
    return r[1]
def esearch(M):
    return [x.decode() for x in M.untagged_responses.pop('ESEARCH', [])]
def append(M, subject):
    msg = ('From: x@x.example\r\nSubject: %s\r\n\r\nbody\r\n' % subject).encode()
    data = ok(M.append('INBOX', None, None, msg), 'APPEND')
    return int(re.search(rb'APPENDUID \d+ (\d+)', data[0]).group(1))
"#;

#[test]
fn live_search_and_sort_updates_between_two_clients() {
    let s = Server::start();
    s.add_user(ALICE, PW);
    s.python(&format!(
        r#"ALICE = {ALICE:?}
PW = {PW:?}
{PY_CONTEXT}
A = login()
B = login()
caps = ok(A.capability(), 'CAPABILITY')[0].decode().split()
for c in ['ESORT', 'CONTEXT=SEARCH', 'CONTEXT=SORT']:
    check(c in caps, 'capability', c, caps)
# UIDs 1..4 in arrival order: Tea, Apple, Melon, Lunch.
u = {{}}
for subj in ['Tea', 'Apple', 'Melon', 'Lunch']:
    u[subj] = append(B, subj)
ok(A.select('INBOX'), 'SELECT')
ok(B.select('INBOX'), 'SELECT B')

# A live UID SEARCH for unread mail and a live UID SORT by subject.
ok(A._simple_command('UID', 'SEARCH', 'RETURN (ALL UPDATE)', 'UNSEEN'), 'SEARCH UPDATE')
es = esearch(A)
check(len(es) == 1 and es[0].endswith(' UID ALL 1:4'), 'initial SEARCH', es)
search_tag = re.search(r'TAG "([^"]+)"', es[0]).group(1)
ok(A._simple_command('UID', 'SORT', 'RETURN (ALL UPDATE)', '(SUBJECT)', 'UTF-8', 'UNSEEN'), 'SORT UPDATE')
es = esearch(A)
want = ' UID ALL %d,%d,%d,%d' % (u['Apple'], u['Lunch'], u['Melon'], u['Tea'])
check(len(es) == 1 and es[0].endswith(want), 'initial SORT', es, want)
sort_tag = re.search(r'TAG "([^"]+)"', es[0]).group(1)

# Mail over SMTP ("Kale recipes"; the 250 after DATA means it is stored), then an
# APPEND ("Banana") from the other client.
{deliver}
u['Kale'] = 5
u['Banana'] = append(B, 'Banana')
check(u['Banana'] == 6, 'UIDs', u)
ok(A.noop(), 'NOOP')
got = esearch(A)
# SEARCH: position 0 and the set (RFC 5267 §4.3). SORT, by subject Apple Banana Kale
# Lunch Melon Tea: Banana at 2, Kale at 3, in ascending position.
check(got == ['(TAG "%s") UID ADDTO (0 5:6)' % search_tag,
              '(TAG "%s") UID ADDTO (2 6 3 5)' % sort_tag], 'ADDTO', got)

# The other client reads Melon (SORT position 5) and expunges Apple (position 1):
# REMOVEFROM, highest position first.
ok(B.uid('STORE', str(u['Melon']), '+FLAGS', '(\\Seen)'), 'STORE Seen')
ok(B.uid('STORE', str(u['Apple']), '+FLAGS', '(\\Deleted)'), 'STORE Deleted')
ok(B.expunge(), 'EXPUNGE')
ok(A.noop(), 'NOOP')
got = esearch(A)
check(got == ['(TAG "%s") UID REMOVEFROM (0 2:3)' % search_tag,
              '(TAG "%s") UID REMOVEFROM (5 3 1 2)' % sort_tag], 'REMOVEFROM', got)

# During IDLE: Melon unread again comes back at position 4 (Banana Kale Lunch Melon
# Tea), pushed without a command.
tag = A._new_tag()
A.send(tag + b' IDLE\r\n')
check(A.readline().startswith(b'+'), 'IDLE continuation')
ok(B.uid('STORE', str(u['Melon']), '-FLAGS', '(\\Seen)'), 'STORE -Seen')
A.sock.settimeout(10)
lines = []
while not any(b'REMOVEFROM' not in l and b'ADDTO' in l and sort_tag.encode() in l for l in lines):
    lines.append(A.readline())
    check(len(lines) < 20, 'IDLE lines', lines)
A.sock.settimeout(TIMEOUT)
text = b''.join(lines).decode()
check('* ESEARCH (TAG "%s") UID ADDTO (4 %d)\r\n' % (sort_tag, u['Melon']) in text, 'IDLE SORT ADDTO', text)
A.send(b'DONE\r\n')
line = A.readline()
while line.startswith(b'*'):
    line = A.readline()
check(line.startswith(tag + b' OK'), 'IDLE done', line)
esearch(A)

# CANCELUPDATE ends the SORT's updates; the SEARCH's go on. An unknown tag is BAD.
ok(A._simple_command('CANCELUPDATE', '"%s"' % sort_tag), 'CANCELUPDATE')
try:
    r = A._simple_command('CANCELUPDATE', '"%s"' % sort_tag)
    raise SystemExit('check failed: CANCELUPDATE twice answered %r' % (r,))
except imaplib.IMAP4.error as e:
    check('BAD' in str(e) and 'No live result' in str(e), 'CANCELUPDATE twice', e)
newest = append(B, 'Aardvark')
ok(A.noop(), 'NOOP')
got = esearch(A)
check(got == ['(TAG "%s") UID ADDTO (0 %d)' % (search_tag, newest)], 'after CANCELUPDATE', got)
A.logout()
B.logout()
print('ok')
"#,
        deliver = py_deliver("bob@example.com", &[ALICE], RAW)
    ));
}
