//! Store unit tests on a temporary directory.
use super::*;

fn open() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

fn msg(body: &str) -> Arc<NewMessage> {
    Arc::new(NewMessage::new(
        format!("Subject: t\r\nFrom: a@b.c\r\n\r\n{body}\r\n").into_bytes(),
    ))
}

fn account(s: &Store, addr: &str) -> u64 {
    match s
        .write(Op::CreateAccount {
            address: addr.into(),
            password_hash: "x".into(),
        })
        .unwrap()
    {
        Output::Id(id) => id,
        o => panic!("{o:?}"),
    }
}

fn deliver(s: &Store, m: &Arc<NewMessage>, accts: &[u64]) -> Vec<(u64, u32, u32)> {
    let targets = accts
        .iter()
        .map(|a| Target {
            account: *a,
            mailbox: MailboxSel::Inbox,
        })
        .collect();
    match s
        .write(Op::Deliver {
            message: m.clone(),
            targets,
            flags: 0,
            keywords: vec![],
            internal_date: 1,
            delivered: true,
        })
        .unwrap()
    {
        Output::Delivered(v) => v,
        o => panic!("{o:?}"),
    }
}

#[test]
fn accounts_get_standard_mailboxes_and_case_insensitive_addresses() {
    let (_d, s) = open();
    let a = account(&s, "Alice@Home.arpa");
    let names: Vec<String> = s
        .read(|r| r.mailboxes(a))
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    for n in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let junk = s.read(|r| r.mailbox(a, "Junk")).unwrap().unwrap();
    assert_eq!(junk.special_use, Some(SpecialUse::Junk));
    assert_eq!(s.read(|r| r.resolve("ALICE@home.ARPA")).unwrap(), Some(a));
    assert_eq!(
        s.read(|r| r.resolve("alice+lists@home.arpa")).unwrap(),
        Some(a)
    );
    assert_eq!(s.read(|r| r.resolve("bob@home.arpa")).unwrap(), None);
    assert!(matches!(
        s.write(Op::CreateAccount {
            address: "alice@HOME.arpa".into(),
            password_hash: "y".into()
        }),
        Err(Error::Exists(_))
    ));
    // Alias and catch-all.
    s.write(Op::AddAlias {
        alias: "Postmaster@home.arpa".into(),
        target: "alice@home.arpa".into(),
    })
    .unwrap();
    assert_eq!(
        s.read(|r| r.resolve("postmaster@home.arpa")).unwrap(),
        Some(a)
    );
    s.write(Op::AddAlias {
        alias: "@home.arpa".into(),
        target: "alice@home.arpa".into(),
    })
    .unwrap();
    assert_eq!(
        s.read(|r| r.resolve("anything@home.arpa")).unwrap(),
        Some(a)
    );
    assert_eq!(s.read(|r| r.resolve("x@other.org")).unwrap(), None);
    let mut addrs = s.read(|r| r.addresses_of(a)).unwrap();
    addrs.sort();
    assert_eq!(
        addrs,
        vec!["@home.arpa", "alice@home.arpa", "postmaster@home.arpa"]
    );
    assert!(
        s.read(|r| r.account_by_login("postmaster@home.arpa"))
            .unwrap()
            .is_none(),
        "aliases do not log in"
    );
    assert!(matches!(
        s.write(Op::DeleteAlias {
            alias: "alice@home.arpa".into()
        }),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn multi_recipient_delivery_stores_one_body_and_refcounts() {
    let (_d, s) = open();
    let ids: Vec<u64> = (0..5)
        .map(|i| account(&s, &format!("u{i}@home.arpa")))
        .collect();
    let m = msg("hello");
    let out = deliver(&s, &m, &ids);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|(_, _, uid)| *uid == 1));
    assert_eq!(s.read(|r| r.blob_refs(&m.hash)).unwrap(), 5);
    let st = s.read(|r| r.stats(0)).unwrap();
    assert_eq!((st.messages, st.blobs, st.inbox_unseen), (5, 1, 5));
    assert_eq!(st.blob_bytes, m.raw.len() as u64, "counted once");
    // Copy adds a reference, not a body.
    let inbox = out[0].0;
    let trash = s.read(|r| r.mailbox(ids[0], "Trash")).unwrap().unwrap();
    let c = s
        .write(Op::Copy {
            from: inbox,
            uids: vec![1],
            to: trash.id,
            remove: false,
        })
        .unwrap();
    assert_eq!(
        c,
        Output::Copied {
            uidvalidity: trash.uidvalidity,
            pairs: vec![(1, 1)]
        }
    );
    assert_eq!(s.read(|r| r.blob_refs(&m.hash)).unwrap(), 6);
    // Deleting an account drops its references; the last one drops the body.
    for i in 0..5 {
        s.write(Op::DeleteAccount {
            address: format!("u{i}@home.arpa"),
        })
        .unwrap();
    }
    assert_eq!(s.read(|r| r.blob_refs(&m.hash)).unwrap(), 0);
    assert_eq!(s.read(|r| r.blob(&m.hash)).unwrap(), None);
    assert_eq!(s.read(|r| r.stats(0)).unwrap().blob_bytes, 0);
}

#[test]
fn flags_modseq_expunge_and_vanished() {
    let (_d, s) = open();
    let a = account(&s, "a@home.arpa");
    let mut sub = s.subscribe();
    for i in 0..3 {
        deliver(&s, &msg(&format!("m{i}")), &[a]);
    }
    let inbox = s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap();
    assert_eq!((inbox.exists, inbox.unseen, inbox.uidnext), (3, 3, 4));
    let before = inbox.highestmodseq;
    let out = s
        .write(Op::SetFlags {
            mailbox: inbox.id,
            uids: vec![1, 2],
            mode: FlagMode::Add,
            flags: flag::SEEN | flag::DELETED,
            keywords: vec!["$Forwarded".into()],
            unchanged_since: None,
        })
        .unwrap();
    let Output::Flags { rows, modified } = out else {
        panic!()
    };
    assert!(modified.is_empty());
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.3 == before + 1));
    // UNCHANGEDSINCE older than the row's modseq refuses the change (RFC 7162 §3.1.3).
    let Output::Flags { modified, .. } = s
        .write(Op::SetFlags {
            mailbox: inbox.id,
            uids: vec![1, 3],
            mode: FlagMode::Remove,
            flags: flag::SEEN,
            keywords: vec![],
            unchanged_since: Some(before),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(modified, vec![1]);
    let mb = s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap();
    assert_eq!(mb.unseen, 1);
    let ex = s
        .write(Op::Expunge {
            mailbox: inbox.id,
            uids: None,
        })
        .unwrap();
    assert_eq!(ex, Output::Expunged(vec![1, 2]));
    let mb = s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap();
    assert_eq!((mb.exists, mb.unseen, mb.uidnext), (1, 1, 4));
    assert_eq!(
        s.read(|r| r.expunged_since(inbox.id, before)).unwrap(),
        vec![1, 2]
    );
    assert_eq!(
        s.read(|r| r.expunged_since(inbox.id, mb.highestmodseq))
            .unwrap(),
        Vec::<u32>::new()
    );
    // A new delivery never reuses an expunged UID.
    let out = deliver(&s, &msg("again"), &[a]);
    assert_eq!(out[0].2, 4);
    // Changes were published after each commit.
    let mut seen = Vec::new();
    while let Ok(c) = sub.try_recv() {
        seen.push(c);
    }
    assert!(
        seen.iter()
            .any(|c| matches!(c, Change::Expunged { uids, .. } if uids == &vec![1, 2]))
    );
    assert!(seen.iter().any(|c| matches!(
        c,
        Change::MessageAdded {
            uid: 4,
            delivered: true,
            ..
        }
    )));
}

#[test]
fn mailbox_create_rename_delete() {
    let (_d, s) = open();
    let a = account(&s, "a@home.arpa");
    s.write(Op::CreateMailbox {
        account: a,
        name: "Work/2026/Q4".into(),
        special_use: None,
    })
    .unwrap();
    assert!(
        s.read(|r| r.mailbox(a, "Work/2026")).unwrap().is_some(),
        "parents are created"
    );
    assert!(matches!(
        s.write(Op::CreateMailbox {
            account: a,
            name: "inbox".into(),
            special_use: None
        }),
        Err(Error::Exists(_))
    ));
    assert!(matches!(
        s.write(Op::CreateMailbox {
            account: a,
            name: "a//b".into(),
            special_use: None
        }),
        Err(Error::Invalid(_))
    ));
    s.write(Op::RenameMailbox {
        account: a,
        from: "Work".into(),
        to: "Job".into(),
    })
    .unwrap();
    assert!(s.read(|r| r.mailbox(a, "Job/2026/Q4")).unwrap().is_some());
    assert!(s.read(|r| r.mailbox(a, "Work/2026/Q4")).unwrap().is_none());
    // Renaming INBOX moves its messages and leaves it empty.
    deliver(&s, &msg("x"), &[a]);
    s.write(Op::RenameMailbox {
        account: a,
        from: "INBOX".into(),
        to: "Old".into(),
    })
    .unwrap();
    assert_eq!(
        s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap().exists,
        0
    );
    assert_eq!(s.read(|r| r.mailbox(a, "Old")).unwrap().unwrap().exists, 1);
    assert!(matches!(
        s.write(Op::DeleteMailbox {
            account: a,
            name: "INBOX".into()
        }),
        Err(Error::Invalid(_))
    ));
    s.write(Op::DeleteMailbox {
        account: a,
        name: "Old".into(),
    })
    .unwrap();
    assert_eq!(s.read(|r| r.stats(0)).unwrap().blobs, 0);
}

#[test]
fn failing_op_in_a_batch_does_not_sink_the_others() {
    let (_d, s) = open();
    let a = account(&s, "a@home.arpa");
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                if i % 4 == 0 {
                    // Delivery to a mailbox that does not exist: fails alone.
                    s.write(Op::Deliver {
                        message: msg("bad"),
                        targets: vec![Target {
                            account: a,
                            mailbox: MailboxSel::Id(9999),
                        }],
                        flags: 0,
                        keywords: vec![],
                        internal_date: 0,
                        delivered: true,
                    })
                } else {
                    s.write(Op::Deliver {
                        message: msg(&format!("ok{i}")),
                        targets: vec![Target {
                            account: a,
                            mailbox: MailboxSel::Inbox,
                        }],
                        flags: 0,
                        keywords: vec![],
                        internal_date: 0,
                        delivered: true,
                    })
                }
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 8);
    assert_eq!(
        s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap().exists,
        24
    );
}

#[test]
fn lazy_flags_survive_close_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = Store::open(d.path()).unwrap();
        let a = account(&s, "a@home.arpa");
        deliver(&s, &msg("x"), &[a]);
        let mb = s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap();
        s.write(Op::SetFlags {
            mailbox: mb.id,
            uids: vec![1],
            mode: FlagMode::Add,
            flags: flag::SEEN,
            keywords: vec![],
            unchanged_since: None,
        })
        .unwrap();
        s.close();
    }
    let s = Store::open(d.path()).unwrap();
    let a = s
        .read(|r| r.account_by_login("a@home.arpa"))
        .unwrap()
        .unwrap()
        .id;
    let mb = s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap();
    assert_eq!(
        s.read(|r| r.message(mb.id, 1)).unwrap().unwrap().flags & flag::SEEN,
        flag::SEEN
    );
}

#[test]
fn corrupt_and_newer_databases_are_refused_untouched() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(DB_FILE);
    std::fs::write(
        &path,
        b"this is not a database at all, but it is long enough to look like one",
    )
    .unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = Store::open(d.path()).err().unwrap();
    assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    std::fs::remove_file(&path).unwrap();
    {
        let s = Store::open(d.path()).unwrap();
        s.write(Op::SetMeta("schema_version", SCHEMA_VERSION + 1))
            .unwrap();
        s.close();
    }
    let before = std::fs::read(&path).unwrap();
    let e = Store::open(d.path()).err().unwrap();
    assert_eq!(
        e,
        Error::NewerSchema {
            found: SCHEMA_VERSION + 1,
            supported: SCHEMA_VERSION
        }
    );
    assert!(e.to_string().contains("left untouched"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn unclean_start_is_counted() {
    let (_d, s) = open();
    assert_eq!(s.write(Op::MarkRunning).unwrap(), Output::Unclean(false));
    assert_eq!(s.write(Op::MarkRunning).unwrap(), Output::Unclean(true));
    s.write(Op::MarkStopped).unwrap();
    assert_eq!(s.write(Op::MarkRunning).unwrap(), Output::Unclean(false));
    let st = s.read(|r| r.stats(0)).unwrap();
    assert_eq!((st.unclean_starts, st.fault4_pending), (1, true));
}

#[test]
fn queue_holds_a_blob_reference() {
    let (_d, s) = open();
    let m = msg("out");
    let Output::Id(id) = s
        .write(Op::Enqueue {
            message: m.clone(),
            mail_from: "a@home.arpa".into(),
            rcpts: vec!["x@example.org".into()],
            now: 5,
        })
        .unwrap()
    else {
        panic!()
    };
    let q = s.read(|r| r.queue()).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(
        q[0].rcpts,
        vec![("x@example.org".to_string(), RcptState::Pending)]
    );
    assert_eq!(s.read(|r| r.stats(0)).unwrap().oldest_queued, Some(5));
    s.write(Op::QueueDelete(id)).unwrap();
    assert_eq!(s.read(|r| r.blob(&m.hash)).unwrap(), None);
}

/// A queue row exactly as schema version 1 encoded it.
#[derive(serde::Serialize)]
struct QueueItemV1 {
    id: u64,
    blob: [u8; 32],
    mail_from: String,
    rcpts: Vec<(String, RcptState)>,
    created: i64,
    next_attempt: i64,
    attempts: u32,
    last_error: Option<String>,
}

#[test]
fn version_1_database_is_migrated_to_2() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(DB_FILE);
    // Write a database the way version 1 did: its tables, a queue row, version 1.
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(schema::META).unwrap();
            meta.insert("schema_version", 1).unwrap();
            meta.insert("next_queue", 7).unwrap();
            tx.open_table(schema::ACCOUNTS).unwrap();
            tx.open_table(schema::ADDRESSES).unwrap();
            tx.open_table(schema::MAILBOXES).unwrap();
            tx.open_table(schema::MAILBOX_NAMES).unwrap();
            tx.open_table(schema::SUBSCRIPTIONS).unwrap();
            tx.open_table(schema::MESSAGES).unwrap();
            tx.open_table(schema::EXPUNGED).unwrap();
            tx.open_table(schema::BLOBS).unwrap();
            tx.open_table(schema::BLOB_REFS).unwrap();
            tx.open_table(schema::PARSED).unwrap();
            let row = QueueItemV1 {
                id: 7,
                blob: [9; 32],
                mail_from: "a@home.arpa".into(),
                rcpts: vec![
                    ("x@example.org".into(), RcptState::Delivered),
                    ("y@example.org".into(), RcptState::Pending),
                ],
                created: 100,
                next_attempt: 400,
                attempts: 1,
                last_error: Some("451 try later".into()),
            };
            let mut q = tx.open_table(schema::QUEUE).unwrap();
            q.insert(7, postcard::to_allocvec(&row).unwrap().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let s = Store::open(d.path()).unwrap();
    assert_eq!(s.read(|r| r.meta("schema_version")).unwrap(), 2);
    let q = s.read(|r| r.queue()).unwrap();
    assert_eq!(
        q,
        vec![QueueItem {
            id: 7,
            blob: [9; 32],
            mail_from: "a@home.arpa".into(),
            rcpts: vec![
                ("x@example.org".into(), RcptState::Delivered),
                ("y@example.org".into(), RcptState::Pending),
            ],
            created: 100,
            next_attempt: 400,
            attempts: 1,
            last_error: Some("451 try later".into()),
            delay_notified: false,
        }]
    );
    // The new table exists and works.
    assert!(s.read(|r| r.dkim_keys("home.arpa")).unwrap().is_empty());
    let key = DkimKey {
        selector: "s1".into(),
        algorithm: DkimAlgorithm::Ed25519,
        private_der: vec![1, 2, 3],
        public: vec![4],
        created: 5,
    };
    let put = |keys: Vec<DkimKey>| {
        s.write(Op::PutDkimKeys {
            domain: "Home.Arpa".into(),
            keys,
        })
        .unwrap()
    };
    assert_eq!(put(vec![key.clone()]), Output::Id(1));
    // Keys are generated once: a second put keeps the first.
    let mut other = key.clone();
    other.selector = "s2".into();
    assert_eq!(put(vec![other]), Output::Id(0));
    assert_eq!(s.read(|r| r.dkim_keys("home.arpa")).unwrap(), vec![key]);
    s.close();
    // Reopening a migrated database changes nothing.
    let s = Store::open(d.path()).unwrap();
    assert_eq!(s.read(|r| r.queue()).unwrap(), q);
}

#[test]
fn an_interrupted_first_creation_is_cleaned_up() {
    let d = tempfile::tempdir().unwrap();
    // What a power cut during the first start leaves: a partial temporary file.
    std::fs::write(d.path().join(format!("{DB_FILE}.new")), vec![0u8; 4096]).unwrap();
    let s = Store::open(d.path()).unwrap();
    assert!(!d.path().join(format!("{DB_FILE}.new")).exists());
    assert_eq!(
        s.read(|r| r.meta("schema_version")).unwrap(),
        SCHEMA_VERSION
    );
}

/// `Op::Append` (IMAP MULTIAPPEND, RFC 3502): consecutive UIDs in one answer, and when
/// one message cannot be stored, none is.
#[test]
fn append_is_all_or_nothing() {
    let (_d, s) = open();
    let a = account(&s, "a@home.arpa");
    let inbox = s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap();
    let items = |n: usize| -> Vec<Appended> {
        (0..n)
            .map(|i| Appended {
                message: msg(&format!("m{i}")),
                flags: flag::SEEN,
                keywords: vec!["$x".into()],
                internal_date: 5,
            })
            .collect()
    };
    let append = |n| {
        s.write(Op::Append {
            account: a,
            mailbox: inbox.id,
            messages: items(n),
        })
    };
    match append(3).unwrap() {
        Output::Delivered(v) => {
            assert_eq!(v.iter().map(|x| x.2).collect::<Vec<_>>(), [1, 2, 3]);
        }
        o => panic!("{o:?}"),
    }
    // Room for one more UID only: the second message fails, so the first is not kept.
    {
        let db = s.inner.db.read().unwrap().clone().unwrap();
        let tx = db.begin_write().unwrap();
        let mut mb = mailboxes::get_w(&tx, inbox.id).unwrap();
        mb.uidnext = u32::MAX - 1;
        mailboxes::put(&tx, &mb).unwrap();
        tx.commit().unwrap();
    }
    assert!(append(2).is_err());
    let after = s.read(|r| r.mailbox(a, "INBOX")).unwrap().unwrap();
    assert_eq!((after.exists, after.uidnext), (3, u32::MAX - 1));
    assert_eq!(s.read(|r| r.messages(inbox.id)).unwrap().len(), 3);
    assert!(append(1).is_ok(), "one still fits");
}

/// RFC 9208 §4: a delivery to several accounts fails whole when one of them has no room
/// (nothing is stored for anyone, the blob is not kept); a shared body counts fully for
/// each account; the daemon's default applies to accounts without their own limits.
#[test]
fn a_delivery_over_one_quota_stores_nothing_and_shared_bodies_count_for_each() {
    let (_d, s) = open();
    let a = account(&s, "a@home.arpa");
    let b = account(&s, "b@home.arpa");
    let m = msg("shared");
    let size = m.raw.len() as u64;
    s.set_default_quota(Quota {
        storage: None,
        messages: Some(1),
    });
    deliver(&s, &m, &[a, b]);
    for acct in [a, b] {
        let u = s.read(|r| r.usage(acct)).unwrap();
        assert_eq!(
            (u.messages, u.bytes),
            (1, size),
            "each account holds the body"
        );
    }
    // b may hold more; a may not (the default): the second delivery fails for both.
    s.write(Op::SetQuota {
        address: "b@home.arpa".into(),
        storage: None,
        messages: Some(Limit::Unlimited),
    })
    .unwrap();
    let second = msg("second");
    let err = s
        .write(Op::Deliver {
            message: second.clone(),
            targets: [a, b]
                .iter()
                .map(|&account| Target {
                    account,
                    mailbox: MailboxSel::Inbox,
                })
                .collect(),
            flags: 0,
            keywords: vec![],
            internal_date: 1,
            delivered: true,
        })
        .unwrap_err();
    assert_eq!(err, Error::OverQuota);
    assert_eq!(
        s.read(|r| r.usage(b)).unwrap().messages,
        1,
        "nothing half-arrived"
    );
    assert!(s.read(|r| r.blob(&second.hash)).unwrap().is_none());
    // Alone, b takes it.
    deliver(&s, &second, &[b]);
    assert_eq!(s.read(|r| r.usage(b)).unwrap().messages, 2);
    // Deleting the account forgets its limits.
    s.write(Op::DeleteAccount {
        address: "b@home.arpa".into(),
    })
    .unwrap();
    let b2 = account(&s, "b@home.arpa");
    assert_eq!(
        s.read(|r| r.quota_setting(b2)).unwrap(),
        QuotaSetting::default()
    );
}
