//! The load generator of the comparison benchmark (issues 3 §6, 6 §5, 8 §4): one client,
//! in Rust, that faces Letterbox and the Postfix + Dovecot peers alike, so that both
//! servers see the same bytes in the same order.
//!
//! It is a `[[bench]]` with `harness = false`; run it as
//! `cargo bench --bench loadgen -- MODE [OPTIONS]`. Modes:
//!
//! - `smtp-ingest`: `--connections` SMTP sessions each send messages (EHLO once, then
//!   MAIL/RCPT/DATA, pipelined when the server offers PIPELINING) until `--messages` in all
//!   have been answered; 250s are counted as accepted. With `--count-control-socket`
//!   (the sum of the accounts' message counts from Letterbox's `user list`, asked in-process), `--count-maildir` (Maildir directories
//!   whose `new/` and `cur/` entries are counted) or `--count-cmd` (a shell command printing
//!   the number of delivered messages), it then waits, bounded by
//!   `--wait-secs`, until every accepted message has landed, and reports the delivered rate
//!   timed to the last one.
//! - `pop3-logins`: `--count` logins (connect, USER, PASS, QUIT) from `--concurrency`
//!   clients; client `i` logs in as account `i % --users` so that no two clients share a
//!   maildrop (Letterbox refuses a second session with `-ERR [IN-USE]`, as RFC 1939 allows).
//! - `pop3-retr`: `--clients` clients each log in (client `i` as account `i % --users`),
//!   STAT, RETR every message, QUIT; reports messages/s and MB/s.
//! - `imap-first-sync`: one client: LOGIN, SELECT INBOX (CONDSTORE), then
//!   `UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)`, the first sync of
//!   Thunderbird and Apple Mail (`--items` for others, e.g. with `BODY.PEEK[HEADER]`);
//!   times each step and counts the bytes read from the socket during the FETCH
//!   (`wire_bytes`: below TLS, after compression).
//!
//! IMAP modes take `--compress`: `COMPRESS DEFLATE` (RFC 4978) right after LOGIN, then
//! both directions through Letterbox's own DEFLATE layer (`letterbox::net::deflate`,
//! level 1, sync-flushed writes).
//! - `imap-download`: one client: LOGIN, SELECT, `UID FETCH 1:* BODY.PEEK[]`; MB/s.
//! - `imap-search-text`: one client: LOGIN, SELECT, then `UID SEARCH TEXT "w"` for each
//!   of `--words`; the time and the number of hits of each.
//! - `imap-store`: one client: LOGIN, SELECT, `UID STORE 1:* +FLAGS (\Seen)`, then
//!   `-FLAGS`; the time of each (the untagged FETCH replies included).
//! - `imap-idle`: `--clients` clients log in (client `i` as account `i % --users`),
//!   SELECT INBOX and IDLE. With all of them idling, `--mem-cmd` (a bash command printing
//!   the server's memory in kB) is run, as it was before the first connection. Then
//!   `--deliveries` messages go one at a time to account 1 over SMTP (`--lmtp`: LMTP) on
//!   `--deliver-port`, and the time from the end of DATA, and from the 250, to the
//!   `* n EXISTS` at client 0 (an idler on account 1) is taken; medians are reported.
//! - `hash`: prints Letterbox's argon2id PHC string for `--password`, so the peer's
//!   passwd-file can carry the same cost parameters.
//! - `soak`: mixed traffic for `--seconds` (benches/soak.sh, issue 8 §5): SMTP ingest,
//!   IMAP fetch/store/expunge, POP3 RETR/DELE, IDLE clients, wrong-password logins; see
//!   the "Soak" section at the end of this file.
//!
//! Account names are templates: `{}` is replaced by the account number (`r{}@bench.test`).
//! Messages are all distinct (numbered subject, Message-ID and body), so a content-addressed
//! store cannot deduplicate them; each body has one `topic: <word>` line, the word taken
//! from [`TOPICS`] by the message number, for SEARCH TEXT. The result is one JSON line on
//! stdout (for scripts) after a human-readable line on stderr.
//!
//! `--tls` wraps each connection in implicit TLS (tokio-rustls, certificate not verified:
//! loopback benchmarks against self-signed certificates); the comparison runs in plain text.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "Letterbox comparison load generator")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// SMTP ingest of distinct messages from concurrent sessions.
    SmtpIngest(SmtpArgs),
    /// POP3 USER/PASS/QUIT logins per second.
    Pop3Logins(LoginArgs),
    /// POP3 download of every message of each account.
    Pop3Retr(RetrArgs),
    /// Mixed traffic for a while (the soak run).
    Soak(SoakArgs),
    /// IMAP first sync: SELECT (CONDSTORE) and UID FETCH of the summary items.
    ImapFirstSync(ImapArgs),
    /// IMAP download of every message (UID FETCH 1:* BODY.PEEK[]).
    ImapDownload(ImapArgs),
    /// IMAP UID SEARCH TEXT for several words.
    ImapSearchText(SearchArgs),
    /// IMAP UID STORE 1:* +FLAGS (\Seen), then -FLAGS.
    ImapStore(ImapArgs),
    /// IMAP UID SORT (DATE), UID SORT (SUBJECT) and UID THREAD REFERENCES of the whole
    /// mailbox (RFC 5256).
    ImapSortThread(ImapArgs),
    /// Many IMAP clients in IDLE: server memory, and the push latency of new mail.
    ImapIdle(IdleArgs),
    /// Print Letterbox's argon2id hash of a password.
    Hash {
        /// The password.
        #[arg(long)]
        password: String,
    },
}

#[derive(Args, Debug, Clone)]
struct Conn {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long)]
    port: u16,
    /// Implicit TLS (certificate not verified).
    #[arg(long)]
    tls: bool,
    /// Runtime worker threads (0: a current-thread runtime).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Args, Debug)]
struct SmtpArgs {
    #[command(flatten)]
    conn: Conn,
    /// Concurrent SMTP sessions.
    #[arg(long, default_value_t = 16)]
    connections: u64,
    /// Messages in all.
    #[arg(long, default_value_t = 2000)]
    messages: u64,
    /// Approximate message size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Recipient template; `{}` is replaced by `message % --rcpt-users`.
    #[arg(long)]
    to: String,
    /// Number of recipient accounts the template expands to.
    #[arg(long, default_value_t = 1)]
    rcpt_users: u64,
    /// Envelope sender.
    #[arg(long, default_value = "loadgen@sender.test")]
    from: String,
    /// Shell command printing the number of delivered messages.
    #[arg(long)]
    count_cmd: Option<String>,
    /// Letterbox's control socket (`data_dir/control.sock`): delivered messages are the
    /// sum of the accounts' message counts from a `user list` request, asked in-process.
    #[arg(long)]
    count_control_socket: Option<String>,
    /// Maildir directories whose new/ and cur/ entries count as delivered messages.
    #[arg(long)]
    count_maildir: Vec<String>,
    /// Upper bound on the wait for deliveries after the last 250.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
}

#[derive(Args, Debug)]
struct LoginArgs {
    #[command(flatten)]
    conn: Conn,
    /// Login template; `{}` is replaced by the account number.
    #[arg(long)]
    user: String,
    /// Number of accounts the template expands to (1..=users).
    #[arg(long, default_value_t = 1)]
    users: u64,
    /// Password (the same for every account).
    #[arg(long)]
    pass: String,
    /// Logins in all.
    #[arg(long, default_value_t = 200)]
    count: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: u64,
}

#[derive(Args, Debug)]
struct RetrArgs {
    #[command(flatten)]
    conn: Conn,
    /// Login template; `{}` is replaced by the account number.
    #[arg(long)]
    user: String,
    /// Number of accounts the template expands to (1..=users).
    #[arg(long, default_value_t = 1)]
    users: u64,
    /// Password.
    #[arg(long)]
    pass: String,
    /// Concurrent clients, each downloading one account's whole maildrop.
    #[arg(long, default_value_t = 4)]
    clients: u64,
}

#[derive(Args, Debug)]
struct ImapArgs {
    #[command(flatten)]
    conn: Conn,
    /// Login.
    #[arg(long)]
    user: String,
    /// Password.
    #[arg(long)]
    pass: String,
    /// `COMPRESS DEFLATE` after LOGIN (RFC 4978).
    #[arg(long)]
    compress: bool,
    /// The items of the first sync's UID FETCH.
    #[arg(long, default_value = "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)")]
    items: String,
}

#[derive(Args, Debug)]
struct SearchArgs {
    #[command(flatten)]
    imap: ImapArgs,
    /// Words to search for, comma-separated.
    #[arg(long, default_value = "cherry,loadgen,zebra")]
    words: String,
}

#[derive(Args, Debug)]
struct IdleArgs {
    #[command(flatten)]
    conn: Conn,
    /// Login template; `{}` is replaced by the account number.
    #[arg(long)]
    user: String,
    /// Number of accounts the template expands to (1..=users).
    #[arg(long, default_value_t = 10)]
    users: u64,
    /// Password.
    #[arg(long)]
    pass: String,
    /// Idling clients.
    #[arg(long, default_value_t = 100)]
    clients: u64,
    /// Bash command printing the server's memory in kB (run before and while idling).
    #[arg(long)]
    mem_cmd: Option<String>,
    /// Port taking the deliveries (SMTP, or LMTP with `--lmtp`).
    #[arg(long)]
    deliver_port: u16,
    /// Deliver over LMTP (RFC 2033) instead of SMTP.
    #[arg(long)]
    lmtp: bool,
    /// Messages delivered to account 1, one at a time.
    #[arg(long, default_value_t = 20)]
    deliveries: u64,
}

fn expand(template: &str, n: u64) -> String {
    template.replace("{}", &n.to_string())
}

fn main() {
    // `cargo bench` appends `--bench`; a bare `cargo bench` (every bench, no mode) and
    // `cargo test --benches` get the usage and a clean exit.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 2 {
        eprintln!("loadgen: no mode given; see `cargo bench --bench loadgen -- --help`");
        return;
    }
    let cli = Cli::parse_from(args);
    let conn = match &cli.mode {
        Mode::SmtpIngest(a) => a.conn.clone(),
        Mode::Pop3Logins(a) => a.conn.clone(),
        Mode::Pop3Retr(a) => a.conn.clone(),
        Mode::Soak(a) => a.conn(),
        Mode::ImapFirstSync(a)
        | Mode::ImapDownload(a)
        | Mode::ImapStore(a)
        | Mode::ImapSortThread(a) => a.conn.clone(),
        Mode::ImapSearchText(a) => a.imap.conn.clone(),
        Mode::ImapIdle(a) => a.conn.clone(),
        Mode::Hash { password } => {
            match letterbox::auth::hash_password(password) {
                Ok(h) => println!("{h}"),
                Err(e) => fail(&e.to_string()),
            }
            return;
        }
    };
    let rt = if conn.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(conn.threads)
            .enable_all()
            .build()
    }
    .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let result = rt.block_on(async move {
        match cli.mode {
            Mode::SmtpIngest(a) => smtp_ingest(a).await,
            Mode::Pop3Logins(a) => pop3_logins(a).await,
            Mode::Pop3Retr(a) => pop3_retr(a).await,
            Mode::Soak(a) => soak(a).await,
            Mode::ImapFirstSync(a) => imap_first_sync(a).await,
            Mode::ImapDownload(a) => imap_download(a).await,
            Mode::ImapSearchText(a) => imap_search_text(a).await,
            Mode::ImapStore(a) => imap_store(a).await,
            Mode::ImapSortThread(a) => imap_sort_thread(a).await,
            Mode::ImapIdle(a) => imap_idle(a).await,
            Mode::Hash { .. } => unreachable!("handled above"),
        }
    });
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(1)
}

// ---------------------------------------------------------------------------------------
// Connections

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A line-oriented client connection.
struct Client {
    io: BufReader<Box<dyn Io>>,
    line: Vec<u8>,
    /// Bytes read from the TCP socket (below TLS and compression).
    wire_in: Arc<AtomicU64>,
}

/// A TCP stream that counts the bytes read from it.
struct Counted {
    tcp: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// DEFLATE both ways over a stream (IMAP COMPRESS, RFC 4978), with Letterbox's own
/// sans-I/O layer: each write is compressed and sync-flushed.
struct Deflated {
    inner: Box<dyn Io>,
    z: letterbox::net::deflate::Deflate,
    plain: Vec<u8>,
    plain_pos: usize,
    out: Vec<u8>,
    out_pos: usize,
    raw: Box<[u8]>,
}

impl Deflated {
    fn poll_drain(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let rest = self.out.get(self.out_pos..).unwrap_or_default();
            let n = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return std::task::Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Deflated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.plain_pos < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.plain_pos);
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return std::task::Poll::Ready(Ok(()));
            }
            let p = this.z.inflate(64 * 1024).map_err(io::Error::other)?;
            if !p.is_empty() {
                this.plain = p;
                this.plain_pos = 0;
                continue;
            }
            let mut rb = tokio::io::ReadBuf::new(&mut this.raw);
            std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return std::task::Poll::Ready(Ok(()));
            }
            this.z.push_input(rb.filled()).map_err(io::Error::other)?;
        }
    }
}

impl AsyncWrite for Deflated {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        self.out = self.z.compress(buf);
        self.out_pos = 0;
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn connect(c: &Conn) -> io::Result<Client> {
    let tcp = TcpStream::connect((c.host.as_str(), c.port)).await?;
    tcp.set_nodelay(true)?;
    let wire_in = Arc::new(AtomicU64::new(0));
    let tcp = Counted {
        tcp,
        read: wire_in.clone(),
    };
    let io: Box<dyn Io> = if c.tls {
        let name = rustls_pki_types::ServerName::try_from(c.host.clone())
            .map_err(|e| io::Error::other(e.to_string()))?;
        Box::new(tls_connector().connect(name, tcp).await?)
    } else {
        Box::new(tcp)
    };
    Ok(Client {
        io: BufReader::with_capacity(64 * 1024, io),
        line: Vec::with_capacity(1024),
        wire_in,
    })
}

impl Client {
    /// Reads one line (with its terminator); error on EOF.
    async fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        let n = self.io.read_until(b'\n', &mut self.line).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        Ok(&self.line)
    }

    /// Reads an SMTP reply (every continuation line); returns the code and the text.
    async fn smtp_reply(&mut self) -> io::Result<(u16, String)> {
        let mut text = String::new();
        loop {
            let line = self.read_line().await?;
            if line.len() < 4 {
                return Err(io::Error::other(format!(
                    "short SMTP reply {:?}",
                    String::from_utf8_lossy(line)
                )));
            }
            let code = std::str::from_utf8(&line[..3])
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| io::Error::other("SMTP reply without a code"))?;
            let more = line[3] == b'-';
            text.push_str(String::from_utf8_lossy(&line[4..]).trim_end());
            text.push('\n');
            if !more {
                return Ok((code, text));
            }
        }
    }

    /// Reads a POP3 status line; error unless `+OK`.
    async fn pop3_ok(&mut self, what: &str) -> io::Result<String> {
        let line = self.read_line().await?;
        if line.starts_with(b"+OK") {
            Ok(String::from_utf8_lossy(line).trim_end().to_string())
        } else {
            Err(io::Error::other(format!(
                "{what}: {}",
                String::from_utf8_lossy(line).trim_end()
            )))
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let w = self.io.get_mut();
        w.write_all(bytes).await?;
        w.flush().await
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts any certificate: the benchmark's servers are on loopback with
    /// self-signed certificates, and the handshake cost is what matters.
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

// ---------------------------------------------------------------------------------------
// Results

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs `workers` tasks and collects their results; the first error wins.
async fn join_all<T: Send + 'static>(
    tasks: Vec<tokio::task::JoinHandle<io::Result<T>>>,
) -> io::Result<Vec<T>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.map_err(io::Error::other)??);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// SMTP ingest

/// Words for the `topic:` line of the messages: message `n` gets `TOPICS[n % 10]`, so
/// SEARCH TEXT "cherry" matches one message in ten; "zebra" matches none.
const TOPICS: [&str; 10] = [
    "apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel", "iris", "juniper",
];

/// A distinct message of about `size` bytes: numbered headers and body.
fn message(n: u64, size: usize, from: &str, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: loadgen message {n}\r\n\
         Message-ID: <loadgen.{n}.{}@sender.test>\r\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        std::process::id()
    )
    .into_bytes();
    m.extend_from_slice(format!("topic: {}\r\n", TOPICS[(n % 10) as usize]).as_bytes());
    let mut line = 0u64;
    while m.len() + 80 <= size {
        // 78 characters + CRLF, distinct per message and line; never starts with a dot.
        let l = format!(
            "{n:>10} {line:>6} {}",
            "abcdefghijklmnopqrstuvwxyz0123456789"
        );
        let l = format!("{l:<78}\r\n");
        m.extend_from_slice(l.as_bytes());
        line += 1;
    }
    m
}

struct IngestStats {
    accepted: u64,
    refused: u64,
    latencies_ms: Vec<f64>,
}

async fn smtp_session(a: Arc<SmtpArgs>, next: Arc<AtomicU64>) -> io::Result<IngestStats> {
    let mut c = connect(&a.conn).await?;
    let (code, text) = c.smtp_reply().await?;
    if code != 220 {
        return Err(io::Error::other(format!("greeting {code} {text}")));
    }
    c.send(b"EHLO loadgen.sender.test\r\n").await?;
    let (code, text) = c.smtp_reply().await?;
    if code != 250 {
        return Err(io::Error::other(format!("EHLO {code} {text}")));
    }
    let pipelining = text.lines().any(|l| l.eq_ignore_ascii_case("PIPELINING"));
    let mut st = IngestStats {
        accepted: 0,
        refused: 0,
        latencies_ms: Vec::new(),
    };
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= a.messages {
            break;
        }
        let to = expand(&a.to, n % a.rcpt_users + 1);
        let t0 = Instant::now();
        let mail = format!("MAIL FROM:<{}>\r\n", a.from);
        let rcpt = format!("RCPT TO:<{to}>\r\n");
        let mut ok = true;
        if pipelining {
            c.send(format!("{mail}{rcpt}DATA\r\n").as_bytes()).await?;
            let r1 = c.smtp_reply().await?;
            let r2 = c.smtp_reply().await?;
            let r3 = c.smtp_reply().await?;
            if r1.0 != 250 || r2.0 != 250 || r3.0 != 354 {
                ok = false;
                if r3.0 == 354 {
                    // Recipient refused after DATA was accepted: send an empty message.
                    c.send(b".\r\n").await?;
                    c.smtp_reply().await?;
                }
                eprintln!(
                    "loadgen: message {n} refused: {} / {} / {}",
                    r1.1.trim(),
                    r2.1.trim(),
                    r3.1.trim()
                );
            }
        } else {
            for (cmd, want) in [
                (mail.as_str(), 250),
                (rcpt.as_str(), 250),
                ("DATA\r\n", 354),
            ] {
                c.send(cmd.as_bytes()).await?;
                let (code, text) = c.smtp_reply().await?;
                if code != want {
                    eprintln!(
                        "loadgen: message {n}: {} -> {code} {}",
                        cmd.trim(),
                        text.trim()
                    );
                    ok = false;
                    if code != 354 && want == 354 {
                        break;
                    }
                    c.send(b"RSET\r\n").await?;
                    c.smtp_reply().await?;
                    break;
                }
            }
        }
        if !ok {
            st.refused += 1;
            continue;
        }
        let mut body = message(n, a.size, &a.from, &to);
        body.extend_from_slice(b".\r\n");
        c.send(&body).await?;
        let (code, text) = c.smtp_reply().await?;
        if code == 250 {
            st.accepted += 1;
            st.latencies_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        } else {
            st.refused += 1;
            eprintln!("loadgen: message {n} after DATA: {code} {}", text.trim());
        }
    }
    c.send(b"QUIT\r\n").await?;
    let _ = c.smtp_reply().await;
    Ok(st)
}

/// The number of delivered messages, by command or by Maildir.
async fn delivered(a: &SmtpArgs) -> io::Result<Option<u64>> {
    if let Some(path) = &a.count_control_socket {
        let path = std::path::PathBuf::from(path);
        // `user list` reads each mailbox's message counter; `status` would walk the
        // whole blob table (slow, and it grows the daemon's RSS: see results-notes.md).
        let resp = tokio::task::spawn_blocking(move || {
            letterbox::control::send(&path, &letterbox::control::Request::UserList)
        })
        .await
        .map_err(io::Error::other)??
        .ok_or_else(|| io::Error::other("no Letterbox daemon on the control socket"))?;
        let rows = resp
            .data
            .as_array()
            .ok_or_else(|| io::Error::other("user list: not an array"))?;
        return Ok(Some(
            rows.iter().filter_map(|r| r["messages"].as_u64()).sum(),
        ));
    }
    if let Some(cmd) = &a.count_cmd {
        let cmd = cmd.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh").arg("-c").arg(cmd).output()
        })
        .await
        .map_err(io::Error::other)??;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "count command failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let s = String::from_utf8_lossy(&out.stdout);
        return s.trim().parse::<u64>().map(Some).map_err(|_| {
            io::Error::other(format!(
                "count command printed {:?}, not a number",
                s.trim()
            ))
        });
    }
    if a.count_maildir.is_empty() {
        return Ok(None);
    }
    let mut n = 0u64;
    for dir in &a.count_maildir {
        for sub in ["new", "cur"] {
            match std::fs::read_dir(std::path::Path::new(dir).join(sub)) {
                Ok(rd) => n += rd.count() as u64,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Some(n))
}

async fn smtp_ingest(a: SmtpArgs) -> io::Result<serde_json::Value> {
    let a = Arc::new(a);
    let base = delivered(&a).await?;
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let tasks = (0..a.connections)
        .map(|_| tokio::spawn(smtp_session(a.clone(), next.clone())))
        .collect();
    let stats = join_all(tasks).await?;
    let accepted_after = t0.elapsed();
    let accepted: u64 = stats.iter().map(|s| s.accepted).sum();
    let refused: u64 = stats.iter().map(|s| s.refused).sum();
    let lat = median(stats.into_iter().flat_map(|s| s.latencies_ms).collect());
    let mut delivered_after = None;
    let mut delivered_count = None;
    if let Some(base) = base {
        let deadline = Instant::now() + Duration::from_secs(a.wait_secs);
        loop {
            let now = delivered(&a).await?.unwrap_or(0);
            let landed = now.saturating_sub(base);
            delivered_count = Some(landed);
            if landed >= accepted {
                delivered_after = Some(t0.elapsed());
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "loadgen: only {landed} of {accepted} accepted messages delivered after {} s",
                    a.wait_secs
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let acc_rate = per_sec(accepted, accepted_after);
    let del_rate = delivered_after.map(|d| per_sec(accepted, d));
    eprintln!(
        "smtp-ingest {}:{}: {accepted} accepted ({refused} refused) in {:.2} s = {acc_rate:.0} msg/s accepted; \
         delivered: {}; median latency MAIL..250 {lat:.1} ms",
        a.conn.host,
        a.conn.port,
        accepted_after.as_secs_f64(),
        match (delivered_after, del_rate) {
            (Some(d), Some(r)) => format!("all in {:.2} s = {r:.0} msg/s", d.as_secs_f64()),
            _ => "not measured or incomplete".into(),
        }
    );
    Ok(serde_json::json!({
        "mode": "smtp-ingest",
        "accepted": accepted,
        "refused": refused,
        "accepted_secs": accepted_after.as_secs_f64(),
        "accepted_per_sec": acc_rate,
        "delivered": delivered_count,
        "delivered_secs": delivered_after.map(|d| d.as_secs_f64()),
        "delivered_per_sec": del_rate,
        "median_latency_ms": lat,
    }))
}

// ---------------------------------------------------------------------------------------
// POP3

async fn pop3_login(conn: &Conn, user: &str, pass: &str) -> io::Result<Client> {
    let mut c = connect(conn).await?;
    c.pop3_ok("greeting").await?;
    c.send(format!("USER {user}\r\n").as_bytes()).await?;
    c.pop3_ok("USER").await?;
    c.send(format!("PASS {pass}\r\n").as_bytes()).await?;
    c.pop3_ok("PASS").await?;
    Ok(c)
}

async fn pop3_quit(mut c: Client) -> io::Result<()> {
    c.send(b"QUIT\r\n").await?;
    c.pop3_ok("QUIT").await?;
    Ok(())
}

async fn pop3_logins(a: LoginArgs) -> io::Result<serde_json::Value> {
    let a = Arc::new(a);
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let tasks = (0..a.concurrency)
        .map(|i| {
            let (a, next) = (a.clone(), next.clone());
            tokio::spawn(async move {
                let user = expand(&a.user, i % a.users.max(1) + 1);
                let (mut ok, mut failed) = (0u64, 0u64);
                let mut lat = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < a.count {
                    let t = Instant::now();
                    match pop3_login(&a.conn, &user, &a.pass).await {
                        Ok(c) => {
                            pop3_quit(c).await?;
                            ok += 1;
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                        Err(e) => {
                            failed += 1;
                            if failed <= 3 {
                                eprintln!("loadgen: login {user}: {e}");
                            }
                        }
                    }
                }
                io::Result::Ok((ok, failed, lat))
            })
        })
        .collect();
    let res = join_all(tasks).await?;
    let elapsed = t0.elapsed();
    let ok: u64 = res.iter().map(|r| r.0).sum();
    let failed: u64 = res.iter().map(|r| r.1).sum();
    let lat = median(res.into_iter().flat_map(|r| r.2).collect());
    let rate = per_sec(ok, elapsed);
    eprintln!(
        "pop3-logins {}:{}: {ok} ok, {failed} failed in {:.2} s = {rate:.1} logins/s; median login {lat:.1} ms",
        a.conn.host,
        a.conn.port,
        elapsed.as_secs_f64()
    );
    Ok(serde_json::json!({
        "mode": "pop3-logins",
        "ok": ok,
        "failed": failed,
        "secs": elapsed.as_secs_f64(),
        "logins_per_sec": rate,
        "median_login_ms": lat,
    }))
}

/// Logs in, waits at `logged_in` for the other clients, RETRs every message, QUITs;
/// returns (messages, bytes of message data).
async fn pop3_download(
    conn: &Conn,
    user: &str,
    pass: &str,
    logged_in: &tokio::sync::Barrier,
) -> io::Result<(u64, u64)> {
    let login = pop3_login(conn, user, pass).await;
    logged_in.wait().await;
    let mut c = login?;
    c.send(b"STAT\r\n").await?;
    let stat = c.pop3_ok("STAT").await?;
    let count: u64 = stat
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("STAT answer {stat:?}")))?;
    let mut bytes = 0u64;
    for i in 1..=count {
        c.send(format!("RETR {i}\r\n").as_bytes()).await?;
        c.pop3_ok("RETR").await?;
        loop {
            let line = c.read_line().await?;
            if line == b".\r\n" {
                break;
            }
            bytes += line.len() as u64;
        }
    }
    pop3_quit(c).await?;
    Ok((count, bytes))
}

async fn pop3_retr(a: RetrArgs) -> io::Result<serde_json::Value> {
    let a = Arc::new(a);
    // Every client logs in, then all start downloading together: the rate is given with
    // the logins (the whole session) and without them (RETR alone).
    let logged_in = Arc::new(tokio::sync::Barrier::new(a.clients as usize + 1));
    let t0 = Instant::now();
    let tasks = (0..a.clients)
        .map(|i| {
            let (a, logged_in) = (a.clone(), logged_in.clone());
            tokio::spawn(async move {
                let user = expand(&a.user, i % a.users.max(1) + 1);
                pop3_download(&a.conn, &user, &a.pass, &logged_in).await
            })
        })
        .collect();
    logged_in.wait().await;
    let t1 = Instant::now();
    let res = join_all(tasks).await?;
    let elapsed = t0.elapsed();
    let retr_only = t1.elapsed();
    let msgs: u64 = res.iter().map(|r| r.0).sum();
    let bytes: u64 = res.iter().map(|r| r.1).sum();
    let rate = per_sec(msgs, elapsed);
    let mbs = bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9);
    let retr_rate = per_sec(msgs, retr_only);
    let retr_mbs = bytes as f64 / 1e6 / retr_only.as_secs_f64().max(1e-9);
    eprintln!(
        "pop3-retr {}:{}: {msgs} messages, {:.1} MB in {:.2} s = {rate:.0} msg/s, {mbs:.1} MB/s; \
         after the logins: {:.2} s = {retr_rate:.0} msg/s, {retr_mbs:.1} MB/s",
        a.conn.host,
        a.conn.port,
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        retr_only.as_secs_f64()
    );
    Ok(serde_json::json!({
        "mode": "pop3-retr",
        "messages": msgs,
        "bytes": bytes,
        "secs": elapsed.as_secs_f64(),
        "messages_per_sec": rate,
        "mb_per_sec": mbs,
        "retr_secs": retr_only.as_secs_f64(),
        "retr_messages_per_sec": retr_rate,
        "retr_mb_per_sec": retr_mbs,
    }))
}

// ---------------------------------------------------------------------------------------
// IMAP

/// What one IMAP command brought back.
#[derive(Default)]
struct Reply {
    /// Untagged FETCH responses.
    fetches: u64,
    /// Octets of literal data.
    literal_bytes: u64,
    /// Octets read in all.
    bytes: u64,
    /// The untagged lines, when kept (literal data left out).
    lines: Vec<String>,
}

/// The length of the literal a response line ends with (`{n}` or `{n+}`, RFC 9051 §4.3).
fn literal_len(line: &[u8]) -> Option<u64> {
    let l = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    let digits = l.get(open + 1..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Client {
    /// Reads one IMAP response into `out` (its lines; literal data is counted and
    /// skipped); returns the literal octets.
    async fn imap_response(&mut self, out: &mut Vec<u8>) -> io::Result<u64> {
        use tokio::io::AsyncReadExt;
        out.clear();
        let mut literal = 0;
        loop {
            let start = out.len();
            let line = self.read_line().await?;
            out.extend_from_slice(line);
            let Some(n) = out.get(start..).and_then(literal_len) else {
                return Ok(literal);
            };
            let copied =
                tokio::io::copy(&mut (&mut self.io).take(n), &mut tokio::io::sink()).await?;
            if copied != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a literal",
                ));
            }
            literal += n;
        }
    }

    /// Sends `tag cmd` and reads up to the tagged reply; error unless it is OK.
    async fn imap_cmd(&mut self, tag: &str, cmd: &str, keep: bool) -> io::Result<Reply> {
        self.send(format!("{tag} {cmd}\r\n").as_bytes()).await?;
        let mut r = Reply::default();
        let mut buf = Vec::with_capacity(1024);
        loop {
            let lit = self.imap_response(&mut buf).await?;
            r.bytes += buf.len() as u64 + lit;
            r.literal_bytes += lit;
            if buf.starts_with(b"* ") {
                let head = buf.get(..buf.len().min(24)).unwrap_or_default();
                if head.windows(7).any(|w| w == b" FETCH ") {
                    r.fetches += 1;
                }
                if keep {
                    r.lines
                        .push(String::from_utf8_lossy(&buf).trim_end().to_string());
                }
                continue;
            }
            let text = String::from_utf8_lossy(&buf).trim_end().to_string();
            let Some(rest) = buf
                .strip_prefix(tag.as_bytes())
                .and_then(|r| r.strip_prefix(b" "))
            else {
                return Err(io::Error::other(format!("{cmd}: unexpected {text:?}")));
            };
            if rest.starts_with(b"OK") {
                return Ok(r);
            }
            return Err(io::Error::other(format!("{cmd}: {text}")));
        }
    }
}

async fn imap_login(conn: &Conn, user: &str, pass: &str) -> io::Result<Client> {
    let mut c = connect(conn).await?;
    let greeting = c.read_line().await?;
    if !greeting.starts_with(b"* OK") {
        return Err(io::Error::other(format!(
            "IMAP greeting {:?}",
            String::from_utf8_lossy(greeting)
        )));
    }
    c.imap_cmd("l", &format!("LOGIN \"{user}\" \"{pass}\""), false)
        .await?;
    Ok(c)
}

impl Client {
    /// `COMPRESS DEFLATE` (RFC 4978 §3); everything after the tagged OK is compressed.
    async fn imap_compress(&mut self) -> io::Result<()> {
        self.imap_cmd("c", "COMPRESS DEFLATE", false).await?;
        let placeholder: Box<dyn Io> = Box::new(tokio::io::duplex(1).0);
        let old = std::mem::replace(&mut self.io, BufReader::new(placeholder));
        if !old.buffer().is_empty() {
            return Err(io::Error::other("data after the COMPRESS reply"));
        }
        let inner: Box<dyn Io> = Box::new(Deflated {
            inner: old.into_inner(),
            z: letterbox::net::deflate::Deflate::new(),
            plain: Vec::new(),
            plain_pos: 0,
            out: Vec::new(),
            out_pos: 0,
            raw: vec![0; 64 * 1024].into_boxed_slice(),
        });
        self.io = BufReader::with_capacity(64 * 1024, inner);
        Ok(())
    }
}

async fn imap_logout(mut c: Client) -> io::Result<()> {
    c.imap_cmd("z", "LOGOUT", false).await.map(|_| ())
}

/// The last `* n EXISTS` among untagged lines, if any.
fn exists(lines: &[String]) -> Option<u64> {
    lines.iter().rev().find_map(|l| {
        let mut w = l.split_whitespace();
        match (w.next(), w.next().and_then(|n| n.parse().ok()), w.next()) {
            (Some("*"), Some(n), Some("EXISTS")) => Some(n),
            _ => None,
        }
    })
}

/// Logs in and selects INBOX; returns the client, the login time and the SELECT reply.
async fn imap_open(a: &ImapArgs, select: &str) -> io::Result<(Client, Duration, Reply)> {
    let t = Instant::now();
    let mut c = imap_login(&a.conn, &a.user, &a.pass).await?;
    if a.compress {
        c.imap_compress().await?;
    }
    let login = t.elapsed();
    let sel = c.imap_cmd("s", select, true).await?;
    Ok((c, login, sel))
}

async fn imap_first_sync(a: ImapArgs) -> io::Result<serde_json::Value> {
    let t0 = Instant::now();
    let mut c = imap_login(&a.conn, &a.user, &a.pass).await?;
    if a.compress {
        c.imap_compress().await?;
    }
    let login = t0.elapsed();
    let t1 = Instant::now();
    let sel = c.imap_cmd("s", "SELECT INBOX (CONDSTORE)", true).await?;
    let select = t1.elapsed();
    let t2 = Instant::now();
    let wire0 = c.wire_in.load(Ordering::Relaxed);
    let f = c
        .imap_cmd("f", &format!("UID FETCH 1:* {}", a.items), false)
        .await?;
    let fetch = t2.elapsed();
    let wire = c.wire_in.load(Ordering::Relaxed) - wire0;
    imap_logout(c).await?;
    let n = exists(&sel.lines).unwrap_or(0);
    if f.fetches != n {
        return Err(io::Error::other(format!(
            "FETCH returned {} messages of {n}",
            f.fetches
        )));
    }
    let sync = select + fetch;
    eprintln!(
        "imap-first-sync {}:{}{}: {n} messages; SELECT {:.3} s, FETCH {:.3} s ({:.1} MB, {:.1} MB on the wire) = {:.3} s; login {:.3} s",
        a.conn.host,
        a.conn.port,
        if a.compress { " (COMPRESS)" } else { "" },
        select.as_secs_f64(),
        fetch.as_secs_f64(),
        f.bytes as f64 / 1e6,
        wire as f64 / 1e6,
        sync.as_secs_f64(),
        login.as_secs_f64()
    );
    Ok(serde_json::json!({
        "mode": "imap-first-sync",
        "messages": n,
        "login_secs": login.as_secs_f64(),
        "select_secs": select.as_secs_f64(),
        "fetch_secs": fetch.as_secs_f64(),
        "sync_secs": sync.as_secs_f64(),
        "bytes": f.bytes,
        "wire_bytes": wire,
        "compress": a.compress,
        "messages_per_sec": per_sec(n, sync),
    }))
}

async fn imap_download(a: ImapArgs) -> io::Result<serde_json::Value> {
    let (mut c, _, sel) = imap_open(&a, "SELECT INBOX").await?;
    let t = Instant::now();
    let f = c.imap_cmd("f", "UID FETCH 1:* BODY.PEEK[]", false).await?;
    let secs = t.elapsed();
    imap_logout(c).await?;
    let n = exists(&sel.lines).unwrap_or(0);
    if f.fetches != n {
        return Err(io::Error::other(format!(
            "FETCH returned {} messages of {n}",
            f.fetches
        )));
    }
    let mbs = f.literal_bytes as f64 / 1e6 / secs.as_secs_f64().max(1e-9);
    eprintln!(
        "imap-download {}:{}: {n} messages, {:.1} MB in {:.3} s = {mbs:.1} MB/s",
        a.conn.host,
        a.conn.port,
        f.literal_bytes as f64 / 1e6,
        secs.as_secs_f64()
    );
    Ok(serde_json::json!({
        "mode": "imap-download",
        "messages": n,
        "bytes": f.literal_bytes,
        "secs": secs.as_secs_f64(),
        "mb_per_sec": mbs,
        "messages_per_sec": per_sec(n, secs),
    }))
}

async fn imap_search_text(a: SearchArgs) -> io::Result<serde_json::Value> {
    let (mut c, _, sel) = imap_open(&a.imap, "SELECT INBOX").await?;
    let mut out = serde_json::json!({ "mode": "imap-search-text", "messages": exists(&sel.lines).unwrap_or(0) });
    let mut total = Duration::ZERO;
    let mut report = Vec::new();
    for (i, word) in a.words.split(',').filter(|w| !w.is_empty()).enumerate() {
        let t = Instant::now();
        let r = c
            .imap_cmd(
                &format!("q{i}"),
                &format!("UID SEARCH TEXT \"{word}\""),
                true,
            )
            .await?;
        let secs = t.elapsed();
        total += secs;
        let hits: usize = r
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .map(|l| l.split_whitespace().count())
            .sum();
        out[format!("{word}_secs")] = secs.as_secs_f64().into();
        out[format!("{word}_hits")] = hits.into();
        report.push(format!("{word}: {hits} in {:.3} s", secs.as_secs_f64()));
    }
    imap_logout(c).await?;
    out["secs"] = total.as_secs_f64().into();
    eprintln!(
        "imap-search-text {}:{}: {}",
        a.imap.conn.host,
        a.imap.conn.port,
        report.join("; ")
    );
    Ok(out)
}

/// UID SORT by date and by subject and UID THREAD REFERENCES over the whole INBOX; each
/// answer must name every message once.
async fn imap_sort_thread(a: ImapArgs) -> io::Result<serde_json::Value> {
    let (mut c, _, sel) = imap_open(&a, "SELECT INBOX").await?;
    let n = exists(&sel.lines).unwrap_or(0);
    let mut out = serde_json::json!({ "mode": "imap-sort-thread", "messages": n });
    let mut report = Vec::new();
    for (key, cmd, prefix) in [
        ("date", "UID SORT (DATE) UTF-8 ALL", "* SORT"),
        ("subject", "UID SORT (SUBJECT) UTF-8 ALL", "* SORT"),
        ("thread", "UID THREAD REFERENCES UTF-8 ALL", "* THREAD"),
    ] {
        let t = Instant::now();
        let r = c.imap_cmd(key, cmd, true).await?;
        let secs = t.elapsed();
        let named: usize = r
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|l| {
                l.split(|ch: char| !ch.is_ascii_digit())
                    .filter(|w| !w.is_empty())
                    .count()
            })
            .sum();
        if named as u64 != n {
            return Err(io::Error::other(format!(
                "{cmd} named {named} messages of {n}"
            )));
        }
        out[format!("{key}_secs")] = secs.as_secs_f64().into();
        report.push(format!("{key} {:.3} s", secs.as_secs_f64()));
    }
    imap_logout(c).await?;
    eprintln!(
        "imap-sort-thread {}:{}: {n} messages; {}",
        a.conn.host,
        a.conn.port,
        report.join(", ")
    );
    Ok(out)
}

async fn imap_store(a: ImapArgs) -> io::Result<serde_json::Value> {
    let (mut c, _, sel) = imap_open(&a, "SELECT INBOX").await?;
    let n = exists(&sel.lines).unwrap_or(0);
    let t = Instant::now();
    let add = c
        .imap_cmd("a", "UID STORE 1:* +FLAGS (\\Seen)", false)
        .await?;
    let add_secs = t.elapsed();
    let t = Instant::now();
    let remove = c
        .imap_cmd("r", "UID STORE 1:* -FLAGS (\\Seen)", false)
        .await?;
    let remove_secs = t.elapsed();
    imap_logout(c).await?;
    if add.fetches != n || remove.fetches != n {
        return Err(io::Error::other(format!(
            "STORE answered {} and {} FETCHes for {n} messages",
            add.fetches, remove.fetches
        )));
    }
    eprintln!(
        "imap-store {}:{}: {n} messages; +FLAGS {:.3} s, -FLAGS {:.3} s",
        a.conn.host,
        a.conn.port,
        add_secs.as_secs_f64(),
        remove_secs.as_secs_f64()
    );
    Ok(serde_json::json!({
        "mode": "imap-store",
        "messages": n,
        "add_secs": add_secs.as_secs_f64(),
        "remove_secs": remove_secs.as_secs_f64(),
        "secs": (add_secs + remove_secs).as_secs_f64(),
    }))
}

/// Runs the memory command (bash), returning its number.
async fn mem_kb(cmd: &Option<String>) -> io::Result<Option<u64>> {
    let Some(cmd) = cmd.clone() else {
        return Ok(None);
    };
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .output()
    })
    .await
    .map_err(io::Error::other)??;
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .parse::<u64>()
        .map(Some)
        .map_err(|_| io::Error::other(format!("memory command printed {:?}", s.trim())))
}

/// One idling client: logs in, selects INBOX, IDLEs, says so on `ready`; then reports
/// the arrival time of each `* n EXISTS` on `exists` until `stop`.
async fn idler(
    a: Arc<IdleArgs>,
    user: String,
    ready: tokio::sync::mpsc::Sender<()>,
    exists: Option<tokio::sync::mpsc::UnboundedSender<Instant>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let mut c = imap_login(&a.conn, &user, &a.pass).await?;
    c.imap_cmd("s", "SELECT INBOX", false).await?;
    c.send(b"i IDLE\r\n").await?;
    let mut buf = Vec::new();
    loop {
        c.imap_response(&mut buf).await?;
        if buf.starts_with(b"+") {
            break;
        }
    }
    let _ = ready.send(()).await;
    loop {
        tokio::select! {
            r = c.imap_response(&mut buf) => {
                r?;
                if buf.starts_with(b"* ") && buf.ends_with(b" EXISTS\r\n")
                    && let Some(tx) = &exists
                {
                    let _ = tx.send(Instant::now());
                }
            }
            _ = stop.changed() => break,
        }
    }
    // Best effort: DONE and LOGOUT, bounded.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        c.send(b"DONE\r\n").await?;
        loop {
            c.imap_response(&mut buf).await?;
            if buf.starts_with(b"i ") {
                break;
            }
        }
        imap_logout(c).await
    })
    .await;
    Ok(())
}

/// Delivers one message over SMTP or LMTP; returns when the end of DATA was sent and
/// when the 250 arrived.
async fn deliver_one(a: &IdleArgs, n: u64) -> io::Result<(Instant, Instant)> {
    let conn = Conn {
        port: a.deliver_port,
        tls: false,
        ..a.conn.clone()
    };
    let mut c = connect(&conn).await?;
    let to = expand(&a.user, 1);
    let from = "loadgen@sender.test";
    let hello = if a.lmtp { "LHLO" } else { "EHLO" };
    for (cmd, want) in [
        (String::new(), 220),
        (format!("{hello} loadgen.sender.test\r\n"), 250),
        (format!("MAIL FROM:<{from}>\r\n"), 250),
        (format!("RCPT TO:<{to}>\r\n"), 250),
        ("DATA\r\n".to_string(), 354),
    ] {
        if !cmd.is_empty() {
            c.send(cmd.as_bytes()).await?;
        }
        let (code, text) = c.smtp_reply().await?;
        if code != want {
            return Err(io::Error::other(format!(
                "delivery: {} -> {code} {}",
                cmd.trim(),
                text.trim()
            )));
        }
    }
    let mut body = message(1_000_000 + n, 2048, from, &to);
    body.extend_from_slice(b".\r\n");
    c.send(&body).await?;
    let dot = Instant::now();
    let (code, text) = c.smtp_reply().await?;
    let ok = Instant::now();
    if code != 250 {
        return Err(io::Error::other(format!(
            "delivery: {code} {}",
            text.trim()
        )));
    }
    c.send(b"QUIT\r\n").await?;
    let _ = c.smtp_reply().await;
    Ok((dot, ok))
}

async fn imap_idle(a: IdleArgs) -> io::Result<serde_json::Value> {
    let a = Arc::new(a);
    let before = mem_kb(&a.mem_cmd).await?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(a.clients as usize + 1);
    let (exists_tx, mut exists_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| {
            let user = expand(&a.user, i % a.users.max(1) + 1);
            let exists = (i == 0).then(|| exists_tx.clone());
            tokio::spawn(idler(
                a.clone(),
                user,
                ready_tx.clone(),
                exists,
                stop_rx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    for _ in 0..a.clients {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(())) => {}
            _ => {
                let _ = stop_tx.send(true);
                for t in tasks {
                    if let Ok(Err(e)) = t.await {
                        return Err(e);
                    }
                }
                return Err(io::Error::other("not every client reached IDLE"));
            }
        }
    }
    let all_idle = t0.elapsed();
    // Let the server settle, then take its memory with every client idling.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = mem_kb(&a.mem_cmd).await?;
    let mut push = Vec::new();
    let mut after_250 = Vec::new();
    for n in 0..a.deliveries {
        while exists_rx.try_recv().is_ok() {}
        let (dot, ok) = deliver_one(&a, n).await?;
        let seen = match tokio::time::timeout(Duration::from_secs(30), exists_rx.recv()).await {
            Ok(Some(t)) => t,
            _ => return Err(io::Error::other("no EXISTS within 30 s of a delivery")),
        };
        push.push(seen.saturating_duration_since(dot).as_secs_f64() * 1e3);
        after_250.push(seen.saturating_duration_since(ok).as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    join_all(tasks).await?;
    let per_client = match (before, idle) {
        (Some(b), Some(i)) => Some(i.saturating_sub(b) as f64 / a.clients.max(1) as f64),
        _ => None,
    };
    let (push, after_250) = (median(push), median(after_250));
    eprintln!(
        "imap-idle {}:{}: {} clients idling after {:.2} s; memory {:?} kB before, {:?} kB idling \
         ({per_client:?} kB per client); push: end of DATA to EXISTS {push:.1} ms, 250 to EXISTS {after_250:.1} ms (medians of {})",
        a.conn.host,
        a.conn.port,
        a.clients,
        all_idle.as_secs_f64(),
        before,
        idle,
        a.deliveries
    );
    Ok(serde_json::json!({
        "mode": "imap-idle",
        "clients": a.clients,
        "login_secs": all_idle.as_secs_f64(),
        "mem_before_kb": before,
        "mem_idle_kb": idle,
        "per_client_kb": per_client,
        "push_ms": push,
        "push_after_250_ms": after_250,
        "deliveries": a.deliveries,
    }))
}

// ---------------------------------------------------------------------------------------
// Soak (issue 8 §5): mixed traffic for a fixed time, for benches/soak.sh, which samples
// the daemon's RSS, open files and CPU time meanwhile. Every client runs until the
// deadline; every wait on the server is bounded by `OP_TIMEOUT`.

/// The longest any one reply may take before the soak counts an error.
const OP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args, Debug, Clone)]
struct SoakArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// MX (port 25 role) port.
    #[arg(long)]
    smtp_port: u16,
    /// Submission port (wrong-password AUTH).
    #[arg(long)]
    submission_port: u16,
    /// IMAP port.
    #[arg(long)]
    imap_port: u16,
    /// POP3 port.
    #[arg(long)]
    pop3_port: u16,
    /// How long to run.
    #[arg(long, default_value_t = 180)]
    seconds: u64,
    /// Account template (`{}` is 1..=users).
    #[arg(long, default_value = "soak{}@home.arpa")]
    user: String,
    /// Accounts.
    #[arg(long, default_value_t = 4)]
    users: u64,
    /// Their password.
    #[arg(long)]
    pass: String,
    /// SMTP clients delivering messages.
    #[arg(long, default_value_t = 2)]
    smtp_clients: u64,
    /// Pause of each SMTP client between messages, in ms.
    #[arg(long, default_value_t = 50)]
    smtp_pause_ms: u64,
    /// IMAP clients fetching, flagging and expunging.
    #[arg(long, default_value_t = 2)]
    imap_clients: u64,
    /// POP3 clients retrieving and deleting.
    #[arg(long, default_value_t = 2)]
    pop3_clients: u64,
    /// IMAP clients sitting in IDLE.
    #[arg(long, default_value_t = 4)]
    idle_clients: u64,
    /// Clients trying wrong passwords.
    #[arg(long, default_value_t = 1)]
    bad_login_clients: u64,
    /// Approximate message size.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Runtime worker threads (0: a current-thread runtime).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl SoakArgs {
    fn conn(&self) -> Conn {
        self.port_conn(self.smtp_port)
    }
    fn port_conn(&self, port: u16) -> Conn {
        Conn {
            host: self.host.clone(),
            port,
            tls: false,
            threads: self.threads,
        }
    }
}

/// What the soak did, summed over its clients.
#[derive(Default)]
struct SoakCounts {
    smtp_accepted: AtomicU64,
    smtp_refused: AtomicU64,
    imap_fetches: AtomicU64,
    imap_bodies: AtomicU64,
    imap_stores: AtomicU64,
    imap_expunged: AtomicU64,
    pop3_retr: AtomicU64,
    pop3_dele: AtomicU64,
    idle_pushes: AtomicU64,
    bad_logins_refused: AtomicU64,
    errors: AtomicU64,
}

impl SoakCounts {
    fn add(&self, c: &AtomicU64, n: u64) {
        let _ = self;
        c.fetch_add(n, Ordering::Relaxed);
    }
    fn error(&self, what: &str, e: &io::Error) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < 10 {
            eprintln!("loadgen soak: {what}: {e}");
        }
    }
}

/// Bounds one wait on the server.
async fn timed<T>(f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(OP_TIMEOUT, f)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer within 60 s"))?
}

impl Client {
    /// Reads an IMAP response up to the tagged line for `tag` (literals read whole);
    /// returns the untagged lines (literal bytes left out) and the tagged line.
    async fn imap_until(&mut self, tag: &str) -> io::Result<(Vec<String>, String)> {
        let mut untagged = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let line = self.read_line().await?.to_vec();
            let text = String::from_utf8_lossy(&line).into_owned();
            if text.starts_with(&prefix) {
                return Ok((untagged, text.trim_end().to_string()));
            }
            // A literal `{n}` at the end of a line: its n bytes follow.
            if let Some(n) = text
                .trim_end()
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut rest = vec![0u8; n];
                tokio::io::AsyncReadExt::read_exact(&mut self.io, &mut rest).await?;
            }
            untagged.push(text);
        }
    }
}

/// One IMAP command of the soak, bounded by `OP_TIMEOUT`; its untagged lines.
async fn soak_cmd(c: &mut Client, tag: &str, cmd: &str) -> io::Result<Vec<String>> {
    timed(c.imap_cmd(tag, cmd, true)).await.map(|r| r.lines)
}

async fn soak_smtp(a: Arc<SoakArgs>, k: Arc<SoakCounts>, i: u64, until: Instant) {
    let conn = a.port_conn(a.smtp_port);
    let mut n = i * 1_000_000;
    while Instant::now() < until {
        // A new connection every 50 messages: connection churn is part of the soak.
        let r: io::Result<()> = async {
            let mut c = timed(connect(&conn)).await?;
            timed(c.smtp_reply()).await?;
            c.send(b"EHLO soak.sender.test\r\n").await?;
            timed(c.smtp_reply()).await?;
            for _ in 0..50 {
                if Instant::now() >= until {
                    break;
                }
                n += 1;
                let to = expand(&a.user, n % a.users + 1);
                let from = "soak@sender.test";
                c.send(format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n").as_bytes())
                    .await?;
                let codes = [
                    timed(c.smtp_reply()).await?.0,
                    timed(c.smtp_reply()).await?.0,
                    timed(c.smtp_reply()).await?.0,
                ];
                if codes != [250, 250, 354] {
                    k.add(&k.smtp_refused, 1);
                    if codes[2] == 354 {
                        c.send(b".\r\n").await?;
                        timed(c.smtp_reply()).await?;
                    }
                    continue;
                }
                let mut body = message(n, a.size, from, &to);
                body.extend_from_slice(b".\r\n");
                c.send(&body).await?;
                let (code, _) = timed(c.smtp_reply()).await?;
                if code == 250 {
                    k.add(&k.smtp_accepted, 1);
                } else {
                    k.add(&k.smtp_refused, 1);
                }
                tokio::time::sleep(Duration::from_millis(a.smtp_pause_ms)).await;
            }
            c.send(b"QUIT\r\n").await?;
            let _ = timed(c.smtp_reply()).await;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            k.error("smtp", &e);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn soak_imap(a: Arc<SoakArgs>, k: Arc<SoakCounts>, i: u64, until: Instant) {
    let conn = a.port_conn(a.imap_port);
    let user = expand(&a.user, i % a.users + 1);
    while Instant::now() < until {
        let r: io::Result<()> = async {
            let mut c = timed(imap_login(&conn, &user, &a.pass)).await?;
            let u = soak_cmd(&mut c, "s", "SELECT INBOX").await?;
            let mut count = exists(&u).unwrap_or(0);
            // A session lasts 20 rounds, then logs out and in again.
            for round in 0..20u64 {
                if Instant::now() >= until {
                    break;
                }
                let u = soak_cmd(&mut c, "n", "NOOP").await?;
                count = exists(&u).unwrap_or(count);
                if count > 0 {
                    let u = soak_cmd(&mut c, "f", "FETCH 1:* (UID FLAGS RFC822.SIZE)").await?;
                    k.add(&k.imap_fetches, 1);
                    count = u.iter().filter(|l| l.contains(" FETCH ")).count() as u64;
                }
                if count > 0 {
                    let first = count.saturating_sub(4).max(1);
                    soak_cmd(
                        &mut c,
                        "b",
                        &format!("FETCH {first}:* (ENVELOPE BODYSTRUCTURE BODY.PEEK[])"),
                    )
                    .await?;
                    k.add(&k.imap_bodies, count - first + 1);
                    soak_cmd(
                        &mut c,
                        "t",
                        &format!("STORE {first}:* +FLAGS.SILENT (\\Seen)"),
                    )
                    .await?;
                    k.add(&k.imap_stores, 1);
                }
                // Every other round the oldest half (up to 40) is deleted and expunged, so
                // the mailboxes stay small instead of growing through the run.
                if round % 2 == 1 && count > 0 {
                    let last = (count / 2).clamp(1, 40);
                    soak_cmd(
                        &mut c,
                        "d",
                        &format!("STORE 1:{last} +FLAGS.SILENT (\\Deleted)"),
                    )
                    .await?;
                    let u = soak_cmd(&mut c, "e", "EXPUNGE").await?;
                    let gone = u.iter().filter(|l| l.ends_with(" EXPUNGE")).count() as u64;
                    k.add(&k.imap_expunged, gone);
                    count = count.saturating_sub(gone);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            soak_cmd(&mut c, "o", "LOGOUT").await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            k.error("imap", &e);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn soak_pop3(a: Arc<SoakArgs>, k: Arc<SoakCounts>, i: u64, until: Instant) {
    let conn = a.port_conn(a.pop3_port);
    let user = expand(&a.user, (a.imap_clients + i) % a.users + 1);
    while Instant::now() < until {
        let r: io::Result<()> = async {
            let mut c = timed(pop3_login(&conn, &user, &a.pass)).await?;
            c.send(b"STAT\r\n").await?;
            let stat = timed(c.pop3_ok("STAT")).await?;
            let count: u64 = stat
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            // Retrieve and delete up to 10 (a phone's "delete from server after
            // download"), more than the ingest adds per session, so the maildrop stays small.
            for m in 1..=count.min(10) {
                c.send(format!("RETR {m}\r\n").as_bytes()).await?;
                // A message expunged over IMAP meanwhile answers -ERR: not an error.
                if timed(c.read_line()).await?.starts_with(b"+OK") {
                    while timed(c.read_line()).await? != b".\r\n" {}
                    k.add(&k.pop3_retr, 1);
                }
            }
            for m in 1..=count.min(10) {
                c.send(format!("DELE {m}\r\n").as_bytes()).await?;
                if timed(c.read_line()).await?.starts_with(b"+OK") {
                    k.add(&k.pop3_dele, 1);
                }
            }
            timed(pop3_quit(c)).await
        }
        .await;
        if let Err(e) = r {
            k.error("pop3", &e);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn soak_idle(a: Arc<SoakArgs>, k: Arc<SoakCounts>, i: u64, until: Instant) {
    let conn = a.port_conn(a.imap_port);
    let user = expand(&a.user, i % a.users + 1);
    while Instant::now() < until {
        let r: io::Result<()> = async {
            let mut c = timed(imap_login(&conn, &user, &a.pass)).await?;
            soak_cmd(&mut c, "s", "SELECT INBOX").await?;
            // IDLE for up to 60 s at a time (clients re-issue it well within 29 min,
            // RFC 2177), counting the pushes.
            while Instant::now() < until {
                c.send(b"i IDLE\r\n").await?;
                // Updates pending since the last command may come before the `+`.
                loop {
                    let l = timed(c.read_line()).await?.to_vec();
                    if l.starts_with(b"+") {
                        break;
                    }
                    if l.ends_with(b"EXISTS\r\n") {
                        k.add(&k.idle_pushes, 1);
                    } else if !l.starts_with(b"* ") {
                        let l = String::from_utf8_lossy(&l).trim_end().to_string();
                        return Err(io::Error::other(format!("IDLE refused: {l}")));
                    }
                }
                let stop = (Instant::now() + Duration::from_secs(60)).min(until);
                loop {
                    let left = stop.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, c.read_line()).await {
                        Err(_) => break,
                        Ok(line) => {
                            if line?.ends_with(b"EXISTS\r\n") {
                                k.add(&k.idle_pushes, 1);
                            }
                        }
                    }
                }
                c.send(b"DONE\r\n").await?;
                timed(c.imap_until("i")).await?;
            }
            soak_cmd(&mut c, "o", "LOGOUT").await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            k.error("idle", &e);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Wrong passwords over IMAP, POP3 and SMTP AUTH in turn, each answered only after the
/// daemon's failed-login delay (which grows to 16 s: the loop slows down with it).
async fn soak_bad_logins(a: Arc<SoakArgs>, k: Arc<SoakCounts>, i: u64, until: Instant) {
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let user = format!("nobody{i}x{n}@home.arpa");
        let r: io::Result<bool> = async {
            match n % 3 {
                0 => {
                    let mut c = timed(connect(&a.port_conn(a.imap_port))).await?;
                    timed(c.read_line()).await?;
                    c.send(format!("l LOGIN {user} wrong-password\r\n").as_bytes())
                        .await?;
                    let (_, t) = timed(c.imap_until("l")).await?;
                    Ok(t.starts_with("l NO"))
                }
                1 => {
                    let mut c = timed(connect(&a.port_conn(a.pop3_port))).await?;
                    timed(c.pop3_ok("greeting")).await?;
                    c.send(format!("USER {user}\r\nPASS wrong-password\r\n").as_bytes())
                        .await?;
                    timed(c.pop3_ok("USER")).await?;
                    Ok(timed(c.read_line()).await?.starts_with(b"-ERR"))
                }
                _ => {
                    let mut c = timed(connect(&a.port_conn(a.submission_port))).await?;
                    timed(c.smtp_reply()).await?;
                    c.send(b"EHLO soak.test\r\n").await?;
                    timed(c.smtp_reply()).await?;
                    use base64::Engine;
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("\0{user}\0wrong-password"));
                    c.send(format!("AUTH PLAIN {token}\r\n").as_bytes()).await?;
                    Ok(timed(c.smtp_reply()).await?.0 == 535)
                }
            }
        }
        .await;
        match r {
            Ok(true) => k.add(&k.bad_logins_refused, 1),
            Ok(false) => k.error(
                "bad login",
                &io::Error::other("a wrong password was not refused"),
            ),
            Err(e) => k.error("bad login", &e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn soak(a: SoakArgs) -> io::Result<serde_json::Value> {
    let a = Arc::new(a);
    let k = Arc::new(SoakCounts::default());
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    macro_rules! spawn_n {
        ($n:expr, $f:ident) => {
            for i in 0..$n {
                let (a, k) = (a.clone(), k.clone());
                tasks.push(tokio::spawn(async move { $f(a, k, i, until).await }));
            }
        };
    }
    spawn_n!(a.idle_clients, soak_idle);
    spawn_n!(a.smtp_clients, soak_smtp);
    spawn_n!(a.imap_clients, soak_imap);
    spawn_n!(a.pop3_clients, soak_pop3);
    spawn_n!(a.bad_login_clients, soak_bad_logins);
    for t in tasks {
        t.await.map_err(io::Error::other)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let v = serde_json::json!({
        "mode": "soak",
        "secs": secs,
        "smtp_accepted": g(&k.smtp_accepted),
        "smtp_refused": g(&k.smtp_refused),
        "imap_fetches": g(&k.imap_fetches),
        "imap_bodies": g(&k.imap_bodies),
        "imap_stores": g(&k.imap_stores),
        "imap_expunged": g(&k.imap_expunged),
        "pop3_retr": g(&k.pop3_retr),
        "pop3_dele": g(&k.pop3_dele),
        "idle_pushes": g(&k.idle_pushes),
        "bad_logins_refused": g(&k.bad_logins_refused),
        "errors": g(&k.errors),
    });
    eprintln!("soak: {v}");
    Ok(v)
}
