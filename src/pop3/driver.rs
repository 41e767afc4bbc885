//! The POP3 tokio driver: runs [`Session`]s on the `pop3` (STLS, RFC 2595) and `pop3s`
//! (implicit TLS, RFC 8314 §3.3) listeners through [`net::pump`], and answers their
//! [`Event`]s from the store. It owns the POP3 policy, not the protocol:
//!
//! - Login: `auth::authenticate` (argon2, on a blocking thread) with the login name as the
//!   client sent it (the full address); a failure is answered only after the shared
//!   failed-login limiter's delay. SASL authorization identities other than the login are
//!   refused (no proxy logins).
//! - The maildrop lock (RFC 1939 §8: "exclusive-access lock"): one POP3 session per account
//!   in the whole process; a second one gets `-ERR [IN-USE]` (RFC 2449 §8.1.1). The lock is
//!   a guard owned by the connection, released when the session ends however it ends.
//! - The maildrop is the INBOX at login. Its UIDL value is `"{uidvalidity}.{uid}"`: a UID is
//!   never reused within a UIDVALIDITY, so the value is stable for the life of the message
//!   and never names another one (RFC 1939 §7). Sizes are [`codec::message_size`] (RFC 1939
//!   §11, as sent), computed from the stored bytes and cached per blob, since blobs are
//!   content-addressed and never change.
//! - RETR/TOP read the blob at the time of the command; a message expunged meanwhile (over
//!   IMAP) is `MessageGone`.
//! - QUIT applies the deletions as one `Op::Expunge` (one durable commit) before its `+OK`
//!   (RFC 1939 §6, SPEC §5); a connection that drops applies nothing.
//! - Inactivity autologout: `[limits] pop3_idle_timeout` (RFC 1939 §3, at least 10 minutes
//!   by default).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::task::TaskTracker;

use super::codec;
use super::session::{Decision, Event, MaildropEntry, Session, SessionConfig};
use crate::net::{self, ConnInfo, ConnLimits, Listener, Shared, Stream, pump};
use crate::sasl::Credentials;
use crate::store::{self, Op, Store};
use crate::{auth, net::Busy};

/// Rejected logins after which the session closes the connection.
const MAX_AUTH_FAILURES: u32 = 3;
/// Cached POP3 sizes (one `[u8; 32]` + `u64` each); the cache is emptied when full.
const SIZE_CACHE_CAPACITY: usize = 100_000;

/// The line for connections over the caps.
pub fn busy() -> Busy {
    Busy(Session::busy_reply())
}

/// POP3 state shared by every connection.
pub struct Pop3 {
    shared: Shared,
    locks: Arc<Mutex<HashSet<u64>>>,
    sizes: Mutex<HashMap<[u8; 32], u64>>,
}

impl Pop3 {
    /// The POP3 service over the daemon's shared state.
    pub fn new(shared: Shared) -> Arc<Pop3> {
        Arc::new(Pop3 {
            shared,
            locks: Arc::new(Mutex::new(HashSet::new())),
            sizes: Mutex::new(HashMap::new()),
        })
    }

    /// Accepts on `listener` until shutdown.
    pub async fn serve(
        self: Arc<Self>,
        listener: Listener,
        limits: Arc<ConnLimits>,
        tracker: TaskTracker,
    ) {
        let stop = self.shared.stop.clone();
        listener
            .serve(limits, stop, tracker, move |stream, info| {
                self.clone().connection(stream, info)
            })
            .await;
    }

    async fn connection(self: Arc<Self>, stream: Stream, info: ConnInfo) {
        let config = &self.shared.config;
        let ip = info.peer.ip();
        let session = Pop3Session {
            inner: Session::new(
                SessionConfig {
                    hostname: config.server.hostname.clone(),
                    tls_available: true,
                    plaintext_auth_allowed: config.is_plaintext_allowed(ip),
                    max_auth_failures: MAX_AUTH_FAILURES,
                },
                stream.is_tls(),
            ),
            idle: config.limits.pop3_idle_timeout,
        };
        let handler = Conn {
            pop3: self.clone(),
            ip,
            maildrop: None,
        };
        let cfg = net::PumpConfig {
            acceptor: Some(self.shared.tls.acceptor()),
            session_timeout: None,
        };
        let end = pump::run(stream, session, handler, cfg, self.shared.stop.clone()).await;
        tracing::debug!(service = info.service, peer = %info.peer, ?end, "pop3 connection ended");
    }

    /// Locks an account's maildrop, or `None` when another session holds it.
    fn lock(&self, account: u64) -> Option<MaildropLock> {
        let mut set = self.locks.lock().ok()?;
        set.insert(account).then(|| MaildropLock {
            locks: self.locks.clone(),
            account,
        })
    }

    fn cached_size(&self, blob: &[u8; 32]) -> Option<u64> {
        self.sizes.lock().ok()?.get(blob).copied()
    }

    fn cache_size(&self, blob: [u8; 32], size: u64) {
        if let Ok(mut m) = self.sizes.lock() {
            if m.len() >= SIZE_CACHE_CAPACITY {
                m.clear();
            }
            m.insert(blob, size);
        }
    }
}

/// The exclusive-access lock on one account's maildrop (RFC 1939 §8).
struct MaildropLock {
    locks: Arc<Mutex<HashSet<u64>>>,
    account: u64,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        if let Ok(mut set) = self.locks.lock() {
            set.remove(&self.account);
        }
    }
}

/// The logged-in state of a connection.
struct Maildrop {
    _lock: MaildropLock,
    mailbox: u64,
    /// UIDs in message-number order.
    uids: Vec<u32>,
}

net::session_adapter!(Pop3Session, Session, Event, Decision);

/// One connection's policy state.
struct Conn {
    pop3: Arc<Pop3>,
    ip: IpAddr,
    maildrop: Option<Maildrop>,
}

impl net::Handler<Pop3Session> for Conn {
    async fn handle(&mut self, event: Event) -> Decision {
        match event {
            Event::Authenticate { credentials } => self.login(credentials).await,
            Event::Retrieve { index, .. } => self.retrieve(index).await,
            Event::Commit { deleted } => self.commit(deleted).await,
        }
    }
}

impl Conn {
    fn store(&self) -> &Store {
        &self.pop3.shared.store
    }

    async fn login(&mut self, credentials: Credentials) -> Decision {
        if self.maildrop.is_some() {
            return Decision::Unavailable;
        }
        let login = credentials.username.clone();
        let shared = &self.pop3.shared;
        // RFC 4616 §2: an authorization identity other than the login would be a proxy
        // login, which we do not offer.
        let account = if credentials.authzid.is_some() {
            Ok(None)
        } else {
            let login = login.clone();
            let domain = shared.config.primary_domain().to_string();
            let password = credentials.password;
            self.store()
                .call(move |s| auth::authenticate(s, &login, password.expose(), &domain))
                .await
        };
        let account = match account {
            Ok(Some(a)) => a,
            Ok(None) => {
                tracing::info!(peer = %self.ip, login = %login, "pop3 login failed");
                shared.failed_login_delay(self.ip, &login).await;
                return Decision::AuthFailed;
            }
            Err(e) => {
                tracing::warn!(error = %e, "pop3 login: store unavailable");
                return Decision::Unavailable;
            }
        };
        shared.limiter.success(&login);
        let Some(lock) = self.pop3.lock(account.id) else {
            return Decision::InUse;
        };
        let pop3 = self.pop3.clone();
        let snapshot = self
            .store()
            .call(move |s| snapshot(s, &pop3, account.id))
            .await;
        match snapshot {
            Ok((mailbox, entries)) => {
                let (uids, maildrop): (Vec<u32>, Vec<MaildropEntry>) = entries.into_iter().unzip();
                self.maildrop = Some(Maildrop {
                    _lock: lock,
                    mailbox,
                    uids,
                });
                Decision::LoggedIn { maildrop }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pop3 login: cannot read the INBOX");
                Decision::Unavailable
            }
        }
    }

    async fn retrieve(&mut self, index: usize) -> Decision {
        let Some((mailbox, uid)) = self
            .maildrop
            .as_ref()
            .and_then(|m| Some((m.mailbox, *m.uids.get(index)?)))
        else {
            return Decision::Unavailable;
        };
        let raw = self
            .store()
            .call(move |s| {
                s.read(|r| match r.message(mailbox, uid)? {
                    Some(row) => r.blob(&row.blob),
                    None => Ok(None),
                })
            })
            .await;
        match raw {
            Ok(Some(raw)) => Decision::Message(raw),
            Ok(None) => Decision::MessageGone,
            Err(e) => {
                tracing::warn!(error = %e, "pop3 retrieve: store unavailable");
                Decision::Unavailable
            }
        }
    }

    async fn commit(&mut self, deleted: Vec<usize>) -> Decision {
        // Taking the maildrop releases the lock when this returns, whatever the outcome.
        let Some(maildrop) = self.maildrop.take() else {
            return Decision::CommitFailed;
        };
        let uids: Vec<u32> = deleted
            .iter()
            .filter_map(|&i| maildrop.uids.get(i).copied())
            .collect();
        if uids.is_empty() {
            return Decision::Committed;
        }
        let mailbox = maildrop.mailbox;
        let done = self
            .store()
            .call(move |s| {
                s.write(Op::Expunge {
                    mailbox,
                    uids: Some(uids),
                })
            })
            .await;
        match done {
            Ok(_) => Decision::Committed,
            Err(e) => {
                tracing::warn!(error = %e, "pop3 QUIT: deletions not committed");
                Decision::CommitFailed
            }
        }
    }
}

/// The INBOX of `account` as a maildrop: its id and `(uid, entry)` in UID order.
fn snapshot(
    store: &Store,
    pop3: &Pop3,
    account: u64,
) -> store::Result<(u64, Vec<(u32, MaildropEntry)>)> {
    store.read(|r| {
        let mb = r
            .mailbox(account, "INBOX")?
            .ok_or_else(|| store::Error::NotFound(format!("INBOX of account {account}")))?;
        let mut out = Vec::new();
        for (uid, row) in r.messages(mb.id)? {
            let size = match pop3.cached_size(&row.blob) {
                Some(size) => size,
                None => match r.blob(&row.blob)? {
                    Some(raw) => {
                        let size = codec::message_size(&raw);
                        pop3.cache_size(row.blob, size);
                        size
                    }
                    None => row.size,
                },
            };
            out.push((
                uid,
                MaildropEntry {
                    uid: format!("{}.{}", mb.uidvalidity, uid),
                    size,
                },
            ));
        }
        Ok((mb.id, out))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MailboxSel, NewMessage, Target};

    fn shared(dir: &std::path::Path) -> Shared {
        let mut cfg = crate::config::Config::defaults();
        cfg.server.data_dir = dir.to_path_buf();
        Shared {
            store: Store::open(dir).unwrap(),
            tls: crate::tls::Tls::from_config(&cfg).unwrap(),
            config: Arc::new(cfg),
            limiter: Arc::new(auth::Limiter::default()),
            budget: crate::budget::Budget::new(64 << 20),
            stop: tokio_util::sync::CancellationToken::new(),
            spam_counts: Default::default(),
        }
    }

    #[test]
    fn maildrop_lock_is_exclusive_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let pop3 = Pop3::new(shared(d.path()));
        let a = pop3.lock(1).unwrap();
        assert!(
            pop3.lock(1).is_none(),
            "second session for the same account"
        );
        let b = pop3.lock(2).unwrap();
        drop(a);
        assert!(pop3.lock(1).is_some());
        drop(b);
        assert!(pop3.locks.lock().unwrap().is_empty());
    }

    #[test]
    fn snapshot_uses_stable_uidl_and_pop3_sizes() {
        let d = tempfile::tempdir().unwrap();
        let sh = shared(d.path());
        let id = match sh
            .store
            .write(Op::CreateAccount {
                address: "a@home.arpa".into(),
                password_hash: auth::hash_password("pw").unwrap(),
            })
            .unwrap()
        {
            store::Output::Id(id) => id,
            o => panic!("{o:?}"),
        };
        // Bare LF line endings: POP3 counts them as CRLF (RFC 1939 §11).
        let raw = b"Subject: x\n\nline\n".to_vec();
        sh.store
            .write(Op::Deliver {
                message: Arc::new(NewMessage::new(raw.clone())),
                targets: vec![Target {
                    account: id,
                    mailbox: MailboxSel::Inbox,
                }],
                flags: 0,
                keywords: vec![],
                internal_date: 0,
                delivered: true,
            })
            .unwrap();
        let pop3 = Pop3::new(sh.clone());
        let (mailbox, entries) = snapshot(&sh.store, &pop3, id).unwrap();
        let mb = sh.store.read(|r| r.mailbox(id, "INBOX")).unwrap().unwrap();
        assert_eq!(mailbox, mb.id);
        assert_eq!(entries.len(), 1);
        let (uid, e) = &entries[0];
        assert_eq!(e.uid, format!("{}.{uid}", mb.uidvalidity));
        assert!(codec::is_valid_uid(&e.uid));
        assert_eq!(e.size, raw.len() as u64 + 3);
        // The second snapshot comes from the cache and agrees.
        assert_eq!(snapshot(&sh.store, &pop3, id).unwrap().1, entries);
    }
}
