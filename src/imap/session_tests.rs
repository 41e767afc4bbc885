//! Session tests without sockets: a transcript runner over a store in a temporary
//! directory (the [`Backend`] the daemon uses), one or two sessions at a time.

use super::*;
use crate::store::{MailboxSel, NewMessage, Op, Output, Store, Target};
use std::sync::Arc;

const NOW: i64 = 1_795_420_800;

struct Fixture {
    store: Store,
    account: u64,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let account = match store
        .write(Op::CreateAccount {
            address: "a@home.arpa".into(),
            password_hash: "unused".into(),
        })
        .unwrap()
    {
        Output::Id(id) => id,
        o => panic!("{o:?}"),
    };
    Fixture {
        store,
        account,
        _dir: dir,
    }
}

impl Fixture {
    fn deliver(&self, raw: &[u8]) -> u32 {
        match self
            .store
            .write(Op::Deliver {
                message: Arc::new(NewMessage::new(raw.to_vec())),
                targets: vec![Target {
                    account: self.account,
                    mailbox: MailboxSel::Inbox,
                }],
                flags: 0,
                keywords: vec![],
                internal_date: NOW,
                delivered: true,
            })
            .unwrap()
        {
            Output::Delivered(d) => d[0].2,
            o => panic!("{o:?}"),
        }
    }

    fn session(&self) -> Session {
        Session::new(SessionConfig::default(), false)
    }

    fn logged_in(&self) -> Session {
        let mut s = self.session();
        let out = self.run(&mut s, b"l LOGIN a@home.arpa pw\r\n");
        assert!(out.contains("l OK"), "{out}");
        s
    }

    /// Feeds `input` and drives the session until it needs more; returns what it wrote.
    /// Logins succeed with the password `pw`.
    fn run(&self, s: &mut Session, input: &[u8]) -> String {
        s.feed(input);
        self.drive(s)
    }

    fn drive(&self, s: &mut Session) -> String {
        let mut out = Vec::new();
        for _ in 0..100_000 {
            match s.next() {
                Step::Write(b) => out.extend_from_slice(&b),
                Step::Event(Event::Login(c)) => s.answer(if c.password.expose() == "pw" {
                    Decision::LoggedIn {
                        account: self.account,
                    }
                } else {
                    Decision::Failed
                }),
                Step::Event(Event::Execute) => s.execute(&self.store, NOW),
                Step::StartTls => s.tls_established(),
                // The transcript stays plain: these tests look at the session only.
                Step::Compress => {
                    let rest = s.compression_started();
                    s.feed(&rest);
                }
                Step::NeedMoreInput | Step::Close | Step::Wait => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

const MSG: &[u8] =
    b"From: Alice <alice@example.org>\r\nTo: a@home.arpa\r\nSubject: Hello\r\n\r\nBody text\r\n";

/// One command line for every [`CommandBody`] variant.
const EVERY_COMMAND: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE PLAIN",
    "LOGIN a b",
    "ENABLE CONDSTORE",
    "SELECT INBOX",
    "EXAMINE INBOX",
    "CREATE x",
    "DELETE x",
    "RENAME x y",
    "SUBSCRIBE x",
    "UNSUBSCRIBE x",
    "LIST \"\" *",
    "LSUB \"\" *",
    "NAMESPACE",
    "GETQUOTA \"\"",
    "GETQUOTAROOT INBOX",
    "SETQUOTA \"\" (STORAGE 512)",
    "STATUS INBOX (MESSAGES)",
    "APPEND INBOX {1+}\r\nx",
    "IDLE",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "UID EXPUNGE 1",
    "SEARCH ALL",
    "SORT (DATE) UTF-8 ALL",
    "THREAD REFS UTF-8 ALL",
    "CANCELUPDATE \"a\"",
    "FETCH 1 FLAGS",
    "STORE 1 +FLAGS (\\Seen)",
    "COPY 1 Trash",
    "MOVE 1 Trash",
    "ID NIL",
    "COMPRESS DEFLATE",
];

fn expected(state: StateKind, name: &str) -> bool {
    use StateKind::*;
    let any = ["CAPABILITY", "NOOP", "LOGOUT", "ID"];
    let not_auth = ["STARTTLS", "AUTHENTICATE", "LOGIN"];
    let selected = [
        "CHECK",
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "UID EXPUNGE",
        "SEARCH",
        "SORT",
        "THREAD",
        "CANCELUPDATE",
        "FETCH",
        "STORE",
        "COPY",
        "MOVE",
    ];
    match state {
        Logout => false,
        _ if any.contains(&name) => true,
        NotAuthenticated => not_auth.contains(&name),
        Authenticated => !not_auth.contains(&name) && !selected.contains(&name),
        Selected => !not_auth.contains(&name),
    }
}

#[test]
fn state_table_every_command_in_every_state() {
    let mut seen = std::collections::HashSet::new();
    for line in EVERY_COMMAND {
        let cmd = parse_command(format!("t {line}\r\n").as_bytes()).unwrap();
        seen.insert(std::mem::discriminant(&cmd.body));
        for state in [
            StateKind::NotAuthenticated,
            StateKind::Authenticated,
            StateKind::Selected,
            StateKind::Logout,
        ] {
            assert_eq!(
                allowed(state, &cmd.body),
                expected(state, cmd.body.name()),
                "{line} in {state:?}"
            );
        }
    }
    // Every variant is covered (a new command must be added to the table and here).
    assert_eq!(seen.len(), 38);
}

#[test]
fn state_table_is_enforced_by_the_session() {
    let f = fixture();
    for line in EVERY_COMMAND {
        let cmd = parse_command(format!("t {line}\r\n").as_bytes()).unwrap();
        for state in [
            StateKind::NotAuthenticated,
            StateKind::Authenticated,
            StateKind::Selected,
        ] {
            let mut s = match state {
                StateKind::NotAuthenticated => f.session(),
                StateKind::Authenticated => f.logged_in(),
                _ => {
                    let mut s = f.logged_in();
                    f.run(&mut s, b"s SELECT INBOX\r\n");
                    s
                }
            };
            assert_eq!(s.state(), state);
            let out = f.run(&mut s, format!("t {line}\r\n").as_bytes());
            let refused = out.contains("is not allowed in the");
            assert_eq!(
                refused,
                !allowed(state, &cmd.body),
                "{line} in {state:?}: {out}"
            );
        }
    }
}

#[test]
fn greeting_and_capabilities_depend_on_tls_and_network() {
    let s = Session::new(
        SessionConfig {
            plaintext_auth_allowed: false,
            ..SessionConfig::default()
        },
        false,
    );
    let g = String::from_utf8(s.greeting()).unwrap();
    assert!(
        g.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED"),
        "{g}"
    );
    assert!(!g.contains("AUTH=PLAIN"));
    let s = Session::new(SessionConfig::default(), true);
    let g = String::from_utf8(s.greeting()).unwrap();
    assert!(!g.contains("STARTTLS") && g.contains("AUTH=PLAIN") && g.contains("APPENDLIMIT="));
}

#[test]
fn login_refused_without_tls_outside_plaintext_networks_until_starttls() {
    let f = fixture();
    let mut s = Session::new(
        SessionConfig {
            plaintext_auth_allowed: false,
            ..SessionConfig::default()
        },
        false,
    );
    let out = f.run(&mut s, b"a LOGIN a@home.arpa pw\r\n");
    assert!(out.starts_with("a NO [PRIVACYREQUIRED]"), "{out}");
    // Bytes pipelined after STARTTLS are dropped (CVE-2011-0411).
    s.feed(b"b STARTTLS\r\nc LOGIN a@home.arpa pw\r\n");
    assert_eq!(
        s.next(),
        Step::Write(b"b OK Begin TLS negotiation now\r\n".to_vec())
    );
    assert_eq!(s.next(), Step::StartTls);
    assert_eq!(s.next(), Step::Wait);
    s.tls_established();
    assert_eq!(s.next(), Step::NeedMoreInput);
    let out = f.run(&mut s, b"d LOGIN a@home.arpa pw\r\n");
    assert!(out.starts_with("d OK [CAPABILITY"), "{out}");
}

#[test]
fn authenticate_plain_with_and_without_initial_response() {
    let f = fixture();
    let mut s = f.session();
    // "\0a@home.arpa\0pw"
    let ir = crate::sasl::encode(b"\0a@home.arpa\0pw");
    let out = f.run(&mut s, format!("a AUTHENTICATE PLAIN {ir}\r\n").as_bytes());
    assert!(out.starts_with("a OK [CAPABILITY"), "{out}");
    let mut s = f.session();
    let out = f.run(&mut s, b"b AUTHENTICATE PLAIN\r\n");
    assert_eq!(out, "+ \r\n");
    let bad = crate::sasl::encode(b"\0a@home.arpa\0wrong");
    let out = f.run(&mut s, format!("{bad}\r\n").as_bytes());
    assert!(out.starts_with("b NO [AUTHENTICATIONFAILED]"), "{out}");
    let out = f.run(&mut s, b"c AUTHENTICATE PLAIN\r\n*\r\n");
    assert!(out.ends_with("c BAD Authentication cancelled\r\n"), "{out}");
}

#[test]
fn three_failed_logins_close_the_connection() {
    let f = fixture();
    let mut s = f.session();
    let out = f.run(
        &mut s,
        b"1 LOGIN a x\r\n2 LOGIN a x\r\n3 LOGIN a x\r\n4 NOOP\r\n",
    );
    assert!(out.contains("3 NO [AUTHENTICATIONFAILED]"), "{out}");
    assert!(out.ends_with("* BYE Too many failed logins\r\n"), "{out}");
    assert_eq!(s.next(), Step::Close);
}

#[test]
fn malformed_commands_get_bad_and_the_session_continues() {
    let f = fixture();
    let mut s = f.session();
    let out = f.run(&mut s, b"a FROB\r\n\r\nb LOGIN\r\nc NOOP\r\n");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("a BAD"), "{out}");
    assert!(lines[1].starts_with("* BAD"), "{out}");
    assert!(lines[2].starts_with("b BAD"), "{out}");
    assert_eq!(lines[3], "c OK NOOP completed");
}

#[test]
fn select_reports_the_mailbox_and_fetch_renders() {
    let f = fixture();
    let uid = f.deliver(MSG);
    let mut s = f.logged_in();
    let out = f.run(&mut s, b"s SELECT INBOX (CONDSTORE)\r\n");
    assert!(out.contains("* 1 EXISTS\r\n"), "{out}");
    assert!(out.contains("* OK [UIDVALIDITY "), "{out}");
    assert!(
        out.contains(&format!("* OK [UIDNEXT {}]", uid + 1)),
        "{out}"
    );
    assert!(out.contains("* OK [HIGHESTMODSEQ "), "{out}");
    assert!(out.contains("[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"));
    assert!(
        out.ends_with("s OK [READ-WRITE] SELECT completed\r\n"),
        "{out}"
    );
    let out = f.run(
        &mut s,
        b"f UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n",
    );
    assert!(
        out.starts_with(&format!(
            "* 1 FETCH (UID {uid} FLAGS (\\Recent) RFC822.SIZE {} ENVELOPE (NIL \"Hello\"",
            MSG.len()
        )),
        "{out}"
    );
    assert!(out.ends_with("f OK FETCH completed\r\n"), "{out}");
    // BODY[] without PEEK sets \Seen and reports FLAGS (with MODSEQ under CONDSTORE).
    let out = f.run(&mut s, b"g FETCH 1 BODY[]\r\n");
    assert!(
        out.starts_with(&format!("* 1 FETCH (BODY[] {{{}}}\r\n", MSG.len())),
        "{out}"
    );
    assert!(out.contains("FLAGS (\\Seen \\Recent) MODSEQ ("), "{out}");
    // No unsolicited FETCH repeats what the client was just told.
    let out = f.run(&mut s, b"n NOOP\r\n");
    assert_eq!(out, "n OK completed\r\n");
}

#[test]
fn examine_is_read_only() {
    let f = fixture();
    f.deliver(MSG);
    let mut s = f.logged_in();
    let out = f.run(
        &mut s,
        b"e EXAMINE INBOX\r\nf FETCH 1 BODY[TEXT]\r\ng STORE 1 +FLAGS (\\Seen)\r\n",
    );
    assert!(out.contains("e OK [READ-ONLY]"), "{out}");
    assert!(
        out.contains("* 1 FETCH (BODY[TEXT] {11}\r\nBody text\r\n)\r\n"),
        "{out}"
    );
    assert!(out.contains("g NO [READ-ONLY]"), "{out}");
}

#[test]
fn sequence_numbers_follow_expunges() {
    let f = fixture();
    let u1 = f.deliver(MSG);
    let u2 = f.deliver(MSG);
    let u3 = f.deliver(MSG);
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(
        &mut s,
        b"a STORE 2 +FLAGS.SILENT (\\Deleted)\r\nb EXPUNGE\r\n",
    );
    assert_eq!(
        out,
        "a OK STORE completed\r\n* 2 EXPUNGE\r\nb OK EXPUNGE completed\r\n"
    );
    let out = f.run(&mut s, b"c FETCH 1:* (UID)\r\n");
    assert_eq!(
        out,
        format!("* 1 FETCH (UID {u1})\r\n* 2 FETCH (UID {u3})\r\nc OK FETCH completed\r\n")
    );
    let out = f.run(
        &mut s,
        format!("d UID FETCH {u2} (UID)\r\ne FETCH 3 (UID)\r\n").as_bytes(),
    );
    assert_eq!(
        out,
        "d OK FETCH completed\r\ne BAD Invalid message sequence number\r\n"
    );
}

#[test]
fn concurrent_expunge_is_withheld_during_fetch_store_search() {
    let f = fixture();
    let u1 = f.deliver(MSG);
    let u2 = f.deliver(MSG);
    let mut a = f.logged_in();
    let mut b = f.logged_in();
    f.run(&mut a, b"s SELECT INBOX\r\n");
    f.run(&mut b, b"s SELECT INBOX\r\n");
    let out = f.run(
        &mut a,
        b"x STORE 1 +FLAGS.SILENT (\\Deleted)\r\ny EXPUNGE\r\n",
    );
    assert!(out.contains("* 1 EXPUNGE"), "{out}");
    // B still numbers the expunged message 1: FETCH does not shift numbers and says
    // EXPUNGEISSUED instead of naming a message it cannot show.
    let out = f.run(&mut b, b"f FETCH 1:2 (UID)\r\n");
    assert_eq!(
        out,
        format!("* 2 FETCH (UID {u2})\r\nf OK [EXPUNGEISSUED] Some messages were expunged\r\n")
    );
    let out = f.run(&mut b, b"g SEARCH ALL\r\nh STORE 2 +FLAGS (\\Flagged)\r\n");
    assert_eq!(
        out,
        "* SEARCH 2\r\ng OK SEARCH completed\r\n* 2 FETCH (FLAGS (\\Flagged))\r\nh OK STORE completed\r\n"
    );
    // NOOP may report it; then message 2 becomes 1.
    let out = f.run(&mut b, b"n NOOP\r\n");
    assert_eq!(out, "* 1 EXPUNGE\r\nn OK completed\r\n");
    let out = f.run(&mut b, b"o FETCH 1 (UID)\r\n");
    assert_eq!(
        out,
        format!("* 1 FETCH (UID {u2})\r\no OK FETCH completed\r\n")
    );
    let _ = u1;
}

#[test]
fn new_mail_and_flag_changes_reach_other_sessions_at_command_end() {
    let f = fixture();
    f.deliver(MSG);
    let mut a = f.logged_in();
    let mut b = f.logged_in();
    f.run(&mut a, b"s SELECT INBOX\r\n");
    f.run(&mut b, b"s SELECT INBOX\r\n");
    let u2 = f.deliver(MSG);
    f.run(&mut a, b"x STORE 1 +FLAGS (\\Answered)\r\n");
    let out = f.run(&mut b, b"n NOOP\r\n");
    assert!(out.contains("FETCH (UID 1 FLAGS (\\Answered))"), "{out}");
    assert!(out.contains("* 2 EXISTS\r\n"), "{out}");
    // UID FETCH may report expunges; plain FETCH results already know message 2.
    let out = f.run(&mut b, b"f FETCH 2 (UID)\r\n");
    assert_eq!(
        out,
        format!("* 2 FETCH (UID {u2})\r\nf OK FETCH completed\r\n")
    );
}

#[test]
fn idle_reports_changes_when_notified_and_ends_with_done() {
    let f = fixture();
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(&mut s, b"i IDLE\r\n");
    assert_eq!(out, "+ idling\r\n");
    assert!(s.is_idling());
    let mut rx = f.store.subscribe();
    f.deliver(MSG);
    let change = rx.try_recv().unwrap();
    s.notify(Some(&change));
    // RFC 3501 §7.3.2: this IMAP4rev1 session is the first told of it, so it is recent.
    assert_eq!(f.drive(&mut s), "* 1 EXISTS\r\n* 1 RECENT\r\n");
    // An unrelated change does not wake it.
    s.notify(Some(&Change::QueueChanged));
    assert_eq!(s.next(), Step::NeedMoreInput);
    let out = f.run(&mut s, b"DONE\r\n");
    assert_eq!(out, "i OK IDLE terminated\r\n");
}

#[test]
fn store_unchangedsince_reports_modified() {
    let f = fixture();
    f.deliver(MSG);
    f.deliver(MSG);
    let mut s = f.logged_in();
    f.run(&mut s, b"e ENABLE CONDSTORE\r\ns SELECT INBOX\r\n");
    let out = f.run(&mut s, b"a FETCH 1:2 (MODSEQ)\r\n");
    let m1: u64 = out
        .split("MODSEQ (")
        .nth(1)
        .and_then(|x| x.split(')').next())
        .unwrap()
        .parse()
        .unwrap();
    f.run(&mut s, b"b STORE 2 +FLAGS.SILENT (\\Seen)\r\n");
    let out = f.run(
        &mut s,
        format!("c STORE 1:2 (UNCHANGEDSINCE {m1}) +FLAGS.SILENT (\\Flagged)\r\n").as_bytes(),
    );
    assert!(
        out.ends_with("c OK [MODIFIED 2] Conditional STORE failed for some messages\r\n"),
        "{out}"
    );
    assert!(out.starts_with("* 1 FETCH (MODSEQ ("), "{out}");
}

#[test]
fn search_esearch_save_and_dollar() {
    let f = fixture();
    f.deliver(MSG);
    f.deliver(b"Subject: other\r\n\r\nnothing here\r\n");
    f.deliver(MSG);
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(&mut s, b"a SEARCH TEXT \"body TEXT\"\r\n");
    assert_eq!(out, "* SEARCH 1 3\r\na OK SEARCH completed\r\n");
    let out = f.run(
        &mut s,
        b"b UID SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT hello\r\n",
    );
    assert_eq!(
        out,
        "* ESEARCH (TAG \"b\") UID MIN 1 MAX 3 COUNT 2 ALL 1,3\r\nb OK SEARCH completed\r\n"
    );
    let out = f.run(
        &mut s,
        b"c SEARCH RETURN (SAVE) SUBJECT other\r\nd FETCH $ (UID)\r\n",
    );
    assert_eq!(
        out,
        "c OK SEARCH completed\r\n* 2 FETCH (UID 2)\r\nd OK FETCH completed\r\n"
    );
    let out = f.run(
        &mut s,
        b"e SEARCH CHARSET KOI8-R ALL\r\nf SEARCH CHARSET UTF-8 ALL\r\n",
    );
    assert!(
        out.starts_with("e NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{out}"
    );
    assert!(out.contains("* SEARCH 1 2 3\r\nf OK"), "{out}");
}

#[test]
fn move_reports_copyuid_then_expunges() {
    let f = fixture();
    let u = f.deliver(MSG);
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(&mut s, format!("m UID MOVE {u} Trash\r\n").as_bytes());
    assert!(out.starts_with("* OK [COPYUID "), "{out}");
    assert!(
        out.ends_with("* 1 EXPUNGE\r\nm OK MOVE completed\r\n"),
        "{out}"
    );
    let out = f.run(&mut s, b"t STATUS Trash (MESSAGES UNSEEN SIZE)\r\n");
    assert_eq!(
        out,
        format!(
            "* STATUS Trash (MESSAGES 1 UNSEEN 1 SIZE {})\r\nt OK STATUS completed\r\n",
            MSG.len()
        )
    );
    let out = f.run(&mut s, b"n MOVE 1 Nowhere\r\n");
    assert!(out.starts_with("n BAD"), "no message 1 any more: {out}");
}

#[test]
fn append_with_sync_literal_flags_and_appenduid() {
    let f = fixture();
    let mut s = f.logged_in();
    let out = f.run(
        &mut s,
        format!("a APPEND Sent (\\Seen) {{{}}}\r\n", MSG.len()).as_bytes(),
    );
    assert_eq!(out, "+ Ready\r\n");
    let mut line = MSG.to_vec();
    line.extend_from_slice(b"\r\n");
    let out = f.run(&mut s, &line);
    assert!(out.starts_with("a OK [APPENDUID "), "{out}");
    let out = f.run(&mut s, b"b APPEND Nowhere {1+}\r\nx\r\n");
    assert!(out.starts_with("b NO [TRYCREATE]"), "{out}");
    let out = f.run(&mut s, b"c STATUS Sent (MESSAGES UNSEEN)\r\n");
    assert!(
        out.starts_with("* STATUS Sent (MESSAGES 1 UNSEEN 0)"),
        "{out}"
    );
}

/// MULTIAPPEND (RFC 3502): several messages in one command, one APPENDUID set; a
/// message over the limit fails the whole command and stores nothing.
#[test]
fn multiappend_stores_all_or_nothing() {
    let f = fixture();
    let mut s = Session::new(
        SessionConfig {
            max_message_size: 200,
            ..SessionConfig::default()
        },
        false,
    );
    f.run(&mut s, b"l LOGIN a@home.arpa pw\r\n");
    let caps = f.run(&mut s, b"c CAPABILITY\r\n");
    assert!(caps.contains(" MULTIAPPEND"), "{caps}");
    let mut cmd = b"a APPEND Drafts (\\Draft) {3+}\r\none \"01-Jan-2024 10:00:00 +0000\" {3+}\r\ntwo {5+}\r\nthree\r\n".to_vec();
    let out = f.run(&mut s, &cmd);
    assert!(out.starts_with("a OK [APPENDUID "), "{out}");
    assert!(out.contains(" 1:3] "), "{out}");
    let out = f.run(&mut s, b"b STATUS Drafts (MESSAGES)\r\n");
    assert!(out.starts_with("* STATUS Drafts (MESSAGES 3)"), "{out}");
    // The second literal is over the limit: the first one is not stored either.
    cmd = b"d APPEND Drafts {3+}\r\nok! {300+}\r\n".to_vec();
    cmd.extend_from_slice(&[b'x'; 300]);
    cmd.extend_from_slice(b"\r\n");
    let out = f.run(&mut s, &cmd);
    assert!(out.starts_with("d NO [TOOBIG]"), "{out}");
    let out = f.run(&mut s, b"e STATUS Drafts (MESSAGES)\r\n");
    assert!(out.starts_with("* STATUS Drafts (MESSAGES 3)"), "{out}");
}

#[test]
fn over_limit_literal_is_refused_before_its_bytes() {
    let f = fixture();
    let mut s = Session::new(
        SessionConfig {
            max_message_size: 100,
            ..SessionConfig::default()
        },
        false,
    );
    f.run(&mut s, b"l LOGIN a@home.arpa pw\r\n");
    let out = f.run(&mut s, b"a APPEND INBOX {1000}\r\n");
    assert!(out.starts_with("a NO [TOOBIG]"), "{out}");
    assert!(!out.contains("+ Ready"));
    let out = f.run(&mut s, b"b NOOP\r\n");
    assert_eq!(out, "b OK NOOP completed\r\n");
}

/// The daemon-wide literal budget (budget.rs), shared by two sessions: a literal that
/// does not fit beside one in transit is refused with `NO [UNAVAILABLE]` (temporary,
/// before its bytes for `{n}`, discarded for `{n+}`); a finished APPEND gives its bytes
/// back, and the same APPEND then succeeds.
#[test]
fn literal_budget_is_shared_and_refusal_is_temporary() {
    let f = fixture();
    let budget = crate::budget::Budget::new(3000);
    let cfg = SessionConfig {
        budget: Some(budget.clone()),
        ..SessionConfig::default()
    };
    let mut a = Session::new(cfg.clone(), false);
    let mut b = Session::new(cfg, false);
    f.run(&mut a, b"l LOGIN a@home.arpa pw\r\n");
    f.run(&mut b, b"l LOGIN a@home.arpa pw\r\n");
    // `a` is receiving a 2,000-byte literal.
    assert_eq!(f.run(&mut a, b"a APPEND INBOX {2000}\r\n"), "+ Ready\r\n");
    f.run(&mut a, &[b'x'; 1000]);
    assert_eq!(budget.used(), 2000);
    let out = f.run(&mut b, b"b APPEND INBOX {1500}\r\n");
    assert!(out.starts_with("b NO [UNAVAILABLE]"), "{out}");
    assert!(!out.contains("+ Ready"), "{out}");
    let mut plus = b"c APPEND INBOX {1500+}\r\n".to_vec();
    plus.extend_from_slice(&[b'y'; 1500]);
    plus.extend_from_slice(b"\r\nd NOOP\r\n");
    let out = f.run(&mut b, &plus);
    assert!(out.starts_with("c NO [UNAVAILABLE]"), "{out}");
    assert!(
        out.contains("d OK"),
        "the discarded literal is not read as commands: {out}"
    );
    assert_eq!(budget.used(), 2000);
    let out = f.run(&mut a, &[&[b'x'; 1000][..], b"\r\n"].concat());
    assert!(out.contains("a OK [APPENDUID "), "{out}");
    assert_eq!(budget.used(), 0, "given back once the APPEND ran");
    let out = f.run(&mut b, b"e APPEND INBOX {1500}\r\n");
    assert_eq!(out, "+ Ready\r\n");
    let out = f.run(&mut b, &[&[b'z'; 1500][..], b"\r\n"].concat());
    assert!(out.contains("e OK [APPENDUID "), "{out}");
    assert_eq!(budget.used(), 0);
}

#[test]
fn list_special_use_children_subscribed_and_status() {
    let f = fixture();
    f.deliver(MSG);
    let mut s = f.logged_in();
    let out = f.run(
        &mut s,
        b"c CREATE Projects/2026\r\nd CREATE Saved (USE (\\Flagged))\r\n",
    );
    assert_eq!(out, "c OK CREATE completed\r\nd OK CREATE completed\r\n");
    let out = f.run(
        &mut s,
        b"l LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
    );
    assert!(
        out.starts_with(
            "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* STATUS INBOX (MESSAGES 1 UNSEEN 1)\r\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\HasChildren) \"/\" Projects\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\HasNoChildren \\Flagged) \"/\" Saved\r\n"),
        "{out}"
    );
    let out = f.run(&mut s, b"m LIST \"\" %\r\n");
    assert!(!out.contains("Projects/2026"), "{out}");
    let out = f.run(
        &mut s,
        b"n SUBSCRIBE Sent\r\no LIST (SUBSCRIBED) \"\" *\r\np LSUB \"\" S*\r\n",
    );
    assert!(
        out.contains("* LIST (\\HasNoChildren \\Sent \\Subscribed) \"/\" Sent\r\n"),
        "{out}"
    );
    assert!(out.contains("* LSUB () \"/\" Sent\r\n"), "{out}");
    let out = f.run(&mut s, b"q LIST \"\" \"\"\r\n");
    assert_eq!(
        out,
        "* LIST (\\Noselect) \"/\" \"\"\r\nq OK LIST completed\r\n"
    );
    let out = f.run(&mut s, b"r CREATE x (USE (\\Bogus))\r\ns DELETE INBOX\r\n");
    assert!(out.starts_with("r NO [USEATTR]"), "{out}");
    assert!(out.contains("s NO [CANNOT]"), "{out}");
}

#[test]
fn qresync_select_reports_vanished_earlier() {
    let f = fixture();
    let u1 = f.deliver(MSG);
    f.deliver(MSG);
    let mut s = f.logged_in();
    let out = f.run(&mut s, b"e ENABLE QRESYNC\r\ns SELECT INBOX\r\n");
    let v: u32 = out
        .split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let hm: u64 = out
        .split("HIGHESTMODSEQ ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    f.run(
        &mut s,
        format!("x UID STORE {u1} +FLAGS.SILENT (\\Deleted)\r\ny EXPUNGE\r\nu UNSELECT\r\n")
            .as_bytes(),
    );
    let out = f.run(
        &mut s,
        format!("t SELECT INBOX (QRESYNC ({v} {hm}))\r\n").as_bytes(),
    );
    assert!(
        out.contains(&format!("* VANISHED (EARLIER) {u1}\r\n")),
        "{out}"
    );
}

#[test]
fn pipelined_input_split_at_every_byte_gives_the_same_replies() {
    let f = fixture();
    f.deliver(MSG);
    f.deliver(MSG);
    let script: &[u8] = b"a LOGIN a@home.arpa pw\r\nb EXAMINE INBOX\r\nc UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])\r\nd SEARCH {5+}\r\nHELLO\r\ne NOOP\r\nf LOGOUT\r\n";
    let whole = {
        let mut s = f.session();
        f.run(&mut s, script)
    };
    assert!(whole.ends_with("f OK LOGOUT completed\r\n"), "{whole}");
    for k in 0..=script.len() {
        let mut s = f.session();
        let mut out = f.run(&mut s, &script[..k]);
        out.push_str(&f.run(&mut s, &script[k..]));
        assert_eq!(out, whole, "split at {k}");
    }
    let mut s = f.session();
    let mut out = String::new();
    for b in script {
        out.push_str(&f.run(&mut s, std::slice::from_ref(b)));
    }
    assert_eq!(out, whole, "one byte at a time");
}

#[test]
fn large_fetch_is_written_in_chunks() {
    let f = fixture();
    for _ in 0..300 {
        f.deliver(MSG);
    }
    let mut s = f.logged_in();
    f.run(&mut s, b"s EXAMINE INBOX\r\n");
    s.feed(b"f FETCH 1:* (UID ENVELOPE)\r\n");
    let mut writes = 0;
    let mut all = Vec::new();
    loop {
        match s.next() {
            Step::Write(b) => {
                writes += 1;
                all.extend(b);
            }
            Step::Event(Event::Execute) => s.execute(&f.store, NOW),
            _ => break,
        }
    }
    assert!(writes >= 2, "{writes}");
    let text = String::from_utf8(all).unwrap();
    assert_eq!(text.matches(" FETCH (UID ").count(), 300);
    assert!(text.ends_with("f OK FETCH completed\r\n"));
}

#[test]
fn list_patterns() {
    assert!(pattern_matches("*", "a/b/c"));
    assert!(pattern_matches("%", "INBOX"));
    assert!(!pattern_matches("%", "a/b"));
    assert!(pattern_matches("a/%", "a/b"));
    assert!(!pattern_matches("a/%", "a/b/c"));
    assert!(pattern_matches("a/*", "a/b/c"));
    assert!(pattern_matches("inbox", "INBOX"));
    assert!(pattern_matches("Inbox/%", "INBOX/x"));
    assert!(!pattern_matches("inbox", "Inboxes"));
    assert!(pattern_matches("S%t", "Sent"));
    assert!(!pattern_matches("", "Sent"));
    assert!(pattern_matches("%/%", "a/b"));
}

#[test]
fn imap4rev2_gets_esearch_and_list_on_select_and_no_recent() {
    let f = fixture();
    f.deliver(MSG);
    let mut s = f.logged_in();
    let out = f.run(&mut s, b"e ENABLE IMAP4rev2\r\ns SELECT Sent\r\n");
    assert!(out.starts_with("* ENABLED IMAP4REV2\r\ne OK"), "{out}");
    assert!(
        out.contains("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"),
        "{out}"
    );
    assert!(!out.contains("RECENT"), "{out}");
    let out = f.run(&mut s, b"i SELECT INBOX\r\na SEARCH ALL\r\n");
    assert!(out.contains("* OK [CLOSED]"), "{out}");
    assert!(
        out.ends_with("* ESEARCH (TAG \"a\") ALL 1\r\na OK SEARCH completed\r\n"),
        "{out}"
    );
}

#[test]
fn non_synchronizing_literal_over_the_limit_is_discarded_and_overlong_lines_cut() {
    let f = fixture();
    let mut s = Session::new(
        SessionConfig {
            max_message_size: 100,
            max_line: 1024,
            ..SessionConfig::default()
        },
        false,
    );
    f.run(&mut s, b"l LOGIN a@home.arpa pw\r\n");
    let mut input = b"a APPEND INBOX {500+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 500));
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    let out = f.run(&mut s, &input);
    assert!(out.starts_with("a NO [TOOBIG]"), "{out}");
    assert!(out.ends_with("\r\nb OK NOOP completed\r\n"), "{out}");
    // A line without end is refused once it crosses the cap, whatever follows.
    let mut long = b"c NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'y', 5000));
    let out = f.run(&mut s, &long);
    assert!(out.starts_with("c BAD"), "{out}");
    let out = f.run(&mut s, b"more\r\nd NOOP\r\n");
    assert_eq!(out, "d OK NOOP completed\r\n");
}

/// The store behind a test double: `full` refuses every write (a full card: errors map to
/// NO with a code); `no_bytes` panics when message bytes are read (SORT and THREAD take
/// their keys from the parse-once structure, the bytes only when a search key looks
/// inside).
struct Double {
    store: Store,
    full: bool,
    no_bytes: bool,
}

impl Double {
    fn full(store: Store) -> Double {
        Double {
            store,
            full: true,
            no_bytes: false,
        }
    }
    fn no_bytes(store: Store) -> Double {
        Double {
            store,
            full: false,
            no_bytes: true,
        }
    }
}

impl Backend for Double {
    fn load(
        &self,
        mailbox: u64,
        uids: &[u32],
        parsed: bool,
        raw: bool,
        max_bytes: u64,
    ) -> store::Result<Vec<Option<crate::imap::backend::Loaded>>> {
        assert!(!(raw && self.no_bytes), "message bytes read");
        Backend::load(&self.store, mailbox, uids, parsed, raw, max_bytes)
    }
    fn mailboxes(&self, account: u64) -> store::Result<Vec<crate::store::Mailbox>> {
        self.store.mailboxes(account)
    }
    fn subscriptions(&self, account: u64) -> store::Result<Vec<String>> {
        Backend::subscriptions(&self.store, account)
    }
    fn mailbox(&self, account: u64, name: &str) -> store::Result<Option<crate::store::Mailbox>> {
        Backend::mailbox(&self.store, account, name)
    }
    fn mailbox_by_id(&self, id: u64) -> store::Result<Option<crate::store::Mailbox>> {
        Backend::mailbox_by_id(&self.store, id)
    }
    fn messages(&self, mailbox: u64) -> store::Result<Vec<(u32, crate::store::MessageRow)>> {
        Backend::messages(&self.store, mailbox)
    }
    fn message(&self, mailbox: u64, uid: u32) -> store::Result<Option<crate::store::MessageRow>> {
        Backend::message(&self.store, mailbox, uid)
    }
    fn blob(&self, blob: &[u8; 32]) -> store::Result<Option<Vec<u8>>> {
        assert!(!self.no_bytes, "message bytes read");
        Backend::blob(&self.store, blob)
    }
    fn parsed(
        &self,
        blob: &[u8; 32],
    ) -> store::Result<Option<crate::mail::message::ParsedMessage>> {
        Backend::parsed(&self.store, blob)
    }
    fn expunged_since(&self, mailbox: u64, modseq: u64) -> store::Result<Vec<u32>> {
        Backend::expunged_since(&self.store, mailbox, modseq)
    }
    fn write(&self, op: Op) -> store::Result<Output> {
        if self.full {
            return Err(store::Error::Full);
        }
        Backend::write(&self.store, op)
    }
    fn claim_recent(&self, mailbox: u64, uidnext: u32) -> u32 {
        self.store.claim_recent(mailbox, uidnext)
    }
    fn recent_mark(&self, mailbox: u64) -> u32 {
        self.store.recent_mark(mailbox)
    }
    fn quota(&self, account: u64) -> store::Result<(store::Quota, store::Usage)> {
        Backend::quota(&self.store, account)
    }
}

#[test]
fn store_errors_become_tagged_no_with_a_code() {
    let f = fixture();
    let mut s = f.logged_in();
    s.feed(b"a APPEND INBOX {1+}\r\nx\r\nb CREATE Foo\r\nc NOOP\r\n");
    let full = Double::full(f.store.clone());
    let mut out = Vec::new();
    loop {
        match s.next() {
            Step::Write(b) => out.extend(b),
            Step::Event(Event::Execute) => s.execute(&full, NOW),
            _ => break,
        }
    }
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "a NO [OVERQUOTA] storage is full\r\nb NO [OVERQUOTA] storage is full\r\nc OK NOOP completed\r\n"
    );
}

#[test]
fn selected_mailbox_deleted_elsewhere_ends_the_session_with_bye() {
    let f = fixture();
    let mut a = f.logged_in();
    let mut b = f.logged_in();
    f.run(&mut a, b"c CREATE Projects\r\ns SELECT Projects\r\n");
    let out = f.run(&mut b, b"d DELETE Projects\r\n");
    assert_eq!(out, "d OK DELETE completed\r\n");
    let out = f.run(&mut a, b"n NOOP\r\nm NOOP\r\n");
    assert_eq!(
        out,
        "* BYE Selected mailbox was deleted\r\nn OK completed\r\n"
    );
    assert_eq!(a.next(), Step::Close);
}

/// Noise built from IMAP tokens and random bytes, fed in every state: the session
/// answers and never panics (issue 5: nothing from the network can panic the server).
#[test]
fn token_soup_never_panics() {
    const TOKENS: &[&str] = &[
        "a",
        "UID",
        "FETCH",
        "STORE",
        "SEARCH",
        "SELECT",
        "INBOX",
        "1:*",
        "*",
        "$",
        "2,4:3",
        "(",
        ")",
        "[",
        "]",
        "<0.5>",
        "{3}\r\n",
        "{4+}\r\n",
        "~{2}\r\n",
        "\r\n",
        "\n",
        " ",
        "BODY[1.2.MIME]",
        "BODY.PEEK[HEADER.FIELDS (From)]",
        "BINARY[1]",
        "\"",
        "\\Seen",
        "+FLAGS",
        "OR",
        "NOT",
        "MODSEQ",
        "CHANGEDSINCE",
        "(UNCHANGEDSINCE 1)",
        "IDLE",
        "DONE",
        "AUTHENTICATE",
        "PLAIN",
        "=",
        "APPEND",
        "MOVE",
        "Trash",
        "RETURN",
        "(SAVE)",
        "CHARSET",
        "LIST",
        "\"\"",
        "%",
        "ENABLE",
        "QRESYNC",
        "(QRESYNC (1 1))",
        "EXPUNGE",
        "CLOSE",
        "LOGOUT",
        "NOOP",
        "4294967295",
        "0",
        "99999999999",
    ];
    let f = fixture();
    f.deliver(MSG);
    f.deliver(b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\na\r\n--x--\r\n");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut bad, mut ok) = (0, 0);
    for round in 0..150 {
        let mut s = match round % 3 {
            0 => f.session(),
            1 => f.logged_in(),
            _ => {
                let mut s = f.logged_in();
                f.run(&mut s, b"s SELECT INBOX\r\n");
                s
            }
        };
        for _ in 0..8 {
            const HEADS: &[&str] = &[
                "t NOOP",
                "t FETCH 1",
                "t UID FETCH 1:*",
                "t SEARCH",
                "t STORE 1",
                "t LIST",
                "t SELECT",
                "t STATUS INBOX",
                "t APPEND INBOX",
                "t IDLE",
                "t UID SEARCH",
                "t AUTHENTICATE PLAIN",
                "t ENABLE",
                "t CAPABILITY",
                "t COPY 1:*",
                "",
            ];
            let head = HEADS.get(rand() as usize % HEADS.len()).unwrap_or(&"");
            let mut input = head.as_bytes().to_vec();
            for _ in 0..(rand() % 12) {
                let r = rand();
                if r % 7 == 0 {
                    input.push((r >> 8) as u8);
                } else if let Some(t) = TOKENS.get((r >> 8) as usize % TOKENS.len()) {
                    input.extend_from_slice(t.as_bytes());
                }
                if r % 3 == 0 {
                    input.push(b' ');
                }
            }
            input.extend_from_slice(b"\r\n");
            let out = f.run(&mut s, &input);
            bad += out.matches(" BAD ").count();
            ok += out.matches(" OK ").count();
        }
    }
    // The soup reached the parser and, sometimes, the commands.
    assert!(bad > 100 && ok > 10, "bad {bad} ok {ok}");
}

#[test]
fn flags_changed_elsewhere_are_reported_even_after_a_fetch_without_flags() {
    let f = fixture();
    f.deliver(MSG);
    let mut a = f.logged_in();
    let mut b = f.logged_in();
    f.run(&mut a, b"s SELECT INBOX\r\n");
    f.run(&mut b, b"s SELECT INBOX\r\n");
    f.run(&mut a, b"x STORE 1 +FLAGS (\\Flagged)\r\n");
    // B's FETCH (non-UID) may not carry the change; the FETCH FLAGS comes at its end.
    let out = f.run(&mut b, b"f FETCH 1 (RFC822.SIZE)\r\n");
    assert!(
        out.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n"),
        "{out}"
    );
    let out = f.run(&mut b, b"n NOOP\r\n");
    assert_eq!(out, "n OK completed\r\n");
}

/// What a client learns from the untagged responses, checked for consistency: sequence
/// numbers never jump, a FETCH never names a message number the client does not know,
/// and a number always keeps its UID until the client is told of an EXPUNGE.
#[derive(Default)]
struct ClientModel {
    uids: Vec<Option<u32>>,
}

impl ClientModel {
    fn apply(&mut self, out: &str) {
        for line in out.split("\r\n") {
            let mut w = line.split(' ');
            if w.next() != Some("*") {
                continue;
            }
            let (Some(n), Some(kind)) = (w.next().and_then(|n| n.parse::<usize>().ok()), w.next())
            else {
                if let Some(rest) = line.strip_prefix("* SEARCH") {
                    for id in rest
                        .split_whitespace()
                        .filter_map(|x| x.parse::<usize>().ok())
                    {
                        assert!(
                            id >= 1 && id <= self.uids.len(),
                            "SEARCH {id} of {}",
                            self.uids.len()
                        );
                    }
                }
                continue;
            };
            match kind {
                "EXISTS" => {
                    assert!(
                        n >= self.uids.len(),
                        "EXISTS shrank: {n} < {}",
                        self.uids.len()
                    );
                    self.uids.resize(n, None);
                }
                "EXPUNGE" => {
                    assert!(
                        n >= 1 && n <= self.uids.len(),
                        "EXPUNGE {n} of {}",
                        self.uids.len()
                    );
                    self.uids.remove(n - 1);
                }
                "FETCH" => {
                    assert!(
                        n >= 1 && n <= self.uids.len(),
                        "FETCH {n} of {}",
                        self.uids.len()
                    );
                    // STORE's replies to a plain STORE carry no UID: range check only.
                    let Some(uid) = line
                        .split("UID ")
                        .nth(1)
                        .and_then(|x| x.split([' ', ')']).next())
                        .and_then(|x| x.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    match self.uids[n - 1] {
                        Some(known) => assert_eq!(known, uid, "message {n} changed its UID"),
                        None => self.uids[n - 1] = Some(uid),
                    }
                    let known: Vec<u32> = self.uids.iter().flatten().copied().collect();
                    assert!(
                        known.windows(2).all(|p| p[0] < p[1]),
                        "UIDs out of order: {known:?}"
                    );
                }
                _ => {}
            }
        }
    }
}

#[test]
fn concurrent_delivery_and_expunge_keep_every_client_view_consistent() {
    let f = fixture();
    for _ in 0..5 {
        f.deliver(MSG);
    }
    let mut s = f.logged_in();
    let mut model = ClientModel::default();
    model.apply(&f.run(&mut s, b"s SELECT INBOX\r\n"));
    let store = f.store.clone();
    let account = f.account;
    let writer = std::thread::spawn(move || {
        let inbox = store
            .read(|r| r.mailbox(account, "INBOX"))
            .unwrap()
            .unwrap()
            .id;
        for i in 0..150 {
            store
                .write(Op::Deliver {
                    message: Arc::new(NewMessage::new(MSG.to_vec())),
                    targets: vec![Target {
                        account,
                        mailbox: MailboxSel::Inbox,
                    }],
                    flags: 0,
                    keywords: vec![],
                    internal_date: NOW,
                    delivered: true,
                })
                .unwrap();
            if i % 2 == 0 {
                let rows = store.read(|r| r.messages(inbox)).unwrap();
                let victims: Vec<u32> = rows.iter().step_by(3).map(|(u, _)| *u).collect();
                store
                    .write(Op::Expunge {
                        mailbox: inbox,
                        uids: Some(victims),
                    })
                    .unwrap();
            }
        }
    });
    let mut i = 0;
    while !writer.is_finished() || i < 50 {
        let cmd: &[u8] = match (i % 5, model.uids.is_empty()) {
            (_, true) => b"n NOOP\r\n",
            (0, _) => b"f FETCH 1:* (UID FLAGS)\r\n",
            (1, _) => b"u UID FETCH 1:* (UID)\r\n",
            (2, _) => b"s SEARCH ALL\r\n",
            (3, _) => b"x STORE 1:* +FLAGS (\\Seen)\r\n",
            _ => b"n NOOP\r\n",
        };
        let out = f.run(&mut s, cmd);
        assert!(!out.contains(" BAD "), "{out}");
        model.apply(&out);
        i += 1;
    }
    writer.join().unwrap();
    model.apply(&f.run(&mut s, b"n NOOP\r\nf FETCH 1:* (UID)\r\n"));
    let inbox = f
        .store
        .read(|r| r.mailbox(f.account, "INBOX"))
        .unwrap()
        .unwrap()
        .id;
    let truth: Vec<Option<u32>> = f
        .store
        .read(|r| r.messages(inbox))
        .unwrap()
        .into_iter()
        .map(|(u, _)| Some(u))
        .collect();
    assert_eq!(model.uids, truth);
}

#[test]
fn copy_uid_expunge_close_rename_inbox() {
    let f = fixture();
    let u1 = f.deliver(MSG);
    let u2 = f.deliver(MSG);
    let u3 = f.deliver(MSG);
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    // COPY: tagged COPYUID (RFC 4315 §3), source unchanged.
    let out = f.run(&mut s, b"c COPY 1:2 Archive\r\n");
    assert!(out.starts_with("c OK [COPYUID "), "{out}");
    assert!(out.contains(&format!(" {u1}:{u2} ")), "{out}");
    // UID EXPUNGE removes only \Deleted messages of its set (RFC 4315 §2.1).
    let out = f.run(
        &mut s,
        format!("d STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\ne UID EXPUNGE {u2}:{u3}\r\n").as_bytes(),
    );
    assert!(
        out.ends_with("* 3 EXPUNGE\r\n* 2 EXPUNGE\r\ne OK EXPUNGE completed\r\n"),
        "{out}"
    );
    // CLOSE expunges the rest silently (RFC 9051 §6.4.1).
    let out = f.run(&mut s, b"k CHECK\r\nl CLOSE\r\n");
    assert_eq!(out, "k OK completed\r\nl OK CLOSE completed\r\n");
    assert_eq!(s.state(), StateKind::Authenticated);
    let out = f.run(&mut s, b"m STATUS INBOX (MESSAGES DELETED)\r\n");
    assert!(
        out.starts_with("* STATUS INBOX (MESSAGES 0 DELETED 0)"),
        "{out}"
    );
    // RENAME INBOX moves its messages to a new mailbox; INBOX stays (RFC 9051 §6.3.6).
    let out = f.run(
        &mut s,
        b"r RENAME Archive Old/Archive\r\nt RENAME INBOX Saved\r\n",
    );
    assert_eq!(out, "r OK RENAME completed\r\nt OK RENAME completed\r\n");
    let out = f.run(&mut s, b"u LIST \"\" *\r\n");
    assert!(
        out.contains("\"/\" Old/Archive\r\n") && out.contains("\"/\" Saved\r\n"),
        "{out}"
    );
    assert!(out.contains("\"/\" INBOX\r\n"), "{out}");
    let out = f.run(&mut s, b"v STATUS Old/Archive (MESSAGES)\r\n");
    assert!(
        out.starts_with("* STATUS Old/Archive (MESSAGES 2)"),
        "{out}"
    );
}

#[test]
fn idle_ended_by_anything_but_done_and_id_before_login() {
    let f = fixture();
    let mut s = f.session();
    let out = f.run(&mut s, b"i ID (\"name\" \"test\")\r\n");
    assert!(
        out.starts_with("* ID (\"name\" \"Letterbox\" \"version\" "),
        "{out}"
    );
    assert!(out.ends_with("i OK ID completed\r\n"), "{out}");
    let mut s = f.logged_in();
    let out = f.run(&mut s, b"a IDLE\r\nb NOOP\r\nc NOOP\r\n");
    assert_eq!(
        out,
        "+ idling\r\na BAD Expected DONE; IDLE terminated\r\nc OK NOOP completed\r\n"
    );
    // AUTHENTICATE is refused like LOGIN where plaintext is not allowed.
    let mut s = Session::new(
        SessionConfig {
            plaintext_auth_allowed: false,
            ..SessionConfig::default()
        },
        false,
    );
    let out = f.run(&mut s, b"x AUTHENTICATE PLAIN AGFAcHc=\r\n");
    assert!(out.starts_with("x NO [PRIVACYREQUIRED]"), "{out}");
}

#[test]
fn list_recursivematch_reports_childinfo() {
    let f = fixture();
    let mut s = f.logged_in();
    f.run(
        &mut s,
        b"c CREATE Work/Reports\r\nd SUBSCRIBE Work/Reports\r\n",
    );
    let out = f.run(&mut s, b"l LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n");
    assert!(
        out.contains("* LIST (\\HasChildren) \"/\" Work (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"),
        "{out}"
    );
    assert!(!out.contains("Work/Reports"), "{out}");
}

/// Per-message memory of a selected mailbox: 10,000 messages cost about 320 KB per
/// session that has them selected (many idle clients on one big INBOX).
#[test]
fn view_entries_stay_small() {
    assert!(
        std::mem::size_of::<Msg>() <= 32,
        "{}",
        std::mem::size_of::<Msg>()
    );
}

/// `Backend::load` with a byte budget: at least one message, then it stops after the
/// message that takes the total over the budget (FETCH and SEARCH batches).
#[test]
fn load_stops_after_the_byte_budget() {
    let f = fixture();
    for _ in 0..3 {
        f.deliver(MSG);
    }
    let inbox = f
        .store
        .read(|r| r.mailbox(f.account, "INBOX"))
        .unwrap()
        .unwrap();
    let b: &dyn Backend = &f.store;
    let n = |budget| {
        b.load(inbox.id, &[1, 2, 3], false, true, budget)
            .unwrap()
            .len()
    };
    assert_eq!(n(0), 1);
    assert_eq!(n(MSG.len() as u64), 2);
    assert_eq!(n(u64::MAX), 3);
    let without_bytes = b.load(inbox.id, &[1, 2, 3], true, false, 0).unwrap();
    assert_eq!(without_bytes.len(), 3, "no bytes, no budget used");
    assert!(without_bytes.iter().all(|l| {
        l.as_ref()
            .is_some_and(|l| l.raw.is_none() && l.parsed.is_some())
    }));
}

/// RFC 3501 §2.3.2: exactly one session sees each new message as `\Recent`; EXAMINE looks
/// without claiming; an IMAP4rev2 session never sees it. Reported in RECENT, FETCH FLAGS,
/// SEARCH RECENT/NEW/OLD and STATUS RECENT; a COPY into the selected mailbox counts too.
#[test]
fn recent_belongs_to_exactly_one_session() {
    let f = fixture();
    f.deliver(MSG);
    let mut watcher = f.logged_in();
    // STATUS before anyone selected: one unclaimed recent message.
    let out = f.run(&mut watcher, b"t STATUS INBOX (RECENT MESSAGES)\r\n");
    assert!(
        out.contains("* STATUS INBOX (RECENT 1 MESSAGES 1)"),
        "{out}"
    );
    // EXAMINE sees it as recent but does not claim it.
    let out = f.run(&mut watcher, b"e EXAMINE INBOX\r\n");
    assert!(out.contains("* 1 RECENT\r\n"), "{out}");
    let mut a = f.logged_in();
    let out = f.run(&mut a, b"s SELECT INBOX\r\n");
    assert!(out.contains("* 1 RECENT\r\n"), "{out}");
    let out = f.run(&mut a, b"f FETCH 1 FLAGS\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Recent))"), "{out}");
    let out = f.run(
        &mut a,
        b"r SEARCH RECENT\r\nn SEARCH NEW\r\no SEARCH OLD\r\n",
    );
    assert!(out.contains("* SEARCH 1\r\nr OK"), "{out}");
    assert!(out.contains("* SEARCH 1\r\nn OK"), "{out}");
    assert!(out.contains("* SEARCH\r\no OK"), "{out}");
    // A second session selecting later does not see it.
    let mut b = f.logged_in();
    let out = f.run(&mut b, b"s SELECT INBOX\r\n");
    assert!(out.contains("* 0 RECENT\r\n"), "{out}");
    let out = f.run(&mut b, b"f FETCH 1 FLAGS\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS ())"), "{out}");
    // New mail: the first session to be told claims it; the other sees it as old.
    f.deliver(MSG);
    let out = f.run(&mut b, b"n NOOP\r\n");
    assert!(out.contains("* 2 EXISTS\r\n* 1 RECENT\r\n"), "{out}");
    let out = f.run(&mut a, b"n NOOP\r\n");
    assert!(out.contains("* 2 EXISTS\r\n* 1 RECENT\r\n"), "{out}");
    let out = f.run(&mut a, b"f FETCH 2 FLAGS\r\n");
    assert!(out.contains("* 2 FETCH (FLAGS ())"), "{out}");
    // A COPY into the selected mailbox is new mail for this session.
    let out = f.run(&mut a, b"c COPY 1 INBOX\r\n");
    assert!(out.contains("* 3 EXISTS\r\n* 2 RECENT\r\n"), "{out}");
    assert!(out.contains("c OK [COPYUID "), "{out}");
    // STATUS: nothing unclaimed; this session's own recent messages count.
    let out = f.run(&mut a, b"t STATUS INBOX (RECENT)\r\n");
    assert!(out.contains("* STATUS INBOX (RECENT 2)"), "{out}");
    // An IMAP4rev2 session neither sees nor claims it.
    let mut rev2 = f.logged_in();
    f.run(&mut rev2, b"e ENABLE IMAP4rev2\r\n");
    f.deliver(MSG);
    let out = f.run(&mut rev2, b"s SELECT INBOX\r\n");
    assert!(!out.contains("RECENT"), "{out}");
    let out = f.run(&mut rev2, b"f FETCH 4 FLAGS\r\n");
    assert!(out.contains("* 4 FETCH (FLAGS ())"), "{out}");
    let out = f.run(&mut a, b"n NOOP\r\n");
    assert!(out.contains("* 4 EXISTS\r\n* 3 RECENT\r\n"), "{out}");
}

/// RFC 9051 §7.3.5: a keyword used for the first time in the mailbox is announced with
/// FLAGS and PERMANENTFLAGS to every session that has it selected, before any FETCH that
/// shows it.
#[test]
fn a_new_keyword_is_announced_before_any_fetch_shows_it() {
    let f = fixture();
    f.deliver(MSG);
    let mut a = f.logged_in();
    let mut b = f.logged_in();
    f.run(&mut a, b"s SELECT INBOX\r\n");
    let out = f.run(&mut b, b"s SELECT INBOX\r\n");
    assert!(
        out.contains("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"),
        "{out}"
    );
    let out = f.run(&mut a, b"k STORE 1 +FLAGS ($Label1)\r\n");
    let flags = out.find("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n");
    let perm = out
        .find("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)]");
    let fetch = out.find("* 1 FETCH (FLAGS (\\Recent $Label1))");
    assert!(
        flags.is_some() && perm.is_some() && fetch.is_some(),
        "{out}"
    );
    assert!(flags < fetch && perm < fetch, "{out}");
    // The other session hears of it on its next command, FLAGS first.
    let out = f.run(&mut b, b"n NOOP\r\n");
    let flags = out.find("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n");
    let fetch = out.find("* 1 FETCH (UID 1 FLAGS ($Label1))");
    assert!(flags.is_some() && fetch.is_some() && flags < fetch, "{out}");
    // Known keywords are not announced again; a case variant is the same keyword.
    let out = f.run(&mut a, b"k STORE 1 FLAGS ($label1 \\Seen)\r\n");
    assert!(!out.contains("* FLAGS"), "{out}");
    // APPEND with a new keyword into the selected mailbox: announced before EXISTS' FETCH.
    let out = f.run(
        &mut b,
        format!("a APPEND INBOX ($Junk) {{{}+}}\r\n", MSG.len()).as_bytes(),
    );
    let out = out + &f.run(&mut b, &[MSG, b"\r\n"].concat());
    assert!(out.contains("$Label1 $Junk)\r\n"), "{out}");
    let out = f.run(&mut a, b"n NOOP\r\nf FETCH 2 FLAGS\r\n");
    let flags = out.find("$Junk)\r\n");
    let fetch = out.find("* 2 FETCH (FLAGS ($Junk))");
    assert!(flags.is_some() && fetch.is_some() && flags < fetch, "{out}");
}

/// RFC 7162 §3.1: a FETCH or SEARCH naming MODSEQ enables CONDSTORE and, with a mailbox
/// selected, is answered with HIGHESTMODSEQ; RFC 4731 §3.2: with MIN or MAX only, MODSEQ is
/// that of the message returned.
#[test]
fn condstore_enabling_and_the_modseq_of_min_and_max() {
    let f = fixture();
    for _ in 0..3 {
        f.deliver(MSG);
    }
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    // Give message 1 the highest modseq.
    f.run(&mut s, b"k STORE 1 +FLAGS (\\Flagged)\r\n");
    let out = f.run(&mut s, b"f FETCH 1 (MODSEQ)\r\n");
    assert!(out.starts_with("* OK [HIGHESTMODSEQ "), "{out}");
    let out = f.run(&mut s, b"f2 FETCH 1 (MODSEQ)\r\n");
    assert!(
        !out.contains("HIGHESTMODSEQ"),
        "only the first enabling command: {out}"
    );
    let modseq = |out: &str, seq: u32| -> u64 {
        let head = format!("* {seq} FETCH (MODSEQ (");
        let at = out.find(&head).unwrap() + head.len();
        out[at..].split(')').next().unwrap().parse().unwrap()
    };
    let all = f.run(&mut s, b"m FETCH 1:3 (MODSEQ)\r\n");
    let (m1, m2, m3) = (modseq(&all, 1), modseq(&all, 2), modseq(&all, 3));
    assert!(m1 > m3 && m3 > m2, "{all}");
    let out = f.run(&mut s, b"x SEARCH RETURN (MAX) MODSEQ 1\r\n");
    assert!(out.contains(&format!("MAX 3 MODSEQ {m3}")), "{out}");
    let out = f.run(&mut s, b"x SEARCH RETURN (MIN) MODSEQ 1\r\n");
    assert!(out.contains(&format!("MIN 1 MODSEQ {m1}")), "{out}");
    let out = f.run(&mut s, b"x SEARCH RETURN (MIN MAX) 2:3 MODSEQ 1\r\n");
    assert!(out.contains(&format!("MIN 2 MAX 3 MODSEQ {m3}")), "{out}");
    let out = f.run(&mut s, b"x SEARCH RETURN (COUNT) 2:3 MODSEQ 1\r\n");
    assert!(out.contains(&format!("COUNT 2 MODSEQ {m3}")), "{out}");

    // A SEARCH naming MODSEQ is enabling too.
    let mut t = f.logged_in();
    f.run(&mut t, b"s SELECT INBOX\r\n");
    let out = f.run(&mut t, b"x SEARCH MODSEQ 1\r\n");
    assert!(out.starts_with("* OK [HIGHESTMODSEQ "), "{out}");
}

/// RFC 6851 §3.3: MOVE (and COPY) into the selected mailbox itself give new UIDs.
#[test]
fn move_and_copy_into_the_selected_mailbox() {
    let f = fixture();
    f.deliver(MSG);
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(&mut s, b"m UID MOVE 1 INBOX\r\n");
    assert!(out.contains("* OK [COPYUID "), "{out}");
    assert!(out.contains(" 1 2] Moved\r\n"), "{out}");
    assert!(out.contains("* 1 EXPUNGE\r\n"), "{out}");
    assert!(out.ends_with("m OK MOVE completed\r\n"), "{out}");
    let out = f.run(&mut s, b"c UID COPY 2 INBOX\r\n");
    assert!(out.contains(" 2 3] COPY completed\r\n"), "{out}");
    let out = f.run(&mut s, b"f UID FETCH 1:* (UID)\r\n");
    assert!(
        out.contains("* 1 FETCH (UID 2)\r\n* 2 FETCH (UID 3)\r\n"),
        "{out}"
    );
}

/// RFC 2971 §3.3: up to 30 field-value pairs, values up to 1024 octets: an ID line of about
/// 32 KB is answered OK under the 64 KiB IMAP line limit; the part of a line beyond 8 KiB is
/// held under the message-memory budget, and given back when the line ends.
#[test]
fn a_long_id_line_is_answered_and_held_under_the_budget() {
    let f = fixture();
    let mut id = b"i ID (".to_vec();
    for i in 0..30 {
        if i > 0 {
            id.push(b' ');
        }
        id.extend_from_slice(format!("\"field-{i}\" \"").as_bytes());
        id.extend(std::iter::repeat_n(b'v', 1024));
        id.push(b'"');
    }
    id.extend_from_slice(b")\r\n");
    assert!(id.len() > 30 * 1024 && id.len() < 64 * 1024);
    let budget = crate::budget::Budget::new(1 << 20);
    let cfg = SessionConfig {
        budget: Some(budget.clone()),
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, false);
    // In odd pieces: the held bytes follow the line as it grows.
    let (head, tail) = id.split_at(20_000);
    assert_eq!(f.run(&mut s, head), "");
    assert_eq!(budget.used(), 20_000 - 8192);
    let out = f.run(&mut s, tail);
    assert!(out.starts_with("* ID ("), "{out}");
    assert!(out.ends_with("i OK ID completed\r\n"), "{out}");
    assert_eq!(budget.used(), 0);

    // With no room in the budget the connection ends with a temporary reason.
    let budget = crate::budget::Budget::new(4096);
    let cfg = SessionConfig {
        budget: Some(budget.clone()),
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, false);
    let out = f.run(&mut s, head);
    assert!(out.starts_with("* BYE [UNAVAILABLE]"), "{out}");
    assert_eq!(s.next(), Step::Close);
    assert_eq!(budget.used(), 0);
}

/// RFC 5258 §3.5 and §5 (example 8): with RECURSIVEMATCH, a mailbox that the pattern
/// lists and that has a subscribed descendant the pattern does not list carries CHILDINFO
/// ("SUBSCRIBED"), subscribed itself or not, and exists or not; with `*` nothing is hidden,
/// so nothing carries it; RFC 5819 §3: no STATUS for a mailbox listed only for CHILDINFO.
/// RFC 3501 §6.3.9: LSUB `%` lists an unsubscribed parent of a subscription as \Noselect.
#[test]
fn list_recursivematch_childinfo_and_lsub_parents() {
    let f = fixture();
    let mut s = f.logged_in();
    let setup = "c1 CREATE Fruit\r\nc2 CREATE Fruit/Apple\r\nc3 CREATE Fruit/Banana\r\n\
                 c4 CREATE Vegetable\r\nc5 CREATE Vegetable/Broccoli\r\nc6 CREATE Tofu\r\n\
                 c7 CREATE Gone/Box\r\n\
                 s1 SUBSCRIBE Fruit/Banana\r\ns2 SUBSCRIBE Vegetable\r\n\
                 s3 SUBSCRIBE Vegetable/Broccoli\r\ns4 SUBSCRIBE Gone/Box\r\n\
                 u1 UNSUBSCRIBE Fruit\r\nu2 UNSUBSCRIBE Tofu\r\nu3 UNSUBSCRIBE Gone\r\n\
                 d1 DELETE Gone/Box\r\nd2 DELETE Gone\r\n";
    let out = f.run(&mut s, setup.as_bytes());
    assert!(!out.contains(" NO ") && !out.contains(" BAD "), "{out}");
    let line = |out: &str, name: &str| {
        out.lines()
            .find(|l| {
                let tag = format!("\"/\" {name}");
                l.starts_with("* L") && (l.ends_with(&tag) || l.contains(&format!("{tag} (")))
            })
            .map(str::to_owned)
    };
    let out = f.run(&mut s, b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"\r\n");
    assert_eq!(
        line(&out, "Fruit").as_deref(),
        Some("* LIST (\\HasChildren) \"/\" Fruit (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
        "{out}"
    );
    assert_eq!(
        line(&out, "Vegetable").as_deref(),
        Some(
            "* LIST (\\HasChildren \\Subscribed) \"/\" Vegetable (\"CHILDINFO\" (\"SUBSCRIBED\"))"
        ),
        "{out}"
    );
    assert_eq!(
        line(&out, "Gone").as_deref(),
        Some("* LIST (\\NonExistent) \"/\" Gone (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
        "{out}"
    );
    assert!(
        line(&out, "Tofu").is_none() && !out.contains("Banana"),
        "{out}"
    );
    // With `*` every subscribed descendant is listed itself: no CHILDINFO anywhere.
    let out = f.run(&mut s, b"b LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\"\r\n");
    assert!(!out.contains("CHILDINFO"), "{out}");
    assert!(line(&out, "Fruit").is_none(), "{out}");
    assert!(line(&out, "Fruit/Banana").is_some(), "{out}");
    assert!(
        line(&out, "Gone/Box").is_some_and(|l| l.contains("\\NonExistent")),
        "{out}"
    );
    // RFC 5819 §3: STATUS only for the mailboxes that satisfy the selection.
    let out = f.run(
        &mut s,
        b"c LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (STATUS (MESSAGES))\r\n",
    );
    assert!(out.contains("* STATUS Vegetable (MESSAGES 0)"), "{out}");
    assert!(!out.contains("* STATUS Fruit"), "{out}");
    // LSUB: `%` reaches Fruit but not Fruit/Banana, so Fruit comes back as \Noselect.
    let out = f.run(&mut s, b"d LSUB \"\" \"%\"\r\n");
    assert_eq!(
        line(&out, "Fruit").as_deref(),
        Some("* LSUB (\\Noselect) \"/\" Fruit"),
        "{out}"
    );
    assert_eq!(
        line(&out, "Vegetable").as_deref(),
        Some("* LSUB () \"/\" Vegetable"),
        "{out}"
    );
    assert_eq!(
        line(&out, "Gone").as_deref(),
        Some("* LSUB (\\Noselect) \"/\" Gone"),
        "{out}"
    );
    assert!(line(&out, "Tofu").is_none(), "{out}");
    let out = f.run(&mut s, b"e LSUB \"\" \"*\"\r\n");
    assert!(line(&out, "Fruit").is_none(), "{out}");
    assert_eq!(
        line(&out, "Fruit/Banana").as_deref(),
        Some("* LSUB () \"/\" Fruit/Banana"),
        "{out}"
    );
}

/// RFC 9208: GETQUOTAROOT and GETQUOTA report the account's root "" with STORAGE in
/// units of 1024 octets (usage rounded up) and MESSAGE; APPEND and COPY over quota get
/// `NO [OVERQUOTA]` and store nothing; a MOVE within the account is never refused;
/// SETQUOTA is the administrator's.
#[test]
fn quota_is_reported_and_enforced() {
    let f = fixture();
    f.deliver(MSG);
    f.store
        .write(Op::SetQuota {
            address: "a@home.arpa".into(),
            storage: Some(store::Limit::Max(10 * 1024)),
            messages: Some(store::Limit::Max(2)),
        })
        .unwrap();
    let mut s = f.logged_in();
    let out = f.run(&mut s, b"c CAPABILITY\r\n");
    assert!(
        out.contains(" QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"),
        "{out}"
    );
    let out = f.run(&mut s, b"q GETQUOTAROOT INBOX\r\n");
    assert!(
        out.starts_with("* QUOTAROOT INBOX \"\"\r\n* QUOTA \"\" (STORAGE 1 10 MESSAGE 1 2)\r\n"),
        "{out}"
    );
    let out = f.run(&mut s, b"q GETQUOTA \"\"\r\n");
    assert!(
        out.starts_with("* QUOTA \"\" (STORAGE 1 10 MESSAGE 1 2)\r\n"),
        "{out}"
    );
    let out = f.run(&mut s, b"q GETQUOTA \"other\"\r\n");
    assert!(out.starts_with("q NO [NONEXISTENT]"), "{out}");
    let out = f.run(&mut s, b"q SETQUOTA \"\" (STORAGE 1000)\r\n");
    assert!(out.starts_with("q NO [NOPERM]"), "{out}");
    // One more message fits the count; the next does not, and nothing of it is stored.
    let append = format!("a APPEND INBOX {{{}+}}\r\n", MSG.len());
    let out = f.run(&mut s, &[append.as_bytes(), MSG, b"\r\n"].concat());
    assert!(out.contains("a OK [APPENDUID"), "{out}");
    let out = f.run(&mut s, &[append.as_bytes(), MSG, b"\r\n"].concat());
    assert!(out.starts_with("a NO [OVERQUOTA]"), "{out}");
    f.run(&mut s, b"s SELECT INBOX\r\n");
    let out = f.run(&mut s, b"c COPY 1 Archive\r\n");
    assert!(out.starts_with("c NO [OVERQUOTA]"), "{out}");
    let out = f.run(&mut s, b"m MOVE 1 Archive\r\n");
    assert!(out.ends_with("m OK MOVE completed\r\n"), "{out}");
    let out = f.run(&mut s, b"q GETQUOTA \"\"\r\n");
    assert!(out.contains("MESSAGE 2 2)"), "{out}");
    // The storage limit too: a message larger than what is left is refused.
    f.store
        .write(Op::SetQuota {
            address: "a@home.arpa".into(),
            storage: None,
            messages: Some(store::Limit::Unlimited),
        })
        .unwrap();
    let big = vec![b'x'; 10 * 1024];
    let append = format!("b APPEND INBOX {{{}+}}\r\n", big.len());
    let out = f.run(&mut s, &[append.as_bytes(), &big, b"\r\n"].concat());
    assert!(out.starts_with("b NO [OVERQUOTA]"), "{out}");
    let out = f.run(&mut s, b"q GETQUOTA \"\"\r\n");
    assert!(out.starts_with("* QUOTA \"\" (STORAGE 1 10)\r\n"), "{out}");
}

/// `[[imap_compat]]`: after a client names itself in ID (RFC 2971), CAPABILITY leaves out
/// what its rule hides; another client, or the same one at another version, sees it all.
#[test]
fn compat_rules_hide_capabilities_from_the_client_named_in_id() {
    let f = fixture();
    let cfg = SessionConfig {
        compat: Arc::new(vec![crate::config::CompatRule {
            client: "Broken Mail".into(),
            version: Some("1.".into()),
            hide: vec!["QUOTA".into(), "IDLE".into()],
            reason: "test".into(),
        }]),
        ..SessionConfig::default()
    };
    let caps = |s: &mut Session| {
        let out = f.run(s, b"c CAPABILITY\r\n");
        out.lines().next().unwrap_or_default().to_string()
    };
    let mut s = Session::new(cfg.clone(), false);
    f.run(&mut s, b"l LOGIN a@home.arpa pw\r\n");
    assert!(caps(&mut s).contains(" IDLE "));
    f.run(
        &mut s,
        b"i ID (\"name\" \"broken mail\" \"version\" \"1.4\")\r\n",
    );
    let after = caps(&mut s);
    assert!(
        !after.contains(" IDLE ") && !after.contains(" QUOTA "),
        "{after}"
    );
    assert!(
        after.contains(" QUOTA=RES-STORAGE"),
        "only the names given: {after}"
    );
    let mut other = Session::new(cfg, false);
    f.run(&mut other, b"l LOGIN a@home.arpa pw\r\n");
    f.run(
        &mut other,
        b"i ID (\"name\" \"Broken Mail\" \"version\" \"2.0\")\r\n",
    );
    assert!(caps(&mut other).contains(" IDLE "));
}

/// RFC 3501 §6.4.6 with §5.2 (RFC 7162 §3.2): STORE .SILENT spares the client only its own
/// change; another session's change that the write brings along is still reported.
/// RFC 3501 §6.3.1: SELECT names the first unseen message for an IMAP4rev1 session.
#[test]
fn silent_store_still_reports_other_sessions_changes_and_select_names_the_first_unseen() {
    let f = fixture();
    f.deliver(MSG);
    f.deliver(MSG);
    let mut a = f.logged_in();
    let mut b = f.logged_in();
    let out = f.run(&mut a, b"s SELECT INBOX\r\n");
    assert!(out.contains("* OK [UNSEEN 1] First unseen\r\n"), "{out}");
    f.run(&mut a, b"t STORE 1 +FLAGS (\\Seen)\r\n");
    let out = f.run(&mut a, b"s SELECT INBOX\r\n");
    assert!(out.contains("* OK [UNSEEN 2] First unseen\r\n"), "{out}");
    f.run(&mut b, b"s SELECT INBOX\r\n");
    f.run(&mut b, b"k STORE 2 +FLAGS ($Other)\r\n");
    let out = f.run(&mut a, b"q STORE 2 +FLAGS.SILENT (\\Flagged)\r\n");
    assert!(
        out.contains("* 2 FETCH (FLAGS (\\Flagged $Other))"),
        "{out}"
    );
    // Its own change alone stays silent.
    let out = f.run(&mut a, b"r STORE 2 -FLAGS.SILENT (\\Flagged)\r\n");
    assert!(!out.contains("FETCH"), "{out}");
    // IMAP4rev2 has no UNSEEN response code.
    let mut c = f.logged_in();
    f.run(&mut c, b"e ENABLE IMAP4rev2\r\n");
    let out = f.run(&mut c, b"s SELECT INBOX\r\n");
    assert!(!out.contains("UNSEEN"), "{out}");
}

// ---------------------------------------------------------------------------------
// SORT and THREAD (RFC 5256, RFC 5957, RFC 5267).
// ---------------------------------------------------------------------------------

/// Four messages: a reply chain 2 <- 1 <- 4 (References, then In-Reply-To), 3 on its
/// own with no Date (its INTERNALDATE, `NOW` in November 2026, is its sent date).
const SORT_MSGS: [&[u8]; 4] = [
    b"From: Bob <bob@b.example>\r\nTo: zed@z.example\r\nSubject: Re: Lunch\r\nDate: 2 Jan 2026 10:00:00 +0000\r\nMessage-ID: <b@x>\r\nReferences: <a@x>\r\n\r\nok\r\n",
    b"From: Zoe <alice@a.example>\r\nSubject: Lunch\r\nDate: Thu, 1 Jan 2026 11:00:00 +0100\r\nMessage-ID: <a@x>\r\n\r\nnoon?\r\n",
    b"From: =?utf-8?q?=C3=89mile?= <emile@e.example>\r\nSubject: Dinner\r\nMessage-ID: <c@x>\r\n\r\nhungry\r\n",
    b"Subject: [list] lunch\r\nDate: 3 Jan 2026 10:00:00 +0000\r\nMessage-ID: <d@x>\r\nIn-Reply-To: <b@x>\r\n\r\nme too, a longer body than the others\r\n",
];

fn sort_fixture() -> (Fixture, Session) {
    let f = fixture();
    for m in SORT_MSGS {
        f.deliver(m);
    }
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    (f, s)
}

/// RFC 5256 §3 every key, REVERSE, the implicit sequence-number order, UID SORT, and
/// RFC 5957 DISPLAYFROM / DISPLAYTO.
#[test]
fn sort_by_every_key() {
    let (f, mut s) = sort_fixture();
    for (cmd, want) in [
        ("SORT (SUBJECT) UTF-8 ALL", "3 1 2 4"),
        ("SORT (REVERSE SUBJECT) UTF-8 ALL", "1 2 4 3"),
        ("SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "3 4 1 2"),
        ("SORT (DATE) UTF-8 ALL", "2 1 4 3"),
        ("SORT (REVERSE DATE) US-ASCII ALL", "3 4 1 2"),
        // All arrived at the same INTERNALDATE: sequence order.
        ("SORT (ARRIVAL) UTF-8 ALL", "1 2 3 4"),
        ("SORT (REVERSE ARRIVAL) UTF-8 ALL", "1 2 3 4"),
        ("SORT (FROM) UTF-8 ALL", "4 2 1 3"),
        ("SORT (TO) UTF-8 ALL", "2 3 4 1"),
        ("SORT (CC SUBJECT) UTF-8 ALL", "3 1 2 4"),
        ("SORT (DISPLAYFROM) UTF-8 ALL", "4 1 3 2"),
        ("SORT (REVERSE DISPLAYTO) UTF-8 ALL", "1 2 3 4"),
        // Search keys, content ones included, narrow the set first.
        ("SORT (DATE) UTF-8 SUBJECT lunch", "2 1 4"),
        ("SORT (DATE) UTF-8 NOT BODY noon 2:*", "4 3"),
        ("SORT (SUBJECT) UTF-8 TEXT \"not in mailbox\"", ""),
    ] {
        let out = f.run(&mut s, format!("t {cmd}\r\n").as_bytes());
        let line = if want.is_empty() {
            "* SORT\r\n".to_string()
        } else {
            format!("* SORT {want}\r\n")
        };
        assert_eq!(out, format!("{line}t OK SORT completed\r\n"), "{cmd}");
    }
    // SIZE: RFC822.SIZE as stored, ascending and REVERSE.
    let inbox = Backend::mailbox(&f.store, f.account, "INBOX")
        .unwrap()
        .unwrap();
    let rows = Backend::messages(&f.store, inbox.id).unwrap();
    let mut by_size: Vec<(u64, u32)> = rows.iter().map(|(u, r)| (r.size, *u)).collect();
    by_size.sort();
    let asc: Vec<String> = by_size.iter().map(|x| x.1.to_string()).collect();
    let out = f.run(
        &mut s,
        b"z SORT (SIZE) UTF-8 ALL\r\ny SORT (REVERSE SIZE) UTF-8 ALL\r\n",
    );
    let desc: Vec<String> = asc.iter().rev().cloned().collect();
    assert_eq!(
        out,
        format!(
            "* SORT {}\r\nz OK SORT completed\r\n* SORT {}\r\ny OK SORT completed\r\n",
            asc.join(" "),
            desc.join(" ")
        )
    );
    // UID SORT answers UIDs (here 1..4 too), after a search by UID.
    let out = f.run(&mut s, b"u UID SORT (SUBJECT) UTF-8 UID 2:*\r\n");
    assert_eq!(out, "* SORT 3 2 4\r\nu OK SORT completed\r\n");
    // Charsets other than UTF-8 and US-ASCII: NO [BADCHARSET].
    let out = f.run(
        &mut s,
        b"b SORT (DATE) KOI8-R ALL\r\nc THREAD REFS ISO-8859-1 ALL\r\n",
    );
    assert!(
        out.starts_with("b NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{out}"
    );
    assert!(
        out.contains("\r\nc NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{out}"
    );
}

/// RFC 5267 ESORT: MIN and MAX are the first and last in sort order, ALL keeps the
/// order, PARTIAL slices positions, SAVE fills `$`; CONDSTORE's MODSEQ for SORT.
#[test]
fn esort_return_options() {
    let (f, mut s) = sort_fixture();
    let out = f.run(
        &mut s,
        b"e UID SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL\r\n",
    );
    assert_eq!(
        out,
        "* ESEARCH (TAG \"e\") UID MIN 3 MAX 4 COUNT 4 ALL 3,1:2,4\r\ne OK SORT completed\r\n"
    );
    let out = f.run(&mut s, b"r SORT RETURN () (REVERSE DATE) UTF-8 ALL\r\n");
    assert_eq!(
        out,
        "* ESEARCH (TAG \"r\") ALL 3:4,1:2\r\nr OK SORT completed\r\n"
    );
    let out = f.run(
        &mut s,
        b"p SORT RETURN (PARTIAL 2:3 COUNT) (SUBJECT) UTF-8 ALL\r\nq SORT RETURN (PARTIAL 5:9) (SUBJECT) UTF-8 ALL\r\n",
    );
    assert_eq!(
        out,
        "* ESEARCH (TAG \"p\") PARTIAL (2:3 1:2) COUNT 4\r\np OK SORT completed\r\n* ESEARCH (TAG \"q\") PARTIAL (5:9 NIL)\r\nq OK SORT completed\r\n"
    );
    let out = f.run(
        &mut s,
        b"v SORT RETURN (SAVE) (DATE) UTF-8 SUBJECT lunch\r\nw SEARCH $\r\n",
    );
    assert_eq!(
        out,
        "v OK SORT completed\r\n* SEARCH 1 2 4\r\nw OK SEARCH completed\r\n"
    );
    let out = f.run(&mut s, b"m SORT (DATE) UTF-8 MODSEQ 1\r\n");
    assert!(out.contains("* SORT 2 1 4 3 (MODSEQ "), "{out}");
    assert!(out.ends_with("m OK SORT completed\r\n"), "{out}");
}

/// RFC 5256 §3 THREAD: ORDEREDSUBJECT, REFERENCES (References, then In-Reply-To),
/// REFS; UID THREAD; search keys narrow the set.
#[test]
fn thread_algorithms() {
    let (f, mut s) = sort_fixture();
    for (cmd, want) in [
        ("THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (2 (1)(4))(3)"),
        ("THREAD REFERENCES UTF-8 ALL", "* THREAD (2 1 4)(3)"),
        ("UID THREAD REFS UTF-8 ALL", "* THREAD (2 1 4)(3)"),
        // Without 1 (Bob's), 4 hangs under a dummy for <b@x>, promoted to the top as
        // its only child (step 3); then 2 and 4 share the base subject "lunch" and
        // neither is a reply: both go under a new dummy (step 5).
        (
            "THREAD REFERENCES UTF-8 NOT FROM bob",
            "* THREAD ((2)(4))(3)",
        ),
        ("THREAD REFS UTF-8 NOT FROM bob", "* THREAD (2)(4)(3)"),
        ("THREAD REFERENCES UTF-8 3", "* THREAD (3)"),
        ("THREAD ORDEREDSUBJECT US-ASCII TEXT \"gewp\"", "* THREAD"),
    ] {
        let out = f.run(&mut s, format!("t {cmd}\r\n").as_bytes());
        assert_eq!(out, format!("{want}\r\nt OK THREAD completed\r\n"), "{cmd}");
    }
    let caps = f.run(&mut s, b"c CAPABILITY\r\n");
    for cap in [
        " SORT ",
        " SORT=DISPLAY ",
        " ESORT ",
        " THREAD=ORDEREDSUBJECT ",
        " THREAD=REFERENCES ",
        " THREAD=REFS ",
    ] {
        assert!(caps.contains(cap), "{cap} in {caps}");
    }
}

/// RFC 5256 §3: no EXPUNGE while answering SORT or THREAD (their numbers would
/// shift); UID SORT may report it.
#[test]
fn sort_and_thread_withhold_expunges() {
    let (f, mut a) = sort_fixture();
    let mut b = f.logged_in();
    f.run(&mut b, b"s SELECT INBOX\r\n");
    let out = f.run(
        &mut b,
        b"x STORE 2 +FLAGS.SILENT (\\Deleted)\r\ny EXPUNGE\r\n",
    );
    assert!(out.contains("* 2 EXPUNGE"), "{out}");
    let out = f.run(
        &mut a,
        b"t SORT (DATE) UTF-8 ALL\r\nh THREAD REFS UTF-8 ALL\r\n",
    );
    assert_eq!(
        out,
        "* SORT 1 4 3\r\nt OK SORT completed\r\n* THREAD (1 4)(3)\r\nh OK THREAD completed\r\n"
    );
    let out = f.run(&mut a, b"u UID SORT (DATE) UTF-8 ALL\r\n");
    assert_eq!(
        out,
        "* SORT 1 4 3\r\n* 2 EXPUNGE\r\nu OK SORT completed\r\n"
    );
}

#[test]
fn sort_and_thread_read_no_message_bytes() {
    let (f, mut s) = sort_fixture();
    s.feed(b"a SORT (SUBJECT REVERSE DATE FROM TO CC DISPLAYFROM DISPLAYTO SIZE ARRIVAL) UTF-8 UNSEEN\r\nb THREAD REFERENCES UTF-8 ALL\r\nc THREAD ORDEREDSUBJECT UTF-8 ALL\r\nd THREAD REFS UTF-8 ALL\r\n");
    let nb = Double::no_bytes(f.store.clone());
    let mut out = Vec::new();
    loop {
        match s.next() {
            Step::Write(b) => out.extend(b),
            Step::Event(Event::Execute) => s.execute(&nb, NOW),
            _ => break,
        }
    }
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "* SORT 3 4 1 2\r\na OK SORT completed\r\n* THREAD (2 1 4)(3)\r\nb OK THREAD completed\r\n* THREAD (2 (1)(4))(3)\r\nc OK THREAD completed\r\n* THREAD (2 1 4)(3)\r\nd OK THREAD completed\r\n"
    );
}

/// COMPRESS=DEFLATE (RFC 4978 §3): offered once logged in and until active; the tagged
/// OK is the last plain output, then [`Step::Compress`]; the session waits until the
/// driver switched, and hands back what the client sent after the command.
#[test]
fn compress_deflate_starts_after_the_tagged_ok() {
    let f = fixture();
    let mut s = f.session();
    let out = f.run(&mut s, b"c CAPABILITY\r\n");
    assert!(!out.contains("COMPRESS"), "{out}");
    let out = f.run(&mut s, b"z COMPRESS DEFLATE\r\n");
    assert!(out.starts_with("z BAD"), "{out}");
    let out = f.run(&mut s, b"l LOGIN a@home.arpa pw\r\n");
    assert!(out.contains(" COMPRESS=DEFLATE"), "{out}");
    let out = f.run(&mut s, b"a COMPRESS LZW\r\n");
    assert_eq!(out, "a BAD Unknown compression algorithm\r\n");
    assert!(!s.is_compressed());
    // Bytes after the command (a client that did not wait) are compressed data: they
    // go back to the driver unframed.
    s.feed(b"b compress deflate\r\n\x01\x02\x03");
    assert_eq!(s.next(), Step::Write(b"b OK DEFLATE active\r\n".to_vec()));
    assert_eq!(s.next(), Step::Compress);
    assert_eq!(s.next(), Step::Wait);
    assert_eq!(s.compression_started(), b"\x01\x02\x03");
    assert!(s.is_compressed());
    assert_eq!(s.next(), Step::NeedMoreInput);
    let out = f.run(&mut s, b"c CAPABILITY\r\nd COMPRESS DEFLATE\r\n");
    assert!(!out.contains("COMPRESS="), "{out}");
    assert!(
        out.ends_with("d NO [COMPRESSIONACTIVE] DEFLATE is active already\r\n"),
        "{out}"
    );
    // In the Selected state too.
    let mut s = f.logged_in();
    f.run(&mut s, b"s SELECT INBOX\r\n");
    s.feed(b"e COMPRESS DEFLATE\r\n");
    assert_eq!(s.next(), Step::Write(b"e OK DEFLATE active\r\n".to_vec()));
    assert_eq!(s.next(), Step::Compress);
    assert_eq!(s.compression_started(), b"");
    assert_eq!(s.next(), Step::NeedMoreInput);
}

/// SORT and THREAD answer the same through the shared key cache (cold, then warm, in another
/// session) as without it.
#[test]
fn sort_key_cache_changes_no_answer() {
    let (f, _) = sort_fixture();
    let mut plain = Session::new(
        SessionConfig {
            sort_cache: None,
            ..SessionConfig::default()
        },
        false,
    );
    let cache = std::sync::Arc::new(crate::imap::sort::KeyCache::default());
    let cached = || {
        Session::new(
            SessionConfig {
                sort_cache: Some(cache.clone()),
                ..SessionConfig::default()
            },
            false,
        )
    };
    let (mut cold, mut warm) = (cached(), cached());
    for s in [&mut plain, &mut cold, &mut warm] {
        f.run(s, b"l LOGIN a@home.arpa pw\r\ns SELECT INBOX\r\n");
    }
    let cmds = b"a SORT (SUBJECT REVERSE DATE) UTF-8 ALL\r\nb UID SORT (FROM TO CC DISPLAYFROM DISPLAYTO ARRIVAL SIZE) UTF-8 UNDELETED\r\nc SORT RETURN (MIN MAX ALL) (REVERSE DATE) US-ASCII 2:*\r\nd THREAD REFERENCES UTF-8 ALL\r\ne UID THREAD ORDEREDSUBJECT UTF-8 ALL\r\nf THREAD REFS UTF-8 2:*\r\ng THREAD REFERENCES UTF-8 NOT FROM bob\r\n";
    let want = f.run(&mut plain, cmds);
    assert!(want.contains("* SORT 3 4 1 2\r\n"), "{want}");
    assert!(want.contains("* THREAD (2 1 4)(3)\r\nd OK"), "{want}");
    assert_eq!(f.run(&mut cold, cmds), want);
    assert_eq!(f.run(&mut warm, cmds), want);
}

#[path = "context_tests.rs"]
mod context;
