//! Maildir and Maildir++: folder names, the `:2,` info flags, Dovecot's
//! `dovecot-keywords` file (pure functions), and the listing of a tree (file system).
//!
//! Layout read and written (as Courier and Dovecot do): the root holds `cur/`, `new/`,
//! `tmp/` (INBOX), and each other mailbox is a directory `.A.B` for mailbox `A/B`
//! (Maildir++). A `.` inside a mailbox name is written `&AC4-` (its modified UTF-7 form,
//! as Dovecot does with a `.` separator), and a `&` as `&-`.
//!
//! Flags (cr.yp.to/proto/maildir.html): the file name ends in `:2,` followed by letters
//! in ASCII order: `D` draft, `F` flagged, `P` passed (forwarded: `$Forwarded`),
//! `R` replied, `S` seen, `T` trashed (`\Deleted`); lower-case `a`..`z` are keywords
//! numbered in `dovecot-keywords` (lines `N name`).

use std::path::{Path, PathBuf};

use crate::store::flag;

/// The mailbox name of a Maildir++ folder directory (`.A.B` → `A/B`), or `None` when
/// the directory is not a folder.
pub fn folder_to_mailbox(dir: &str) -> Option<String> {
    let rest = dir.strip_prefix('.')?;
    if rest.is_empty() || rest == "." {
        return None;
    }
    let parts: Vec<String> = rest.split('.').map(unescape).collect();
    if parts.iter().any(String::is_empty) {
        return None;
    }
    Some(parts.join("/"))
}

/// The Maildir++ directory of a mailbox (`A/B` → `.A.B`); INBOX is the root (`None`).
pub fn mailbox_to_folder(name: &str) -> Option<String> {
    if name == "INBOX" {
        return None;
    }
    let parts: Vec<String> = name
        .split('/')
        .map(|p| p.replace('&', "&-").replace('.', "&AC4-"))
        .collect();
    Some(format!(".{}", parts.join(".")))
}

fn unescape(p: &str) -> String {
    p.replace("&AC4-", ".").replace("&-", "&")
}

/// Flags and keyword letters of a file name's info (`...:2,FRS` or Dovecot's `,S`
/// spelling with `!`/`;` avoided on some file systems: `:2,` only).
pub fn parse_info(file_name: &str, keywords: &[(u8, String)]) -> (u8, Vec<String>) {
    let Some((_, info)) = file_name.rsplit_once(":2,") else {
        return (0, Vec::new());
    };
    let mut flags = 0;
    let mut kws = Vec::new();
    for c in info.bytes() {
        match c {
            b'D' => flags |= flag::DRAFT,
            b'F' => flags |= flag::FLAGGED,
            b'R' => flags |= flag::ANSWERED,
            b'S' => flags |= flag::SEEN,
            b'T' => flags |= flag::DELETED,
            b'P' => kws.push("$Forwarded".to_string()),
            b'a'..=b'z' => {
                if let Some((_, k)) = keywords.iter().find(|(n, _)| *n == c - b'a') {
                    kws.push(k.clone());
                }
            }
            _ => {}
        }
    }
    (flags, kws)
}

/// The unique part of a file name (before the info): the same message keeps it when a
/// client moves it from `new/` to `cur/` or changes its flags.
pub fn unique_part(file_name: &str) -> &str {
    file_name.split_once(':').map_or(file_name, |(u, _)| u)
}

/// The `:2,` info for `flags` and `keywords`, adding keywords not yet numbered to
/// `numbered` (at most 26, Dovecot's limit; the rest are left out and counted in the
/// returned number).
pub fn make_info(flags: u8, keywords: &[String], numbered: &mut Vec<String>) -> (String, usize) {
    let mut letters = Vec::new();
    let mut dropped = 0;
    if flags & flag::DRAFT != 0 {
        letters.push(b'D');
    }
    if flags & flag::FLAGGED != 0 {
        letters.push(b'F');
    }
    for k in keywords {
        if k.eq_ignore_ascii_case("$Forwarded") {
            letters.push(b'P');
            continue;
        }
        let i = match numbered.iter().position(|n| n == k) {
            Some(i) => i,
            None if numbered.len() < 26 => {
                numbered.push(k.clone());
                numbered.len() - 1
            }
            None => {
                dropped += 1;
                continue;
            }
        };
        letters.push(b'a' + i as u8);
    }
    if flags & flag::ANSWERED != 0 {
        letters.push(b'R');
    }
    if flags & flag::SEEN != 0 {
        letters.push(b'S');
    }
    if flags & flag::DELETED != 0 {
        letters.push(b'T');
    }
    letters.sort_unstable();
    letters.dedup();
    (format!(":2,{}", String::from_utf8_lossy(&letters)), dropped)
}

/// Parses a `dovecot-keywords` file: lines `N name`.
pub fn parse_keywords(text: &str) -> Vec<(u8, String)> {
    text.lines()
        .filter_map(|l| {
            let (n, name) = l.trim().split_once(' ')?;
            let n: u8 = n.parse().ok()?;
            (n < 26 && !name.is_empty()).then(|| (n, name.to_string()))
        })
        .collect()
}

/// Writes the `dovecot-keywords` text for keywords numbered in order.
pub fn keywords_file(numbered: &[String]) -> String {
    numbered
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{i} {k}\n"))
        .collect()
}

/// One message file of a Maildir tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The mailbox (`INBOX` for the root).
    pub mailbox: String,
    /// The file.
    pub path: PathBuf,
}

/// Lists every message file of the tree at `root` in a stable order (folders by name,
/// files by their unique part), so that a resumed import can skip the first N, and the
/// mailbox names of all folders. Holds one path per message in memory (about 100 bytes
/// each).
pub fn list(root: &Path) -> Result<(Vec<Entry>, Vec<String>), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut folders = vec![("INBOX".to_string(), root.to_path_buf())];
    if !root.join("cur").is_dir() && !root.join("new").is_dir() {
        return Err(format!(
            "{}: not a Maildir (no cur/ or new/ directory)",
            root.display()
        ));
    }
    let mut subs = Vec::new();
    for d in std::fs::read_dir(root).map_err(|e| err(root, e))? {
        let d = d.map_err(|e| err(root, e))?;
        let name = d.file_name().to_string_lossy().into_owned();
        if let Some(mb) = folder_to_mailbox(&name)
            && d.path().is_dir()
        {
            subs.push((mb, d.path()));
        }
    }
    subs.sort();
    folders.extend(subs);
    let names = folders.iter().map(|(n, _)| n.clone()).collect();
    let mut out = Vec::new();
    for (mailbox, dir) in folders {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            let d = dir.join(sub);
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err(&d, e)),
            };
            for f in rd {
                let f = f.map_err(|e| err(&d, e))?;
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                files.push((unique_part(&name).to_string(), f.path()));
            }
        }
        files.sort();
        out.extend(files.into_iter().map(|(_, path)| Entry {
            mailbox: mailbox.clone(),
            path,
        }));
    }
    Ok((out, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip() {
        for name in ["Work", "Work/Projects", "a.b/c&d", "Ünïcode/x"] {
            let dir = mailbox_to_folder(name).unwrap();
            assert_eq!(dir.matches('.').count(), name.matches('/').count() + 1);
            assert_eq!(folder_to_mailbox(&dir).as_deref(), Some(name));
        }
        assert_eq!(mailbox_to_folder("INBOX"), None);
        assert_eq!(
            folder_to_mailbox(".Sent.2024").as_deref(),
            Some("Sent/2024")
        );
        assert_eq!(folder_to_mailbox("cur"), None);
        assert_eq!(folder_to_mailbox(".."), None);
        assert_eq!(folder_to_mailbox(".a..b"), None);
    }

    #[test]
    fn info_round_trips_with_keywords() {
        let mut numbered = Vec::new();
        let kws = vec!["$Important".to_string(), "work".into(), "$Forwarded".into()];
        let (info, dropped) = make_info(
            flag::SEEN | flag::FLAGGED | flag::ANSWERED,
            &kws,
            &mut numbered,
        );
        assert_eq!(dropped, 0);
        assert_eq!(info, ":2,FPRSab");
        let table = parse_keywords(&keywords_file(&numbered));
        let (flags, got) = parse_info(&format!("123.x.host{info}"), &table);
        assert_eq!(flags, flag::SEEN | flag::FLAGGED | flag::ANSWERED);
        let mut got = got;
        got.sort();
        let mut want = kws.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(parse_info("123.x.host", &table), (0, vec![]));
        assert_eq!(parse_info("1.x:2,T", &[]).0, flag::DELETED);
        assert_eq!(unique_part("1.x.y:2,S"), "1.x.y");
    }

    #[test]
    fn keywords_file_ignores_junk() {
        assert_eq!(
            parse_keywords("0 a\nnot a line\n30 big\n1 b\n"),
            vec![(0, "a".into()), (1, "b".into())]
        );
    }
}
