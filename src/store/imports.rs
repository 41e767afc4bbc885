//! Bulk import (`letterbox import`): a batch of messages and the progress of its source
//! are written in one transaction, so the recorded progress is never ahead of or behind
//! the stored mail, and a re-run after a kill resumes exactly where the last commit ended.

use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};

use super::quota::Quota;
use super::schema::IMPORTS;
use super::{Change, Error, MailboxSel, NewMessage, Reader, Result, Target, mailboxes, messages};

/// One message of an [`super::Op::Import`] batch.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The message.
    pub message: Arc<NewMessage>,
    /// The mailboxes it appears in (created when missing); one blob for all.
    pub mailboxes: Vec<String>,
    /// System flag bits.
    pub flags: u8,
    /// Keywords.
    pub keywords: Vec<String>,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
}

/// Applies one batch: checks that the source's recorded progress is `from` (so a
/// batch is never applied twice, nor two imports of one source interleaved), stores the
/// messages, and records `to`. Returns the number of message rows added.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply(
    tx: &WriteTransaction,
    account: u64,
    source: &str,
    from: u64,
    to: u64,
    list: &[Imported],
    create: &[String],
    quota: Quota,
    changes: &mut Vec<Change>,
) -> Result<u64> {
    let done = {
        let t = tx.open_table(IMPORTS)?;
        t.get((account, source))?.map_or(0, |v| v.value())
    };
    if done != from {
        return Err(Error::Invalid(format!(
            "the import of {source} is at {done}, not {from} (is another import of it running?)"
        )));
    }
    let mut rows = 0u64;
    for name in create {
        mailbox_id(tx, account, name, changes)?;
    }
    for m in list {
        let mut targets = Vec::with_capacity(m.mailboxes.len());
        for name in &m.mailboxes {
            let id = mailbox_id(tx, account, name, changes)?;
            targets.push(Target {
                account,
                mailbox: MailboxSel::Id(id),
            });
        }
        let out = messages::deliver(
            tx,
            &m.message,
            &targets,
            m.flags,
            &m.keywords,
            m.internal_date,
            false,
            quota,
            changes,
        )?;
        rows += out.len() as u64;
    }
    tx.open_table(IMPORTS)?.insert((account, source), to)?;
    Ok(rows)
}

/// Forgets the import progress of a deleted account.
pub(super) fn forget(tx: &WriteTransaction, account: u64) -> Result<()> {
    let mut t = tx.open_table(IMPORTS)?;
    let keys: Vec<String> = t
        .range((account, "")..(account + 1, ""))?
        .map(|r| r.map(|(k, _)| k.value().1.to_string()))
        .collect::<std::result::Result<_, _>>()?;
    for k in keys {
        t.remove((account, k.as_str()))?;
    }
    Ok(())
}

/// The id of mailbox `name`, created (with its parents) when missing.
fn mailbox_id(
    tx: &WriteTransaction,
    account: u64,
    name: &str,
    changes: &mut Vec<Change>,
) -> Result<u64> {
    let name = mailboxes::normalize_name(name)?;
    match mailboxes::id_by_name_w(tx, account, &name)? {
        Some(id) => Ok(id),
        None => mailboxes::create(tx, account, &name, None, changes),
    }
}

impl Reader {
    /// How far the import of `source` into `account` got (0 when never started).
    pub fn import_progress(&self, account: u64, source: &str) -> Result<u64> {
        let t = match self.tx().open_table(IMPORTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get((account, source))?.map_or(0, |v| v.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Op, Output, Store};
    use super::*;

    fn batch(from: u64, to: u64, bodies: &[(&str, &[&str])]) -> Op {
        Op::Import {
            account: 1,
            source: "mbox:/x".into(),
            from,
            to,
            messages: bodies
                .iter()
                .map(|(b, boxes)| Imported {
                    message: Arc::new(NewMessage::new(
                        format!("Subject: {b}\r\n\r\n{b}\r\n").into_bytes(),
                    )),
                    mailboxes: boxes.iter().map(|s| s.to_string()).collect(),
                    flags: 0,
                    keywords: vec![],
                    internal_date: 0,
                })
                .collect(),
            create: vec!["Empty/Child".into()],
        }
    }

    #[test]
    fn progress_commits_with_the_messages_and_is_never_replayed() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let acct = match s.write(Op::CreateAccount {
            address: "a@home.arpa".into(),
            password_hash: "x".into(),
        }) {
            Ok(Output::Id(id)) => id,
            o => panic!("{o:?}"),
        };
        assert_eq!(acct, 1);
        let op = batch(
            0,
            100,
            &[("one", &["INBOX", "Work/Deep"]), ("two", &["INBOX"])],
        );
        assert_eq!(s.write(op.clone()), Ok(Output::Id(3)));
        // The same batch again (a client that did not see the answer) is refused whole.
        assert!(matches!(s.write(op), Err(Error::Invalid(_))));
        let r = s.read(|r| {
            Ok((
                r.import_progress(1, "mbox:/x")?,
                r.mailbox(1, "INBOX")?.map(|m| m.exists),
                r.mailbox(1, "Work/Deep")?.map(|m| m.exists),
                r.mailbox(1, "Empty/Child")?.is_some(),
                r.stats(0)?.blobs,
            ))
        });
        assert_eq!(r, Ok((100, Some(2), Some(1), true, 2)));
        // A batch over the quota leaves the progress where it was.
        s.write(Op::SetQuota {
            address: "a@home.arpa".into(),
            storage: None,
            messages: Some(super::super::Limit::Max(3)),
        })
        .unwrap();
        assert_eq!(
            s.write(batch(100, 200, &[("three", &["INBOX"])])),
            Err(Error::OverQuota)
        );
        assert_eq!(s.read(|r| r.import_progress(1, "mbox:/x")), Ok(100));
        s.write(Op::DeleteAccount {
            address: "a@home.arpa".into(),
        })
        .unwrap();
        assert_eq!(s.read(|r| r.import_progress(1, "mbox:/x")), Ok(0));
        s.close();
    }
}
