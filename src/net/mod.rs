//! The network side shared by every protocol: listening sockets, connection caps, TLS on
//! accept and on STARTTLS, and the generic loop that pumps bytes between a socket and a
//! sans-I/O session (STYLE habit 1). No protocol logic lives here: replies, goodbyes and
//! state are the sessions' (`pop3::session`, `smtp::session`), policy is the drivers'.
//!
//! - [`stream`]: [`Stream`], a TCP connection that may have been upgraded to TLS.
//! - [`deflate`]: raw DEFLATE for both directions of a connection, sans-I/O (IMAP
//!   COMPRESS=DEFLATE, RFC 4978), with bounded decompression.
//! - [`listener`]: the accept loop: bind, global and per-IP caps with the protocol's own
//!   "too busy" line, accept-error backoff, implicit TLS, one task per connection on the
//!   app's `TaskTracker`, stop on the app's `CancellationToken`.
//! - [`pump`]: read → `feed` → drain steps → write, with idle and session timeouts,
//!   STARTTLS, and the session's goodbye on shutdown.

pub mod deflate;
pub mod listener;
pub mod pump;
pub mod stream;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use listener::{Busy, ConnInfo, ConnLimits, Listener};
pub(crate) use pump::session_adapter;
pub use pump::{Handler, Protocol, PumpConfig, Step};
pub use stream::Stream;

use crate::auth::Limiter;
use crate::config::Config;
use crate::store::Store;
use crate::tls::Tls;

/// What every protocol driver shares: built once by `app::run`.
#[derive(Clone)]
pub struct Shared {
    /// The store.
    pub store: Store,
    /// The configuration.
    pub config: Arc<Config>,
    /// The certificate (implicit TLS and STARTTLS; reloaded on SIGHUP).
    pub tls: Tls,
    /// Failed-login throttling, shared by every protocol so a guesser cannot switch
    /// protocols to escape it (SPEC §5).
    pub limiter: Arc<Limiter>,
    /// Message bytes in memory while they arrive, over every connection
    /// (`[limits] max_message_memory`).
    pub budget: Arc<crate::budget::Budget>,
    /// Fires on shutdown.
    pub stop: CancellationToken,
    /// The spam counts of the last day (`status`), kept by the SMTP driver.
    pub spam_counts: Arc<crate::spam::Counts>,
}

impl Shared {
    /// Sleeps for the failed-login delay the limiter imposes, ending early on shutdown.
    pub async fn failed_login_delay(&self, ip: std::net::IpAddr, login: &str) {
        let now = std::time::Instant::now();
        self.limiter.failure(ip, Some(login), now);
        let delay = self.limiter.delay(ip, Some(login), now);
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.cancelled() => {}
            }
        }
    }
}
