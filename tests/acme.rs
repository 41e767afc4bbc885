//! ACME (RFC 8555) end to end: Debian's `pebble` on loopback, with certificates of the
//! test's own for its HTTPS listener, and the real daemon with `[acme]` pointed at it.
//! Pebble's validator really fetches the http-01 answer: it resolves the box's host name
//! through a dnsmasq on loopback (`-dnsserver`) to 127.0.0.1 and asks the daemon's HTTP
//! listener (its `httpPort`) for `/.well-known/acme-challenge/{token}`, which the daemon
//! answers from `tls::acme::Challenges`. The test then covers finalization with a new key,
//! storing the chain, and swapping it into every TLS listener: the certificate IMAPS serves
//! chains to pebble's own root, fetched from its management port.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::dnsmasq::Dnsmasq;
use common::{Server, require, run_bounded, wait_until};

/// Pebble on free loopback ports; killed on drop.
struct Pebble {
    child: Child,
    dir: PathBuf,
    port: u16,
    mgmt: u16,
    /// The CA that signed pebble's own HTTPS certificate (trust for the directory).
    tls_ca: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Pebble {
    /// Pebble whose validator resolves names through `dns` and fetches http-01 answers
    /// from `http_port`.
    fn start(dir: &Path, dns: &Dnsmasq, http_port: u16) -> Pebble {
        require("pebble", "-h", "pebble");
        // Pebble's listener needs a CA plus a leaf (webpki refuses a self-signed leaf).
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble listener test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let tls_ca = dir.join("pebble-ca.pem");
        std::fs::write(&tls_ca, ca.pem()).unwrap();
        std::fs::write(dir.join("pebble-cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), leaf_key.serialize_pem()).unwrap();
        let (port, mgmt) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        let cfg = dir.join("pebble.json");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&cfg)
            .arg("-dnsserver")
            .arg(dns.addr())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        let p = Pebble {
            child,
            dir: dir.to_path_buf(),
            port,
            mgmt,
            tls_ca,
        };
        wait_until("pebble listening", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && TcpStream::connect(("127.0.0.1", mgmt)).is_ok()
        });
        p
    }

    /// Pebble's issuing root (PEM), from its management port.
    fn root(&self) -> PathBuf {
        let mut cmd = Command::new("curl");
        cmd.args(["-sSf", "--max-time", "20", "--cacert"])
            .arg(&self.tls_ca)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.mgmt));
        let o = run_bounded(cmd, b"", Duration::from_secs(30));
        assert!(
            o.status.success(),
            "pebble roots: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let path = self.dir.join("pebble-root.pem");
        std::fs::write(&path, &o.stdout).unwrap();
        path
    }
}

#[test]
fn http01_order_against_pebble_swaps_the_certificate_in() {
    require("curl", "--version", "curl");
    let dir = tempfile::tempdir().unwrap();
    let dns = Dnsmasq::start(&[
        "--local=/home.arpa/".to_string(),
        "--host-record=letterbox.home.arpa,127.0.0.1".to_string(),
    ]);
    let web_ports = [free_port(), free_port()];
    let pebble = Pebble::start(dir.path(), &dns, web_ports[0]);
    let s = Server::start_with_web_ports(
        &format!(
            "[acme]\ndirectory = \"https://127.0.0.1:{}/dir\"\nemail = \"postmaster@home.arpa\"\n\
         challenge = \"http-01\"\ndirectory_ca = \"{}\"\n",
            pebble.port,
            pebble.tls_ca.display()
        ),
        web_ports,
    );
    let acme = s.data_dir.join("tls/acme");
    wait_until("the ACME certificate", Duration::from_secs(90), || {
        acme.join("cert.pem").exists() && s.log().contains("obtained an ACME certificate")
    });
    // Pebble's validator asked the box's own name, which only our dnsmasq answers.
    assert!(
        dns.log().contains("letterbox.home.arpa"),
        "pebble did not resolve the host name: {}",
        dns.log()
    );
    let account = std::fs::metadata(acme.join("account.json")).expect("the account is kept");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        account.permissions().mode() & 0o077,
        0,
        "the account key is private"
    );
    let key = std::fs::metadata(acme.join("key.pem")).unwrap();
    assert_eq!(key.permissions().mode() & 0o077, 0);

    // IMAPS now serves pebble's chain: verified against pebble's root alone, by host name.
    let root = pebble.root();
    let out = s.python(&format!(
        r#"
import hashlib
c = ssl.create_default_context(cafile={root:?})
t = c.wrap_socket(socket.create_connection((H, PORT["imaps"]), timeout=TIMEOUT), server_hostname="letterbox.home.arpa")
check(t.recv(100).startswith(b"* OK"))
print(hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest())
# The household CA no longer vouches for what is served.
h = ssl.create_default_context(cafile={hca:?})
try:
    h.wrap_socket(socket.create_connection((H, PORT["submissions"]), timeout=TIMEOUT), server_hostname="letterbox.home.arpa")
    raise SystemExit("the household certificate is still served")
except ssl.SSLCertVerificationError:
    pass
"#,
        root = root.display().to_string(),
        hca = s.data_dir.join("tls/ca.pem").display().to_string()
    ));
    let st = s.status_json();
    assert_eq!(
        st["daemon"]["tls"]["sha256"]
            .as_str()
            .unwrap_or("")
            .replace(':', "")
            .to_lowercase(),
        out.trim(),
        "{st}"
    );
    assert_eq!(st["daemon"]["tls"]["renewal_failures"], 0, "{st}");
}
