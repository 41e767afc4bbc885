//! Message bodies, stored once under their SHA-256 and reference-counted: a COPY or a
//! delivery to five local recipients stores the bytes once. The parsed envelope and
//! structure live beside the bytes, keyed the same way.

use redb::{ReadableTable, WriteTransaction};

use super::schema::{BLOB_REFS, BLOBS, PARSED};
use super::{NewMessage, Reader, Result, migrate};

/// Meta counter: bytes of all distinct bodies (kept on every add and remove, so
/// `status` never walks the blob table).
pub(super) const BLOB_BYTES: &str = "blob_bytes";
use crate::mail::message::ParsedMessage;

/// SHA-256 of a message.
pub(crate) fn hash(raw: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, raw);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Adds `n` references to the message's blob, storing it if new.
pub(super) fn add_ref(tx: &WriteTransaction, msg: &NewMessage, n: u64) -> Result<()> {
    let mut refs = tx.open_table(BLOB_REFS)?;
    let cur = refs.get(msg.hash)?.map(|v| v.value()).unwrap_or(0);
    if cur == 0 {
        tx.open_table(BLOBS)?.insert(msg.hash, msg.raw.as_slice())?;
        tx.open_table(PARSED)?
            .insert(msg.hash, msg.parsed.as_slice())?;
        let total = migrate::get_meta_w(tx, BLOB_BYTES)?;
        migrate::set_meta(tx, BLOB_BYTES, total + msg.raw.len() as u64)?;
    }
    refs.insert(msg.hash, cur + n)?;
    Ok(())
}

/// Adds a reference to a blob known to exist (COPY).
pub(super) fn incref(tx: &WriteTransaction, hash: [u8; 32]) -> Result<()> {
    let mut refs = tx.open_table(BLOB_REFS)?;
    let cur = refs.get(hash)?.map(|v| v.value()).unwrap_or(0);
    refs.insert(hash, cur + 1)?;
    Ok(())
}

/// Drops a reference; the last one removes the bytes.
pub(super) fn decref(tx: &WriteTransaction, hash: [u8; 32]) -> Result<()> {
    let mut refs = tx.open_table(BLOB_REFS)?;
    let cur = refs.get(hash)?.map(|v| v.value()).unwrap_or(0);
    if cur <= 1 {
        refs.remove(hash)?;
        let len = tx
            .open_table(BLOBS)?
            .remove(hash)?
            .map(|v| v.value().len() as u64);
        tx.open_table(PARSED)?.remove(hash)?;
        if let Some(len) = len {
            let total = migrate::get_meta_w(tx, BLOB_BYTES)?;
            migrate::set_meta(tx, BLOB_BYTES, total.saturating_sub(len))?;
        }
    } else {
        refs.insert(hash, cur - 1)?;
    }
    Ok(())
}

pub(super) fn get(r: &Reader, hash: &[u8; 32]) -> Result<Option<Vec<u8>>> {
    let t = r.tx().open_table(BLOBS)?;
    Ok(t.get(*hash)?.map(|v| v.value().to_vec()))
}

pub(super) fn parsed(r: &Reader, hash: &[u8; 32]) -> Result<Option<ParsedMessage>> {
    let t = r.tx().open_table(PARSED)?;
    t.get(*hash)?
        .map(|v| {
            ParsedMessage::decode(v.value())
                .map_err(|e| super::Error::Corrupt(format!("decode: {e}")))
        })
        .transpose()
}

impl Reader {
    /// Reference count of a blob (0 when absent).
    pub fn blob_refs(&self, hash: &[u8; 32]) -> Result<u64> {
        let t = self.tx().open_table(BLOB_REFS)?;
        Ok(t.get(*hash)?.map(|v| v.value()).unwrap_or(0))
    }
}
