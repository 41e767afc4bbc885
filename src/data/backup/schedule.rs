//! Scheduled backups (`[backup] dir schedule keep full_every passphrase_file`): when the
//! next one is due, the file names, whether it is full or incremental, which old files to
//! delete, and when fault 6 shows, as pure functions of the time and the directory's file
//! names; plus the daemon task that runs them and the [`Tracker`] that `letterbox status`
//! reads.
//!
//! A full backup is `letterbox-<stamp>.backup`; an incremental one names its base in its
//! own file name, `letterbox-<stamp>.on-<base stamp>.backup`, so pruning knows which
//! full backups the kept incrementals need without decrypting anything.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{Passphrase, write_backup};
use crate::config::Config;
use crate::hw::health::FaultClass;
use crate::hw::supervisor::Hw;
use crate::store::Store;

/// With a schedule set, no good backup for this long is fault 6.
pub const STALE_AFTER: i64 = 2 * 86_400;
/// A due time missed by more than this (the box was off, or the clock jumped at boot
/// before NTP) is skipped for the next one.
const MISSED_GRACE: i64 = 3600;
/// The task looks at the clock at least this often.
const TICK: Duration = Duration::from_secs(60);
/// Scheduled files are `letterbox-YYYYMMDD-HHMMSS.backup` (local time), incrementals
/// `letterbox-YYYYMMDD-HHMMSS.on-YYYYMMDD-HHMMSS.backup`.
const PREFIX: &str = "letterbox-";
const SUFFIX: &str = ".backup";
const ON: &str = ".on-";
/// `YYYYMMDD-HHMMSS`.
const STAMP: usize = 15;

/// The next unix time at local `hh:mm` strictly after `now`, for a local time that is
/// `offset` seconds ahead of UTC.
pub fn next_run(now: i64, offset: i64, (h, m): (u8, u8)) -> i64 {
    let local = now + offset;
    let day = local - local.rem_euclid(86_400);
    let mut at = day + i64::from(h) * 3600 + i64::from(m) * 60;
    if at <= local {
        at += 86_400;
    }
    at - offset
}

/// (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The file name of a scheduled backup taken at `now` (local time, sortable).
pub fn file_name(now: i64, offset: i64) -> String {
    let local = now + offset;
    let (y, mo, d) = civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    format!(
        "{PREFIX}{y:04}{mo:02}{d:02}-{:02}{:02}{:02}{SUFFIX}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn is_stamp(s: &str) -> bool {
    s.len() == STAMP
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// A scheduled backup's file name split into its time stamp and, for an incremental
/// one, its base's stamp.
pub fn parse_name(name: &str) -> Option<(&str, Option<&str>)> {
    let mid = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if mid.len() < STAMP || !mid.is_char_boundary(STAMP) {
        return None;
    }
    let (stamp, rest) = mid.split_at(STAMP);
    if !is_stamp(stamp) {
        return None;
    }
    if rest.is_empty() {
        return Some((stamp, None));
    }
    let base = rest.strip_prefix(ON)?;
    (is_stamp(base) && base < stamp).then_some((stamp, Some(base)))
}

/// Is `name` a scheduled backup's file name (full or incremental)?
pub fn is_backup_name(name: &str) -> bool {
    parse_name(name).is_some()
}

/// The full backup's file name for a stamp.
fn full_name(stamp: &str) -> String {
    format!("{PREFIX}{stamp}{SUFFIX}")
}

/// The file name of a scheduled incremental backup taken at `now` on the full backup
/// `base` (a full backup's file name).
pub fn incremental_name(now: i64, offset: i64, base: &str) -> Option<String> {
    let (b, None) = parse_name(base)? else {
        return None;
    };
    let full = file_name(now, offset);
    let (stamp, _) = parse_name(&full)?;
    (b < stamp).then(|| format!("{PREFIX}{stamp}{ON}{b}{SUFFIX}"))
}

/// Is a file with this name's time stamp already in `names`?
pub fn stamp_taken(names: &[String], name: &str) -> bool {
    let Some((stamp, _)) = parse_name(name) else {
        return false;
    };
    names
        .iter()
        .any(|n| parse_name(n).is_some_and(|(s, _)| s == stamp))
}

/// The full backup the next scheduled backup builds on, or `None` for a full one: the
/// newest full backup, unless it and the incrementals on it already make `full_every`.
pub fn plan(names: &[String], full_every: u32) -> Option<String> {
    let newest_full = names
        .iter()
        .filter_map(|n| parse_name(n).filter(|(_, b)| b.is_none()).map(|(s, _)| s))
        .max()?;
    let on_it = names
        .iter()
        .filter_map(|n| parse_name(n))
        .filter(|(s, b)| *b == Some(newest_full) && *s > newest_full)
        .count();
    (on_it + 1 < full_every as usize).then(|| full_name(newest_full))
}

/// The scheduled backups to delete so that the newest `keep` remain (names sort by time),
/// and with them every full backup that a kept incremental builds on.
pub fn to_prune(names: &[String], keep: u32) -> Vec<String> {
    let mut ours: Vec<(&str, Option<&str>, &String)> = names
        .iter()
        .filter_map(|n| parse_name(n).map(|(s, b)| (s, b, n)))
        .collect();
    ours.sort();
    let n = ours.len().saturating_sub(keep as usize);
    let needed: Vec<&str> = ours[n..].iter().filter_map(|(_, b, _)| *b).collect();
    ours[..n]
        .iter()
        .filter(|(s, b, _)| !(b.is_none() && needed.contains(s)))
        .map(|(_, _, name)| (*name).clone())
        .collect()
}

/// Fault 6's detail, or `None` when all is well: the last scheduled backup failed, or a
/// schedule is set and no good backup happened for over [`STALE_AFTER`] (counted from
/// `since`, the daemon's start, when there was never one).
pub fn fault(
    scheduled: bool,
    last_error: Option<&str>,
    last_good: Option<i64>,
    since: i64,
    now: i64,
) -> Option<String> {
    if !scheduled {
        return None;
    }
    if let Some(e) = last_error {
        return Some(format!("the last scheduled backup failed: {e}"));
    }
    let from = last_good.unwrap_or(since);
    if now - from > STALE_AFTER {
        return Some(match last_good {
            Some(_) => "no good backup for over two days".into(),
            None => "no backup written since the daemon started over two days ago".into(),
        });
    }
    None
}

/// The local time's offset from UTC at `now`, in seconds (glibc's `localtime_r`, which
/// reads TZ and /etc/localtime).
#[allow(unsafe_code)] // FFI to glibc; `tm` is plain data filled by the call.
pub fn local_offset(now: i64) -> i64 {
    let t: libc::time_t = now as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() { 0 } else { tm.tm_gmtoff as i64 }
}

/// The last backup, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct LastBackup {
    /// Unix seconds when it finished.
    pub at: i64,
    /// The file.
    pub file: PathBuf,
    /// Its size (0 when it failed).
    pub bytes: u64,
    /// Taken by the schedule (else by hand).
    pub scheduled: bool,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<LastBackup>,
    last_good: Option<i64>,
    last_scheduled_error: Option<String>,
    next: Option<i64>,
}

/// The backups the daemon took, shared by the scheduler, the control requests and
/// `status`.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
    since: i64,
}

impl Tracker {
    /// A tracker started at `since`, knowing the newest good backup in `dir` (by the
    /// file's time), so a restart does not forget it.
    pub fn new(since: i64, dir: Option<&Path>) -> Tracker {
        let last_good = dir.and_then(newest_backup_time);
        Tracker {
            state: Arc::new(Mutex::new(State {
                last_good,
                ..State::default()
            })),
            since,
        }
    }

    /// Records a finished backup.
    pub fn record(&self, b: LastBackup) {
        if let Ok(mut s) = self.state.lock() {
            if b.error.is_none() {
                s.last_good = Some(b.at);
            }
            if b.scheduled {
                s.last_scheduled_error.clone_from(&b.error);
            }
            s.last = Some(b);
        }
    }

    fn set_next(&self, next: Option<i64>) {
        if let Ok(mut s) = self.state.lock() {
            s.next = next;
        }
    }

    /// Fault 6's detail now (see [`fault`]).
    pub fn fault(&self, scheduled: bool, now: i64) -> Option<String> {
        let s = self.state.lock().ok()?;
        fault(
            scheduled,
            s.last_scheduled_error.as_deref(),
            s.last_good,
            self.since,
            now,
        )
    }

    /// Lines for `letterbox status`.
    pub fn status_lines(&self, cfg: &Config, now: i64) -> Vec<String> {
        let Ok(s) = self.state.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match &s.last {
            Some(b) => out.push(format!(
                "last backup: {} {} ago, {}{}",
                b.file.display(),
                crate::control::human_age(now - b.at),
                match &b.error {
                    None => format!("OK ({} bytes)", b.bytes),
                    Some(e) => format!("FAILED: {e}"),
                },
                if b.scheduled { " (scheduled)" } else { "" }
            )),
            None => match s.last_good {
                Some(t) => out.push(format!(
                    "last backup: {} ago (newest file in {})",
                    crate::control::human_age(now - t),
                    cfg.backup
                        .dir
                        .as_deref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                )),
                None => out.push("last backup: none since the daemon started".into()),
            },
        }
        match (cfg.backup.schedule, &cfg.backup.dir) {
            (Some((h, m)), Some(dir)) => out.push(format!(
                "backup schedule: daily at {h:02}:{m:02} into {}, keeping {}{}{}",
                dir.display(),
                cfg.backup.keep,
                if cfg.backup.passphrase_file.is_some() {
                    ", encrypted"
                } else {
                    ", NOT encrypted"
                },
                s.next
                    .map(|n| format!("; next in {}", crate::control::human_age((n - now).max(0))))
                    .unwrap_or_default()
            )),
            _ => out.push("backup schedule: none ([backup] schedule)".into()),
        }
        out
    }

    /// `status --json`'s `backup` object.
    pub fn status_json(&self, cfg: &Config, now: i64) -> serde_json::Value {
        let Ok(s) = self.state.lock() else {
            return serde_json::Value::Null;
        };
        serde_json::json!({
            "last": s.last,
            "last_good": s.last_good,
            "next": s.next,
            "schedule": cfg.backup.schedule.map(|(h, m)| format!("{h:02}:{m:02}")),
            "dir": cfg.backup.dir,
            "keep": cfg.backup.keep,
            "fault": fault(cfg.backup.schedule.is_some(), s.last_scheduled_error.as_deref(), s.last_good, self.since, now),
        })
    }
}

/// Modification time of the newest scheduled backup in `dir`.
fn newest_backup_time(dir: &Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| is_backup_name(&e.file_name().to_string_lossy()))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .max()
}

/// Is `dir` a mount point (its device differs from its parent's)?
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = dir.join("..");
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev() || a.ino() == b.ino(),
        _ => false,
    }
}

/// Runs one scheduled backup now: writes `dir/letterbox-<date>.backup`, reads it back
/// (decrypt, decompress, every hash and count), deletes the oldest beyond `keep`, and
/// records the result. Returns the result line.
pub fn run_once(
    store: &Store,
    cfg: &Config,
    config_path: Option<&Path>,
    tracker: &Tracker,
    now: i64,
) -> Result<String, String> {
    let res = (|| {
        let dir = cfg.backup.dir.as_deref().ok_or("no [backup] dir is set")?;
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        // On the appliance the directory is a USB stick's mount point: without the stick
        // it is an empty directory on the SD card, the very card the backup protects.
        if cfg.is_appliance() && !is_mount_point(dir) {
            return Err(format!(
                "no backup stick is mounted at {} (plug in a USB stick labelled LBBACKUP)",
                dir.display()
            ));
        }
        let pass = cfg
            .backup
            .passphrase_file
            .as_deref()
            .map(Passphrase::from_file)
            .transpose()?;
        let list = || -> Result<Vec<String>, String> {
            Ok(std::fs::read_dir(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect())
        };
        let names = list()?;
        let base = plan(&names, cfg.backup.full_every);
        let offset = local_offset(now);
        let name_at = |t: i64| match &base {
            Some(b) => incremental_name(t, offset, b).unwrap_or_else(|| file_name(t, offset)),
            None => file_name(t, offset),
        };
        let mut t = now;
        while stamp_taken(&names, &name_at(t)) && t < now + 100 {
            t += 1;
        }
        let dest = dir.join(name_at(t));
        let base_path = base.as_ref().map(|b| dir.join(b));
        let report = match write_backup(
            store,
            cfg,
            config_path,
            &dest,
            pass.as_ref(),
            base_path.as_deref(),
        ) {
            Ok(r) => r,
            // An incremental needs a sound base; without one, a full backup instead.
            Err(e) if base.is_some() => {
                tracing::warn!(error = %e, "incremental backup failed; writing a full one");
                write_backup(
                    store,
                    cfg,
                    config_path,
                    &dir.join(file_name(t, offset)),
                    pass.as_ref(),
                    None,
                )?
            }
            Err(e) => return Err(e),
        };
        let dest = report.path.clone();
        super::check_stream(&dest, pass.as_ref())
            .map_err(|e| format!("{}: reading it back: {e}", dest.display()))?;
        let names = list()?;
        for old in to_prune(&names, cfg.backup.keep) {
            if let Err(e) = std::fs::remove_file(dir.join(&old)) {
                tracing::warn!(file = %old, error = %e, "could not delete an old backup");
            }
        }
        Ok(report)
    })();
    match res {
        Ok(r) => {
            tracker.record(LastBackup {
                at: crate::store::now_unix(),
                file: r.path.clone(),
                bytes: r.bytes,
                scheduled: true,
                error: None,
            });
            Ok(format!(
                "wrote {} ({} bytes, {} rows{}) in {:.1} s",
                r.path.display(),
                r.bytes,
                r.rows,
                match &r.base {
                    Some(b) => format!(", incremental on {b}: {} bodies left to it", r.base_blobs),
                    None => String::new(),
                },
                r.seconds
            ))
        }
        Err(e) => {
            tracker.record(LastBackup {
                at: crate::store::now_unix(),
                file: cfg.backup.dir.clone().unwrap_or_default(),
                bytes: 0,
                scheduled: true,
                error: Some(e.clone()),
            });
            Err(e)
        }
    }
}

/// The daemon task: runs [`run_once`] at each due time and keeps fault 6 up to date,
/// until `stop`.
pub async fn run(
    store: Store,
    cfg: Arc<Config>,
    config_path: Option<PathBuf>,
    tracker: Tracker,
    hw: Hw,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(at) = cfg.backup.schedule else {
        return;
    };
    let now = crate::store::now_unix();
    let mut due = next_run(now, local_offset(now), at);
    loop {
        let now = crate::store::now_unix();
        if now >= due {
            if now - due <= MISSED_GRACE {
                let (s, c, p, t) = (
                    store.clone(),
                    cfg.clone(),
                    config_path.clone(),
                    tracker.clone(),
                );
                match tokio::task::spawn_blocking(move || run_once(&s, &c, p.as_deref(), &t, now))
                    .await
                {
                    Ok(Ok(line)) => tracing::info!("scheduled backup: {line}"),
                    Ok(Err(e)) => tracing::error!(error = %e, "scheduled backup failed"),
                    Err(_) => tracing::error!("scheduled backup task panicked"),
                }
            } else {
                tracing::warn!(
                    "scheduled backup time missed (box off or clock jump); next one at the next scheduled time"
                );
            }
            let now = crate::store::now_unix();
            due = next_run(now, local_offset(now), at);
        }
        tracker.set_next(Some(due));
        hw.set_fault(FaultClass::Backup, tracker.fault(true, now));
        let wait = Duration::from_secs((due - now).clamp(1, TICK.as_secs() as i64) as u64);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_in_any_offset() {
        // 2026-12-06 10:00:00 UTC.
        let t = 1_796_551_200;
        assert_eq!(next_run(t, 0, (3, 30)) - t, 17 * 3600 + 1800);
        assert_eq!(next_run(t, 0, (10, 0)) - t, 86_400);
        assert_eq!(next_run(t, 0, (10, 1)) - t, 60);
        // UTC+2: local 12:00; 03:30 local is 15.5 h away.
        assert_eq!(next_run(t, 7200, (3, 30)) - t, 15 * 3600 + 1800);
        // UTC-5: local 05:00.
        assert_eq!(next_run(t, -5 * 3600, (6, 0)) - t, 3600);
    }

    #[test]
    fn names_sort_by_time_and_prune_keeps_the_newest() {
        assert_eq!(
            file_name(1_796_551_200, 0),
            "letterbox-20261206-100000.backup"
        );
        assert_eq!(file_name(0, 3600), "letterbox-19700101-010000.backup");
        assert_eq!(
            file_name(951_782_400, 0),
            "letterbox-20000229-000000.backup"
        );
        assert!(is_backup_name("letterbox-20261206-100000.backup"));
        assert!(!is_backup_name("letterbox-2026120x-100000.backup"));
        assert!(!is_backup_name("notes.txt"));
        let names: Vec<String> = (0..5)
            .map(|i| file_name(1_796_551_200 + i * 86_400, 0))
            .chain(["notes.txt".to_string()])
            .rev()
            .collect();
        let gone = to_prune(&names, 2);
        assert_eq!(gone.len(), 3);
        assert!(gone.iter().all(|g| g < &names[1] && g != "notes.txt"));
        assert!(to_prune(&names, 10).is_empty());
    }

    #[test]
    fn incrementals_name_their_base_and_keep_it() {
        let day = 86_400;
        let t0 = 1_796_551_200;
        let full = file_name(t0, 0);
        let inc = incremental_name(t0 + day, 0, &full).unwrap();
        assert_eq!(inc, "letterbox-20261207-100000.on-20261206-100000.backup");
        assert_eq!(
            parse_name(&inc),
            Some(("20261207-100000", Some("20261206-100000")))
        );
        assert!(is_backup_name(&inc));
        // Not on an incremental, not on a later base, nothing malformed.
        assert_eq!(incremental_name(t0 + 2 * day, 0, &inc), None);
        assert_eq!(incremental_name(t0 - day, 0, &full), None);
        for bad in [
            "letterbox-20261207-100000.on-20261208-100000.backup",
            "letterbox-20261207-100000.on-2026120-100000.backup",
            "letterbox-20261207-100000.of-20261206-100000.backup",
            "letterbox-20261207-100000.backup.tmp",
        ] {
            assert!(!is_backup_name(bad), "{bad}");
        }
        // A week of daily backups with full_every = 3: F I I F I I F.
        let mut names: Vec<String> = Vec::new();
        let mut kinds = String::new();
        for i in 0..7 {
            let t = t0 + i * day;
            let name = match plan(&names, 3) {
                Some(b) => {
                    kinds.push('I');
                    incremental_name(t, 0, &b).unwrap()
                }
                None => {
                    kinds.push('F');
                    file_name(t, 0)
                }
            };
            assert!(!stamp_taken(&names, &name));
            names.push(name);
        }
        assert_eq!(kinds, "FIIFIIF");
        assert!(stamp_taken(&names, &file_name(t0, 0)));
        assert_eq!(plan(&names, 1), None, "full_every = 1: always full");
        // Keep 2: the newest two are I(day 5) and F(day 6); I(day 5)'s base F(day 3)
        // stays too, the other four go.
        let gone = to_prune(&names, 2);
        assert_eq!(gone.len(), 4, "{gone:?}");
        assert!(!gone.contains(&names[3]));
        // Keep 3: the newest three are I(day 4) I(day 5) F(day 6); their base F(day 3)
        // stays too.
        let gone = to_prune(&names, 3);
        let kept: Vec<&String> = names.iter().filter(|n| !gone.contains(n)).collect();
        assert_eq!(kept.len(), 4, "{kept:?}");
        assert!(kept.contains(&&names[3]), "the base of a kept incremental");
        // Every kept incremental's base is kept, for any keep.
        for keep in 1..=8 {
            let gone = to_prune(&names, keep);
            for n in names.iter().filter(|n| !gone.contains(n)) {
                if let Some((_, Some(b))) = parse_name(n) {
                    assert!(!gone.contains(&full_name(b)), "keep {keep}: {n}");
                }
            }
        }
    }

    #[test]
    fn fault_rules() {
        let day = 86_400;
        assert_eq!(fault(false, Some("x"), None, 0, 10 * day), None);
        assert!(
            fault(true, Some("disk full"), Some(5), 0, 6)
                .unwrap()
                .contains("disk full")
        );
        assert_eq!(fault(true, None, Some(day), 0, 2 * day), None);
        assert!(fault(true, None, Some(day), 0, 3 * day + 1).is_some());
        assert_eq!(fault(true, None, None, day, 2 * day), None);
        assert!(fault(true, None, None, 0, 2 * day + 1).is_some());
    }
}
