//! The household CA's files under `data_dir/tls/`, and the check that makes, migrates and
//! renews them: `ca.pem` / `ca-key.pem` (made once, kept forever) and the server certificate
//! `cert.pem` / `key.pem` it signs. Keys are written 0600; every file is written to a
//! temporary name, fsynced and renamed, then the directory is fsynced, so a power cut leaves
//! the old file or the new one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::TlsError;
use super::ca::{self, Ca, Issued, Names};

/// What the household certificate is made from.
#[derive(Debug, Clone)]
pub struct Household {
    /// `data_dir/tls`.
    pub dir: PathBuf,
    /// `[server] hostname`.
    pub hostname: String,
    /// `[server] domains` (the first is the primary domain).
    pub domains: Vec<String>,
    /// The server certificate's lifetime, seconds (at most [`ca::MAX_LIFETIME_S`]).
    pub lifetime: i64,
    /// Name `127.0.0.1` and `::1` too (the listeners are on loopback: a host run).
    pub loopback: bool,
}

/// Writes `data` to `path` with `mode`, durably (temporary file, fsync, rename, fsync dir).
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn first_der(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?
        .next()
        .ok_or_else(|| TlsError(format!("{}: no certificate found", path.display())))?
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))
}

impl Household {
    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }
    /// The server certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    /// The server key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The names the server certificate should carry now, given the box's `addresses`.
    pub fn wanted(&self, addresses: &[IpAddr]) -> Names {
        let ips = super::ifaddr::certificate_addresses(addresses, self.loopback);
        let mut names = Names::for_box(&self.hostname, &self.domains, &ips);
        if self.loopback {
            names.dns.push("localhost".into());
        }
        names
    }

    /// Loads the CA, making it first if there is none. `ca.pem` is written last, so its
    /// presence means both files are complete.
    pub fn ca(&self, now: i64) -> Result<Ca, TlsError> {
        let (cert_path, key_path) = (self.ca_cert(), self.ca_key());
        let err = |p: &Path, e: &dyn std::fmt::Display| TlsError(format!("{}: {e}", p.display()));
        if !cert_path.exists() {
            std::fs::create_dir_all(&self.dir).map_err(|e| err(&self.dir, &e))?;
            // A host run (listeners on loopback) may also vouch for `localhost`.
            let mut subtrees = self.domains.clone();
            if self.loopback {
                subtrees.push("localhost".into());
            }
            let (cert, key) =
                ca::make_ca(&self.hostname, &subtrees, now).map_err(|e| TlsError(e.0))?;
            write_file(&key_path, key.as_bytes(), 0o600).map_err(|e| err(&key_path, &e))?;
            write_file(&cert_path, cert.as_bytes(), 0o644).map_err(|e| err(&cert_path, &e))?;
            tracing::info!(path = %cert_path.display(), "made the household CA");
        }
        let der = first_der(&cert_path)?;
        let key = std::fs::read_to_string(&key_path).map_err(|e| err(&key_path, &e))?;
        Ca::load(der.as_ref(), &key).map_err(|e| err(&cert_path, &e))
    }

    /// Why the server certificate on disk must be (re)issued at `now` for `wanted`, if it
    /// must: missing or unreadable, not issued by `ca` (the old self-signed certificate of a
    /// store made before the household CA), two thirds of its lifetime gone, or missing a
    /// name or address.
    pub fn due(&self, ca: &Ca, wanted: &Names, now: i64) -> Option<String> {
        if !self.key().exists() {
            return Some("there is no server key".into());
        }
        let der = match first_der(&self.cert()) {
            Ok(d) => d,
            Err(e) => return Some(e.0),
        };
        let issued = match Issued::parse(der.as_ref()) {
            Ok(i) => i,
            Err(e) => return Some(e.0),
        };
        if issued.issuer != ca.subject {
            return Some(
                "it was not issued by the household CA (an older self-signed certificate)".into(),
            );
        }
        let mut wanted = wanted.clone();
        wanted.dns.retain(|d| ca.permits(d));
        ca::renewal_due(&issued, &wanted, now)
    }

    /// Makes the CA if needed and (re)issues the server certificate when [`Self::due`]:
    /// returns the reason when it issued one.
    pub fn ensure(&self, addresses: &[IpAddr], now: i64) -> Result<Option<String>, TlsError> {
        let ca = self.ca(now)?;
        let wanted = self.wanted(addresses);
        let Some(reason) = self.due(&ca, &wanted, now) else {
            return Ok(None);
        };
        self.issue(&ca, &wanted, now)?;
        Ok(Some(reason))
    }

    /// Issues a server certificate for `wanted` and writes it (key first).
    pub fn issue(&self, ca: &Ca, wanted: &Names, now: i64) -> Result<(), TlsError> {
        let (cert, key) = ca
            .issue(wanted, self.lifetime, now)
            .map_err(|e| TlsError(e.0))?;
        let (cp, kp) = (self.cert(), self.key());
        write_file(&kp, key.as_bytes(), 0o600)
            .map_err(|e| TlsError(format!("{}: {e}", kp.display())))?;
        write_file(&cp, cert.as_bytes(), 0o644)
            .map_err(|e| TlsError(format!("{}: {e}", cp.display())))?;
        Ok(())
    }
}
