//! Crash safety (SPEC §5, issue 2 §3): a child process delivers with 8 concurrent
//! writers and prints each acknowledgement; we SIGKILL it at a random moment, 60
//! times over one data directory, and after each kill check that the database opens
//! and holds every delivery that was acknowledged before the kill.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use letterbox::store::{Store, load};

const KILLS: u64 = 60;

/// xorshift64*: deterministic per seed, printed so a failure can be replayed.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn sigkill_never_loses_an_acknowledged_delivery() {
    let dir = tempfile::tempdir().unwrap();
    // xorshift needs a seed other than 0.
    let mut seed = common::crash_seed() | 1;
    eprintln!("CRASH_SEED={seed}");
    let mut total_acks = 0usize;
    let mut killed_mid_delivery = 0;
    for run in 1..=KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_letterbox"))
            .args([
                "debug-store-load",
                "--writers",
                "8",
                "--messages",
                "1000000",
                "--size",
                "4096",
                "--print-acks",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--run")
            .arg(run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn letterbox");
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut it = line.split_whitespace();
                    if let (Some("ack"), Some(w), Some(s)) = (it.next(), it.next(), it.next()) {
                        acks.lock()
                            .unwrap()
                            .push((w.parse::<u32>().unwrap(), s.parse::<u32>().unwrap()));
                    }
                }
            })
        };
        // Kill at a random moment: during open and repair, or mid-delivery.
        let wait = Duration::from_millis(rng(&mut seed) % 400);
        std::thread::sleep(wait);
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = acks.lock().unwrap().clone();
        if !acked.is_empty() {
            killed_mid_delivery += 1;
        }
        total_acks += acked.len();

        let store = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("run {run}: the database does not open after SIGKILL: {e}"));
        let present: HashSet<i64> = store
            .read(|r| {
                let Some(acct) = r.account_by_login(load::LOAD_ACCOUNT)? else {
                    return Ok(HashSet::new());
                };
                let Some(inbox) = r.mailbox(acct.id, "INBOX")? else {
                    return Ok(HashSet::new());
                };
                let rows = r.messages(inbox.id)?;
                for (uid, row) in &rows {
                    assert!(
                        r.blob_refs(&row.blob)? > 0,
                        "run {run}: uid {uid} has no body"
                    );
                }
                Ok(rows.into_iter().map(|(_, row)| row.internal_date).collect())
            })
            .unwrap();
        for (w, s) in &acked {
            assert!(
                present.contains(&load::message_id(run, *w, *s)),
                "run {run}: delivery {w}/{s} was acknowledged but is missing after SIGKILL at {wait:?}"
            );
        }
        store.close();
    }
    eprintln!(
        "{KILLS} kills, {killed_mid_delivery} mid-delivery, {total_acks} acknowledged deliveries all present"
    );
    assert!(
        killed_mid_delivery >= KILLS / 3,
        "too few kills landed during deliveries ({killed_mid_delivery})"
    );
}

/// A power cut during the very first start (while the database file is being
/// created) must never leave a file the next start refuses: kill 30 fresh first starts
/// within their first milliseconds and open each afterwards.
#[test]
fn sigkill_during_first_creation_never_bricks_the_store() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..30u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_letterbox"))
            .args(["debug-store-load", "--writers", "1", "--messages", "10"])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn letterbox");
        std::thread::sleep(Duration::from_micros(rng(&mut seed) % (1000 + 300 * i)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let s = Store::open(dir.path()).unwrap_or_else(|e| panic!("kill {i}: does not open: {e}"));
        s.close();
    }
}
