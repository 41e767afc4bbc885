//! The generic connection loop (STYLE habits 1, 6, 7): it moves bytes between a [`Stream`]
//! and a sans-I/O session and owns the timers; the session owns the protocol, the
//! [`Handler`] owns the policy (store, passwords, limits).
//!
//! ```text
//! write(greeting)
//! loop { match session.next() {
//!     Write(b)      => write b (bounded by the idle timeout, so a client that stops
//!                      reading cannot hold the task forever)
//!     Event(e)      => session.answer(handler.handle(e).await)
//!     NeedMoreInput => read (idle timeout, session deadline, stop) → session.feed
//!     StartTls      => handshake → session.tls_established()
//!     Close | Wait  => close
//! } }
//! ```
//! The socket is read only after the session asked for input, one bounded buffer at a
//! time, so memory per connection is that buffer plus what the session itself caps.
//! An event is never cancelled by shutdown: its answer may be owed for a durable commit
//! (SPEC §5), and handlers bound their own waits. When the stop token fires while the
//! session waits for input, the session's own [`Protocol::shutdown_reply`] is sent and the
//! connection closed; on the idle timeout or the session deadline,
//! [`Protocol::timeout_reply`].

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::stream::Stream;

/// Bytes read from the socket at a time.
pub const READ_BUFFER: usize = 16 * 1024;

/// How long the goodbye line may take to write when the connection is being dropped.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a session asks of the pump: the step every sans-I/O session returns.
pub use crate::step::Step;

/// A sans-I/O protocol session as the pump sees it. Implemented by each protocol's driver
/// module as a thin adapter over its session; no protocol logic belongs in the adapter.
pub trait Protocol: Send {
    /// What the session asks the handler.
    type Event: Send;
    /// The handler's answer.
    type Decision: Send;
    /// The protocol's greeting, written first.
    fn greeting(&self) -> Vec<u8>;
    /// Hands the session bytes read from the client.
    fn feed(&mut self, input: &[u8]);
    /// The next step.
    fn next_step(&mut self) -> Step<Self::Event>;
    /// Answers the outstanding event.
    fn answer(&mut self, decision: Self::Decision);
    /// The TLS handshake after [`Step::StartTls`] finished.
    fn tls_established(&mut self);
    /// The goodbye line on server shutdown.
    fn shutdown_reply(&self) -> Vec<u8>;
    /// The goodbye line when the client was idle too long (or the session lasted too long).
    fn timeout_reply(&self) -> Vec<u8>;
    /// The idle timeout that applies in the session's current state.
    fn idle_timeout(&self) -> Duration;
    /// True while a command line has begun to arrive but is not complete. The idle
    /// timeout then runs from the command's first byte, not from the last read, so a
    /// slowloris client that sends a byte now and then is cut like an idle one.
    fn mid_command(&self) -> bool {
        false
    }
}

/// Declares `$name { inner: $session, idle: Duration }` and implements [`Protocol`] for
/// it by delegating to the session's own methods (every sans-I/O session has the same
/// shape): one adapter for every protocol driver instead of a copy in each.
macro_rules! session_adapter {
    ($name:ident, $session:ty, $event:ty, $decision:ty) => {
        /// The session with the timer setting the pump needs.
        struct $name {
            inner: $session,
            idle: std::time::Duration,
        }

        impl $crate::net::Protocol for $name {
            type Event = $event;
            type Decision = $decision;

            fn greeting(&self) -> Vec<u8> {
                self.inner.greeting()
            }
            fn feed(&mut self, input: &[u8]) {
                self.inner.feed(input)
            }
            fn next_step(&mut self) -> $crate::net::Step<$event> {
                self.inner.next()
            }
            fn answer(&mut self, decision: $decision) {
                self.inner.answer(decision)
            }
            fn tls_established(&mut self) {
                self.inner.tls_established()
            }
            fn shutdown_reply(&self) -> Vec<u8> {
                self.inner.shutdown_reply()
            }
            fn timeout_reply(&self) -> Vec<u8> {
                self.inner.timeout_reply()
            }
            fn idle_timeout(&self) -> std::time::Duration {
                self.idle
            }
            fn mid_command(&self) -> bool {
                self.inner.mid_command()
            }
        }
    };
}
pub(crate) use session_adapter;

/// Answers a session's events: the policy side of a connection.
pub trait Handler<P: Protocol>: Send {
    /// Decides one event. Must bound its own waits (for example a failed-login delay ends
    /// early when the server stops) since the pump does not cancel it.
    fn handle(&mut self, event: P::Event) -> impl Future<Output = P::Decision> + Send;
    /// TLS became active on the connection (after STARTTLS/STLS); `stream` tells which
    /// version and cipher ([`Stream::tls_description`]).
    fn tls_established(&mut self, stream: &Stream) {
        let _ = stream;
    }
}

/// Per-connection pump settings.
#[derive(Clone)]
pub struct PumpConfig {
    /// For STARTTLS/STLS; `None` when no certificate is available (a session asking for
    /// TLS then is closed).
    pub acceptor: Option<TlsAcceptor>,
    /// The longest the whole connection may last, however active (`None`: no limit).
    pub session_timeout: Option<Duration>,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The session said so (QUIT, error limit).
    Closed,
    /// The client closed its side.
    PeerClosed,
    /// Idle timeout or session deadline.
    TimedOut,
    /// Server shutdown.
    Shutdown,
    /// A read or write failed, or the TLS handshake did.
    IoError,
    /// The session returned `Wait` with nothing outstanding.
    SessionBug,
}

/// Runs one connection to its end; the stream is shut down before returning.
pub async fn run<P: Protocol, H: Handler<P>>(
    mut stream: Stream,
    mut session: P,
    mut handler: H,
    cfg: PumpConfig,
    stop: CancellationToken,
) -> End {
    let deadline = cfg.session_timeout.map(|d| Instant::now() + d);
    let end = pump(
        &mut stream,
        &mut session,
        &mut handler,
        &cfg,
        deadline,
        &stop,
    )
    .await;
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, stream.shutdown()).await;
    end
}

async fn pump<P: Protocol, H: Handler<P>>(
    stream: &mut Stream,
    session: &mut P,
    handler: &mut H,
    cfg: &PumpConfig,
    deadline: Option<Instant>,
    stop: &CancellationToken,
) -> End {
    if write(stream, &session.greeting(), session.idle_timeout())
        .await
        .is_err()
    {
        return End::IoError;
    }
    let mut buf = vec![0u8; READ_BUFFER];
    // When the command line now arriving began, and whether the session answered
    // anything since the last read (so a command was completed).
    let mut command_started: Option<Instant> = None;
    let mut answered = false;
    loop {
        match session.next_step() {
            Step::Write(bytes) => {
                answered = true;
                if write(stream, &bytes, session.idle_timeout()).await.is_err() {
                    return End::IoError;
                }
            }
            Step::Event(event) => {
                answered = true;
                let decision = handler.handle(event).await;
                session.answer(decision);
            }
            Step::NeedMoreInput => {
                if stop.is_cancelled() {
                    goodbye(stream, &session.shutdown_reply()).await;
                    return End::Shutdown;
                }
                let now = Instant::now();
                command_started = match (session.mid_command(), command_started) {
                    (false, _) => None,
                    (true, Some(t)) if !answered => Some(t),
                    (true, _) => Some(now),
                };
                answered = false;
                let idle = command_started.unwrap_or(now) + session.idle_timeout();
                let until = match deadline {
                    Some(d) => d.min(idle),
                    None => idle,
                };
                tokio::select! {
                    r = stream.read(&mut buf) => match r {
                        Ok(0) => return End::PeerClosed,
                        Ok(n) => session.feed(buf.get(..n).unwrap_or_default()),
                        Err(_) => return End::IoError,
                    },
                    _ = tokio::time::sleep_until(until) => {
                        goodbye(stream, &session.timeout_reply()).await;
                        return End::TimedOut;
                    }
                    _ = stop.cancelled() => {
                        goodbye(stream, &session.shutdown_reply()).await;
                        return End::Shutdown;
                    }
                }
            }
            Step::StartTls => {
                let Some(acceptor) = &cfg.acceptor else {
                    return End::SessionBug;
                };
                if stream.upgrade(acceptor).await.is_err() {
                    return End::IoError;
                }
                session.tls_established();
                handler.tls_established(stream);
            }
            Step::Close => return End::Closed,
            // Only IMAP compresses (RFC 4978), in its own driver.
            Step::Wait | Step::Compress => return End::SessionBug,
        }
    }
}

/// Writes and flushes within `timeout` (a client that does not read must not pin the task).
pub(crate) async fn write(
    stream: &mut Stream,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let io = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, io).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write timed out",
        )),
    }
}

/// Writes a goodbye line, bounded by a short timeout, ignoring errors (the connection is
/// being dropped anyway).
pub(crate) async fn goodbye(stream: &mut Stream, line: &[u8]) {
    let _ = write(stream, line, GOODBYE_TIMEOUT).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    /// A line echo protocol: `ASK x` raises an event whose answer is written back, `BYE`
    /// closes; it records how many bytes it was fed at once to prove reads are bounded.
    struct Echo {
        input: Vec<u8>,
        out: std::collections::VecDeque<Step<String>>,
        waiting: bool,
        idle: Duration,
        max_feed: usize,
        closed: bool,
    }

    impl Echo {
        fn new(idle: Duration) -> Echo {
            Echo {
                input: Vec::new(),
                out: Default::default(),
                waiting: false,
                idle,
                max_feed: 0,
                closed: false,
            }
        }
    }

    impl Protocol for Echo {
        type Event = String;
        type Decision = String;
        fn greeting(&self) -> Vec<u8> {
            b"hello\r\n".to_vec()
        }
        fn feed(&mut self, input: &[u8]) {
            self.max_feed = self.max_feed.max(input.len());
            self.input.extend_from_slice(input);
        }
        fn next_step(&mut self) -> Step<String> {
            if let Some(s) = self.out.pop_front() {
                return s;
            }
            if self.closed {
                return Step::Close;
            }
            if self.waiting {
                return Step::Wait;
            }
            let Some(i) = self.input.iter().position(|&b| b == b'\n') else {
                return Step::NeedMoreInput;
            };
            let line: Vec<u8> = self.input.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            if line == "BYE" {
                self.closed = true;
                return Step::Write(b"bye\r\n".to_vec());
            }
            if let Some(q) = line.strip_prefix("ASK ") {
                self.waiting = true;
                return Step::Event(q.to_string());
            }
            Step::Write(format!("echo {line}\r\n").into_bytes())
        }
        fn answer(&mut self, d: String) {
            self.waiting = false;
            self.out
                .push_back(Step::Write(format!("{d}\r\n").into_bytes()));
        }
        fn tls_established(&mut self) {}
        fn shutdown_reply(&self) -> Vec<u8> {
            b"shutting down\r\n".to_vec()
        }
        fn timeout_reply(&self) -> Vec<u8> {
            b"timeout\r\n".to_vec()
        }
        fn idle_timeout(&self) -> Duration {
            self.idle
        }
        fn mid_command(&self) -> bool {
            !self.input.is_empty()
        }
    }

    struct Upper;
    impl Handler<Echo> for Upper {
        async fn handle(&mut self, e: String) -> String {
            e.to_uppercase()
        }
    }

    async fn pair() -> (Stream, BufReader<TcpStream>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (Stream::Plain(s), BufReader::new(c))
    }

    async fn line(r: &mut BufReader<TcpStream>) -> String {
        let mut s = String::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut s))
            .await
            .unwrap()
            .unwrap();
        s
    }

    fn cfg() -> PumpConfig {
        PumpConfig {
            acceptor: None,
            session_timeout: None,
        }
    }

    #[tokio::test]
    async fn pumps_lines_events_and_close() {
        let (s, mut c) = pair().await;
        let task = tokio::spawn(run(
            s,
            Echo::new(Duration::from_secs(5)),
            Upper,
            cfg(),
            CancellationToken::new(),
        ));
        assert_eq!(line(&mut c).await, "hello\r\n");
        c.get_mut()
            .write_all(b"one\r\nASK two\r\nBYE\r\n")
            .await
            .unwrap();
        assert_eq!(line(&mut c).await, "echo one\r\n");
        assert_eq!(line(&mut c).await, "TWO\r\n");
        assert_eq!(line(&mut c).await, "bye\r\n");
        assert_eq!(task.await.unwrap(), End::Closed);
    }

    #[tokio::test]
    async fn idle_timeout_sends_the_timeout_reply() {
        let (s, mut c) = pair().await;
        let task = tokio::spawn(run(
            s,
            Echo::new(Duration::from_millis(100)),
            Upper,
            cfg(),
            CancellationToken::new(),
        ));
        assert_eq!(line(&mut c).await, "hello\r\n");
        assert_eq!(line(&mut c).await, "timeout\r\n");
        assert_eq!(task.await.unwrap(), End::TimedOut);
    }

    #[tokio::test]
    async fn session_deadline_applies_however_active() {
        let (s, mut c) = pair().await;
        let mut cfg = cfg();
        cfg.session_timeout = Some(Duration::from_millis(300));
        let task = tokio::spawn(run(
            s,
            Echo::new(Duration::from_secs(5)),
            Upper,
            cfg,
            CancellationToken::new(),
        ));
        assert_eq!(line(&mut c).await, "hello\r\n");
        let mut replies = 0;
        loop {
            c.get_mut().write_all(b"x\r\n").await.unwrap();
            let l = line(&mut c).await;
            if l == "timeout\r\n" {
                break;
            }
            replies += 1;
            assert!(replies < 100, "the deadline never fired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(task.await.unwrap(), End::TimedOut);
    }

    /// A slowloris client (a byte every 50 ms, never a whole line) is cut when its line
    /// has taken the idle timeout, though each byte came well within it; whole lines at
    /// the same pace keep the session alive.
    #[tokio::test]
    async fn a_command_line_must_arrive_within_the_idle_timeout() {
        let (s, mut c) = pair().await;
        let task = tokio::spawn(run(
            s,
            Echo::new(Duration::from_millis(300)),
            Upper,
            cfg(),
            CancellationToken::new(),
        ));
        assert_eq!(line(&mut c).await, "hello\r\n");
        for _ in 0..10 {
            c.get_mut().write_all(b"x\r\n").await.unwrap();
            assert_eq!(line(&mut c).await, "echo x\r\n");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t0 = Instant::now();
        for _ in 0..60 {
            if c.get_mut().write_all(b"y").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if task.is_finished() {
                break;
            }
        }
        assert_eq!(line(&mut c).await, "timeout\r\n");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert_eq!(task.await.unwrap(), End::TimedOut);
    }

    #[tokio::test]
    async fn stop_sends_the_sessions_goodbye() {
        let (s, mut c) = pair().await;
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            s,
            Echo::new(Duration::from_secs(30)),
            Upper,
            cfg(),
            stop.clone(),
        ));
        assert_eq!(line(&mut c).await, "hello\r\n");
        stop.cancel();
        assert_eq!(line(&mut c).await, "shutting down\r\n");
        assert_eq!(task.await.unwrap(), End::Shutdown);
    }

    #[tokio::test]
    async fn reads_are_bounded_and_peer_close_ends() {
        let (s, mut c) = pair().await;
        let task = tokio::spawn(async move {
            let mut echo = Echo::new(Duration::from_secs(5));
            let mut stream = s;
            let end = pump(
                &mut stream,
                &mut echo,
                &mut Upper,
                &cfg(),
                None,
                &CancellationToken::new(),
            )
            .await;
            (end, echo.max_feed)
        });
        assert_eq!(line(&mut c).await, "hello\r\n");
        c.get_mut().write_all(&vec![b'a'; 200_000]).await.unwrap();
        c.get_mut().shutdown().await.unwrap();
        let (end, max_feed) = task.await.unwrap();
        assert_eq!(end, End::PeerClosed);
        assert!(max_feed <= READ_BUFFER, "fed {max_feed} bytes at once");
    }

    #[tokio::test]
    async fn starttls_without_a_certificate_closes() {
        struct Tls;
        impl Protocol for Tls {
            type Event = ();
            type Decision = ();
            fn greeting(&self) -> Vec<u8> {
                Vec::new()
            }
            fn feed(&mut self, _: &[u8]) {}
            fn next_step(&mut self) -> Step<()> {
                Step::StartTls
            }
            fn answer(&mut self, _: ()) {}
            fn tls_established(&mut self) {
                panic!("no TLS without an acceptor");
            }
            fn shutdown_reply(&self) -> Vec<u8> {
                Vec::new()
            }
            fn timeout_reply(&self) -> Vec<u8> {
                Vec::new()
            }
            fn idle_timeout(&self) -> Duration {
                Duration::from_secs(1)
            }
        }
        struct Nothing;
        impl Handler<Tls> for Nothing {
            async fn handle(&mut self, _: ()) {}
        }
        let (s, _c) = pair().await;
        let end = run(s, Tls, Nothing, cfg(), CancellationToken::new()).await;
        assert_eq!(end, End::SessionBug);
    }
}
