//! End-to-end harness: starts the real `letterbox` binary with `serve --config <temp file>`
//! on free loopback ports and a temporary `data_dir`, waits for "letterbox ready", runs CLI
//! commands against it, and runs Python client scripts (poplib, smtplib, imaplib) with the
//! ports in the environment. Every wait is bounded; the daemon is killed on drop.
//!
//! The MX listener verifies senders through DNS (SPF, DKIM, DMARC). So that no test depends
//! on the machine's network, a daemon whose config has no `[dns]` table of its own gets
//! `[dns] nameservers` pointing at [`NxDomain`], a loopback stub that answers every query
//! "no such name" (so every domain has no records and mail is delivered with `none`
//! results). tests/verify.rs uses a real DNS server (dnsmasq) instead.

#![allow(dead_code)]

pub mod dnsmasq;
pub mod dovecot;
pub mod tmux;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Panics naming the Debian package unless `program` runs.
pub fn require(program: &str, arg: &str, package: &str) {
    let ok = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{program} is not installed (apt-get install {package})");
}

/// How long the daemon may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one CLI command or client script may run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The services of `[listen]`, in the order of [`Ports`].
pub const SERVICES: [&str; 7] = [
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
];

/// The web services of `[listen]` (issue 16), in the order of `Server::web_ports`: kept
/// apart from [`SERVICES`], which the mail-protocol tests iterate.
pub const WEB_SERVICES: [&str; 2] = ["http", "https"];

/// Python prelude for client scripts: imports, the ports, an unverified TLS context
/// (the daemon's certificate is self-signed), and `check`.
const PY_PRELUDE: &str = r#"
import os, sys, ssl, socket, base64, time, poplib, smtplib
H = "127.0.0.1"
PORT = {s: int(os.environ["LB_PORT_" + s.upper()]) for s in
        ["smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s"]}
CTX = ssl._create_unverified_context()
TIMEOUT = 20
def check(cond, *msg):
    if not cond:
        raise SystemExit("check failed: " + " ".join(str(m) for m in msg))
def expect_error(code_prefix, fn, *args, **kw):
    try:
        r = fn(*args, **kw)
    except (poplib.error_proto, smtplib.SMTPException) as e:
        text = str(e)
        check(code_prefix in text, "expected", code_prefix, "got", text)
        return text
    raise SystemExit("check failed: expected an error %r, got %r" % (code_prefix, r))
"#;

/// Tries `start` up to five times (a port found free can be taken before the process binds
/// it); panics with the last error, naming `what`.
pub fn retry_start<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    for _ in 0..5 {
        match start() {
            Ok(t) => return t,
            Err(e) => last = e,
        }
    }
    panic!("{what} did not start: {last}");
}

/// A running daemon.
pub struct Server {
    child: Child,
    /// Holds `data_dir` and the config file.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// Ports of [`SERVICES`], same order.
    pub ports: [u16; 7],
    /// Ports of [`WEB_SERVICES`], same order.
    pub web_ports: [u16; 2],
    /// The daemon's `data_dir` (`dir/data` unless given).
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    /// The DNS stub of a daemon without its own `[dns]`.
    _dns: Option<NxDomain>,
}

impl Server {
    /// A daemon with the default settings (plus free ports and a temp data_dir).
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// A daemon whose config also holds `extra` (whole TOML tables other than `[server]`
    /// and `[listen]`, e.g. `[auth]` or `[limits]`).
    pub fn start_with(extra: &str) -> Server {
        retry_start("letterbox", || Server::try_start(extra))
    }

    fn try_start(extra: &str) -> Result<Server, String> {
        Server::try_start_on(extra, free_ports())
    }

    /// Starts a daemon on the given ports (in the order of [`SERVICES`]).
    pub fn try_start_on(extra: &str, ports: [u16; 7]) -> Result<Server, String> {
        Server::try_start_env(extra, ports, &[])
    }

    /// A daemon as [`Server::start_with`], with extra environment variables.
    pub fn start_env(extra: &str, env: &[(&str, &str)]) -> Server {
        retry_start("letterbox", || {
            Server::try_start_env(extra, free_ports(), env)
        })
    }

    /// A daemon as [`Server::start_with`] whose `data_dir` is `data_dir` (e.g. on a file
    /// system of the test's own).
    pub fn start_with_data_dir(extra: &str, data_dir: &std::path::Path) -> Server {
        retry_start("letterbox", || {
            Server::try_start_in(extra, free_ports(), &[], Some(data_dir), None)
        })
    }

    /// A daemon as [`Server::start_with`] whose HTTP and HTTPS listeners are on the given
    /// ports (for a peer that must know them first, such as an ACME server's validator).
    pub fn start_with_web_ports(extra: &str, web_ports: [u16; 2]) -> Server {
        retry_start("letterbox", || {
            Server::try_start_in(extra, free_ports(), &[], None, Some(web_ports))
        })
    }

    fn try_start_env(extra: &str, ports: [u16; 7], env: &[(&str, &str)]) -> Result<Server, String> {
        Server::try_start_in(extra, ports, env, None, None)
    }

    fn try_start_in(
        extra: &str,
        ports: [u16; 7],
        env: &[(&str, &str)],
        data_dir: Option<&std::path::Path>,
        web_ports: Option<[u16; 2]>,
    ) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data_dir = data_dir.map_or_else(|| dir.path().join("data"), |d| d.to_path_buf());
        let mut listen = String::new();
        for (s, p) in SERVICES.iter().zip(ports) {
            listen.push_str(&format!("{s} = \"127.0.0.1:{p}\"\n"));
        }
        let web_ports = web_ports.unwrap_or_else(|| web_ports_besides(&ports));
        for (s, p) in WEB_SERVICES.iter().zip(web_ports) {
            listen.push_str(&format!("{s} = \"127.0.0.1:{p}\"\n"));
        }
        let config = dir.path().join("letterbox.toml");
        let (dns, dns_table) = if extra.contains("[dns]") {
            (None, String::new())
        } else {
            let stub = NxDomain::start()?;
            let table = format!("[dns]\nnameservers = [\"{}\"]\n", stub.addr);
            (Some(stub), table)
        };
        let text = format!(
            "[server]\ndata_dir = \"{}\"\n\n[listen]\n{listen}\n{extra}\n{dns_table}",
            data_dir.display()
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, ready_rx) = spawn_daemon(&config, &stderr, &env)?;
        let mut server = Server {
            child,
            dir,
            config,
            ports,
            web_ports,
            data_dir,
            stderr,
            env,
            _dns: dns,
        };
        server.wait_ready(&ready_rx)?;
        Ok(server)
    }

    fn wait_ready(&mut self, ready_rx: &std::sync::mpsc::Receiver<()>) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {READY_TIMEOUT:?}: {}", self.log()));
            }
        }
    }

    /// Starts the daemon again on the same config and data (after it exited or was
    /// killed); panics unless it becomes ready.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("letterbox did not restart: {e}");
        }
    }

    /// [`Server::restart`], returning why it did not come up.
    pub fn try_restart(&mut self) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, ready_rx) = spawn_daemon(&self.config, &self.stderr, &self.env)?;
        self.child = child;
        self.wait_ready(&ready_rx)
    }

    /// Moves the (stopped) daemon to seven other free ports, rewriting its `[listen]`
    /// lines: for restarts on a busy machine, where a port freed by a kill can be taken by
    /// another process before the daemon binds it again.
    pub fn move_ports(&mut self) {
        let ports = free_ports();
        let more = web_ports_besides(&ports);
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let mut out = String::new();
        for line in text.lines() {
            let service = line.split(" = ").next().unwrap_or_default();
            let web = WEB_SERVICES.iter().position(|s| *s == service);
            match SERVICES.iter().position(|s| *s == service) {
                Some(i) if line.contains("\"127.0.0.1:") => {
                    out.push_str(&format!("{service} = \"127.0.0.1:{}\"", ports[i]));
                }
                None if web.is_some() && line.contains("\"127.0.0.1:") => {
                    let i = web.unwrap_or(0);
                    out.push_str(&format!("{service} = \"127.0.0.1:{}\"", more[i]));
                    self.web_ports[i] = more[i];
                }
                _ => out.push_str(line),
            }
            out.push('\n');
        }
        std::fs::write(&self.config, out).expect("write config");
        self.ports = ports;
    }

    /// A daemon with `extra` config and extra environment variables for its process.
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        Server::start_env(extra, env)
    }

    /// `kill -9` the daemon, then start it again on the same config and data.
    pub fn kill9_and_restart(&mut self) {
        self.kill9();
        self.restart();
    }

    /// Starts the daemon again without waiting for it to be ready (to kill it during
    /// start-up and crash recovery).
    pub fn respawn_unready(&mut self) {
        self.kill9();
        let (child, _ready) =
            spawn_daemon(&self.config, &self.stderr, &self.env).expect("respawn letterbox");
        self.child = child;
    }

    /// SIGKILL, as a power cut or a hang would end it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the daemon to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "letterbox did not exit within {timeout:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `letterbox status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"], "");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
    }

    /// The daemon's process id (to read its memory in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The port of a service (`"pop3"`, ...).
    pub fn port(&self, service: &str) -> u16 {
        if let Some(i) = WEB_SERVICES.iter().position(|s| *s == service) {
            return self.web_ports[i];
        }
        let i = SERVICES
            .iter()
            .position(|s| *s == service)
            .unwrap_or_else(|| panic!("no service {service}"));
        self.ports[i]
    }

    /// Runs `letterbox <args> --config <ours>`, with `stdin`; panics unless it succeeds.
    pub fn cli(&self, args: &[&str], stdin: &str) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_letterbox"));
        cmd.args(args).arg("--config").arg(&self.config);
        let out = run_bounded(cmd, stdin.as_bytes(), RUN_TIMEOUT);
        assert!(
            out.status.success(),
            "letterbox {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates an account through the running daemon.
    pub fn add_user(&self, address: &str, password: &str) {
        self.cli(
            &["user", "add", address, "--password-stdin"],
            &format!("{password}\n"),
        );
    }

    /// Runs a Python client script (after [`PY_PRELUDE`]); returns its stdout, panicking
    /// with its output and the daemon's log unless it exits 0.
    pub fn python(&self, script: &str) -> String {
        let out = self.python_output(script);
        assert!(
            out.status.success(),
            "python failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n--- daemon log\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a Python client script and returns its whole output, whatever its status.
    pub fn python_output(&self, script: &str) -> Output {
        let file = self.dir.path().join(format!(
            "client-{}.py",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::write(&file, format!("{PY_PRELUDE}\n{script}")).expect("write script");
        let mut cmd = Command::new("python3");
        cmd.arg(&file);
        for (s, p) in SERVICES.iter().zip(self.ports) {
            cmd.env(format!("LB_PORT_{}", s.to_uppercase()), p.to_string());
        }
        for (s, p) in WEB_SERVICES.iter().zip(self.web_ports) {
            cmd.env(format!("LB_PORT_{}", s.to_uppercase()), p.to_string());
        }
        run_bounded(cmd, b"", RUN_TIMEOUT)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "letterbox did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `letterbox serve --config <config>`, appending its stderr to `log`; the receiver gets
/// a message when it logs "letterbox ready".
fn spawn_daemon(
    config: &std::path::Path,
    log: &Arc<Mutex<String>>,
    env: &[(String, String)],
) -> Result<(Child, std::sync::mpsc::Receiver<()>), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_letterbox"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    if let Some(pipe) = child.stderr.take() {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains("letterbox ready") {
                    let _ = ready_tx.send(());
                }
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
    }
    Ok((child, ready_rx))
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two free ports for [`WEB_SERVICES`], distinct from `taken` (bounded retries).
pub fn web_ports_besides(taken: &[u16]) -> [u16; 2] {
    for _ in 0..20 {
        let p = free_ports();
        let fresh: Vec<u16> = p.into_iter().filter(|x| !taken.contains(x)).collect();
        if fresh.len() >= 2 {
            return [fresh[0], fresh[1]];
        }
    }
    panic!("no two free ports for http/https")
}

/// Seven distinct ports that were free a moment ago.
pub fn free_ports() -> [u16; 7] {
    let listeners: Vec<std::net::TcpListener> = (0..7)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    let mut ports = [0u16; 7];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr().expect("local addr").port();
    }
    ports
}

/// Runs a command to completion within `timeout` (killed after it), feeding `stdin`.
pub fn run_bounded(mut cmd: Command, stdin: &[u8], timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait");
            let mut stderr = err.join().unwrap_or_default();
            stderr.extend_from_slice(format!("\n(killed after {timeout:?})").as_bytes());
            return Output {
                status,
                stdout: out.join().unwrap_or_default(),
                stderr,
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A Python snippet that delivers `raw` (a Python bytes literal expression) from
/// `sender` to the recipients over the MX listener (port 25 role).
pub fn py_deliver(sender: &str, rcpts: &[&str], raw: &str) -> String {
    let rcpts: Vec<String> = rcpts.iter().map(|r| format!("{r:?}")).collect();
    format!(
        "with smtplib.SMTP(H, PORT['smtp'], timeout=TIMEOUT) as _s:\n    \
         _refused = _s.sendmail({sender:?}, [{}], {raw})\n    \
         check(_refused == {{}}, 'refused', _refused)\n",
        rcpts.join(", ")
    )
}

/// A DNS server on loopback (UDP) that answers every query NXDOMAIN (RFC 1035 §4.1.1
/// RCODE 3), so the daemon's lookups end at once and find nothing. Stops on drop.
pub struct NxDomain {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NxDomain {
    /// Binds a free loopback port and answers in a thread.
    pub fn start() -> Result<NxDomain, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let addr = socket.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = nxdomain_reply(&buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Ok(NxDomain {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for NxDomain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The NXDOMAIN answer to a query: its id and question, QR, RA and RCODE 3, no records.
fn nxdomain_reply(query: &[u8]) -> Option<Vec<u8>> {
    // Header (12 octets), then QNAME as labels ending in a zero octet, QTYPE, QCLASS.
    let mut end = 12;
    loop {
        let len = *query.get(end)? as usize;
        end += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        end += len;
    }
    end += 4;
    let question = query.get(12..end)?;
    let mut reply = Vec::with_capacity(end);
    reply.extend_from_slice(query.get(..2)?);
    let rd = query.get(2)? & 0x01;
    reply.push(0x80 | 0x04 | rd); // QR, AA, RD copied
    reply.push(0x80 | 0x03); // RA, NXDOMAIN
    reply.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    Some(reply)
}

/// The seed of a randomised crash test: `CRASH_SEED` from the environment (to replay a
/// failure), else one from the clock and the process id. Tests print the seed they use.
pub fn crash_seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        })
}
