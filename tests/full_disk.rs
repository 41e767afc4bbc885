//! A full disk (issue 2, "Bad input"): on a real, small tmpfs, deliveries run until
//! the file system is full. The failing delivery is refused cleanly (the error SMTP
//! will turn into 452), every acknowledged delivery is present, nothing
//! unacknowledged is half-there, and the store works again once space is freed.
//! Also the reserve: below 32 MiB free, new mail is refused before any write.
//!
//! Needs root for `mount -t tmpfs` (CI and the development machines run as root).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use letterbox::store::{self, MailboxSel, NewMessage, Op, Store, Target, load};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed: this test needs root");
        Tmpfs(at.to_path_buf())
    }
    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn inbox_ids(s: &Store) -> HashSet<i64> {
    s.read(|r| {
        let acct = r
            .account_by_login(load::LOAD_ACCOUNT)?
            .expect("load account");
        let inbox = r.mailbox(acct.id, "INBOX")?.expect("inbox");
        let rows = r.messages(inbox.id)?;
        for (uid, row) in &rows {
            assert_eq!(r.blob_refs(&row.blob)?, 1, "uid {uid}: refcount");
            assert!(r.blob(&row.blob)?.is_some(), "uid {uid}: body missing");
        }
        assert_eq!(
            inbox.exists as usize,
            rows.len(),
            "mailbox counter matches rows"
        );
        Ok(rows.into_iter().map(|(_, row)| row.internal_date).collect())
    })
    .unwrap()
}

#[test]
fn full_disk_fails_cleanly_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "16m");
    let data = fs.0.join("data");

    // Fill it: 4 writers of 64 KiB messages, no reserve, until ENOSPC.
    let out = Command::new(env!("CARGO_BIN_EXE_letterbox"))
        .args([
            "debug-store-load",
            "--writers",
            "4",
            "--messages",
            "100000",
            "--size",
            "65536",
            "--min-free",
            "0",
            "--print-acks",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the load cannot succeed on a 16 MiB disk"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not enough free space"), "{err}");
    let acked: Vec<(u32, u32)> = BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some("ack"), Some(w), Some(s)) => Some((w.parse().ok()?, s.parse().ok()?)),
                _ => None,
            }
        })
        .collect();
    assert!(acked.len() > 20, "some deliveries fit ({})", acked.len());

    // Consistent: exactly the acknowledged deliveries, each with its body.
    let s = Store::open_with(&data, 0).expect("the store opens after ENOSPC");
    let ids = inbox_ids(&s);
    assert_eq!(ids.len(), acked.len(), "nothing unacknowledged was kept");
    for (w, q) in &acked {
        assert!(ids.contains(&load::message_id(0, *w, *q)));
    }
    s.close();

    // With the default 32 MiB reserve, new mail is refused before any write.
    fs.resize("40m");
    let s = Store::open(&data).unwrap();
    let acct = s
        .read(|r| r.account_by_login(load::LOAD_ACCOUNT))
        .unwrap()
        .unwrap()
        .id;
    let deliver = |s: &Store, body: &str| {
        s.write(Op::Deliver {
            message: Arc::new(NewMessage::new(
                format!("Subject: x\r\n\r\n{body}\r\n").into_bytes(),
            )),
            targets: vec![Target {
                account: acct,
                mailbox: MailboxSel::Inbox,
            }],
            flags: 0,
            keywords: vec![],
            internal_date: -1,
            delivered: true,
        })
    };
    assert_eq!(deliver(&s, "refused").unwrap_err(), store::Error::Full);
    assert!(store::Error::Full.is_temporary());
    assert_eq!(inbox_ids(&s).len(), acked.len());
    s.close();

    // Space freed: deliveries work again.
    fs.resize("128m");
    let s = Store::open(&data).unwrap();
    deliver(&s, "accepted").expect("delivery after space was freed");
    assert_eq!(inbox_ids(&s).len(), acked.len() + 1);
    s.close();
}
