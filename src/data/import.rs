//! `letterbox import`: reads an mbox (or a directory of them) or a Maildir(++) tree,
//! turns each message into the mailboxes, flags and keywords it belongs to, and sends
//! batches to the store's writer, either through the running daemon's control socket or
//! directly when no daemon runs. Both paths end in [`apply_batch`].
//!
//! # Resuming
//! Every batch is one [`Op::Import`]: its messages and the source's new progress (the
//! mbox byte offset where the next message starts, or the number of Maildir files done)
//! commit together, and the op refuses to run unless the recorded progress is where the
//! batch starts. A re-run after a kill therefore starts at the first message not
//! committed: nothing twice, nothing missed. A finished source is remembered, so
//! importing it again adds nothing.
//!
//! # The stream to the daemon
//! On one control-socket connection: the request line `{"cmd":"import",...}`; the daemon
//! answers a [`Response`] line carrying the progress recorded so far. Then per batch the
//! client sends a JSON [`BatchHeader`] line (at most [`MAX_HEADER`] bytes) followed by the
//! message bytes it announces (together at most [`MAX_BATCH_BYTES`] plus one message of
//! the size limit), and the daemon answers one [`Response`] line after the commit. Either
//! side holds one batch at a time. An empty line ends the stream.
//!
//! # Google Takeout (`X-Gmail-Labels`)
//! `Inbox` → INBOX, `Sent` → Sent, `Drafts` → Drafts (and `\Draft`), `Spam` → Junk,
//! `Trash` → Trash, `Archived` → Archive, `Starred` → `\Flagged`, `Unread` → not `\Seen`
//! (everything else is `\Seen`), `Important` → the `$Important` keyword (RFC 8457),
//! `Category Social` (and the other tabs) → a keyword `$CategorySocial`, `Opened` →
//! nothing (it is the absence of `Unread`). Any other label is a mailbox of that name
//! (`/` nests). A message with no mailbox label goes to Archive ("All Mail"). A message
//! with several labels is stored once and appears in each mailbox.
//!
//! # Flags in an mbox
//! `Status:` (`R` → `\Seen`), `X-Status:` (`A` answered, `F` flagged, `T` draft,
//! `D` deleted) and `X-Keywords:` (space or comma separated) are read and removed from
//! the stored message (as Dovecot does); when a message has `Status:`, it decides the
//! flags and keywords instead of the labels. Without either, a message is unseen.
//! Messages are stored with CRLF line ends (IMAP's form), whatever the file uses.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{maildir, mbox};
use crate::control::{Request, Response};
use crate::store::{self, Imported, NewMessage, Op, Store, flag};

/// A batch is sent once it holds this many message bytes ...
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// ... or this many messages.
pub const MAX_BATCH_MESSAGES: usize = 1000;
/// Largest batch header line.
pub const MAX_HEADER: usize = 1024 * 1024;
/// How the file is read.
const CHUNK: usize = 64 * 1024;

/// One message of a batch, as announced in the header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Bytes that follow for it.
    pub len: usize,
    /// Target mailboxes.
    pub mailboxes: Vec<String>,
    /// System flag bits.
    pub flags: u8,
    /// Keywords.
    pub keywords: Vec<String>,
    /// INTERNALDATE, unix seconds.
    pub date: i64,
}

/// The header line of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    /// Progress before the batch.
    pub from: u64,
    /// Progress after it.
    pub to: u64,
    /// The messages, in order.
    pub messages: Vec<MessageMeta>,
    /// Mailboxes to create even if no message goes there (empty ones of an export).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create: Vec<String>,
}

/// A batch with its bytes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Progress before.
    pub from: u64,
    /// Progress after.
    pub to: u64,
    /// (meta, message bytes).
    pub items: Vec<(MessageMeta, Vec<u8>)>,
    /// The progress after each message (client side only: to retry one by one).
    pub ends: Vec<u64>,
    /// Mailboxes to create even if empty.
    pub create: Vec<String>,
}

impl Batch {
    fn bytes(&self) -> usize {
        self.items.iter().map(|(_, b)| b.len()).sum()
    }
}

/// Where a message goes, decided from its header and the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Mailboxes.
    pub mailboxes: Vec<String>,
    /// Flags.
    pub flags: u8,
    /// Keywords.
    pub keywords: Vec<String>,
    /// The message to store (CRLF, without `Status:`/`X-Status:`/`X-Keywords:`).
    pub raw: Vec<u8>,
}

/// Header fields of the top-level header: (name, unfolded value), and the header length.
fn header_fields(raw: &[u8]) -> (Vec<(String, String, std::ops::Range<usize>)>, usize) {
    let mut out: Vec<(String, String, std::ops::Range<usize>)> = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |n| pos + n + 1);
        let line = &raw[pos..end];
        let text = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if text.is_empty() {
            return (out, end);
        }
        if matches!(text[0], b' ' | b'\t') {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(String::from_utf8_lossy(text).trim());
                last.2.end = end;
            }
        } else if let Some(colon) = text.iter().position(|&b| b == b':') {
            out.push((
                String::from_utf8_lossy(&text[..colon]).trim().to_string(),
                String::from_utf8_lossy(&text[colon + 1..])
                    .trim()
                    .to_string(),
                pos..end,
            ));
        }
        pos = end;
    }
    (out, raw.len())
}

/// Splits `X-Gmail-Labels` at commas outside double quotes.
pub fn split_labels(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A label as a valid mailbox name (`*`, `%` and control characters become `_`, empty
/// hierarchy levels are dropped).
fn label_mailbox(label: &str) -> Option<String> {
    let clean: String = label
        .chars()
        .map(|c| {
            if c == '*' || c == '%' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let parts: Vec<&str> = clean
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The Takeout label mapping (see the module doc): (mailboxes, flags, keywords).
pub fn map_labels(labels: &[String]) -> (Vec<String>, u8, Vec<String>) {
    let mut boxes: Vec<String> = Vec::new();
    let mut flags = flag::SEEN;
    let mut kws: Vec<String> = Vec::new();
    let add = |v: &mut Vec<String>, s: String| {
        if !v.contains(&s) {
            v.push(s);
        }
    };
    for l in labels {
        match l.to_ascii_lowercase().as_str() {
            "inbox" => add(&mut boxes, "INBOX".into()),
            "sent" | "sent mail" => add(&mut boxes, "Sent".into()),
            "drafts" | "draft" => {
                add(&mut boxes, "Drafts".into());
                flags |= flag::DRAFT;
            }
            "spam" => add(&mut boxes, "Junk".into()),
            "trash" => add(&mut boxes, "Trash".into()),
            "archived" => add(&mut boxes, "Archive".into()),
            "starred" => flags |= flag::FLAGGED,
            "unread" => flags &= !flag::SEEN,
            "opened" => {}
            "important" => add(&mut kws, "$Important".into()),
            lower if lower.starts_with("category ") => {
                let name: String = l["category ".len()..]
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                if !name.is_empty() {
                    add(&mut kws, format!("$Category{name}"));
                }
            }
            _ => {
                if let Some(m) = label_mailbox(l) {
                    add(&mut boxes, m);
                }
            }
        }
    }
    if boxes.is_empty() {
        boxes.push("Archive".into());
    }
    (boxes, flags, kws)
}

/// LF → CRLF (bare LF only).
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Decides where an mbox message goes. `mailbox`: the `--mailbox` (or directory) name,
/// which wins over labels.
pub fn place_mbox(raw: &[u8], mailbox: Option<&str>) -> Placement {
    let (fields, _) = header_fields(raw);
    let get = |n: &str| {
        fields
            .iter()
            .find(|(k, _, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v, _)| v.as_str())
    };
    let labels = get("X-Gmail-Labels").map(split_labels);
    let status = get("Status");
    let (mut boxes, mut flags, mut kws) = match &labels {
        Some(l) => map_labels(l),
        None => (vec!["INBOX".to_string()], 0, Vec::new()),
    };
    if let Some(st) = status {
        flags = if st.contains('R') { flag::SEEN } else { 0 };
        kws.clear();
        for c in get("X-Status").unwrap_or("").chars() {
            flags |= match c {
                'A' => flag::ANSWERED,
                'F' => flag::FLAGGED,
                'T' => flag::DRAFT,
                'D' => flag::DELETED,
                _ => 0,
            };
        }
    }
    if let Some(k) = get("X-Keywords") {
        for w in k.split([' ', ',']).filter(|w| !w.is_empty()) {
            if !kws.iter().any(|x| x == w) {
                kws.push(w.to_string());
            }
        }
    }
    if let Some(m) = mailbox {
        boxes = vec![m.to_string()];
    }
    // Drop the flag headers from the stored copy.
    let mut stripped = Vec::with_capacity(raw.len());
    let mut at = 0;
    for (name, _, range) in &fields {
        if ["Status", "X-Status", "X-Keywords"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            stripped.extend_from_slice(&raw[at..range.start]);
            at = range.end;
        }
    }
    stripped.extend_from_slice(&raw[at..]);
    Placement {
        mailboxes: boxes,
        flags,
        keywords: kws,
        raw: to_crlf(&stripped),
    }
}

/// Runs one batch against the store: parses and hashes the messages, then commits them
/// with the progress. Returns the message rows added. Used by the daemon and by the CLI
/// when no daemon runs.
pub fn apply_batch(store: &Store, account: u64, source: &str, batch: Batch) -> store::Result<u64> {
    let messages = batch
        .items
        .into_iter()
        .map(|(meta, raw)| Imported {
            message: Arc::new(NewMessage::new(raw)),
            mailboxes: meta.mailboxes,
            flags: meta.flags,
            keywords: meta.keywords,
            internal_date: meta.date,
        })
        .collect();
    match store.write(Op::Import {
        account,
        source: source.to_string(),
        from: batch.from,
        to: batch.to,
        messages,
        create: batch.create,
    })? {
        store::Output::Id(n) => Ok(n),
        _ => Ok(0),
    }
}

fn account_of(store: &Store, address: &str) -> Result<u64, String> {
    store
        .read(|r| r.account_by_login(address))
        .map_err(|e| e.to_string())?
        .map(|a| a.id)
        .ok_or_else(|| format!("no account {address}"))
}

/// The daemon's side of an import stream (see the module doc), after the request line.
pub async fn serve_stream<R, W>(
    store: Store,
    address: String,
    source: String,
    max_message: usize,
    mut rd: R,
    mut wr: W,
) where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    async fn reply<W: tokio::io::AsyncWrite + Unpin>(wr: &mut W, r: &Response) -> bool {
        let mut out = serde_json::to_vec(r).unwrap_or_default();
        out.push(b'\n');
        wr.write_all(&out).await.is_ok()
    }
    let s = store.clone();
    let (a, src) = (address.clone(), source.clone());
    let begin = tokio::task::spawn_blocking(move || {
        let account = account_of(&s, &a)?;
        let done = s
            .read(|r| r.import_progress(account, &src))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((account, done))
    })
    .await
    .unwrap_or_else(|_| Err("internal error".into()));
    let account = match begin {
        Ok((account, done)) => {
            let r = ok_response("", serde_json::json!({ "progress": done }));
            if !reply(&mut wr, &r).await {
                return;
            }
            account
        }
        Err(e) => {
            let _ = reply(&mut wr, &err_response(e)).await;
            return;
        }
    };
    loop {
        let mut line = Vec::new();
        let n = (&mut rd)
            .take(MAX_HEADER as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match n {
            Ok(0) => return,
            Ok(_) if line == b"\n" => return,
            Ok(_) if line.len() > MAX_HEADER || !line.ends_with(b"\n") => {
                let _ = reply(&mut wr, &err_response("batch header too long")).await;
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        let header: BatchHeader = match serde_json::from_slice(&line) {
            Ok(h) => h,
            Err(e) => {
                let _ = reply(&mut wr, &err_response(format!("bad batch header: {e}"))).await;
                return;
            }
        };
        let total: usize = header.messages.iter().map(|m| m.len).sum();
        if header.messages.iter().any(|m| m.len > max_message)
            || total > MAX_BATCH_BYTES + max_message
        {
            let _ = reply(&mut wr, &err_response("batch too large")).await;
            return;
        }
        let mut batch = Batch {
            from: header.from,
            to: header.to,
            items: Vec::with_capacity(header.messages.len()),
            ends: Vec::new(),
            create: header.create,
        };
        for meta in header.messages {
            let mut buf = vec![0u8; meta.len];
            if rd.read_exact(&mut buf).await.is_err() {
                return;
            }
            batch.items.push((meta, buf));
        }
        let s = store.clone();
        let src = source.clone();
        let res = tokio::task::spawn_blocking(move || apply_batch(&s, account, &src, batch))
            .await
            .unwrap_or(Err(store::Error::Closed));
        let r = match res {
            Ok(rows) => ok_response("", serde_json::json!({ "rows": rows })),
            Err(e) => err_response(e.to_string()),
        };
        if !reply(&mut wr, &r).await {
            return;
        }
    }
}

fn ok_response(text: &str, data: serde_json::Value) -> Response {
    Response {
        ok: true,
        text: text.into(),
        data,
    }
}

fn err_response(text: impl Into<String>) -> Response {
    Response {
        ok: false,
        text: text.into(),
        data: serde_json::Value::Null,
    }
}

/// The CLI's end: the daemon's socket, or the store itself.
pub enum Sink {
    /// Through the running daemon.
    Daemon {
        /// Replies.
        rd: BufReader<UnixStream>,
        /// Requests.
        wr: UnixStream,
    },
    /// Straight into the store (no daemon runs).
    Direct {
        /// The store.
        store: Store,
        /// The account.
        account: u64,
    },
}

impl Sink {
    /// Opens the import of `source` for `address`; returns the sink and the progress
    /// recorded so far.
    pub fn begin(
        sock: &Path,
        open_store: impl FnOnce() -> Result<Store, String>,
        address: &str,
        source: &str,
    ) -> Result<(Sink, u64), String> {
        match UnixStream::connect(sock) {
            Ok(wr) => {
                let _ = wr.set_read_timeout(Some(Duration::from_secs(600)));
                let rd = BufReader::new(wr.try_clone().map_err(|e| e.to_string())?);
                let mut sink = Sink::Daemon { rd, wr };
                let req = Request::Import {
                    address: address.to_string(),
                    source: source.to_string(),
                };
                let mut line = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
                line.push(b'\n');
                let r = sink.round_trip(&line, &[])?;
                let done = r.data["progress"].as_u64().unwrap_or(0);
                Ok((sink, done))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                let store = open_store()?;
                let account = account_of(&store, address)?;
                let done = store
                    .read(|r| r.import_progress(account, source))
                    .map_err(|e| e.to_string())?;
                Ok((Sink::Direct { store, account }, done))
            }
            Err(e) => Err(format!(
                "cannot reach the daemon at {}: {e}",
                sock.display()
            )),
        }
    }

    fn round_trip(&mut self, line: &[u8], bodies: &[&[u8]]) -> Result<Response, String> {
        let Sink::Daemon { rd, wr } = self else {
            return Err("not connected".into());
        };
        let io = |e: std::io::Error| format!("the daemon's control socket: {e}");
        wr.write_all(line).map_err(io)?;
        for b in bodies {
            wr.write_all(b).map_err(io)?;
        }
        let mut resp = String::new();
        rd.take(MAX_HEADER as u64)
            .read_line(&mut resp)
            .map_err(io)?;
        if resp.is_empty() {
            return Err("the daemon closed the connection".into());
        }
        let r: Response =
            serde_json::from_str(&resp).map_err(|e| format!("bad reply from the daemon: {e}"))?;
        if r.ok { Ok(r) } else { Err(r.text) }
    }

    /// Sends one batch; returns the message rows added.
    pub fn send(&mut self, source: &str, batch: Batch) -> Result<u64, String> {
        match self {
            Sink::Direct { store, account } => {
                apply_batch(store, *account, source, batch).map_err(|e| e.to_string())
            }
            Sink::Daemon { .. } => {
                let header = BatchHeader {
                    from: batch.from,
                    to: batch.to,
                    messages: batch.items.iter().map(|(m, _)| m.clone()).collect(),
                    create: batch.create.clone(),
                };
                let mut line = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
                line.push(b'\n');
                let bodies: Vec<&[u8]> = batch.items.iter().map(|(_, b)| b.as_slice()).collect();
                let r = self.round_trip(&line, &bodies)?;
                Ok(r.data["rows"].as_u64().unwrap_or(0))
            }
        }
    }

    /// Ends the stream (and closes a store opened here).
    pub fn close(self) {
        match self {
            Sink::Daemon { mut wr, .. } => {
                let _ = wr.write_all(b"\n");
            }
            Sink::Direct { store, .. } => store.close(),
        }
    }
}

/// What to import.
#[derive(Debug, Clone)]
pub enum Source {
    /// An mbox file, or a directory of `*.mbox` files (one mailbox each, named by the
    /// path, as `letterbox export --mbox` writes them).
    Mbox(PathBuf),
    /// A Maildir(++) tree.
    Maildir(PathBuf),
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Messages read from the source in this run.
    pub messages: u64,
    /// Message rows added (a message in three mailboxes counts three).
    pub rows: u64,
    /// Bytes of the source read in this run.
    pub bytes: u64,
    /// Messages skipped because an earlier run committed them.
    pub already: bool,
}

/// Options of a run.
pub struct Options<'a> {
    /// Socket of the daemon.
    pub sock: PathBuf,
    /// Opens the store when no daemon runs.
    pub open_store: &'a dyn Fn() -> Result<Store, String>,
    /// The account.
    pub address: String,
    /// `--mailbox`.
    pub mailbox: Option<String>,
    /// Largest message.
    pub max_message: usize,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// Imports `source`; the error is one line naming the file and the place.
pub fn run(opts: &Options<'_>, source: &Source) -> Result<Totals, String> {
    let mut totals = Totals::default();
    match source {
        Source::Mbox(p) if p.is_dir() => {
            for (file, mailbox) in mbox_files(p)? {
                let mb = match &opts.mailbox {
                    Some(parent) => format!("{parent}/{mailbox}"),
                    None => mailbox,
                };
                let t = import_mbox(opts, &file, Some(&mb))?;
                totals.messages += t.messages;
                totals.rows += t.rows;
                totals.bytes += t.bytes;
            }
            Ok(totals)
        }
        Source::Mbox(p) => import_mbox(opts, p, opts.mailbox.as_deref()),
        Source::Maildir(p) => import_maildir(opts, p),
    }
}

/// Decodes an exported file-name component (`%2E` for a leading dot, `%25` for `%`).
pub fn unescape_component(c: &str) -> String {
    c.replace("%2E", ".").replace("%25", "%")
}

/// Escapes a mailbox-name component for a file name (a leading `.` and `%`).
pub fn escape_component(c: &str) -> String {
    let c = c.replace('%', "%25");
    match c.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => c,
    }
}

/// The `*.mbox` files under `dir`, sorted, with their mailbox names.
fn mbox_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut rounds = 0;
    while let Some(d) = stack.pop() {
        rounds += 1;
        if rounds > 100_000 {
            return Err(format!("{}: too many directories", dir.display()));
        }
        let rd = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in rd {
            let e = e.map_err(|e| format!("{}: {e}", d.display()))?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".mbox"))
            {
                let rel = p
                    .parent()
                    .and_then(|par| par.strip_prefix(dir).ok())
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| unescape_component(&c.as_os_str().to_string_lossy()))
                    .collect();
                parts.push(unescape_component(stem));
                out.push((p, parts.join("/")));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(format!(
            "{}: no *.mbox files in this directory",
            dir.display()
        ));
    }
    Ok(out)
}

fn source_key(kind: &str, path: &Path, mailbox: Option<&str>) -> Result<String, String> {
    let canon = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!(
        "{kind}:{}{}",
        canon.display(),
        mailbox.map(|m| format!(" -> {m}")).unwrap_or_default()
    ))
}

fn bar(opts: &Options<'_>, len: u64, bytes: bool) -> indicatif::ProgressBar {
    if !opts.progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let tpl = if bytes {
        "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} eta {eta}"
    } else {
        "{bar:30} {pos}/{len} messages {per_sec} {msg} eta {eta}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(tpl) {
        pb.set_style(style);
    }
    pb
}

/// Where in a source progress `n` is: a byte of an mbox, a message of a Maildir.
fn place(path: &Path, n: u64) -> String {
    if path.is_dir() {
        format!("message {}", n + 1)
    } else {
        format!("byte {n}")
    }
}

/// The place of a failure: which file, where, and how far the import got.
fn fail(path: &Path, place: &str, what: &str, done: &Totals) -> String {
    format!(
        "{}: {place}: {what} ({} messages imported in this run; run the same command again to resume after fixing it)",
        path.display(),
        done.messages
    )
}

fn import_mbox(opts: &Options<'_>, path: &Path, mailbox: Option<&str>) -> Result<Totals, String> {
    let key = source_key("mbox", path, mailbox)?;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let (mut sink, start) = Sink::begin(&opts.sock, opts.open_store, &opts.address, &key)?;
    let mut totals = Totals::default();
    if start >= len && len > 0 {
        sink.close();
        totals.already = true;
        return Ok(totals);
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(start))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let pb = bar(opts, len, true);
    pb.set_position(start);
    let mut splitter = mbox::Splitter::new(start, opts.max_message);
    let mut batch = Batch {
        from: start,
        to: start,
        ..Batch::default()
    };
    if len == 0 {
        // An empty mbox of an export: its mailbox still exists.
        batch.create.extend(mailbox.map(str::to_string));
        flush(&mut sink, &key, &mut batch, &mut totals, path, &pb)?;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut eof = false;
    let result = (|| -> Result<(), String> {
        loop {
            let next = if eof {
                splitter.finish()
            } else {
                splitter.next_message()
            };
            let msg = match next {
                Ok(Some(m)) => m,
                Ok(None) if eof => break,
                Ok(None) => {
                    let n = file
                        .read(&mut buf)
                        .map_err(|e| fail(path, "reading", &e.to_string(), &totals))?;
                    if n == 0 {
                        eof = true;
                    } else {
                        splitter.feed(&buf[..n]);
                    }
                    continue;
                }
                Err(e) => {
                    // Commit what was read before the bad place, then report it.
                    flush(&mut sink, &key, &mut batch, &mut totals, path, &pb)?;
                    return Err(format!(
                        "{}: {e} ({} messages imported in this run; run the same command again to resume after fixing it)",
                        path.display(),
                        totals.messages
                    ));
                }
            };
            let place = place_mbox(&msg.bytes, mailbox);
            let date = msg
                .date
                .or_else(|| header_date(&place.raw))
                .unwrap_or_else(store::now_unix);
            batch.to = msg.end;
            batch.ends.push(msg.end);
            batch.items.push((
                MessageMeta {
                    len: place.raw.len(),
                    mailboxes: place.mailboxes,
                    flags: place.flags,
                    keywords: place.keywords,
                    date,
                },
                place.raw,
            ));
            if batch.bytes() >= MAX_BATCH_BYTES || batch.items.len() >= MAX_BATCH_MESSAGES {
                flush(&mut sink, &key, &mut batch, &mut totals, path, &pb)?;
            }
        }
        flush(&mut sink, &key, &mut batch, &mut totals, path, &pb)
    })();
    pb.finish_and_clear();
    sink.close();
    result.map(|_| totals)
}

fn flush(
    sink: &mut Sink,
    key: &str,
    batch: &mut Batch,
    totals: &mut Totals,
    path: &Path,
    pb: &indicatif::ProgressBar,
) -> Result<(), String> {
    if batch.items.is_empty() && batch.create.is_empty() {
        return Ok(());
    }
    let to = batch.to;
    let b = std::mem::replace(
        batch,
        Batch {
            from: to,
            to,
            ..Batch::default()
        },
    );
    let from = b.from;
    let n = b.items.len() as u64;
    let parts = if b.items.len() > 1 {
        // Kept to retry one by one when the quota refuses the whole batch.
        Some((b.items.clone(), b.ends.clone()))
    } else {
        None
    };
    match sink.send(key, b) {
        Ok(rows) => {
            totals.messages += n;
            totals.rows += rows;
            totals.bytes += to - from;
        }
        Err(e) if e.contains("quota") && parts.is_some() => {
            // Store what fits, one message a commit, so the error says how far it got.
            let (items, ends) = parts.unwrap_or_default();
            let mut at = from;
            for (item, end) in items.into_iter().zip(ends) {
                let one = Batch {
                    from: at,
                    to: end,
                    items: vec![item],
                    ..Batch::default()
                };
                let rows = sink
                    .send(key, one)
                    .map_err(|e| fail(path, &place(path, at), &e, totals))?;
                totals.messages += 1;
                totals.rows += rows;
                totals.bytes += end - at;
                at = end;
            }
        }
        Err(e) => {
            return Err(fail(path, &place(path, from), &e, totals));
        }
    }
    pb.set_position(to);
    pb.set_message(format!("{} messages", totals.messages));
    Ok(())
}

/// The `Date:` header as unix seconds, for messages whose source gives no date.
fn header_date(raw: &[u8]) -> Option<i64> {
    let (fields, _) = header_fields(raw);
    let v = fields
        .iter()
        .find(|(k, _, _)| k.eq_ignore_ascii_case("Date"))?
        .1
        .clone();
    mail_parser::DateTime::parse_rfc822(&v).map(|d| d.to_timestamp())
}

fn import_maildir(opts: &Options<'_>, root: &Path) -> Result<Totals, String> {
    let key = source_key("maildir", root, opts.mailbox.as_deref())?;
    let (entries, folders) = maildir::list(root)?;
    let (mut sink, start) = Sink::begin(&opts.sock, opts.open_store, &opts.address, &key)?;
    let mut totals = Totals::default();
    if start >= entries.len() as u64 && !entries.is_empty() {
        sink.close();
        totals.already = true;
        return Ok(totals);
    }
    let pb = bar(opts, entries.len() as u64, false);
    pb.set_position(start);
    let mut keywords: std::collections::HashMap<PathBuf, Vec<(u8, String)>> =
        std::collections::HashMap::new();
    let mut batch = Batch {
        from: start,
        to: start,
        ..Batch::default()
    };
    // Every folder exists afterwards, empty ones too.
    if opts.mailbox.is_none() {
        batch.create = folders;
    }
    let result = (|| -> Result<(), String> {
        flush(&mut sink, &key, &mut batch, &mut totals, root, &pb)?;
        for (i, e) in entries.iter().enumerate().skip(start as usize) {
            let folder = e
                .path
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let table = keywords.entry(folder.clone()).or_insert_with(|| {
                std::fs::read_to_string(folder.join("dovecot-keywords"))
                    .map(|t| maildir::parse_keywords(&t))
                    .unwrap_or_default()
            });
            let name = e
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (flags, kws) = maildir::parse_info(&name, table);
            let read = |e: &maildir::Entry| -> Result<(Vec<u8>, i64), String> {
                let f = std::fs::File::open(&e.path).map_err(|x| x.to_string())?;
                let meta = f.metadata().map_err(|x| x.to_string())?;
                if meta.is_dir() {
                    return Err("is a directory, not a message file".into());
                }
                if meta.len() > opts.max_message as u64 {
                    return Err(format!("larger than {} bytes", opts.max_message));
                }
                let mut raw = Vec::with_capacity(meta.len() as usize);
                f.take(opts.max_message as u64 + 1)
                    .read_to_end(&mut raw)
                    .map_err(|x| x.to_string())?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or_else(store::now_unix, |d| d.as_secs() as i64);
                Ok((raw, mtime))
            };
            let (raw, mtime) = match read(e) {
                Ok(x) => x,
                Err(why) => {
                    flush(&mut sink, &key, &mut batch, &mut totals, root, &pb)?;
                    return Err(format!(
                        "{}: message {} of the Maildir: cannot read: {why} ({} messages imported in this run; run the same command again to resume after fixing it)",
                        e.path.display(),
                        i + 1,
                        totals.messages
                    ));
                }
            };
            let raw = to_crlf(&raw);
            let mailbox = opts.mailbox.clone().unwrap_or_else(|| e.mailbox.clone());
            batch.to = i as u64 + 1;
            batch.ends.push(batch.to);
            batch.items.push((
                MessageMeta {
                    len: raw.len(),
                    mailboxes: vec![mailbox],
                    flags,
                    keywords: kws,
                    date: mtime,
                },
                raw,
            ));
            if batch.bytes() >= MAX_BATCH_BYTES || batch.items.len() >= MAX_BATCH_MESSAGES {
                flush(&mut sink, &key, &mut batch, &mut totals, root, &pb)?;
            }
        }
        flush(&mut sink, &key, &mut batch, &mut totals, root, &pb)
    })();
    pb.finish_and_clear();
    sink.close();
    result.map(|_| totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takeout_labels() {
        let l = split_labels("Inbox,Important,\"Work, old\",Opened,Category Social,Starred");
        assert_eq!(
            l,
            [
                "Inbox",
                "Important",
                "Work, old",
                "Opened",
                "Category Social",
                "Starred"
            ]
        );
        let (b, f, k) = map_labels(&l);
        assert_eq!(b, ["INBOX", "Work, old"]);
        assert_eq!(f, flag::SEEN | flag::FLAGGED);
        assert_eq!(k, ["$Important", "$CategorySocial"]);
        let (b, f, _) = map_labels(&["Unread".into(), "Trips/2024".into(), "Sent".into()]);
        assert_eq!(b, ["Trips/2024", "Sent"]);
        assert_eq!(f, 0);
        let (b, f, _) = map_labels(&["Opened".into(), "a//*b".into()]);
        assert_eq!(b, ["a/_b"]);
        assert_eq!(f, flag::SEEN);
        assert_eq!(map_labels(&[]).0, ["Archive"]);
    }

    #[test]
    fn placement_from_labels_and_status() {
        let raw = b"X-Gmail-Labels: Inbox,\n Unread,Family\nSubject: hi\n\nbody\n";
        let p = place_mbox(raw, None);
        assert_eq!(p.mailboxes, ["INBOX", "Family"]);
        assert_eq!(p.flags, 0);
        assert_eq!(p.raw, to_crlf(raw));
        let raw = b"Subject: hi\r\nStatus: RO\r\nX-Status: AF\r\nX-Keywords: $Important work\r\nX-Gmail-Labels: Unread,Inbox\r\n\r\nStatus: body line\r\n";
        let p = place_mbox(raw, Some("Old"));
        assert_eq!(p.mailboxes, ["Old"]);
        assert_eq!(p.flags, flag::SEEN | flag::ANSWERED | flag::FLAGGED);
        assert_eq!(p.keywords, ["$Important", "work"]);
        assert_eq!(
            p.raw,
            b"Subject: hi\r\nX-Gmail-Labels: Unread,Inbox\r\n\r\nStatus: body line\r\n"
        );
        let p = place_mbox(b"Subject: x\n\ny", None);
        assert_eq!(
            (p.mailboxes.as_slice(), p.flags),
            (&["INBOX".to_string()][..], 0)
        );
        assert_eq!(p.raw, b"Subject: x\r\n\r\ny");
    }

    #[test]
    fn crlf_conversion_keeps_existing_crlf() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd\n"), b"a\r\nb\r\nc\rd\r\n");
    }

    #[test]
    fn file_name_components() {
        for c in ["..", ".hidden", "100%", "plain"] {
            let e = escape_component(c);
            assert!(!e.starts_with('.'), "{e}");
            assert_eq!(unescape_component(&e), c);
        }
    }
}
