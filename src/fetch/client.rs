//! The IMAP client side of `[[fetch]]`: async-imap over tokio-rustls, with the remote's
//! certificate verified (the system trust store through rustls-platform-verifier, which
//! honours `SSL_CERT_FILE`, or only the CAs of `ca_file`). Every command is bounded by
//! [`COMMAND_TIMEOUT`]; the I/O of one remote session lives here, the decisions in
//! `super` (mod.rs).
//!
//! Commands (RFC 9051 unless noted): LOGIN (§6.2.3), SELECT (§6.3.2, for UIDVALIDITY),
//! UID SEARCH (§6.4.4), UID FETCH of `RFC822.SIZE` first and then `BODY.PEEK[]` (§6.4.5;
//! PEEK so the remote's `\Seen` is left alone), UID STORE `\Deleted` + UID EXPUNGE
//! (RFC 4315 UIDPLUS) or EXPUNGE, UID MOVE (RFC 6851) or UID COPY + delete, IDLE
//! (RFC 2177).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use futures_util::StreamExt;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::config::FetchConfig;

/// The longest one command (or the connection, or the TLS handshake) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// At most this many UIDs go into one command.
const MAX_SET: usize = 500;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A logged-in session with a remote.
pub struct Remote {
    session: Session<Tls>,
    /// RFC 2177 IDLE offered.
    pub idle: bool,
    /// RFC 4315 UIDPLUS offered (UID EXPUNGE).
    pub uidplus: bool,
    /// RFC 6851 MOVE offered.
    pub mv: bool,
}

/// One fetched message.
pub struct Body {
    /// Its UID.
    pub uid: u32,
    /// The bytes as the remote sent them.
    pub raw: Vec<u8>,
    /// INTERNALDATE as unix seconds, if the remote gave one.
    pub internal_date: Option<i64>,
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {COMMAND_TIMEOUT:?}")),
    }
}

/// The TLS client configuration for a remote: `ca_file`'s CAs only, or the system trust
/// store (plus `SSL_CERT_FILE`).
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in the file", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("trust store: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// `1:3,5,7:9`: a UID set (RFC 9051 §9 sequence-set) for ascending `uids`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

impl Remote {
    /// Connects (TLS from the first byte, RFC 8314 §3.3), reads the greeting, logs in.
    pub async fn connect(
        entry: &FetchConfig,
        tls: Arc<ClientConfig>,
        password: &str,
    ) -> Result<Remote, String> {
        let addr = (entry.host.as_str(), entry.port);
        let tcp = bounded("connect", TcpStream::connect(addr)).await?;
        let name = ServerName::try_from(entry.host.clone())
            .map_err(|e| format!("host {:?}: {e}", entry.host))?;
        let stream = bounded("TLS", TlsConnector::from(tls).connect(name, tcp)).await?;
        let mut client = async_imap::Client::new(stream);
        match bounded("greeting", client.read_response()).await? {
            Some(_) => {}
            None => return Err("the remote closed the connection before its greeting".into()),
        }
        let session =
            match tokio::time::timeout(COMMAND_TIMEOUT, client.login(&entry.username, password))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err((e, _))) => return Err(format!("login as {}: {e}", entry.username)),
                Err(_) => return Err("login: no answer".into()),
            };
        let mut remote = Remote {
            session,
            idle: false,
            uidplus: false,
            mv: false,
        };
        let caps = bounded("CAPABILITY", remote.session.capabilities()).await?;
        remote.idle = caps.has_str("IDLE");
        remote.uidplus = caps.has_str("UIDPLUS");
        remote.mv = caps.has_str("MOVE");
        Ok(remote)
    }

    /// SELECT: the folder's UIDVALIDITY.
    pub async fn select(&mut self, folder: &str) -> Result<u32, String> {
        let mb = bounded(&format!("SELECT {folder}"), self.session.select(folder)).await?;
        mb.uid_validity
            .ok_or_else(|| format!("SELECT {folder}: the remote gave no UIDVALIDITY"))
    }

    /// UID SEARCH for the UIDs in `from..=to` (`to` None: up to the last), ascending.
    pub async fn uids(&mut self, from: u32, to: Option<u32>) -> Result<Vec<u32>, String> {
        let query = match to {
            Some(to) => format!("UID {from}:{to}"),
            None => format!("UID {from}:*"),
        };
        let found = bounded("UID SEARCH", self.session.uid_search(&query)).await?;
        // "n:*" always includes the last UID, even one below n (RFC 9051 §6.4.8).
        let mut uids: Vec<u32> = found
            .into_iter()
            .filter(|&u| u >= from && to.is_none_or(|t| u <= t))
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// UID FETCH RFC822.SIZE: (uid, size) for `uids`.
    pub async fn sizes(&mut self, uids: &[u32]) -> Result<Vec<(u32, u64)>, String> {
        let mut out = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(MAX_SET) {
            let set = uid_set(chunk);
            let fetched = bounded("UID FETCH RFC822.SIZE", async {
                let stream = self.session.uid_fetch(&set, "(UID RFC822.SIZE)").await?;
                let all: Vec<_> = stream.collect().await;
                Ok::<_, async_imap::error::Error>(all)
            })
            .await?;
            for f in fetched {
                let f = f.map_err(|e| format!("UID FETCH: {e}"))?;
                if let (Some(uid), Some(size)) = (f.uid, f.size) {
                    out.push((uid, u64::from(size)));
                }
            }
        }
        Ok(out)
    }

    /// UID FETCH BODY.PEEK[] of `uids` (the caller bounds their total size).
    pub async fn bodies(&mut self, uids: &[u32]) -> Result<Vec<Body>, String> {
        let set = uid_set(uids);
        let fetched = bounded("UID FETCH BODY.PEEK[]", async {
            let stream = self
                .session
                .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
                .await?;
            let all: Vec<_> = stream.collect().await;
            Ok::<_, async_imap::error::Error>(all)
        })
        .await?;
        let mut out = Vec::with_capacity(fetched.len());
        for f in fetched {
            let f = f.map_err(|e| format!("UID FETCH: {e}"))?;
            let (Some(uid), Some(body)) = (f.uid, f.body()) else {
                continue;
            };
            out.push(Body {
                uid,
                raw: body.to_vec(),
                internal_date: f.internal_date().map(|d| d.timestamp()),
            });
        }
        Ok(out)
    }

    /// Deletes `uids` from the selected folder: `\Deleted`, then UID EXPUNGE (UIDPLUS) or,
    /// without it, EXPUNGE (which also removes what others marked `\Deleted`).
    pub async fn delete(&mut self, uids: &[u32]) -> Result<(), String> {
        for chunk in uids.chunks(MAX_SET) {
            let set = uid_set(chunk);
            bounded("UID STORE", async {
                let stream = self
                    .session
                    .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                    .await?;
                let _: Vec<_> = stream.collect().await;
                Ok::<_, async_imap::error::Error>(())
            })
            .await?;
            if self.uidplus {
                bounded("UID EXPUNGE", async {
                    let stream = self.session.uid_expunge(&set).await?;
                    let _: Vec<_> = stream.collect().await;
                    Ok::<_, async_imap::error::Error>(())
                })
                .await?;
            } else {
                bounded("EXPUNGE", async {
                    let stream = self.session.expunge().await?;
                    let _: Vec<_> = stream.collect().await;
                    Ok::<_, async_imap::error::Error>(())
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Moves `uids` to `folder`: UID MOVE, or UID COPY and then [`Remote::delete`].
    pub async fn move_to(&mut self, uids: &[u32], folder: &str) -> Result<(), String> {
        for chunk in uids.chunks(MAX_SET) {
            let set = uid_set(chunk);
            if self.mv {
                bounded("UID MOVE", self.session.uid_mv(&set, folder)).await?;
            } else {
                bounded("UID COPY", self.session.uid_copy(&set, folder)).await?;
                self.delete(chunk).await?;
            }
        }
        Ok(())
    }

    /// IDLE on the selected folder for at most `max`, until the remote reports a change
    /// or `stop`; answers the session and whether to look again now (false on stop).
    pub async fn idle(
        self,
        max: Duration,
        stop: &CancellationToken,
    ) -> Result<(Remote, bool), String> {
        let Remote {
            session,
            idle,
            uidplus,
            mv,
        } = self;
        let mut handle = session.idle();
        bounded("IDLE", handle.init()).await?;
        let again = {
            let (wait, _interrupt) = handle.wait_with_timeout(max);
            tokio::select! {
                r = wait => {
                    r.map_err(|e| format!("IDLE: {e}"))?;
                    true
                }
                _ = stop.cancelled() => false,
            }
        };
        let session = bounded("DONE", handle.done()).await?;
        Ok((
            Remote {
                session,
                idle,
                uidplus,
                mv,
            },
            again,
        ))
    }

    /// LOGOUT (best effort, bounded).
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.session.logout()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::uid_set;

    #[test]
    fn uid_sets_are_ranges() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8, 9]), "1:3,5,7:9");
        assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), "4294967294:4294967295");
    }
}
