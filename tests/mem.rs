//! The heap policy (`letterbox::mem`) in a process of its own, so that no other test's
//! allocations blur the measurement: memory freed on other threads is given back by
//! `trim`, not kept in glibc's arenas.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn memory_freed_on_other_threads_is_given_back() {
    letterbox::mem::tune();
    let before = rss_kib();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                // 64 MiB in 64 KiB blocks (below the mmap threshold: arena memory),
                // then a small block above them that stays (a session's state, say): the
                // arena cannot shrink from the top, only `trim` gives the middle back.
                let v: Vec<Vec<u8>> = (0..1024).map(|_| vec![1u8; 64 * 1024]).collect();
                let pin: &'static mut [u8] = Box::leak(vec![1u8; 64].into_boxed_slice());
                std::hint::black_box((&v, pin));
                drop(v);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let kept = rss_kib();
    letterbox::mem::trim();
    let after = rss_kib();
    eprintln!("RSS: {before} KiB before, {kept} KiB after the threads, {after} KiB after trim");
    // 256 MiB were touched; what stays after the trim must be a small part of it.
    assert!(
        after < before + 32 * 1024,
        "{before} -> {kept} -> {after} KiB"
    );
}
