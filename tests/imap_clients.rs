//! IMAP against a real synchronising client from Debian (issue 5 §5): mbsync (the `isync`
//! package, .ci/run installs it) keeps a Maildir and the server's mailboxes in step over
//! IMAPS, trusting the daemon's self-signed certificate from `data_dir/tls/cert.pem`.
//!
//! One scenario, in stages, each ending in a full comparison of both sides (every
//! mailbox, every message by Message-ID, its flags and a hash of its bytes with line
//! endings normalised, since Maildir keeps LF, and without the `X-TUID` field mbsync adds
//! to the copies it makes): a first pull into an empty Maildir; local
//! additions, flag changes, a trashed and a deleted message pushed back; server changes
//! (IMAP APPEND / STORE / EXPUNGE / MOVE and an SMTP delivery) pulled again; and a sync
//! with nothing to do that must change nothing on either side. No duplicates, no losses.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, py_deliver, run_bounded};

const ALICE: &str = "alice@home.arpa";
const PW: &str = "alice-password-1";

/// One message as both sides are compared: Message-ID → (flags as Maildir letters,
/// SHA-256 of the bytes with CRLF turned into LF).
type Side = BTreeMap<String, BTreeMap<String, (String, String)>>;

/// Reads both sides in one Python run and prints them as JSON. The server side is read
/// with EXAMINE and BODY.PEEK (nothing changes); a Message-ID seen twice in a mailbox is
/// reported as a duplicate.
const STATE_PY: &str = r#"
import imaplib, hashlib, json, re
FLAGS = {'\\Seen': 'S', '\\Answered': 'R', '\\Flagged': 'F', '\\Draft': 'D', '\\Deleted': 'T'}
def norm(b):
    # mbsync writes an X-TUID field into each message it copies (its own bookkeeping).
    b = re.sub(rb'(?im)^x-tuid: [^\r\n]*\r?\n', b'', b.replace(b'\r\n', b'\n'), count=1)
    return hashlib.sha256(b).hexdigest()
def msgid(b):
    m = re.search(rb'(?im)^message-id:\s*(<[^>\r\n]*>)', b)
    return m.group(1).decode() if m else '(none)'
dups = []
def put(side, box, mid, val):
    d = side.setdefault(box, {})
    if mid in d:
        dups.append((box, mid))
    d[mid] = val
server, modseq = {}, {}
M = imaplib.IMAP4_SSL(H, PORT['imaps'], ssl_context=CTX, timeout=TIMEOUT)
M.login(ALICE, PW)
typ, lst = M.list('""', '*')
check(typ == 'OK', lst)
for l in lst:
    m = re.match(rb'\((.*?)\) "/" (.*)', l)
    attrs, name = m.group(1), m.group(2).decode().strip('"')
    if b'\\Noselect' in attrs or b'\\NonExistent' in attrs:
        continue
    typ, data = M.select('"%s"' % name, readonly=True)
    check(typ == 'OK', name, data)
    modseq[name] = int(M.untagged_responses.get('HIGHESTMODSEQ', [b'0'])[-1])
    server.setdefault(name, {})
    if int(data[0]) == 0:
        continue
    typ, data = M.fetch('1:*', '(FLAGS BODY.PEEK[])')
    check(typ == 'OK', data)
    for item in data:
        if not isinstance(item, tuple):
            continue
        fl = re.search(rb'FLAGS \(([^)]*)\)', item[0]).group(1).decode().split()
        letters = ''.join(sorted(FLAGS[f] for f in fl if f in FLAGS))
        put(server, name, msgid(item[1]), [letters, norm(item[1])])
M.logout()
local = {}
for dirpath, dirs, files in os.walk(MAILDIR):
    if 'cur' not in dirs:
        continue
    box = os.path.relpath(dirpath, MAILDIR)
    local.setdefault(box, {})
    for sub in ('cur', 'new'):
        for f in os.listdir(os.path.join(dirpath, sub)):
            b = open(os.path.join(dirpath, sub, f), 'rb').read()
            info = f.split(':2,', 1)[1] if ':2,' in f else ''
            letters = ''.join(sorted(c for c in info if c in 'DFRST'))
            put(local, box, msgid(b), [letters, norm(b)])
print(json.dumps({'server': server, 'local': local, 'dups': dups, 'modseq': modseq}))
"#;

struct State {
    server: Side,
    local: Side,
    modseq: BTreeMap<String, u64>,
}

fn side(v: &serde_json::Value) -> Side {
    let mut out = Side::new();
    for (box_, msgs) in v.as_object().expect("object") {
        let m = out.entry(box_.clone()).or_default();
        for (id, val) in msgs.as_object().expect("object") {
            let f = val[0].as_str().expect("flags").to_string();
            let h = val[1].as_str().expect("hash").to_string();
            m.insert(id.clone(), (f, h));
        }
    }
    out
}

/// Both sides, after checking that neither holds a Message-ID twice in a mailbox.
fn state(s: &Server, maildir: &Path) -> State {
    let out = s.python(&format!(
        "ALICE = {ALICE:?}\nPW = {PW:?}\nMAILDIR = {:?}\n{STATE_PY}",
        maildir.display().to_string()
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("state JSON");
    assert_eq!(
        v["dups"],
        serde_json::json!([]),
        "duplicates: {}",
        v["dups"]
    );
    let modseq = v["modseq"]
        .as_object()
        .expect("modseq")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("modseq")))
        .collect();
    State {
        server: side(&v["server"]),
        local: side(&v["local"]),
        modseq,
    }
}

/// Asserts that both sides hold the same mailboxes and messages (flags and bytes).
/// `server_only` are empty mailboxes the server has and the Maildir does not have yet.
fn assert_in_step(st: &State, stage: &str, server_only: &[&str]) {
    let names = |s: &Side| s.keys().cloned().collect::<BTreeSet<_>>();
    let mut server = names(&st.server);
    for name in server_only {
        assert!(
            st.server.get(*name).is_some_and(BTreeMap::is_empty),
            "{stage}: {name} on the server and empty"
        );
        server.remove(*name);
    }
    assert_eq!(server, names(&st.local), "{stage}: mailboxes differ");
    for (name, local) in &st.local {
        let server = &st.server[name];
        let ids = |m: &BTreeMap<String, (String, String)>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(ids(server), ids(local), "{stage}: messages of {name}");
        for (id, (flags, hash)) in server {
            let (lf, lh) = &local[id];
            assert_eq!(flags, lf, "{stage}: flags of {id} in {name}");
            assert_eq!(hash, lh, "{stage}: bytes of {id} in {name}");
        }
    }
}

fn ids(st: &State, mailbox: &str) -> Vec<String> {
    st.server
        .get(mailbox)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn flags<'a>(st: &'a State, mailbox: &str, id: &str) -> &'a str {
    &st.server[mailbox][id].0
}

/// Every file under the Maildir (name and bytes), minus mbsync's own state files.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".mbsyncstate"))
            {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Runs `mbsync -a` with the generated config; panics with its output unless it succeeds.
fn mbsync(s: &Server, home: &Path) -> String {
    assert!(
        Command::new("mbsync").arg("--version").output().is_ok(),
        "mbsync is not installed (apt-get install isync)"
    );
    let mut cmd = Command::new("mbsync");
    cmd.env("HOME", home)
        .arg("-c")
        .arg(home.join("mbsyncrc"))
        .args(["-V", "-a"]);
    let o = run_bounded(cmd, b"", common::RUN_TIMEOUT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "mbsync failed ({}):\n{text}\n--- daemon log\n{}",
        o.status,
        s.log()
    );
    text
}

fn write_config(s: &Server, home: &Path, maildir: &Path) {
    let cert = s.dir.path().join("data/tls/cert.pem");
    let pass = home.join("pass");
    std::fs::write(&pass, PW).unwrap();
    let rc = format!(
        "IMAPAccount lb\nHost 127.0.0.1\nPort {port}\nUser {ALICE}\nPassCmd \"cat {pass}\"\n\
         SSLType IMAPS\nCertificateFile {cert}\n\n\
         IMAPStore lb-remote\nAccount lb\n\n\
         MaildirStore lb-local\nPath {md}/\nInbox {md}/INBOX\nSubFolders Verbatim\n\n\
         Channel lb\nFar :lb-remote:\nNear :lb-local:\nPatterns *\nCreate Both\n\
         Expunge Both\nSync All\nCopyArrivalDate yes\nSyncState *\n",
        port = s.port("imaps"),
        pass = pass.display(),
        cert = cert.display(),
        md = maildir.display(),
    );
    std::fs::write(home.join("mbsyncrc"), rc).unwrap();
}

/// A message as a Python bytes literal.
fn py_msg(id: &str, subject: &str, body: &str) -> String {
    format!(
        "b'From: Bob <bob@example.com>\\r\\nTo: {ALICE}\\r\\nSubject: {subject}\\r\\nMessage-ID: <{id}>\\r\\n\\r\\n{body}\\r\\n'"
    )
}

/// Renames a Maildir message file (found by its Message-ID) to carry `flags`.
fn set_local_flags(mailbox: &Path, id: &str, flags: &str) {
    let path = find_local(mailbox, id);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let base = name.split(":2,").next().unwrap();
    let to = mailbox.join("cur").join(format!("{base}:2,{flags}"));
    std::fs::rename(&path, to).unwrap();
}

fn find_local(mailbox: &Path, id: &str) -> PathBuf {
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(mailbox.join(sub)).unwrap().flatten() {
            let text = std::fs::read(e.path()).unwrap();
            let needle = format!("Message-ID: <{id}>");
            if text
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
            {
                return e.path();
            }
        }
    }
    panic!("{id} not in {}", mailbox.display());
}

#[test]
fn mbsync_syncs_a_maildir_both_ways_without_duplicates_or_losses() {
    let s = Server::start();
    s.add_user(ALICE, PW);
    let home = tempfile::tempdir().unwrap();
    let maildir = home.path().join("Mail");
    std::fs::create_dir_all(&maildir).unwrap();
    write_config(&s, home.path(), &maildir);

    // The server side: 12 messages over SMTP (one with a 120 KB base64 part, one 8-bit
    // UTF-8), two appended to Archive, and flags on some.
    let mut script = String::new();
    for n in 1..=12 {
        let body = match n {
            7 => "MIME-Version: 1.0\\r\\nContent-Type: text/plain; charset=utf-8\\r\\n\\r\\nna\\xc3\\xafve r\\xc3\\xa9sum\\xc3\\xa9".to_string(),
            _ => format!("body of message {n}\\r\\n.leading dot"),
        };
        let raw = if n == 9 {
            "b'From: Bob <bob@example.com>\\r\\nTo: alice@home.arpa\\r\\nSubject: big\\r\\nMessage-ID: <s9@example.com>\\r\\nMIME-Version: 1.0\\r\\nContent-Type: application/octet-stream\\r\\nContent-Transfer-Encoding: base64\\r\\n\\r\\n' + base64.encodebytes(bytes(range(256)) * 360).replace(b'\\n', b'\\r\\n')".to_string()
        } else if n == 7 {
            format!(
                "b'From: Bob <bob@example.com>\\r\\nTo: {ALICE}\\r\\nSubject: utf8\\r\\nMessage-ID: <s7@example.com>\\r\\n{body}\\r\\n'"
            )
        } else {
            py_msg(&format!("s{n}@example.com"), &format!("server {n}"), &body)
        };
        script.push_str(&py_deliver("bob@example.com", &[ALICE], &raw));
    }
    script.push_str(&format!(
        r#"
import imaplib
M = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)
M.login({ALICE:?}, {PW:?})
for i, fl in [(1, '(\\Seen)'), (2, '(\\Seen \\Flagged)')]:
    typ, d = M.append('Archive', fl, imaplib.Time2Internaldate(1700000000 + i),
                      {a1} if i == 1 else {a2})
    check(typ == 'OK', d)
M.select('INBOX')
for seq, fl in [('1', '(\\Seen)'), ('2', '(\\Seen \\Flagged)'), ('3', '(\\Answered)'), ('4', '(\\Draft)')]:
    check(M.store(seq, '+FLAGS', fl)[0] == 'OK')
M.logout()
"#,
        a1 = py_msg("a1@example.com", "archived 1", "old"),
        a2 = py_msg("a2@example.com", "archived 2", "older"),
    ));
    s.python(&script);

    // 1. Pull into the empty Maildir.
    mbsync(&s, home.path());
    let st = state(&s, &maildir);
    assert_in_step(&st, "first pull", &[]);
    assert_eq!(ids(&st, "INBOX").len(), 12);
    assert_eq!(
        ids(&st, "Archive"),
        ["<a1@example.com>", "<a2@example.com>"]
    );
    assert_eq!(flags(&st, "INBOX", "<s2@example.com>"), "FS");
    assert_eq!(flags(&st, "INBOX", "<s4@example.com>"), "D");
    for b in ["Sent", "Trash", "Drafts", "Junk"] {
        assert!(st.local.contains_key(b), "{b} created locally");
    }

    // 2. Local changes: two new messages (one in new/, one read in cur/ with LF line
    // endings), a new folder with a message, flags set and cleared, one trashed, one
    // file deleted.
    let inbox = maildir.join("INBOX");
    std::fs::write(
        inbox.join("new/local-1"),
        "From: alice@home.arpa\r\nTo: bob@example.com\r\nSubject: local 1\r\nMessage-ID: <l1@home.arpa>\r\n\r\nwritten offline\r\n",
    )
    .unwrap();
    std::fs::write(
        inbox.join("cur/local-2:2,S"),
        "From: alice@home.arpa\nSubject: local 2\nMessage-ID: <l2@home.arpa>\n\nLF only\n",
    )
    .unwrap();
    let rust = maildir.join("Lists/rust");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(rust.join(d)).unwrap();
    }
    std::fs::write(
        rust.join("cur/list-1:2,F"),
        "From: list@example.org\r\nSubject: [rust] release\r\nMessage-ID: <r1@example.org>\r\n\r\nnews\r\n",
    )
    .unwrap();
    set_local_flags(&inbox, "s1@example.com", "");
    set_local_flags(&inbox, "s5@example.com", "FS");
    set_local_flags(&inbox, "s6@example.com", "ST");
    std::fs::remove_file(find_local(&inbox, "s8@example.com")).unwrap();
    mbsync(&s, home.path());
    let st = state(&s, &maildir);
    // CREATE "Lists/rust" also created the superior name "Lists" (RFC 9051 §6.3.4), as an
    // ordinary mailbox; mbsync creates it locally on its next run.
    assert_in_step(&st, "push", &["Lists"]);
    let inbox_ids = ids(&st, "INBOX");
    for want in ["<l1@home.arpa>", "<l2@home.arpa>"] {
        assert!(inbox_ids.iter().any(|i| i == want), "{want} uploaded");
    }
    for gone in ["<s6@example.com>", "<s8@example.com>"] {
        assert!(!inbox_ids.iter().any(|i| i == gone), "{gone} expunged");
    }
    assert_eq!(inbox_ids.len(), 12, "{inbox_ids:?}");
    assert_eq!(flags(&st, "INBOX", "<s1@example.com>"), "");
    assert_eq!(flags(&st, "INBOX", "<s5@example.com>"), "FS");
    assert_eq!(flags(&st, "INBOX", "<l2@home.arpa>"), "S");
    assert_eq!(ids(&st, "Lists/rust"), ["<r1@example.org>"]);
    assert_eq!(flags(&st, "Lists/rust", "<r1@example.org>"), "F");

    // 3. Server changes: APPEND, STORE, EXPUNGE and MOVE over IMAP, a delivery over SMTP.
    s.python(&format!(
        r#"
import imaplib, re
M = imaplib.IMAP4(H, PORT['imap'], timeout=TIMEOUT)
M.login({ALICE:?}, {PW:?})
check(M.append('INBOX', '(\\Flagged)', None, {new})[0] == 'OK')
M.select('INBOX')
def seq_of(mid):
    typ, d = M.search(None, 'HEADER', 'Message-ID', mid)
    check(typ == 'OK' and len(d[0].split()) == 1, mid, d)
    return d[0].decode()
check(M.store(seq_of('<s3@example.com>'), '+FLAGS', '(\\Seen)')[0] == 'OK')
check(M.store(seq_of('<s2@example.com>'), '-FLAGS', '(\\Flagged)')[0] == 'OK')
check(M.store(seq_of('<s10@example.com>'), '+FLAGS', '(\\Deleted)')[0] == 'OK')
check(M.expunge()[0] == 'OK')
typ, d = M._simple_command('MOVE', seq_of('<s11@example.com>'), 'Archive')
check(typ == 'OK', d)
M.logout()
{deliver}"#,
        new = py_msg("n1@example.com", "appended", "appended on the server"),
        deliver = py_deliver(
            "carol@example.com",
            &[ALICE],
            &py_msg("n2@example.com", "delivered", "delivered later")
        ),
    ));
    mbsync(&s, home.path());
    let st = state(&s, &maildir);
    assert_in_step(&st, "pull changes", &[]);
    let inbox_ids = ids(&st, "INBOX");
    for want in ["<n1@example.com>", "<n2@example.com>"] {
        assert!(inbox_ids.iter().any(|i| i == want), "{want} pulled");
    }
    for gone in ["<s10@example.com>", "<s11@example.com>"] {
        assert!(!inbox_ids.iter().any(|i| i == gone), "{gone} removed");
    }
    assert_eq!(inbox_ids.len(), 12, "{inbox_ids:?}");
    assert_eq!(ids(&st, "Archive").len(), 3);
    assert_eq!(flags(&st, "INBOX", "<s3@example.com>"), "RS");
    assert_eq!(flags(&st, "INBOX", "<s2@example.com>"), "S");
    assert_eq!(flags(&st, "INBOX", "<n1@example.com>"), "F");

    // 4. Nothing to do: neither side changes.
    let files = snapshot(&maildir);
    mbsync(&s, home.path());
    let again = state(&s, &maildir);
    assert_in_step(&again, "idle sync", &[]);
    assert_eq!(again.server, st.server, "server unchanged");
    assert_eq!(again.modseq, st.modseq, "no writes on the server");
    assert_eq!(snapshot(&maildir), files, "Maildir unchanged");
}
