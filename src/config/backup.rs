//! `[backup]`: scheduled backups (`dir`, `schedule`, `keep`, `passphrase_file`). The daemon
//! writes one file a day into `dir` at the local time `schedule` and keeps the newest `keep`.
//! No schedule by default; the appliance's `dir` is where the image mounts a USB stick
//! labelled `LBBACKUP`.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Builder, ConfigError};

/// Where the appliance mounts a USB stick labelled `LBBACKUP` (image/rootfs).
pub const APPLIANCE_BACKUP_DIR: &str = "/mnt/lbbackup";
/// Default number of scheduled backups kept.
pub const DEFAULT_KEEP: u32 = 7;
/// By default every 7th scheduled backup is full, the others incremental on it.
pub const DEFAULT_FULL_EVERY: u32 = 7;

/// `[backup]` as used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// Directory for scheduled backups (none on a host; the USB stick's mount point on the
    /// appliance).
    pub dir: Option<PathBuf>,
    /// Daily local time (hour, minute) of the scheduled backup; `None`: no schedule.
    pub schedule: Option<(u8, u8)>,
    /// Scheduled backup files kept (the newest; older ones are deleted, except a full
    /// backup that a kept incremental builds on).
    pub keep: u32,
    /// Every `full_every`th scheduled backup is full, the others incremental on the
    /// newest full one (1: all full).
    pub full_every: u32,
    /// File whose first line is the passphrase that encrypts scheduled backups (age).
    pub passphrase_file: Option<PathBuf>,
}

impl BackupConfig {
    /// Defaults: the appliance has a `dir`, nothing is scheduled.
    pub fn defaults(appliance: bool) -> BackupConfig {
        BackupConfig {
            dir: appliance.then(|| PathBuf::from(APPLIANCE_BACKUP_DIR)),
            schedule: None,
            keep: DEFAULT_KEEP,
            full_every: DEFAULT_FULL_EVERY,
            passphrase_file: None,
        }
    }
}

/// The `[backup]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub(super) struct RawBackup {
    dir: Option<PathBuf>,
    schedule: Option<String>,
    keep: Option<i64>,
    full_every: Option<i64>,
    passphrase_file: Option<PathBuf>,
}

/// Parses `"HH:MM"` (24-hour clock).
pub fn parse_schedule(s: &str) -> Result<(u8, u8), String> {
    let bad = || format!("{s:?} is not a daily time such as \"03:30\" (HH:MM, 24-hour clock)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u8 = h.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok((h, m))
}

impl Builder<'_> {
    /// `[backup]`: `schedule` needs a `dir`; `keep` at least 1.
    pub(super) fn backup(&self, raw: RawBackup, out: &mut BackupConfig) -> Result<(), ConfigError> {
        if let Some(d) = raw.dir {
            if d.as_os_str().is_empty() {
                return Err(self.err("backup.dir", "must not be empty"));
            }
            out.dir = Some(d);
        }
        if let Some(s) = raw.schedule {
            out.schedule = Some(parse_schedule(&s).map_err(|e| self.err("backup.schedule", e))?);
            if out.dir.is_none() {
                return Err(self.err(
                    "backup.schedule",
                    "a schedule needs [backup] dir, the directory to write to",
                ));
            }
        }
        if let Some(k) = raw.keep {
            if !(1..=10_000).contains(&k) {
                return Err(self.err("backup.keep", "must be between 1 and 10000"));
            }
            out.keep = k as u32;
        }
        if let Some(k) = raw.full_every {
            if !(1..=1000).contains(&k) {
                return Err(self.err("backup.full_every", "must be between 1 and 1000"));
            }
            out.full_every = k as u32;
        }
        if let Some(p) = raw.passphrase_file {
            if p.as_os_str().is_empty() {
                return Err(self.err("backup.passphrase_file", "must not be empty"));
            }
            out.passphrase_file = Some(p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn backup_defaults_and_errors() {
        assert_eq!(Config::defaults().backup, BackupConfig::defaults(false));
        let c = Config::parse(
            "[backup]\ndir = \"/b\"\nschedule = \"3:05\"\nkeep = 3\npassphrase_file = \"/p\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.backup.schedule, Some((3, 5)));
        assert_eq!(c.backup.keep, 3);
        assert_eq!(c.backup.dir.as_deref(), Some(std::path::Path::new("/b")));
        let e = Config::parse("[backup]\ndir = \"/b\"\nschedule = \"25:00\"\n", "t").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("backup.schedule"))
        );
        let e = Config::parse("[backup]\nschedule = \"01:00\"\n", "t").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("backup.schedule"));
        let e = Config::parse("\n[backup]\nfull_every = 0\n", "t").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("backup.full_every"))
        );
        let c = Config::parse("[backup]\nfull_every = 1\n", "t").unwrap();
        assert_eq!(c.backup.full_every, 1);
        let e = Config::parse("\n[backup]\nkeep = 0\n", "t").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("backup.keep")));
        for bad in ["", "3", "03:5", "a:00", "03:60", "123:00"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_schedule("23:59"), Ok((23, 59)));
    }
}
