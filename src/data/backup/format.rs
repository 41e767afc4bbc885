//! The backup stream format (version 1), sans I/O: an [`Encoder`] that writes records
//! to any `Write`, and a push [`Decoder`] fed bytes in arbitrary chunks that returns
//! checked [`Event`]s. Compression (zstd) and encryption (age) wrap this stream in
//! `super`; here is only the plaintext.
//!
//! ```text
//! header   "LBBACKUP" u16:version  u32:len  JSON {letterbox, created, schema}
//! table    'T' u16:len name
//! row      'R' u32:len key  u32:len value
//! end      'E' u64:rows                      (rows of the table just written)
//! base     'B' [32]:SHA-256                  (incremental only, inside `blobs`: a body
//!                                            the base backup holds and this one omits)
//! file     'F' u16:len name  u32:mode  u32:len bytes
//! trailer  'Z' u64:records  [32]:SHA-256 of every byte before this hash
//! ```
//! Integers are little-endian. `records` counts tables, rows, base blobs and files. Rows
//! of the `blobs` table have the SHA-256 of their value as key, checked on decode.
//! Nothing may follow the trailer. An incremental backup's header names its base
//! ([`BaseRef`]: file name and the SHA-256 of the base file's bytes); a full backup's
//! header has no `base` and may hold no `B` record. A letterbox that predates `B` records
//! refuses an incremental (unknown record type) rather than restore it without bodies.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// Magic bytes at the start of the plaintext stream.
pub const MAGIC: &[u8; 8] = b"LBBACKUP";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Largest key or value accepted (bounded memory on a damaged file).
pub const MAX_VALUE: usize = 256 << 20;
/// Largest file accepted (config, TLS keys are small).
pub const MAX_FILE: usize = 16 << 20;
/// Largest header accepted.
const MAX_HEADER: usize = 64 << 10;

/// What the header says about the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Version of the letterbox that wrote it.
    pub letterbox: String,
    /// Unix seconds when the snapshot was taken.
    pub created: i64,
    /// The store's schema version.
    pub schema: u64,
    /// For an incremental backup: the full backup it builds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

/// The full backup an incremental one builds on: looked up by `name` in the
/// incremental's own directory, and accepted only if its bytes hash to `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRef {
    /// The base's file name (no directory).
    pub name: String,
    /// SHA-256 of the base file as stored (encrypted and compressed), lowercase hex.
    pub sha256: String,
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 context (ring).
struct Hasher(ring::digest::Context);

impl Hasher {
    fn new() -> Hasher {
        Hasher(ring::digest::Context::new(&ring::digest::SHA256))
    }
    fn update(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// SHA-256 of `b`.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    let mut h = Hasher::new();
    h.update(b);
    h.finish()
}

/// Writes the stream; every byte goes through the running hash.
pub struct Encoder<W: Write> {
    out: W,
    hash: Option<Hasher>,
    records: u64,
    rows_in_table: u64,
}

fn len_u16(n: usize, what: &str) -> std::io::Result<u16> {
    u16::try_from(n).map_err(|_| std::io::Error::other(format!("{what} too long")))
}

fn len_u32(n: usize, max: usize, what: &str) -> std::io::Result<u32> {
    if n > max {
        return Err(std::io::Error::other(format!(
            "{what} of {n} bytes is over the limit of {max}"
        )));
    }
    u32::try_from(n).map_err(|_| std::io::Error::other(format!("{what} too long")))
}

impl<W: Write> Encoder<W> {
    /// Writes the header.
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Encoder<W>> {
        let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        let mut hash = Hasher::new();
        let mut head = Vec::with_capacity(14 + json.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&len_u32(json.len(), MAX_HEADER, "header")?.to_le_bytes());
        head.extend_from_slice(&json);
        hash.update(&head);
        out.write_all(&head)?;
        Ok(Encoder {
            out,
            hash: Some(hash),
            records: 0,
            rows_in_table: 0,
        })
    }

    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        if let Some(h) = self.hash.as_mut() {
            h.update(b);
        }
        self.out.write_all(b)
    }

    /// Starts a table.
    pub fn table(&mut self, name: &str) -> std::io::Result<()> {
        let n = len_u16(name.len(), "table name")?;
        self.put(b"T")?;
        self.put(&n.to_le_bytes())?;
        self.put(name.as_bytes())?;
        self.records += 1;
        self.rows_in_table = 0;
        Ok(())
    }

    /// One row of the current table.
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        let k = len_u32(key.len(), MAX_VALUE, "key")?;
        let v = len_u32(value.len(), MAX_VALUE, "value")?;
        self.put(b"R")?;
        self.put(&k.to_le_bytes())?;
        self.put(key)?;
        self.put(&v.to_le_bytes())?;
        self.put(value)?;
        self.records += 1;
        self.rows_in_table += 1;
        Ok(())
    }

    /// Ends the current table.
    pub fn end_table(&mut self) -> std::io::Result<()> {
        let rows = self.rows_in_table;
        self.put(b"E")?;
        self.put(&rows.to_le_bytes())
    }

    /// A body of the current (`blobs`) table that the base backup holds: only its hash.
    pub fn base_blob(&mut self, key: &[u8; 32]) -> std::io::Result<()> {
        self.put(b"B")?;
        self.put(key)?;
        self.records += 1;
        Ok(())
    }

    /// A file (`name` says where it goes back, see `super::FilePlace`).
    pub fn file(&mut self, name: &str, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
        let n = len_u16(name.len(), "file name")?;
        let len = len_u32(bytes.len(), MAX_FILE, name)?;
        self.put(b"F")?;
        self.put(&n.to_le_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&mode.to_le_bytes())?;
        self.put(&len.to_le_bytes())?;
        self.put(bytes)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer; returns the output and the record count.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        let records = self.records;
        self.put(b"Z")?;
        self.put(&records.to_le_bytes())?;
        let digest = self.hash.take().map(Hasher::finish).unwrap_or_default();
        self.out.write_all(&digest)?;
        Ok((self.out, records))
    }
}

/// One checked item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The header.
    Header(Header),
    /// A table starts.
    Table(String),
    /// A row of the current table.
    Row(Vec<u8>, Vec<u8>),
    /// (Incremental) a body of `blobs` that the base backup holds, by its SHA-256.
    BaseBlob([u8; 32]),
    /// The current table ended; its row count matched.
    EndTable(u64),
    /// A file.
    File {
        /// Where it goes back.
        name: String,
        /// Unix permission bits.
        mode: u32,
        /// Contents.
        bytes: Vec<u8>,
    },
    /// The trailer matched: record count and whole-stream hash. Last event.
    End {
        /// Records (tables, rows, files).
        records: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body,
    Done,
}

/// Decodes a stream fed in arbitrary chunks. Errors are one-line texts naming the
/// place (byte offset into the plaintext).
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    offset: u64,
    hash: Hasher,
    state: State,
    table: Option<String>,
    rows: u64,
    records: u64,
    blob_table: bool,
    incremental: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Decoder {
        Decoder {
            buf: Vec::new(),
            start: 0,
            offset: 0,
            hash: Hasher::new(),
            state: State::Header,
            table: None,
            rows: 0,
            records: 0,
            blob_table: false,
            incremental: false,
        }
    }

    /// Adds bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn err(&self, what: impl std::fmt::Display) -> String {
        format!("at byte {} of the backup stream: {what}", self.offset)
    }

    /// Consumes `n` bytes (hashing them).
    fn take(&mut self, n: usize, hash: bool) -> Vec<u8> {
        let b = self.buf[self.start..self.start + n].to_vec();
        if hash {
            self.hash.update(&b);
        }
        self.start += n;
        self.offset += n as u64;
        b
    }

    fn u16_at(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
    }
    fn u32_at(b: &[u8], at: usize) -> usize {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    }

    /// The next event, `Ok(None)` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, String> {
        let b = self.avail();
        match self.state {
            State::Done => {
                if b.is_empty() {
                    Ok(None)
                } else {
                    Err(self.err("data after the end of the backup"))
                }
            }
            State::Header => {
                if b.len() < 14 {
                    if !b.is_empty() && !MAGIC.starts_with(&b[..b.len().min(8)]) {
                        return Err(self.err("not a letterbox backup"));
                    }
                    return Ok(None);
                }
                if &b[..8] != MAGIC {
                    return Err(self.err("not a letterbox backup"));
                }
                let version = Self::u16_at(b, 8) as u16;
                if version != VERSION {
                    return Err(self.err(format!(
                        "backup format version {version}, this letterbox reads version {VERSION}"
                    )));
                }
                let len = Self::u32_at(b, 10);
                if len > MAX_HEADER {
                    return Err(self.err("header too long"));
                }
                if b.len() < 14 + len {
                    return Ok(None);
                }
                let raw = self.take(14 + len, true);
                let header: Header = serde_json::from_slice(&raw[14..])
                    .map_err(|e| self.err(format!("bad header: {e}")))?;
                self.state = State::Body;
                self.incremental = header.base.is_some();
                Ok(Some(Event::Header(header)))
            }
            State::Body => {
                let Some(&tag) = b.first() else {
                    return Ok(None);
                };
                match tag {
                    b'T' => {
                        if self.table.is_some() {
                            return Err(self.err("a table starts inside another"));
                        }
                        if b.len() < 3 {
                            return Ok(None);
                        }
                        let n = Self::u16_at(b, 1);
                        if b.len() < 3 + n {
                            return Ok(None);
                        }
                        let raw = self.take(3 + n, true);
                        let name = String::from_utf8(raw[3..].to_vec())
                            .map_err(|_| self.err("table name is not UTF-8"))?;
                        self.blob_table = name == crate::store::backup::BLOB_TABLE;
                        self.table = Some(name.clone());
                        self.rows = 0;
                        self.records += 1;
                        Ok(Some(Event::Table(name)))
                    }
                    b'R' => {
                        if self.table.is_none() {
                            return Err(self.err("a row outside any table"));
                        }
                        if b.len() < 5 {
                            return Ok(None);
                        }
                        let k = Self::u32_at(b, 1);
                        if k > MAX_VALUE {
                            return Err(self.err("key over the size limit"));
                        }
                        if b.len() < 9 + k {
                            return Ok(None);
                        }
                        let v = Self::u32_at(b, 5 + k);
                        if v > MAX_VALUE {
                            return Err(self.err("value over the size limit"));
                        }
                        if b.len() < 9 + k + v {
                            return Ok(None);
                        }
                        let at = self.offset;
                        let raw = self.take(9 + k + v, true);
                        let key = raw[5..5 + k].to_vec();
                        let value = raw[9 + k..].to_vec();
                        if self.blob_table && sha256(&value).as_slice() != key.as_slice() {
                            return Err(format!(
                                "at byte {at} of the backup stream: a message body does not match its SHA-256"
                            ));
                        }
                        self.rows += 1;
                        self.records += 1;
                        Ok(Some(Event::Row(key, value)))
                    }
                    b'B' => {
                        if !self.blob_table || !self.incremental {
                            return Err(self.err(
                                "a base body outside the blobs table of an incremental backup",
                            ));
                        }
                        if b.len() < 33 {
                            return Ok(None);
                        }
                        let raw = self.take(33, true);
                        let mut key = [0u8; 32];
                        key.copy_from_slice(&raw[1..]);
                        self.records += 1;
                        Ok(Some(Event::BaseBlob(key)))
                    }
                    b'E' => {
                        let Some(name) = self.table.clone() else {
                            return Err(self.err("a table end outside any table"));
                        };
                        if b.len() < 9 {
                            return Ok(None);
                        }
                        let n = Self::u64_at(b, 1);
                        if n != self.rows {
                            return Err(self.err(format!(
                                "table {name} should have {n} rows but has {}",
                                self.rows
                            )));
                        }
                        self.take(9, true);
                        self.table = None;
                        self.blob_table = false;
                        Ok(Some(Event::EndTable(n)))
                    }
                    b'F' => {
                        if self.table.is_some() {
                            return Err(self.err("a file inside a table"));
                        }
                        if b.len() < 3 {
                            return Ok(None);
                        }
                        let n = Self::u16_at(b, 1);
                        if b.len() < 11 + n {
                            return Ok(None);
                        }
                        let mode = Self::u32_at(b, 3 + n) as u32;
                        let len = Self::u32_at(b, 7 + n);
                        if len > MAX_FILE {
                            return Err(self.err("file over the size limit"));
                        }
                        if b.len() < 11 + n + len {
                            return Ok(None);
                        }
                        let raw = self.take(11 + n + len, true);
                        let name = String::from_utf8(raw[3..3 + n].to_vec())
                            .map_err(|_| self.err("file name is not UTF-8"))?;
                        self.records += 1;
                        Ok(Some(Event::File {
                            name,
                            mode,
                            bytes: raw[11 + n..].to_vec(),
                        }))
                    }
                    b'Z' => {
                        if self.table.is_some() {
                            return Err(self.err("the trailer inside a table"));
                        }
                        if b.len() < 41 {
                            return Ok(None);
                        }
                        let n = Self::u64_at(b, 1);
                        self.take(9, true);
                        let want = self.take(32, false);
                        let got = std::mem::replace(&mut self.hash, Hasher::new()).finish();
                        if n != self.records {
                            return Err(self.err(format!(
                                "the trailer counts {n} records but the backup has {}",
                                self.records
                            )));
                        }
                        if want.as_slice() != got.as_slice() {
                            return Err(self.err("the whole-stream SHA-256 does not match"));
                        }
                        self.state = State::Done;
                        Ok(Some(Event::End { records: n }))
                    }
                    t => Err(self.err(format!("unknown record type 0x{t:02x}"))),
                }
            }
        }
    }

    /// Call at the end of input: an error unless the trailer was seen.
    pub fn finish(&self) -> Result<(), String> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(self.err("the backup ends early (truncated)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let h = Header {
            letterbox: "0.1.0".into(),
            created: 1_700_000_000,
            schema: 2,
            base: None,
        };
        let mut e = Encoder::new(Vec::new(), &h).unwrap();
        e.table("meta").unwrap();
        e.row(b"next_account", &7u64.to_le_bytes()).unwrap();
        e.end_table().unwrap();
        e.table("blobs").unwrap();
        let body = b"Subject: hi\r\n\r\nbody\r\n".to_vec();
        e.row(&sha256(&body), &body).unwrap();
        e.row(&sha256(b""), b"").unwrap();
        e.end_table().unwrap();
        e.table("empty").unwrap();
        e.end_table().unwrap();
        e.file("config", 0o640, b"[server]\n").unwrap();
        let (out, n) = e.finish().unwrap();
        assert_eq!(n, 7);
        out
    }

    fn decode_chunked(b: &[u8], chunk: usize) -> Result<Vec<Event>, String> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in b.chunks(chunk.max(1)) {
            d.feed(c);
            while let Some(e) = d.next_event()? {
                out.push(e);
            }
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn round_trip_in_any_chunks() {
        let b = sample();
        let whole = decode_chunked(&b, b.len()).unwrap();
        assert_eq!(whole.len(), 12);
        assert!(matches!(&whole[0], Event::Header(h) if h.schema == 2));
        assert_eq!(whole[1], Event::Table("meta".into()));
        assert_eq!(
            whole[10],
            Event::File {
                name: "config".into(),
                mode: 0o640,
                bytes: b"[server]\n".to_vec()
            }
        );
        assert_eq!(whole[11], Event::End { records: 7 });
        for chunk in [1, 2, 3, 7, 13, 64] {
            assert_eq!(decode_chunked(&b, chunk).unwrap(), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_an_error() {
        let b = sample();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x20;
            let r = decode_chunked(&c, 5);
            assert!(r.is_err(), "flip at {i} went unnoticed");
            let e = r.unwrap_err();
            assert!(!e.contains('\n') && e.starts_with("at byte "), "{e}");
        }
        for n in 0..b.len() {
            assert!(decode_chunked(&b[..n], 4).is_err(), "truncated at {n}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(decode_chunked(&extra, 9).is_err());
    }

    #[test]
    fn blob_hash_and_counts_are_checked() {
        let h = Header {
            letterbox: "x".into(),
            created: 0,
            schema: 2,
            base: None,
        };
        let mut e = Encoder::new(Vec::new(), &h).unwrap();
        e.table("blobs").unwrap();
        e.row(&[0u8; 32], b"not the hash").unwrap();
        e.end_table().unwrap();
        let (b, _) = e.finish().unwrap();
        let err = decode_chunked(&b, 100).unwrap_err();
        assert!(err.contains("SHA-256"), "{err}");
        // Oversized lengths are refused before any allocation.
        let mut d = Decoder::new();
        let mut head = sample();
        head.truncate(14 + Decoder::u32_at(&head, 10));
        head.extend_from_slice(b"T\x05\x00blobsR\xff\xff\xff\x7f");
        d.feed(&head);
        assert!(d.next_event().unwrap().is_some());
        assert!(d.next_event().unwrap().is_some());
        assert!(d.next_event().unwrap_err().contains("limit"));
    }

    #[test]
    fn base_blobs_only_in_the_blobs_table_of_an_incremental() {
        let body = b"new".to_vec();
        let make = |base: Option<BaseRef>, table: &str| {
            let h = Header {
                letterbox: "x".into(),
                created: 0,
                schema: 2,
                base,
            };
            let mut e = Encoder::new(Vec::new(), &h).unwrap();
            e.table(table).unwrap();
            e.row(&sha256(&body), &body).unwrap();
            e.base_blob(&[7u8; 32]).unwrap();
            e.end_table().unwrap();
            e.finish().unwrap()
        };
        let base = BaseRef {
            name: "full.backup".into(),
            sha256: hex(&[1u8; 32]),
        };
        let (b, n) = make(Some(base.clone()), "blobs");
        assert_eq!(n, 3);
        for chunk in [1, 5, 33, 1000] {
            let ev = decode_chunked(&b, chunk).unwrap();
            assert!(matches!(&ev[0], Event::Header(h) if h.base.as_ref() == Some(&base)));
            assert_eq!(ev[3], Event::BaseBlob([7u8; 32]));
            assert_eq!(ev[4], Event::EndTable(1), "base bodies are not rows");
        }
        // In a full backup, or outside `blobs`: refused.
        let (b, _) = make(None, "blobs");
        assert!(decode_chunked(&b, 7).unwrap_err().contains("base body"));
        let (b, _) = make(Some(base), "meta");
        assert!(decode_chunked(&b, 7).unwrap_err().contains("base body"));
    }
}
