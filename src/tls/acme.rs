//! ACME (RFC 8555) through instant-acme (ring, never aws-lc-rs): the account, an order for
//! the host name with the http-01 challenge (RFC 8555 section 8.3), and the daemon task that
//! obtains the certificate and renews it at two thirds of its lifetime, retrying with
//! backoff. Files under `data_dir/tls/acme/`: `account.json` (the account's key, 0600),
//! `cert.pem` (the chain) and `key.pem` (0600). The household certificate is served until
//! the first ACME certificate arrives, and the old one while a renewal fails; three failures
//! in a row raise fault 2.
//!
//! The http-01 tokens live in [`Challenges`], which the HTTP listener serves at
//! `/.well-known/acme-challenge/{token}` (RFC 8555 section 8.3); this module writes no
//! HTTP server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio_util::sync::CancellationToken;

use super::Tls;
use super::household::write_file;
use crate::config::AcmeConfig;
use crate::hw::health::FaultClass;
use crate::hw::supervisor::Hw;

/// How long one whole attempt (account, order, validation, certificate) may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The first retry delay after a failure; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);

/// The longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// The most http-01 tokens kept at once (one order has one per name).
const MAX_TOKENS: usize = 64;

/// The pending http-01 challenges: token → key authorization. Cheap to clone; shared with
/// the HTTP listener.
#[derive(Debug, Clone, Default)]
pub struct Challenges {
    http: Arc<Mutex<HashMap<String, String>>>,
}

impl Challenges {
    /// The body to answer `GET /.well-known/acme-challenge/{token}` with, if `token` is
    /// pending (RFC 8555 section 8.3: the key authorization, `application/octet-stream`).
    pub fn http01(&self, token: &str) -> Option<String> {
        self.http.lock().ok()?.get(token).cloned()
    }

    fn put(&self, token: &str, key_authorization: &str) {
        if let Ok(mut m) = self.http.lock()
            && (m.len() < MAX_TOKENS || m.contains_key(token))
        {
            m.insert(token.to_string(), key_authorization.to_string());
        }
    }

    fn remove(&self, token: &str) {
        if let Ok(mut m) = self.http.lock() {
            m.remove(token);
        }
    }
}

/// The ACME files of `data_dir/tls/acme`.
#[derive(Debug, Clone)]
pub struct AcmeFiles {
    /// The directory.
    pub dir: PathBuf,
}

impl AcmeFiles {
    /// The certificate chain (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    /// The private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    fn account(&self) -> PathBuf {
        self.dir.join("account.json")
    }
    /// True when a certificate has been obtained.
    pub fn present(&self) -> bool {
        self.cert().exists() && self.key().exists()
    }
}

/// When the next attempt is due at `now`: at once without a certificate, else at two
/// thirds of its lifetime.
pub fn next_attempt(files: &AcmeFiles, now: i64) -> i64 {
    if !files.present() {
        return now;
    }
    let der = rustls_pki_types::pem::PemObject::pem_file_iter(files.cert())
        .ok()
        .and_then(|mut i| i.next())
        .and_then(Result::ok);
    let der: Option<rustls_pki_types::CertificateDer<'static>> = der;
    match der.and_then(|d| super::ca::Issued::parse(d.as_ref()).ok()) {
        Some(i) => super::ca::renew_at(i.not_before, i.not_after),
        None => now,
    }
}

/// The delay before retry number `failures` (1, 2, …): [`FIRST_BACKOFF`] doubling, at most
/// [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    FIRST_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF)
}

fn builder(cfg: &AcmeConfig) -> Result<instant_acme::AccountBuilder, String> {
    match &cfg.directory_ca {
        Some(p) => Account::builder_with_root(p).map_err(|e| format!("{}: {e}", p.display())),
        None => Account::builder().map_err(|e| e.to_string()),
    }
}

/// The account: from `account.json`, or created (and saved) at the directory.
async fn account(cfg: &AcmeConfig, files: &AcmeFiles) -> Result<Account, String> {
    let path = files.account();
    if let Ok(text) = std::fs::read_to_string(&path) {
        let creds: AccountCredentials =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        return builder(cfg)?
            .from_credentials(creds)
            .await
            .map_err(|e| format!("ACME account: {e}"));
    }
    let contact = cfg.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = builder(cfg)?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("creating the ACME account at {}: {e}", cfg.directory))?;
    std::fs::create_dir_all(&files.dir).map_err(|e| format!("{}: {e}", files.dir.display()))?;
    let json = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
    write_file(&path, json.as_bytes(), 0o600).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(account)
}

/// One order for `hostname` (RFC 8555 section 7.4): answers each authorization's http-01
/// challenge through `challenges`, finalizes with a new key, and writes the chain and key.
pub async fn obtain(
    cfg: &AcmeConfig,
    hostname: &str,
    files: &AcmeFiles,
    challenges: &Challenges,
) -> Result<(), String> {
    let account = account(cfg, files).await?;
    let ids = [Identifier::Dns(hostname.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut tokens = Vec::new();
    let result = async {
        let mut auths = order.authorizations();
        while let Some(a) = auths.next().await {
            let mut a = a.map_err(|e| format!("authorization: {e}"))?;
            match a.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("authorization is {other:?}")),
            }
            let mut ch = a
                .challenge(ChallengeType::Http01)
                .ok_or("the CA offers no http-01 challenge")?;
            challenges.put(&ch.token, ch.key_authorization().as_str());
            tokens.push(ch.token.clone());
            ch.set_ready()
                .await
                .map_err(|e| format!("challenge: {e}"))?;
        }
        let retry = RetryPolicy::new().timeout(ATTEMPT_TIMEOUT);
        let status = order
            .poll_ready(&retry)
            .await
            .map_err(|e| format!("order: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(format!("the order is {status:?}, not ready"));
        }
        let key = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain = order
            .poll_certificate(&retry)
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        Ok((chain, key))
    }
    .await;
    for t in &tokens {
        challenges.remove(t);
    }
    let (chain, key) = result?;
    let (cp, kp) = (files.cert(), files.key());
    write_file(&kp, key.as_bytes(), 0o600).map_err(|e| format!("{}: {e}", kp.display()))?;
    write_file(&cp, chain.as_bytes(), 0o644).map_err(|e| format!("{}: {e}", cp.display()))?;
    Ok(())
}

/// The daemon task: obtains the certificate when there is none or two thirds of its
/// lifetime have passed, swaps it in (like SIGHUP), and retries failures with [`backoff`];
/// runs until `stop`.
pub async fn run(tls: Tls, cfg: AcmeConfig, hostname: String, hw: Hw, stop: CancellationToken) {
    let Some(files) = tls.acme_files().cloned() else {
        return;
    };
    let challenges = tls.challenges();
    let mut failures: u32 = 0;
    loop {
        let wait = if failures == 0 {
            let now = crate::store::now_unix();
            // Checked again at least daily, so a clock that jumps is followed.
            Duration::from_secs(
                next_attempt(&files, now)
                    .saturating_sub(now)
                    .clamp(0, 86_400) as u64,
            )
        } else {
            backoff(failures)
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            if failures == 0
                && next_attempt(&files, crate::store::now_unix()) > crate::store::now_unix()
            {
                continue;
            }
        }
        let attempt = tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            obtain(&cfg, &hostname, &files, &challenges),
        );
        let result = tokio::select! {
            r = attempt => r.unwrap_or_else(|_| Err("timed out".into())),
            _ = stop.cancelled() => return,
        };
        let result = result.and_then(|()| tls.reload().map_err(|e| e.0));
        tls.record_renewal(result.as_ref().map(|_| ()).map_err(String::clone));
        match result {
            Ok(()) => {
                tracing::info!(name = %hostname, sha256 = %tls.fingerprint().unwrap_or_default(), "obtained an ACME certificate");
                if failures >= super::FAILURES_FOR_FAULT {
                    hw.set_fault(FaultClass::Certificate, None);
                }
                failures = 0;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::error!(error = %e, failures, retry_in_s = backoff(failures).as_secs(), "ACME: no certificate; the current one is still served");
                if failures >= super::FAILURES_FOR_FAULT {
                    hw.set_fault(
                        FaultClass::Certificate,
                        Some(format!("ACME failed {failures} times in a row: {e}")),
                    );
                }
            }
        }
    }
}

/// The ACME files of `data_dir`.
pub fn files(data_dir: &Path) -> AcmeFiles {
    AcmeFiles {
        dir: data_dir.join("tls").join("acme"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_answer_pending_tokens_only() {
        let c = Challenges::default();
        let shared = c.clone();
        assert_eq!(c.http01("t1"), None);
        c.put("t1", "t1.thumb");
        assert_eq!(shared.http01("t1").as_deref(), Some("t1.thumb"));
        assert_eq!(shared.http01("t2"), None);
        c.remove("t1");
        assert_eq!(shared.http01("t1"), None);
        for i in 0..MAX_TOKENS + 10 {
            c.put(&format!("x{i}"), "k");
        }
        assert_eq!(c.http.lock().unwrap().len(), MAX_TOKENS, "bounded");
    }

    #[test]
    fn backoff_doubles_to_a_bound() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(5), Duration::from_secs(960));
        assert_eq!(backoff(30), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn due_without_a_certificate_and_at_two_thirds() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        assert_eq!(next_attempt(&f, 100), 100);
        std::fs::create_dir_all(&f.dir).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["mail.example.org".to_string()]).unwrap();
        p.not_before = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        p.not_after =
            time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + 90 * 86_400).unwrap();
        let k = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&k).unwrap();
        std::fs::write(f.cert(), c.pem()).unwrap();
        std::fs::write(f.key(), k.serialize_pem()).unwrap();
        assert_eq!(next_attempt(&f, 100), 1_800_000_000 + 60 * 86_400);
    }
}
