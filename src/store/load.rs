//! Synthetic delivery load against a store: `writers` threads each deliver `count`
//! messages of `size` bytes, one durable delivery at a time, and report each
//! acknowledgement. The SIGKILL crash test drives it in a child process (through the
//! hidden `letterbox debug-store-load` command) and the throughput benchmark in
//! process; the acknowledgement is the same one SMTP's 250 waits for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{MailboxSel, NewMessage, Op, Output, Result, Store, Target};

/// The account the load delivers to.
pub const LOAD_ACCOUNT: &str = "load@home.arpa";

/// Unique id of a load message, kept as its INTERNALDATE so a checker can find it
/// without reading bodies: `run * 10^12 + writer * 10^9 + seq` (run < 9 * 10^6,
/// writer < 1000).
pub fn message_id(run: u64, writer: u32, seq: u32) -> i64 {
    (run as i64) * 1_000_000_000_000 + i64::from(writer) * 1_000_000_000 + i64::from(seq)
}

/// A message of about `size` bytes, unique to (writer, seq, run).
pub fn make_message(writer: u32, seq: u32, run: u64, size: usize) -> Vec<u8> {
    let head = format!(
        "From: load@home.arpa\r\nTo: load@home.arpa\r\nSubject: load {run} {writer} {seq}\r\nMessage-ID: <{run}.{writer}.{seq}@load>\r\n\r\n"
    );
    let mut m = head.into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n";
    while m.len() + line.len() <= size.max(m.len() + line.len()) && m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

/// Ensures the load account exists; returns its id.
pub fn ensure_account(store: &Store) -> Result<u64> {
    if let Some(a) = store.read(|r| r.account_by_login(LOAD_ACCOUNT))? {
        return Ok(a.id);
    }
    match store.write(Op::CreateAccount {
        address: LOAD_ACCOUNT.into(),
        password_hash: "!".into(),
    })? {
        Output::Id(id) => Ok(id),
        _ => Err(super::Error::Storage("unexpected output".into())),
    }
}

/// Result of a run.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    /// Acknowledged deliveries.
    pub delivered: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs the load; `on_ack(writer, seq)` is called after each durable delivery.
pub fn run(
    store: &Store,
    writers: u32,
    count: u32,
    size: usize,
    run_id: u64,
    on_ack: Arc<dyn Fn(u32, u32) + Send + Sync>,
) -> Result<LoadReport> {
    let account = ensure_account(store)?;
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let on_ack = on_ack.clone();
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0;
                for seq in 0..count {
                    let msg = Arc::new(NewMessage::new(make_message(w, seq, run_id, size)));
                    store.write(Op::Deliver {
                        message: msg,
                        targets: vec![Target {
                            account,
                            mailbox: MailboxSel::Inbox,
                        }],
                        flags: 0,
                        keywords: Vec::new(),
                        internal_date: message_id(run_id, w, seq),
                        delivered: true,
                    })?;
                    on_ack(w, seq);
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    // Join every writer before reporting an error, so each one has printed the
    // acknowledgements of the deliveries it got answered.
    let mut delivered = 0;
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(n)) => delivered += n,
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(super::Error::Storage("writer thread panicked".into()));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(LoadReport {
            delivered,
            elapsed: start.elapsed(),
        }),
    }
}
