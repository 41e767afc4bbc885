//! The outbound queue runner (SPEC §5 "Signed outbound mail", issue 4).
//!
//! Submission puts remote recipients into the store's queue table (`Op::Enqueue`, one row
//! per message with per-recipient state). The runner:
//! - wakes on `Change::QueueChanged` and at the earliest `next_attempt`;
//! - delivers due items concurrently, at most [`CONCURRENCY`] at a time, each through the
//!   [`Transport`] (one connection per destination domain, carrying all its recipients);
//! - signs each message just before sending, with every DKIM key of its domain
//!   ([`crate::mail::sign`]): signing at send time rather than at enqueue keeps the
//!   submission path unchanged and signs with the current keys; the queued blob stays the
//!   message as submitted;
//! - records the outcome per recipient with `Op::QueueUpdate`: accepted recipients are
//!   `Delivered` and never sent again, 5xx ones `Failed(reply)`, the rest stay `Pending`
//!   with the next attempt from [`schedule`] (RFC 5321 §4.5.4.1);
//! - sends the envelope sender an RFC 3464 report ([`crate::mail::dsn`]) into their INBOX
//!   when they are a local account: on permanent failure or expiry (after 5 days), and
//!   once "delayed" after 4 hours. Never for a null sender (`MAIL FROM:<>`, RFC 5321
//!   §4.5.5), so bounces cannot loop;
//! - removes the row when no recipient is pending.
//!
//! All state is in the store, so a restart or `kill -9` loses nothing: a delivery that
//! was in flight is simply attempted again (the remote may then get that one message
//! twice, which RFC 5321 §6.1 accepts over losing it). A bounce is stored before the
//! queue row is updated, for the same reason (at worst a duplicate bounce).
//! On shutdown, deliveries in flight get [`SHUTDOWN_GRACE`] to finish, then are dropped.

pub mod deliver;
pub mod dns;
pub mod schedule;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::mail::dsn::{self, Action};
use crate::mail::sign;
use crate::store::{self, Change, MailboxSel, NewMessage, Op, QueueItem, RcptState, Store, Target};
pub use deliver::{Envelope, Outcome, SmtpTransport, Transport};
pub use schedule::{Schedule, Verdict};

/// Deliveries in flight at once.
pub const CONCURRENCY: usize = 4;
/// How long deliveries in flight may finish after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A delivery whose store access failed keeps its slot this long, so a failing store
/// (full card) is not hammered.
const STORE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest the runner sleeps without looking at the queue (a safety net).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Told after each attempt through the `[relay]`: `Some(why)` when the relay accepted none
/// of the recipients (it refuses: down, TLS or AUTH failure, or every RCPT rejected), `None`
/// when it accepted some. The board shows a refusing relay as fault 3 (SPEC §6).
pub type RelayReport = Arc<dyn Fn(Option<String>) + Send + Sync>;

/// The queue runner.
pub struct Runner {
    store: Store,
    config: Arc<Config>,
    transport: Arc<dyn Transport>,
    schedule: Schedule,
    relay_report: Option<RelayReport>,
}

impl Runner {
    /// A runner delivering through `transport`.
    /// `relay_report` hears how each attempt through the relay went.
    pub fn new(
        store: Store,
        config: Arc<Config>,
        transport: Arc<dyn Transport>,
        relay_report: Option<RelayReport>,
    ) -> Arc<Runner> {
        let schedule = Schedule::new(config.queue.retry_scale.0);
        Arc::new(Runner {
            store,
            config,
            transport,
            schedule,
            relay_report,
        })
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.store.subscribe();
        let mut in_flight: HashSet<u64> = HashSet::new();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut task_items: HashMap<tokio::task::Id, u64> = HashMap::new();
        'run: loop {
            let now = store::now_unix();
            let items = match self.store.call(|s| s.read(|r| r.queue())).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::error!(error = %e, "queue: cannot read the queue");
                    Vec::new()
                }
            };
            let mut next_due: Option<i64> = None;
            for item in items {
                if in_flight.contains(&item.id) {
                    continue;
                }
                if item.next_attempt > now {
                    next_due =
                        Some(next_due.map_or(item.next_attempt, |d| d.min(item.next_attempt)));
                    continue;
                }
                if in_flight.len() >= CONCURRENCY {
                    next_due = Some(now);
                    continue;
                }
                in_flight.insert(item.id);
                let me = self.clone();
                let id = item.id;
                let handle = tasks.spawn(async move { me.attempt(item).await });
                task_items.insert(handle.id(), id);
            }
            let sleep = match next_due {
                Some(t) if t <= now => Duration::ZERO,
                Some(t) => Duration::from_secs((t - now) as u64).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            // Every slot is busy and work is waiting: wait for a task, not for time.
            let wait_for_slot = sleep.is_zero();
            let deadline = tokio::time::Instant::now() + sleep;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break 'run,
                    Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                        let task = match done {
                            Ok((task, _)) => task,
                            Err(e) => {
                                tracing::error!(error = %e, "queue: delivery task failed");
                                e.id()
                            }
                        };
                        if let Some(id) = task_items.remove(&task) {
                            in_flight.remove(&id);
                        }
                        break;
                    }
                    ev = changes.recv() => match ev {
                        Ok(Change::QueueChanged) | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => continue,
                        Err(RecvError::Closed) => break 'run,
                    },
                    _ = tokio::time::sleep_until(deadline), if !wait_for_slot => break,
                }
            }
        }
        // Shutdown: let deliveries in flight finish briefly; their state is in the store.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
    }

    /// One delivery attempt of one item.
    async fn attempt(&self, item: QueueItem) {
        let id = item.id;
        let blob = item.blob;
        let raw = match self.store.call(move |s| s.read(|r| r.blob(&blob))).await {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                tracing::error!(id, "queue: message body missing; dropping the item");
                let _ = self.store.call(move |s| s.write(Op::QueueDelete(id))).await;
                return;
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "queue: cannot read the message");
                tokio::time::sleep(STORE_BACKOFF).await;
                return;
            }
        };
        let pending: Vec<String> = item
            .rcpts
            .iter()
            .filter(|(_, st)| *st == RcptState::Pending)
            .map(|(r, _)| r.clone())
            .collect();
        if pending.is_empty() {
            let _ = self.store.call(move |s| s.write(Op::QueueDelete(id))).await;
            return;
        }
        let message = Arc::new(self.signed(&raw, &item.mail_from).await);
        let env = Envelope {
            mail_from: item.mail_from.clone(),
            rcpts: pending.clone(),
            message,
        };
        let outcomes = self.transport.send(&env).await;
        let now = store::now_unix();
        for (r, o) in pending.iter().zip(&outcomes) {
            tracing::info!(id, rcpt = %r, outcome = ?o, "queue: delivery attempt");
        }
        if let (Some(relay), Some(report)) = (&self.config.relay, &self.relay_report) {
            report(relay_refusal(relay, &outcomes));
        }
        // Apply to the current row: it may have been deleted or retried meanwhile.
        let current = match self.store.call(move |s| s.read(|r| r.queue_item(id))).await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(id, error = %e, "queue: cannot re-read the item");
                tokio::time::sleep(STORE_BACKOFF).await;
                return;
            }
        };
        let (updated, failed, delayed) = apply(current, &pending, &outcomes, &self.schedule, now);
        if !failed.is_empty() {
            self.report(&updated, &raw, failed, now).await;
        }
        if !delayed.is_empty() {
            self.report(&updated, &raw, delayed, now).await;
        }
        let op = if updated
            .rcpts
            .iter()
            .any(|(_, st)| *st == RcptState::Pending)
        {
            Op::QueueUpdate(updated)
        } else {
            Op::QueueDelete(id)
        };
        if let Err(e) = self.store.call(move |s| s.write(op)).await {
            // Still due: it is attempted again (and may reach the remote twice) once the
            // store takes writes again; the pause keeps that from spinning.
            tracing::warn!(id, error = %e, "queue: cannot record the attempt");
            tokio::time::sleep(STORE_BACKOFF).await;
        }
    }

    /// The message with `DKIM-Signature` fields prepended (unsigned when its domain has
    /// no keys).
    async fn signed(&self, raw: &[u8], mail_from: &str) -> Vec<u8> {
        let cfg = self.config.clone();
        let Some(domain) = sign::signing_domain(raw, mail_from, |d| cfg.is_local_domain(d)) else {
            return raw.to_vec();
        };
        let d2 = domain.clone();
        let keys: Vec<store::DkimKey> = self
            .store
            .call(move |s| s.read(|r| r.dkim_keys(&d2)))
            .await
            .unwrap_or_default();
        let raw = raw.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut out = sign::sign(&raw, &domain, &keys);
            out.extend_from_slice(&raw);
            out
        })
        .await
        .unwrap_or_default()
    }

    /// Stores a delivery report in the sender's INBOX, when the sender is local.
    async fn report(
        &self,
        item: &QueueItem,
        original: &[u8],
        rcpts: Vec<dsn::Recipient>,
        now: i64,
    ) {
        let sender = item.mail_from.clone();
        if sender.is_empty() {
            return; // RFC 5321 §4.5.5: never a report about a report.
        }
        let local = sender
            .rsplit_once('@')
            .is_some_and(|(_, d)| self.config.is_local_domain(d));
        if !local {
            return;
        }
        let s2 = sender.clone();
        let account = match self.store.call(move |s| s.read(|r| r.resolve(&s2))).await {
            Ok(Some(a)) => a,
            _ => {
                tracing::warn!(sender = %sender, "queue: sender has no mailbox; report dropped");
                return;
            }
        };
        let delayed = rcpts.iter().all(|r| r.action == Action::Delayed);
        let report = dsn::Report {
            hostname: &self.config.server.hostname,
            to: &sender,
            original,
            arrival: item.created,
            now,
            expires: delayed.then(|| self.schedule.expires_at(item.created)),
            recipients: rcpts,
        };
        let id = format!("{:016x}", rand::random::<u64>());
        let raw = report.compose(&format!("=_{id}"), &format!("dsn.{id}"));
        let message = match tokio::task::spawn_blocking(move || NewMessage::new(raw)).await {
            Ok(m) => Arc::new(m),
            Err(_) => return,
        };
        let op = Op::Deliver {
            message,
            targets: vec![Target {
                account,
                mailbox: MailboxSel::Inbox,
            }],
            flags: 0,
            keywords: Vec::new(),
            internal_date: now,
            delivered: true,
        };
        match self.store.call(move |s| s.write(op)).await {
            Ok(_) => tracing::info!(sender = %sender, delayed, "queue: delivery report stored"),
            Err(e) => tracing::warn!(error = %e, "queue: cannot store the delivery report"),
        }
    }
}

/// Applies one attempt's outcomes to the item (pure). Returns the updated item, the
/// recipients that failed for good in this attempt, and the recipients to report as
/// delayed (once, after [`schedule::DELAY_NOTICE_AFTER`]).
pub fn apply(
    mut item: QueueItem,
    attempted: &[String],
    outcomes: &[Outcome],
    schedule: &Schedule,
    now: i64,
) -> (QueueItem, Vec<dsn::Recipient>, Vec<dsn::Recipient>) {
    let mut failed = Vec::new();
    let mut last_temp: Option<String> = None;
    for (rcpt, outcome) in attempted.iter().zip(outcomes) {
        let Some((_, state)) = item.rcpts.iter_mut().find(|(r, _)| r == rcpt) else {
            continue;
        };
        if *state != RcptState::Pending {
            continue;
        }
        match outcome {
            Outcome::Delivered(_) => *state = RcptState::Delivered,
            Outcome::Permanent(reply) => {
                *state = RcptState::Failed(reply.clone());
                failed.push(dsn::Recipient {
                    address: rcpt.clone(),
                    action: Action::Failed,
                    diagnostic: reply.clone(),
                });
            }
            Outcome::Temporary(why) => last_temp = Some(why.clone()),
        }
    }
    item.attempts = item.attempts.saturating_add(1);
    if last_temp.is_some() {
        item.last_error = last_temp;
    }
    let mut delayed = Vec::new();
    if item.rcpts.iter().any(|(_, st)| *st == RcptState::Pending) {
        match schedule.after_failure(item.created, item.attempts, now) {
            Verdict::RetryAt(t) => {
                item.next_attempt = t;
                if schedule.delay_notice_due(item.created, item.delay_notified, now) {
                    item.delay_notified = true;
                    let why = item.last_error.clone().unwrap_or_default();
                    for (r, st) in &item.rcpts {
                        if *st == RcptState::Pending {
                            delayed.push(dsn::Recipient {
                                address: r.clone(),
                                action: Action::Delayed,
                                diagnostic: why.clone(),
                            });
                        }
                    }
                }
            }
            Verdict::Expire => {
                let why = format!(
                    "delivery time expired; last error: {}",
                    item.last_error.clone().unwrap_or_default()
                );
                for (r, st) in item.rcpts.iter_mut() {
                    if *st == RcptState::Pending {
                        *st = RcptState::Failed(why.clone());
                        failed.push(dsn::Recipient {
                            address: r.clone(),
                            action: Action::Failed,
                            diagnostic: why.clone(),
                        });
                    }
                }
            }
        }
    }
    (item, failed, delayed)
}

/// Generates the DKIM keys of every configured domain that has none (first start).
/// Blocking; returns the domains that got new keys.
pub fn ensure_dkim_keys(store: &Store, config: &Config) -> Result<Vec<String>, String> {
    let mut made = Vec::new();
    for domain in &config.server.domains {
        let have = store
            .read(|r| r.dkim_keys(domain))
            .map_err(|e| e.to_string())?;
        if !have.is_empty() {
            continue;
        }
        let keys = sign::generate(store::now_unix())?;
        store
            .write(Op::PutDkimKeys {
                domain: domain.clone(),
                keys,
            })
            .map_err(|e| e.to_string())?;
        made.push(domain.clone());
    }
    Ok(made)
}

/// Whether one attempt's `outcomes` through `relay` mean the relay refuses: no recipient
/// delivered. Returns the reason in words.
pub fn relay_refusal(relay: &crate::config::RelayConfig, outcomes: &[Outcome]) -> Option<String> {
    if outcomes.is_empty() || outcomes.iter().any(|o| matches!(o, Outcome::Delivered(_))) {
        return None;
    }
    let why = match &outcomes[0] {
        Outcome::Temporary(r) | Outcome::Permanent(r) | Outcome::Delivered(r) => r,
    };
    Some(format!(
        "the relay {}:{} refuses: {why}",
        relay.host, relay.port
    ))
}

/// Starts the runner with the SMTP transport and the `[dns]` resolver.
pub fn start(
    store: Store,
    config: Arc<Config>,
    stop: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
    relay_report: Option<RelayReport>,
) -> Result<(), String> {
    let resolver: Arc<dyn dns::MxResolver> = Arc::new(dns::Hickory::from_config(&config.dns)?);
    let transport = Arc::new(SmtpTransport::new(&config, resolver)?);
    let runner = Runner::new(store, config, transport, relay_report);
    tracker.spawn(runner.run(stop));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(rcpts: &[&str]) -> QueueItem {
        QueueItem {
            id: 1,
            blob: [0; 32],
            mail_from: "a@home.arpa".into(),
            rcpts: rcpts
                .iter()
                .map(|r| (r.to_string(), RcptState::Pending))
                .collect(),
            created: 1000,
            next_attempt: 1000,
            attempts: 0,
            last_error: None,
            delay_notified: false,
        }
    }

    #[test]
    fn outcomes_update_each_recipient() {
        let s = Schedule::default();
        let it = item(&["ok@x", "bad@x", "later@y"]);
        let attempted: Vec<String> = vec!["ok@x".into(), "bad@x".into(), "later@y".into()];
        let (it, failed, delayed) = apply(
            it,
            &attempted,
            &[
                Outcome::Delivered("250 ok".into()),
                Outcome::Permanent("550 5.1.1 no".into()),
                Outcome::Temporary("451 later".into()),
            ],
            &s,
            1000,
        );
        assert_eq!(it.rcpts[0].1, RcptState::Delivered);
        assert_eq!(it.rcpts[1].1, RcptState::Failed("550 5.1.1 no".into()));
        assert_eq!(it.rcpts[2].1, RcptState::Pending);
        assert_eq!(it.attempts, 1);
        assert_eq!(it.next_attempt, 1300);
        assert_eq!(it.last_error.as_deref(), Some("451 later"));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].diagnostic, "550 5.1.1 no");
        assert!(delayed.is_empty());
    }

    #[test]
    fn delay_notice_once_then_expiry_bounces() {
        let s = Schedule::default();
        let attempted = vec!["later@y".to_string()];
        let temp = [Outcome::Temporary("451 later".into())];
        let (it, failed, delayed) =
            apply(item(&["later@y"]), &attempted, &temp, &s, 1000 + 4 * 3600);
        assert!(failed.is_empty());
        assert_eq!(delayed.len(), 1);
        assert!(it.delay_notified);
        let (it, _, delayed) = apply(it, &attempted, &temp, &s, 1000 + 5 * 3600);
        assert!(delayed.is_empty());
        let (it, failed, _) = apply(it, &attempted, &temp, &s, 1000 + schedule::EXPIRE_AFTER);
        assert_eq!(failed.len(), 1);
        assert!(failed[0].diagnostic.contains("expired"));
        assert!(matches!(it.rcpts[0].1, RcptState::Failed(_)));
    }

    #[test]
    fn delivered_recipients_are_never_touched_again() {
        let s = Schedule::default();
        let mut it = item(&["a@x", "b@x"]);
        it.rcpts[0].1 = RcptState::Delivered;
        let (it, failed, _) = apply(
            it,
            &["a@x".to_string()],
            &[Outcome::Permanent("550 no".into())],
            &s,
            1000,
        );
        assert_eq!(it.rcpts[0].1, RcptState::Delivered);
        assert!(failed.is_empty());
    }
}
