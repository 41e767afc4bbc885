//! Schema version check and upgrades, and the meta counters. A database of a newer
//! schema is refused before anything is written; an older one is upgraded step by
//! step inside one transaction.

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use super::records::{QueueItem, RcptState, dec, enc};
use super::schema::{self, META, SCHEMA_VERSION};
use super::{Error, Result};

/// Reads a meta counter inside a write transaction.
pub(super) fn get_meta_w(tx: &WriteTransaction, key: &str) -> Result<u64> {
    Ok(tx
        .open_table(META)?
        .get(key)?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// Sets a meta counter.
pub(super) fn set_meta(tx: &WriteTransaction, key: &str, v: u64) -> Result<()> {
    tx.open_table(META)?.insert(key, v)?;
    Ok(())
}

/// Records a daemon start; returns true when the previous run did not stop cleanly
/// (the `running` mark was still set), and then counts it and raises fault 4.
pub(super) fn mark_running(tx: &WriteTransaction) -> Result<bool> {
    let unclean = get_meta_w(tx, "running")? != 0;
    if unclean {
        set_meta(tx, "unclean_starts", get_meta_w(tx, "unclean_starts")? + 1)?;
        set_meta(tx, "fault4_pending", 1)?;
    }
    set_meta(tx, "running", 1)?;
    Ok(unclean)
}

/// A queue row as schema version 1 wrote it (before `delay_notified`).
#[derive(serde::Deserialize)]
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

/// Upgrades from `from` to `from + 1`.
fn upgrade(tx: &WriteTransaction, from: u64) -> Result<()> {
    match from {
        // 1 → 2: the DKIM key table, and queue rows gain `delay_notified`.
        1 => {
            tx.open_table(schema::DKIM_KEYS)?;
            let mut q = tx.open_table(schema::QUEUE)?;
            let mut rows = Vec::new();
            for entry in q.iter()? {
                let (k, v) = entry?;
                let old: QueueItemV1 = dec(v.value())?;
                rows.push((k.value(), old));
            }
            for (k, old) in rows {
                let new = QueueItem {
                    id: old.id,
                    blob: old.blob,
                    mail_from: old.mail_from,
                    rcpts: old.rcpts,
                    created: old.created,
                    next_attempt: old.next_attempt,
                    attempts: old.attempts,
                    last_error: old.last_error,
                    delay_notified: false,
                };
                q.insert(k, enc(&new)?.as_slice())?;
            }
            Ok(())
        }
        _ => Err(Error::Corrupt(format!(
            "no migration from schema version {from}"
        ))),
    }
}

/// The schema version recorded in the file, if any.
fn found_version(db: &impl ReadableDatabase) -> Result<Option<u64>> {
    let r = db.begin_read()?;
    match r.open_table(META) {
        Ok(t) => Ok(t.get("schema_version")?.map(|v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Refuses a database written by a newer Letterbox.
pub(super) fn refuse_newer(db: &impl ReadableDatabase) -> Result<()> {
    match found_version(db)? {
        Some(v) if v > SCHEMA_VERSION => Err(Error::NewerSchema {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

pub(super) fn check_and_migrate(db: &Database) -> Result<()> {
    // Look before writing: a newer schema must be left untouched.
    let found = found_version(db)?;
    if found.is_some_and(|v| v <= SCHEMA_VERSION) {
        count_blob_bytes_once(db)?;
    }
    if let Some(v) = found {
        if v > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        if v == SCHEMA_VERSION {
            return Ok(());
        }
    }
    let tx = db.begin_write()?;
    match found {
        None => {
            // New database: create every table so readers never meet a missing one.
            tx.open_table(schema::META)?;
            tx.open_table(schema::ACCOUNTS)?;
            tx.open_table(schema::ADDRESSES)?;
            tx.open_table(schema::MAILBOXES)?;
            tx.open_table(schema::MAILBOX_NAMES)?;
            tx.open_table(schema::SUBSCRIPTIONS)?;
            tx.open_table(schema::MESSAGES)?;
            tx.open_table(schema::EXPUNGED)?;
            tx.open_table(schema::BLOBS)?;
            tx.open_table(schema::BLOB_REFS)?;
            tx.open_table(schema::PARSED)?;
            tx.open_table(schema::QUEUE)?;
            tx.open_table(schema::DKIM_KEYS)?;
            tx.open_table(schema::QUOTAS)?;
        }
        Some(mut v) => {
            while v < SCHEMA_VERSION {
                upgrade(&tx, v)?;
                v += 1;
            }
        }
    }
    set_meta(&tx, "schema_version", SCHEMA_VERSION)?;
    set_meta(&tx, "blob_bytes_counted", 1)?;
    tx.commit()?;
    Ok(())
}

/// Databases written before the `blob_bytes` counter existed get it computed once
/// (a walk of the blob table); afterwards it is kept by every add and remove.
fn count_blob_bytes_once(db: &Database) -> Result<()> {
    {
        let r = db.begin_read()?;
        let t = r.open_table(META)?;
        if t.get("blob_bytes_counted")?.is_some() {
            return Ok(());
        }
    }
    let tx = db.begin_write()?;
    let total = {
        let t = tx.open_table(schema::BLOBS)?;
        let mut n = 0u64;
        for item in t.iter()? {
            n += item?.1.value().len() as u64;
        }
        n
    };
    set_meta(&tx, super::blobs::BLOB_BYTES, total)?;
    set_meta(&tx, "blob_bytes_counted", 1)?;
    tx.commit()?;
    Ok(())
}
