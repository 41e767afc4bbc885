//! The IMAP tokio driver: runs [`Session`]s on the `imap` (STARTTLS, RFC 9051 §6.2.1)
//! and `imaps` (implicit TLS, RFC 8314 §3.3) listeners and owns the IMAP policy, not the
//! protocol:
//!
//! - Login: `auth::authenticate` (argon2, on a blocking thread); a failure is answered
//!   only after the shared failed-login limiter's delay (SPEC §5).
//! - Store work: [`Event::Execute`] moves the session onto a blocking thread, runs
//!   [`Session::execute`] against the store, and takes it back. Large FETCHes come back
//!   in chunks, each written before the next is rendered.
//! - IDLE push (RFC 2177): while the session idles, the wait for input also waits on the
//!   store's committed-change channel, so a delivery reaches the client as EXISTS as
//!   soon as its commit is published, without polling. An idle connection costs its
//!   read buffer, its session and one broadcast receiver.
//! - Timers and shutdown: `[limits] imap_idle_timeout` (RFC 9051 §5.4 autologout, at
//!   least 30 minutes by default), and the session's `* BYE` on server shutdown. The
//!   same timeout bounds how long one command may take to arrive, from its first byte:
//!   a slowloris client that sends a byte now and then restarts no timer, so it is cut
//!   like an idle one (tests/hostile.rs). There is no whole-session limit: an IDLE client
//!   may stay for days.
//!
//! - COMPRESS=DEFLATE (RFC 4978): after [`Step::Compress`] every batch the session hands
//!   out is compressed (64 KiB at a time) and sync-flushed at its end (so an IDLE push or
//!   a tagged reply reaches the client at once), and what is read is decompressed
//!   [`INFLATE_CHUNK`] bytes at a time, each piece fed to the session (whose framer caps
//!   lines and literals) before the next is decompressed: a decompression bomb is never
//!   inflated in one go. Input that is not valid DEFLATE closes the connection (after a
//!   compressed `* BYE [CLIENTBUG]`). The
//!   compressor's state (about 300 KB, see `net::deflate`) is dropped while the client
//!   idles, so an idling compressed connection keeps only the decompressor's 43 KB.
//!   Compressed bytes that decode to nothing (empty sync-flush blocks) do not count as
//!   activity for the idle timeout.
//!
//! This is its own loop rather than `net::pump` because of the third `select!` arm
//! (store changes) and because execution hands the session to a blocking thread.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::task::TaskTracker;

use super::session::{Decision, Event, Session, SessionConfig, Step};
use crate::auth;
use crate::net::deflate::Deflate;
use crate::net::pump::write;
use crate::net::{Busy, ConnInfo, ConnLimits, Listener, Shared, Stream};
use crate::sasl::Credentials;
use crate::store;

/// Failed logins after which the session closes the connection.
const MAX_AUTH_FAILURES: u32 = 3;
/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;
/// How long the stream's TLS close may take.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a write may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Decompressed bytes fed to the session at a time (COMPRESS=DEFLATE).
pub const INFLATE_CHUNK: usize = 16 * 1024;
/// Bytes of a batch compressed at a time (COMPRESS=DEFLATE): a large FETCH chunk is not
/// held twice, plain and compressed.
const COMPRESS_SLICE: usize = 64 * 1024;

/// The line for connections over the caps.
pub fn busy() -> Busy {
    Busy(Session::busy_reply())
}

/// IMAP state shared by every connection.
pub struct Imap {
    shared: Shared,
    /// `[[imap_compat]]`, shared by every connection.
    compat: Arc<Vec<crate::config::CompatRule>>,
    /// SORT keys shared by every IMAP connection.
    sort_cache: Arc<super::sort::KeyCache>,
}

/// Why a connection ended (logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    PeerClosed,
    TimedOut,
    Shutdown,
    IoError,
    /// The client's DEFLATE stream is broken (COMPRESS).
    BadCompression,
    SessionBug,
}

/// Writes `bytes`, compressed and sync-flushed when COMPRESS is active (RFC 4978 §3),
/// [`COMPRESS_SLICE`] bytes at a time (`timeout` applies to each).
async fn send(
    stream: &mut Stream,
    deflate: &mut Option<Box<Deflate>>,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let Some(d) = deflate else {
        return write(stream, bytes, timeout).await;
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let mut parts = bytes.chunks(COMPRESS_SLICE).peekable();
    while let Some(part) = parts.next() {
        let out = d.compress_part(part, parts.peek().is_none());
        if !out.is_empty() {
            write(stream, &out, timeout).await?;
        }
    }
    Ok(())
}

/// Writes a goodbye line (compressed when COMPRESS is active), bounded by
/// [`GOODBYE_TIMEOUT`], ignoring errors: the connection is being dropped.
async fn goodbye(stream: &mut Stream, deflate: &mut Option<Box<Deflate>>, line: &[u8]) {
    let _ = send(stream, deflate, line, GOODBYE_TIMEOUT).await;
}

impl Imap {
    /// The IMAP service over the daemon's shared state.
    pub fn new(shared: Shared) -> Arc<Imap> {
        let compat = Arc::new(shared.config.imap_compat.clone());
        Arc::new(Imap {
            shared,
            compat,
            sort_cache: Arc::default(),
        })
    }

    /// Accepts on `listener` until shutdown.
    pub async fn serve(
        self: Arc<Self>,
        listener: Listener,
        limits: Arc<ConnLimits>,
        tracker: TaskTracker,
    ) {
        let stop = self.shared.stop.clone();
        listener
            .serve(limits, stop, tracker, move |stream, info| {
                self.clone().connection(stream, info)
            })
            .await;
    }

    async fn connection(self: Arc<Self>, mut stream: Stream, info: ConnInfo) {
        let config = &self.shared.config;
        let ip = info.peer.ip();
        let session = Session::new(
            SessionConfig {
                tls_available: true,
                plaintext_auth_allowed: config.is_plaintext_allowed(ip),
                max_message_size: config.limits.max_message_size,
                max_auth_failures: MAX_AUTH_FAILURES,
                max_line: config.limits.imap_max_line_length,
                budget: Some(self.shared.budget.clone()),
                compat: self.compat.clone(),
                sort_cache: Some(self.sort_cache.clone()),
            },
            stream.is_tls(),
        );
        let end = self.run(&mut stream, session, ip).await;
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, stream.shutdown()).await;
        tracing::debug!(service = info.service, peer = %info.peer, ?end, "imap connection ended");
    }

    async fn run(&self, stream: &mut Stream, mut session: Session, ip: IpAddr) -> End {
        let shared = &self.shared;
        let idle = shared.config.limits.imap_idle_timeout;
        let mut changes = shared.store.subscribe();
        if write(stream, &session.greeting(), WRITE_TIMEOUT)
            .await
            .is_err()
        {
            return End::IoError;
        }
        let mut buf = vec![0u8; READ_BUFFER];
        // DEFLATE in both directions once COMPRESS is active (RFC 4978).
        let mut deflate: Option<Box<Deflate>> = None;
        // When the command now arriving began (its deadline is `idle` later), and whether
        // the session answered anything since the last read (a finished command).
        let mut command_started: Option<tokio::time::Instant> = None;
        let mut answered = false;
        // Where the idle timeout runs from, and whether the last read brought nothing
        // for the session (compressed bytes that decoded to nothing): then it does not
        // restart.
        let mut idle_from = tokio::time::Instant::now();
        let mut quiet_read = false;
        loop {
            match session.next() {
                Step::Write(bytes) => {
                    answered = true;
                    if send(stream, &mut deflate, &bytes, WRITE_TIMEOUT)
                        .await
                        .is_err()
                    {
                        return End::IoError;
                    }
                }
                Step::Event(Event::Login(creds)) => {
                    answered = true;
                    let d = self.login(creds, ip).await;
                    session.answer(d);
                }
                Step::Event(Event::Execute) => {
                    answered = true;
                    let store = shared.store.clone();
                    let now = store::now_unix();
                    session = match tokio::task::spawn_blocking(move || {
                        session.execute(&store, now);
                        session
                    })
                    .await
                    {
                        Ok(s) => s,
                        Err(_) => return End::SessionBug,
                    };
                }
                Step::NeedMoreInput => {
                    if shared.stop.is_cancelled() {
                        goodbye(stream, &mut deflate, &session.shutdown_reply()).await;
                        return End::Shutdown;
                    }
                    if let Some(d) = &mut deflate {
                        // The next piece of what the client sent, if any is left.
                        match d.inflate(INFLATE_CHUNK) {
                            Ok(plain) if !plain.is_empty() => {
                                quiet_read = false;
                                session.feed(&plain);
                                continue;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(peer = %ip, error = %e, "imap: bad DEFLATE input");
                                goodbye(stream, &mut deflate, &session.bad_compression_reply())
                                    .await;
                                return End::BadCompression;
                            }
                        }
                        if session.is_idling() {
                            // Quiet for a while, likely: keep only the decompressor.
                            d.release_compressor();
                        }
                    }
                    let idling = session.is_idling();
                    let now = tokio::time::Instant::now();
                    if !quiet_read {
                        idle_from = now;
                    }
                    quiet_read = false;
                    command_started = match (session.mid_command(), command_started) {
                        (false, _) => None,
                        (true, Some(t)) if !answered => Some(t),
                        (true, _) => Some(now),
                    };
                    answered = false;
                    let until = command_started.unwrap_or(idle_from) + idle;
                    tokio::select! {
                        r = stream.read(&mut buf) => match r {
                            Ok(0) => return End::PeerClosed,
                            Ok(n) => {
                                let input = buf.get(..n).unwrap_or_default();
                                match &mut deflate {
                                    // Decompressed piece by piece above, next time round.
                                    Some(d) => {
                                        if d.push_input(input).is_ok() {
                                            quiet_read = true;
                                        }
                                        // An error comes out of the next inflate.
                                    }
                                    None => session.feed(input),
                                }
                            }
                            Err(_) => return End::IoError,
                        },
                        c = changes.recv(), if idling => match c {
                            Ok(change) => session.notify(Some(&change)),
                            Err(RecvError::Lagged(_)) => session.notify(None),
                            Err(RecvError::Closed) => {
                                goodbye(stream, &mut deflate, &session.shutdown_reply()).await;
                                return End::Shutdown;
                            }
                        },
                        _ = tokio::time::sleep_until(until) => {
                            goodbye(stream, &mut deflate, &session.timeout_reply()).await;
                            return End::TimedOut;
                        }
                        _ = shared.stop.cancelled() => {
                            goodbye(stream, &mut deflate, &session.shutdown_reply()).await;
                            return End::Shutdown;
                        }
                    }
                }
                Step::StartTls => {
                    if stream.upgrade(&shared.tls.acceptor()).await.is_err() {
                        return End::IoError;
                    }
                    session.tls_established();
                }
                Step::Compress => {
                    // RFC 4978 §3: everything after the tagged OK (written above) is
                    // compressed, both ways.
                    let mut d = Box::new(Deflate::new());
                    // An error comes out of the first inflate.
                    let _ = d.push_input(&session.compression_started());
                    deflate = Some(d);
                }
                Step::Close => return End::Closed,
                Step::Wait => return End::SessionBug,
            }
        }
    }

    async fn login(&self, credentials: Credentials, ip: IpAddr) -> Decision {
        let shared = &self.shared;
        let login = credentials.username.clone();
        let domain = shared.config.primary_domain().to_string();
        let l2 = login.clone();
        let password = credentials.password;
        let account = shared
            .store
            .call(move |s| auth::authenticate(s, &l2, password.expose(), &domain))
            .await;
        match account {
            Ok(Some(a)) => {
                shared.limiter.success(&login);
                Decision::LoggedIn { account: a.id }
            }
            Ok(None) => {
                tracing::info!(peer = %ip, login = %login, "imap login failed");
                shared.failed_login_delay(ip, &login).await;
                Decision::Failed
            }
            Err(e) => {
                tracing::warn!(error = %e, "imap login: store unavailable");
                Decision::Unavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MailboxSel, NewMessage, Op, Store, Target};
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::{TcpListener, TcpStream};

    struct Setup {
        shared: Shared,
        account: u64,
        r: BufReader<OwnedReadHalf>,
        w: OwnedWriteHalf,
        server: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    /// A store with one account, and one client connected to a driver task.
    async fn setup(idle: Duration) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::defaults();
        cfg.server.data_dir = dir.path().to_path_buf();
        cfg.limits.imap_idle_timeout = idle;
        let store = Store::open(dir.path()).unwrap();
        let account = match store
            .write(Op::CreateAccount {
                address: "a@home.arpa".into(),
                password_hash: auth::hash_password("pw").unwrap(),
            })
            .unwrap()
        {
            store::Output::Id(id) => id,
            o => panic!("{o:?}"),
        };
        let shared = Shared {
            store: store.clone(),
            tls: crate::tls::Tls::from_config(&cfg).unwrap(),
            config: Arc::new(cfg),
            limiter: Arc::new(auth::Limiter::default()),
            budget: crate::budget::Budget::new(64 << 20),
            stop: tokio_util::sync::CancellationToken::new(),
            spam_counts: Default::default(),
        };
        let imap = Imap::new(shared.clone());
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, peer) = l.accept().await.unwrap();
            let info = ConnInfo {
                service: "imap",
                peer,
                local: addr,
            };
            imap.connection(Stream::Plain(tcp), info).await;
        });
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Setup {
            shared,
            account,
            r: BufReader::new(r),
            w,
            server,
            _dir: dir,
        }
    }

    /// Reads lines until one starts with `prefix`; returns it.
    async fn expect(r: &mut BufReader<OwnedReadHalf>, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert!(!line.is_empty(), "connection closed waiting for {prefix}");
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    async fn login_select_idle(t: &mut Setup) {
        expect(&mut t.r, "* OK").await;
        t.w.write_all(b"a LOGIN a@home.arpa pw\r\nb SELECT INBOX\r\nc IDLE\r\n")
            .await
            .unwrap();
        expect(&mut t.r, "a OK").await;
        expect(&mut t.r, "b OK").await;
        expect(&mut t.r, "+ idling").await;
    }

    /// Delivers one small message to the account's INBOX (committed when this returns).
    async fn deliver_one(store: Store, account: u64) {
        tokio::task::spawn_blocking(move || {
            store
                .write(Op::Deliver {
                    message: Arc::new(NewMessage::new(b"Subject: x\r\n\r\nhi\r\n".to_vec())),
                    targets: vec![Target {
                        account,
                        mailbox: MailboxSel::Inbox,
                    }],
                    flags: 0,
                    keywords: vec![],
                    internal_date: 0,
                    delivered: true,
                })
                .unwrap()
        })
        .await
        .unwrap();
    }

    /// IDLE push through the real driver loop: a delivery committed to the store reaches
    /// an idling client as EXISTS, with no polling.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_receives_exists_on_delivery() {
        let mut t = setup(Duration::from_secs(60)).await;
        login_select_idle(&mut t).await;
        let (store, account) = (t.shared.store.clone(), t.account);
        let t0 = std::time::Instant::now();
        deliver_one(store, account).await;
        let exists = tokio::time::timeout(Duration::from_secs(2), expect(&mut t.r, "* "))
            .await
            .expect("EXISTS within 2 s");
        assert_eq!(exists, "* 1 EXISTS\r\n");
        assert!(t0.elapsed() < Duration::from_secs(2));
        t.w.write_all(b"DONE\r\nz LOGOUT\r\n").await.unwrap();
        expect(&mut t.r, "c OK").await;
        expect(&mut t.r, "z OK").await;
        t.server.await.unwrap();
    }

    /// Server shutdown while a client idles: the session's `* BYE`, then the close.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_sends_bye_to_an_idling_client() {
        let mut t = setup(Duration::from_secs(60)).await;
        login_select_idle(&mut t).await;
        t.shared.stop.cancel();
        let bye = tokio::time::timeout(Duration::from_secs(2), expect(&mut t.r, "* BYE"))
            .await
            .expect("BYE");
        assert_eq!(bye, "* BYE Server shutting down\r\n");
        tokio::time::timeout(Duration::from_secs(2), t.server)
            .await
            .expect("connection task ends")
            .unwrap();
    }

    /// The inactivity autologout (RFC 9051 §5.4) with `imap_idle_timeout`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_timeout_logs_out() {
        let mut t = setup(Duration::from_millis(300)).await;
        expect(&mut t.r, "* OK").await;
        let bye = tokio::time::timeout(Duration::from_secs(5), expect(&mut t.r, "* BYE"))
            .await
            .expect("autologout");
        assert_eq!(bye, "* BYE Autologout; idle for too long\r\n");
        t.server.await.unwrap();
    }

    /// After COMPRESS (RFC 4978): the push during IDLE arrives compressed and at once (the
    /// batch is sync-flushed), with the compressor's state dropped while idling; and a
    /// client that only sends empty sync-flush blocks is logged out like an idle one,
    /// with a compressed BYE.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compressed_idle_push_and_empty_blocks_do_not_keep_alive() {
        let mut t = setup(Duration::from_millis(800)).await;
        expect(&mut t.r, "* OK").await;
        t.w.write_all(b"a LOGIN a@home.arpa pw\r\nb COMPRESS DEFLATE\r\n")
            .await
            .unwrap();
        expect(&mut t.r, "a OK").await;
        expect(&mut t.r, "b OK").await;
        assert!(t.r.buffer().is_empty());
        let mut z = Deflate::new();
        // Reads until the decompressed text holds `want`; returns it.
        async fn until(r: &mut BufReader<OwnedReadHalf>, z: &mut Deflate, want: &str) -> String {
            let mut text = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&text).contains(want) {
                let n = tokio::time::timeout(Duration::from_secs(2), r.read(&mut buf))
                    .await
                    .expect("in time")
                    .unwrap();
                assert!(
                    n > 0,
                    "closed before {want:?}: {}",
                    String::from_utf8_lossy(&text)
                );
                z.push_input(&buf[..n]).unwrap();
                loop {
                    let p = z.inflate(4096).unwrap();
                    if p.is_empty() {
                        break;
                    }
                    text.extend(p);
                }
            }
            String::from_utf8_lossy(&text).into_owned()
        }
        t.w.write_all(&z.compress(b"c SELECT INBOX\r\nd IDLE\r\n"))
            .await
            .unwrap();
        until(&mut t.r, &mut z, "+ idling").await;
        let (store, account) = (t.shared.store.clone(), t.account);
        deliver_one(store, account).await;
        until(&mut t.r, &mut z, "* 1 EXISTS\r\n").await;
        t.w.write_all(&z.compress(b"DONE\r\n")).await.unwrap();
        until(&mut t.r, &mut z, "d OK").await;
        // Empty blocks (`00 00 ff ff`) every 200 ms: nothing for the session, so the
        // 800 ms autologout still comes.
        // (The client's compressor and decompressor in two halves, one per task.)
        let mut tx = Deflate::new();
        let t0 = std::time::Instant::now();
        let keepalive = async {
            loop {
                if t.w.write_all(&tx.compress(b"")).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let bye = async { until(&mut t.r, &mut z, "* BYE").await };
        let text = tokio::select! {
            b = bye => b,
            _ = keepalive => panic!("write failed before the BYE"),
        };
        assert!(
            text.ends_with("* BYE Autologout; idle for too long\r\n"),
            "{text}"
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        t.server.await.unwrap();
    }

    /// A slowloris client (a byte every 150 ms, never a whole command) restarts no timer:
    /// it is logged out when the command has taken `imap_idle_timeout` (RFC 9051 §5.4),
    /// as an idle one would be, while an active client's commands keep it alive.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_must_arrive_within_the_idle_timeout() {
        let mut t = setup(Duration::from_millis(600)).await;
        expect(&mut t.r, "* OK").await;
        // Whole commands, each well within the timeout, for longer than the timeout.
        for i in 0..6 {
            t.w.write_all(format!("n{i} NOOP\r\n").as_bytes())
                .await
                .unwrap();
            expect(&mut t.r, &format!("n{i} OK")).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let t0 = std::time::Instant::now();
        let dribble = async {
            for b in b"a NOOP and a very slow line".iter().cycle().take(40) {
                if t.w.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        };
        let bye = async { expect(&mut t.r, "* BYE").await };
        let bye = tokio::select! {
            b = bye => b,
            _ = dribble => panic!("not cut while dribbling for 6 s"),
        };
        assert_eq!(bye, "* BYE Autologout; idle for too long\r\n");
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        t.server.await.unwrap();
    }
}
