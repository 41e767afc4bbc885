//! Store delivery throughput (issue 2 §9): durable deliveries of 4 KiB messages with
//! 1 and with 16 concurrent writers, each acknowledged only after its commit is
//! durable. The ratio shows what group commit buys. Run with
//! `cargo bench --bench store` (release profile); prints medians of 5 runs.

use std::sync::Arc;
use std::time::Duration;

use letterbox::store::{Store, load};

fn once(writers: u32, per_writer: u32) -> f64 {
    let dir = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .unwrap();
    let store = Store::open(dir.path()).unwrap();
    load::ensure_account(&store).unwrap();
    let r = load::run(&store, writers, per_writer, 4096, 0, Arc::new(|_, _| {})).unwrap();
    store.close();
    r.delivered as f64 / r.elapsed.as_secs_f64().max(1e-9)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (reps, one, sixteen) = if quick { (1, 20, 5) } else { (5, 400, 100) };
    let mut results = Vec::new();
    for (writers, per) in [(1u32, one), (16u32, sixteen)] {
        let runs: Vec<f64> = (0..reps).map(|_| once(writers, per)).collect();
        let m = median(runs.clone());
        println!(
            "store deliveries, 4 KiB, {writers:>2} writer(s): median {m:>8.0} msg/s  (runs: {})",
            runs.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        results.push(m);
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "group commit: 16 writers / 1 writer = {:.1}x",
        results[1] / results[0]
    );
}
