//! The HTTP and HTTPS listeners (`[listen] http` and `https`): the public page, client
//! autoconfiguration, and the redirect from HTTP to HTTPS. HTTP itself is axum on hyper
//! (no hand-written HTTP); this module owns only the connection side:
//!
//! - Accepting goes through the same [`crate::net::Listener`] as the mail services: the same
//!   global and per-IP connection caps (`[limits] max_connections`,
//!   `max_connections_per_ip`), accept-error backoff, one task per connection on the app's
//!   `TaskTracker`. A connection over a cap gets `503` ([`busy`]) on HTTP and is closed on
//!   HTTPS.
//! - HTTPS uses the mail listeners' own rustls `ServerConfig` ([`Tls::acceptor`], taken per
//!   connection so a SIGHUP reload or a renewal applies without a restart), copied once
//!   per certificate change to add ALPN `http/1.1` (RFC 7301): the mail listeners' config
//!   is not touched.
//! - Hostile input (SPEC §5): the request head must arrive within [`HEADER_TIMEOUT`]
//!   (slowloris) and fit in [`MAX_HEAD`] bytes (hyper answers `431`), at most
//!   [`MAX_HEADERS`] header fields; bodies are capped at [`routes::MAX_BODY`] and must arrive
//!   within [`routes::BODY_TIMEOUT`]; a connection lives at most [`MAX_CONNECTION_LIFE`].
//!   hyper refuses differing duplicate `Content-Length` (`400`) and, when both
//!   `Content-Length` and `Transfer-Encoding: chunked` come, reads the body as chunked and
//!   closes the connection after the answer (RFC 9112 §6.1), so nothing can be smuggled
//!   behind it.
//! - On shutdown each connection finishes its current answer (hyper's graceful shutdown,
//!   bounded by [`SHUTDOWN_WAIT`]).
//!
//! [`autoconfig`] and [`page`] are pure (sans-I/O) and unit-tested; `routes` maps paths to
//! them and gets the daemon's state through the control requests the CLI uses.

pub mod autoconfig;
pub mod page;
mod routes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::Ctx;
use crate::net::{Busy, ConnLimits, Listener, Stream};
use crate::tls::Tls;

/// How long a client has to send a whole request head (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and header fields), bytes; hyper's minimum.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields in a request.
pub const MAX_HEADERS: usize = 64;
/// The longest a connection stays open, whatever it does.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);
/// How long an answer in progress may take to finish after a shutdown request.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The answer to a connection over a cap (plain HTTP).
pub fn busy() -> Busy {
    Busy(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nRetry-After: 5\r\nConnection: close\r\n\r\ntoo many connections"
            .to_vec(),
    )
}

/// What the handlers share.
pub(crate) struct Inner {
    /// The control context: status and the configuration, as the CLI gets them.
    pub(crate) ctx: Ctx,
    /// The certificate (shared with the mail listeners).
    pub(crate) tls: Tls,
    /// The mail config with ALPN `http/1.1`, for the `ServerConfig` it was made from.
    alpn: Mutex<Option<(Arc<ServerConfig>, TlsAcceptor)>>,
}

impl Inner {
    /// The acceptor for HTTPS: the current mail `ServerConfig` plus ALPN `http/1.1`,
    /// rebuilt only when the certificate changed.
    fn acceptor(&self) -> TlsAcceptor {
        let base = self.tls.acceptor().config().clone();
        let mut cache = self.alpn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, a)) = cache.as_ref()
            && Arc::ptr_eq(b, &base)
        {
            return a.clone();
        }
        let mut cfg = (*base).clone();
        if !cfg.alpn_protocols.iter().any(|p| p == b"http/1.1") {
            cfg.alpn_protocols.push(b"http/1.1".to_vec());
        }
        let acceptor = TlsAcceptor::from(Arc::new(cfg));
        *cache = Some((base, acceptor.clone()));
        acceptor
    }
}

/// The web side of the daemon: cheap to clone.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Inner>,
}

impl Web {
    /// Built once by `app::run`.
    pub fn new(ctx: Ctx, tls: Tls) -> Web {
        Web {
            inner: Arc::new(Inner {
                ctx,
                tls,
                alpn: Mutex::new(None),
            }),
        }
    }

    /// Serves `listener` (`http` or `https`) until `stop` fires.
    pub async fn serve(
        self,
        listener: Listener,
        limits: Arc<ConnLimits>,
        stop: CancellationToken,
        tracker: TaskTracker,
    ) {
        let https = listener.service() == "https";
        let router = routes::router(self.inner.clone(), https);
        let inner = self.inner.clone();
        let stop2 = stop.clone();
        listener
            .serve(limits, stop, tracker, move |stream, info| {
                let router = router.clone();
                let acceptor = https.then(|| inner.acceptor());
                let stop = stop2.clone();
                async move {
                    let stream = match (acceptor, stream) {
                        (Some(a), Stream::Plain(tcp)) => match Stream::accept_tls(tcp, &a).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(peer = %info.peer, error = %e, "HTTPS: TLS handshake failed");
                                return;
                            }
                        },
                        (_, s) => s,
                    };
                    serve_connection(stream, router, stop).await;
                }
            })
            .await;
    }
}

/// One HTTP/1.1 connection, under the timeouts and size caps above.
async fn serve_connection(stream: Stream, router: axum::Router, stop: CancellationToken) {
    let svc = TowerToHyperService::new(router);
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let conn = b.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, conn).await;
        }
        _ = tokio::time::sleep(MAX_CONNECTION_LIFE) => {
            tracing::debug!("HTTP connection closed: open too long");
        }
    }
}
