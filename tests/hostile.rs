//! Hostile input on all seven listeners (issue 8 part 2, SPEC §5 "Bad input never crashes
//! the server and never corrupts the store"): over-long lines, literals and headers,
//! messages over SIZE, malformed MIME delivered and then fetched and retrieved, slowloris
//! and idle clients, 1,000 concurrent idle connections, connect-and-drop floods, an AUTH
//! brute force, and TLS handshake garbage.
//!
//! Each test runs its own daemon and a [`Probe`]: a well-behaved client that, once a
//! second, does an SMTP EHLO, an IMAP LOGIN/SELECT/NOOP and a POP3 CAPA from 127.0.0.1
//! while the hostile traffic comes from other loopback addresses (127.0.x.y, so the
//! per-address caps and the failed-login limiter see them as other clients). At the end
//! [`finish`] checks that every probe round was answered (within a generous 10 s; the
//! latencies are printed, not asserted), that the daemon is alive and logged no panic,
//! that its peak RSS (VmHWM) stayed under [`MAX_RSS_KIB`], and that the store is
//! consistent: the same message counts after a `kill -9` and restart, and `letterbox
//! status` answers. Every loop is bounded in count and time.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Server;

/// The bound on the daemon's peak RSS (VmHWM) in any of these tests.
const MAX_RSS_KIB: u64 = 256 * 1024;
/// A well-behaved client must be answered within this, whatever else is going on.
const ANSWER_BOUND: Duration = Duration::from_secs(10);
/// The probe's account.
const PROBE: &str = "probe@home.arpa";
const PROBE_PW: &str = "probe-password-1";
/// The account hostile mail is delivered to.
const VICTIM: &str = "victim@home.arpa";
const VICTIM_PW: &str = "victim-password-1";
/// Listeners with implicit TLS.
const IMPLICIT_TLS: [&str; 3] = ["submissions", "imaps", "pop3s"];

/// Limits shared by the tests: a 1 MiB SIZE so that "larger than SIZE" is cheap, room for
/// 1,000 connections, and 200 per client address.
const LIMITS: &str = "max_message_size = \"1MiB\"\nmax_connections = 1500\n\
                      max_connections_per_ip = 200\n";

// ---------------------------------------------------------------------------------------
// Clients

/// One client connection, plain or TLS (rustls, certificate not verified: the daemon's
/// is self-signed).
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts any certificate (loopback, self-signed); signatures are still checked.
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// A TCP connection to 127.0.0.1:`port` from the loopback address `src` (Linux routes all
/// of 127.0.0.0/8 to lo), so the daemon sees a client of its own.
fn tcp_from(src: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    tcp_from_linger(src, port, false)
}

fn tcp_from_linger(src: Ipv4Addr, port: u16, reset: bool) -> io::Result<TcpStream> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    let tcp = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
        if reset {
            s.set_zero_linger()?;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        tokio::time::timeout(Duration::from_secs(10), s.connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
            .and_then(|t| t.into_std())
    })?;
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(20)))?;
    Ok(tcp)
}

/// Runs a TLS client handshake on `tcp` to the end.
fn tls_wrap(mut tcp: TcpStream) -> io::Result<Conn> {
    let name = rustls_pki_types::ServerName::try_from("letterbox.home.arpa")
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut conn = rustls::ClientConnection::new(tls_config(), name)
        .map_err(|e| io::Error::other(e.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
}

/// A line-oriented client.
struct Client {
    r: BufReader<Conn>,
}

impl Client {
    /// Connects to `service` from `src` (TLS on the implicit-TLS listeners) and reads the
    /// greeting, which must be the protocol's "ready".
    fn connect(s: &Server, service: &str, src: Ipv4Addr) -> io::Result<Client> {
        let tcp = tcp_from(src, s.port(service))?;
        let conn = if IMPLICIT_TLS.contains(&service) {
            tls_wrap(tcp)?
        } else {
            Conn::Plain(tcp)
        };
        let mut c = Client {
            r: BufReader::with_capacity(64 * 1024, conn),
        };
        let greeting = c.line()?;
        let want = greeting_prefix(service);
        if !greeting.starts_with(want) {
            return Err(io::Error::other(format!("{service} greeting {greeting:?}")));
        }
        Ok(c)
    }

    fn set_timeout(&self, d: Duration) {
        let _ = self.r.get_ref().tcp().set_read_timeout(Some(d));
        let _ = self.r.get_ref().tcp().set_write_timeout(Some(d));
    }

    /// One line, lossily decoded; an error on EOF.
    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        // Bounded: no reply line of ours is anywhere near 1 MiB.
        let n = (&mut self.r).take(1 << 20).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads lines until one starts with `prefix`, at most 10,000 lines.
    fn until(&mut self, prefix: &str) -> io::Result<String> {
        for _ in 0..10_000 {
            let l = self.line()?;
            if l.starts_with(prefix) {
                return Ok(l);
            }
        }
        Err(io::Error::other(format!("no line starting {prefix:?}")))
    }

    /// An SMTP reply's last line.
    fn smtp(&mut self) -> io::Result<String> {
        for _ in 0..1000 {
            let l = self.line()?;
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok(l);
            }
        }
        Err(io::Error::other("endless SMTP reply"))
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let w = self.r.get_mut();
        w.write_all(bytes)?;
        w.flush()
    }

    /// Sends a command and returns the reply line that ends it (SMTP: the last line;
    /// IMAP: the tagged line for `tag`; POP3: the status line).
    fn cmd(&mut self, service: &str, line: &str) -> io::Result<String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        match proto(service) {
            Proto::Smtp => self.smtp(),
            Proto::Pop3 => self.line(),
            Proto::Imap => {
                let tag = line.split(' ').next().unwrap_or_default();
                self.until(&format!("{tag} "))
            }
        }
    }

    /// Reads and throws away until the server closes; true when it did within `limit`.
    fn closed_within(&mut self, limit: Duration) -> bool {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        self.set_timeout(Duration::from_millis(500));
        while t0.elapsed() < limit {
            match self.r.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Smtp,
    Imap,
    Pop3,
}

fn proto(service: &str) -> Proto {
    match service {
        "imap" | "imaps" => Proto::Imap,
        "pop3" | "pop3s" => Proto::Pop3,
        _ => Proto::Smtp,
    }
}

fn greeting_prefix(service: &str) -> &'static str {
    match proto(service) {
        Proto::Smtp => "220 ",
        Proto::Imap => "* OK",
        Proto::Pop3 => "+OK",
    }
}

/// Source addresses for hostile clients: 127.0.`net`.1 onwards.
fn src(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, host.max(1))
}

/// Waits on reads (bounded by `limit`) until the server closes; returns the time it took,
/// or `None` when it did not close.
fn time_to_close(c: &mut Conn, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let _ = c.tcp().set_read_timeout(Some(Duration::from_millis(250)));
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match c.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// The daemon, measured

/// Raises this process's soft RLIMIT_NOFILE (the daemon, our child, inherits it): 1,000
/// client sockets here and 1,000 in the daemon do not fit the common default of 1,024.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.map_or(8192, |m| m.min(8192));
    assert!(
        want >= 1500,
        "RLIMIT_NOFILE: the hard limit {want} is too low for 1,000 connections; raise it \
         (ulimit -Hn 8192)"
    );
    if lim.current.is_none_or(|c| c < want) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: lim.maximum,
            },
        );
    }
}

/// A daemon with [`LIMITS`] plus `limits` (more `[limits]` keys), and the probe and
/// victim accounts.
fn start(limits: &str) -> Server {
    raise_fd_limit();
    let s = Server::start_with(&format!("[limits]\n{LIMITS}{limits}"));
    s.add_user(PROBE, PROBE_PW);
    s.add_user(VICTIM, VICTIM_PW);
    s
}

/// The daemon's pid, found by its config path on its command line.
fn pid(s: &Server) -> u32 {
    let needle = s.config.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "serve") && args.contains(&needle) {
            return pid;
        }
    }
    panic!("no letterbox process for {needle}");
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// True while the process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.to_string()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// A well-behaved client that keeps using the daemon while a test attacks it.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    rounds: Arc<Mutex<Vec<Result<Duration, String>>>>,
}

impl Probe {
    fn start(s: &Server) -> Probe {
        let ports = (s.port("smtp"), s.port("imap"), s.port("pop3"));
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let (flag, out) = (stop.clone(), rounds.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: one round a second for at most 10 minutes.
            for _ in 0..600 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let t0 = Instant::now();
                let r = probe_round(ports).map(|()| t0.elapsed());
                if let Ok(mut v) = out.lock() {
                    v.push(r.map_err(|e| e.to_string()));
                }
                let rest = Duration::from_secs(1).saturating_sub(t0.elapsed());
                std::thread::sleep(rest);
            }
        });
        Probe {
            stop,
            thread: Some(thread),
            rounds,
        }
    }

    /// Stops the probe; panics unless every round succeeded within [`ANSWER_BOUND`].
    fn finish(mut self, label: &str) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let rounds = self.rounds.lock().map(|v| v.clone()).unwrap_or_default();
        let mut ok: Vec<Duration> = rounds
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        let errors: Vec<&String> = rounds.iter().filter_map(|r| r.as_ref().err()).collect();
        ok.sort();
        let max = ok.last().copied().unwrap_or_default();
        let median = ok.get(ok.len() / 2).copied().unwrap_or_default();
        eprintln!(
            "[{label}] well-behaved client: {} rounds, median {median:?}, max {max:?}, {} failed",
            rounds.len(),
            errors.len()
        );
        assert!(
            !ok.is_empty(),
            "[{label}] no probe round completed: {errors:?}"
        );
        assert!(
            errors.is_empty(),
            "[{label}] probe rounds failed: {errors:?}"
        );
        assert!(max < ANSWER_BOUND, "[{label}] a probe round took {max:?}");
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One probe round from 127.0.0.1: SMTP EHLO/NOOP/QUIT, IMAP LOGIN/SELECT/NOOP/LOGOUT,
/// POP3 CAPA/QUIT. Each step bounded by [`ANSWER_BOUND`].
fn probe_round((smtp, imap, pop3): (u16, u16, u16)) -> io::Result<()> {
    let local = Ipv4Addr::LOCALHOST;
    let open = |port: u16| -> io::Result<Client> {
        let tcp = tcp_from(local, port)?;
        tcp.set_read_timeout(Some(ANSWER_BOUND))?;
        tcp.set_write_timeout(Some(ANSWER_BOUND))?;
        Ok(Client {
            r: BufReader::new(Conn::Plain(tcp)),
        })
    };
    let expect = |got: String, want: &str, what: &str| -> io::Result<()> {
        if got.starts_with(want) {
            Ok(())
        } else {
            Err(io::Error::other(format!("{what}: {got:?}")))
        }
    };
    let mut c = open(smtp)?;
    expect(c.smtp()?, "220 ", "smtp greeting")?;
    expect(c.cmd("smtp", "EHLO probe.test")?, "250 ", "EHLO")?;
    expect(c.cmd("smtp", "NOOP")?, "250 ", "NOOP")?;
    expect(c.cmd("smtp", "QUIT")?, "221 ", "QUIT")?;

    let mut c = open(imap)?;
    expect(c.line()?, "* OK", "imap greeting")?;
    expect(
        c.cmd("imap", &format!("a LOGIN {PROBE} {PROBE_PW}"))?,
        "a OK",
        "LOGIN",
    )?;
    expect(c.cmd("imap", "b SELECT INBOX")?, "b OK", "SELECT")?;
    expect(c.cmd("imap", "c NOOP")?, "c OK", "NOOP")?;
    expect(c.cmd("imap", "d LOGOUT")?, "d OK", "LOGOUT")?;

    let mut c = open(pop3)?;
    expect(c.line()?, "+OK", "pop3 greeting")?;
    c.send(b"CAPA\r\n")?;
    expect(c.until(".\r\n")?, ".", "CAPA")?;
    expect(c.cmd("pop3", "QUIT")?, "+OK", "QUIT")?;
    Ok(())
}

/// Per-account message counts and sizes from `user list`, and the store's total.
fn counts(s: &Server) -> (Vec<String>, u64) {
    let list = s.cli(&["user", "list"], "");
    let mut accounts: Vec<String> = list.lines().map(str::to_string).collect();
    accounts.sort();
    let st = s.status_json();
    (
        accounts,
        st["store"]["messages"].as_u64().unwrap_or(u64::MAX),
    )
}

/// The common end of every test: the probe's verdict, the daemon alive without a panic,
/// its peak memory, and a consistent store across a `kill -9` and restart.
fn finish(mut s: Server, probe: Probe, label: &str) {
    probe.finish(label);
    let p = pid(&s);
    assert!(alive(p), "[{label}] the daemon died: {}", s.log());
    let (hwm, rss) = memory(p);
    eprintln!(
        "[{label}] daemon memory: peak (VmHWM) {} KiB = {:.1} MiB, now (VmRSS) {} KiB, {} fds",
        hwm,
        hwm as f64 / 1024.0,
        rss,
        fds(p)
    );
    assert!(hwm > 0 && hwm < MAX_RSS_KIB, "[{label}] peak RSS {hwm} KiB");
    let log = s.log();
    assert!(
        !log.contains("panicked"),
        "[{label}] a panic in the log:\n{log}"
    );
    let before = counts(&s);
    let status = s.cli(&["status"], "");
    assert!(status.contains("store:"), "{status}");
    s.kill9_and_restart();
    let after = counts(&s);
    assert_eq!(
        before, after,
        "[{label}] message counts changed across a restart"
    );
    let status = s.cli(&["status"], "");
    assert!(status.contains("daemon: running"), "{status}");
    eprintln!(
        "[{label}] store consistent after kill -9 and restart: {:?}",
        after
    );
    assert!(
        !s.log().contains("panicked"),
        "[{label}] a panic after the restart"
    );
}

// ---------------------------------------------------------------------------------------
// Over-long lines, literals, headers; messages over SIZE

/// The error a protocol answers to an over-long command line.
fn refused_line(service: &str, reply: &str) -> bool {
    match proto(service) {
        Proto::Smtp => reply.starts_with('5'),
        Proto::Imap => {
            reply.starts_with("a BAD") || reply.starts_with("a NO") || reply.starts_with("* BYE")
        }
        Proto::Pop3 => reply.starts_with("-ERR"),
    }
}

/// Sends a line of `len` bytes (no CRLF until the end) in a writer thread, so that a daemon
/// that answers or closes early cannot deadlock us; returns the first reply line, or None
/// when the daemon closed instead.
fn overlong_line(c: &mut Client, prefix: &str, len: usize) -> Option<String> {
    let mut tcp = match c.r.get_ref() {
        Conn::Plain(t) => Some(t.try_clone().expect("clone")),
        Conn::Tls(_) => None,
    };
    let mut line = Vec::with_capacity(len + 2);
    line.extend_from_slice(prefix.as_bytes());
    line.resize(len, b'x');
    line.extend_from_slice(b"\r\n");
    match tcp.take() {
        Some(mut w) => {
            // Plain: write from another thread while this one reads.
            let writer = std::thread::spawn(move || {
                for chunk in line.chunks(64 * 1024) {
                    if w.write_all(chunk).is_err() {
                        break;
                    }
                }
            });
            let r = c.line().ok();
            let _ = writer.join();
            r
        }
        None => {
            // TLS: one stream; the daemon reads (and discards) as fast as we write.
            for chunk in line.chunks(64 * 1024) {
                if c.send(chunk).is_err() {
                    return None;
                }
            }
            c.line().ok()
        }
    }
}

#[test]
fn overlong_lines_literals_and_sizes_on_every_listener() {
    let s = start("");
    let probe = Probe::start(&s);
    let mut host = 0u8;
    for service in common::SERVICES {
        host += 1;
        let len = if IMPLICIT_TLS.contains(&service) {
            1 << 20
        } else {
            4 << 20
        };
        let mut c = Client::connect(&s, service, src(1, host)).expect("connect");
        if proto(service) == Proto::Smtp {
            c.cmd(service, "EHLO hostile.test").expect("EHLO");
        }
        let prefix = match proto(service) {
            Proto::Smtp => "NOOP ",
            Proto::Imap => "a NOOP ",
            Proto::Pop3 => "USER ",
        };
        let t0 = Instant::now();
        match overlong_line(&mut c, prefix, len) {
            Some(reply) => {
                assert!(refused_line(service, &reply), "{service}: {reply:?}");
                // The same connection still works: nothing of the long line is left.
                let next = match proto(service) {
                    Proto::Smtp => c.cmd(service, "NOOP").expect("NOOP"),
                    Proto::Imap => c.cmd(service, "b NOOP").expect("NOOP"),
                    Proto::Pop3 => c.cmd(service, "NOOP").expect("NOOP"),
                };
                let ok = match proto(service) {
                    Proto::Smtp => next.starts_with("250"),
                    Proto::Imap => next.starts_with("b OK"),
                    // NOOP is a TRANSACTION-state command (RFC 1939 §5): -ERR here, but an
                    // answer to *this* line, not to a piece of the long one.
                    Proto::Pop3 => next.starts_with("-ERR") && !next.contains("too long"),
                };
                assert!(ok, "{service}: after the long line: {next:?}");
                eprintln!(
                    "{service}: {len}-byte line refused ({}) in {:?}",
                    reply.trim_end(),
                    t0.elapsed()
                );
            }
            None => eprintln!(
                "{service}: {len}-byte line: connection closed in {:?}",
                t0.elapsed()
            ),
        }
        // And a fresh connection is served.
        Client::connect(&s, service, src(1, host)).expect("fresh connection after a long line");
    }

    // SMTP: SIZE declared too large, data too large (DATA and BDAT), a huge header line,
    // on the MX listener; the same through submissions after AUTH.
    for service in ["smtp", "submissions"] {
        let mut c = Client::connect(&s, service, src(2, 1)).expect("connect");
        c.cmd(service, "EHLO hostile.test").expect("EHLO");
        let (from, rcpt) = if service == "smtp" {
            ("bad@hostile.test".to_string(), VICTIM)
        } else {
            let token = base64(format!("\0{VICTIM}\0{VICTIM_PW}").as_bytes());
            let r = c
                .cmd(service, &format!("AUTH PLAIN {token}"))
                .expect("AUTH");
            assert!(r.starts_with("235"), "{r}");
            (VICTIM.to_string(), VICTIM)
        };
        let r = c
            .cmd(service, &format!("MAIL FROM:<{from}> SIZE=2000000"))
            .expect("MAIL");
        assert!(r.starts_with("552"), "{service} SIZE over the limit: {r}");
        // Undeclared: 2 MiB of DATA, refused at the end, the session stays usable.
        envelope(&mut c, service, &from, rcpt);
        assert!(c.cmd(service, "DATA").unwrap().starts_with("354"));
        let mut data =
            format!("From: <{from}>\r\nTo: <{rcpt}>\r\nSubject: big\r\n\r\n").into_bytes();
        while data.len() < 2 << 20 {
            data.extend_from_slice(&[b'y'; 78]);
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        c.send(&data).expect("send data");
        let r = c.smtp().expect("end of data");
        assert!(r.starts_with("552"), "{service}: 2 MiB DATA: {r}");
        // BDAT over the limit: refused, and the rest of the chunk is not taken as commands.
        envelope(&mut c, service, &from, rcpt);
        let chunk = vec![b'z'; 2 << 20];
        c.send(format!("BDAT {} LAST\r\n", chunk.len()).as_bytes())
            .unwrap();
        c.send(&chunk).expect("send chunk");
        let r = c.smtp().expect("BDAT reply");
        assert!(
            r.starts_with("552") || r.starts_with("5"),
            "{service}: 2 MiB BDAT: {r}"
        );
        let r = c.cmd(service, "RSET").expect("RSET");
        assert!(r.starts_with("250"), "{service}: after BDAT: {r}");
        // A header line of 900 KB (under SIZE, far over any line limit) is stored as is.
        envelope(&mut c, service, &from, rcpt);
        assert!(c.cmd(service, "DATA").unwrap().starts_with("354"));
        let mut data = format!("From: <{from}>\r\nTo: <{rcpt}>\r\nX-Long: ").into_bytes();
        data.resize(data.len() + 900_000, b'h');
        data.extend_from_slice(b"\r\nSubject: long header\r\n\r\nbody\r\n.\r\n");
        c.send(&data).unwrap();
        let r = c.smtp().expect("end of data");
        assert!(
            r.starts_with("250") || r.starts_with("5"),
            "{service}: long header: {r}"
        );
        eprintln!("{service}: 900 KB header line: {}", r.trim_end());
        c.cmd(service, "QUIT").ok();
    }

    // IMAP literals, on imap and imaps: over the literal caps, synchronizing and
    // non-synchronizing (LITERAL+), with a u64 overflow, and an APPEND over SIZE.
    for (i, service) in ["imap", "imaps"].into_iter().enumerate() {
        let mut c = Client::connect(&s, service, src(3, i as u8 + 1)).expect("connect");
        // A literal in LOGIN far over the 1 MiB non-APPEND cap, synchronizing: refused
        // before any byte is sent.
        let r = c.cmd(service, "a LOGIN {5000000}").expect("LOGIN literal");
        assert!(
            r.starts_with("a NO") || r.starts_with("a BAD"),
            "{service}: {r}"
        );
        // The same with LITERAL+: the daemon reads and drops the 5 MB, then answers.
        c.send(b"b LOGIN {5000000+}\r\n").unwrap();
        for _ in 0..(5_000_000 / 65_536 + 1) {
            if c.send(&vec![b'l'; 65_536]).is_err() {
                break;
            }
        }
        c.send(b" x\r\n").ok();
        let r = c.until("b ").expect("LOGIN literal+");
        assert!(
            r.starts_with("b NO") || r.starts_with("b BAD"),
            "{service}: {r}"
        );
        let r = c
            .cmd(service, "c NOOP")
            .expect("NOOP after a dropped literal");
        assert!(r.starts_with("c OK"), "{service}: {r}");
        // A length that does not fit in 64 bits.
        let r = c
            .cmd(service, "d LOGIN {184467440737095516160}")
            .expect("huge literal");
        assert!(
            r.starts_with("d NO") || r.starts_with("d BAD"),
            "{service}: {r}"
        );
        let r = c
            .cmd(service, &format!("e LOGIN {VICTIM} {VICTIM_PW}"))
            .expect("LOGIN");
        assert!(r.starts_with("e OK"), "{service}: {r}");
        // APPEND over SIZE (1 MiB): synchronizing refused with TOOBIG (RFC 7889).
        let r = c.cmd(service, "f APPEND INBOX {2000000}").expect("APPEND");
        assert!(r.starts_with("f NO [TOOBIG]"), "{service}: {r}");
        // LITERAL+ over SIZE: read, dropped, refused; the next command is answered.
        c.send(b"g APPEND INBOX {2000000+}\r\n").unwrap();
        for _ in 0..(2_000_000 / 100_000) {
            c.send(&vec![b'm'; 100_000]).expect("send literal");
        }
        c.send(b"\r\n").unwrap();
        let r = c.until("g ").expect("APPEND literal+");
        assert!(r.starts_with("g NO"), "{service}: {r}");
        let r = c.cmd(service, "h NOOP").expect("NOOP");
        assert!(r.starts_with("h OK"), "{service}: {r}");
        // literal8 (BINARY) over SIZE.
        let r = c
            .cmd(service, "i APPEND INBOX ~{2000000}")
            .expect("APPEND literal8");
        assert!(
            r.starts_with("i NO") || r.starts_with("i BAD"),
            "{service}: {r}"
        );
        // A LITERAL+ announcement too large to be worth reading: BYE and close.
        c.send(b"j APPEND INBOX {99999999999+}\r\n").unwrap();
        let r = c.line().expect("BYE");
        assert!(
            r.starts_with("* BYE") || r.starts_with("j NO"),
            "{service}: {r}"
        );
        assert!(
            c.closed_within(Duration::from_secs(10)),
            "{service}: still open after BYE"
        );
        Client::connect(&s, service, src(3, i as u8 + 1)).expect("fresh IMAP connection");
    }
    finish(s, probe, "overlong");
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------------------
// Malformed MIME, delivered and then fetched and retrieved

/// xorshift64*: deterministic junk.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// MAIL FROM and RCPT TO, both accepted.
fn envelope(c: &mut Client, service: &str, from: &str, rcpt: &str) {
    for line in [format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{rcpt}>")] {
        let r = c.cmd(service, &line).expect(&line);
        assert!(r.starts_with("250"), "{service}: {line}: {r}");
    }
}

/// Hostile messages, each under the 1 MiB SIZE, each holding the word `needle` in clear
/// somewhere in its body (SEARCH TEXT must find every one).
fn hostile_messages() -> Vec<(&'static str, Vec<u8>)> {
    let head = |subject: &str| {
        format!(
            "From: <bad@hostile.test>\r\nTo: <{VICTIM}>\r\nSubject: {subject}\r\n\
             Message-ID: <{subject}@hostile.test>\r\nMIME-Version: 1.0\r\n"
        )
        .into_bytes()
    };
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();

    // 10,000 nested multiparts.
    let mut m = head("deep-multipart");
    for i in 0..10_000 {
        m.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\nneedle at the bottom\r\n");
    for i in (0..10_000).rev() {
        m.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    out.push(("deep-multipart", m));

    // 10,000 nested message/rfc822.
    let mut m = head("deep-rfc822");
    for i in 0..10_000 {
        m.extend_from_slice(
            format!("Content-Type: message/rfc822\r\n\r\nSubject: level {i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"\r\nneedle inside\r\n");
    out.push(("deep-rfc822", m));

    // 10,000 nested multiparts that are never closed, sharing one boundary.
    let mut m = head("deep-unclosed");
    for _ in 0..10_000 {
        m.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"same\"\r\n\r\n--same\r\n");
    }
    m.extend_from_slice(b"\r\nneedle\r\n");
    out.push(("deep-unclosed", m));

    // 5,000 sibling parts.
    let mut m = head("wide");
    m.extend_from_slice(b"Content-Type: multipart/mixed; boundary=w\r\n\r\n");
    for i in 0..5_000 {
        m.extend_from_slice(
            format!("--w\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"--w\r\n\r\nneedle\r\n--w--\r\n");
    out.push(("wide", m));

    // Broken boundaries: declared and missing, empty, 2,000 characters, a child using
    // its parent's boundary, a close before any open, a boundary inside a header.
    let mut m = head("broken-boundaries");
    m.extend_from_slice(
        b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
          --outer--\r\n--outer\r\nContent-Type: multipart/alternative; boundary=\"outer\"\r\n\r\n\
          --outer\r\nContent-Type: multipart/related; boundary=\"\"\r\n\r\n--\r\n\r\n--\r\n\
          --outer\r\nContent-Type: multipart/mixed; boundary=\"",
    );
    m.extend_from_slice(&[b'B'; 2000]);
    m.extend_from_slice(b"\"\r\n\r\n--");
    m.extend_from_slice(&[b'B'; 1999]);
    m.extend_from_slice(
        b"\r\nX-Header: --outer\r\n\r\nneedle\r\n--outer\r\nContent-Type: multipart/mixed\r\n\r\n\
          no boundary parameter at all\r\n--outer\r\nContent-Type: multipart/mixed; boundary=never\r\n\r\n\
          text without the boundary\r\n",
    );
    out.push(("broken-boundaries", m));

    // A huge header block: 20,000 fields.
    let mut m = head("huge-header-block");
    for i in 0..20_000 {
        m.extend_from_slice(format!("X-Field-{i}: value {i}\r\n").as_bytes());
    }
    m.extend_from_slice(b"\r\nneedle\r\n");
    out.push(("huge-header-block", m));

    // One field folded over 40,000 lines, a 10 KB field name without a colon, a 200 KB
    // Subject of encoded words, a To of 10,000 addresses.
    let mut m = head("folded");
    m.extend_from_slice(b"X-Folded: start");
    for _ in 0..40_000 {
        m.extend_from_slice(b"\r\n continued");
    }
    m.extend_from_slice(b"\r\n");
    m.extend_from_slice(&[b'N'; 10_000]);
    m.extend_from_slice(b"\r\nSubject: ");
    for _ in 0..5_000 {
        m.extend_from_slice(b"=?utf-8?B?w6nDqcOp?= =?x-bogus?Q?=ZZ?= ");
    }
    m.extend_from_slice(b"\r\nCc: ");
    for i in 0..10_000 {
        m.extend_from_slice(format!("u{i}@x.test, ").as_bytes());
    }
    m.extend_from_slice(b"\r\n\r\nneedle\r\n");
    out.push(("folded", m));

    // Bad encodings: base64 with junk and wrong padding, QP with bad escapes, unknown
    // charsets, malformed encoded words.
    let mut m = head("=?utf-8?B?!!!not-base64?= =?utf-8?Q?=FF=FE=?= =?unknown?B?AAAA?=");
    m.extend_from_slice(
        b"Content-Type: multipart/mixed; boundary=e\r\n\r\n\
          --e\r\nContent-Type: text/plain; charset=x-no-such-charset\r\nContent-Transfer-Encoding: base64\r\n\r\n\
          !!!!====@@@@bm90IGJhc2U2NA=\r\n====\r\nQUJD\xff\xfe\r\n\
          --e\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
          =ZZ=G1=\r\n=\r\n=3\r\n",
    );
    m.extend_from_slice(&[b'q'; 5000]);
    m.extend_from_slice(
        b"=\r\n\r\n--e\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode-bogus\r\n\r\n\
          begin 644 junk\r\n\r\n--e\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    m.extend_from_slice(&[b'A'; 100_001]);
    m.extend_from_slice(b"\r\n--e\r\nContent-Type: text/plain\r\n\r\nneedle\r\n--e--\r\n");
    out.push(("bad-encodings", m));

    // NUL bytes in a header and in the body.
    let mut m = head("nuls");
    m.extend_from_slice(b"X-Nul: a\0b\0c\r\nContent-Type: text/plain\r\n\r\n\0\0\0needle\0\r\n");
    m.extend_from_slice(&[0u8; 10_000]);
    m.extend_from_slice(b"\r\n");
    out.push(("nuls", m));

    // 8-bit junk: 200 KB of random bytes (bare CR and LF included), in a header and as a
    // part, with a declared charset that is not UTF-8.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut m = head("junk-8bit");
    m.extend_from_slice(b"X-Junk: ");
    for _ in 0..2000 {
        let b = (rng(&mut seed) as u8) | 0x80;
        m.push(b);
    }
    m.extend_from_slice(
        b"\r\nContent-Type: multipart/mixed; boundary=j\r\n\r\n--j\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
    );
    for _ in 0..200_000 {
        m.push(rng(&mut seed) as u8);
    }
    m.extend_from_slice(b"\r\n--j\r\nContent-Type: text/plain\r\n\r\nneedle\r\n--j--\r\n");
    out.push(("junk-8bit", m));

    for (name, m) in &out {
        assert!(m.len() < 1_000_000, "{name} is {} bytes", m.len());
    }
    out
}

const PY_MIME: &str = r#"
import imaplib, poplib, glob
imaplib._MAXLINE = 10**8
poplib._MAXLINE = 10**8
files = sorted(glob.glob(DIR + '/msg-*.eml'))
delivered = 0
for f in files:
    raw = open(f, 'rb').read()
    t0 = time.time()
    try:
        with smtplib.SMTP(H, PORT['smtp'], timeout=60) as s:
            s.sendmail('bad@hostile.test', [VICTIM], raw)
        delivered += 1
        print('smtp delivered', os.path.basename(f), len(raw), '%.2fs' % (time.time() - t0))
    except smtplib.SMTPResponseException as e:
        check(500 <= e.smtp_code < 600, 'refused with', e.smtp_code, e.smtp_error)
        print('smtp refused', os.path.basename(f), e.smtp_code, e.smtp_error)
M = imaplib.IMAP4(H, PORT['imap'], timeout=60)
M.login(VICTIM, VICTIM_PW)
appended = 0
for f in files:
    raw = open(f, 'rb').read()
    typ, d = M.append('INBOX', None, None, raw)
    check(typ in ('OK', 'NO'), 'APPEND', typ, d)
    appended += typ == 'OK'
    print('imap append', os.path.basename(f), typ, d)
typ, d = M.select('INBOX')
n = int(d[0])
check(n == delivered + appended, 'EXISTS', n, delivered, appended)
t0 = time.time()
typ, d = M.fetch('1:*', '(UID RFC822.SIZE FLAGS ENVELOPE BODYSTRUCTURE)')
check(typ == 'OK', 'FETCH all', typ)
print('FETCH 1:* ENVELOPE BODYSTRUCTURE: %d bytes in %.2fs' % (sum(len(x[1]) if isinstance(x, tuple) else len(x) for x in d), time.time() - t0))
sections = ['1', '2', '1.2.3', '1.1.1.1.1.1.1.1.1.1.1.1', '1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1',
            'HEADER', 'TEXT', '1.MIME', '1.1.HEADER', '2.TEXT', '3.2.1', '4999', '5001', 'HEADER.FIELDS (SUBJECT X-JUNK X-NUL CC)']
for i in range(1, n + 1):
    for sec in sections:
        typ, d = M.fetch(str(i), '(BODY.PEEK[%s])' % sec)
        check(typ in ('OK', 'NO'), 'FETCH', i, sec, typ, d)
    for item in ['(BINARY.PEEK[1] BINARY.SIZE[1])', '(BINARY.PEEK[2])', '(BODY.PEEK[]<0.100>)', '(BODY.PEEK[1]<5.10>)', '(RFC822.HEADER)']:
        try:
            typ, d = M.fetch(str(i), item)
        except imaplib.IMAP4.error as e:
            raise SystemExit('check failed: FETCH %d %s: BAD %s' % (i, item, e))
        check(typ in ('OK', 'NO'), 'FETCH', i, item, typ, d)
t0 = time.time()
for crit in [('TEXT', 'needle'), ('BODY', 'needle'), ('HEADER', 'X-Junk', 'zz'), ('SUBJECT', 'deep'), ('TEXT', 'no-such-word')]:
    typ, d = M.search(None, *crit)
    check(typ == 'OK', 'SEARCH', crit, typ, d)
    hits = len(d[0].split())
    print('SEARCH', ' '.join(crit), '->', hits)
    if crit == ('TEXT', 'needle') or crit == ('BODY', 'needle'):
        check(hits == n, 'SEARCH', crit, 'found', hits, 'of', n)
print('SEARCH: %.2fs' % (time.time() - t0))
typ, d = M.store('1:*', '+FLAGS', '(\\Seen)')
check(typ == 'OK', 'STORE', typ)
M.logout()
P = poplib.POP3(H, PORT['pop3'], timeout=60)
P.user(VICTIM)
P.pass_(VICTIM_PW)
count, size = P.stat()
check(count == n, 'STAT', count, n)
for i in range(1, count + 1):
    listed = int(P.list(i).split()[2])
    resp, lines, octets = P.retr(i)
    check(resp.startswith(b'+OK'), 'RETR', i, resp)
    got = sum(len(l) + 2 for l in lines)
    check(got == listed, 'RETR size', i, got, 'LIST', listed)
    check(any(b'needle' in l for l in lines), 'RETR', i, 'lost the needle')
    resp, lines, octets = P.top(i, 3)
    check(resp.startswith(b'+OK'), 'TOP', i, resp)
P.quit()
print('POP3: RETR and TOP of %d messages' % count)
"#;

#[test]
fn malformed_mime_is_stored_fetched_searched_and_retrieved() {
    let s = start("");
    let probe = Probe::start(&s);
    let dir = s.dir.path().join("mime");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (i, (name, m)) in hostile_messages().iter().enumerate() {
        std::fs::write(dir.join(format!("msg-{i:02}-{name}.eml")), m).expect("write");
    }
    let t0 = Instant::now();
    let out = s.python(&format!(
        "DIR = {:?}\nVICTIM = {VICTIM:?}\nVICTIM_PW = {VICTIM_PW:?}\n{PY_MIME}",
        dir.display().to_string()
    ));
    eprintln!("{out}malformed MIME: {:?}", t0.elapsed());
    finish(s, probe, "mime");
}

// ---------------------------------------------------------------------------------------
// Slowloris, idle, stalled handshakes, clients that do not read

/// Short timeouts for the slowloris test: 3 s idle, 10 s per session (SMTP, POP3).
const SHORT_TIMEOUTS: &str = "smtp_idle_timeout = 3\nimap_idle_timeout = 3\n\
                              pop3_idle_timeout = 3\nsession_timeout = 10\n";
/// The TLS handshake bound of src/net/stream.rs.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends one byte of `pattern` every 500 ms (at most `limit` long) until the daemon closes
/// the connection; returns how long that took, or `None` if it never did.
fn dribble(conn: &mut Conn, pattern: &[u8], limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let _ = conn
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(500)));
    let _ = conn.tcp().set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    for b in pattern.iter().cycle() {
        if t0.elapsed() > limit {
            return None;
        }
        if conn.write_all(&[*b]).and_then(|()| conn.flush()).is_err() {
            return Some(t0.elapsed());
        }
        match conn.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

/// The first flight of a TLS client (its ClientHello), as bytes.
fn client_hello() -> Vec<u8> {
    let name = rustls_pki_types::ServerName::try_from("letterbox.home.arpa").expect("name");
    let mut conn = rustls::ClientConnection::new(tls_config(), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write_tls");
    }
    out
}

/// Connects, sends the protocol's STARTTLS, and returns the TCP socket ready for a
/// handshake.
fn after_starttls(s: &Server, service: &str, from: Ipv4Addr) -> TcpStream {
    let mut c = Client::connect(s, service, from).expect("connect");
    let reply = match proto(service) {
        Proto::Smtp => {
            c.cmd(service, "EHLO hostile.test").expect("EHLO");
            c.cmd(service, "STARTTLS").expect("STARTTLS")
        }
        Proto::Imap => c.cmd(service, "a STARTTLS").expect("STARTTLS"),
        Proto::Pop3 => c.cmd(service, "STLS").expect("STLS"),
    };
    assert!(
        reply.starts_with("220") || reply.starts_with("a OK") || reply.starts_with("+OK"),
        "{service} STARTTLS: {reply}"
    );
    match c.r.into_inner() {
        Conn::Plain(t) => t,
        Conn::Tls(_) => panic!("{service} is implicit TLS"),
    }
}

#[test]
fn slowloris_idle_and_stalled_clients_are_cut() {
    let s = Arc::new(start(SHORT_TIMEOUTS));
    let probe = Probe::start(&s);
    let mut cases: Vec<JoinHandle<String>> = Vec::new();
    for (i, service) in common::SERVICES.into_iter().enumerate() {
        let host = i as u8 + 1;
        // Idle after the greeting (and the handshake): cut by the idle timeout (3 s).
        let sv = s.clone();
        cases.push(std::thread::spawn(move || {
            let mut c = Client::connect(&sv, service, src(4, host)).expect("connect");
            let took = time_to_close(c.r.get_mut(), Duration::from_secs(30));
            let took = took.unwrap_or_else(|| panic!("{service}: idle client not cut in 30 s"));
            assert!(
                took > Duration::from_secs(2),
                "{service}: cut after {took:?}"
            );
            assert!(
                took < Duration::from_secs(15),
                "{service}: cut after {took:?}"
            );
            format!("{service}: idle after greeting, cut after {took:.1?}")
        }));
        // A byte every 500 ms, never a whole command: cut by the session timeout (10 s;
        // SMTP, POP3) or by the command deadline (IMAP: the idle timeout from its first
        // byte).
        let sv = s.clone();
        cases.push(std::thread::spawn(move || {
            let mut c = Client::connect(&sv, service, src(5, host)).expect("connect");
            let pattern: &[u8] = match proto(service) {
                Proto::Imap => b"a NOOP slowly",
                _ => b"NOOP slowly ",
            };
            let took = dribble(c.r.get_mut(), pattern, Duration::from_secs(40));
            let took = took.unwrap_or_else(|| panic!("{service}: slowloris not cut in 40 s"));
            assert!(
                took < Duration::from_secs(20),
                "{service}: cut after {took:?}"
            );
            format!("{service}: a byte per 500 ms, cut after {took:.1?}")
        }));
        // A client that pipelines commands and never reads the answers: the daemon's
        // writes block and are bounded by the idle timeout (SMTP, POP3: 3 s; IMAP's
        // write bound is a fixed 60 s, too long for this test).
        if proto(service) != Proto::Imap {
            let sv = s.clone();
            cases.push(std::thread::spawn(move || {
                let mut c = Client::connect(&sv, service, src(6, host)).expect("connect");
                let t0 = Instant::now();
                c.set_timeout(Duration::from_secs(2));
                let noops = b"NOOP\r\n".repeat(10_000);
                let mut closed = None;
                // A write that times out only means the buffers are full; the daemon has
                // cut us when a write fails otherwise (reset, broken pipe).
                for _ in 0..2000 {
                    match c.send(&noops) {
                        Ok(()) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => {
                            closed = Some(t0.elapsed());
                            break;
                        }
                    }
                    if t0.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                }
                // How soon depends on how much the socket buffers take before the daemon's
                // write blocks (megabytes on loopback), so only "cut at all" is asserted.
                let took =
                    closed.unwrap_or_else(|| panic!("{service}: non-reader not cut in 60 s"));
                format!("{service}: never reads, cut after {took:.1?}")
            }));
        }
    }
    // Implicit TLS: a connection that never starts the handshake, and one that sends its
    // ClientHello a byte per 500 ms; both end at the handshake bound (15 s).
    for (i, service) in IMPLICIT_TLS.into_iter().enumerate() {
        let host = i as u8 + 1;
        let port = s.port(service);
        cases.push(std::thread::spawn(move || {
            let tcp = tcp_from(src(7, host), port).expect("connect");
            let mut c = Conn::Plain(tcp);
            let took = time_to_close(&mut c, Duration::from_secs(40));
            let took = took.unwrap_or_else(|| panic!("{service}: silent TLS client not cut"));
            assert!(
                took < HANDSHAKE_TIMEOUT + Duration::from_secs(10),
                "{service}: {took:?}"
            );
            format!("{service}: no ClientHello, cut after {took:.1?}")
        }));
        cases.push(std::thread::spawn(move || {
            let tcp = tcp_from(src(8, host), port).expect("connect");
            let mut c = Conn::Plain(tcp);
            let took = dribble(&mut c, &client_hello(), Duration::from_secs(40));
            let took = took.unwrap_or_else(|| panic!("{service}: slow ClientHello not cut"));
            assert!(
                took < HANDSHAKE_TIMEOUT + Duration::from_secs(10),
                "{service}: {took:?}"
            );
            format!("{service}: ClientHello a byte per 500 ms, cut after {took:.1?}")
        }));
    }
    // STARTTLS, then no handshake at all.
    for (i, service) in ["smtp", "submission", "imap", "pop3"]
        .into_iter()
        .enumerate()
    {
        let host = i as u8 + 1;
        let sv = s.clone();
        cases.push(std::thread::spawn(move || {
            let tcp = after_starttls(&sv, service, src(9, host));
            let mut c = Conn::Plain(tcp);
            let took = time_to_close(&mut c, Duration::from_secs(40));
            let took = took.unwrap_or_else(|| panic!("{service}: stalled STARTTLS not cut"));
            assert!(
                took < HANDSHAKE_TIMEOUT + Duration::from_secs(10),
                "{service}: {took:?}"
            );
            format!("{service}: STARTTLS then silence, cut after {took:.1?}")
        }));
    }
    let mut failures = Vec::new();
    for c in cases {
        match c.join() {
            Ok(line) => eprintln!("{line}"),
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", s.log());
    let s = Arc::try_unwrap(s).unwrap_or_else(|_| panic!("server still shared"));
    finish(s, probe, "slowloris");
}

// ---------------------------------------------------------------------------------------
// 1,000 idle connections, connect-and-drop floods

#[test]
fn a_thousand_idle_connections_and_connect_drop_floods() {
    let s = start("");
    let p = pid(&s);
    let probe = Probe::start(&s);
    let base_fds = fds(p);
    let t0 = Instant::now();
    // 1,000 connections over the seven listeners (429 of them TLS), from ten client
    // addresses (100 each, under the per-address cap of 200), each greeted.
    let mut held: Vec<Client> = Vec::with_capacity(1000);
    for i in 0..1000usize {
        let service = common::SERVICES[i % 7];
        let from = src(10, (i / 100) as u8 + 1);
        let c = Client::connect(&s, service, from)
            .unwrap_or_else(|e| panic!("connection {i} ({service}): {e}\n{}", s.log()));
        held.push(c);
    }
    let opened = t0.elapsed();
    let (_, rss) = memory(p);
    let open_fds = fds(p);
    eprintln!(
        "1,000 idle connections opened and greeted in {opened:.1?}; daemon: {open_fds} fds, \
         VmRSS {rss} KiB ({:.1} MiB)",
        rss as f64 / 1024.0
    );
    assert!(open_fds >= 1000, "{open_fds} fds with 1,000 open");
    // While they are held, a well-behaved client is still served (the probe), and one
    // more connection per listener too.
    std::thread::sleep(Duration::from_secs(2));
    for service in common::SERVICES {
        Client::connect(&s, service, src(11, 1)).expect("served beside 1,000 idle ones");
    }
    // Every held connection is still alive and answers.
    for (i, c) in held.iter_mut().enumerate().step_by(37) {
        let service = common::SERVICES[i % 7];
        let r = match proto(service) {
            Proto::Smtp => c.cmd(service, "NOOP"),
            Proto::Imap => c.cmd(service, "n NOOP"),
            Proto::Pop3 => c.cmd(service, "CAPA").and_then(|l| c.until(".").map(|_| l)),
        };
        let r = r.unwrap_or_else(|e| panic!("held connection {i} ({service}): {e}"));
        assert!(
            r.starts_with("250") || r.starts_with("n OK") || r.starts_with("+OK"),
            "{r}"
        );
    }
    drop(held);
    common::wait_until(
        "the daemon to close 1,000 connections",
        Duration::from_secs(30),
        || fds(p) <= base_fds + 10,
    );
    eprintln!("after closing them: {} fds (baseline {base_fds})", fds(p));

    // Connect-and-drop floods: 10,000 connections, half closed at once (FIN), half reset
    // (RST, SO_LINGER 0), from 20 addresses, over every listener. Bounded in time too.
    let t0 = Instant::now();
    let ports: Vec<u16> = common::SERVICES.iter().map(|sv| s.port(sv)).collect();
    let threads: Vec<JoinHandle<(u32, u32)>> = (0..4u8)
        .map(|t| {
            let ports = ports.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, 0);
                let start = Instant::now();
                for i in 0..2500usize {
                    if start.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                    let from = src(12 + t, (i % 5) as u8 + 1);
                    match tcp_from_linger(from, ports[i % ports.len()], i % 2 == 0) {
                        Ok(tcp) => {
                            if i % 3 == 0 {
                                // Some send half a command first.
                                let _ = (&tcp).write_all(b"EHLO x");
                            }
                            drop(tcp);
                            ok += 1;
                        }
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for t in threads {
        let (o, f) = t.join().expect("flood thread");
        ok += o;
        failed += f;
    }
    eprintln!(
        "connect-and-drop flood: {ok} connections ({failed} failed to connect) in {:.1?}",
        t0.elapsed()
    );
    assert!(ok >= 9900, "only {ok} flood connections were accepted");
    common::wait_until(
        "the daemon to close the flood's connections",
        Duration::from_secs(30),
        || fds(p) <= base_fds + 10,
    );
    eprintln!("after the flood: {} fds (baseline {base_fds})", fds(p));
    // One address over its cap: 250 connections held against max_connections_per_ip 200
    // (the global cap is tested in tests/smtp.rs; here the probe must stay unaffected):
    // the extra ones get the busy line and are closed.
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..250usize {
        let service = ["smtp", "imap", "pop3"][i % 3];
        match Client::connect(&s, service, src(20, 1)) {
            Ok(c) => held.push(c),
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "250 from one address against a cap of 200: {} held, {refused} refused",
        held.len()
    );
    assert_eq!(held.len(), 200, "the per-address cap");
    drop(held);
    common::wait_until("the daemon to close them", Duration::from_secs(30), || {
        fds(p) <= base_fds + 10
    });
    finish(s, probe, "connections");
}

// ---------------------------------------------------------------------------------------
// AUTH brute force

/// One login attempt over `service` from `from`; returns whether it succeeded and how long
/// the answer to the password took.
fn attempt(s: &Server, service: &str, from: Ipv4Addr, user: &str, pass: &str) -> (bool, Duration) {
    let mut c = Client::connect(s, service, from).expect("connect");
    c.set_timeout(Duration::from_secs(40));
    match proto(service) {
        Proto::Imap => {
            let t0 = Instant::now();
            let r = c
                .cmd(service, &format!("a LOGIN {user} {pass}"))
                .expect("LOGIN");
            (r.starts_with("a OK"), t0.elapsed())
        }
        Proto::Pop3 => {
            let r = c.cmd(service, &format!("USER {user}")).expect("USER");
            assert!(r.starts_with("+OK"), "{r}");
            let t0 = Instant::now();
            let r = c.cmd(service, &format!("PASS {pass}")).expect("PASS");
            (r.starts_with("+OK"), t0.elapsed())
        }
        Proto::Smtp => {
            c.cmd(service, "EHLO brute.test").expect("EHLO");
            let token = base64(format!("\0{user}\0{pass}").as_bytes());
            let t0 = Instant::now();
            let r = c
                .cmd(service, &format!("AUTH PLAIN {token}"))
                .expect("AUTH");
            (r.starts_with("235"), t0.elapsed())
        }
    }
}

#[test]
fn auth_brute_force_is_slowed_and_the_right_password_still_works() {
    let s = start("");
    let probe = Probe::start(&s);
    // One guesser, one account, every protocol in turn (the limiter is shared): the
    // first three failures are free, then each answer waits 0.5 s, 1 s, 2 s, 4 s
    // (src/auth.rs Limiter: per address and per account, doubling up to 16 s).
    let guesser = src(30, 1);
    let services = [
        "imap",
        "pop3",
        "submission",
        "imaps",
        "pop3s",
        "submissions",
        "imap",
    ];
    let mut took = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let (ok, d) = attempt(&s, service, guesser, VICTIM, &format!("wrong-guess-{i}"));
        assert!(!ok, "a wrong password was accepted");
        eprintln!(
            "brute force attempt {} over {service}: refused after {d:.2?}",
            i + 1
        );
        took.push(d);
    }
    for (i, want_ms) in [(3, 500u64), (4, 1000), (5, 2000), (6, 4000)] {
        let want = Duration::from_millis(want_ms * 9 / 10);
        assert!(
            took[i] >= want,
            "attempt {} answered after {:?}, expected >= {want:?}",
            i + 1,
            took[i]
        );
    }
    // The right password from another address is answered at once, and from the
    // guesser's too: only failures wait.
    for (from, service) in [
        (src(30, 2), "imap"),
        (src(30, 3), "pop3s"),
        (guesser, "submission"),
    ] {
        let (ok, d) = attempt(&s, service, from, VICTIM, VICTIM_PW);
        eprintln!("right password from {from} over {service}: {ok} after {d:.2?}");
        assert!(
            ok,
            "the right password was refused from {from} over {service}"
        );
        assert!(d < ANSWER_BOUND, "{d:?}");
    }
    // A fresh address guessing a fresh account is not slowed by the guesser's record.
    let (ok, fresh) = attempt(&s, "imap", src(30, 4), "nobody@home.arpa", "wrong-guess");
    assert!(!ok);
    eprintln!("a fresh address and account: refused after {fresh:.2?}");
    assert!(
        fresh < took[6],
        "fresh {fresh:?} vs throttled {:?}",
        took[6]
    );

    // A parallel guesser: 10 addresses x 2 connections x 3 guesses over IMAP and POP3
    // against made-up accounts, while the probe logs in every second. Argon2 runs at most
    // two at a time (src/auth.rs), so memory stays bounded.
    let t0 = Instant::now();
    let ports = (s.port("imap"), s.port("pop3"));
    let threads: Vec<JoinHandle<u32>> = (0..20u8)
        .map(|i| {
            std::thread::spawn(move || {
                let from = src(31, i / 2 + 1);
                let (port, imap) = if i % 2 == 0 {
                    (ports.0, true)
                } else {
                    (ports.1, false)
                };
                let Ok(tcp) = tcp_from(from, port) else {
                    return 0;
                };
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(60)));
                let mut c = Client {
                    r: BufReader::new(Conn::Plain(tcp)),
                };
                let mut refused = 0;
                if c.line().is_err() {
                    return 0;
                }
                for k in 0..3 {
                    let user = format!("guess{i}x{k}@home.arpa");
                    let r = if imap {
                        c.cmd("imap", &format!("t{k} LOGIN {user} pw-{k}"))
                    } else {
                        c.cmd("pop3", &format!("USER {user}"))
                            .and_then(|_| c.cmd("pop3", &format!("PASS pw-{k}")))
                    };
                    match r {
                        Ok(l) if l.contains(" NO ") || l.starts_with("-ERR") => refused += 1,
                        _ => break,
                    }
                }
                refused
            })
        })
        .collect();
    let refused: u32 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    eprintln!(
        "parallel guessing: {refused} wrong logins refused in {:.1?}",
        t0.elapsed()
    );
    assert!(refused >= 50, "only {refused} of 60 guesses were answered");
    finish(s, probe, "brute-force");
}

// ---------------------------------------------------------------------------------------
// TLS handshake garbage

/// Payloads sent where a TLS client's first flight belongs.
fn tls_garbage() -> Vec<(&'static str, Vec<u8>)> {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let random: Vec<u8> = (0..65_536).map(|_| rng(&mut seed) as u8).collect();
    let hello = client_hello();
    let mut huge_record = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    huge_record.extend_from_slice(&random[..4096]);
    let mut bad_version = hello.clone();
    if let Some(b) = bad_version.get_mut(1) {
        *b = 0x7f;
    }
    let mut hello_then_junk = hello.clone();
    hello_then_junk.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x40]);
    hello_then_junk.extend_from_slice(&random[..64]);
    vec![
        ("64 KiB of random bytes", random.clone()),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("a handshake record of 65,535 bytes, cut short", huge_record),
        (
            "half a ClientHello, then silence",
            hello[..hello.len() / 2].to_vec(),
        ),
        (
            "an SSLv2 hello",
            b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10".to_vec(),
        ),
        ("a ClientHello with a bad version byte", bad_version),
        ("a ClientHello, then an application record", hello_then_junk),
        (
            "a plain command",
            b"EHLO x\r\nA1 LOGIN a b\r\nUSER x\r\n".to_vec(),
        ),
    ]
}

#[test]
fn tls_handshake_garbage_on_implicit_tls_and_after_starttls() {
    let s = Arc::new(start(""));
    let probe = Probe::start(&s);
    let mut cases: Vec<JoinHandle<String>> = Vec::new();
    let services = [
        "submissions",
        "imaps",
        "pop3s",
        "smtp",
        "submission",
        "imap",
        "pop3",
    ];
    for (i, service) in services.into_iter().enumerate() {
        for (k, (what, bytes)) in tls_garbage().into_iter().enumerate() {
            let sv = s.clone();
            let from = src(40 + i as u8, k as u8 + 1);
            cases.push(std::thread::spawn(move || {
                let tcp = if IMPLICIT_TLS.contains(&service) {
                    tcp_from(from, sv.port(service)).expect("connect")
                } else {
                    after_starttls(&sv, service, from)
                };
                let mut c = Conn::Plain(tcp);
                let _ = c.write_all(&bytes);
                let took = time_to_close(&mut c, Duration::from_secs(40))
                    .unwrap_or_else(|| panic!("{service}: {what}: not closed"));
                assert!(
                    took < HANDSHAKE_TIMEOUT + Duration::from_secs(10),
                    "{service}: {what}: {took:?}"
                );
                format!("{service}: {what}: closed after {took:.1?}")
            }));
        }
        // A good handshake, then a forged application record: the session ends.
        let sv = s.clone();
        cases.push(std::thread::spawn(move || {
            let from = src(50, i as u8 + 1);
            let c = if IMPLICIT_TLS.contains(&service) {
                Client::connect(&sv, service, from).expect("connect")
            } else {
                let tcp = after_starttls(&sv, service, from);
                Client {
                    r: BufReader::new(tls_wrap(tcp).expect("handshake after STARTTLS")),
                }
            };
            let Conn::Tls(tls) = c.r.into_inner() else {
                panic!("not TLS")
            };
            let mut tcp = tls.sock;
            let _ = tcp.write_all(&[0x17, 0x03, 0x03, 0x00, 0x30]);
            let _ = tcp.write_all(&[0x5a; 0x30]);
            let mut c = Conn::Plain(tcp);
            let took = time_to_close(&mut c, Duration::from_secs(30))
                .unwrap_or_else(|| panic!("{service}: forged record: not closed"));
            format!("{service}: forged record after the handshake: closed after {took:.1?}")
        }));
    }
    let mut failures = Vec::new();
    for c in cases {
        match c.join() {
            Ok(line) => eprintln!("{line}"),
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Every TLS listener still completes a real handshake.
    for service in ["submissions", "imaps", "pop3s"] {
        Client::connect(&s, service, src(60, 1)).expect("TLS after the garbage");
    }
    for service in ["smtp", "imap", "pop3"] {
        let tcp = after_starttls(&s, service, src(60, 2));
        tls_wrap(tcp).expect("STARTTLS after the garbage");
    }
    let s = Arc::try_unwrap(s).unwrap_or_else(|_| panic!("server still shared"));
    finish(s, probe, "tls-garbage");
}

// ---------------------------------------------------------------------------------------
// Message data in transit, over many connections

/// 200 port-25 clients each stream 1 MB of DATA and 50 IMAP clients each APPEND a 900 KB
/// literal, all at once: without a shared bound the daemon held all of it (640 MiB for
/// 600 such clients, measured before `[limits] max_message_memory` existed). With a
/// 64 MiB budget the ones that do not fit are refused with a temporary error, the others
/// are delivered, and the peak RSS stays low.
#[test]
fn message_data_in_transit_is_bounded_over_all_connections() {
    let s = start("max_message_memory = \"64MiB\"\n");
    let p = pid(&s);
    let probe = Probe::start(&s);
    let t0 = Instant::now();
    let mut smtp = Vec::new();
    let line = [b'd'; 998];
    for i in 0..200usize {
        let mut c = Client::connect(&s, "smtp", src(70, (i / 100) as u8 + 1)).expect("connect");
        c.cmd("smtp", "EHLO bulk.test").expect("EHLO");
        assert!(
            c.cmd("smtp", "MAIL FROM:<bulk@bulk.test>")
                .unwrap()
                .starts_with("250")
        );
        assert!(
            c.cmd("smtp", &format!("RCPT TO:<{VICTIM}>"))
                .unwrap()
                .starts_with("250")
        );
        assert!(c.cmd("smtp", "DATA").unwrap().starts_with("354"));
        c.send(format!("From: <bulk@bulk.test>\r\nSubject: bulk {i}\r\n\r\n").as_bytes())
            .unwrap();
        for _ in 0..1000 {
            c.send(&line).unwrap();
            c.send(b"\r\n").unwrap();
        }
        smtp.push(c);
    }
    let mut imap = Vec::new();
    let mut imap_refused = 0;
    for i in 0..50usize {
        let mut c = Client::connect(&s, "imap", src(71, 1)).expect("connect");
        let r = c
            .cmd("imap", &format!("l LOGIN {VICTIM} {VICTIM_PW}"))
            .unwrap();
        assert!(r.starts_with("l OK"), "{r}");
        c.send(b"a APPEND INBOX {900000}\r\n").unwrap();
        let r = c.line().unwrap();
        if r.starts_with("+ ") {
            c.send(&vec![b'i'; 899_998]).unwrap();
            imap.push(c);
        } else {
            assert!(r.starts_with("a NO [UNAVAILABLE]"), "APPEND {i}: {r}");
            imap_refused += 1;
        }
    }
    let (hwm, rss) = memory(p);
    eprintln!(
        "200 x 1 MB DATA and 50 x 900 KB APPEND in transit after {:.1?}: VmRSS {} MiB, peak {} MiB",
        t0.elapsed(),
        rss / 1024,
        hwm / 1024
    );
    let (mut delivered, mut refused) = (0, 0);
    for mut c in smtp {
        c.send(b"\r\n.\r\n").unwrap();
        let r = c.smtp().unwrap();
        if r.starts_with("250") {
            delivered += 1;
        } else {
            assert!(r.starts_with("452 4.3.1"), "{r}");
            refused += 1;
        }
    }
    let mut appended = 0;
    for mut c in imap {
        c.send(b"\r\n").unwrap();
        let r = c.until("a ").unwrap();
        assert!(r.starts_with("a OK"), "{r}");
        appended += 1;
    }
    eprintln!(
        "SMTP: {delivered} delivered, {refused} refused with 452 4.3.1; IMAP: {appended} \
         appended, {imap_refused} refused with NO [UNAVAILABLE]"
    );
    assert!(delivered >= 10 && refused >= 100, "{delivered} / {refused}");
    assert!(imap_refused >= 1, "no APPEND was refused");
    let st = s.status_json();
    assert_eq!(
        st["store"]["messages"].as_u64(),
        Some(delivered + appended),
        "{st}"
    );
    // The budget was given back: one more of each fits now.
    let mut c = Client::connect(&s, "imap", src(71, 2)).expect("connect");
    c.cmd("imap", &format!("l LOGIN {VICTIM} {VICTIM_PW}"))
        .unwrap();
    c.send(b"a APPEND INBOX {900000}\r\n").unwrap();
    assert!(
        c.line().unwrap().starts_with("+ "),
        "the budget was not given back"
    );
    finish(s, probe, "in-transit");
}
