//! The store's side of backup and restore: the one list of tables a backup holds
//! ([`visit_tables`]), a dump of every table from one read transaction (a consistent
//! snapshot while the writer keeps committing), and [`Restorer`], which rebuilds a
//! database file from dumped rows. Rows travel as redb's own key and value bytes
//! (`redb::Value::as_bytes`), so a table is dumped and restored without knowing its
//! record types. The file format around them lives in `crate::data::backup`.

use std::collections::BTreeSet;
use std::path::Path;

use redb::{
    Database, Key, ReadableDatabase, ReadableTable, TableDefinition, TableHandle, Value,
    WriteTransaction,
};

use super::records::{Account, Mailbox, MessageRow, QueueItem, dec};
use super::schema::*;
use super::{Error, Result, Store};

/// A visitor over every table definition of the store.
pub(crate) trait TableVisitor {
    /// Called once per table, in [`visit_tables`] order.
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()>;
}

/// Every table of the store, in the order a backup writes them: THE list. A table
/// added to `schema.rs` is added here too (one line); a backup refuses to run while
/// the database holds a table missing here (nothing is silently left out), and the
/// unit test `every_schema_table_is_backed_up` fails on a table of `schema.rs` missing.
pub(crate) fn visit_tables(v: &mut impl TableVisitor) -> Result<()> {
    v.visit(META)?;
    v.visit(ACCOUNTS)?;
    v.visit(ADDRESSES)?;
    v.visit(MAILBOXES)?;
    v.visit(MAILBOX_NAMES)?;
    v.visit(SUBSCRIPTIONS)?;
    v.visit(MESSAGES)?;
    v.visit(EXPUNGED)?;
    v.visit(BLOBS)?;
    v.visit(BLOB_REFS)?;
    v.visit(PARSED)?;
    v.visit(QUEUE)?;
    v.visit(DKIM_KEYS)?;
    v.visit(QUOTAS)?;
    v.visit(PULL_STATE)?;
    v.visit(PULL_HASHES)?;
    v.visit(IMPORTS)?;
    v.visit(SPAM_TOKENS)?;
    v.visit(SPAM_STATE)?;
    v.visit(SPAM_TRAINED)?;
    v.visit(SPAM_QUEUE)?;
    v.visit(GREY_TRIPLES)?;
    v.visit(GREY_TRIPLE_AGE)?;
    v.visit(GREY_NETS)?;
    v.visit(GREY_NET_AGE)?;
    v.visit(SENT_TO)?;
    Ok(())
}

/// The name of the table whose keys are the SHA-256 of their values.
pub const BLOB_TABLE: &str = "blobs";

/// Names of every table a backup holds.
pub fn table_names() -> Vec<String> {
    struct Names(Vec<String>);
    impl TableVisitor for Names {
        fn visit<K: Key + 'static, V: Value + 'static>(
            &mut self,
            def: TableDefinition<'static, K, V>,
        ) -> Result<()> {
            self.0.push(def.name().to_string());
            Ok(())
        }
    }
    let mut n = Names(Vec::new());
    let _ = visit_tables(&mut n);
    n.0
}

/// Receives a snapshot table by table. Errors are one-line texts.
pub trait DumpSink {
    /// A table starts.
    fn table(&mut self, name: &str) -> std::result::Result<(), String>;
    /// One row of the current table, as redb's key and value bytes.
    fn row(&mut self, key: &[u8], value: &[u8]) -> std::result::Result<(), String>;
    /// The current table ends after `rows` rows.
    fn end_table(&mut self, rows: u64) -> std::result::Result<(), String>;
}

/// What a dump wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Tables written.
    pub tables: u64,
    /// Rows written over all tables.
    pub rows: u64,
}

struct Dumper<'a> {
    tx: &'a redb::ReadTransaction,
    sink: &'a mut dyn DumpSink,
    summary: DumpSummary,
    sink_err: Option<String>,
}

impl Dumper<'_> {
    fn sink(&mut self, r: std::result::Result<(), String>) -> Result<()> {
        r.map_err(|e| {
            self.sink_err = Some(e.clone());
            Error::Storage(e)
        })
    }
}

impl TableVisitor for Dumper<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        let t = match self.tx.open_table(def) {
            Ok(t) => t,
            // Tables created on first use (QUOTAS) may not exist yet: nothing to save.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let r = self.sink.table(def.name());
        self.sink(r)?;
        let mut rows = 0u64;
        for entry in t.iter()? {
            let (k, v) = entry?;
            let r = self.sink.row(
                K::as_bytes(&k.value()).as_ref(),
                V::as_bytes(&v.value()).as_ref(),
            );
            self.sink(r)?;
            rows += 1;
        }
        let r = self.sink.end_table(rows);
        self.sink(r)?;
        self.summary.tables += 1;
        self.summary.rows += rows;
        Ok(())
    }
}

impl Store {
    /// Writes every table of one consistent snapshot (one redb read transaction: the
    /// writer keeps committing meanwhile, and none of its later commits shows) into
    /// `sink`. Refuses when the database holds a table that [`visit_tables`] does not
    /// list, so that a backup never silently leaves data out.
    pub fn dump(&self, sink: &mut dyn DumpSink) -> std::result::Result<DumpSummary, String> {
        let db = self.db().map_err(|e| e.to_string())?;
        let tx = db.begin_read().map_err(|e| e.to_string())?;
        let known: BTreeSet<String> = table_names().into_iter().collect();
        for t in tx.list_tables().map_err(|e| e.to_string())? {
            if !known.contains(t.name()) {
                return Err(format!(
                    "the store has a table {:?} that backups do not know (add it to store::backup::visit_tables)",
                    t.name()
                ));
            }
        }
        let mut d = Dumper {
            tx: &tx,
            sink,
            summary: DumpSummary::default(),
            sink_err: None,
        };
        match visit_tables(&mut d) {
            Ok(()) => Ok(d.summary),
            Err(e) => Err(d.sink_err.unwrap_or_else(|| e.to_string())),
        }
    }

    /// Checks that the records of the store decode and refer to what exists: every
    /// account, mailbox, message row and queue item decodes, and every message row and
    /// queue item has its body and parsed structure. Returns (accounts, messages).
    pub fn check_consistency(&self) -> Result<(u64, u64)> {
        self.read(|r| {
            let tx = r.tx();
            let blobs = tx.open_table(BLOBS)?;
            let parsed = tx.open_table(PARSED)?;
            let has_body = |h: [u8; 32]| -> Result<bool> {
                Ok(blobs.get(h)?.is_some() && parsed.get(h)?.is_some())
            };
            let mut accounts = 0;
            for e in tx.open_table(ACCOUNTS)?.iter()? {
                let _: Account = dec(e?.1.value())?;
                accounts += 1;
            }
            for e in tx.open_table(MAILBOXES)?.iter()? {
                let _: Mailbox = dec(e?.1.value())?;
            }
            let mut messages = 0;
            for e in tx.open_table(MESSAGES)?.iter()? {
                let (k, v) = e?;
                let row: MessageRow = dec(v.value())?;
                if !has_body(row.blob)? {
                    let (mb, uid) = k.value();
                    return Err(Error::Corrupt(format!(
                        "message {uid} of mailbox {mb} has no body"
                    )));
                }
                messages += 1;
            }
            for e in tx.open_table(QUEUE)?.iter()? {
                let item: QueueItem = dec(e?.1.value())?;
                if !has_body(item.blob)? {
                    return Err(Error::Corrupt(format!(
                        "queue item {} has no body",
                        item.id
                    )));
                }
            }
            Ok((accounts, messages))
        })
    }
}

/// Rows are inserted in batches of about this many bytes (bounded memory; one
/// `open_table` per batch instead of one per row).
const BATCH_BYTES: usize = 8 << 20;
/// A non-durable commit after about this many bytes, so the write transaction's dirty
/// pages stay bounded; the last commit is durable.
const COMMIT_BYTES: u64 = 64 << 20;

/// Rebuilds a database file from dumped rows. Create it on a path that does not exist,
/// feed it tables and rows in dump order, then [`Restorer::finish`]; the caller renames
/// the finished file into place.
pub struct Restorer {
    db: Database,
    tx: Option<WriteTransaction>,
    table: Option<String>,
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    batch_bytes: usize,
    uncommitted: u64,
}

/// Inserts a batch of rows into the table named `name`.
struct InsertBatch<'a> {
    tx: &'a WriteTransaction,
    name: &'a str,
    rows: &'a [(Vec<u8>, Vec<u8>)],
    found: bool,
}

/// redb decodes fixed-width types by slicing; a wrong length would panic, so check it.
fn width_ok<T: Value>(b: &[u8]) -> bool {
    T::fixed_width().is_none_or(|w| w == b.len())
}

impl TableVisitor for InsertBatch<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        if def.name() != self.name {
            return Ok(());
        }
        self.found = true;
        let mut t = self.tx.open_table(def)?;
        for (k, v) in self.rows {
            if !width_ok::<K>(k) || !width_ok::<V>(v) {
                return Err(Error::Corrupt(format!(
                    "a row of table {} has the wrong size",
                    self.name
                )));
            }
            // Variable-width redb types (str, tuples) panic on malformed bytes rather
            // than returning an error; a damaged backup must give an error instead.
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                t.insert(K::from_bytes(k), V::from_bytes(v)).map(|_| ())
            }));
            match ok {
                Ok(r) => r?,
                Err(_) => {
                    return Err(Error::Corrupt(format!(
                        "a row of table {} does not decode",
                        self.name
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Restorer {
    /// Creates a new, empty database file at `path` (which must not exist).
    pub fn create(path: &Path) -> Result<Restorer> {
        if path.exists() {
            return Err(Error::Exists(path.display().to_string()));
        }
        let db = Database::builder()
            .set_cache_size(16 * 1024 * 1024)
            .create(path)
            .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        Ok(Restorer {
            db,
            tx: None,
            table: None,
            batch: Vec::new(),
            batch_bytes: 0,
            uncommitted: 0,
        })
    }

    fn tx(&mut self) -> Result<&WriteTransaction> {
        if self.tx.is_none() {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(redb::Durability::None)?;
            self.tx = Some(tx);
        }
        self.tx.as_ref().ok_or(Error::Closed)
    }

    fn flush_batch(&mut self) -> Result<()> {
        let Some(name) = self.table.clone() else {
            return Ok(());
        };
        let rows = std::mem::take(&mut self.batch);
        let bytes = std::mem::take(&mut self.batch_bytes);
        let tx = self.tx()?;
        let mut ins = InsertBatch {
            tx,
            name: &name,
            rows: &rows,
            found: false,
        };
        visit_tables(&mut ins)?;
        if !ins.found {
            return Err(Error::Invalid(format!(
                "the backup has a table {name:?} this letterbox does not know (restore it with a newer letterbox)"
            )));
        }
        self.uncommitted += bytes as u64;
        if self.uncommitted >= COMMIT_BYTES
            && let Some(tx) = self.tx.take()
        {
            tx.commit()?;
            self.uncommitted = 0;
        }
        Ok(())
    }

    /// A table starts (the rows that follow belong to it).
    pub fn table(&mut self, name: &str) -> Result<()> {
        self.flush_batch()?;
        if !table_names().iter().any(|n| n == name) {
            return Err(Error::Invalid(format!(
                "the backup has a table {name:?} this letterbox does not know (restore it with a newer letterbox)"
            )));
        }
        self.table = Some(name.to_string());
        // Create the table even when it has no rows.
        let tx = self.tx()?;
        let mut ins = InsertBatch {
            tx,
            name,
            rows: &[],
            found: false,
        };
        visit_tables(&mut ins)?;
        Ok(())
    }

    /// One row of the current table.
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.table.is_none() {
            return Err(Error::Invalid("a row outside any table".into()));
        }
        self.batch_bytes += key.len() + value.len() + 16;
        self.batch.push((key.to_vec(), value.to_vec()));
        if self.batch_bytes >= BATCH_BYTES {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Writes the last rows and commits durably. The restored store is marked as
    /// cleanly stopped: the snapshot was taken from a running daemon, and its first
    /// start on the new box is not an unclean one.
    pub fn finish(mut self) -> Result<()> {
        self.flush_batch()?;
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => self.db.begin_write()?,
        };
        let mut tx = tx;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.open_table(META)?.insert("running", 0u64)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MailboxSel, NewMessage, Op, Target};
    use std::sync::Arc;

    type Rows = Vec<(Vec<u8>, Vec<u8>)>;
    /// Collects a dump in memory.
    #[derive(Default)]
    struct Mem(Vec<(String, Rows, u64)>);
    impl DumpSink for Mem {
        fn table(&mut self, name: &str) -> std::result::Result<(), String> {
            self.0.push((name.into(), Vec::new(), 0));
            Ok(())
        }
        fn row(&mut self, k: &[u8], v: &[u8]) -> std::result::Result<(), String> {
            self.0.last_mut().unwrap().1.push((k.to_vec(), v.to_vec()));
            Ok(())
        }
        fn end_table(&mut self, rows: u64) -> std::result::Result<(), String> {
            self.0.last_mut().unwrap().2 = rows;
            Ok(())
        }
    }

    fn populated() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.write(Op::CreateAccount {
            address: "a@home.arpa".into(),
            password_hash: "!".into(),
        })
        .unwrap();
        s.write(Op::AddAlias {
            alias: "b@home.arpa".into(),
            target: "a@home.arpa".into(),
        })
        .unwrap();
        s.write(Op::SetQuota {
            address: "a@home.arpa".into(),
            storage: Some(crate::store::Limit::Max(1 << 30)),
            messages: None,
        })
        .unwrap();
        let id = s
            .read(|r| r.account_by_login("a@home.arpa"))
            .unwrap()
            .unwrap()
            .id;
        let msg = Arc::new(NewMessage::new(b"Subject: x\r\n\r\nhello\r\n".to_vec()));
        s.write(Op::Deliver {
            message: msg.clone(),
            targets: vec![Target {
                account: id,
                mailbox: MailboxSel::Inbox,
            }],
            flags: 0,
            keywords: vec!["$Label".into()],
            internal_date: 1,
            delivered: true,
        })
        .unwrap();
        s.write(Op::Enqueue {
            message: msg,
            mail_from: "a@home.arpa".into(),
            rcpts: vec!["x@example.org".into()],
            now: 1,
        })
        .unwrap();
        s.write(Op::Subscribe {
            account: id,
            name: "INBOX".into(),
            on: true,
        })
        .unwrap();
        s.write(Op::Expunge {
            mailbox: 1,
            uids: Some(vec![]),
        })
        .ok();
        (d, s)
    }

    /// Every table that exists in a populated store is in the backup.
    #[test]
    fn dump_holds_every_table_of_a_populated_store() {
        let (_d, s) = populated();
        let mut m = Mem::default();
        s.dump(&mut m).unwrap();
        let dumped: BTreeSet<String> = m.0.iter().map(|t| t.0.clone()).collect();
        let present: BTreeSet<String> = s
            .read(|r| {
                Ok(r.tx()
                    .list_tables()?
                    .map(|t| t.name().to_string())
                    .collect())
            })
            .unwrap();
        assert!(present.len() >= 10, "{present:?}");
        let missing: Vec<_> = present.difference(&dumped).collect();
        assert!(missing.is_empty(), "tables not in the backup: {missing:?}");
        for (name, rows, n) in &m.0 {
            assert_eq!(rows.len() as u64, *n, "{name}");
        }
    }

    /// Every `TableDefinition` in schema.rs is in [`visit_tables`] (catches a table
    /// added by a later change before any store has it).
    #[test]
    fn every_schema_table_is_backed_up() {
        let src = include_str!("schema.rs");
        let names = table_names();
        let mut found = 0;
        for part in src.split("TableDefinition::new(\"").skip(1) {
            let name = part.split('"').next().unwrap();
            found += 1;
            assert!(
                names.iter().any(|n| n == name),
                "table {name:?} of schema.rs is missing from store::backup::visit_tables"
            );
        }
        assert_eq!(found, names.len());
    }

    #[test]
    fn restore_round_trip_and_refusals() {
        let (_d, s) = populated();
        let mut m = Mem::default();
        s.dump(&mut m).unwrap();
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join(crate::store::DB_FILE);
        let mut r = Restorer::create(&path).unwrap();
        for (name, rows, _) in &m.0 {
            r.table(name).unwrap();
            for (k, v) in rows {
                r.row(k, v).unwrap();
            }
        }
        r.finish().unwrap();
        let s2 = Store::open(out.path()).unwrap();
        let mut m2 = Mem::default();
        s2.dump(&mut m2).unwrap();
        // Same rows, except `running` which the restore clears.
        let strip = |m: &Mem| -> Vec<_> {
            m.0.iter()
                .map(|(n, rows, _)| {
                    let rows: Vec<_> = rows
                        .iter()
                        .filter(|(k, _)| !(n == "meta" && k.as_slice() == b"running"))
                        .cloned()
                        .collect();
                    (n.clone(), rows)
                })
                .collect()
        };
        assert_eq!(strip(&m), strip(&m2));
        assert_eq!(s2.check_consistency().unwrap(), (1, 1));
        // Damaged rows give errors, not panics.
        let p2 = out.path().join("x.redb");
        let mut r = Restorer::create(&p2).unwrap();
        r.table("accounts").unwrap();
        r.row(b"abc", b"x").unwrap();
        assert!(r.finish().is_err());
        let p3 = out.path().join("y.redb");
        let mut r = Restorer::create(&p3).unwrap();
        r.table("mailbox_names").unwrap();
        r.row(&[0xff; 5], b"").unwrap();
        assert!(r.finish().is_err());
        let mut r = Restorer::create(&out.path().join("z.redb")).unwrap();
        assert!(r.table("no_such_table").is_err());
        assert!(Restorer::create(&path).is_err());
    }
}
