//! `[[fetch]]` end to end: the real binary pulls from a remote IMAPS server on loopback,
//! with the remote's certificate verified through `ca_file`.
//!
//! The remotes are a second `letterbox serve` (its self-signed certificate, made before its
//! start for the name `localhost`, trusted through `ca_file`) and Dovecot from Debian with
//! TLS. Checked: mail arrives with `Authentication-Results`; pulling again (and after a
//! restart) brings nothing twice; `remote_action` delete and move; a `kill -9` in the middle
//! of pulling hundreds of messages leaves each exactly once; a wrong password and an
//! unreachable remote show in `letterbox status`; a UIDVALIDITY change brings only the new
//! mail.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::dnsmasq::{Dnsmasq, txt_record};
use common::dovecot::{DC_PW, DC_USER, Dovecot};
use common::{Server, wait_until};

const BOB_PW: &str = "remote-password-1";
const ALICE_PW: &str = "local-password-1";
const WAIT: Duration = Duration::from_secs(90);

/// A self-signed certificate for `localhost` (as letterbox makes its own) in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A remote letterbox with the accounts `users` (password [`BOB_PW`]), serving a
/// certificate for `localhost` from its data dir.
fn remote(users: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    self_signed(&data.join("tls"));
    let mut extra = String::new();
    for u in users {
        extra.push_str(&format!(
            "[[user]]\naddress = \"{u}\"\npassword = \"{BOB_PW}\"\n"
        ));
    }
    (Server::start_with_data_dir(&extra, &data), dir)
}

/// A `[[fetch]]` table pulling `user` from the remote letterbox.
fn fetch_table(remote: &Server, user: &str, more: &str) -> String {
    let pw = remote.dir.path().join(format!("pw-{user}"));
    std::fs::write(&pw, format!("{BOB_PW}\n")).unwrap();
    format!(
        "[[fetch]]\naccount = \"alice@home.arpa\"\nhost = \"localhost\"\nport = {}\n\
         username = \"{user}\"\npassword_file = \"{}\"\nca_file = \"{}\"\ninterval = \"1s\"\n{more}\n",
        remote.port("imaps"),
        pw.display(),
        remote.data_dir.join("tls/ca.pem").display()
    )
}

fn local(fetch: &str) -> Server {
    Server::start_with(&format!(
        "[[user]]\naddress = \"alice@home.arpa\"\npassword = \"{ALICE_PW}\"\n{fetch}"
    ))
}

/// Python: `login(user, pw)` over IMAPS; `mids(M, box)` the Message-IDs in a mailbox.
const PY: &str = r#"
import imaplib, re
def login(user, pw):
    M = imaplib.IMAP4_SSL(H, PORT['imaps'], ssl_context=CTX, timeout=TIMEOUT)
    M.login(user, pw)
    return M
def mids(M, box):
    typ, data = M.select(box, readonly=True)
    check(typ == 'OK', box, data)
    if int(data[0]) == 0:
        return []
    typ, data = M.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
    out = []
    for d in data:
        if isinstance(d, tuple):
            m = re.search(rb'<([^>]*)>', d[1])
            out.append(m.group(1).decode() if m else '')
    return out
"#;

/// The Message-IDs in `mailbox` of `user` on `server`, in UID order.
fn mids(server: &Server, user: &str, pw: &str, mailbox: &str) -> Vec<String> {
    let out = server.python(&format!(
        "{PY}\nM = login({user:?}, {pw:?})\nprint('\\n'.join(mids(M, {mailbox:?})))\nM.logout()\n"
    ));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn local_mids(local: &Server) -> Vec<String> {
    mids(local, "alice@home.arpa", ALICE_PW, "INBOX")
}

/// Delivers messages `ids` to `to` on the remote over SMTP (its MX listener).
fn deliver(remote: &Server, to: &str, ids: &[String]) {
    let mut py = String::new();
    for id in ids {
        py.push_str(&common::py_deliver(
            "sender@example.org",
            &[to],
            &format!(
                "b'From: sender@example.org\\r\\nTo: {to}\\r\\nSubject: pulled {id}\\r\\n\
                 Message-ID: <{id}>\\r\\n\\r\\nbody of {id}\\r\\n'"
            ),
        ));
    }
    remote.python(&py);
}

/// Appends `n` messages `<prefix-i@x>` of about `size` bytes to `mailbox` on the remote.
fn append(remote: &Server, user: &str, mailbox: &str, prefix: &str, n: usize, size: usize) {
    remote.python(&format!(
        "{PY}\nM = login({user:?}, {BOB_PW:?})\n\
         for i in range({n}):\n    \
             raw = ('From: a@example.org\\r\\nSubject: m %d\\r\\nMessage-ID: <{prefix}-%d@x>\\r\\n\\r\\n' % (i, i)).encode() + b'x' * {size} + b'\\r\\n'\n    \
             typ, data = M.append({mailbox:?}, None, None, raw)\n    \
             check(typ == 'OK', data)\n\
         M.logout()\n"
    ));
}

fn assert_unique(ids: &[String]) {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicates among {ids:?}");
}

fn fetch_status(server: &Server) -> serde_json::Value {
    server.status_json()["daemon"]["fetch"].clone()
}

#[test]
fn pulls_from_a_second_letterbox_once_with_authentication_results() {
    let (remote, _rdir) = remote(&["bob@home.arpa"]);
    let first: Vec<String> = (0..3).map(|i| format!("first-{i}@example.org")).collect();
    deliver(&remote, "bob@home.arpa", &first);
    let mut local = local(&fetch_table(&remote, "bob@home.arpa", ""));
    wait_until("3 pulled messages", WAIT, || local_mids(&local).len() >= 3);
    // Verified as port-25 mail: our own Authentication-Results on top.
    let head = local.python(&format!(
        "{PY}\nM = login('alice@home.arpa', {ALICE_PW:?})\nM.select('INBOX')\n\
         typ, data = M.fetch('1', '(BODY.PEEK[HEADER])')\nprint(data[0][1].decode())\n"
    ));
    assert!(
        head.starts_with("Authentication-Results: letterbox.home.arpa;"),
        "{head}"
    );
    // SPF looked at the client of the remote's Received field ([127.0.0.1]; an address
    // literal as HELO has no SPF record).
    assert!(head.contains("smtp.helo=[127.0.0.1]"), "{head}");
    assert!(
        head.contains("dmarc=none header.from=example.org"),
        "{head}"
    );
    assert!(head.contains("dkim=none"), "{head}");
    assert!(
        head.contains("Received: from localhost by letterbox.home.arpa"),
        "{head}"
    );
    assert_eq!(
        head.matches("Authentication-Results:").count(),
        1,
        "the remote's field claiming our name is removed: {head}"
    );

    // More mail: only the new arrives; nothing twice over several passes and a restart.
    let second: Vec<String> = (0..2).map(|i| format!("second-{i}@example.org")).collect();
    deliver(&remote, "bob@home.arpa", &second);
    wait_until("5 pulled messages", WAIT, || local_mids(&local).len() >= 5);
    std::thread::sleep(Duration::from_secs(4));
    local.terminate();
    local.restart();
    wait_until("a pass after the restart", WAIT, || {
        fetch_status(&local)[0]["last_success"].is_i64()
    });
    let ids = local_mids(&local);
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_unique(&ids);
    let st = fetch_status(&local);
    assert_eq!(st[0]["pulled"], 5, "{st}");
    assert_eq!(
        st[0]["remote"],
        format!("bob@home.arpa@localhost:{}", remote.port("imaps"))
    );
    // keep: the remote still has them all.
    assert_eq!(mids(&remote, "bob@home.arpa", BOB_PW, "INBOX").len(), 5);
    let text = local.cli(&["status"], "");
    assert!(
        text.contains("fetch bob@home.arpa@localhost") && text.contains("5 pulled"),
        "{text}"
    );
}

#[test]
fn delete_and_move_act_on_the_remote_after_the_local_commit() {
    let (remote, _rdir) = remote(&["bob@home.arpa", "carol@home.arpa"]);
    let b: Vec<String> = (0..2).map(|i| format!("b-{i}@example.org")).collect();
    let c: Vec<String> = (0..2).map(|i| format!("c-{i}@example.org")).collect();
    deliver(&remote, "bob@home.arpa", &b);
    deliver(&remote, "carol@home.arpa", &c);
    let tables = fetch_table(&remote, "bob@home.arpa", "remote_action = \"delete\"")
        + &fetch_table(
            &remote,
            "carol@home.arpa",
            "remote_action = \"move:Archive\"",
        );
    let local = local(&tables);
    wait_until("4 pulled messages", WAIT, || local_mids(&local).len() >= 4);
    wait_until("bob's INBOX emptied", WAIT, || {
        mids(&remote, "bob@home.arpa", BOB_PW, "INBOX").is_empty()
    });
    wait_until("carol's INBOX moved", WAIT, || {
        mids(&remote, "carol@home.arpa", BOB_PW, "INBOX").is_empty()
    });
    let mut archived = mids(&remote, "carol@home.arpa", BOB_PW, "Archive");
    archived.sort();
    assert_eq!(archived, c);
    let mut ids = local_mids(&local);
    ids.sort();
    let mut want = [b, c].concat();
    want.sort();
    assert_eq!(ids, want);
    // New mail after the action: pulled too (the mark, not the remote's count, decides).
    deliver(
        &remote,
        "bob@home.arpa",
        &["b-late@example.org".to_string()],
    );
    wait_until("the late message", WAIT, || local_mids(&local).len() == 5);
    wait_until("deleted on the remote", WAIT, || {
        mids(&remote, "bob@home.arpa", BOB_PW, "INBOX").is_empty()
    });
    assert_unique(&local_mids(&local));
}

#[test]
fn a_kill_in_the_middle_of_pulling_loses_nothing_and_duplicates_nothing() {
    const N: usize = 400;
    let (remote, _rdir) = remote(&["bob@home.arpa"]);
    append(&remote, "bob@home.arpa", "INBOX", "k", N, 20_000);
    let mut local = local(&fetch_table(
        &remote,
        "bob@home.arpa",
        "remote_action = \"delete\"",
    ));
    // Kill as soon as some, but not all, of the messages are stored.
    let mut seen = 0;
    wait_until("the first pulled messages", WAIT, || {
        seen = local.status_json()["store"]["messages"]
            .as_u64()
            .unwrap_or(0) as usize;
        seen > 0
    });
    local.kill9();
    assert!(seen < N, "everything was pulled before the kill ({seen})");
    local.restart();
    wait_until("every message", WAIT * 2, || local_mids(&local).len() >= N);
    wait_until("the remote emptied", WAIT, || {
        mids(&remote, "bob@home.arpa", BOB_PW, "INBOX").is_empty()
    });
    let ids = local_mids(&local);
    assert_eq!(ids.len(), N);
    assert_unique(&ids);
    for i in 0..N {
        assert!(ids.contains(&format!("k-{i}@x")), "k-{i} missing");
    }
}

#[test]
fn a_uidvalidity_change_brings_only_new_mail() {
    let (remote, _rdir) = remote(&["bob@home.arpa"]);
    remote.python(&format!(
        "{PY}\nM = login('bob@home.arpa', {BOB_PW:?})\ncheck(M.create('Feed')[0] == 'OK')\n"
    ));
    append(&remote, "bob@home.arpa", "Feed", "v", 2, 100);
    let local = local(&fetch_table(
        &remote,
        "bob@home.arpa",
        "folders = [\"Feed\"]",
    ));
    wait_until("2 pulled messages", WAIT, || local_mids(&local).len() >= 2);
    // The remote rebuilds the folder: a new UIDVALIDITY, the same two messages, one more.
    remote.python(&format!(
        "{PY}\nM = login('bob@home.arpa', {BOB_PW:?})\ncheck(M.delete('Feed')[0] == 'OK')\n\
         check(M.create('Feed')[0] == 'OK')\n"
    ));
    append(&remote, "bob@home.arpa", "Feed", "v", 3, 100);
    wait_until("the new message", WAIT, || local_mids(&local).len() >= 3);
    std::thread::sleep(Duration::from_secs(4));
    let ids = local_mids(&local);
    assert_eq!(ids, ["v-0@x", "v-1@x", "v-2@x"], "{ids:?}");
    assert!(
        local.log().contains("UIDVALIDITY changed"),
        "{}",
        local.log()
    );
}

#[test]
fn a_wrong_password_and_an_unreachable_remote_show_in_status() {
    let (remote, _rdir) = remote(&["bob@home.arpa"]);
    let wrong = remote.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tables = format!(
        "[[fetch]]\naccount = \"alice@home.arpa\"\nhost = \"localhost\"\nport = {}\n\
         username = \"bob@home.arpa\"\npassword_file = \"{}\"\nca_file = \"{}\"\n\
         [[fetch]]\naccount = \"alice@home.arpa\"\nhost = \"127.0.0.1\"\nport = {closed}\n\
         username = \"bob\"\npassword_file = \"{}\"\n",
        remote.port("imaps"),
        wrong.display(),
        remote.data_dir.join("tls/ca.pem").display(),
        wrong.display(),
    );
    let local = local(&tables);
    wait_until("both errors", WAIT, || {
        let st = fetch_status(&local);
        st[0]["last_error"].is_array() && st[1]["last_error"].is_array()
    });
    let st = fetch_status(&local);
    let e0 = st[0]["last_error"][1]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let e1 = st[1]["last_error"][1]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(e0.contains("login as bob@home.arpa"), "{st}");
    assert!(e1.contains("connect"), "{st}");
    assert!(st[0]["last_success"].is_null(), "{st}");
    let text = local.cli(&["status"], "");
    assert!(text.contains("FAILING: login as bob@home.arpa"), "{text}");
    assert!(text.contains("FAILING: connect"), "{text}");
    // Not a day yet: no fault 7.
    assert!(!text.contains("pulling mail failing"), "{text}");
}

/// Runs a Python imaplib script logged in to Dovecot (over IMAPS) as `M`.
fn dc_python(dc: &Dovecot, server: &Server, script: &str) -> String {
    server.python(&format!(
        "import imaplib\nM = imaplib.IMAP4_SSL(H, {}, ssl_context=CTX, timeout=TIMEOUT)\n\
         M.login({DC_USER:?}, {DC_PW:?})\n{script}\nM.logout()\n",
        dc.port
    ))
}

#[test]
fn pulls_from_dovecot_over_verified_tls_and_moves_there() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let dc = Dovecot::start_tls(&cert, &key);
    let pw = dc.dir.path().join("pw");
    std::fs::write(&pw, DC_PW).unwrap();
    let table = format!(
        "[[fetch]]\naccount = \"alice@home.arpa\"\nhost = \"localhost\"\nport = {}\n\
         username = \"{DC_USER}\"\npassword_file = \"{}\"\nca_file = \"{}\"\ninterval = \"1s\"\n\
         remote_action = \"move:Pulled\"\n",
        dc.port,
        pw.display(),
        cert.display()
    );
    let local = local(&table);
    dc_python(
        &dc,
        &local,
        "check(M.create('Pulled')[0] == 'OK')\n\
         for i in range(3):\n    \
             raw = ('From: a@example.org\\r\\nSubject: dc %d\\r\\nMessage-ID: <dc-%d@x>\\r\\n\\r\\nhello\\r\\n' % (i, i)).encode()\n    \
             check(M.append('INBOX', None, None, raw)[0] == 'OK')\n",
    );
    wait_until("3 messages from Dovecot", WAIT, || {
        local_mids(&local).len() >= 3
    });
    let count = |mb: &str| {
        dc_python(
            &dc,
            &local,
            &format!("typ, data = M.select({mb:?}, readonly=True)\nprint(int(data[0]))\n"),
        )
        .trim()
        .parse::<u32>()
        .unwrap_or(99)
    };
    wait_until("Dovecot's INBOX emptied", WAIT, || count("INBOX") == 0);
    assert_eq!(count("Pulled"), 3, "{}", dc.log());
    let mut ids = local_mids(&local);
    ids.sort();
    assert_eq!(ids, ["dc-0@x", "dc-1@x", "dc-2@x"]);
    let head = local.python(&format!(
        "{PY}\nM = login('alice@home.arpa', {ALICE_PW:?})\nM.select('INBOX')\n\
         typ, data = M.fetch('1', '(BODY.PEEK[HEADER])')\nprint(data[0][1].decode())\n"
    ));
    // No Received field on an APPENDed message: no client IP, so SPF is none.
    assert!(
        head.contains("spf=none (pulled from a remote account"),
        "{head}"
    );
}

#[test]
fn a_message_over_the_size_limit_is_skipped_recorded_and_left_on_the_remote() {
    let (remote, _rdir) = remote(&["bob@home.arpa"]);
    append(&remote, "bob@home.arpa", "INBOX", "big", 1, 100_000);
    append(&remote, "bob@home.arpa", "INBOX", "small", 1, 100);
    let local = local(&format!(
        "{}[limits]\nmax_message_size = \"64K\"\n",
        fetch_table(&remote, "bob@home.arpa", "remote_action = \"delete\"")
    ));
    wait_until("the small message", WAIT, || local_mids(&local).len() == 1);
    assert_eq!(local_mids(&local), ["small-0@x"]);
    // Deleted on the remote only once pulled: the big one stays there.
    wait_until("the small one deleted on the remote", WAIT, || {
        mids(&remote, "bob@home.arpa", BOB_PW, "INBOX") == ["big-0@x"]
    });
    wait_until("the skip in status", WAIT, || {
        fetch_status(&local)[0]["skipped"] == 1
    });
    let text = local.cli(&["status"], "");
    assert!(text.contains("1 pulled, 1 skipped (too large)"), "{text}");
    assert!(local.log().contains("larger than max_message_size"));
}

#[test]
fn pulled_mail_gets_the_dmarc_treatment_of_port_25() {
    let dns = Dnsmasq::start(&[
        txt_record("_dmarc.quarantine.test", "v=DMARC1; p=quarantine"),
        txt_record("_dmarc.reject.test", "v=DMARC1; p=reject"),
    ]);
    let (remote, _rdir) = remote(&["bob@home.arpa"]);
    remote.python(&format!(
        "{PY}\nM = login('bob@home.arpa', {BOB_PW:?})\n\
         for d in ['quarantine.test', 'reject.test', 'ok.test']:\n    \
             raw = ('From: ceo@%s\\r\\nSubject: %s\\r\\nMessage-ID: <%s@x>\\r\\n\\r\\nhi\\r\\n' % (d, d, d)).encode()\n    \
             check(M.append('INBOX', None, None, raw)[0] == 'OK')\n"
    ));
    let local = local(&format!(
        "{}[dns]\nnameservers = [\"127.0.0.1:{}\"]\n",
        fetch_table(&remote, "bob@home.arpa", ""),
        dns.port
    ));
    // Unsigned, no SPF identity: DMARC fails where a policy exists. Quarantine goes to
    // Junk as on port 25; reject too (the remote accepted it already); no record: INBOX.
    wait_until("the INBOX message", WAIT, || {
        local_mids(&local) == ["ok.test@x"]
    });
    wait_until("two in Junk", WAIT, || {
        mids(&local, "alice@home.arpa", ALICE_PW, "Junk").len() == 2
    });
    let mut junk = mids(&local, "alice@home.arpa", ALICE_PW, "Junk");
    junk.sort();
    assert_eq!(junk, ["quarantine.test@x", "reject.test@x"]);
    let head = local.python(&format!(
        "{PY}\nM = login('alice@home.arpa', {ALICE_PW:?})\nM.select('Junk')\n\
         typ, data = M.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (AUTHENTICATION-RESULTS)])')\n\
         print(b''.join(d[1] for d in data if isinstance(d, tuple)).decode())\n"
    ));
    assert!(head.contains("policy.dmarc=quarantine"), "{head}");
    assert!(head.contains("policy.dmarc=reject"), "{head}");
    assert!(head.contains("dmarc=fail"), "{head}");
}
