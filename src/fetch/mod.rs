//! `[[fetch]]`: pulling mail from remote IMAPS accounts into local ones (issue 15 part 4).
//! One task per entry, on the daemon's tracker:
//!
//! - A pass logs in (client.rs), and for each folder SELECTs it, asks for the UIDs above the
//!   mark kept in the store (`store::fetched`), fetches their sizes, then their bodies in
//!   batches of bounded bytes, in ascending UID order. A message larger than `[limits]
//!   max_message_size` is not fetched: it is recorded as skipped (log, status) and stays on
//!   the remote whatever `remote_action` says.
//! - Each message is verified like mail arriving on port 25 (`mail::verify`: SPF, DKIM, ARC,
//!   DMARC, one `Authentication-Results`). The connecting IP and HELO for SPF come from the
//!   remote's topmost `Received:` field that has a `from` clause with an address literal
//!   ([`first_hop`]): that field is written by the remote's own MX when it accepted the
//!   message. Without one, SPF is `none` and DMARC rests on DKIM. DMARC quarantine goes to
//!   Junk; DMARC reject ALSO goes to Junk (the remote accepted the message already, and
//!   dropping it would lose mail); a DNS failure that decides the verdict stops the pass
//!   there, to be retried.
//! - A batch is stored with ONE `Op::Pull`: the messages and the new mark in the same commit,
//!   so a kill at any point never fetches a message twice or loses one.
//! - Only then does `remote_action` act, on every UID at or below the mark (except skipped
//!   ones): so an action interrupted by a kill is completed by the next pass.
//! - With one folder and a remote that offers IDLE, the session then IDLEs for at most
//!   [`IDLE_MAX`] (RFC 2177 §3 asks clients to re-issue IDLE within 29 minutes) and passes
//!   again when the remote reports a change; otherwise it logs out and comes back after
//!   `interval`. Failures are retried after [`retry_delay`] (30 s, doubling up to
//!   `interval`, at most an hour).
//! - Status: per entry, the last success, the last error and the messages pulled
//!   (`letterbox status`); after a day of failing without a success ([`fault_due`]) the red
//!   LED shows fault 7 (`FaultClass::Fetch`), cleared by the next success.

pub mod client;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, FetchConfig, RemoteAction};
use crate::hw::health::FaultClass;
use crate::hw::supervisor::Hw;
use crate::mail::verify::{self, Verdict, Verifier};
use crate::store::fetched::Pulled;
use crate::store::{self, MailboxSel, NewMessage, Op, Output, Store};
use client::Remote;

/// The longest one IDLE lasts before it is re-issued.
pub const IDLE_MAX: Duration = Duration::from_secs(25 * 60);
/// Failing this long without a success raises fault 7.
pub const FAULT_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A batch of bodies holds at most this many bytes (one larger message goes alone).
const BATCH_BYTES: u64 = 8 << 20;
/// A batch holds at most this many messages.
const BATCH_COUNT: usize = 50;

/// Whether an entry failing since `failing_since` (unix seconds; `None` while it works) has
/// failed long enough at `now` to show fault 7.
pub fn fault_due(failing_since: Option<i64>, now: i64) -> bool {
    failing_since.is_some_and(|t| now.saturating_sub(t) >= FAULT_AFTER.as_secs() as i64)
}

/// How long to wait after the `failures`-th failure in a row (1-based): 30 s, doubling, up
/// to `interval` (but at least 30 s and at most an hour).
pub fn retry_delay(failures: u32, interval: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(10);
    let d = Duration::from_secs(30u64 << exp);
    d.min(interval.clamp(Duration::from_secs(30), Duration::from_secs(3600)))
}

/// The client IP and HELO of the hop that delivered the message to the remote: the
/// topmost `Received:` field with a `from` clause holding an address literal
/// (`from helo (name [ip])` or `from helo ([ip])`, RFC 5321 §4.4).
pub fn first_hop(message: &[u8]) -> Option<(IpAddr, String)> {
    let end = memchr::memmem::find(message, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(message, b"\n\n"))
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]);
    // Unfold (RFC 5322 §2.2.3), then walk the fields from the top.
    let mut fields: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_owned());
        }
    }
    for f in fields {
        let Some((name, value)) = f.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("received") {
            continue;
        }
        let value = value.trim();
        let Some(rest) = value
            .strip_prefix("from ")
            .or_else(|| value.strip_prefix("FROM "))
        else {
            continue;
        };
        let helo = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        // The address literal of the from clause, before "by".
        let clause = rest.find(" by ").map_or(rest, |i| &rest[..i]);
        let ip = clause.split('[').skip(1).find_map(|s| {
            let lit = s.split(']').next()?;
            let lit = lit.strip_prefix("IPv6:").unwrap_or(lit);
            lit.parse::<IpAddr>().ok()
        });
        if let Some(ip) = ip {
            return Some((ip.to_canonical(), helo));
        }
    }
    None
}

/// The envelope sender the remote recorded (`Return-Path:`, RFC 5322 §3.6.7), or "".
fn return_path(message: &[u8]) -> String {
    let end = memchr::memmem::find(message, b"\r\n\r\n").unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]);
    for line in head.split("\r\n") {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("return-path")
        {
            return value
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
        }
    }
    String::new()
}

/// What `status` shows about one entry.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EntryStatus {
    /// `user@host:port`.
    pub remote: String,
    /// The local account.
    pub account: String,
    /// Unix seconds of the last successful pass.
    pub last_success: Option<i64>,
    /// Unix seconds and text of the last failure.
    pub last_error: Option<(i64, String)>,
    /// Unix seconds of the first failure since the last success.
    pub failing_since: Option<i64>,
    /// Messages delivered from this remote, ever (from the store).
    pub pulled: u64,
    /// Messages skipped as larger than `max_message_size`, ever.
    pub skipped: u64,
}

/// The status of every entry, shared by the tasks and `letterbox status`.
#[derive(Debug, Clone, Default)]
pub struct Board(Arc<Mutex<Vec<EntryStatus>>>);

impl Board {
    /// One empty status per entry of `cfg`.
    pub fn new(cfg: &Config) -> Board {
        Board(Arc::new(Mutex::new(
            cfg.fetch
                .iter()
                .map(|e| EntryStatus {
                    remote: e.name(),
                    account: e.account.clone(),
                    ..EntryStatus::default()
                })
                .collect(),
        )))
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut EntryStatus)) -> Vec<EntryStatus> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = all.get_mut(i) {
            f(e);
        }
        all.clone()
    }

    /// A copy of every entry's status.
    pub fn entries(&self) -> Vec<EntryStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `status` lines, one per entry.
    pub fn status_lines(&self, now: i64) -> Vec<String> {
        let ago = |t: i64| format!("{}s ago", now.saturating_sub(t));
        self.entries()
            .iter()
            .map(|e| {
                let mut l = format!("fetch {} -> {}: {} pulled", e.remote, e.account, e.pulled);
                if e.skipped > 0 {
                    l.push_str(&format!(", {} skipped (too large)", e.skipped));
                }
                match e.last_success {
                    Some(t) => l.push_str(&format!(", last success {}", ago(t))),
                    None => l.push_str(", no success yet"),
                }
                if let Some((t, err)) = &e.last_error
                    && e.last_success.is_none_or(|s| s <= *t)
                {
                    l.push_str(&format!(", FAILING: {err} ({})", ago(*t)));
                }
                l
            })
            .collect()
    }
}

/// Starts one task per `[[fetch]]` entry.
pub fn start(
    store: Store,
    cfg: Arc<Config>,
    hw: Option<Hw>,
    board: Board,
    stop: CancellationToken,
    tracker: &TaskTracker,
) {
    if cfg.fetch.is_empty() {
        return;
    }
    let verifier = Arc::new(Verifier::new(&cfg.server.hostname, &cfg.dns));
    for i in 0..cfg.fetch.len() {
        let task = Task {
            store: store.clone(),
            cfg: cfg.clone(),
            i,
            hw: hw.clone(),
            board: board.clone(),
            verifier: verifier.clone(),
            stop: stop.clone(),
        };
        tracker.spawn(task.run());
    }
}

struct Task {
    store: Store,
    cfg: Arc<Config>,
    i: usize,
    hw: Option<Hw>,
    board: Board,
    verifier: Arc<Verifier>,
    stop: CancellationToken,
}

impl Task {
    fn entry(&self) -> &FetchConfig {
        &self.cfg.fetch[self.i]
    }

    async fn run(self) {
        let mut failures = 0u32;
        loop {
            let wait = match self.session().await {
                Ok(()) => {
                    failures = 0;
                    self.entry().interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(remote = %self.entry().name(), error = %e, "fetch failed");
                    self.failed(e);
                    retry_delay(failures, self.entry().interval)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    fn succeeded(&self, pulled: u64, skipped: u64) {
        let now = store::now_unix();
        let all = self.board.update(self.i, |e| {
            e.last_success = Some(now);
            e.failing_since = None;
            e.pulled = pulled;
            e.skipped = skipped;
        });
        self.show_fault(&all, now);
    }

    fn failed(&self, error: String) {
        let now = store::now_unix();
        let all = self.board.update(self.i, |e| {
            e.last_error = Some((now, error));
            e.failing_since.get_or_insert(now);
        });
        self.show_fault(&all, now);
    }

    /// Fault 7 while any entry has failed for a day.
    fn show_fault(&self, all: &[EntryStatus], now: i64) {
        let Some(hw) = &self.hw else { return };
        let failing: Vec<&EntryStatus> = all
            .iter()
            .filter(|e| fault_due(e.failing_since, now))
            .collect();
        let detail = failing.first().map(|e| {
            format!(
                "{} failing since {}s: {}",
                e.remote,
                now.saturating_sub(e.failing_since.unwrap_or(now)),
                e.last_error.as_ref().map_or("", |(_, s)| s.as_str())
            )
        });
        hw.set_fault(FaultClass::Fetch, detail);
    }

    /// One session: log in, pass over every folder; then IDLE and pass again while the
    /// remote allows it, or return for the caller to wait `interval`.
    async fn session(&self) -> Result<(), String> {
        let entry = self.entry();
        let password = std::fs::read_to_string(&entry.password_file)
            .map_err(|e| format!("{}: {e}", entry.password_file.display()))?;
        let tls = client::tls_config(entry.ca_file.as_deref())?;
        let account = {
            let a = entry.account.clone();
            self.store
                .call(move |s| s.read(|r| r.resolve(&a)))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no local account {}", entry.account))?
        };
        let mut remote = Remote::connect(entry, tls, password.trim()).await?;
        loop {
            let r = self.pass(&mut remote, account).await;
            if let Err(e) = r {
                remote.logout().await;
                return Err(e);
            }
            if !(remote.idle && entry.folders.len() == 1) || self.stop.is_cancelled() {
                remote.logout().await;
                return Ok(());
            }
            let (back, again) = remote.idle(IDLE_MAX, &self.stop).await?;
            remote = back;
            if !again {
                remote.logout().await;
                return Ok(());
            }
        }
    }

    /// Pulls every folder once; records the success.
    async fn pass(&self, remote: &mut Remote, account: u64) -> Result<(), String> {
        let entry = self.entry();
        let mut pulled = 0;
        let mut skipped = 0;
        for folder in &entry.folders {
            let source = format!("{}/{folder}", entry.name());
            self.folder(remote, account, folder, &source).await?;
            let src = source.clone();
            if let Some(st) = self
                .store
                .call(move |s| s.read(|r| r.pull_state(account, &src)))
                .await
                .map_err(|e| e.to_string())?
            {
                pulled += st.pulled;
                skipped += st.skipped_total;
            }
        }
        self.succeeded(pulled, skipped);
        Ok(())
    }

    async fn folder(
        &self,
        remote: &mut Remote,
        account: u64,
        folder: &str,
        source: &str,
    ) -> Result<(), String> {
        let entry = self.entry();
        let uidvalidity = remote.select(folder).await?;
        let src = source.to_owned();
        let state = self
            .store
            .call(move |s| s.read(|r| r.pull_state(account, &src)))
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let mark = if state.uidvalidity == uidvalidity {
            state.last_uid
        } else {
            if state.uidvalidity != 0 {
                tracing::warn!(remote = %source, old = state.uidvalidity, new = uidvalidity,
                    "UIDVALIDITY changed: looking at the whole folder again (known messages are not delivered twice)");
            }
            0
        };
        let new = remote.uids(mark.saturating_add(1), None).await?;
        let max = self.cfg.limits.max_message_size;
        let sizes = if new.is_empty() {
            Vec::new()
        } else {
            remote.sizes(&new).await?
        };
        // Batches in ascending UID order, bounded in bytes and count.
        let mut batch: Vec<(u32, u64)> = Vec::new();
        let mut bytes = 0u64;
        let mut sizes = sizes;
        sizes.sort_unstable();
        for (uid, size) in sizes {
            let fits = size <= max;
            if !batch.is_empty()
                && (batch.len() >= BATCH_COUNT || (fits && bytes + size > BATCH_BYTES))
            {
                self.batch(remote, account, source, uidvalidity, &batch)
                    .await?;
                batch.clear();
                bytes = 0;
            }
            if fits {
                bytes += size;
            }
            batch.push((uid, size));
        }
        if !batch.is_empty() {
            self.batch(remote, account, source, uidvalidity, &batch)
                .await?;
        }
        if entry.remote_action != RemoteAction::Keep {
            self.act(remote, account, source, uidvalidity).await?;
        }
        Ok(())
    }

    /// Fetches, verifies and stores one batch (one commit).
    async fn batch(
        &self,
        remote: &mut Remote,
        account: u64,
        source: &str,
        uidvalidity: u32,
        batch: &[(u32, u64)],
    ) -> Result<(), String> {
        let max = self.cfg.limits.max_message_size;
        let wanted: Vec<u32> = batch
            .iter()
            .filter(|(_, s)| *s <= max)
            .map(|(u, _)| *u)
            .collect();
        let mut bodies = if wanted.is_empty() {
            Vec::new()
        } else {
            remote.bodies(&wanted).await?
        };
        bodies.sort_unstable_by_key(|b| b.uid);
        // In UID order: skipped messages as they are, the others to verify.
        let mut items: Vec<Result<Pulled, client::Body>> = Vec::with_capacity(batch.len());
        for &(uid, size) in batch {
            if size > max {
                tracing::warn!(remote = %source, uid, size, max, "message larger than max_message_size: left on the remote");
                items.push(Ok(Pulled {
                    uid,
                    remote_hash: [0; 32],
                    message: None,
                    mailbox: MailboxSel::Inbox,
                    internal_date: 0,
                }));
                continue;
            }
            let Ok(i) = bodies.binary_search_by_key(&uid, |b| b.uid) else {
                // Expunged on the remote since the SEARCH: nothing to pull; later UIDs
                // may still be pulled, and this one can never come back.
                continue;
            };
            let body = std::mem::replace(
                &mut bodies[i],
                client::Body {
                    uid,
                    raw: Vec::new(),
                    internal_date: None,
                },
            );
            if body.raw.len() as u64 > max {
                return Err(format!(
                    "{source}: UID {uid} sent {} bytes after announcing {size}",
                    body.raw.len()
                ));
            }
            items.push(Err(body));
        }
        drop(bodies);
        // The checks of a batch run concurrently (their DNS lookups overlap); the results
        // are taken in UID order up to the first deferred one.
        let checked = futures_util::future::join_all(items.into_iter().map(|item| async move {
            match item {
                Ok(skipped) => Ok(skipped),
                Err(body) => self.prepare(body, source).await,
            }
        }))
        .await;
        let mut list = Vec::with_capacity(checked.len());
        let mut deferred = None;
        for c in checked {
            match c {
                Ok(p) => list.push(p),
                Err(e) => {
                    deferred = Some(e);
                    break;
                }
            }
        }
        // The learning junk filter (src/spam/learn.rs): fetched mail is scored as port-25
        // mail is, but never refused (the remote accepted it already): Junk at most.
        if self.cfg.spam_filter.enabled {
            for p in list.iter_mut() {
                let Some(m) = p.message.clone().filter(|_| p.mailbox == MailboxSel::Inbox) else {
                    continue;
                };
                let cfg = self.cfg.spam_filter.clone();
                let f = self
                    .store
                    .call(move |s| crate::spam::learn::filter(s, &cfg, &[account], &m))
                    .await
                    .map_err(|e| format!("spam filter: {e}"))?;
                if let Some(f) = f.into_iter().next() {
                    if f.verdict.junk {
                        p.mailbox = MailboxSel::Junk;
                    }
                    p.message = Some(f.message);
                }
            }
        }
        if !list.is_empty() {
            let op = Op::Pull {
                account,
                source: source.to_owned(),
                uidvalidity,
                messages: list,
            };
            let out = self
                .store
                .call(move |s| s.write(op))
                .await
                .map_err(|e| format!("storing pulled mail: {e}"))?;
            if let Output::Delivered(d) = out
                && !d.is_empty()
            {
                tracing::info!(remote = %source, delivered = d.len(), "pulled mail stored");
            }
        }
        match deferred {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Verifies one message and adds our header fields; `Err` when the verdict is deferred.
    async fn prepare(&self, body: client::Body, source: &str) -> Result<Pulled, String> {
        let remote_hash: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &body.raw)
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        let (ip, helo) = first_hop(&body.raw)
            .unwrap_or((IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), String::new()));
        let mail_from = return_path(&body.raw);
        let outcome = self
            .verifier
            .verify(&verify::Input {
                extra: "",
                ip,
                helo: &helo,
                mail_from: &mail_from,
                message: &body.raw,
            })
            .await;
        let mailbox = match outcome.verdict {
            Verdict::Deliver => MailboxSel::Inbox,
            // Already accepted by the remote: refusing is not possible, dropping would lose
            // mail, so both DMARC quarantine and reject go to Junk.
            Verdict::Junk { .. } | Verdict::Reject { .. } => MailboxSel::Junk,
            Verdict::Defer(cause) => {
                return Err(format!(
                    "{source}: UID {}: {}; retrying later",
                    body.uid,
                    cause.describe()
                ));
            }
        };
        tracing::info!(remote = %source, uid = body.uid, "verified: {}", outcome.summary);
        let data = verify::strip_forged(&body.raw, self.verifier.hostname()).unwrap_or(body.raw);
        let now = store::now_unix();
        let received = format!(
            "Received: from {} by {} (Letterbox) with IMAPS\r\n\t(pulled from {source} uid {});\r\n\t{}\r\n",
            self.entry().host,
            self.verifier.hostname(),
            body.uid,
            mail_parser::DateTime::from_timestamp(now).to_rfc822()
        );
        let mut raw = Vec::with_capacity(outcome.header.len() + received.len() + data.len());
        raw.extend_from_slice(outcome.header.as_bytes());
        raw.extend_from_slice(received.as_bytes());
        raw.extend_from_slice(&data);
        drop(data);
        let message = tokio::task::spawn_blocking(move || NewMessage::new(raw))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Pulled {
            uid: body.uid,
            remote_hash,
            message: Some(Arc::new(message)),
            mailbox,
            internal_date: body.internal_date.unwrap_or(now),
        })
    }

    /// `remote_action` on every UID at or below the mark that was not skipped.
    async fn act(
        &self,
        remote: &mut Remote,
        account: u64,
        source: &str,
        uidvalidity: u32,
    ) -> Result<(), String> {
        let src = source.to_owned();
        let Some(state) = self
            .store
            .call(move |s| s.read(|r| r.pull_state(account, &src)))
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        if state.uidvalidity != uidvalidity || state.last_uid == 0 {
            return Ok(());
        }
        let done: Vec<u32> = remote
            .uids(1, Some(state.last_uid))
            .await?
            .into_iter()
            .filter(|u| !state.skipped.contains(u))
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        match &self.entry().remote_action {
            RemoteAction::Keep => {}
            RemoteAction::Delete => remote.delete(&done).await?,
            RemoteAction::Move(to) => remote.move_to(&done, to).await?,
        }
        tracing::info!(remote = %source, count = done.len(), action = ?self.entry().remote_action, "remote action done");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_comes_after_a_day_of_failing() {
        assert!(!fault_due(None, 1_000_000));
        assert!(!fault_due(Some(1_000_000), 1_000_000 + 86_399));
        assert!(fault_due(Some(1_000_000), 1_000_000 + 86_400));
        assert!(!fault_due(Some(1_000_000), 0));
    }

    #[test]
    fn retries_back_off() {
        let five = Duration::from_secs(300);
        assert_eq!(retry_delay(1, five), Duration::from_secs(30));
        assert_eq!(retry_delay(2, five), Duration::from_secs(60));
        assert_eq!(retry_delay(4, five), Duration::from_secs(240));
        assert_eq!(retry_delay(5, five), five);
        assert_eq!(retry_delay(50, five), five);
        let day = Duration::from_secs(86_400);
        assert_eq!(retry_delay(50, day), Duration::from_secs(3600));
        // A (test) interval of one second still waits 30 s after a failure.
        assert_eq!(
            retry_delay(3, Duration::from_secs(1)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn the_first_hop_is_the_topmost_received_with_an_address() {
        let m = b"Return-Path: <a@b.example>\r\n\
            Received: by 2002:a05:6000:1::1 with SMTP id x;\r\n Mon, 1 Jan 2024 00:00:00 +0000\r\n\
            Received: from mail-sor-f41.google.com (mail-sor-f41.google.com.\r\n\t[209.85.220.41])\r\n\
            \tby mx.google.com with SMTPS id y; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
            Received: from forged.example ([10.0.0.1]) by forged; date\r\n\
            Subject: x\r\n\r\nReceived: from body ([1.1.1.1])\r\n";
        assert_eq!(
            first_hop(m),
            Some((
                "209.85.220.41".parse().unwrap(),
                "mail-sor-f41.google.com".into()
            ))
        );
        assert_eq!(return_path(m), "a@b.example");
        let v6 = b"Received: from h.example (h.example [IPv6:2001:db8::1]) by x; d\r\n\r\n";
        assert_eq!(
            first_hop(v6).map(|(ip, _)| ip),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(first_hop(b"Subject: none\r\n\r\nbody"), None);
        assert_eq!(
            first_hop(b"Received: from a ([127.0.0.1])\r\n\tby b; d\r\n\r\n"),
            Some(("127.0.0.1".parse().unwrap(), "a".into()))
        );
    }
}
