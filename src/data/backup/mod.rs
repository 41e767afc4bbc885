//! Online backup, verify and restore (SPEC §4, `letterbox backup|restore`).
//!
//! A backup is one file: the [`format`] stream (every store table from one read
//! transaction, then the config file and the TLS files), compressed with zstd (content
//! checksum on) and, with a passphrase, encrypted with age (scrypt passphrase recipient).
//! An encrypted file starts with `age-encryption.org/v1`, a plain one with the zstd
//! frame magic. Files are written under a temporary name beside the target, fsynced and
//! renamed, so a failed backup never leaves a half file under the final name.
//!
//! `verify` proves that a backup restores: it decrypts, decompresses, checks every blob's
//! SHA-256, every table's row count, the record count and the whole-stream SHA-256, then
//! rebuilds the store from it in a scratch directory, opens that store (schema check) and
//! checks that every record decodes and every message has its body. `restore` does the
//! same into the data directory and renames the new database into place.
//!
//! An incremental backup (`letterbox backup FILE --incremental BASE`) builds on a full
//! backup in the same directory: its header names the base by file name and by the
//! SHA-256 of the base file's bytes, and its `blobs` table lists by hash only (a `B`
//! record) each body the base holds, writing the others in full. Every other table is
//! written whole (they are small beside the bodies). Writing one reads the base through
//! first (every check of `verify`'s stream pass), so an incremental never builds on a
//! damaged base. `verify` and `restore` of an incremental need the base beside it: a
//! missing base, or one whose bytes no longer hash to the named SHA-256, is a one-line
//! error, and every listed body must be found in the base (with its own SHA-256 checked)
//! before the rebuilt store is accepted; the store's consistency check then proves that
//! every message has its body. A base must be a full backup (no chains).

pub mod format;
pub mod schedule;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use age::secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::backup::{DumpSink, Restorer};
use crate::store::{self, Store};
use format::{BaseRef, Decoder, Encoder, Event, Header};

/// The zstd level: 3 is zstd's default, fast enough for a Pi's card and USB stick.
const ZSTD_LEVEL: i32 = 3;
/// Read size when decoding.
const CHUNK: usize = 256 * 1024;
/// Files kept in memory during a restore until the store is in place (config, TLS).
const MAX_FILES_BYTES: usize = 64 << 20;
/// The scrypt work factor (N = 2^17: 128 MiB of memory, about a second on a Pi 4). age
/// would otherwise calibrate it to a second on the machine that encrypts: 2^19 (512 MiB)
/// on a desktop, too much memory for a 1 GB Pi that has to decrypt the file.
const SCRYPT_LOG_N: u8 = 17;
/// How an age file starts.
const AGE_MAGIC: &[u8] = b"age-encryption.org/";

/// A backup passphrase. Its `Debug` never shows it, and nothing logs it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Passphrase(String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// The first line of `path` (without its line end); an empty one is refused.
    pub fn from_file(path: &Path) -> Result<Passphrase, String> {
        let mut s = String::new();
        File::open(path)
            .and_then(|f| f.take(64 * 1024).read_to_string(&mut s))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let line = s.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            return Err(format!(
                "{}: line 1: the passphrase is empty",
                path.display()
            ));
        }
        Ok(Passphrase(line.to_string()))
    }

    /// A passphrase from a string (tests).
    pub fn new(s: impl Into<String>) -> Passphrase {
        Passphrase(s.into())
    }

    fn secret(&self) -> SecretString {
        SecretString::from(self.0.clone())
    }
}

/// The loud warning for a backup written without a passphrase.
pub const UNENCRYPTED_WARNING: &str = "WARNING: this backup is NOT encrypted: anyone who gets the file can read all the mail and the password hashes. Give --passphrase-file (or [backup] passphrase_file) to encrypt it.";

/// What a backup wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Tables, rows, files.
    pub tables: u64,
    /// Rows over all tables.
    pub rows: u64,
    /// Files besides the store.
    pub files: u64,
    /// Encrypted with a passphrase.
    pub encrypted: bool,
    /// Wall time.
    pub seconds: f64,
    /// For an incremental backup: the base's file name.
    pub base: Option<String>,
    /// Bodies left out because the base holds them.
    pub base_blobs: u64,
}

/// The output chain below zstd: the temporary file, through age or not.
enum Out {
    Plain(BufWriter<File>),
    Age(age::stream::StreamWriter<BufWriter<File>>),
}

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Plain(w) => w.write(b),
            Out::Age(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Plain(w) => w.flush(),
            Out::Age(w) => w.flush(),
        }
    }
}

impl Out {
    fn finish(self) -> std::io::Result<File> {
        let w = match self {
            Out::Plain(w) => w,
            Out::Age(w) => w.finish()?,
        };
        w.into_inner().map_err(|e| e.into_error())
    }
}

type StreamEncoder = Encoder<zstd::stream::write::Encoder<'static, Out>>;

struct Sink<'a> {
    enc: &'a mut StreamEncoder,
    tmp: &'a Path,
    /// Sorted hashes of the bodies the base holds (empty for a full backup).
    base: &'a [[u8; 32]],
    in_blobs: bool,
    base_blobs: u64,
}

impl DumpSink for Sink<'_> {
    fn table(&mut self, name: &str) -> Result<(), String> {
        self.in_blobs = name == store::backup::BLOB_TABLE;
        self.enc.table(name).map_err(|e| write_err(self.tmp, e))
    }
    fn row(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        if self.in_blobs
            && let Ok(k) = <[u8; 32]>::try_from(key)
            && self.base.binary_search(&k).is_ok()
        {
            self.base_blobs += 1;
            return self.enc.base_blob(&k).map_err(|e| write_err(self.tmp, e));
        }
        self.enc.row(key, value).map_err(|e| write_err(self.tmp, e))
    }
    fn end_table(&mut self, _rows: u64) -> Result<(), String> {
        self.enc.end_table().map_err(|e| write_err(self.tmp, e))
    }
}

fn write_err(path: &Path, e: std::io::Error) -> String {
    format!("writing {}: {e}", path.display())
}

/// Where a file of the backup goes back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FilePlace {
    /// The configuration file (`config`).
    Config,
    /// A path relative to the data directory (`data/tls/key.pem`).
    Data(PathBuf),
    /// An absolute path outside the data directory (`path:/etc/ssl/mail.pem`): the
    /// configured certificate and key.
    Abs(PathBuf),
}

impl FilePlace {
    fn name(&self) -> String {
        match self {
            FilePlace::Config => "config".into(),
            FilePlace::Data(p) => format!("data/{}", p.display()),
            FilePlace::Abs(p) => format!("path:{}", p.display()),
        }
    }

    fn parse(name: &str) -> Result<FilePlace, String> {
        let bad = || format!("a file of the backup has an unsafe name {name:?}");
        if name == "config" {
            return Ok(FilePlace::Config);
        }
        if let Some(rel) = name.strip_prefix("data/") {
            let p = PathBuf::from(rel);
            if p.components().all(|c| matches!(c, Component::Normal(_))) {
                return Ok(FilePlace::Data(p));
            }
            return Err(bad());
        }
        if let Some(abs) = name.strip_prefix("path:") {
            let p = PathBuf::from(abs);
            if p.is_absolute() && !p.components().any(|c| c == Component::ParentDir) {
                return Ok(FilePlace::Abs(p));
            }
        }
        Err(bad())
    }
}

/// The files a backup holds besides the store: the config file, every file under
/// `data_dir/tls/`, and a configured certificate and key that live elsewhere.
fn collect_files(
    cfg: &Config,
    config_path: Option<&Path>,
) -> Result<Vec<(FilePlace, PathBuf)>, String> {
    let mut out = Vec::new();
    if let Some(p) = config_path
        && p.exists()
    {
        out.push((FilePlace::Config, p.to_path_buf()));
    }
    let data = &cfg.server.data_dir;
    let tls = data.join("tls");
    if let Ok(rd) = std::fs::read_dir(&tls) {
        let mut names: Vec<_> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            out.push((FilePlace::Data(Path::new("tls").join(&n)), tls.join(&n)));
        }
    }
    for p in [&cfg.tls.cert, &cfg.tls.key].into_iter().flatten() {
        if p.starts_with(data) {
            if let Ok(rel) = p.strip_prefix(data)
                && !out
                    .iter()
                    .any(|(pl, _)| *pl == FilePlace::Data(rel.to_path_buf()))
            {
                out.push((FilePlace::Data(rel.to_path_buf()), p.clone()));
            }
        } else {
            let abs = std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))?;
            out.push((FilePlace::Abs(abs), p.clone()));
        }
    }
    Ok(out)
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A temporary name beside `dest` (same file system, so the rename is atomic).
fn temp_beside(dest: &Path, what: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(".{name}.{what}-{}-{seq}", std::process::id()))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// The directory a backup file is in (`.` for a bare name).
fn dir_of(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Reads a full backup that an incremental one will build on: every check of the stream
/// pass, its bodies' hashes (sorted) and the SHA-256 of its file. `dest` is the
/// incremental's path: the base must be in the same directory (restore looks there).
fn read_base(
    base: &Path,
    dest: &Path,
    pass: Option<&Passphrase>,
) -> Result<(BaseRef, Vec<[u8; 32]>), String> {
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{}: not a file name", base.display()))?;
    let same_dir = match (
        std::fs::canonicalize(dir_of(base)),
        std::fs::canonicalize(dir_of(dest)),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same_dir {
        return Err(format!(
            "the base {} must be in the same directory as the incremental backup {} (restore looks for it there)",
            base.display(),
            dest.display()
        ));
    }
    let mut keys: Vec<[u8; 32]> = Vec::new();
    let mut in_blobs = false;
    let tap = Tap::default();
    read_stream(base, pass, Some(&tap), |ev| {
        match ev {
            Event::Header(h) if h.base.is_some() => {
                return Err("it is itself incremental: name a full backup as the base".into());
            }
            Event::Table(t) => in_blobs = t == store::backup::BLOB_TABLE,
            Event::Row(k, _) if in_blobs => {
                keys.push(<[u8; 32]>::try_from(k.as_slice()).map_err(|_| "a bad body key")?);
            }
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| format!("the base {}: {e}", base.display()))?;
    let digest = tap
        .finish(base)
        .map_err(|e| format!("the base {}: {e}", base.display()))?;
    keys.sort_unstable();
    Ok((
        BaseRef {
            name,
            sha256: format::hex(&digest),
        },
        keys,
    ))
}

/// Writes a backup of `store` (one consistent snapshot) with the config file and the TLS
/// files to `dest`: temporary file, fsync, rename, directory fsync. With `base` (a full
/// backup in the same directory, read with the same passphrase) the backup is
/// incremental: bodies the base holds are named, not written.
pub fn write_backup(
    store: &Store,
    cfg: &Config,
    config_path: Option<&Path>,
    dest: &Path,
    pass: Option<&Passphrase>,
    base: Option<&Path>,
) -> Result<BackupReport, String> {
    let start = Instant::now();
    if dest.is_dir() {
        return Err(format!("{} is a directory", dest.display()));
    }
    let (base_ref, base_keys) = match base {
        Some(b) => {
            let (r, k) = read_base(b, dest, pass)?;
            (Some(r), k)
        }
        None => (None, Vec::new()),
    };
    let files = collect_files(cfg, config_path)?;
    let tmp = temp_beside(dest, "tmp");
    let res = write_to(store, &files, &tmp, pass, base_ref.clone(), &base_keys);
    let (tables, rows, base_blobs) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", dest.display()));
    }
    sync_dir(dest.parent().unwrap_or(Path::new(".")))?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        path: dest.to_path_buf(),
        bytes,
        tables,
        rows,
        files: files.len() as u64,
        encrypted: pass.is_some(),
        seconds: start.elapsed().as_secs_f64(),
        base: base_ref.map(|b| b.name),
        base_blobs,
    })
}

fn write_to(
    store: &Store,
    files: &[(FilePlace, PathBuf)],
    tmp: &Path,
    pass: Option<&Passphrase>,
    base: Option<BaseRef>,
    base_keys: &[[u8; 32]],
) -> Result<(u64, u64, u64), String> {
    let werr = |e: std::io::Error| write_err(tmp, e);
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .map_err(werr)?
    };
    let buf = BufWriter::with_capacity(CHUNK, file);
    let out = match pass {
        Some(p) => {
            let mut r = age::scrypt::Recipient::new(p.secret());
            r.set_work_factor(SCRYPT_LOG_N);
            let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                .map_err(|e| write_err(tmp, std::io::Error::other(e.to_string())))?;
            Out::Age(enc.wrap_output(buf).map_err(werr)?)
        }
        None => Out::Plain(buf),
    };
    let mut z = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(werr)?;
    z.include_checksum(true).map_err(werr)?;
    let schema = store
        .read(|r| r.meta("schema_version"))
        .map_err(|e| e.to_string())?;
    let header = Header {
        letterbox: env!("CARGO_PKG_VERSION").into(),
        created: store::now_unix(),
        schema,
        base,
    };
    let mut enc = Encoder::new(z, &header).map_err(werr)?;
    let mut sink = Sink {
        enc: &mut enc,
        tmp,
        base: base_keys,
        in_blobs: false,
        base_blobs: 0,
    };
    let summary = store.dump(&mut sink)?;
    let base_blobs = sink.base_blobs;
    for (place, src) in files {
        let mut bytes = Vec::new();
        let f = File::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            f.metadata()
                .map(|m| m.permissions().mode())
                .unwrap_or(0o600)
                & 0o777
        };
        f.take(format::MAX_FILE as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{}: {e}", src.display()))?;
        enc.file(&place.name(), mode, &bytes)
            .map_err(|e| format!("{}: {e}", src.display()))?;
    }
    let (z, _records) = enc.finish().map_err(werr)?;
    let out = z.finish().map_err(werr)?;
    let file = out.finish().map_err(werr)?;
    file.sync_all().map_err(werr)?;
    Ok((summary.tables, summary.rows, base_blobs))
}

/// What reading a backup found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadSummary {
    /// Letterbox version, creation time and schema of the backup.
    pub letterbox: String,
    /// Unix seconds when the snapshot was taken.
    pub created: i64,
    /// Store schema version.
    pub schema: u64,
    /// Tables.
    pub tables: u64,
    /// Rows over all tables.
    pub rows: u64,
    /// Message bodies (rows of `blobs`), each checked against its SHA-256.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Files besides the store.
    pub files: u64,
    /// Records counted by the trailer.
    pub records: u64,
    /// The file was encrypted.
    pub encrypted: bool,
    /// For an incremental backup: the base it builds on.
    pub base: Option<BaseRef>,
    /// Bodies named by hash only (the base holds them).
    pub base_blobs: u64,
}

/// Maps an age decryption error to one line.
fn age_err(e: age::DecryptError) -> String {
    match e {
        age::DecryptError::NoMatchingKeys
        | age::DecryptError::KeyDecryptionFailed
        | age::DecryptError::DecryptionFailed => {
            "wrong passphrase (or the file's header is damaged)".into()
        }
        age::DecryptError::InvalidMac | age::DecryptError::InvalidHeader => {
            "the encryption header is damaged".into()
        }
        age::DecryptError::ExcessiveWork { required, target } => format!(
            "the passphrase's scrypt work factor {required} is far above this machine's {target}"
        ),
        age::DecryptError::UnknownFormat => "an age format this letterbox cannot read".into(),
        age::DecryptError::Io(e) => format!("reading: {e}"),
        e => format!("cannot decrypt: {e}"),
    }
}

/// The SHA-256 of a file's bytes as a reader consumes them (shared with the reader,
/// which sits deep in the decrypt/decompress chain).
#[derive(Clone)]
struct Tap(Arc<Mutex<(ring::digest::Context, u64)>>);

impl Default for Tap {
    fn default() -> Tap {
        Tap(Arc::new(Mutex::new((
            ring::digest::Context::new(&ring::digest::SHA256),
            0,
        ))))
    }
}

impl Tap {
    /// Hashes the rest of the file (what the decoders did not read) and returns the
    /// SHA-256 of all of it.
    fn finish(&self, path: &Path) -> Result<[u8; 32], String> {
        use std::io::{Seek, SeekFrom};
        let mut g = self.0.lock().map_err(|_| "a hashing thread failed")?;
        let mut f = File::open(path).map_err(|e| e.to_string())?;
        f.seek(SeekFrom::Start(g.1)).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            };
            g.0.update(&buf[..n]);
            g.1 += n as u64;
        }
        let ctx = std::mem::replace(&mut g.0, ring::digest::Context::new(&ring::digest::SHA256));
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Ok(out)
    }
}

/// A reader that feeds a [`Tap`].
struct Tapped<R> {
    inner: R,
    tap: Tap,
}

impl<R: Read> Read for Tapped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut g) = self.tap.0.lock() {
            g.0.update(&buf[..n]);
            g.1 += n as u64;
        }
        Ok(n)
    }
}

/// Opens a backup for reading: the plaintext stream, and whether it was encrypted.
/// With `tap`, every byte read from the file is also hashed.
fn open_reader(
    path: &Path,
    pass: Option<&Passphrase>,
    tap: Option<&Tap>,
) -> Result<(Box<dyn Read>, bool), String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let f: Box<dyn Read> = match tap {
        Some(t) => Box::new(Tapped {
            inner: f,
            tap: t.clone(),
        }),
        None => Box::new(f),
    };
    let mut r = BufReader::with_capacity(CHUNK, f);
    let head = r.fill_buf().map_err(|e| e.to_string())?;
    if head.is_empty() {
        return Err("the file is empty".into());
    }
    let encrypted = head.starts_with(AGE_MAGIC);
    let inner: Box<dyn Read> = if encrypted {
        let Some(p) = pass else {
            return Err("the backup is encrypted: give --passphrase-file".into());
        };
        let d = age::Decryptor::new_buffered(r).map_err(age_err)?;
        if !d.is_scrypt() {
            return Err("the backup is not encrypted with a passphrase".into());
        }
        let mut id = age::scrypt::Identity::new(p.secret());
        // Our files use SCRYPT_LOG_N whatever the machine's speed; accept one step more
        // (256 MiB) for files from `age -p`, and no more (a hostile file cannot ask for GiBs).
        id.set_max_work_factor(SCRYPT_LOG_N + 1);
        let reader = d
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(age_err)?;
        Box::new(reader)
    } else {
        Box::new(r)
    };
    let z = zstd::stream::read::Decoder::new(inner)
        .map_err(|e| format!("not a letterbox backup ({e})"))?;
    Ok((Box::new(z), encrypted))
}

/// Reads and checks a whole backup, handing each event to `on`. Errors are one line
/// (without the file name; callers add it). An incremental backup is read on its own
/// (its base is not opened): see [`verify`] for the whole check.
pub fn read_backup(
    path: &Path,
    pass: Option<&Passphrase>,
    on: impl FnMut(&Event) -> Result<(), String>,
) -> Result<ReadSummary, String> {
    read_stream(path, pass, None, on)
}

fn read_stream(
    path: &Path,
    pass: Option<&Passphrase>,
    tap: Option<&Tap>,
    mut on: impl FnMut(&Event) -> Result<(), String>,
) -> Result<ReadSummary, String> {
    let (mut r, encrypted) = open_reader(path, pass, tap)?;
    let mut d = Decoder::new();
    let mut s = ReadSummary {
        encrypted,
        ..ReadSummary::default()
    };
    let mut buf = vec![0u8; CHUNK];
    let mut in_blobs = false;
    let mut read_total: u64 = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(if read_total == 0 && !encrypted {
                    format!("not a letterbox backup, or the file is damaged ({e})")
                } else if encrypted {
                    format!(
                        "the file is damaged or was changed (decryption failed after {read_total} bytes: {e})"
                    )
                } else {
                    format!(
                        "the file is damaged (decompression failed after {read_total} bytes: {e})"
                    )
                });
            }
        };
        if n == 0 {
            break;
        }
        read_total += n as u64;
        d.feed(&buf[..n]);
        while let Some(ev) = d.next_event()? {
            match &ev {
                Event::Header(h) => {
                    s.letterbox.clone_from(&h.letterbox);
                    s.created = h.created;
                    s.schema = h.schema;
                    s.base.clone_from(&h.base);
                }
                Event::BaseBlob(_) => s.base_blobs += 1,
                Event::Table(name) => {
                    s.tables += 1;
                    in_blobs = name == store::backup::BLOB_TABLE;
                }
                Event::Row(_, v) => {
                    s.rows += 1;
                    if in_blobs {
                        s.blobs += 1;
                        s.blob_bytes += v.len() as u64;
                    }
                }
                Event::EndTable(_) => in_blobs = false,
                Event::File { .. } => s.files += 1,
                Event::End { records } => s.records = *records,
            }
            on(&ev)?;
        }
    }
    d.finish()?;
    Ok(s)
}

/// Removes a scratch directory when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path, what: &str) -> Result<Scratch, String> {
        let dir = parent.join(format!(".letterbox-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a verify or restore found, with the store's own counts.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// What the stream held.
    pub stream: ReadSummary,
    /// Accounts in the rebuilt store.
    pub accounts: u64,
    /// Message rows in the rebuilt store (each with its body).
    pub messages: u64,
    /// Wall time.
    pub seconds: f64,
}

impl VerifyReport {
    /// One-line summary.
    pub fn line(&self) -> String {
        let s = &self.stream;
        format!(
            "{} accounts, {} messages, {} bodies ({} bytes, every SHA-256 checked), {} tables, {} rows, {} files; written by letterbox {} at unix time {}, schema {}, {}; {:.1} s",
            self.accounts,
            self.messages,
            s.blobs,
            s.blob_bytes,
            s.tables,
            s.rows,
            s.files,
            s.letterbox,
            s.created,
            s.schema,
            if s.encrypted {
                "encrypted"
            } else {
                "NOT encrypted"
            },
            self.seconds
        ) + &match &s.base {
            Some(b) => format!(
                "; incremental on {} ({} bodies from it, its SHA-256 checked)",
                b.name, s.base_blobs
            ),
            None => String::new(),
        }
    }
}

/// A silent panic hook while a restore decodes rows: a damaged row makes redb's decoder
/// panic, which [`Restorer`] turns into an error; the default hook would print it.
/// A panic hook, as `std::panic::take_hook` returns it.
type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send>;

struct QuietPanics(Option<Hook>);

impl QuietPanics {
    fn new() -> QuietPanics {
        let old = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        QuietPanics(Some(old))
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            std::panic::set_hook(h);
        }
    }
}

/// A file of a backup: where it goes, its mode and its bytes.
type BackupFile = (FilePlace, u32, Vec<u8>);

/// Rebuilds the store of a backup as `dir/letterbox.redb`, then opens it and checks
/// it. Returns the report and the files of the backup.
fn rebuild(
    path: &Path,
    pass: Option<&Passphrase>,
    dir: &Path,
) -> Result<(VerifyReport, Vec<BackupFile>), String> {
    let start = Instant::now();
    let db = dir.join(store::DB_FILE);
    let mut restorer = Some(Restorer::create(&db).map_err(|e| e.to_string())?);
    let mut files = Vec::new();
    let mut file_bytes = 0usize;
    // An incremental's base (checked to exist as soon as the header names it) and the
    // bodies it must supply.
    let mut base: Option<(BaseRef, PathBuf)> = None;
    let mut needed: Vec<[u8; 32]> = Vec::new();
    let quiet = QuietPanics::new();
    let stream = read_backup(path, pass, |ev| {
        let r = restorer.as_mut().ok_or("data after the end")?;
        match ev {
            Event::Header(h) => {
                if let Some(b) = &h.base {
                    let bp = dir_of(path).join(&b.name);
                    if b.name.contains('/') || !bp.is_file() {
                        return Err(format!(
                            "an incremental backup needs its base {} beside it, which is missing",
                            bp.display()
                        ));
                    }
                    base = Some((b.clone(), bp));
                }
                Ok(())
            }
            Event::Table(name) => r.table(name).map_err(|e| e.to_string()),
            Event::Row(k, v) => r.row(k, v).map_err(|e| e.to_string()),
            Event::BaseBlob(k) => {
                needed.push(*k);
                Ok(())
            }
            Event::File { name, mode, bytes } => {
                file_bytes += bytes.len();
                if file_bytes > MAX_FILES_BYTES {
                    return Err("the files of the backup are too large".into());
                }
                files.push((FilePlace::parse(name)?, *mode, bytes.clone()));
                Ok(())
            }
            Event::End { .. } | Event::EndTable(_) => Ok(()),
        }
    });
    let stream = stream?;
    let mut restorer = restorer.ok_or("the backup has no end")?;
    if let Some((b, bp)) = &base {
        add_base_bodies(&mut restorer, b, bp, pass, needed)?;
    }
    restorer.finish().map_err(|e| e.to_string())?;
    drop(quiet);
    let s = Store::open_with(dir, 0).map_err(|e| format!("the restored store: {e}"))?;
    let checked = s.check_consistency();
    s.close();
    let (accounts, messages) = checked.map_err(|e| format!("the restored store: {e}"))?;
    Ok((
        VerifyReport {
            stream,
            accounts,
            messages,
            seconds: start.elapsed().as_secs_f64(),
        },
        files,
    ))
}

/// Adds to `restorer` the bodies an incremental backup names by hash, read from its base
/// `bp` (every check of the stream pass, each body's SHA-256 too), after checking that
/// the base file's bytes hash to what the incremental names. Every named body must be
/// found.
fn add_base_bodies(
    restorer: &mut Restorer,
    b: &BaseRef,
    bp: &Path,
    pass: Option<&Passphrase>,
    mut needed: Vec<[u8; 32]>,
) -> Result<(), String> {
    needed.sort_unstable();
    needed.dedup();
    let mut found = vec![false; needed.len()];
    let mut in_blobs = false;
    let tap = Tap::default();
    let changed = || {
        format!(
            "its base {} was changed or replaced since the incremental backup was written (its SHA-256 differs from the one the incremental names)",
            bp.display()
        )
    };
    let read = read_stream(bp, pass, Some(&tap), |ev| {
        match ev {
            Event::Header(h) if h.base.is_some() => {
                return Err("it is itself incremental".into());
            }
            Event::Table(t) => {
                in_blobs = t == store::backup::BLOB_TABLE;
                if in_blobs {
                    restorer.table(t).map_err(|e| e.to_string())?;
                }
            }
            Event::Row(k, v) if in_blobs => {
                if let Ok(i) = needed.binary_search_by(|n| n.as_slice().cmp(k.as_slice())) {
                    restorer.row(k, v).map_err(|e| e.to_string())?;
                    found[i] = true;
                }
            }
            _ => {}
        }
        Ok(())
    });
    // A changed file is named as such, whatever the stream pass stumbled on first.
    let digest = tap
        .finish(bp)
        .map_err(|e| format!("{}: {e}", bp.display()))?;
    if format::hex(&digest) != b.sha256 {
        return Err(changed());
    }
    read.map_err(|e| format!("its base {}: {e}", bp.display()))?;
    let missing = found.iter().filter(|f| !**f).count();
    if missing > 0 {
        return Err(format!(
            "its base {} lacks {missing} of the {} message bodies the incremental backup needs",
            bp.display(),
            needed.len()
        ));
    }
    Ok(())
}

/// Checks a backup completely without touching the store: decrypts, decompresses, checks
/// every hash and count, rebuilds the store in a scratch directory under `scratch_parent`
/// (removed afterwards), opens it and checks its records.
pub fn verify(
    path: &Path,
    pass: Option<&Passphrase>,
    scratch_parent: &Path,
) -> Result<VerifyReport, String> {
    std::fs::create_dir_all(scratch_parent)
        .map_err(|e| format!("{}: {e}", scratch_parent.display()))?;
    let scratch = Scratch::new(scratch_parent, "verify")?;
    rebuild(path, pass, &scratch.0).map(|(r, _)| r)
}

/// Reads a backup through once (decrypt, decompress, hashes, counts) without building a
/// store: the cheap check the scheduler runs on every file it writes.
pub fn check_stream(path: &Path, pass: Option<&Passphrase>) -> Result<ReadSummary, String> {
    read_backup(path, pass, |_| Ok(()))
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The checks of the restored store.
    pub verify: VerifyReport,
    /// Where the replaced database was kept, if there was one.
    pub previous: Option<PathBuf>,
    /// One line per file put back (or set aside).
    pub files: Vec<String>,
}

/// Writes `bytes` to `path` (temp file, fsync, rename) with `mode`.
fn put_file(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let tmp = temp_beside(path, "restore");
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(())
}

/// Puts a file back where nothing is, or beside a different existing one as
/// `NAME.restored` (never overwriting a file the box already uses).
fn put_back(path: &Path, mode: u32, bytes: &[u8], replace: bool) -> Result<String, String> {
    match std::fs::read(path) {
        Ok(cur) if cur == bytes => Ok(format!("{}: unchanged", path.display())),
        Ok(_) if !replace => {
            let mut side = path.as_os_str().to_owned();
            side.push(".restored");
            let side = PathBuf::from(side);
            put_file(&side, mode, bytes)?;
            Ok(format!(
                "{}: differs from the backup's, which was written to {}",
                path.display(),
                side.display()
            ))
        }
        _ => {
            put_file(path, mode, bytes)?;
            Ok(format!("{}: restored", path.display()))
        }
    }
}

/// Is a daemon answering on the control socket?
fn daemon_running(cfg: &Config) -> bool {
    std::os::unix::net::UnixStream::connect(crate::control::socket_path(cfg)).is_ok()
}

/// Restores a backup into `cfg`'s data directory. Refuses while a daemon runs, and over
/// a store that has mail unless `force`. The new database is built and checked beside
/// the old one, then renamed over it (the old one stays as `letterbox.redb.before-restore`).
/// The TLS files go back into the data directory (replacing those there, which belong
/// to the store being replaced); the config file and a certificate configured outside
/// the data directory are put back only where nothing is, else beside the existing
/// file as `NAME.restored`.
pub fn restore(
    path: &Path,
    pass: Option<&Passphrase>,
    cfg: &Config,
    config_path: Option<&Path>,
    force: bool,
) -> Result<RestoreReport, String> {
    let data = &cfg.server.data_dir;
    if daemon_running(cfg) {
        return Err(format!(
            "a letterbox daemon is running on {}; stop it first (systemctl stop letterbox)",
            data.display()
        ));
    }
    let db = data.join(store::DB_FILE);
    if db.exists() {
        let s = Store::open_with(data, 0).map_err(|e| format!("{}: {e}", db.display()))?;
        let stats = s.read(|r| r.stats(0));
        s.close();
        let stats = stats.map_err(|e| format!("{}: {e}", db.display()))?;
        if stats.messages > 0 && !force {
            return Err(format!(
                "{} holds {} messages; restore replaces that store only with --force",
                db.display(),
                stats.messages
            ));
        }
    }
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let scratch = Scratch::new(data, "restore")?;
    let (verify, files) = rebuild(path, pass, &scratch.0)?;
    let previous = if db.exists() {
        let keep = data.join(format!("{}.before-restore", store::DB_FILE));
        let _ = std::fs::remove_file(&keep);
        std::fs::hard_link(&db, &keep).map_err(|e| format!("{}: {e}", keep.display()))?;
        Some(keep)
    } else {
        None
    };
    std::fs::rename(scratch.0.join(store::DB_FILE), &db)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    sync_dir(data)?;
    let mut lines = Vec::new();
    for (place, mode, bytes) in files {
        let line = match place {
            FilePlace::Data(rel) => put_back(&data.join(rel), mode, &bytes, true)?,
            FilePlace::Abs(p) => put_back(&p, mode, &bytes, false)?,
            FilePlace::Config => match config_path {
                Some(p) => put_back(p, mode, &bytes, false)?,
                None => put_back(&data.join("letterbox.toml.restored"), mode, &bytes, true)?,
            },
        };
        lines.push(line);
    }
    Ok(RestoreReport {
        verify,
        previous,
        files: lines,
    })
}

/// How long a backup request over the control socket may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
