//! The SMTP tokio driver and the policy of the three listeners (SPEC §2, §5): it runs
//! [`Session`]s through [`net::pump`] and answers their [`Event`]s from the store.
//! The protocol (framing, state table, DATA/BDAT, SASL, caps) is the session's.
//!
//! - `smtp` ([`Mode::Mx`], port 25): RCPT only for the local domains (`[server] domains`):
//!   an address `Reader::resolve` does not know is `550 5.1.1`, any other domain
//!   `550 5.7.1` relay denied (RFC 5321 §3.6.2: no open relay). Every message is verified
//!   by [`crate::mail::verify`] (SPF RFC 7208, DKIM RFC 6376, ARC RFC 8617, DMARC RFC 7489)
//!   once its data is complete: all checks run after DATA/BDAT, none at MAIL FROM, because
//!   only the DMARC verdict (which needs the `From:` header) decides anything, and one
//!   round of lookups keeps the per-command latency flat. The results are written in an
//!   `Authentication-Results` field (RFC 8601) above `Received`, and forged ones naming
//!   our host are removed. DMARC `p=reject` failures get `550 5.7.1`, `p=quarantine`
//!   failures go to each recipient's Junk, and a DNS error that decides the outcome gets
//!   `451 4.7.24` (SPF, RFC 7372) or `451 4.7.0` (DKIM key, DMARC record, time limit).
//!   Submission is not verified: its sender is authenticated.
//! - `submission` ([`Mode::Submission`], 587 STARTTLS) and `submissions`
//!   ([`Mode::Submissions`], 465 implicit TLS, RFC 8314): the session requires AUTH
//!   (RFC 6409 §4.3); the envelope sender and every `From:` address must be the account's
//!   own address, one of its aliases (with or without `+detail`), or in a domain it holds
//!   the catch-all of, else `550 5.7.1`. Local recipients are delivered at once,
//!   the others go into the outbound queue (`Op::Enqueue`). `Message-ID` and `Date` are
//!   added when missing (RFC 6409 §8.2, §8.3).
//! - Every message gets a `Received:` header (RFC 5321 §4.4) with the client's HELO name
//!   and IP, the TLS version and cipher, the `with` keyword of RFC 3848, an id, and the
//!   date (RFC 5322 §3.3). Bare CR or LF line endings, which the session kept as data (they
//!   never end DATA), are normalised to CRLF before storing.
//! - The message is parsed and hashed on a blocking thread, then stored with ONE
//!   `Op::Deliver` naming each distinct local account once (its INBOX); `250` is sent only
//!   after that commit is durable (SPEC §5). Store full: `452 4.3.1`; any other store
//!   error: `451 4.3.0`. On submission with both local and remote recipients, the queue
//!   entry is a second commit made before the delivery (a failure there answers 451 and
//!   nothing was delivered locally).
//! - Failed AUTH is slowed by the shared failed-login limiter (per IP and per account).
//! - Timers: `[limits] smtp_idle_timeout` between reads, `session_timeout` for the whole
//!   connection (RFC 5321 §4.5.3.2).
//! - Spam checks (`crate::spam`, `[spam]`), on `smtp` only and only for clients outside
//!   `plaintext_networks` and `[spam] exempt_networks`: before the greeting, the DNS lists
//!   and iprev are looked up while the greeting waits `greet_delay` (a client that talks
//!   first, or a refusing blocklist, gets `554 5.7.1` and the connection closes); the
//!   session refuses pipelining after HELO; RCPT to a local account is greylisted
//!   (`451 4.7.1`); iprev goes into `Authentication-Results` and the score into
//!   `X-Spam-Connection`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::Reply;
use super::codes::*;
use super::session::{Decision, Envelope, Event, Mode, Session, SessionConfig};
use crate::auth;
use crate::mail::verify::{self, TempCause, Verdict, Verifier};
use crate::net::{self, Busy, ConnInfo, ConnLimits, Listener, Shared, Stream, pump};
use crate::sasl::Credentials;
use crate::spam::{self, counts::Kind, dnsbl::Lists, greylist};
use crate::store::{self, MailboxSel, NewMessage, Op, Store, Target};

/// The line for connections over the caps.
pub fn busy(hostname: &str) -> Busy {
    Busy(Session::busy_reply(hostname))
}

/// SMTP state shared by every connection of the three listeners.
pub struct Smtp {
    shared: Shared,
    /// Sender verification for the MX listener, with its resolver and DNS cache.
    verifier: Verifier,
    /// DNS lists and iprev for the MX listener (`crate::spam`).
    lists: Lists,
}

impl Smtp {
    /// The SMTP service over the daemon's shared state.
    pub fn new(shared: Shared) -> Arc<Smtp> {
        let verifier = Verifier::new(&shared.config.server.hostname, &shared.config.dns);
        let lists = Lists::new(&shared.config.dns);
        Arc::new(Smtp {
            shared,
            verifier,
            lists,
        })
    }

    /// Accepts on `listener`, serving `mode`, until shutdown.
    pub async fn serve(
        self: Arc<Self>,
        listener: Listener,
        mode: Mode,
        limits: Arc<ConnLimits>,
        tracker: TaskTracker,
    ) {
        let stop = self.shared.stop.clone();
        listener
            .serve(limits, stop, tracker, move |stream, info| {
                self.clone().connection(stream, info, mode)
            })
            .await;
    }

    async fn connection(self: Arc<Self>, mut stream: Stream, info: ConnInfo, mode: Mode) {
        let config = &self.shared.config;
        let limits = &config.limits;
        let ip = info.peer.ip();
        let checked = mode == Mode::Mx && spam::is_checked(config, ip);
        let report = if checked {
            match self.screen(&mut stream, ip).await {
                Some(report) => report,
                None => return,
            }
        } else {
            spam::Report::default()
        };
        let mut scfg = SessionConfig::new(config.server.hostname.clone(), mode);
        scfg.max_message_size = limits.max_message_size;
        scfg.max_recipients = limits.max_recipients as usize;
        scfg.max_line = limits.max_line_length;
        scfg.budget = Some(self.shared.budget.clone());
        scfg.tls_available = true;
        scfg.plaintext_auth_allowed = config.is_plaintext_allowed(ip);
        scfg.refuse_unadvertised_pipelining = checked && config.spam.early_talkers;
        let session = SmtpSession {
            inner: Session::new(scfg, stream.is_tls()),
            idle: limits.smtp_idle_timeout,
        };
        let handler = Conn {
            smtp: self.clone(),
            mode,
            peer: info.peer,
            tls: stream.tls_description(),
            account: None,
            spam: SpamState {
                checked,
                report,
                sender: String::new(),
                wrote_to: Vec::new(),
            },
        };
        let cfg = net::PumpConfig {
            acceptor: Some(self.shared.tls.acceptor()),
            session_timeout: Some(limits.session_timeout),
        };
        let end = pump::run(stream, session, handler, cfg, self.shared.stop.clone()).await;
        tracing::debug!(service = info.service, peer = %info.peer, ?end, "smtp connection ended");
    }
}

impl Smtp {
    /// The checks before the greeting (`crate::spam`): DNS lists and iprev, while waiting
    /// `greet_delay` for a client that talks first. `None` when the connection was refused
    /// (or the client left).
    async fn screen(&self, stream: &mut Stream, ip: IpAddr) -> Option<spam::Report> {
        use tokio::io::AsyncWriteExt;
        let config = &self.shared.config;
        let early = async {
            if !config.spam.early_talkers {
                return Ok(false);
            }
            let Stream::Plain(tcp) = &*stream else {
                return Ok(false);
            };
            let mut byte = [0u8; 1];
            match tokio::time::timeout(config.spam.greet_delay, tcp.peek(&mut byte)).await {
                Err(_) => Ok(false),
                Ok(Ok(0)) | Ok(Err(_)) => Err(()),
                Ok(Ok(_)) => Ok(true),
            }
        };
        let (early, lists) = tokio::join!(early, self.lists.check(&config.spam, ip));
        let now = store::now_unix();
        let host = &config.server.hostname;
        let refusal = match (early, lists) {
            (Err(()), _) => return None,
            (Ok(true), _) => {
                tracing::info!(%ip, "spam: refused, talked before the greeting");
                self.shared.spam_counts.add(Kind::RefusedEarlyTalk, now);
                Reply::new(
                    C554_TRANSACTION_FAILED,
                    SE_SEC_NOT_AUTHORIZED,
                    format!(
                        "{host} Refused: you talked before the greeting (RFC 5321 section 4.3.1)"
                    ),
                )
            }
            (Ok(false), Err(r)) => {
                tracing::info!(%ip, zone = %r.zone, reason = %r.reason, "spam: refused, DNS blocklist");
                self.shared.spam_counts.add(Kind::RefusedDnsbl, now);
                Reply::new(
                    C554_TRANSACTION_FAILED,
                    SE_SEC_NOT_AUTHORIZED,
                    format!(
                        "{host} Refused: {} is listed by {}: {}",
                        ip.to_canonical(),
                        r.zone,
                        r.reason
                    ),
                )
            }
            (Ok(false), Ok(report)) => {
                tracing::debug!(%ip, score = report.score(), "spam: connection checks passed");
                return Some(report);
            }
        };
        let bytes = refusal.to_bytes();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.write_all(&bytes)).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.shutdown()).await;
        None
    }
}

net::session_adapter!(SmtpSession, Session, Event, Decision);

/// What the spam checks know about one connection.
struct SpamState {
    /// Port 25 and a client outside the exempt networks.
    checked: bool,
    /// The connection checks' findings.
    report: spam::Report,
    /// The envelope sender of the current transaction.
    sender: String,
    /// Triples let through at RCPT because the recipient wrote to the sender's domain:
    /// (triple key, that domain); DMARC must pass for it at the end of DATA.
    wrote_to: Vec<(String, String)>,
}

/// The authenticated account of a submission connection.
#[derive(Debug, Clone)]
struct Account {
    /// Its store id.
    id: u64,
    /// Every address (normalised) the account owns, `@domain` for catch-alls.
    addresses: Vec<String>,
}

/// One connection's policy state.
struct Conn {
    smtp: Arc<Smtp>,
    mode: Mode,
    peer: SocketAddr,
    /// TLS version and cipher, when TLS is active.
    tls: Option<String>,
    account: Option<Account>,
    spam: SpamState,
}

impl net::Handler<SmtpSession> for Conn {
    async fn handle(&mut self, event: Event) -> Decision {
        match event {
            // RFC 5321 §4.1.4: the HELO name is not verified (§4.1.1.1 forbids refusing
            // on a mismatch); it is recorded in `Received`.
            Event::Helo { .. } => Decision::Accept,
            Event::Auth { credentials, .. } => self.auth(credentials).await,
            Event::MailFrom { address, .. } => self.mail_from(address).await,
            Event::RcptTo { address, size } => self.rcpt_to(address, size).await,
            Event::Message {
                envelope,
                data,
                bare_line_endings,
            } => self.message(envelope, data, bare_line_endings).await,
            Event::Pipelined { verb } => {
                tracing::info!(peer = %self.peer.ip(), %verb, "spam: refused, pipelining after HELO");
                let now = store::now_unix();
                self.smtp
                    .shared
                    .spam_counts
                    .add(Kind::RefusedEarlyTalk, now);
                Decision::Accept
            }
        }
    }

    fn tls_established(&mut self, stream: &Stream) {
        // RFC 3207 §4.2: everything learnt before TLS is forgotten, AUTH included.
        self.tls = stream.tls_description();
        self.account = None;
    }
}

impl Conn {
    fn store(&self) -> &Store {
        &self.smtp.shared.store
    }

    /// RFC 4954 §4: AUTH after the SASL exchange.
    async fn auth(&mut self, credentials: Credentials) -> Decision {
        let shared = &self.smtp.shared;
        let login = credentials.username.clone();
        let result = if credentials.authzid.is_some() {
            // No proxy logins (RFC 4616 §2 authorization identity).
            Ok(None)
        } else {
            let login = login.clone();
            let domain = shared.config.primary_domain().to_string();
            let password = credentials.password;
            self.store()
                .call(move |s| {
                    let Some(a) = auth::authenticate(s, &login, password.expose(), &domain)? else {
                        return Ok(None);
                    };
                    let addresses = s.read(|r| r.addresses_of(a.id))?;
                    Ok(Some((a, addresses)))
                })
                .await
        };
        match result {
            Ok(Some((account, addresses))) => {
                shared.limiter.success(&login);
                self.account = Some(Account {
                    id: account.id,
                    addresses,
                });
                Decision::AuthOk {
                    account: account.address,
                }
            }
            Ok(None) => {
                tracing::info!(peer = %self.peer.ip(), login = %login, "smtp AUTH failed");
                shared.failed_login_delay(self.peer.ip(), &login).await;
                Decision::Reject(Reply::auth_failed())
            }
            Err(e) => {
                tracing::warn!(error = %e, "smtp AUTH: store unavailable");
                Decision::Reject(Reply::new(
                    C454_TEMP_AUTH_FAILURE,
                    SE_SEC_OTHER,
                    "Temporary authentication failure",
                ))
            }
        }
    }

    /// RFC 5321 §4.1.1.2. On submission the sender must be the account's own (SPEC §5).
    async fn mail_from(&mut self, address: String) -> Decision {
        self.spam.sender = address.clone();
        self.spam.wrote_to.clear();
        if !self.mode.is_submission() {
            return Decision::Accept;
        }
        let Some(account) = &self.account else {
            // The session asks for AUTH first; this is only reached if that changes.
            return Decision::Reject(Reply::new(
                C530_SECURITY_REQUIRED,
                SE_SEC_OTHER,
                "Authentication required",
            ));
        };
        if owns(&account.addresses, &address) {
            Decision::Accept
        } else {
            Decision::Reject(not_yours("Sender address"))
        }
    }

    /// RFC 5321 §4.1.1.3: local recipients must exist; other domains only on submission.
    /// A local recipient whose quota cannot take the declared SIZE (RFC 1870), or is full
    /// already when no SIZE was given, gets `452 4.2.2` here, so the sender retries only
    /// that recipient (RFC 3463 §3.3 X.2.2; the store checks again at the end of DATA).
    async fn rcpt_to(&mut self, address: String, size: Option<u64>) -> Decision {
        let config = self.smtp.shared.config.clone();
        match self.recipient(&config, &address).await {
            Ok(Recipient::Local(account)) => {
                let room = self
                    .store()
                    .call(move |s| {
                        let quota = s.read(|r| r.quota_setting(account))?;
                        let quota = quota.effective(s.default_quota());
                        let usage = s.read(|r| r.usage(account))?;
                        Ok(quota.allows(usage, size.unwrap_or(0), 1))
                    })
                    .await;
                match room {
                    Ok(false) => Decision::Reject(over_quota()),
                    _ => self.greylist(account, &address).await,
                }
            }
            Ok(Recipient::Remote(_)) if self.mode.is_submission() => Decision::Accept,
            Ok(Recipient::Remote(_)) => Decision::Reject(Reply::relay_denied()),
            Ok(Recipient::Unknown) => Decision::Reject(Reply::unknown_user()),
            Ok(Recipient::Invalid) => Decision::Reject(Reply::new(
                C501_BAD_PARAM_SYNTAX,
                SE_ADDR_BAD_DEST_SYNTAX,
                "Bad recipient address syntax",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "smtp RCPT: store unavailable");
                Decision::Reject(Reply::temporary_failure())
            }
        }
    }

    /// Greylisting of one accepted local recipient (`crate::spam::greylist`). A store
    /// error lets the recipient through (greylisting only delays; it must not lose mail).
    async fn greylist(&mut self, account: u64, rcpt: &str) -> Decision {
        let config = self.smtp.shared.config.clone();
        let cfg = &config.spam;
        if !self.spam.checked || !cfg.greylist {
            return Decision::Accept;
        }
        let network = spam::network_of(self.peer.ip());
        let triple = spam::triple_key(&network, &self.spam.sender, rcpt);
        let domain = spam::domain_of(&self.spam.sender);
        let (n, t, d) = (network.clone(), triple.clone(), domain.clone());
        let known = self
            .store()
            .call(move |s| s.read(|r| r.greylist_known(&n, &t, account, d.as_deref())))
            .await;
        let known = match known {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "greylist: store unavailable; not greylisting");
                return Decision::Accept;
            }
        };
        let now = store::now_unix();
        let scale = cfg.time_scale;
        let delay = scale.apply(cfg.greylist_delay);
        let decision = greylist::decide(
            known,
            self.spam.report.allowlisted(),
            now,
            delay,
            scale.apply(cfg.greylist_remember),
            scale.apply(greylist::RETRY_WINDOW),
        );
        tracing::debug!(peer = %self.peer.ip(), %triple, ?decision, "greylist");
        let update = match decision {
            greylist::Decision::KnownNetwork => Some(store::greylist::Update::Renew { network }),
            greylist::Decision::Allowlisted => None,
            greylist::Decision::WroteTo => {
                if let Some(d) = domain {
                    self.spam.wrote_to.push((triple, d));
                }
                None
            }
            greylist::Decision::Passed => {
                self.smtp.shared.spam_counts.add(Kind::PassedGreylist, now);
                Some(store::greylist::Update::Passed { network, triple })
            }
            greylist::Decision::Defer { new } => {
                self.smtp.shared.spam_counts.add(Kind::Greylisted, now);
                new.then_some(store::greylist::Update::Deferred { triple })
            }
        };
        if let Some(update) = update {
            self.greylist_write(update, now).await;
        }
        if decision.accepts() {
            Decision::Accept
        } else {
            Decision::Reject(greylisted(delay))
        }
    }

    /// Applies one greylist change (lazy: it does not wait for an fsync).
    async fn greylist_write(&self, update: store::greylist::Update, now: i64) {
        let cfg = &self.smtp.shared.config.spam;
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let scale = cfg.time_scale;
        let limits = store::greylist::Limits {
            max_entries: cfg.greylist_max_entries,
            triple_ttl: secs(scale.apply(cfg.greylist_delay + greylist::RETRY_WINDOW)),
            network_ttl: secs(scale.apply(cfg.greylist_remember)),
        };
        let op = Op::Greylist {
            update,
            limits,
            now,
        };
        if let Err(e) = self.store().call(move |s| s.write(op)).await {
            tracing::warn!(error = %e, "greylist: state not stored");
        }
    }

    /// Classifies a recipient: a local account, a remote address, or neither.
    async fn recipient(
        &self,
        config: &crate::config::Config,
        address: &str,
    ) -> store::Result<Recipient> {
        // RFC 5321 §4.5.1: "Postmaster" without a domain must be accepted.
        let address = if address.eq_ignore_ascii_case("postmaster") {
            format!("postmaster@{}", config.primary_domain())
        } else {
            address.to_string()
        };
        let Ok(norm) = store::normalize_address(&address) else {
            return Ok(Recipient::Invalid);
        };
        let Some((local, domain)) = store::split_address(&norm) else {
            return Ok(Recipient::Invalid);
        };
        if local.is_empty() {
            return Ok(Recipient::Invalid);
        }
        if !config.is_local_domain(domain) {
            return Ok(Recipient::Remote(address));
        }
        let found = self
            .store()
            .call(move |s| s.read(|r| r.resolve(&norm)))
            .await?;
        Ok(match found {
            Some(account) => Recipient::Local(account),
            None => Recipient::Unknown,
        })
    }

    /// DATA/BDAT complete: add our headers, check `From:` on submission, store, then 250.
    async fn message(
        &mut self,
        envelope: Envelope,
        data: Vec<u8>,
        bare_line_endings: bool,
    ) -> Decision {
        let shared = &self.smtp.shared;
        let config = shared.config.clone();
        let mut local: Vec<u64> = Vec::new();
        let mut remote: Vec<String> = Vec::new();
        for rcpt in &envelope.rcpt_to {
            match self.recipient(&config, rcpt).await {
                Ok(Recipient::Local(id)) => {
                    if !local.contains(&id) {
                        local.push(id);
                    }
                }
                Ok(Recipient::Remote(a)) if self.mode.is_submission() => remote.push(a),
                // Accepted at RCPT but gone since (alias removed): nothing to deliver to.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "smtp DATA: store unavailable");
                    return Decision::Reject(Reply::temporary_failure());
                }
            }
        }
        if local.is_empty() && remote.is_empty() {
            return Decision::Reject(Reply::temporary_failure());
        }
        let mut data = if bare_line_endings {
            normalize_line_endings(&data)
        } else {
            data
        };
        let mut mailbox = MailboxSel::Inbox;
        let mut auth_results = String::new();
        let mut spam_header = String::new();
        if self.mode == Mode::Mx {
            let iprev = match &self.spam.report.iprev {
                Some(i) if self.spam.checked => i.resinfo(self.peer.ip()),
                _ => String::new(),
            };
            let verifier = &self.smtp.verifier;
            let outcome = verifier
                .verify(&verify::Input {
                    extra: &iprev,
                    ip: self.peer.ip().to_canonical(),
                    helo: &envelope.helo,
                    mail_from: &envelope.mail_from,
                    message: &data,
                })
                .await;
            tracing::info!(
                peer = %self.peer.ip(),
                from = %envelope.mail_from,
                verdict = ?outcome.verdict,
                "verified: {}",
                outcome.summary
            );
            match outcome.verdict {
                Verdict::Deliver => {}
                Verdict::Junk { .. } => mailbox = MailboxSel::Junk,
                Verdict::Reject { domain } => return Decision::Reject(dmarc_reject(&domain)),
                Verdict::Defer(cause) => return Decision::Reject(verify_deferred(cause)),
            }
            // Recipients let through because they wrote to the sender's domain: only if
            // DMARC passed for that domain; otherwise greylisted now (crate::spam::greylist).
            let pending = std::mem::take(&mut self.spam.wrote_to);
            if pending
                .iter()
                .any(|(_, d)| outcome.dmarc_pass.as_deref() != Some(d.as_str()))
            {
                let now = store::now_unix();
                for (triple, _) in pending {
                    self.smtp.shared.spam_counts.add(Kind::Greylisted, now);
                    self.greylist_write(store::greylist::Update::Deferred { triple }, now)
                        .await;
                }
                let cfg = &config.spam;
                return Decision::Reject(greylisted(cfg.time_scale.apply(cfg.greylist_delay)));
            }
            if self.spam.checked {
                spam_header = self.spam.report.header();
            }
            auth_results = outcome.header;
            if let Some(stripped) = verify::strip_forged(&data, verifier.hostname()) {
                data = stripped;
            }
        }
        let now = store::now_unix();
        let date = rfc5322_date(now);
        let id = random_id();
        let mut head = received(
            &envelope,
            self.peer.ip(),
            &config.server.hostname,
            self.tls.as_deref(),
            &id,
            &date,
        );
        if self.mode.is_submission() {
            let Some(account) = &self.account else {
                return Decision::Reject(Reply::temporary_failure());
            };
            if !from_header_owned(&data, &account.addresses) {
                return Decision::Reject(not_yours("From: header address"));
            }
            let names = header_names(&data);
            // RFC 6409 §8.3 (Date) and §8.2 (Message-ID): the MSA may add them.
            if !names.iter().any(|n| n == "date") {
                head.push_str(&format!("Date: {date}\r\n"));
            }
            if !names.iter().any(|n| n == "message-id") {
                head.push_str(&format!(
                    "Message-ID: <{id}.{}@{}>\r\n",
                    random_id(),
                    config.server.hostname
                ));
            }
        }
        let mut raw =
            Vec::with_capacity(spam_header.len() + auth_results.len() + head.len() + data.len());
        raw.extend_from_slice(spam_header.as_bytes());
        // RFC 8601 §4: Authentication-Results goes above the trace fields of its hop.
        raw.extend_from_slice(auth_results.as_bytes());
        raw.extend_from_slice(head.as_bytes());
        raw.extend_from_slice(&data);
        drop(data);
        let message = match tokio::task::spawn_blocking(move || NewMessage::new(raw)).await {
            Ok(m) => Arc::new(m),
            Err(_) => return Decision::Reject(Reply::temporary_failure()),
        };
        // The learning junk filter (src/spam/learn.rs): mail from outside only, each
        // recipient by their own statistics.
        let mut filtered = None;
        if self.mode == Mode::Mx
            && config.spam_filter.enabled
            && mailbox == MailboxSel::Inbox
            && !local.is_empty()
        {
            let (cfg, accounts, m) = (config.spam_filter.clone(), local.clone(), message.clone());
            match self
                .store()
                .call(move |s| crate::spam::learn::filter(s, &cfg, &accounts, &m))
                .await
            {
                // Refused only when every recipient's filter says so (RFC 3463 §3.8).
                Ok(f) if f.iter().all(|f| f.verdict.reject) => {
                    tracing::info!(id = %id, peer = %self.peer.ip(), "refused as spam");
                    self.smtp.shared.spam_counts.add(Kind::RefusedSpam, now);
                    return Decision::Reject(Reply::new(
                        C550_MAILBOX_UNAVAILABLE,
                        SE_SEC_NOT_AUTHORIZED,
                        "Message refused: it looks like spam to the recipient's filter",
                    ));
                }
                Ok(f) => filtered = Some(f),
                Err(e) => return store_error(&e),
            }
        }
        let junked = filtered
            .as_ref()
            .map_or(0, |f| f.iter().filter(|f| f.verdict.junk).count());
        if self.mode.is_submission()
            && config.spam_filter.enabled
            && let Some(account) = &self.account
        {
            // Sender reputation: whom the person writes to (lazy, never waited for).
            let keys = crate::spam::learn::sent_keys(&envelope.rcpt_to);
            let op = Op::SpamSent {
                account: account.id,
                keys,
                now,
            };
            let store = self.store().clone();
            tokio::spawn(async move {
                if let Err(e) = store.call(move |s| s.write(op)).await {
                    tracing::debug!(error = %e, "spam filter: reputation not recorded");
                }
            });
        }
        let queued = remote.len();
        // The domains this account writes to: their DMARC-passing senders skip greylisting.
        let sent_to = match &self.account {
            Some(a) if !remote.is_empty() => {
                let mut domains: Vec<String> =
                    remote.iter().filter_map(|r| spam::domain_of(r)).collect();
                domains.sort_unstable();
                domains.dedup();
                Some(store::greylist::Update::SentTo {
                    account: a.id,
                    domains,
                })
            }
            _ => None,
        };
        if !remote.is_empty() {
            let op = Op::Enqueue {
                message: message.clone(),
                mail_from: envelope.mail_from.clone(),
                rcpts: remote,
                now,
            };
            if let Err(e) = self.store().call(move |s| s.write(op)).await {
                return store_error(&e);
            }
            if let Some(update) = sent_to {
                self.greylist_write(update, now).await;
            }
        }
        if let Some(filtered) = filtered {
            let op = Op::DeliverEach {
                items: filtered
                    .into_iter()
                    .map(|f| {
                        let mailbox = if f.verdict.junk {
                            MailboxSel::Junk
                        } else {
                            MailboxSel::Inbox
                        };
                        (
                            f.message,
                            Target {
                                account: f.account,
                                mailbox,
                            },
                        )
                    })
                    .collect(),
                internal_date: now,
                delivered: true,
            };
            if let Err(e) = self.store().call(move |s| s.write(op)).await {
                return store_error(&e);
            }
        } else if !local.is_empty() {
            let op = Op::Deliver {
                message,
                targets: local
                    .iter()
                    .map(|&account| Target {
                        account,
                        mailbox: mailbox.clone(),
                    })
                    .collect(),
                flags: 0,
                keywords: Vec::new(),
                internal_date: now,
                delivered: true,
            };
            if let Err(e) = self.store().call(move |s| s.write(op)).await {
                return store_error(&e);
            }
        }
        tracing::info!(
            id = %id,
            peer = %self.peer.ip(),
            from = %envelope.mail_from,
            local = local.len(),
            queued,
            junk = matches!(mailbox, MailboxSel::Junk),
            spam_junked = junked,
            "message accepted"
        );
        for _ in 0..junked {
            self.smtp.shared.spam_counts.add(Kind::Junked, now);
        }
        Decision::Accept
    }
}

/// What a recipient address is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recipient {
    /// An account of ours.
    Local(u64),
    /// In a local domain, but nobody has it.
    Unknown,
    /// Another domain.
    Remote(String),
    /// Not an address.
    Invalid,
}

/// The answer to a failed store write (SPEC §5: nothing acknowledged unless durable).
fn store_error(e: &store::Error) -> Decision {
    tracing::warn!(error = %e, "smtp: message not stored");
    Decision::Reject(match e {
        // RFC 3463 §3.4 X.3.1 mail system full.
        store::Error::Full => Reply::new(
            C452_STORAGE_FULL,
            SE_SYS_FULL,
            "Insufficient system storage, try again later",
        ),
        store::Error::OverQuota => over_quota(),
        _ => Reply::temporary_failure(),
    })
}

/// `452 4.2.2`: a recipient's mailbox is full (RFC 3463 §3.3; temporary, as Postfix and
/// Dovecot answer it, so the sender retries while the person makes room).
fn over_quota() -> Reply {
    Reply::new(
        C452_STORAGE_FULL,
        SE_MAILBOX_FULL,
        "Mailbox full (over quota), try again later",
    )
}

/// `451 4.7.1`: greylisted (the client should retry after `delay`).
fn greylisted(delay: std::time::Duration) -> Reply {
    Reply::new(
        C451_LOCAL_ERROR,
        SE_SEC_NOT_AUTHORIZED,
        format!(
            "Greylisted, please try again in {} seconds",
            delay.as_secs().max(1)
        ),
    )
}

/// `550 5.7.1`: DMARC failure under `p=reject` (RFC 7489 §6.6.2, §10.1: reject during the
/// SMTP transaction, not by bounce).
fn dmarc_reject(domain: &str) -> Reply {
    Reply::new(
        C550_MAILBOX_UNAVAILABLE,
        SE_SEC_NOT_AUTHORIZED,
        format!(
            "Message refused: it fails the DMARC policy (p=reject) of {}",
            header_word(domain)
        ),
    )
}

/// `451 4.7.x`: verification could not reach a verdict (a DNS error that decides it).
fn verify_deferred(cause: TempCause) -> Reply {
    let enhanced = match cause {
        TempCause::Spf => SE_SEC_SPF_ERROR,
        _ => SE_SEC_OTHER,
    };
    Reply::new(
        C451_LOCAL_ERROR,
        enhanced,
        format!("Try again later: {}", cause.describe()),
    )
}

/// `550 5.7.1`: an address the account may not send as (RFC 3463 §3.8).
fn not_yours(what: &str) -> Reply {
    Reply::new(
        C550_MAILBOX_UNAVAILABLE,
        SE_SEC_NOT_AUTHORIZED,
        format!("{what} is not one of the addresses of the authenticated account"),
    )
}

/// Whether `addresses` (an account's, normalised) cover `sender`: exactly, without a
/// `+detail`, or through a catch-all `@domain` of the account. The null sender is no one's.
fn owns(addresses: &[String], sender: &str) -> bool {
    let Ok(norm) = store::normalize_address(sender) else {
        return false;
    };
    let Some((local, domain)) = store::split_address(&norm) else {
        return false;
    };
    let base = local
        .split_once('+')
        .map(|(b, _)| b)
        .filter(|b| !b.is_empty())
        .map(|b| format!("{b}@{domain}"));
    let catch_all = format!("@{domain}");
    addresses
        .iter()
        .any(|a| *a == norm || *a == catch_all || Some(a) == base.as_ref())
}

/// Whether every address in the `From:` header is the account's; false without one
/// (RFC 5322 §3.6: From is required).
fn from_header_owned(data: &[u8], addresses: &[String]) -> bool {
    let Some(msg) = mail_parser::MessageParser::default().parse_headers(data) else {
        return false;
    };
    let Some(from) = msg.from() else {
        return false;
    };
    let mut any = false;
    for addr in from.iter() {
        match addr.address.as_deref() {
            Some(a) if owns(addresses, a) => any = true,
            _ => return false,
        }
    }
    any
}

/// The lowercase names of the header fields of `data` (RFC 5322 §2.2), up to the blank
/// line; continuation lines are skipped.
fn header_names(data: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        if let Some(i) = line.iter().position(|&b| b == b':') {
            let name = line.get(..i).unwrap_or_default();
            names.push(String::from_utf8_lossy(name).trim().to_ascii_lowercase());
        }
    }
    names
}

/// Rewrites bare LF and bare CR as CRLF (Postfix `smtpd_forbid_bare_newline = normalize`).
/// Safe after DATA: the session already ended the message at the only valid end marker.
fn normalize_line_endings(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64);
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        match b {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// Keeps a client-supplied word safe inside a header: printable ASCII (or UTF-8 text,
/// RFC 6532) without spaces, parentheses, angle brackets or semicolons.
fn header_word(s: &str) -> String {
    let w: String = s
        .chars()
        .take(255)
        .map(|c| {
            if c.is_control() || c.is_whitespace() || "()<>;\\\"".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    if w.is_empty() { "unknown".into() } else { w }
}

/// The `Received:` header (RFC 5321 §4.4 Time-stamp-line):
/// `from <helo> ([ip]) (TLS) by <host> (Letterbox) with <protocol> id <id> [for <rcpt>]; date`.
/// `with` comes from RFC 3848 via [`Envelope::protocol`]; `for` is given only for a single
/// recipient, so Bcc recipients are not revealed to each other.
fn received(
    env: &Envelope,
    ip: IpAddr,
    hostname: &str,
    tls: Option<&str>,
    id: &str,
    date: &str,
) -> String {
    let mut h = format!(
        "Received: from {} ([{}])\r\n",
        header_word(&env.helo),
        ip.to_canonical()
    );
    if let Some(tls) = tls {
        h.push_str(&format!("\t(using {})\r\n", header_word_spaces(tls)));
    }
    h.push_str(&format!(
        "\tby {hostname} (Letterbox) with {} id {id}",
        env.protocol()
    ));
    if let [rcpt] = env.rcpt_to.as_slice() {
        h.push_str(&format!("\r\n\tfor <{}>", header_word(rcpt)));
    }
    h.push_str(&format!(";\r\n\t{date}\r\n"));
    h
}

/// Like [`header_word`] but keeps single spaces (our own TLS description).
fn header_word_spaces(s: &str) -> String {
    s.split(' ').map(header_word).collect::<Vec<_>>().join(" ")
}

/// RFC 5322 §3.3 date-time, in UTC.
fn rfc5322_date(unix: i64) -> String {
    mail_parser::DateTime::from_timestamp(unix).to_rfc822()
}

/// 16 random hex digits: the `Received` id and the left part of generated Message-IDs.
fn random_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().r#gen::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::Body;

    fn env(rcpts: &[&str]) -> Envelope {
        Envelope {
            helo: "client.example".into(),
            esmtp: true,
            mail_from: "a@home.arpa".into(),
            rcpt_to: rcpts.iter().map(|s| s.to_string()).collect(),
            auth: Some("a@home.arpa".into()),
            tls: true,
            body: Body::SevenBit,
            smtputf8: false,
            declared_size: None,
            chunked: false,
        }
    }

    #[test]
    fn received_header_has_the_rfc_5321_clauses() {
        let h = received(
            &env(&["b@home.arpa"]),
            "::ffff:192.0.2.7".parse().unwrap(),
            "mx.home.arpa",
            Some("TLSv1_3 with cipher TLS13_AES_128_GCM_SHA256"),
            "0123456789abcdef",
            "Mon, 1 Jan 2024 00:00:00 +0000",
        );
        assert_eq!(
            h,
            "Received: from client.example ([192.0.2.7])\r\n\
             \t(using TLSv1_3 with cipher TLS13_AES_128_GCM_SHA256)\r\n\
             \tby mx.home.arpa (Letterbox) with ESMTPSA id 0123456789abcdef\r\n\
             \tfor <b@home.arpa>;\r\n\
             \tMon, 1 Jan 2024 00:00:00 +0000\r\n"
        );
        // Several recipients are not listed; a hostile HELO cannot break the header.
        let mut e = env(&["b@home.arpa", "c@home.arpa"]);
        e.helo = "evil\r\nX-Injected: 1 (x)".into();
        let h = received(&e, "192.0.2.7".parse().unwrap(), "h", None, "1", "d");
        assert!(!h.contains("for <"), "{h}");
        assert!(!h.contains("\r\nX-Injected"), "{h}");
        assert_eq!(h.matches("\r\n").count(), 3, "{h}");
    }

    #[test]
    fn sender_ownership() {
        let addrs = vec!["alice@home.arpa".to_string(), "@family.example".to_string()];
        assert!(owns(&addrs, "alice@home.arpa"));
        assert!(owns(&addrs, "Alice@HOME.arpa"));
        assert!(owns(&addrs, "alice+lists@home.arpa"));
        assert!(owns(&addrs, "anyone@family.example"));
        assert!(!owns(&addrs, "bob@home.arpa"));
        assert!(!owns(&addrs, "+x@home.arpa"));
        assert!(!owns(&addrs, ""));
        assert!(!owns(&addrs, "alice@home.arpa.evil"));
    }

    #[test]
    fn from_header_alignment() {
        let addrs = vec!["alice@home.arpa".to_string()];
        let ok = b"From: Alice <alice@home.arpa>\r\nSubject: x\r\n\r\nbody\r\n";
        assert!(from_header_owned(ok, &addrs));
        let other = b"From: Bob <bob@home.arpa>\r\n\r\nbody\r\n";
        assert!(!from_header_owned(other, &addrs));
        let mixed = b"From: alice@home.arpa, bob@home.arpa\r\n\r\n";
        assert!(!from_header_owned(mixed, &addrs));
        let none = b"Subject: no from\r\n\r\nbody\r\n";
        assert!(!from_header_owned(none, &addrs));
        // A From: line in the body is not the header.
        let body = b"Subject: x\r\n\r\nFrom: alice@home.arpa\r\n";
        assert!(!from_header_owned(body, &addrs));
    }

    #[test]
    fn header_names_stop_at_the_body() {
        let data = b"Subject: x\r\n folded: no\r\nDATE: y\r\n\r\nMessage-ID: <body>\r\n";
        assert_eq!(header_names(data), vec!["subject", "date"]);
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        assert_eq!(
            normalize_line_endings(b"a\nb\rc\r\nd\r"),
            b"a\r\nb\r\nc\r\nd\r\n".to_vec()
        );
        assert_eq!(normalize_line_endings(b"\r\r\n"), b"\r\n\r\n".to_vec());
    }

    #[test]
    fn dates_are_rfc_5322() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(random_id().len(), 16);
    }
}
