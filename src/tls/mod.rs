//! TLS with rustls (ring provider): the server certificate from the configured PEM
//! files, or a self-signed one (rcgen) for the host name and `letterbox.local`,
//! generated once into `data_dir/tls/` and reused. [`Tls::reload`] re-reads the files
//! (SIGHUP); connections already open keep the old certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// Installs ring as the process-wide rustls provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
struct Source {
    cert: PathBuf,
    key: PathBuf,
    self_signed: bool,
}

/// The current server TLS configuration, swappable on reload.
#[derive(Clone)]
pub struct Tls {
    source: Source,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

/// A TLS set-up error, naming the file.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TlsError {}

fn load(src: &Source) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&src.cert)
        .map_err(|e| TlsError(format!("{}: {e}", src.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", src.cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate found",
            src.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&src.key)
        .map_err(|e| TlsError(format!("{}: {e}", src.key.display())))?;
    let mut cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("{}: {e}", src.cert.display())))?;
    // Resumption spares a phone's battery and the Pi's CPU on reconnects.
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(256);
    Ok(Arc::new(cfg))
}

/// Writes a file readable by the owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Generates the self-signed certificate unless it exists.
fn ensure_self_signed(dir: &Path, hostname: &str) -> Result<Source, TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if !(cert.exists() && key.exists()) {
        std::fs::create_dir_all(dir).map_err(|e| TlsError(format!("{}: {e}", dir.display())))?;
        let mut names = vec![hostname.to_string(), "letterbox.local".to_string()];
        names.dedup();
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError(format!("generating certificate: {e}")))?;
        write_private(&key, ck.signing_key.serialize_pem().as_bytes())
            .map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
        write_private(&cert, ck.cert.pem().as_bytes())
            .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
        tracing::info!(path = %cert.display(), "generated a self-signed certificate");
    }
    Ok(Source {
        cert,
        key,
        self_signed: true,
    })
}

impl Tls {
    /// Loads the configured certificate, or the self-signed one (creating it).
    pub fn from_config(cfg: &Config) -> Result<Tls, TlsError> {
        install_provider();
        let source = match (&cfg.tls.cert, &cfg.tls.key) {
            (Some(c), Some(k)) => Source {
                cert: c.clone(),
                key: k.clone(),
                self_signed: false,
            },
            _ => ensure_self_signed(&cfg.server.data_dir.join("tls"), &cfg.server.hostname)?,
        };
        let current = load(&source)?;
        Ok(Tls {
            source,
            current: Arc::new(RwLock::new(current)),
        })
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let new = load(&self.source)?;
        if let Ok(mut cur) = self.current.write() {
            *cur = new;
        }
        Ok(())
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        let cfg = self
            .current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        TlsAcceptor::from(cfg)
    }

    /// The certificate file in use.
    pub fn cert_path(&self) -> &Path {
        &self.source.cert
    }

    /// True when the certificate is our own self-signed one.
    pub fn is_self_signed(&self) -> bool {
        self.source.self_signed
    }

    /// When the leaf certificate in the file expires (its not-after date, unix seconds). The
    /// file is read again on each call, so a certificate replaced on disk is seen at once.
    pub fn not_after(&self) -> Result<i64, TlsError> {
        cert_not_after(&self.source.cert)
    }

    /// SHA-256 fingerprint of the leaf certificate, for the first-start banner.
    pub fn fingerprint(&self) -> Option<String> {
        let der = CertificateDer::pem_file_iter(&self.source.cert)
            .ok()?
            .next()?
            .ok()?;
        let d = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        Some(
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
        )
    }
}

/// The not-after date (unix seconds) of the first certificate in the PEM file at `path`.
pub fn cert_not_after(path: &Path) -> Result<i64, TlsError> {
    let err = |e: &dyn std::fmt::Display| TlsError(format!("{}: {e}", path.display()));
    let der = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .next()
        .ok_or_else(|| err(&"no certificate found"))?
        .map_err(|e| err(&e))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| err(&e))?;
    Ok(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_of_the_self_signed_certificate() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = Config::defaults();
        cfg.server.data_dir = d.path().to_path_buf();
        let t = Tls::from_config(&cfg).unwrap();
        // rcgen's default validity runs to 4096-01-01.
        let not_after = t.not_after().unwrap();
        assert!(
            not_after > crate::store::now_unix() + 365 * 86_400,
            "{not_after}"
        );
        std::fs::write(d.path().join("x.pem"), "junk").unwrap();
        let e = cert_not_after(&d.path().join("x.pem")).unwrap_err();
        assert!(e.0.contains("x.pem"), "{e}");
    }

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = Config::defaults();
        cfg.server.data_dir = d.path().to_path_buf();
        let t = Tls::from_config(&cfg).unwrap();
        assert!(t.is_self_signed());
        let fp = t.fingerprint().unwrap();
        let t2 = Tls::from_config(&cfg).unwrap();
        assert_eq!(t2.fingerprint().unwrap(), fp, "reused, not regenerated");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key is private");
        t.reload().unwrap();
    }

    #[test]
    fn bad_files_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let cert = d.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let mut cfg = Config::defaults();
        cfg.server.data_dir = d.path().to_path_buf();
        cfg.tls.cert = Some(cert.clone());
        cfg.tls.key = Some(d.path().join("missing.pem"));
        let e = Tls::from_config(&cfg).err().unwrap();
        assert!(e.0.contains("c.pem"), "{e}");
    }
}
