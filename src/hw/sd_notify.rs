//! The systemd notify protocol (`sd_notify(3)`), written by hand: one datagram per state
//! change to the Unix socket named by `NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket). The daemon sends `READY=1` once its listeners are bound, `WATCHDOG=1` with each
//! watchdog feed, and `STOPPING=1` when a shutdown starts (`Type=notify`, `WatchdogSec=`).
//!
//! Sending is best effort: systemd not listening is logged once at debug level and never an
//! error for the mail services.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to systemd's notify socket.
#[derive(Debug)]
pub struct SdNotify {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl SdNotify {
    /// From `NOTIFY_SOCKET`, or `None` when it is unset (not running under systemd) or
    /// unusable.
    pub fn from_env() -> Option<SdNotify> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        match SdNotify::new(&path) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = ?path, error = %e, "NOTIFY_SOCKET is not usable");
                None
            }
        }
    }

    /// For the socket `path` (`/run/...` or `@abstract`).
    pub fn new(path: &OsStr) -> std::io::Result<SdNotify> {
        let bytes = path.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(&bytes[1..])?
            }
            Some(b'/') => SocketAddr::from_pathname(path)?,
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "expected an absolute path or @name",
                ));
            }
        };
        Ok(SdNotify {
            sock: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends `state` (e.g. `"READY=1"`); errors are logged, not returned.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.sock.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::debug!(state, error = %e, "sd_notify failed");
        }
    }
}

/// systemd's watchdog timeout for this process (`WATCHDOG_USEC`, when `WATCHDOG_PID` is
/// unset or ours), or `None`.
pub fn systemd_watchdog() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str()?.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = SdNotify::new(path.as_os_str()).unwrap();
        n.send("READY=1");
        n.send("WATCHDOG=1");
        let mut buf = [0u8; 64];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1");
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");
    }

    #[test]
    fn abstract_and_bad_names() {
        let name = format!("@letterbox-test-{}", std::process::id());
        let rx = {
            use std::os::linux::net::SocketAddrExt;
            let a = SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
            UnixDatagram::bind_addr(&a).unwrap()
        };
        SdNotify::new(OsStr::new(&name)).unwrap().send("STOPPING=1");
        let mut buf = [0u8; 64];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"STOPPING=1");
        assert!(SdNotify::new(OsStr::new("relative")).is_err());
        assert!(SdNotify::new(OsStr::new("")).is_err());
        // Nobody listening: no error, no panic.
        SdNotify::new(OsStr::new("/nonexistent/letterbox/notify"))
            .unwrap()
            .send("READY=1");
    }
}
