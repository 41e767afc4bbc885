//! A real DNS server for the end-to-end tests: Debian's dnsmasq (`dnsmasq-base`) on a
//! loopback port, serving the records a test gives it as dnsmasq options
//! (`--txt-record=`, `--mx-host=`, `--host-record=`, ...). It is authoritative ("local")
//! for `.test` (RFC 6761), so every other name there is NXDOMAIN rather than unanswered;
//! more zones can be added with `--local=/zone/`. Queries are logged (`log`). Killed on
//! drop; every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running dnsmasq.
pub struct Dnsmasq {
    child: Option<Child>,
    /// Its UDP and TCP port on 127.0.0.1.
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Dnsmasq {
    /// Starts it on a free port with `options`, retrying on another port if that one was
    /// taken meanwhile.
    pub fn start(options: &[String]) -> Dnsmasq {
        super::retry_start("dnsmasq", || Dnsmasq::start_on(free_port(), options))
    }

    /// Starts it on `port` (for a test that must write the port into the daemon's config
    /// before it knows the records) and waits, bounded, until it answers.
    pub fn start_on(port: u16, options: &[String]) -> Result<Dnsmasq, String> {
        let exe = ["/usr/sbin/dnsmasq", "/sbin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or("dnsmasq");
        let mut child = Command::new(exe)
            .args([
                "--no-resolv",
                "--no-hosts",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--local=/test/",
                "--log-facility=-",
                "--log-queries",
            ])
            .arg(format!("--port={port}"))
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{exe} (apt-get install dnsmasq-base): {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut l) = log.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let mut dns = Dnsmasq {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if dns.exited() {
                break;
            }
            if txt_rcode(port, "ready.test").is_some() {
                return Ok(dns);
            }
        }
        Err(format!(
            "dnsmasq did not answer on port {port}: {}",
            dns.log()
        ))
    }

    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// `127.0.0.1:port`, for `[dns] nameservers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What it logged so far (one line per query).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Kills it and checks that the port no longer answers.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert_eq!(txt_rcode(self.port, "ready.test"), None, "still answering");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The dnsmasq option for a TXT record: a TXT record is a list of strings of at most 255
/// octets (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2 for long DKIM keys), which dnsmasq
/// separates with commas.
pub fn txt_record(name: &str, text: &str) -> String {
    let chunks: Vec<String> = text
        .as_bytes()
        .chunks(200)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("--txt-record={name},{}", chunks.join(","))
}

/// A port free for both UDP and TCP on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let t = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = t.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

/// Asks 127.0.0.1:`port` for the TXT records of `name`: the RCODE of the answer, or
/// `None` if none came within 200 ms.
pub fn txt_rcode(port: u16, name: &str) -> Option<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut q = vec![0x4c, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 1]);
    s.send_to(&q, ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    (n >= 12 && buf[..2] == [0x4c, 0x42]).then(|| buf[3] & 0x0f)
}
