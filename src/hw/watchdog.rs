//! The hardware watchdog: our own [`Watchdog`] trait (embedded-hal 1.0 removed its one), the
//! Linux device ([`DeviceWatchdog`]), a stand-in for hosts without one ([`NoWatchdog`]), and
//! the pure rule for when to feed ([`FeedPolicy`]).
//!
//! Linux watchdog API (Documentation/watchdog/watchdog-api.rst): opening the device arms
//! it; `WDIOC_SETTIMEOUT` sets the timeout in seconds (bcm2835-wdt: at most 15 s);
//! `WDIOC_KEEPALIVE` (or any write) feeds it; writing the magic character `V` and then
//! closing disarms it (unless the kernel was built with `CONFIG_WATCHDOG_NOWAYOUT`).
//! Closing *without* `V` leaves it running, so a crashed daemon resets the board: dropping a
//! [`DeviceWatchdog`] without [`Watchdog::disarm`] does exactly that, on purpose.
//!
//! Test fakes: a path that is a regular file or a FIFO answers the ioctls with `ENOTTY` (or
//! `ENOSYS` under qemu-user, which does not translate the `WDIOC_*` ioctls). The
//! device then falls back to writing one `.` per feed (and skips the timeout), and `V` on
//! disarm, so a test can read what happened. A regular file is appended to; a FIFO is
//! opened non-blocking (it must have a reader, or opening fails with `ENXIO`).

use std::ffi::c_int;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::ioctl::{Opcode, Updater, opcode};

/// A watchdog the daemon feeds while its health probe passes.
pub trait Watchdog: Send {
    /// Feeds (pets) the watchdog.
    fn feed(&mut self) -> io::Result<()>;

    /// Disarms it for a clean shutdown (the magic close) and releases it.
    fn disarm(self: Box<Self>) -> io::Result<()>;

    /// The timeout in force, when known.
    fn timeout(&self) -> Option<Duration>;
}

/// `_IOR('W', 5, int)`
const WDIOC_KEEPALIVE: Opcode = opcode::read::<c_int>(b'W', 5);
/// `_IOWR('W', 6, int)`
const WDIOC_SETTIMEOUT: Opcode = opcode::read_write::<c_int>(b'W', 6);
/// `_IOR('W', 7, int)`
const WDIOC_GETTIMEOUT: Opcode = opcode::read::<c_int>(b'W', 7);

/// Issues one watchdog ioctl whose argument is an `int` the kernel may read and write.
#[allow(unsafe_code)]
fn watchdog_ioctl<const OPCODE: Opcode>(
    fd: BorrowedFd<'_>,
    value: &mut c_int,
) -> Result<(), Errno> {
    // SAFETY: the three opcodes used with this function (WDIOC_KEEPALIVE, WDIOC_SETTIMEOUT,
    // WDIOC_GETTIMEOUT) each take a pointer to one `int`, which `value` is: initialised,
    // exclusively borrowed and alive for the whole call. KEEPALIVE ignores it; SETTIMEOUT
    // reads and writes it; GETTIMEOUT writes it. On a file that is not a watchdog the kernel
    // refuses the opcode (ENOTTY) without touching memory.
    unsafe { rustix::ioctl::ioctl(fd, Updater::<OPCODE, c_int>::new(value)) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A real watchdog, with the timeout the driver accepted.
    Device { timeout: Duration },
    /// A regular file or FIFO: one `.` per feed.
    Fake,
}

/// A Linux watchdog device (or a fake one, see the module doc).
#[derive(Debug)]
pub struct DeviceWatchdog {
    file: File,
    path: PathBuf,
    mode: Mode,
}

impl DeviceWatchdog {
    /// Opens (and so arms) the watchdog at `path` and asks for `timeout`, rounded up to whole
    /// seconds. If the driver refuses the timeout (`EINVAL`) the device keeps its own, which
    /// [`Watchdog::timeout`] then reports. If anything fails after the device was opened, it
    /// is disarmed again before the error is returned.
    pub fn open(path: &Path, timeout: Duration) -> io::Result<Self> {
        let kind = std::fs::metadata(path)?.file_type();
        let mut opts = OpenOptions::new();
        opts.write(true);
        if kind.is_file() {
            opts.append(true);
        }
        if kind.is_fifo() {
            opts.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as c_int);
        }
        let file = opts.open(path)?;
        let mut dog = DeviceWatchdog {
            file,
            path: path.to_owned(),
            mode: Mode::Fake,
        };
        match dog.set_timeout(timeout) {
            Ok(mode) => {
                dog.mode = mode;
                if mode == Mode::Fake {
                    tracing::warn!(
                        path = %path.display(),
                        "not a watchdog device (ENOTTY): using it as a fake, one '.' per feed"
                    );
                }
                Ok(dog)
            }
            Err(e) => {
                // Do not leave an armed watchdog behind an error.
                let _ = dog.magic_close();
                Err(e)
            }
        }
    }

    fn set_timeout(&self, timeout: Duration) -> io::Result<Mode> {
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let mut value = c_int::try_from(secs.max(1)).unwrap_or(c_int::MAX);
        match watchdog_ioctl::<WDIOC_SETTIMEOUT>(self.file.as_fd(), &mut value) {
            Ok(()) => {}
            // ENOTTY: not a watchdog (a file, a FIFO, /dev/null). ENOSYS: qemu-user, which
            // runs the aarch64 tests on a build host, answers every ioctl it cannot translate
            // (the WDIOC_* ones among them) with it; a kernel never does for a device.
            Err(Errno::NOTTY) | Err(Errno::NOSYS) => return Ok(Mode::Fake),
            Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => {
                tracing::warn!(
                    path = %self.path.display(),
                    requested = secs,
                    "watchdog refused the timeout; keeping its own"
                );
                watchdog_ioctl::<WDIOC_GETTIMEOUT>(self.file.as_fd(), &mut value)?;
            }
            Err(e) => return Err(e.into()),
        }
        let timeout = Duration::from_secs(u64::try_from(value).unwrap_or(0));
        tracing::info!(path = %self.path.display(), ?timeout, "watchdog armed");
        Ok(Mode::Device { timeout })
    }

    fn magic_close(&mut self) -> io::Result<()> {
        self.file.write_all(b"V")
    }

    /// True when the path is not a watchdog device (test fake).
    pub fn is_fake(&self) -> bool {
        self.mode == Mode::Fake
    }

    /// The path opened.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Watchdog for DeviceWatchdog {
    fn feed(&mut self) -> io::Result<()> {
        match self.mode {
            Mode::Device { .. } => {
                let mut unused: c_int = 0;
                Ok(watchdog_ioctl::<WDIOC_KEEPALIVE>(
                    self.file.as_fd(),
                    &mut unused,
                )?)
            }
            Mode::Fake => self.file.write_all(b"."),
        }
    }

    fn disarm(mut self: Box<Self>) -> io::Result<()> {
        self.magic_close()?;
        tracing::info!(path = %self.path.display(), "watchdog disarmed (magic close)");
        Ok(())
        // `self.file` closes here, after the `V`.
    }

    fn timeout(&self) -> Option<Duration> {
        match self.mode {
            Mode::Device { timeout } => Some(timeout),
            Mode::Fake => None,
        }
    }
}

/// For hosts without a watchdog: feeding and disarming do nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoWatchdog;

impl Watchdog for NoWatchdog {
    fn feed(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn disarm(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }

    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// When to feed: only while the last *passing* health probe is recent.
///
/// The driver runs the probe (runtime answers, store answers a read, listeners accept)
/// every [`FeedPolicy::interval`] and records when it last passed; it feeds only if
/// [`FeedPolicy::should_feed`] says so. A probe that fails or hangs leaves the last pass to
/// age past [`FeedPolicy::max_probe_age`], feeding stops, and the board resets at most
/// `max_probe_age + timeout` after the last good probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedPolicy {
    timeout: Duration,
}

impl FeedPolicy {
    /// The shortest timeout accepted; shorter ones are raised to it.
    pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);

    /// A policy for a watchdog with `timeout`.
    pub fn new(timeout: Duration) -> Self {
        FeedPolicy {
            timeout: timeout.max(Self::MIN_TIMEOUT),
        }
    }

    /// The watchdog timeout this policy was made for.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often to probe and feed: a third of the timeout, so two feeds can be missed.
    pub fn interval(&self) -> Duration {
        self.timeout / 3
    }

    /// The oldest passing probe that still justifies a feed: a third of the timeout.
    pub fn max_probe_age(&self) -> Duration {
        self.timeout / 3
    }

    /// Whether to feed at `now`, given when the health probe last passed (`None`: never).
    pub fn should_feed(&self, last_probe_ok: Option<Instant>, now: Instant) -> bool {
        last_probe_ok.is_some_and(|t| now.saturating_duration_since(t) <= self.max_probe_age())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_file_records_feeds_and_magic_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "").unwrap();
        let mut dog = DeviceWatchdog::open(&path, Duration::from_secs(15)).unwrap();
        assert!(dog.is_fake());
        assert_eq!(dog.timeout(), None);
        assert_eq!(dog.path(), path);
        dog.feed().unwrap();
        dog.feed().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "..");
        dog.feed().unwrap();
        let boxed: Box<dyn Watchdog> = Box::new(dog);
        boxed.disarm().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "...V");
    }

    #[test]
    fn fake_file_appends_to_existing_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "..V").unwrap();
        let mut dog = DeviceWatchdog::open(&path, Duration::from_secs(10)).unwrap();
        dog.feed().unwrap();
        Box::new(dog).disarm().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "..V.V");
    }

    #[test]
    fn drop_without_disarm_writes_no_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "").unwrap();
        let mut dog = DeviceWatchdog::open(&path, Duration::from_secs(15)).unwrap();
        dog.feed().unwrap();
        drop(dog);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), ".");
    }

    #[test]
    fn missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = DeviceWatchdog::open(&dir.path().join("nope"), Duration::from_secs(15));
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn fifo_without_reader_is_refused_not_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let err = DeviceWatchdog::open(&path, Duration::from_secs(15)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::NXIO.raw_os_error()));
    }

    #[test]
    fn fifo_with_reader_gets_dots_and_v() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as c_int)
            .open(&path)
            .unwrap();
        let mut dog = DeviceWatchdog::open(&path, Duration::from_secs(15)).unwrap();
        assert!(dog.is_fake());
        dog.feed().unwrap();
        Box::new(dog).disarm().unwrap();
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, ".V");
    }

    #[test]
    fn no_watchdog_does_nothing() {
        let mut dog = NoWatchdog;
        dog.feed().unwrap();
        assert_eq!(dog.timeout(), None);
        Box::new(dog).disarm().unwrap();
    }

    #[test]
    fn opcodes_match_linux_watchdog_h() {
        assert_eq!(WDIOC_KEEPALIVE as u64, 0x8004_5705);
        assert_eq!(WDIOC_SETTIMEOUT as u64, 0xC004_5706);
        assert_eq!(WDIOC_GETTIMEOUT as u64, 0x8004_5707);
    }

    #[test]
    fn a_char_device_that_is_not_a_watchdog_is_a_fake() {
        let mut dog =
            DeviceWatchdog::open(Path::new("/dev/null"), Duration::from_secs(15)).unwrap();
        assert!(dog.is_fake());
        dog.feed().unwrap();
        Box::new(dog).disarm().unwrap();
    }

    #[test]
    fn feed_policy() {
        let p = FeedPolicy::new(Duration::from_secs(15));
        assert_eq!(p.interval(), Duration::from_secs(5));
        assert_eq!(p.max_probe_age(), Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(!p.should_feed(None, t0));
        assert!(p.should_feed(Some(t0), t0));
        assert!(p.should_feed(Some(t0), t0 + Duration::from_secs(5)));
        assert!(!p.should_feed(Some(t0), t0 + Duration::from_millis(5001)));
        // A probe time after `now` (clock handed in out of order) still counts as fresh.
        assert!(p.should_feed(Some(t0 + Duration::from_secs(1)), t0));
        assert_eq!(
            FeedPolicy::new(Duration::ZERO).timeout(),
            FeedPolicy::MIN_TIMEOUT
        );
    }
}
