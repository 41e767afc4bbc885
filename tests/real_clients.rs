//! Real clients from Debian beyond mbsync and curl (issue 14 §6), each against `letterbox
//! serve` started by the harness (tests/common/mod.rs) on free loopback ports.
//!
//! 1. mutt (Debian's `mutt` 2.2), driven through tmux on a private socket as
//!    tests/first_minutes.rs does, over IMAPS with the daemon's certificate in mutt's
//!    `certificate_file`. A message delivered over the MX listener forwards another message
//!    (a `message/rfc822` part with its own CSV attachment) and carries a PDF. mutt opens it,
//!    shows the attachment list (`v`: the forwarded message's subject, `figures.csv`,
//!    `invoice-2026.pdf`) and saves the PDF, which must be the sent bytes. mutt 2.2 cannot set
//!    an arbitrary IMAP keyword: its labels (`Y`, `<edit-label>`) are an `X-Label:` header,
//!    which it stores by APPENDing a rewritten copy (with the system flags only) and
//!    expunging the original. So the test labels the message in mutt (`X-Label: work`), lets
//!    another IMAP client set the keyword `$Label1` as Thunderbird would, flags it in mutt
//!    (`F`, a `UID STORE +FLAGS.SILENT (\Flagged)` that must keep the keyword), saves it to
//!    `=Junk` (mutt 2.2 does `UID COPY`, `\Deleted`, `EXPUNGE`, not MOVE) and syncs (`$`).
//!    imaplib then finds it once in Junk with `\Seen \Flagged $Label1` and its X-Label, its
//!    forwarded message and PDF intact, and gone from the INBOX.
//!
//! 2. offlineimap3 (Debian's `offlineimap3`) syncing a mailbox both ways between Letterbox
//!    (IMAPS, the certificate pinned by its SHA-256 fingerprint) and a test-local Dovecot
//!    (`dovecot-imapd`: a temporary config, passwd-file auth, a Maildir in the temp dir, a
//!    free loopback port; no system config, no port 143). offlineimap3's IMAP-to-IMAP sync
//!    (a `MappedIMAP` local repository) carries the five system flags only (`\Seen`,
//!    `\Answered`, `\Flagged`, `\Deleted`, `\Draft`): keywords are mapped only for Maildir
//!    repositories (`getkeywordmap` is not implemented for IMAP), so a copy arrives without
//!    the original's keywords. What the test holds both servers to: the same messages by
//!    Message-ID on both sides, none twice, the same bytes, the same system flags; every
//!    keyword stays on the side that set it (no sync strips or invents one). Stages: first
//!    sync of four messages each (with `\Seen`, `\Flagged $Label1`, `$Junk`, nothing); then on
//!    each side flag changes, a keyword added, a message deleted and one appended, sync
//!    again; then a sync with nothing to do must change nothing (same UIDs).
//!
//! Each part fails naming the Debian package when a tool is missing. Every wait is bounded;
//! the daemon, the tmux server and Dovecot are stopped on drop, also when a check fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::dovecot::{DC_PW, DC_USER, Dovecot};
use common::{Server, py_deliver, run_bounded};

const ALICE: &str = "alice@home.arpa";
const PW: &str = "alice-password-1";
/// How long mutt may take to show what a step waits for.
/// How long one offlineimap run may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// mutt's certificate prompt (GnuTLS build), answered with `a` should it appear.
const CERT_PROMPT: &str = "(r)eject, accept (o)nce, (a)ccept always";

/// mutt in tmux (tests/common/tmux.rs); failures show mutt's IMAP exchange and the daemon's
/// log, and a certificate prompt on the way is answered with `a`.
struct Tmux {
    t: common::tmux::Tmux,
    /// mutt's debug log (`-d 2`: its IMAP exchange), shown when a wait fails.
    debug: PathBuf,
}

impl Tmux {
    fn start(socket: &Path, env: &[(&str, &Path)], command: &str, debug: &Path) -> Tmux {
        Tmux {
            t: common::tmux::Tmux::start(socket, env, command),
            debug: debug.to_path_buf(),
        }
    }
    fn type_text(&self, text: &str) {
        self.t.type_text(text);
    }
    fn key(&self, key: &str) {
        self.t.key(key);
    }
    fn wait_gone(&self) {
        self.t.wait_gone();
    }

    /// The last lines of mutt's IMAP exchange from its debug log.
    fn debug_tail(&self) -> String {
        let text = std::fs::read(&self.debug).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        // Only the IMAP exchange: `[time] 4> a0001 ...` and `[time] 4< * ...`.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                let rest = l.split_once("] ").map_or("", |(_, r)| r).as_bytes();
                rest.len() > 2 && rest[0].is_ascii_digit() && matches!(rest[1], b'<' | b'>')
            })
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn context(&self, s: &Server) -> String {
        format!(
            "--- mutt's debug log\n{}\n--- daemon log\n{}",
            self.debug_tail(),
            s.log()
        )
    }

    /// Waits until the screen shows every one of `texts`, answering a certificate prompt.
    fn wait_for(&self, what: &str, texts: &[&str], s: &Server) -> String {
        self.t.wait_for(
            what,
            texts,
            |t, screen| {
                if screen.contains(CERT_PROMPT) {
                    t.key("a");
                }
            },
            || self.context(s),
        )
    }

    fn wait_prompt(&self, prompt: &str, s: &Server) {
        self.t.wait_prompt(prompt, || self.context(s));
    }
}

/// Python: `raw`, the forwarding message (text, the forwarded message with a CSV, a PDF),
/// and `PDF`, the PDF's bytes.
const FORWARD_PY: &str = r#"
from email.message import EmailMessage
from email.policy import SMTP
inner = EmailMessage()
inner["From"] = "Carol <carol@example.org>"
inner["To"] = "bob@example.com"
inner["Subject"] = "Quarterly figures"
inner["Message-ID"] = "<inner-1@example.org>"
inner["Date"] = "Mon, 30 Nov 2026 09:00:00 +0000"
inner.set_content("The figures are attached.\n")
inner.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="figures.csv")
PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n" + bytes(range(256)) * 4
       + b"\n%%EOF\n")
outer = EmailMessage()
outer["From"] = "Bob <bob@example.com>"
outer["To"] = "alice@home.arpa"
outer["Subject"] = "Fwd: Quarterly figures"
outer["Message-ID"] = "<fwd-1@example.com>"
outer["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
outer.set_content("Alice, see the forwarded message and the invoice.\n")
outer.add_attachment(inner)
outer.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice-2026.pdf")
raw = outer.as_bytes(policy=SMTP)
"#;

/// Python: `login()` to Letterbox over IMAPS and `find(M, box)`, the sequence numbers of
/// the forwarding message in `box` (EXAMINE).
const MUTT_CHECK_PY: &str = r#"
import imaplib, re
def login():
    M = imaplib.IMAP4_SSL(H, PORT['imaps'], ssl_context=CTX, timeout=TIMEOUT)
    M.login(ALICE, PW)
    return M
def find(M, box):
    typ, data = M.select(box, readonly=True)
    check(typ == 'OK', box, data)
    typ, data = M.search(None, 'HEADER', 'Message-ID', '<fwd-1@example.com>')
    check(typ == 'OK', data)
    return data[0].split()
def flags(M, num):
    typ, data = M.fetch(num, '(FLAGS)')
    check(typ == 'OK', data)
    return set(re.search(rb'FLAGS \(([^)]*)\)', data[0]).group(1).decode().split())
def poll(what, fn):
    # Bounded: mutt's sync reaches the server within a few seconds.
    deadline = time.time() + 30
    while True:
        r = fn()
        if r:
            return r
        check(time.time() < deadline, 'timed out waiting for', what)
        time.sleep(0.2)
"#;

#[test]
fn mutt_reads_a_forward_flags_and_moves_to_junk() {
    common::require("mutt", "-v", "mutt");
    common::require("tmux", "-V", "tmux");
    let s = Server::start();
    s.add_user(ALICE, PW);
    let pdf_path = s.dir.path().join("sent.pdf");
    let saved_path = s.dir.path().join("saved.pdf");
    let prelude = format!(
        "ALICE = {ALICE:?}\nPW = {PW:?}\nPDF_PATH = {:?}\n{FORWARD_PY}\n{MUTT_CHECK_PY}\n",
        pdf_path.display().to_string()
    );
    // Delivered over the MX listener; `$Label1` set by another client (as Thunderbird does).
    s.python(&format!(
        "{prelude}\nopen(PDF_PATH, 'wb').write(PDF)\n{}\nM = login()\n\
         nums = find(M, 'INBOX')\ncheck(len(nums) == 1, nums)\nM.select('INBOX')\n\
         typ, data = M.store(nums[0], '+FLAGS', '($Label1)')\ncheck(typ == 'OK', data)\n",
        py_deliver("bob@example.com", &[ALICE], "raw")
    ));

    // ~/.muttrc; the daemon's certificate in mutt's certificate_file (it is self-signed for
    // letterbox.home.arpa, hence ssl_verify_host = no on 127.0.0.1).
    let home = s.dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir home");
    std::fs::copy(
        s.data_dir.join("tls/cert.pem"),
        home.join(".mutt_certificates"),
    )
    .expect("copy the daemon's certificate");
    let rc = format!(
        "set imap_user = \"{ALICE}\"\nset imap_pass = \"{PW}\"\n\
         set folder = \"imaps://127.0.0.1:{}/\"\nset spoolfile = \"+INBOX\"\n\
         set certificate_file = \"~/.mutt_certificates\"\nset ssl_verify_host = no\n\
         set delete = yes\nset confirmappend = no\nset mark_old = no\nset sleep_time = 0\n\
         set wait_key = no\nset beep = no\n",
        s.port("imaps")
    );
    std::fs::write(home.join(".muttrc"), rc).expect("write .muttrc");
    let env = [("HOME", home.as_path())];
    {
        let mutt = Tmux::start(
            &s.dir.path().join("tmux.sock"),
            &env,
            "mutt -d 2",
            &home.join(".muttdebug0"),
        );
        mutt.wait_for(
            "the INBOX with the forwarding message",
            &["=INBOX [Msgs:1", "Fwd: Quarterly figures"],
            &s,
        );
        mutt.key("Enter");
        mutt.wait_for(
            "the message with the forwarded one inline",
            &[
                "Subject: Fwd: Quarterly figures",
                "Subject: Quarterly figures",
                "[-- Type: message/rfc822",
                "invoice-2026.pdf",
            ],
            &s,
        );
        // The attachment list: the forwarded message (by its subject), its CSV, the PDF.
        mutt.key("v");
        let screen = mutt.wait_for(
            "the attachment list",
            &[
                "-- Mutt: Attachments",
                "Quarterly figures",
                "[message/rfc822",
                "figures.csv",
                "[text/csv",
                "invoice-2026.pdf",
            ],
            &s,
        );
        let pdf_line = screen
            .lines()
            .find(|l| l.contains("invoice-2026.pdf"))
            .unwrap_or_default();
        let entry = pdf_line
            .split_whitespace()
            .find(|w| w.parse::<u32>().is_ok())
            .unwrap_or_else(|| panic!("no entry number for the PDF:\n{screen}"))
            .to_string();
        assert!(
            pdf_line.contains("applica/pdf") || pdf_line.contains("application/pdf"),
            "{screen}"
        );
        // Save the PDF: mutt decodes it; the file must be the bytes sent.
        mutt.type_text(&entry);
        mutt.wait_prompt("Jump to:", &s);
        mutt.key("Enter");
        mutt.key("s");
        mutt.wait_prompt("Save to file:", &s);
        mutt.key("C-u");
        mutt.type_text(&saved_path.display().to_string());
        mutt.key("Enter");
        mutt.wait_for("the attachment saved", &["Attachment saved"], &s);
        let sent = std::fs::read(&pdf_path).expect("the PDF sent");
        let saved = std::fs::read(&saved_path).expect("the PDF mutt saved");
        assert_eq!(saved, sent, "the PDF mutt saved is not the one sent");
        mutt.key("q");
        mutt.wait_for("the pager again", &["Subject: Fwd: Quarterly figures"], &s);
        mutt.key("i");
        mutt.wait_for("the index", &["q:Quit", "=INBOX [Msgs:1"], &s);

        // A label: mutt's X-Label, stored on `$` as an APPENDed rewrite.
        mutt.key("Y");
        mutt.wait_prompt("Label:", &s);
        mutt.type_text("work");
        mutt.key("Enter");
        mutt.wait_for("the label set", &["1 labels changed"], &s);
        mutt.key("$");
        s.python(&format!(
            "{prelude}\nM = login()\n\
             def relabelled():\n    nums = find(M, 'INBOX')\n    \
             if len(nums) != 1:\n        return None\n    \
             typ, data = M.fetch(nums[0], '(BODY.PEEK[HEADER.FIELDS (X-Label)])')\n    \
             return b'work' in data[0][1] and nums\n\
             nums = poll('X-Label: work in the INBOX', relabelled)\n\
             fl = flags(M, nums[0])\ncheck('\\\\Seen' in fl and '\\\\Deleted' not in fl, fl)\n\
             print('after the label:', sorted(fl))\n\
             M.select('INBOX')\n\
             typ, data = M.store(nums[0], '+FLAGS', '($Label1)')\ncheck(typ == 'OK', data)\n"
        ));

        // Flag it: \Flagged added, the other client's keyword kept.
        mutt.key("F");
        mutt.wait_for("the message flagged", &["Flag:1"], &s);
        mutt.key("$");
        s.python(&format!(
            "{prelude}\nM = login()\n\
             def flagged():\n    nums = find(M, 'INBOX')\n    \
             return len(nums) == 1 and '\\\\Flagged' in flags(M, nums[0]) and nums\n\
             nums = poll('\\\\Flagged in the INBOX', flagged)\n\
             fl = flags(M, nums[0])\n\
             check(fl >= {{'\\\\Seen', '\\\\Flagged', '$Label1'}}, 'flags after F and $:', fl)\n"
        ));

        // Save to =Junk, then sync: the INBOX's copy is expunged.
        mutt.key("s");
        mutt.wait_prompt("Save to mailbox", &s);
        mutt.key("C-u");
        mutt.type_text("=Junk");
        mutt.key("Enter");
        mutt.wait_for("the message marked deleted", &["Del:1"], &s);
        mutt.key("$");
        mutt.wait_for("an empty INBOX", &["=INBOX [Msgs:0"], &s);
        mutt.key("q");
        mutt.wait_gone();
    }

    s.python(&format!(
        "{prelude}\nimport email\nM = login()\n\
         check(find(M, 'INBOX') == [], 'still in the INBOX')\n\
         typ, data = M.select('INBOX', readonly=True)\ncheck(data == [b'0'], 'INBOX', data)\n\
         nums = find(M, 'Junk')\ncheck(len(nums) == 1, 'copies in Junk:', nums)\n\
         fl = flags(M, nums[0])\n\
         check(fl >= {{'\\\\Seen', '\\\\Flagged', '$Label1'}} and '\\\\Deleted' not in fl, \
         'flags in Junk:', fl)\n\
         typ, data = M.fetch(nums[0], '(BODYSTRUCTURE BODY.PEEK[])')\ncheck(typ == 'OK', data)\n\
         head, raw = data[0][0], data[0][1]\n\
         bs = head.lower()\n\
         check(b'\"message\" \"rfc822\"' in bs and b'invoice-2026.pdf' in bs and b'figures.csv' in bs, head)\n\
         msg = email.message_from_bytes(raw)\n\
         check(msg['X-Label'] == 'work', 'X-Label', msg['X-Label'])\n\
         check(msg['Subject'] == 'Fwd: Quarterly figures', msg['Subject'])\n\
         parts = msg.get_payload()\n\
         check(parts[1].get_content_type() == 'message/rfc822', parts[1].get_content_type())\n\
         check(parts[1].get_payload()[0]['Subject'] == 'Quarterly figures', 'forwarded subject')\n\
         check(parts[2].get_payload(decode=True) == PDF, 'the PDF in Junk')\n\
         typ, data = M.fetch(nums[0], '(BODY.PEEK[3])')\n\
         check(base64.b64decode(data[0][1]) == PDF, 'BODY[3] is not the PDF')\n\
         print('Junk:', sorted(fl))\n"
    ));
}

/// Python: `lb()` and `dc()` log in to both servers; `msg(side, i)` is message `i` of a side
/// (Message-ID `<side-i@example.com>`); `uid_of(M, mid)` finds a message; `state()` prints
/// both sides of `Work` as JSON: Message-ID local part → [UID, flags, SHA-256 of the bytes], and the
/// Message-IDs seen twice.
const SYNC_PY: &str = r#"
import imaplib, hashlib, json, re
def lb():
    M = imaplib.IMAP4_SSL(H, PORT['imaps'], ssl_context=CTX, timeout=TIMEOUT)
    M.login(ALICE, PW)
    return M
def dc():
    M = imaplib.IMAP4(H, DC_PORT, timeout=TIMEOUT)
    M.login(DC_USER, DC_PW)
    return M
def msg(side, i):
    return ('From: Bob <bob@example.com>\r\nTo: alice@home.arpa\r\n'
            'Subject: %s message %d\r\nMessage-ID: <%s-%d@example.com>\r\n'
            'Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nBody of %s %d.\r\n'
            % (side, i, side, i, side, i)).encode()
def uid_of(M, mid):
    typ, data = M.uid('SEARCH', 'HEADER', 'Message-ID', '<%s@example.com>' % mid)
    check(typ == 'OK', data)
    uids = data[0].split()
    check(len(uids) == 1, mid, uids)
    return uids[0].decode()
def ok(r):
    check(r[0] == 'OK', r)
    return r
def state():
    out, dups = {}, []
    for name, M in (('lb', lb()), ('dc', dc())):
        side = out.setdefault(name, {})
        typ, data = M.select('Work', readonly=True)
        check(typ == 'OK', name, data)
        if int(data[0]) == 0:
            continue
        typ, data = M.fetch('1:*', '(UID FLAGS BODY.PEEK[])')
        check(typ == 'OK', data)
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
            fl = sorted(re.search(rb'FLAGS \(([^)]*)\)', item[0]).group(1).decode().split())
            raw = item[1]
            mid = re.search(rb'(?im)^message-id:\s*<([^@>]*)@', raw).group(1).decode()
            # offlineimap adds X-OfflineIMAP to a copy only on servers without UIDPLUS.
            body = re.sub(rb'(?im)^x-offlineimap: [^\r\n]*\r\n', b'', raw)
            if mid in side:
                dups.append((name, mid))
            side[mid] = [uid, fl, hashlib.sha256(body).hexdigest()]
        M.logout()
    print(json.dumps({'sides': out, 'dups': dups}))
"#;

/// One side: Message-ID → (UID, flags, hash).
type SyncSide = BTreeMap<String, (u64, BTreeSet<String>, String)>;

/// Both sides of `Work` (Letterbox, Dovecot), after checking neither has a Message-ID twice.
fn sync_state(s: &Server, prelude: &str) -> (SyncSide, SyncSide) {
    let out = s.python(&format!("{prelude}\nstate()\n"));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("state JSON");
    assert_eq!(
        v["dups"],
        serde_json::json!([]),
        "duplicates: {}",
        v["dups"]
    );
    let side = |name: &str| -> SyncSide {
        let mut m = SyncSide::new();
        if let Some(obj) = v["sides"][name].as_object() {
            for (mid, val) in obj {
                let flags = val[1]
                    .as_array()
                    .expect("flags")
                    .iter()
                    .map(|f| f.as_str().expect("flag").to_string())
                    .collect();
                m.insert(
                    mid.clone(),
                    (
                        val[0].as_u64().expect("uid"),
                        flags,
                        val[2].as_str().expect("hash").to_string(),
                    ),
                );
            }
        }
        m
    };
    (side("lb"), side("dc"))
}

/// The system flags offlineimap3 carries between IMAP repositories.
fn system(flags: &BTreeSet<String>) -> BTreeSet<String> {
    flags
        .iter()
        .filter(|f| f.starts_with('\\'))
        .cloned()
        .collect()
}

fn keywords(flags: &BTreeSet<String>) -> BTreeSet<String> {
    flags
        .iter()
        .filter(|f| !f.starts_with('\\'))
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Asserts both sides hold exactly `ids`, with the same bytes and system flags, `expect`
/// giving the system flags of some of them, and each side exactly the keywords `kw_lb` /
/// `kw_dc` list (Message-ID → keywords; unlisted: none).
#[allow(clippy::too_many_arguments)]
fn assert_synced(
    stage: &str,
    lb: &SyncSide,
    dc: &SyncSide,
    ids: &[&str],
    expect: &[(&str, &[&str])],
    kw_lb: &[(&str, &[&str])],
    kw_dc: &[(&str, &[&str])],
    log: &str,
) {
    let want = set(ids);
    let have = |side: &SyncSide| side.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(have(lb), want, "{stage}: messages on Letterbox\n{log}");
    assert_eq!(have(dc), want, "{stage}: messages on Dovecot\n{log}");
    for id in ids {
        let (_, lf, lh) = &lb[*id];
        let (_, df, dh) = &dc[*id];
        assert_eq!(lh, dh, "{stage}: bytes of {id} differ");
        assert_eq!(
            system(lf),
            system(df),
            "{stage}: system flags of {id} (Letterbox {lf:?}, Dovecot {df:?})\n{log}"
        );
    }
    for (id, flags) in expect {
        assert_eq!(system(&lb[*id].1), set(flags), "{stage}: flags of {id}");
    }
    for (side, name, kws) in [(lb, "Letterbox", kw_lb), (dc, "Dovecot", kw_dc)] {
        for (id, (_, flags, _)) in side {
            let want = kws
                .iter()
                .find(|(k, _)| k == id)
                .map_or_else(BTreeSet::new, |(_, k)| set(k));
            assert_eq!(
                keywords(flags),
                want,
                "{stage}: keywords of {id} on {name}\n{log}"
            );
        }
    }
}

/// Runs offlineimap3 once; panics with its output unless it succeeds without an error.
fn offlineimap(rc: &Path, s: &Server, dc: &Dovecot) -> String {
    let mut cmd = Command::new("offlineimap");
    cmd.arg("-c").arg(rc).args(["-o", "-u", "basic"]);
    let out = run_bounded(cmd, b"", SYNC_TIMEOUT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("ERROR") && text.contains("Finished account"),
        "offlineimap failed ({}):\n{text}\n--- daemon log\n{}\n--- dovecot log\n{}",
        out.status,
        s.log(),
        dc.log()
    );
    text
}

#[test]
fn offlineimap3_syncs_keywords_both_ways_with_dovecot() {
    common::require("offlineimap", "--version", "offlineimap3");
    let s = Server::start();
    s.add_user(ALICE, PW);
    let dc = Dovecot::start();

    // The daemon's certificate, pinned by its SHA-256 fingerprint (it names
    // letterbox.home.arpa, not 127.0.0.1).
    let fp = s.python(&format!(
        "import hashlib\nder = ssl.PEM_cert_to_DER_cert(open({:?}).read())\n\
         print(hashlib.sha256(der).hexdigest())\n",
        s.data_dir.join("tls/cert.pem").display().to_string()
    ));
    let work = s.dir.path().join("offlineimap");
    std::fs::create_dir(&work).expect("mkdir");
    let rc = work.join("offlineimaprc");
    std::fs::write(
        &rc,
        format!(
            "[general]\naccounts = sync\nmetadata = {meta}\nui = basic\n\n\
             [Account sync]\nlocalrepository = dovecot\nremoterepository = letterbox\n\n\
             [Repository dovecot]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {dport}\n\
             remoteuser = {DC_USER}\nremotepass = {DC_PW}\nssl = no\nstarttls = no\n\
             folderfilter = lambda f: f == 'Work'\n\n\
             [Repository letterbox]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {lport}\n\
             remoteuser = {ALICE}\nremotepass = {PW}\nssl = yes\ncert_fingerprint = {fp}\n\
             folderfilter = lambda f: f == 'Work'\n",
            meta = work.join("meta").display(),
            dport = dc.port,
            lport = s.port("imaps"),
            fp = fp.trim(),
        ),
    )
    .expect("write offlineimaprc");
    let prelude = format!(
        "ALICE = {ALICE:?}\nPW = {PW:?}\nDC_PORT = {}\nDC_USER = {DC_USER:?}\n\
         DC_PW = {DC_PW:?}\n{SYNC_PY}\n",
        dc.port
    );

    // Four messages on each side of `Work`.
    s.python(&format!(
        "{prelude}\n\
         for side, M in (('lb', lb()), ('dc', dc())):\n    \
         ok(M.create('Work'))\n    \
         for i, fl in enumerate(['(\\\\Seen)', '(\\\\Flagged $Label1)', '($Junk)', '()']):\n        \
         ok(M.append('Work', fl, None, msg(side, i)))\n"
    ));
    let first = offlineimap(&rc, &s, &dc);
    let (lb, dcs) = sync_state(&s, &prelude);
    assert_synced(
        "first sync",
        &lb,
        &dcs,
        &[
            "lb-0", "lb-1", "lb-2", "lb-3", "dc-0", "dc-1", "dc-2", "dc-3",
        ],
        &[
            ("lb-0", &["\\Seen"]),
            ("lb-1", &["\\Flagged"]),
            ("lb-2", &[]),
            ("dc-0", &["\\Seen"]),
            ("dc-1", &["\\Flagged"]),
            ("dc-3", &[]),
        ],
        // Keywords stay where they were set: offlineimap3 does not copy them.
        &[("lb-1", &["$Label1"]), ("lb-2", &["$Junk"])],
        &[("dc-1", &["$Label1"]), ("dc-2", &["$Junk"])],
        &first,
    );

    // Changes on both sides: flags, a keyword, a deletion and an addition each.
    s.python(&format!(
        "{prelude}\n\
         L = lb()\nok(L.select('Work'))\n\
         ok(L.uid('STORE', uid_of(L, 'lb-0'), '-FLAGS', '(\\\\Seen)'))\n\
         ok(L.uid('STORE', uid_of(L, 'lb-0'), '+FLAGS', '(\\\\Answered)'))\n\
         ok(L.uid('STORE', uid_of(L, 'dc-0'), '+FLAGS', '(\\\\Flagged)'))\n\
         ok(L.uid('STORE', uid_of(L, 'lb-3'), '+FLAGS', '($Label2)'))\n\
         ok(L.uid('STORE', uid_of(L, 'lb-2'), '+FLAGS', '(\\\\Deleted)'))\nok(L.expunge())\n\
         ok(L.append('Work', '(\\\\Seen $Label1)', None, msg('lb', 4)))\n\
         D = dc()\nok(D.select('Work'))\n\
         ok(D.uid('STORE', uid_of(D, 'dc-1'), '-FLAGS', '(\\\\Flagged)'))\n\
         ok(D.uid('STORE', uid_of(D, 'lb-1'), '+FLAGS', '(\\\\Seen)'))\n\
         ok(D.uid('STORE', uid_of(D, 'dc-2'), '+FLAGS', '(\\\\Answered $Label3)'))\n\
         ok(D.uid('STORE', uid_of(D, 'dc-3'), '+FLAGS', '(\\\\Deleted)'))\nok(D.expunge())\n\
         ok(D.append('Work', '(\\\\Draft)', None, msg('dc', 4)))\n"
    ));
    let second = offlineimap(&rc, &s, &dc);
    let (lb, dcs) = sync_state(&s, &prelude);
    let ids = [
        "lb-0", "lb-1", "lb-3", "lb-4", "dc-0", "dc-1", "dc-2", "dc-4",
    ];
    let kw_lb: &[(&str, &[&str])] = &[
        ("lb-1", &["$Label1"]),
        ("lb-3", &["$Label2"]),
        ("lb-4", &["$Label1"]),
    ];
    let kw_dc: &[(&str, &[&str])] = &[("dc-1", &["$Label1"]), ("dc-2", &["$Junk", "$Label3"])];
    assert_synced(
        "second sync",
        &lb,
        &dcs,
        &ids,
        &[
            ("lb-0", &["\\Answered"]),
            ("lb-1", &["\\Flagged", "\\Seen"]),
            ("lb-3", &[]),
            ("lb-4", &["\\Seen"]),
            ("dc-0", &["\\Flagged", "\\Seen"]),
            ("dc-1", &[]),
            ("dc-2", &["\\Answered"]),
            ("dc-4", &["\\Draft"]),
        ],
        kw_lb,
        kw_dc,
        &second,
    );

    // Nothing to do: nothing changes on either side, not even a UID.
    let third = offlineimap(&rc, &s, &dc);
    let (lb2, dcs2) = sync_state(&s, &prelude);
    assert_eq!(
        lb2, lb,
        "a sync with nothing to do changed Letterbox:\n{third}"
    );
    assert_eq!(
        dcs2, dcs,
        "a sync with nothing to do changed Dovecot:\n{third}"
    );
    assert!(
        !third.contains("Copy message") && !third.contains("Deleting"),
        "a sync with nothing to do did something:\n{third}"
    );
}
