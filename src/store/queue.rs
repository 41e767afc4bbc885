//! The outbound queue table: one row per message with per-recipient state, holding a
//! reference on the message blob until the row is removed; and the DKIM keys the queue
//! signs with.

use redb::{ReadableTable, WriteTransaction};

use super::records::{DkimKey, QueueItem, RcptState, dec, enc};
use super::schema::{DKIM_KEYS, QUEUE};
use super::{Change, Error, NewMessage, Reader, Result, blobs, migrate};

pub(super) fn enqueue(
    tx: &WriteTransaction,
    msg: &NewMessage,
    mail_from: &str,
    rcpts: &[String],
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<u64> {
    if rcpts.is_empty() {
        return Err(Error::Invalid("no recipients".into()));
    }
    let id = migrate::get_meta_w(tx, "next_queue")? + 1;
    migrate::set_meta(tx, "next_queue", id)?;
    blobs::add_ref(tx, msg, 1)?;
    let item = QueueItem {
        id,
        blob: msg.hash,
        mail_from: mail_from.to_string(),
        rcpts: rcpts
            .iter()
            .map(|r| (r.clone(), RcptState::Pending))
            .collect(),
        created: now,
        next_attempt: now,
        attempts: 0,
        last_error: None,
        delay_notified: false,
    };
    tx.open_table(QUEUE)?.insert(id, enc(&item)?.as_slice())?;
    changes.push(Change::QueueChanged);
    Ok(id)
}

pub(super) fn update(
    tx: &WriteTransaction,
    item: &QueueItem,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let mut t = tx.open_table(QUEUE)?;
    if t.get(item.id)?.is_none() {
        return Err(Error::NotFound(format!("queue item {}", item.id)));
    }
    t.insert(item.id, enc(item)?.as_slice())?;
    changes.push(Change::QueueChanged);
    Ok(())
}

pub(super) fn delete(tx: &WriteTransaction, id: u64, changes: &mut Vec<Change>) -> Result<()> {
    let item: QueueItem = {
        let t = tx.open_table(QUEUE)?;
        let v = t
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("queue item {id}")))?;
        dec(v.value())?
    };
    tx.open_table(QUEUE)?.remove(id)?;
    blobs::decref(tx, item.blob)?;
    changes.push(Change::QueueChanged);
    Ok(())
}

/// Stores the keys of `domain` unless it has some already (keys are generated once;
/// a second generator racing the first loses and keeps the stored keys).
pub(super) fn put_dkim_keys(tx: &WriteTransaction, domain: &str, keys: &[DkimKey]) -> Result<bool> {
    let domain = domain.to_ascii_lowercase();
    let mut t = tx.open_table(DKIM_KEYS)?;
    if t.get(domain.as_str())?.is_some() {
        return Ok(false);
    }
    t.insert(domain.as_str(), enc(&keys.to_vec())?.as_slice())?;
    Ok(true)
}

impl Reader {
    /// Every queue item, by id.
    pub fn queue(&self) -> Result<Vec<QueueItem>> {
        let t = self.tx().open_table(QUEUE)?;
        t.iter()?.map(|i| dec(i?.1.value())).collect()
    }

    /// One queue item.
    pub fn queue_item(&self, id: u64) -> Result<Option<QueueItem>> {
        let t = self.tx().open_table(QUEUE)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    /// The DKIM keys of `domain` (empty when none were generated).
    pub fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>> {
        let t = self.tx().open_table(DKIM_KEYS)?;
        let domain = domain.to_ascii_lowercase();
        match t.get(domain.as_str())? {
            Some(v) => dec(v.value()),
            None => Ok(Vec::new()),
        }
    }
}
