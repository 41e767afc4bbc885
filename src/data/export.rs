//! `letterbox export`: writes an account's mailboxes as one mboxrd file per mailbox or
//! as a Maildir++ tree, from one consistent read snapshot of the store. It runs where the
//! store is open: inside the daemon when one runs (the CLI asks over the control socket
//! and shows the progress the daemon reports), else in the CLI.
//!
//! mbox: `DIR/INBOX.mbox`, `DIR/Work.mbox`, and a nested mailbox `Work/2024` as
//! `DIR/Work/2024.mbox` (the hierarchy as subdirectories, which mutt's and Thunderbird's
//! folder browsers show as such). A name component starting with `.` or holding `%` is
//! escaped (`%2E`, `%25`) so no component is hidden or leaves `DIR`. Each message gets a
//! `From ` line with its INTERNALDATE, `Status:` (`R` when `\Seen`, always `O`),
//! `X-Status:` (`A` answered, `F` flagged, `T` draft, `D` deleted) and `X-Keywords:`
//! (space separated); bodies have LF line ends and `>From ` quoting (mboxrd).
//!
//! Maildir: Maildir++ as [`super::maildir`] describes, file names
//! `DATE.LBOXuUID.letterbox:2,FLAGS`, the file's mtime set to INTERNALDATE, keywords
//! numbered per folder in `dovecot-keywords` (26 at most, Dovecot's limit).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::import::escape_component;
use super::{maildir, mbox};
use crate::store::{self, Store, flag};

/// The output form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One mboxrd file per mailbox.
    Mbox,
    /// A Maildir++ tree.
    Maildir,
}

/// Totals of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Mailboxes written.
    pub mailboxes: u64,
    /// Messages written.
    pub messages: u64,
    /// Bytes of messages.
    pub bytes: u64,
    /// Keywords left out of Maildir file names (over 26 in a folder).
    pub dropped_keywords: u64,
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

/// The `From ` line sender: the first address of the `From:` header, else MAILER-DAEMON.
fn sender(raw: &[u8]) -> String {
    let head = &raw[..raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len().min(64 * 1024))];
    let text = String::from_utf8_lossy(head);
    for line in text.lines() {
        let Some(v) = line
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("from:"))
            .map(|_| &line[5..])
        else {
            continue;
        };
        let cand = match (v.find('<'), v.find('>')) {
            (Some(a), Some(b)) if a < b => &v[a + 1..b],
            _ => v.trim(),
        };
        if cand.contains('@') && !cand.is_empty() && cand.bytes().all(|b| b.is_ascii_graphic()) {
            return cand.to_string();
        }
    }
    String::new()
}

/// The `Status:`/`X-Status:`/`X-Keywords:` lines for a message.
pub fn flag_headers(flags: u8, keywords: &[String]) -> Vec<u8> {
    let mut h = String::from("Status: ");
    if flags & flag::SEEN != 0 {
        h.push('R');
    }
    h.push_str("O\n");
    let mut x = String::new();
    for (bit, c) in [
        (flag::ANSWERED, 'A'),
        (flag::FLAGGED, 'F'),
        (flag::DRAFT, 'T'),
        (flag::DELETED, 'D'),
    ] {
        if flags & bit != 0 {
            x.push(c);
        }
    }
    if !x.is_empty() {
        h.push_str(&format!("X-Status: {x}\n"));
    }
    if !keywords.is_empty() {
        h.push_str(&format!("X-Keywords: {}\n", keywords.join(" ")));
    }
    h.into_bytes()
}

/// The relative path of a mailbox's mbox file.
pub fn mbox_path(name: &str) -> PathBuf {
    let parts: Vec<String> = name.split('/').map(escape_component).collect();
    let mut p = PathBuf::new();
    for (i, c) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            p.push(format!("{c}.mbox"));
        } else {
            p.push(c);
        }
    }
    p
}

fn to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Exports `address` into `dir` (created if missing); `progress(done, total)` is called
/// after each message.
pub fn run(
    store: &Store,
    address: &str,
    dir: &Path,
    format: Format,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Totals, String> {
    let e = |e: store::Error| e.to_string();
    store
        .read(|r| {
            let acct = r
                .account_by_login(address)?
                .ok_or_else(|| store::Error::NotFound(address.to_string()))?;
            let boxes = r.mailboxes(acct.id)?;
            let total: u64 = boxes.iter().map(|b| u64::from(b.exists)).sum();
            let mut t = Totals::default();
            std::fs::create_dir_all(dir).map_err(|x| store::Error::Invalid(io(dir)(x)))?;
            for mb in boxes {
                let rows = r.messages(mb.id)?;
                let res = match format {
                    Format::Mbox => write_mbox(r, dir, &mb.name, &rows, &mut t, total, progress),
                    Format::Maildir => write_maildir(r, dir, &mb, &rows, &mut t, total, progress),
                };
                res.map_err(store::Error::Invalid)?;
                t.mailboxes += 1;
            }
            Ok(t)
        })
        .map_err(e)
}

fn write_mbox(
    r: &store::Reader,
    dir: &Path,
    name: &str,
    rows: &[(u32, store::MessageRow)],
    t: &mut Totals,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), String> {
    let path = dir.join(mbox_path(name));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let f = File::create(&path).map_err(io(&path))?;
    let mut w = BufWriter::with_capacity(256 * 1024, f);
    let mut out = Vec::new();
    for (uid, row) in rows {
        let raw = r
            .blob(&row.blob)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{name} UID {uid}: message body missing from the store"))?;
        out.clear();
        mbox::write_message(
            &mut out,
            &sender(&raw),
            row.internal_date,
            &flag_headers(row.flags, &row.keywords),
            &to_lf(&raw),
        );
        w.write_all(&out).map_err(io(&path))?;
        t.messages += 1;
        t.bytes += raw.len() as u64;
        progress(t.messages, total);
    }
    let f = w.into_inner().map_err(|e| io(&path)(e.into_error()))?;
    f.sync_all().map_err(io(&path))?;
    Ok(())
}

fn write_maildir(
    r: &store::Reader,
    dir: &Path,
    mb: &store::Mailbox,
    rows: &[(u32, store::MessageRow)],
    t: &mut Totals,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), String> {
    let folder = match maildir::mailbox_to_folder(&mb.name) {
        Some(f) => dir.join(f),
        None => dir.to_path_buf(),
    };
    for sub in ["cur", "new", "tmp"] {
        let d = folder.join(sub);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
    }
    if folder != dir {
        let m = folder.join("maildirfolder");
        File::create(&m).map_err(io(&m))?;
    }
    let mut numbered = Vec::new();
    for (uid, row) in rows {
        let raw = r
            .blob(&row.blob)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} UID {uid}: message body missing from the store", mb.name))?;
        let (info, dropped) = maildir::make_info(row.flags, &row.keywords, &mut numbered);
        t.dropped_keywords += dropped as u64;
        let name = format!(
            "{}.L{}U{}.letterbox{info}",
            row.internal_date.max(0),
            mb.id,
            uid
        );
        let path = folder.join("cur").join(name);
        let mut f = File::create(&path).map_err(io(&path))?;
        f.write_all(&to_lf(&raw)).map_err(io(&path))?;
        let mtime = UNIX_EPOCH + Duration::from_secs(row.internal_date.max(0) as u64);
        f.set_modified(mtime).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        t.messages += 1;
        t.bytes += raw.len() as u64;
        progress(t.messages, total);
    }
    if !numbered.is_empty() {
        let k = folder.join("dovecot-keywords");
        std::fs::write(&k, maildir::keywords_file(&numbered)).map_err(io(&k))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_paths_nest_and_escape() {
        assert_eq!(mbox_path("INBOX"), PathBuf::from("INBOX.mbox"));
        assert_eq!(mbox_path("Work/2024"), PathBuf::from("Work/2024.mbox"));
        assert_eq!(mbox_path("../x"), PathBuf::from("%2E./x.mbox"));
        assert_eq!(
            mbox_path(".hidden/50%"),
            PathBuf::from("%2Ehidden/50%25.mbox")
        );
    }

    #[test]
    fn flags_round_trip_through_the_importer() {
        let kws = vec!["$Important".to_string(), "work".into()];
        for flags in 0..32u8 {
            let mut msg = flag_headers(flags, &kws);
            msg.extend_from_slice(b"Subject: x\n\nbody\n");
            let p = super::super::import::place_mbox(&msg, None);
            assert_eq!(p.flags, flags);
            assert_eq!(p.keywords, kws);
            assert_eq!(p.raw, b"Subject: x\r\n\r\nbody\r\n");
        }
    }

    #[test]
    fn sender_from_header() {
        assert_eq!(sender(b"From: Ann <ann@x.org>\r\n\r\n"), "ann@x.org");
        assert_eq!(sender(b"from: bob@y.org\r\n\r\n"), "bob@y.org");
        assert_eq!(sender(b"Subject: x\r\n\r\nFrom: c@d\r\n"), "");
    }
}
