//! The IMAP session state machine (RFC 9051) under arbitrary client bytes, over the real
//! store: every command reaches its handler, the store writes, FETCH renders ENVELOPE,
//! BODYSTRUCTURE and sections from the parse-once structure, SEARCH, SORT and THREAD
//! evaluate (the template's messages reply to each other for THREAD).
//!
//! The store is a copy of a template database (one account, five messages of different
//! shapes in INBOX, one in Archive) in a directory on tmpfs when there is one, made anew
//! for each input so runs reproduce. Input: 8 control bytes (flags, and the seed that
//! splits the transcript into reads, answers logins, and now and then reports a store
//! change as if another session made it), then the client's bytes.
//!
//! Checks: no panic; every write ends in CRLF; `Step::Wait` only while a TLS handshake
//! is outstanding; `Step::Compress` at most once (after COMPRESS the transcript is read
//! as the decompressed stream); a closed session stays closed; and afterwards the store is consistent:
//! each mailbox's counters (EXISTS, unseen, size, UIDNEXT) match its messages, and every
//! message has its body and its parsed structure.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use letterbox::imap::session::{Decision, Event, Session, SessionConfig, Step};
use letterbox::store::records::flag;
use letterbox::store::{MailboxSel, NewMessage, Op, Output, Store, Target};
use letterbox_fuzz::{Rng, split_ctl};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_420_800;
const LOGIN: &str = "a@home.arpa";
/// A password LOGIN / AUTHENTICATE PLAIN in the corpus use; others fail.
const PASSWORD: &str = "pw";

/// Messages of the template: plain, multipart with an attachment, nested message/rfc822,
/// encoded words and a broken boundary, and an empty one.
const MESSAGES: [&[u8]; 5] = [
    b"From: Alice <alice@example.org>\r\nTo: a@home.arpa\r\nSubject: Hello\r\n\
      Message-ID: <1@example.org>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\nBody text\r\n",
    b"From: bob@example.org\r\nTo: a@home.arpa, c@home.arpa\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\
      In-Reply-To: <1@example.org>\r\nMessage-ID: <2@example.org>\r\n\
      MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n\
      --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--b1\r\n\
      Content-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n\
      AAECAwQF\r\n--b1--\r\n",
    b"From: c@example.org\r\nSubject: Re: [fwd: Hello]\r\nReferences: <1@example.org> <2@example.org>\r\n\
      Content-Type: message/rfc822\r\n\r\n\
      From: d@example.org\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n\
      --x\r\nContent-Type: text/plain\r\n\r\nplain\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--x--\r\n",
    b"Subject: broken\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nno end\r\n--z",
    b"",
];

/// A directory of ours, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    /// A new directory, on tmpfs when the machine has one (fsync is free there).
    fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("letterbox-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The template's files (name, bytes) and the account id, made once per process.
type Template = (Vec<(std::ffi::OsString, Vec<u8>)>, u64);

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = Scratch::new();
        let store = Store::open(dir.path()).expect("template store");
        let account = match store
            .write(Op::CreateAccount {
                address: LOGIN.into(),
                password_hash: "unused".into(),
            })
            .expect("account")
        {
            Output::Id(id) => id,
            o => panic!("{o:?}"),
        };
        let archive = store
            .read(|r| r.mailbox(account, "Archive"))
            .expect("read")
            .expect("Archive")
            .id;
        for (i, raw) in MESSAGES.iter().enumerate() {
            let mailbox = if i == 2 {
                MailboxSel::Id(archive)
            } else {
                MailboxSel::Inbox
            };
            store
                .write(Op::Deliver {
                    message: Arc::new(NewMessage::new(raw.to_vec())),
                    targets: vec![Target { account, mailbox }],
                    flags: if i % 2 == 0 { flag::SEEN } else { 0 },
                    keywords: if i == 1 { vec!["$Forwarded".into()] } else { vec![] },
                    internal_date: NOW - i as i64,
                    delivered: true,
                })
                .expect("deliver");
        }
        store.close();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir.path()).expect("template dir") {
            let entry = entry.expect("entry");
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let bytes = std::fs::read(entry.path()).expect("template file");
                files.push((entry.file_name(), bytes));
            }
        }
        (files, account)
    })
}

/// A fresh copy of the template.
fn fresh_store() -> (Scratch, Store, u64) {
    let (files, account) = template();
    let dir = Scratch::new();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("copy");
    }
    let store = Store::open(dir.path()).expect("open copy");
    (dir, store, *account)
}

/// Every mailbox's counters agree with its messages; every message has its body and
/// parsed structure.
fn check_store(store: &Store, account: u64) {
    store
        .read(|r| {
            for mb in r.mailboxes(account)? {
                let msgs = r.messages(mb.id)?;
                assert_eq!(mb.exists as usize, msgs.len(), "{}: EXISTS", mb.name);
                let unseen = msgs.iter().filter(|(_, m)| m.flags & flag::SEEN == 0).count();
                assert_eq!(mb.unseen as usize, unseen, "{}: unseen", mb.name);
                let size: u64 = msgs.iter().map(|(_, m)| m.size).sum();
                assert_eq!(mb.size, size, "{}: size", mb.name);
                for (uid, m) in &msgs {
                    assert!(*uid > 0 && *uid < mb.uidnext, "{}: UID {uid}", mb.name);
                    assert!(r.blob(&m.blob)?.is_some(), "{}: UID {uid} body", mb.name);
                    assert!(r.parsed(&m.blob)?.is_some(), "{}: UID {uid} parsed", mb.name);
                    assert!(r.blob_refs(&m.blob)? > 0, "{}: UID {uid} refs", mb.name);
                }
            }
            Ok(())
        })
        .expect("store read");
}

fuzz_target!(|data: &[u8]| {
    let Some((ctl, mut rest)) = split_ctl(data) else {
        return;
    };
    let mut rng = Rng::new(&ctl);
    let flags = ctl[0];
    let cfg = SessionConfig {
        tls_available: flags & 0x01 != 0,
        plaintext_auth_allowed: flags & 0x02 == 0,
        max_message_size: if flags & 0x04 != 0 { 4096 } else { 1 << 20 },
        max_auth_failures: 1 + u32::from(ctl[1] % 4),
        max_line: if flags & 0x08 != 0 { 256 } else { 64 * 1024 },
        // A small daemon-wide literal budget half of the time, so that literals are
        // also refused for want of it (NO [UNAVAILABLE]).
        budget: (flags & 0x20 != 0).then(|| letterbox::budget::Budget::new(8192)),
        // Half of the time a compatibility rule for the client named "fuzz" in ID.
        compat: if ctl[1] & 0x10 != 0 {
            std::sync::Arc::new(vec![letterbox::config::CompatRule {
                client: "fuzz".into(),
                version: None,
                hide: vec!["IDLE".into(), "QUOTA".into()],
                reason: "fuzzing".into(),
            }])
        } else {
            Default::default()
        },
        // SORT through the key cache or straight from the structures.
        sort_cache: (flags & 0x40 != 0).then(Default::default),
    };
    let (_dir, store, account) = fresh_store();
    let mut s = Session::new(cfg, flags & 0x10 != 0);
    assert!(s.greeting().ends_with(b"\r\n"));
    let mut handshake = false;
    let mut compressed = false;
    let mut closed = false;
    loop {
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "session does not settle");
            match s.next() {
                Step::Write(out) => {
                    assert!(out.ends_with(b"\r\n"), "write not ending in CRLF");
                }
                Step::Event(Event::Login(creds)) => {
                    let d = if creds.password.expose() == PASSWORD && rng.below(8) != 0 {
                        Decision::LoggedIn { account }
                    } else if rng.one_in(8) {
                        Decision::Unavailable
                    } else {
                        Decision::Failed
                    };
                    s.answer(d);
                }
                Step::Event(Event::Execute) => s.execute(&store, NOW),
                Step::NeedMoreInput => break,
                Step::Wait => {
                    assert!(handshake, "Wait with every event answered");
                    break;
                }
                Step::StartTls => {
                    if rng.one_in(8) {
                        handshake = true;
                    } else {
                        s.tls_established();
                    }
                }
                // COMPRESS (RFC 4978): the transcript stays plain, as if the driver
                // decompressed it; the bytes the session had not framed come back.
                Step::Compress => {
                    assert!(!compressed, "COMPRESS twice");
                    compressed = true;
                    let rest = s.compression_started();
                    assert!(s.is_compressed());
                    s.feed(&rest);
                }
                Step::Close => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || rest.is_empty() {
            break;
        }
        // Another session changed the mailbox (or changes were missed): IDLE wakes up.
        if rng.one_in(16) {
            s.notify(None);
        }
        let n = rng.chunk(rest.len());
        s.feed(&rest[..n]);
        rest = &rest[n..];
    }
    if closed {
        s.feed(b"a NOOP\r\n");
        assert_eq!(s.next(), Step::Close);
    }
    check_store(&store, account);
    store.close();
});
