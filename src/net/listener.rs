//! The accept loop shared by every service (mini-redis `server.rs` `Listener`, with
//! `tokio_util`'s `CancellationToken` + `TaskTracker` in place of its broadcast/mpsc pair).
//!
//! - A global cap on open connections (`[limits] max_connections`, a `Semaphore`) and a
//!   per-client-address cap (`max_connections_per_ip`). A connection over either cap gets
//!   the protocol's own "too busy" line ([`Busy`]: SMTP `421 4.7.0`, RFC 5321 §3.8; POP3
//!   `-ERR [SYS/TEMP]`, RFC 3206 §4) and is closed. Refusals run in tasks of their own
//!   (so a slow client cannot stall the loop), themselves capped: past
//!   [`MAX_REFUSALS`] concurrent refusals a connection is simply closed.
//! - Accept errors that concern one connection (reset before accept) are skipped; the
//!   others (out of file descriptors, memory) back off from 5 ms doubling up to 1 s,
//!   instead of spinning.
//! - Implicit TLS (465, 995, 993; RFC 8314 §3.3) runs the handshake in the connection's
//!   task, bounded by [`HANDSHAKE_TIMEOUT`]; the certificate is taken per connection, so
//!   a SIGHUP reload applies to new connections.
//! - Each connection is a task on the app's `TaskTracker`; the loop ends when the stop
//!   token fires (the sessions then send their goodbye, see [`super::pump`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::stream::{HANDSHAKE_TIMEOUT, Stream};
use crate::tls::Tls;

/// Concurrent "too busy" answers; beyond this, extra connections are closed silently.
pub const MAX_REFUSALS: usize = 32;
/// How long writing the "too busy" line may take.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The protocol's "too busy" line, written to a connection refused by a cap.
#[derive(Debug, Clone)]
pub struct Busy(pub Vec<u8>);

/// The connection caps shared by every listener of the daemon.
#[derive(Debug)]
pub struct ConnLimits {
    global: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    max_per_ip: u32,
    refusals: Arc<Semaphore>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` are open.
    Global,
    /// `max_connections_per_ip` are open from this address.
    PerIp,
}

/// Holds a connection's place under both caps; dropping it frees them.
#[derive(Debug)]
pub struct Permit {
    _global: OwnedSemaphorePermit,
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut map) = self.limits.per_ip.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl ConnLimits {
    /// Caps of `max` connections in all and `max_per_ip` from one address.
    pub fn new(max: u32, max_per_ip: u32) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            global: Arc::new(Semaphore::new(max as usize)),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip,
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
        })
    }

    /// Takes a place for a connection from `ip`, or says which cap is reached. The per-IP
    /// table holds only addresses with open connections, so it is bounded by `max`.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        // `::ffff:192.0.2.1` on a dual-stack socket is the IPv4 client it carries.
        let ip = ip.to_canonical();
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Global)?;
        let mut map = self.per_ip.lock().map_err(|_| Refused::PerIp)?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                map.remove(&ip);
            }
            return Err(Refused::PerIp);
        }
        *n += 1;
        Ok(Permit {
            _global: global,
            limits: self.clone(),
            ip,
        })
    }

    /// Open connections (for tests and status).
    pub fn open(&self) -> usize {
        self.per_ip
            .lock()
            .map(|m| m.values().map(|&n| n as usize).sum())
            .unwrap_or(0)
    }
}

/// Where a connection came from.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The service name (`smtp`, `pop3s`, ...), for logs.
    pub service: &'static str,
    /// The client.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
}

/// One bound service.
pub struct Listener {
    service: &'static str,
    tcp: TcpListener,
    implicit_tls: Option<Tls>,
    busy: Busy,
}

impl Listener {
    /// Binds `addr` for `service`. `implicit_tls` makes it a TLS-on-connect listener.
    pub async fn bind(
        service: &'static str,
        addr: SocketAddr,
        implicit_tls: Option<Tls>,
        busy: Busy,
    ) -> io::Result<Listener> {
        Ok(Listener {
            service,
            tcp: TcpListener::bind(addr).await?,
            implicit_tls,
            busy,
        })
    }

    /// The address actually bound (the port, when 0 was asked for).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The service name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Accepts connections until `stop` fires; each admitted one runs `on_conn` in a task
    /// on `tracker`, holding its place under the caps until it ends.
    pub async fn serve<F, Fut>(
        self,
        limits: Arc<ConnLimits>,
        stop: CancellationToken,
        tracker: TaskTracker,
        on_conn: F,
    ) where
        F: Fn(Stream, ConnInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_conn = Arc::new(on_conn);
        let local = self.tcp.local_addr().ok();
        let mut backoff = BACKOFF_START;
        loop {
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.tcp.accept() => match r {
                    Ok(x) => {
                        backoff = BACKOFF_START;
                        x
                    }
                    Err(e) if per_connection_error(&e) => continue,
                    Err(e) => {
                        tracing::warn!(service = self.service, error = %e, "accept failed; backing off");
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let info = ConnInfo {
                service: self.service,
                peer,
                local: local.unwrap_or(peer),
            };
            let tls = self.implicit_tls.clone();
            match limits.admit(peer.ip()) {
                Ok(permit) => {
                    let on_conn = on_conn.clone();
                    tracker.spawn(async move {
                        let _permit = permit;
                        let stream = match tls {
                            Some(tls) => match Stream::accept_tls(tcp, &tls.acceptor()).await {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::debug!(service = info.service, peer = %info.peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                            },
                            None => Stream::Plain(tcp),
                        };
                        on_conn(stream, info).await;
                    });
                }
                Err(why) => {
                    tracing::info!(service = self.service, peer = %peer, cap = ?why, "connection refused: too many connections");
                    if let Ok(slot) = limits.refusals.clone().try_acquire_owned() {
                        let busy = self.busy.0.clone();
                        tracker.spawn(async move {
                            let _slot = slot;
                            refuse(tcp, tls, &busy).await;
                        });
                    }
                }
            }
        }
    }
}

/// Writes the "too busy" line (inside TLS on an implicit-TLS listener) and closes.
async fn refuse(tcp: TcpStream, tls: Option<Tls>, busy: &[u8]) {
    let io = async {
        let mut stream = match tls {
            Some(tls) => Stream::accept_tls(tcp, &tls.acceptor()).await?,
            None => Stream::Plain(tcp),
        };
        stream.write_all(busy).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT.max(HANDSHAKE_TIMEOUT), io).await;
}

/// Errors that concern only the connection being accepted.
fn per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn caps_global_and_per_ip() {
        let limits = ConnLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = limits.admit(a).unwrap();
        let p2 = limits.admit(a_mapped).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refused::PerIp);
        let p3 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refused::Global);
        assert_eq!(limits.open(), 3);
        drop(p1);
        let p4 = limits.admit(a).unwrap();
        drop((p2, p3, p4));
        assert_eq!(limits.open(), 0);
        assert!(limits.per_ip.lock().unwrap().is_empty(), "no stale entries");
    }

    async fn read_all(mut c: TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }

    #[tokio::test]
    async fn over_the_cap_gets_the_busy_line_and_stop_ends_the_loop() {
        let l = Listener::bind(
            "test",
            "127.0.0.1:0".parse().unwrap(),
            None,
            Busy(b"busy\r\n".to_vec()),
        )
        .await
        .unwrap();
        let addr = l.local_addr().unwrap();
        let limits = ConnLimits::new(10, 1);
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let serve = tokio::spawn(l.serve(
            limits.clone(),
            stop.clone(),
            tracker.clone(),
            move |mut s: Stream, _info| {
                let mut rx = release_rx.clone();
                async move {
                    let _ = s.write_all(b"hello\r\n").await;
                    let _ = rx.wait_for(|v| *v).await;
                }
            },
        ));
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut hello = [0u8; 7];
        first.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello\r\n");
        let second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_all(second).await, b"busy\r\n");
        release_tx.send(true).unwrap();
        assert_eq!(read_all(first).await, b"");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), serve)
            .await
            .unwrap()
            .unwrap();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .unwrap();
        assert_eq!(limits.open(), 0);
    }
}
