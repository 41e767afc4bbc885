//! The learning junk filter at work: the verdict on a delivery (score, Junk or refuse,
//! the `X-Spam-*` fields), sender reputation, and the background task that applies the
//! training events the store queued when the person moved or flagged mail.
//!
//! # Sender reputation
//! Reputation is kept as tokens in the same statistics, so it weighs in the same
//! chi-square sum as the words: every message carries a `sender:` token, keyed by the
//! `From:` domain (`sender:@example.org`) when our own `Authentication-Results` says
//! `dmarc=pass` (RFC 7489 §3.1 alignment is what DMARC passes on), by the address
//! otherwise. Training a kept message trains its sender token as ham; mail the person
//! sends through submission adds ham counts to the `sender:` tokens of each recipient's
//! address and domain ([`sent_keys`]), so replies from people they write to lean ham.
//!
//! # Where it runs
//! Mail from outside only: port 25 deliveries and mail pulled by `[[fetch]]`. Submission
//! between local users is never scored (the sender is one of the household and
//! authenticated). An account with fewer than `min_trained` spam or ham messages trained
//! is never junked.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::bayes::{self, Counts, Totals};
use crate::config::spam_filter::SpamFilterConfig;
use crate::mail::message::ParsedMessage;
use crate::store::spam::{Class, TrainItem};
use crate::store::{self, Change, NewMessage, Op, Reader, Store};

/// Training events applied per commit.
const BATCH: usize = 64;
/// Pause between two training batches, so deliveries are never kept waiting behind a
/// training flood.
const PAUSE: Duration = Duration::from_millis(20);
/// How often the queue is looked at when nothing signals new events.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// Mail kept in the INBOX this long trains as ham.
pub const KEPT_AFTER: i64 = 7 * 86_400;
/// How often the INBOXes are swept for kept mail.
const KEPT_SWEEP: Duration = Duration::from_secs(3600);
/// Messages queued as kept per account and sweep at most.
const KEPT_PER_SWEEP: usize = 200;

/// The reputation key of a message's sender: `@domain` with DMARC pass, else the address.
pub fn sender_key(raw: &[u8], parsed: &ParsedMessage) -> Option<String> {
    let from = parsed.envelope.from.first()?;
    let (local, host) = (from.mailbox.as_deref()?, from.host.as_deref()?);
    let domain = host.to_ascii_lowercase();
    // Only the topmost Authentication-Results is ours (verify strips forged ones).
    let header = raw
        .get(..parsed.root.body_start as usize)
        .unwrap_or_default();
    let ar = crate::imap::fetch::header_value(header, "Authentication-Results");
    let dmarc_pass = ar.first().is_some_and(|v| {
        let v = String::from_utf8_lossy(v).to_ascii_lowercase();
        v.contains("dmarc=pass")
    });
    Some(if dmarc_pass {
        format!("@{domain}")
    } else {
        format!("{}@{domain}", local.to_lowercase())
    })
}

/// The tokens a message is trained and scored with: its words and its sender.
pub fn message_tokens(raw: &[u8], parsed: &ParsedMessage) -> Vec<u64> {
    let mut t = bayes::tokens(raw, parsed);
    if let Some(k) = sender_key(raw, parsed) {
        t.push(bayes::hash(format!("sender:{k}").as_bytes()));
        t.sort_unstable();
        t.dedup();
    }
    t
}

/// Reputation tokens for recipients the person wrote to: each address, and its domain.
pub fn sent_keys(rcpts: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for r in rcpts {
        let r = r.to_lowercase();
        out.push(bayes::hash(format!("sender:{r}").as_bytes()));
        if let Some((_, d)) = r.rsplit_once('@') {
            out.push(bayes::hash(format!("sender:@{d}").as_bytes()));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What the filter decided for one account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Spam probability; `None` when the account is not trained enough to judge.
    pub score: Option<f64>,
    /// Tokens that took part.
    pub used: usize,
    /// Goes to Junk.
    pub junk: bool,
    /// Refused at the end of DATA (only with `reject_threshold`).
    pub reject: bool,
}

impl Verdict {
    /// The header fields to add above the message (none for an untrained account).
    pub fn header(&self) -> String {
        match self.score {
            None => String::new(),
            Some(s) => format!(
                "X-Spam-Score: {s:.4} (bayes, {} tokens)\r\nX-Spam-Flag: {}\r\n",
                self.used,
                if self.junk { "YES" } else { "NO" }
            ),
        }
    }
}

/// The verdict from a score (pure).
pub fn decide(cfg: &SpamFilterConfig, totals: Totals, score: bayes::Score) -> Verdict {
    if totals.spam < cfg.min_trained || totals.ham < cfg.min_trained {
        return Verdict {
            score: None,
            used: score.used,
            junk: false,
            reject: false,
        };
    }
    Verdict {
        score: Some(score.prob),
        used: score.used,
        junk: score.prob >= cfg.junk_threshold,
        reject: cfg.reject_threshold.is_some_and(|r| score.prob >= r),
    }
}

/// Scores a message for `account` against its statistics (blocking: a store read).
pub fn classify(
    r: &Reader,
    cfg: &SpamFilterConfig,
    account: u64,
    tokens: &[u64],
) -> store::Result<Verdict> {
    let st = r.spam_state(account)?;
    let totals = Totals {
        spam: st.spam,
        ham: st.ham,
    };
    if totals.spam < cfg.min_trained || totals.ham < cfg.min_trained {
        return Ok(decide(cfg, totals, bayes::Score { prob: 0.5, used: 0 }));
    }
    let counts = r.spam_counts(account, tokens)?;
    let score = bayes::combine(
        counts
            .into_iter()
            .filter_map(|(spam, ham)| bayes::token_prob(Counts { spam, ham }, totals)),
    );
    Ok(decide(cfg, totals, score))
}

/// One local recipient's copy of a message after filtering.
#[derive(Debug)]
pub struct Filtered {
    /// The account.
    pub account: u64,
    /// The message with the `X-Spam-*` fields, or the original when unscored.
    pub message: Arc<NewMessage>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Scores `message` for each account (blocking: tokenizing and store reads; run it on a
/// blocking thread). Each scored copy gets its own `X-Spam-*` fields on top.
pub fn filter(
    store: &Store,
    cfg: &SpamFilterConfig,
    accounts: &[u64],
    message: &Arc<NewMessage>,
) -> store::Result<Vec<Filtered>> {
    if !cfg.enabled {
        return Ok(accounts
            .iter()
            .map(|&account| Filtered {
                account,
                message: message.clone(),
                verdict: Verdict {
                    score: None,
                    used: 0,
                    junk: false,
                    reject: false,
                },
            })
            .collect());
    }
    // Untrained accounts are not scored: no tokenizing for them.
    let trained = store.read(|r| {
        for &a in accounts {
            let st = r.spam_state(a)?;
            if st.spam >= cfg.min_trained && st.ham >= cfg.min_trained {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if !trained {
        let off = SpamFilterConfig {
            enabled: false,
            ..cfg.clone()
        };
        return filter(store, &off, accounts, message);
    }
    let parsed = ParsedMessage::decode(&message.parsed)
        .unwrap_or_else(|_| crate::mail::message::parse(&message.raw));
    let tokens = message_tokens(&message.raw, &parsed);
    let verdicts = store.read(|r| {
        accounts
            .iter()
            .map(|&a| classify(r, cfg, a, &tokens).map(|v| (a, v)))
            .collect::<store::Result<Vec<_>>>()
    })?;
    for (a, v) in &verdicts {
        if v.junk {
            ensure_junk(store, *a)?;
        }
    }
    Ok(verdicts
        .into_iter()
        .map(|(account, verdict)| {
            let head = verdict.header();
            let message = if head.is_empty() {
                message.clone()
            } else {
                let mut raw = Vec::with_capacity(head.len() + message.raw.len());
                raw.extend_from_slice(head.as_bytes());
                raw.extend_from_slice(&message.raw);
                Arc::new(NewMessage::new(raw))
            };
            Filtered {
                account,
                message,
                verdict,
            }
        })
        .collect())
}

/// Creates a `Junk` mailbox with the `\\Junk` special use (RFC 6154) for an account that
/// has none, so junked mail never falls back to the INBOX (blocking).
pub fn ensure_junk(store: &Store, account: u64) -> store::Result<()> {
    let has = store.read(|r| {
        Ok(r.mailboxes(account)?
            .iter()
            .any(|m| m.special_use == Some(store::SpecialUse::Junk)))
    })?;
    if has {
        return Ok(());
    }
    // "Junk" may exist without the special use (a client made it): use a free name.
    for name in ["Junk", "Junk Mail", "Spam", "Junk (Letterbox)"] {
        match store.write(Op::CreateMailbox {
            account,
            name: name.into(),
            special_use: Some(store::SpecialUse::Junk),
        }) {
            Ok(_) => return Ok(()),
            Err(store::Error::Exists(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Tokenizes one queued event's message (blocking). Empty tokens when the message is gone.
fn prepare(r: &Reader, ev: &store::spam::QueuedEvent) -> store::Result<TrainItem> {
    let tokens = match r.blob(&ev.blob)? {
        Some(raw) => {
            let parsed = r
                .parsed(&ev.blob)?
                .unwrap_or_else(|| crate::mail::message::parse(&raw));
            message_tokens(&raw, &parsed)
        }
        None => Vec::new(),
    };
    Ok(TrainItem {
        account: ev.account,
        seq: Some(ev.seq),
        blob: ev.blob,
        class: ev.class,
        tokens,
    })
}

/// Applies up to [`BATCH`] queued events in one commit; returns how many (blocking).
pub fn train_batch(store: &Store) -> store::Result<usize> {
    let events = store.read(|r| r.spam_queue(BATCH))?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut items = Vec::with_capacity(events.len());
    for ev in &events {
        items.push(store.read(|r| prepare(r, ev))?);
    }
    let n = items.len();
    store.write(Op::SpamTrain {
        items,
        now: store::now_unix(),
    })?;
    Ok(n)
}

/// Trains messages given as bytes (`letterbox spam train`); returns how many were new
/// (blocking). Applied in commits of [`BATCH`].
pub fn train_raw(
    store: &Store,
    account: u64,
    class: Class,
    messages: impl IntoIterator<Item = Vec<u8>>,
) -> store::Result<usize> {
    let mut items = Vec::with_capacity(BATCH);
    let mut n = 0;
    let flush = |items: &mut Vec<TrainItem>| -> store::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        store.write(Op::SpamTrain {
            items: std::mem::take(items),
            now: store::now_unix(),
        })?;
        Ok(())
    };
    for raw in messages {
        let parsed = crate::mail::message::parse(&raw);
        let blob = ring::digest::digest(&ring::digest::SHA256, &raw)
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        items.push(TrainItem {
            account,
            seq: None,
            blob,
            class,
            tokens: message_tokens(&raw, &parsed),
        });
        n += 1;
        if items.len() >= BATCH {
            flush(&mut items)?;
        }
    }
    flush(&mut items)?;
    Ok(n)
}

/// Trains every message of the mbox at `path` (`letterbox spam train`), reading it in
/// chunks with the mbox splitter (src/data/mbox.rs); returns how many messages were read.
/// Errors name the file and the byte offset.
pub fn train_mbox(
    store: &Store,
    account: u64,
    class: Class,
    path: &std::path::Path,
    max_message: u64,
) -> Result<usize, String> {
    use crate::data::mbox::Splitter;
    use std::io::Read;
    let name = path.display();
    let mut f = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let mut split = Splitter::new(0, usize::try_from(max_message).unwrap_or(usize::MAX));
    let mut buf = vec![0u8; 256 * 1024];
    let mut batch = Vec::new();
    let mut n = 0;
    let flush = |batch: &mut Vec<Vec<u8>>| -> Result<usize, String> {
        train_raw(store, account, class, std::mem::take(batch)).map_err(|e| e.to_string())
    };
    loop {
        let got = f.read(&mut buf).map_err(|e| format!("{name}: {e}"))?;
        if got == 0 {
            break;
        }
        split.feed(&buf[..got]);
        while let Some(m) = split.next_message().map_err(|e| format!("{name}: {e}"))? {
            batch.push(m.bytes);
            if batch.len() >= BATCH {
                n += flush(&mut batch)?;
            }
        }
    }
    if let Some(m) = split.finish().map_err(|e| format!("{name}: {e}"))? {
        batch.push(m.bytes);
    }
    n += flush(&mut batch)?;
    Ok(n)
}

/// The text of `letterbox spam status`.
pub fn status_text(address: &str, st: &store::spam::SpamState, cfg: &SpamFilterConfig) -> String {
    let last = if st.last_trained == 0 {
        "never".to_string()
    } else {
        mail_parser::DateTime::from_timestamp(st.last_trained).to_rfc3339()
    };
    let ready = st.spam >= cfg.min_trained && st.ham >= cfg.min_trained;
    format!(
        "{address}: {} spam and {} ham messages trained ({}); {} tokens ({} expired); \
         {} training events queued, {} dropped; last training {last}",
        st.spam,
        st.ham,
        if ready {
            "filtering".to_string()
        } else {
            format!("not filtering until {} of each", cfg.min_trained)
        },
        st.tokens,
        st.expired,
        st.queued,
        st.dropped,
    )
}

/// Queues INBOX messages kept longer than [`KEPT_AFTER`] (and not yet trained) as ham,
/// at most [`KEPT_PER_SWEEP`] per account (blocking).
fn sweep_kept(store: &Store, now: i64) -> store::Result<()> {
    let found = store.read(|r| {
        let mut found = Vec::new();
        for acct in r.accounts()? {
            let Some(inbox) = r.mailbox(acct.id, "INBOX")? else {
                continue;
            };
            let mut blobs = Vec::new();
            for (_, row) in r.messages(inbox.id)? {
                if blobs.len() >= KEPT_PER_SWEEP {
                    break;
                }
                if now - row.internal_date >= KEPT_AFTER
                    && row.flags & store::flag::DELETED == 0
                    && r.spam_trained(acct.id, &row.blob)?.is_none()
                {
                    blobs.push(row.blob);
                }
            }
            if !blobs.is_empty() {
                found.push((acct.id, blobs));
            }
        }
        Ok(found)
    })?;
    for (account, blobs) in found {
        store.write(Op::SpamKept { account, blobs })?;
    }
    Ok(())
}

/// The background task: applies queued training events in small commits, paced so that
/// a flood never delays deliveries, and sweeps the INBOXes for kept mail every hour.
pub async fn run(store: Store, cfg: SpamFilterConfig, stop: CancellationToken) {
    if !cfg.enabled {
        return;
    }
    let mut changes = store.subscribe();
    let mut last_sweep: Option<tokio::time::Instant> = None;
    loop {
        if last_sweep.is_none_or(|t| t.elapsed() >= KEPT_SWEEP) {
            last_sweep = Some(tokio::time::Instant::now());
            if let Err(e) = store.call(|s| sweep_kept(s, store::now_unix())).await {
                tracing::warn!(error = %e, "spam filter: kept-mail sweep failed");
            }
        }
        let done = match store.call(train_batch).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "spam filter: training failed; retrying");
                0
            }
        };
        if done > 0 {
            tracing::debug!(trained = done, "spam filter: training applied");
            tokio::select! {
                _ = tokio::time::sleep(PAUSE) => continue,
                _ = stop.cancelled() => return,
            }
        }
        // Nothing queued: wait for a change that may have queued events.
        let wait = async {
            loop {
                match changes.recv().await {
                    Ok(Change::MessageAdded { .. } | Change::FlagsChanged { .. }) => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(_) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SpamFilterConfig {
        SpamFilterConfig {
            enabled: true,
            junk_threshold: 0.9,
            reject_threshold: Some(0.999),
            min_trained: 10,
        }
    }

    #[test]
    fn untrained_accounts_never_junk() {
        let v = decide(
            &cfg(),
            Totals { spam: 9, ham: 500 },
            bayes::Score {
                prob: 1.0,
                used: 100,
            },
        );
        assert_eq!(v.score, None);
        assert!(!v.junk && !v.reject);
        assert_eq!(v.header(), "");
    }

    #[test]
    fn thresholds() {
        let t = Totals { spam: 10, ham: 10 };
        let at = |prob| decide(&cfg(), t, bayes::Score { prob, used: 3 });
        assert!(!at(0.5).junk);
        assert!(at(0.95).junk && !at(0.95).reject);
        assert!(at(0.9995).junk && at(0.9995).reject);
        assert_eq!(
            at(0.95).header(),
            "X-Spam-Score: 0.9500 (bayes, 3 tokens)\r\nX-Spam-Flag: YES\r\n"
        );
        let mut c = cfg();
        c.reject_threshold = None;
        assert!(!decide(&c, t, bayes::Score { prob: 1.0, used: 3 }).reject);
    }

    #[test]
    fn sender_key_by_domain_only_with_dmarc_pass() {
        let pass = "Authentication-Results: mx.home.arpa; dmarc=pass header.from=shop.example\r\n\
                    From: Shop <News@Shop.Example>\r\n\r\nhi\r\n";
        let p = crate::mail::message::parse(pass.as_bytes());
        assert_eq!(
            sender_key(pass.as_bytes(), &p).as_deref(),
            Some("@shop.example")
        );
        let fail = "Authentication-Results: mx.home.arpa; dmarc=fail header.from=shop.example\r\n\
                    From: Shop <News@Shop.Example>\r\n\r\nhi\r\n";
        let p = crate::mail::message::parse(fail.as_bytes());
        assert_eq!(
            sender_key(fail.as_bytes(), &p).as_deref(),
            Some("news@shop.example")
        );
        // The reputation token of a message matches the one of an address written to.
        let k = sent_keys(&["Friend@Example.org".into()]);
        let raw = "From: friend@example.org\r\n\r\nhi\r\n";
        let p = crate::mail::message::parse(raw.as_bytes());
        let t = message_tokens(raw.as_bytes(), &p);
        assert!(k.iter().any(|x| t.binary_search(x).is_ok()));
    }
}
