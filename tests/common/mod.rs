//! End-to-end harness: starts the real `letterbox` binary with `serve --config <temp file>`
//! on free loopback ports and a temporary `data_dir`, waits for "letterbox ready", runs CLI
//! commands against it, and runs Python client scripts (poplib, smtplib, imaplib) with the
//! ports in the environment. Every wait is bounded; the daemon is killed on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A running daemon.
pub struct Server {
    child: Child,
    /// Holds `data_dir` and the config file.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// Ports of [`SERVICES`], same order.
    pub ports: [u16; 7],
    stderr: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
}

type Spawned = (Child, Arc<Mutex<String>>, std::sync::mpsc::Receiver<()>);

/// Starts `letterbox serve --config <config>`, collecting stderr; the receiver gets a
/// message once "letterbox ready" is logged.
fn spawn_daemon(config: &std::path::Path, env: &[(String, String)]) -> Result<Spawned, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_letterbox"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stderr = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    if let Some(pipe) = child.stderr.take() {
        let log = stderr.clone();
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
    Ok((child, stderr, ready_rx))
}

impl Server {
    /// A daemon with the default settings (plus free ports and a temp data_dir).
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// A daemon whose config also holds `extra` (whole TOML tables other than `[server]`
    /// and `[listen]`, e.g. `[auth]` or `[limits]`).
    pub fn start_with(extra: &str) -> Server {
        let mut last = String::new();
        // A port found free can be taken before the daemon binds it: try again then.
        for _ in 0..5 {
            match Server::try_start(extra) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("letterbox did not start: {last}");
    }

    fn try_start(extra: &str) -> Result<Server, String> {
        Server::try_start_on(extra, free_ports())
    }

    /// Starts a daemon on the given ports (in the order of [`SERVICES`]).
    pub fn try_start_on(extra: &str, ports: [u16; 7]) -> Result<Server, String> {
        Server::try_start_env(extra, ports, &[])
    }

    /// A daemon with `extra` config and extra environment variables for its process.
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        let mut last = String::new();
        for _ in 0..5 {
            match Server::try_start_env(extra, free_ports(), env) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("letterbox did not start: {last}");
    }

    fn try_start_env(extra: &str, ports: [u16; 7], env: &[(&str, &str)]) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut listen = String::new();
        for (s, p) in SERVICES.iter().zip(ports) {
            listen.push_str(&format!("{s} = \"127.0.0.1:{p}\"\n"));
        }
        let config = dir.path().join("letterbox.toml");
        let text = format!(
            "[server]\ndata_dir = \"{}\"\n\n[listen]\n{listen}\n{extra}\n",
            dir.path().join("data").display()
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, stderr, ready_rx) = spawn_daemon(&config, &env)?;
        let mut server = Server {
            child,
            dir,
            config,
            ports,
            stderr,
            env,
        };
        server.wait_ready(ready_rx)?;
        Ok(server)
    }

    fn wait_ready(&mut self, ready_rx: std::sync::mpsc::Receiver<()>) -> Result<(), String> {
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

    /// SIGKILL, then start the daemon again on the same data and ports.
    pub fn kill9_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, stderr, ready_rx) =
            spawn_daemon(&self.config, &self.env).expect("restart letterbox");
        self.child = child;
        self.stderr = stderr;
        if let Err(e) = self.wait_ready(ready_rx) {
            panic!("letterbox did not restart: {e}");
        }
    }

    /// What the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The port of a service (`"pop3"`, ...).
    pub fn port(&self, service: &str) -> u16 {
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
