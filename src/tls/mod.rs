//! TLS with rustls (ring provider): the server certificate from the configured PEM files
//! (`[tls] cert key`), or by default one signed by the box's household CA
//! ([`household`], [`ca`]), made once into `data_dir/tls/` and renewed by [`renew`] with no
//! restart. [`Tls::reload`] re-reads the files (SIGHUP, and after a renewal); connections
//! already open keep the old certificate.

pub mod acme;
pub mod ca;
pub mod household;
pub mod ifaddr;
pub mod renew;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use household::Household;

/// Installs ring as the process-wide rustls provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    /// `[tls] cert key`: the operator's files.
    Files { cert: PathBuf, key: PathBuf },
    /// The household CA's server certificate.
    Household(Household),
    /// `[acme]`: the ACME certificate once obtained, the household one until then.
    Acme {
        files: acme::AcmeFiles,
        fallback: Household,
    },
}

impl Source {
    fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            Source::Files { cert, key } => (cert.clone(), key.clone()),
            Source::Household(h) => (h.cert(), h.key()),
            Source::Acme { files, .. } if files.present() => (files.cert(), files.key()),
            Source::Acme { fallback, .. } => (fallback.cert(), fallback.key()),
        }
    }
}

/// Renewal failures in a row that raise fault 2 (through [`Tls::not_after`]).
pub const FAILURES_FOR_FAULT: u32 = 3;

/// How renewing goes.
#[derive(Debug, Default)]
struct Renewal {
    /// Failed attempts in a row, and the last error.
    failures: u32,
    last_error: Option<String>,
}

/// The current server TLS configuration, swappable on reload.
#[derive(Clone)]
pub struct Tls {
    source: Source,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    renewal: Arc<Mutex<Renewal>>,
    challenges: acme::Challenges,
    /// Tells listeners that keep their own copy (axum-server) of each new configuration.
    changed: Arc<tokio::sync::watch::Sender<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
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
    let (cert, key) = src.paths();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate found",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
    let mut cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    // Resumption spares a phone's battery and the Pi's CPU on reconnects.
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(256);
    Ok(Arc::new(cfg))
}

fn sha256_hex(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn first_cert(path: &Path) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).ok()?.next()?.ok()
}

/// `t` (unix seconds) as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(t: i64) -> String {
    let (y, m, d) = crate::imap::fetch::civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The household settings of `cfg`.
fn household(cfg: &Config) -> Household {
    let loopback = cfg
        .listen
        .services()
        .into_iter()
        .filter_map(|(_, addr)| addr)
        .any(|a| a.ip().is_loopback());
    Household {
        dir: cfg.server.data_dir.join("tls"),
        hostname: cfg.server.hostname.clone(),
        domains: cfg.server.domains.clone(),
        lifetime: cfg
            .tls
            .lifetime
            .map(|d| d.as_secs() as i64)
            .unwrap_or(ca::MAX_LIFETIME_S)
            .clamp(1, ca::MAX_LIFETIME_S),
        loopback,
    }
}

impl Tls {
    /// Loads the configured certificate, or the household one (making the CA, migrating an
    /// old self-signed certificate, renewing one that is due or misses a name).
    pub fn from_config(cfg: &Config) -> Result<Tls, TlsError> {
        install_provider();
        let source = match (&cfg.tls.cert, &cfg.tls.key) {
            (Some(c), Some(k)) => Source::Files {
                cert: c.clone(),
                key: k.clone(),
            },
            _ => {
                let h = household(cfg);
                let now = crate::store::now_unix();
                if let Some(why) = h.ensure(&ifaddr::addresses(), now)? {
                    tracing::info!(path = %h.cert().display(), reason = %why, "issued a server certificate from the household CA");
                }
                match &cfg.acme {
                    Some(_) => Source::Acme {
                        files: acme::files(&cfg.server.data_dir),
                        fallback: h,
                    },
                    None => Source::Household(h),
                }
            }
        };
        let current = match (load(&source), &source) {
            (Ok(c), _) => c,
            // A power cut between writing the new key and the new certificate leaves a pair
            // that does not match: issue a fresh one.
            (Err(e), Source::Household(h) | Source::Acme { fallback: h, .. }) => {
                tracing::warn!(error = %e, "the household server certificate does not load; issuing a new one");
                let now = crate::store::now_unix();
                let ca = h.ca(now)?;
                h.issue(&ca, &h.wanted(&ifaddr::addresses()), now)?;
                load(&source)?
            }
            (Err(e), _) => return Err(e),
        };
        Ok(Tls {
            source,
            changed: Arc::new(tokio::sync::watch::Sender::new(current.clone())),
            current: Arc::new(RwLock::new(current)),
            renewal: Arc::default(),
            challenges: acme::Challenges::default(),
        })
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let new = load(&self.source)?;
        if let Ok(mut cur) = self.current.write() {
            *cur = new.clone();
        }
        self.changed.send_replace(new);
        Ok(())
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config())
    }

    /// The current server configuration (for listeners that take a rustls config).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Every new server configuration (after a renewal, an ACME certificate or SIGHUP), for a
    /// listener that holds its own copy, such as axum-server's `RustlsConfig`.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<ServerConfig>> {
        self.changed.subscribe()
    }

    /// The certificate file in use.
    pub fn cert_path(&self) -> PathBuf {
        self.source.paths().0
    }

    /// True when the certificate is the household CA's (no `[tls] cert key`).
    pub fn is_household(&self) -> bool {
        matches!(self.source, Source::Household(_))
    }

    /// The household CA's certificate file, if the household CA is in use.
    pub fn ca_path(&self) -> Option<PathBuf> {
        match &self.source {
            Source::Household(h) => Some(h.ca_cert()),
            Source::Files { .. } | Source::Acme { .. } => None,
        }
    }

    /// The household CA's certificate, PEM (for the web page and the Apple profile).
    pub fn ca_pem(&self) -> Option<String> {
        std::fs::read_to_string(self.ca_path()?).ok()
    }

    /// The household CA's certificate, DER (`.crt`/`.cer` downloads).
    pub fn ca_der(&self) -> Option<Vec<u8>> {
        Some(first_cert(&self.ca_path()?)?.as_ref().to_vec())
    }

    /// SHA-256 fingerprint of the household CA's certificate.
    pub fn ca_fingerprint(&self) -> Option<String> {
        Some(sha256_hex(&self.ca_der()?))
    }

    /// When the leaf certificate in the file expires (its not-after date, unix seconds). The
    /// file is read again on each call, so a certificate replaced on disk is seen at once.
    /// While renewing has failed [`FAILURES_FOR_FAULT`] times in a row this is an error
    /// saying so, which the supervisor shows as fault 2.
    pub fn not_after(&self) -> Result<i64, TlsError> {
        if let Ok(r) = self.renewal.lock()
            && r.failures >= FAILURES_FOR_FAULT
        {
            return Err(TlsError(format!(
                "renewing it failed {} times in a row: {}",
                r.failures,
                r.last_error.as_deref().unwrap_or("")
            )));
        }
        cert_not_after(&self.cert_path())
    }

    /// SHA-256 fingerprint of the leaf certificate, for the first-start banner.
    pub fn fingerprint(&self) -> Option<String> {
        Some(sha256_hex(first_cert(&self.cert_path())?.as_ref()))
    }

    /// Lines for `letterbox status`.
    pub fn status_lines(&self) -> Vec<String> {
        let mut v = vec![format!(
            "  server certificate SHA-256 {}, valid until {}",
            self.fingerprint().unwrap_or_else(|| "unreadable".into()),
            cert_not_after(&self.cert_path())
                .map(utc)
                .unwrap_or_else(|e| e.0)
        )];
        if let Some(fp) = self.ca_fingerprint() {
            v.push(format!("  household CA SHA-256 {fp}"));
        }
        if let Ok(r) = self.renewal.lock()
            && r.failures > 0
        {
            v.push(format!(
                "  renewal failed {} time(s) in a row: {}",
                r.failures,
                r.last_error.as_deref().unwrap_or("")
            ));
        }
        v
    }

    /// The same for `status --json`.
    pub fn status_json(&self) -> serde_json::Value {
        let failures = self.renewal.lock().map(|r| r.failures).unwrap_or(0);
        serde_json::json!({
            "path": self.cert_path(),
            "household": self.is_household(),
            "sha256": self.fingerprint(),
            "not_after": cert_not_after(&self.cert_path()).ok(),
            "ca_sha256": self.ca_fingerprint(),
            "renewal_failures": failures,
        })
    }

    /// Runs one renewal check of the household certificate at `now` (see
    /// [`household::Household::ensure`]) and swaps a new certificate in. Returns why it
    /// renewed, if it did. Does nothing for `[tls] cert key` files.
    pub fn renew_household(
        &self,
        addresses: &[std::net::IpAddr],
        now: i64,
    ) -> Result<Option<String>, TlsError> {
        let (Source::Household(h) | Source::Acme { fallback: h, .. }) = &self.source else {
            return Ok(None);
        };
        let result = h.ensure(addresses, now).and_then(|why| {
            if why.is_some() {
                self.reload()?;
            }
            Ok(why)
        });
        if let Ok(mut r) = self.renewal.lock() {
            match &result {
                Ok(_) => *r = Renewal::default(),
                Err(e) => {
                    r.failures = r.failures.saturating_add(1);
                    r.last_error = Some(e.0.clone());
                }
            }
        }
        result
    }

    /// Failed renewals in a row.
    pub fn renewal_failures(&self) -> u32 {
        self.renewal.lock().map(|r| r.failures).unwrap_or(0)
    }

    /// The household settings, when in use (also as the fallback of `[acme]`).
    pub fn household(&self) -> Option<&Household> {
        match &self.source {
            Source::Household(h) | Source::Acme { fallback: h, .. } => Some(h),
            Source::Files { .. } => None,
        }
    }

    /// The ACME files, when `[acme]` is in use.
    pub fn acme_files(&self) -> Option<&acme::AcmeFiles> {
        match &self.source {
            Source::Acme { files, .. } => Some(files),
            _ => None,
        }
    }

    /// The pending ACME http-01 challenges, for the HTTP listener to serve at
    /// `/.well-known/acme-challenge/{token}`.
    pub fn challenges(&self) -> acme::Challenges {
        self.challenges.clone()
    }

    /// Records how an ACME attempt went: failures in a row feed [`Tls::not_after`] (fault 2).
    pub fn record_renewal(&self, result: Result<(), String>) {
        if let Ok(mut r) = self.renewal.lock() {
            match result {
                Ok(()) => *r = Renewal::default(),
                Err(e) => {
                    r.failures = r.failures.saturating_add(1);
                    r.last_error = Some(e);
                }
            }
        }
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

    fn cfg_in(d: &Path) -> Config {
        let mut cfg = Config::defaults();
        cfg.server.data_dir = d.to_path_buf();
        cfg
    }

    #[test]
    fn household_certificate_is_made_once_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let cfg = cfg_in(d.path());
        let t = Tls::from_config(&cfg).unwrap();
        assert!(t.is_household());
        let fp = t.fingerprint().unwrap();
        let ca = t.ca_fingerprint().unwrap();
        let not_after = t.not_after().unwrap();
        let now = crate::store::now_unix();
        assert!(
            not_after <= now + ca::MAX_LIFETIME_S && not_after > now + 390 * 86_400,
            "{not_after}"
        );
        let t2 = Tls::from_config(&cfg).unwrap();
        assert_eq!(t2.fingerprint().unwrap(), fp, "reused, not regenerated");
        assert_eq!(t2.ca_fingerprint().unwrap(), ca);
        use std::os::unix::fs::PermissionsExt;
        for key in ["tls/key.pem", "tls/ca-key.pem"] {
            let mode = std::fs::metadata(d.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is private");
        }
        assert!(
            t.ca_pem()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(sha256_hex(&t.ca_der().unwrap()), ca);
        t.reload().unwrap();
        std::fs::write(d.path().join("x.pem"), "junk").unwrap();
        let e = cert_not_after(&d.path().join("x.pem")).unwrap_err();
        assert!(e.0.contains("x.pem"), "{e}");
    }

    #[test]
    fn old_self_signed_certificate_is_replaced_and_the_ca_kept() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tls");
        std::fs::create_dir_all(&dir).unwrap();
        let old =
            rcgen::generate_simple_self_signed(vec!["letterbox.home.arpa".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), old.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), old.signing_key.serialize_pem()).unwrap();
        let cfg = cfg_in(d.path());
        let t = Tls::from_config(&cfg).unwrap();
        let der = first_cert(&t.cert_path()).unwrap();
        assert_ne!(der.as_ref(), old.cert.der().as_ref(), "migrated");
        let ca_der = t.ca_der().unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
        // The chain verifies with webpki (rustls' verifier), trusting only the CA.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_der.clone())).unwrap();
        let v = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let name = rustls_pki_types::ServerName::try_from("letterbox.home.arpa").unwrap();
        v.verify_server_cert(&der, &[], &name, &[], rustls_pki_types::UnixTime::now())
            .unwrap();
        // A renewal makes a new server certificate and keeps the CA.
        let ca_fp = t.ca_fingerprint().unwrap();
        let fp = t.fingerprint().unwrap();
        let later = crate::store::now_unix() + 300 * 86_400;
        let mut changes = t.subscribe();
        let why = t.renew_household(&[], later).unwrap();
        assert!(
            changes.has_changed().unwrap(),
            "subscribers hear of the new certificate"
        );
        assert!(Arc::ptr_eq(
            &changes.borrow_and_update(),
            &t.server_config()
        ));
        assert!(why.unwrap().contains("two thirds"));
        assert_ne!(t.fingerprint().unwrap(), fp);
        assert_eq!(t.ca_fingerprint().unwrap(), ca_fp, "the CA is kept");
        assert_eq!(
            t.renew_household(&[], later).unwrap(),
            None,
            "not due again"
        );
    }

    #[test]
    fn a_new_lan_address_renews_and_failures_raise_the_fault() {
        let d = tempfile::tempdir().unwrap();
        let t = Tls::from_config(&cfg_in(d.path())).unwrap();
        let now = crate::store::now_unix();
        let lan: std::net::IpAddr = "192.168.77.5".parse().unwrap();
        let public: std::net::IpAddr = "8.8.8.8".parse().unwrap();
        // The host defaults listen on loopback: 127.0.0.1 is named, and so is a new LAN
        // address; a public one is not (the CA may not vouch for it).
        let why = t.renew_household(&[lan, public], now).unwrap().unwrap();
        assert!(why.contains("192.168.77.5"), "{why}");
        let issued = ca::Issued::parse(first_cert(&t.cert_path()).unwrap().as_ref()).unwrap();
        assert!(issued.names.ips.contains(&lan));
        assert!(issued.names.ips.contains(&"127.0.0.1".parse().unwrap()));
        assert!(!issued.names.ips.contains(&public));
        // A CA that cannot be read: renewal fails, the served certificate stays, and the
        // third failure in a row turns not_after into fault 2's error.
        let ca_path = t.ca_path().unwrap();
        std::fs::write(&ca_path, "broken").unwrap();
        let fp = t.fingerprint();
        for n in 1..=FAILURES_FOR_FAULT {
            assert!(t.renew_household(&[lan], now + 300 * 86_400).is_err());
            assert_eq!(t.renewal_failures(), n);
        }
        assert_eq!(t.fingerprint(), fp);
        let e = t.not_after().unwrap_err();
        assert!(e.0.contains("failed 3 times"), "{e}");
    }

    #[test]
    fn bad_files_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let cert = d.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let mut cfg = cfg_in(d.path());
        cfg.tls.cert = Some(cert.clone());
        cfg.tls.key = Some(d.path().join("missing.pem"));
        let e = Tls::from_config(&cfg).err().unwrap();
        assert!(e.0.contains("c.pem"), "{e}");
    }
}
