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
