//! The hardware supervisor: the tokio side of the board (SPEC §6). It owns the [`Health`]
//! state and wires the pure logic of this module's siblings into the daemon.
//!
//! # What runs where
//!
//! ```text
//! board task    (tokio)      ticks the Board at next_wake: LED patterns from Health,
//!                            button presses: short = acknowledge fault 4 + replay,
//!                            hold = cancel the app's stop token (safe shutdown)
//! monitor task  (tokio)      store change events → amber flicker; debounced Stats →
//!                            unseen mail, fault 3 (queue), fault 4 (unclean start),
//!                            fault 1 (disk nearly full); every 30 s also fault 2 (certificate)
//! probe task    (tokio)      store read + (when a watchdog is fed) a connection to each
//!                            of our listeners; a pass stamps `last_probe_ok`; a store
//!                            failure is fault 1
//! feeder thread (OS thread)  feeds the watchdog (and systemd: WATCHDOG=1) only while
//!                            FeedPolicy::should_feed(last_probe_ok, now)
//! ```
//!
//! The probe runs *on the runtime* and the feeder *off it*: a wedged runtime stops the probe,
//! `last_probe_ok` ages, and the live feeder thread stops feeding, so the board resets. The
//! feeder only disarms (magic close) when told to by a clean [`Supervisor::finish`]; if the
//! process dies, the watchdog stays armed on purpose.
//!
//! # Lifecycle
//!
//! [`Supervisor::open_board`] (a bad board file is refused before anything listens) →
//! [`Supervisor::start`] (service Starting, board + monitor tasks) → [`Supervisor::up`]
//! (listeners bound: Up, watchdog opened, probe + feeder, `READY=1`) →
//! [`Supervisor::stopping`] (`STOPPING=1`, green fast blink) → [`Supervisor::finish`]
//! (after the final commit: disarm, Stopped = green off).
//!
//! The decisions are in [`Monitor`], which takes events, stats and times as arguments and
//! is tested without tokio.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::sd_notify::{self, SdNotify};
use super::{
    Board, DeviceWatchdog, FaultClass, FeedPolicy, Health, HwError, LedPatterns, NoWatchdog,
    Pattern, Press, ServiceState, SimControl, Watchdog,
};
use crate::config::Config;
use crate::store::{self, Change, Op, Stats, Store};
use crate::tls::Tls;

/// How long store changes are collected before the stats are recomputed.
pub const STATS_DEBOUNCE: Duration = Duration::from_millis(200);
/// How often the stats and the certificate are checked without any change event (queue age
/// and certificate expiry move with the clock alone).
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(30);
/// Fault 2 is raised this long before the certificate expires.
pub const CERT_WARNING_S: i64 = 7 * 86_400;
/// Fault 3: the oldest pending queue item is older than this.
pub const QUEUE_STUCK_S: i64 = 3_600;
/// Fault 1: less free space than this on the data partition.
pub const LOW_FREE_BYTES: u64 = 2 * store::MIN_FREE_BYTES;
/// Fault 5 clears after this long without a GPIO error.
pub const GPIO_QUIET: Duration = Duration::from_secs(60);
/// The longest one health probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The probe interval when there is no watchdog to feed (it still raises fault 1).
pub const PROBE_IDLE_INTERVAL: Duration = Duration::from_secs(5);
/// While shutting down the listeners are closed on purpose, so the probe checks only the
/// store and the runtime, and passes for at most this long: a shutdown that hangs still
/// ends in a reset.
pub const STOPPING_FEED_LIMIT: Duration = Duration::from_secs(30);
/// How long `letterbox button press` closes the simulated contact.
pub const SHORT_PRESS: Duration = Duration::from_millis(200);
/// The longest `button hold` and the debug requests accept.
pub const MAX_SCRIPT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Pure decisions
// ---------------------------------------------------------------------------------------

/// The supervisor's decisions, as a pure function of what it is told: store change events,
/// stats, probe results, the certificate date and GPIO errors, each with the time.
#[derive(Debug, Default, Clone)]
pub struct Monitor {
    health: Health,
    store_error: Option<String>,
    low_disk: Option<String>,
    config_error: Option<String>,
    queue_stuck: Option<String>,
    relay_refusal: Option<String>,
    gpio: Option<GpioFault>,
}

#[derive(Debug, Clone)]
struct GpioFault {
    last: Instant,
    count: u64,
}

impl Monitor {
    /// Starting, nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The health model.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Sets the service state.
    pub fn set_service(&mut self, state: ServiceState) {
        self.health.service = state;
    }

    /// Takes one store change at `now`. A delivery (`MessageAdded{delivered: true}`) starts
    /// the amber flicker. Returns whether the stats may have changed (recompute them).
    pub fn on_change(&mut self, change: &Change, now: Instant) -> bool {
        match change {
            Change::MessageAdded { delivered, .. } => {
                if *delivered {
                    self.health.delivered(now);
                }
                true
            }
            Change::FlagsChanged { .. }
            | Change::Expunged { .. }
            | Change::MailboxesChanged { .. }
            | Change::AccountsChanged
            | Change::QueueChanged => true,
        }
    }

    /// Takes fresh stats and free space at `now_unix`: unseen mail, fault 3 (queue), fault 4
    /// (unclean start pending), and the disk half of fault 1.
    pub fn apply_stats(&mut self, stats: &Stats, free: Option<u64>, now_unix: i64) {
        self.health.unseen_mail = stats.inbox_unseen > 0;
        self.queue_stuck = queue_fault(stats.oldest_queued, now_unix);
        // A refusing relay only matters while mail waits for it.
        if stats.oldest_queued.is_none() {
            self.relay_refusal = None;
        }
        self.update_outbound();
        let faults = &mut self.health.faults;
        if stats.fault4_pending {
            faults.set(
                FaultClass::UncleanRestart,
                format!(
                    "the previous run did not stop cleanly (watchdog reset, power loss or kill; \
                     {} unclean start{} counted)",
                    stats.unclean_starts,
                    if stats.unclean_starts == 1 { "" } else { "s" }
                ),
            );
        } else {
            faults.clear(FaultClass::UncleanRestart);
        }
        self.low_disk = disk_fault(free);
        self.update_storage();
    }

    /// Takes the store half of fault 1: `Err` when a store read failed.
    pub fn store_result(&mut self, result: Result<(), String>) {
        self.store_error = result.err();
        self.update_storage();
    }

    /// How the last attempt through the relay went (`None`: it accepted mail): with the
    /// oldest deferred message over an hour, the two causes of fault 3 (SPEC §6).
    pub fn relay_result(&mut self, refusal: Option<String>) {
        self.relay_refusal = refusal;
        self.update_outbound();
    }

    fn update_outbound(&mut self) {
        let parts: Vec<&str> = [&self.queue_stuck, &self.relay_refusal]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        match (!parts.is_empty()).then(|| parts.join("; ")) {
            Some(d) => self.health.faults.set(FaultClass::Outbound, d),
            None => self.health.faults.clear(FaultClass::Outbound),
        }
    }

    /// The configuration file could not be used (`serve --survive-bad-config`): fault 1
    /// until a restart with a good file.
    pub fn config_error(&mut self, error: String) {
        self.config_error = Some(format!(
            "configuration error, running with the defaults: {error}"
        ));
        self.update_storage();
    }

    fn update_storage(&mut self) {
        let parts: Vec<&str> = [&self.config_error, &self.store_error, &self.low_disk]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let detail = (!parts.is_empty()).then(|| parts.join("; "));
        match detail {
            Some(d) => self.health.faults.set(FaultClass::Storage, d),
            None => self.health.faults.clear(FaultClass::Storage),
        }
    }

    /// Takes the certificate's not-after date (or why it could not be read): fault 2.
    pub fn apply_cert(&mut self, not_after: Result<i64, String>, now_unix: i64) {
        let detail = match not_after {
            Ok(t) => cert_fault(t, now_unix),
            Err(e) => Some(format!("cannot read the certificate: {e}")),
        };
        match detail {
            Some(d) => self.health.faults.set(FaultClass::Certificate, d),
            None => self.health.faults.clear(FaultClass::Certificate),
        }
    }

    /// Raises (`Some(detail)`) or clears (`None`) a fault whose cause is decided by its
    /// owner (fault 6 by the backup scheduler, fault 7 by the fetcher).
    pub fn set_fault(&mut self, class: FaultClass, detail: Option<String>) {
        match detail {
            Some(d) => self.health.faults.set(class, d),
            None => self.health.faults.clear(class),
        }
    }

    /// The short press: clears fault 4.
    pub fn acknowledge(&mut self) {
        self.health.acknowledge();
    }

    /// Records a GPIO error at `now` (fault 5). Returns whether to log it: the first error,
    /// then every 1000th, so a dead LED cannot flood the log at 100 ticks a second.
    pub fn gpio_error(&mut self, message: &str, now: Instant) -> bool {
        let g = self.gpio.get_or_insert(GpioFault {
            last: now,
            count: 0,
        });
        g.last = now;
        g.count += 1;
        let count = g.count;
        self.health.faults.set(
            FaultClass::Hardware,
            format!(
                "{message} ({count} error{} so far)",
                if count == 1 { "" } else { "s" }
            ),
        );
        count == 1 || count.is_multiple_of(1000)
    }

    /// Advances time: fault 5 clears after [`GPIO_QUIET`] without errors.
    pub fn tick(&mut self, now: Instant) {
        if self
            .gpio
            .as_ref()
            .is_some_and(|g| now.saturating_duration_since(g.last) >= GPIO_QUIET)
        {
            self.gpio = None;
            self.health.faults.clear(FaultClass::Hardware);
        }
    }

    /// What the LEDs show at `now`.
    pub fn patterns(&self, now: Instant) -> LedPatterns {
        self.health.patterns(now)
    }
}

/// Fault 2's words, if the certificate expiring at `not_after` is a fault at `now`.
pub fn cert_fault(not_after: i64, now: i64) -> Option<String> {
    let left = not_after.saturating_sub(now);
    if left <= 0 {
        Some(format!(
            "the certificate expired {} ago",
            span(now.saturating_sub(not_after))
        ))
    } else if left <= CERT_WARNING_S {
        Some(format!("the certificate expires in {}", span(left)))
    } else {
        None
    }
}

/// Fault 3's words, if the oldest pending queue item (created at `oldest`) is stuck at `now`.
pub fn queue_fault(oldest: Option<i64>, now: i64) -> Option<String> {
    let age = now.saturating_sub(oldest?);
    (age > QUEUE_STUCK_S).then(|| format!("the oldest pending message has waited {}", span(age)))
}

/// The disk half of fault 1, if `free` bytes is too little.
pub fn disk_fault(free: Option<u64>) -> Option<String> {
    let free = free?;
    (free < LOW_FREE_BYTES).then(|| {
        format!(
            "disk nearly full: {} MiB free (new mail is refused below {} MiB)",
            free / (1024 * 1024),
            store::MIN_FREE_BYTES / (1024 * 1024)
        )
    })
}

/// A duration in seconds as words: minutes, hours or days.
fn span(secs: i64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s => format!("{} minutes", (s / 60).max(1)),
    }
}

/// A pattern in words, for `letterbox status`.
pub fn pattern_words(p: Pattern) -> String {
    match p {
        Pattern::Off => "off".into(),
        Pattern::Solid => "solid".into(),
        Pattern::SlowBlink => "slow blink".into(),
        Pattern::FastBlink => "fast blink".into(),
        Pattern::Flicker => "flicker".into(),
        Pattern::Code(n) => format!("{n} blink{}, pause", if n == 1 { "" } else { "s" }),
    }
}

// ---------------------------------------------------------------------------------------
// Shared state and the handle the control socket uses
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct WatchdogState {
    device: Option<String>,
    fake: bool,
    timeout: Option<Duration>,
    systemd: Option<Duration>,
    error: Option<String>,
    last_feed: Option<Instant>,
    feeds: u64,
    feeding: bool,
    disarmed: bool,
}

#[derive(Debug, Clone)]
struct ProbeReport {
    at: Instant,
    ok: bool,
    detail: String,
}

#[derive(Debug)]
struct State {
    monitor: Monitor,
    leds: LedPatterns,
    lit: [bool; 3],
    button_pressed: bool,
    watchdog: WatchdogState,
    probe: Option<ProbeReport>,
    stopping_since: Option<Instant>,
}

struct Inner {
    state: Mutex<State>,
    board: String,
    sim: Option<SimControl>,
    runtime: tokio::runtime::Handle,
    /// Wakes the board task (the health changed).
    wake: tokio::sync::Notify,
    /// Asks the monitor task to recompute the stats.
    refresh: tokio::sync::Notify,
    /// When the health probe last passed: written by the probe task, read by the feeder.
    last_probe_ok: Mutex<Option<Instant>>,
    fail_probe_until: Mutex<Option<Instant>>,
    power_off: AtomicBool,
    presses: AtomicU64,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values, each
/// written in one statement).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle on the running supervisor, for `letterbox status`, `letterbox button ...` and
/// the debug requests. Cheap to clone.
#[derive(Clone)]
pub struct Hw {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hw")
            .field("board", &self.inner.board)
            .finish_non_exhaustive()
    }
}

impl Hw {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    fn update(&self, f: impl FnOnce(&mut Monitor)) {
        f(&mut self.state().monitor);
        self.inner.wake.notify_one();
    }

    /// Raises or clears a fault owned by another task (see [`Monitor::set_fault`]).
    pub fn set_fault(&self, class: FaultClass, detail: Option<String>) {
        self.update(|m| m.set_fault(class, detail));
    }

    /// How the last attempt through the relay went (see [`Monitor::relay_result`]).
    pub fn relay_refusal(&self, refusal: Option<String>) {
        self.update(|m| m.relay_result(refusal));
    }

    /// Shows a configuration mistake as fault 1 (see [`Monitor::config_error`]).
    pub fn config_error(&self, error: &str) {
        self.update(|m| m.config_error(error.to_owned()));
    }

    /// `"sim"` or the GPIO chip.
    pub fn board(&self) -> &str {
        &self.inner.board
    }

    /// A copy of the health model.
    pub fn health(&self) -> Health {
        self.state().monitor.health().clone()
    }

    fn sim(&self) -> Result<&SimControl, String> {
        self.inner.sim.as_ref().ok_or_else(|| {
            format!(
                "the button can only be pressed from the command line on the simulated board \
                 (this daemon drives the board on {})",
                self.inner.board
            )
        })
    }

    /// `letterbox button press`: a short press on the simulated board. Returns once the
    /// press has been handled (fault 4 acknowledged in the store), or after 5 s.
    pub fn press(&self) -> Result<String, String> {
        let sim = self.sim()?;
        let before = self.inner.presses.load(Ordering::SeqCst);
        sim.press_for(SHORT_PRESS, Instant::now());
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.inner.presses.load(Ordering::SeqCst) == before {
            if Instant::now() > deadline {
                return Err("the press was not handled within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok("button pressed: fault 4 acknowledged, LEDs replayed".into())
    }

    /// `letterbox button hold SECONDS`: closes the simulated contact for `seconds`. Returns at
    /// once; a hold of 3 s or more shuts the daemon down when it has lasted 3 s.
    pub fn hold(&self, seconds: f64) -> Result<String, String> {
        let sim = self.sim()?;
        let d = script_duration(seconds)?;
        sim.press_for(d, Instant::now());
        Ok(if d >= super::button::HOLD_MIN {
            format!("holding the button for {seconds} s: safe shutdown after 3 s")
        } else if d >= super::button::SHORT_MAX {
            format!(
                "holding the button for {seconds} s: too long for a press, too short for a shutdown; nothing happens"
            )
        } else {
            format!("holding the button for {seconds} s: a short press")
        })
    }

    /// Debug: makes the health probe fail for `seconds` (the watchdog stops being fed).
    pub fn fail_probe_for(&self, seconds: f64) -> Result<String, String> {
        let d = script_duration(seconds)?;
        *lock(&self.inner.fail_probe_until) = Some(Instant::now() + d);
        Ok(format!("the health probe fails for the next {seconds} s"))
    }

    /// Debug: blocks every worker thread of the runtime for `seconds`, starting 200 ms from
    /// now (so this request's answer gets out first).
    pub fn block_runtime(&self, seconds: f64) -> Result<String, String> {
        let d = script_duration(seconds)?;
        let handle = self.inner.runtime.clone();
        let workers = handle.metrics().num_workers();
        std::thread::Builder::new()
            .name("debug-block".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                // Spawned from outside the runtime, the tasks go to the shared queue, where
                // every idle worker takes (or steals) one and blocks on it.
                for _ in 0..workers {
                    handle.spawn(async move { std::thread::sleep(d) });
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "blocking all {workers} runtime workers for {seconds} s"
        ))
    }

    fn fail_probe_active(&self, now: Instant) -> bool {
        lock(&self.inner.fail_probe_until).is_some_and(|t| now < t)
    }

    /// The `letterbox status` lines: board, LEDs, the health in words, watchdog, probe.
    pub fn status_lines(&self) -> Vec<String> {
        let st = self.state();
        let now = Instant::now();
        let mut lines = vec![format!("board: {}", self.inner.board)];
        let led = |name: &str, p: Pattern, lit: bool| {
            format!(
                "{name} {} ({})",
                pattern_words(p),
                if lit { "lit" } else { "dark" }
            )
        };
        lines.push(format!(
            "LEDs: {}, {}, {}",
            led("green", st.leds.green, st.lit[0]),
            led("amber", st.leds.amber, st.lit[1]),
            led("red", st.leds.red, st.lit[2])
        ));
        lines.extend(st.monitor.health().describe());
        let w = &st.watchdog;
        lines.push(match (&w.device, &w.error) {
            (_, Some(e)) => format!("watchdog: {e}"),
            (None, _) => "watchdog: none".to_owned(),
            (Some(dev), None) => {
                let kind = if w.fake {
                    " (a plain file: test fake)".to_owned()
                } else {
                    w.timeout
                        .map(|t| format!(", timeout {} s", t.as_secs()))
                        .unwrap_or_default()
                };
                let fed = match (w.disarmed, w.last_feed) {
                    (true, _) => "disarmed".to_owned(),
                    (false, Some(t)) => format!(
                        "last fed {:.1} s ago{}",
                        now.saturating_duration_since(t).as_secs_f64(),
                        if w.feeding {
                            ""
                        } else {
                            ", NOT FEEDING: the health probe fails"
                        }
                    ),
                    (false, None) => "not fed yet".to_owned(),
                };
                format!("watchdog: {dev}{kind}, {fed} ({} feeds)", w.feeds)
            }
        });
        if let Some(t) = w.systemd {
            lines.push(format!(
                "systemd watchdog: {} s, WATCHDOG=1 with each feed",
                t.as_secs()
            ));
        }
        if let Some(p) = &st.probe {
            lines.push(format!(
                "health probe: {} {:.1} s ago{}",
                if p.ok { "passed" } else { "FAILED" },
                now.saturating_duration_since(p.at).as_secs_f64(),
                if p.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", p.detail)
                }
            ));
        }
        lines
    }

    /// The `letterbox status --json` fields: `board`, `service`, `leds` (pattern and pin
    /// state of each), `button_pressed`, `last_delivery_age_ms`, `health`, `faults`,
    /// `watchdog`, `probe`.
    pub fn status_json(&self) -> serde_json::Value {
        let st = self.state();
        let now = Instant::now();
        let led = |p: Pattern, lit: bool| serde_json::json!({ "pattern": p, "lit": lit });
        let health = st.monitor.health();
        let faults: Vec<_> = health
            .faults
            .active()
            .map(|(c, d)| serde_json::json!({ "code": c.code(), "class": c, "detail": d }))
            .collect();
        let w = &st.watchdog;
        let age_ms = |t: Instant| now.saturating_duration_since(t).as_millis() as u64;
        serde_json::json!({
            "board": self.inner.board,
            "simulated": self.inner.sim.is_some(),
            "service": health.service,
            "leds": {
                "green": led(st.leds.green, st.lit[0]),
                "amber": led(st.leds.amber, st.lit[1]),
                "red": led(st.leds.red, st.lit[2]),
            },
            "button_pressed": st.button_pressed,
            "last_delivery_age_ms": health.last_delivery.map(age_ms),
            "health": health,
            "faults": faults,
            "health_words": health.describe(),
            "watchdog": {
                "device": w.device,
                "fake": w.fake,
                "timeout_s": w.timeout.map(|t| t.as_secs()),
                "systemd_s": w.systemd.map(|t| t.as_secs()),
                "error": w.error,
                "last_feed_age_ms": w.last_feed.map(age_ms),
                "feeds": w.feeds,
                "feeding": w.feeding,
                "disarmed": w.disarmed,
            },
            "probe": st.probe.as_ref().map(|p| serde_json::json!({
                "ok": p.ok, "age_ms": age_ms(p.at), "detail": p.detail,
            })),
        })
    }
}

/// Checks a scripted duration: finite, positive, at most [`MAX_SCRIPT`].
fn script_duration(seconds: f64) -> Result<Duration, String> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_SCRIPT.as_secs_f64()) {
        return Err(format!(
            "expected a number of seconds above 0 and at most {}",
            MAX_SCRIPT.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

// ---------------------------------------------------------------------------------------
// The supervisor
// ---------------------------------------------------------------------------------------

struct Feeder {
    disarm: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The running supervisor, owned by `app::run`.
pub struct Supervisor {
    hw: Hw,
    store: Store,
    cfg: Arc<Config>,
    board_stop: CancellationToken,
    tasks_stop: CancellationToken,
    board_task: Option<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    feeder: Option<Feeder>,
    notify: Option<Arc<SdNotify>>,
}

impl Supervisor {
    /// Opens the board of `[board] name`: board files come from `board_dir` (the `board/`
    /// next to the config file), else the built-in copies. Call before anything listens.
    pub fn open_board(cfg: &Config, board_dir: &Path) -> Result<Board, HwError> {
        super::open(&cfg.board.name, board_dir, Instant::now())
    }

    /// Starts the board task (service Starting: green slow blink) and the monitor task.
    /// A button hold cancels `app_stop`. Must be called inside the runtime.
    pub fn start(
        board: Board,
        store: Store,
        tls: Tls,
        cfg: Arc<Config>,
        app_stop: CancellationToken,
    ) -> Supervisor {
        let hw = Hw {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    monitor: Monitor::new(),
                    leds: LedPatterns::default(),
                    lit: [false; 3],
                    button_pressed: false,
                    watchdog: WatchdogState::default(),
                    probe: None,
                    stopping_since: None,
                }),
                board: board.describe(),
                sim: board.sim_control(),
                runtime: tokio::runtime::Handle::current(),
                wake: tokio::sync::Notify::new(),
                refresh: tokio::sync::Notify::new(),
                last_probe_ok: Mutex::new(None),
                fail_probe_until: Mutex::new(None),
                power_off: AtomicBool::new(false),
                presses: AtomicU64::new(0),
            }),
        };
        let board_stop = CancellationToken::new();
        let tasks_stop = CancellationToken::new();
        let board_task = tokio::spawn(board_loop(
            board,
            hw.clone(),
            store.clone(),
            app_stop,
            board_stop.clone(),
        ));
        let monitor = tokio::spawn(monitor_loop(
            hw.clone(),
            store.clone(),
            tls,
            tasks_stop.clone(),
        ));
        Supervisor {
            hw,
            store,
            cfg,
            board_stop,
            tasks_stop,
            board_task: Some(board_task),
            tasks: vec![monitor],
            feeder: None,
            notify: SdNotify::from_env().map(Arc::new),
        }
    }

    /// The handle for the control socket.
    pub fn hw(&self) -> Hw {
        self.hw.clone()
    }

    /// Every listener is bound and accepting: service Up; opens the watchdog and starts the
    /// probe and the feeder; tells systemd `READY=1`. A watchdog that cannot be opened is
    /// logged and shown in `status`; the mail services run without it.
    pub fn up(&mut self, services: &[(String, SocketAddr)]) {
        self.hw.update(|m| m.set_service(ServiceState::Up));
        let systemd = self
            .notify
            .as_ref()
            .and_then(|_| sd_notify::systemd_watchdog());
        let mut dog: Option<Box<dyn Watchdog>> = None;
        let mut timeout = None;
        {
            let mut st = self.hw.state();
            st.watchdog.systemd = systemd;
            if let Some(path) = &self.cfg.watchdog.device {
                st.watchdog.device = Some(path.display().to_string());
                let configured = Duration::from_secs(u64::from(self.cfg.watchdog.timeout_s));
                match DeviceWatchdog::open(path, configured) {
                    Ok(d) => {
                        st.watchdog.fake = d.is_fake();
                        st.watchdog.timeout = d.timeout();
                        timeout = Some(d.timeout().unwrap_or(configured));
                        dog = Some(Box::new(d));
                    }
                    Err(e) => {
                        let msg = format!(
                            "cannot open {}: {e}; running without a watchdog",
                            path.display()
                        );
                        tracing::error!("watchdog: {msg}");
                        st.watchdog.error = Some(msg);
                    }
                }
            }
        }
        let timeout = match (timeout, systemd) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let policy = timeout.map(FeedPolicy::new);
        if let Some(policy) = policy {
            let dog = dog.unwrap_or_else(|| Box::new(NoWatchdog));
            let (tx, rx) = mpsc::channel();
            let hw = self.hw.clone();
            let notify = self.notify.clone();
            match std::thread::Builder::new()
                .name("watchdog-feeder".into())
                .spawn(move || feeder_loop(dog, policy, hw, notify, rx))
            {
                Ok(thread) => {
                    self.feeder = Some(Feeder { disarm: tx, thread });
                    tracing::info!(
                        interval_ms = policy.interval().as_millis() as u64,
                        "feeding the watchdog while the health probe passes"
                    );
                }
                Err(e) => tracing::error!(error = %e, "cannot start the watchdog feeder"),
            }
        }
        let every = policy.map_or(PROBE_IDLE_INTERVAL, |p| {
            (p.max_probe_age() / 2).clamp(Duration::from_millis(100), PROBE_IDLE_INTERVAL)
        });
        // The listener connections are for the watchdog's sake: without one to feed, the
        // probe checks only the store (fault 1) and takes no connection slot from clients.
        let targets = match policy {
            Some(_) => services
                .iter()
                .map(|(name, addr)| Target::new(name, *addr))
                .collect(),
            None => Vec::new(),
        };
        self.tasks.push(tokio::spawn(probe_loop(
            self.hw.clone(),
            self.store.clone(),
            targets,
            every,
            self.tasks_stop.clone(),
        )));
        if let Some(n) = &self.notify {
            n.send("READY=1");
        }
    }

    /// A shutdown started: green fast blink, `STOPPING=1`.
    pub fn stopping(&self) {
        self.hw.state().stopping_since = Some(Instant::now());
        self.hw.update(|m| m.set_service(ServiceState::Stopping));
        if let Some(n) = &self.notify {
            n.send("STOPPING=1");
        }
    }

    /// After the final commit: stops the probe and monitor, disarms the watchdog if `clean`
    /// (otherwise it is left armed, on purpose), shows Stopped (green off) and stops the board
    /// task. Returns whether a button hold asked for the shutdown (the appliance then powers
    /// off).
    pub async fn finish(mut self, clean: bool) -> bool {
        self.tasks_stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        if let Some(f) = self.feeder.take() {
            if clean {
                let _ = f.disarm.send(());
            }
            drop(f.disarm);
            let joined = tokio::task::spawn_blocking(move || f.thread.join().is_ok());
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), joined).await,
                Ok(Ok(true))
            ) {
                tracing::error!("the watchdog feeder did not finish");
            }
        }
        self.hw.update(|m| m.set_service(ServiceState::Stopped));
        self.board_stop.cancel();
        if let Some(t) = self.board_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        self.hw.inner.power_off.load(Ordering::SeqCst)
    }
}

/// Ticks the board at its next wake: LEDs from the health, presses acted on, GPIO errors
/// turned into fault 5. Exits after one last tick once `board_stop` is cancelled.
async fn board_loop(
    mut board: Board,
    hw: Hw,
    store: Store,
    app_stop: CancellationToken,
    board_stop: CancellationToken,
) {
    loop {
        let last = board_stop.is_cancelled();
        let now = Instant::now();
        let patterns = {
            let mut st = hw.state();
            st.monitor.tick(now);
            st.monitor.patterns(now)
        };
        board.set_leds(patterns, now);
        match board.tick(now) {
            Ok(None) => {}
            Ok(Some(Press::Short)) => {
                tracing::info!("button: short press: acknowledging fault 4, replaying the LEDs");
                let patterns = {
                    let mut st = hw.state();
                    st.monitor.acknowledge();
                    st.monitor.patterns(now)
                };
                board.set_leds(patterns, now);
                board.replay(now);
                let (store, hw) = (store.clone(), hw.clone());
                tokio::spawn(async move {
                    if let Err(e) = store
                        .call(|s| s.write(Op::SetMeta("fault4_pending", 0)))
                        .await
                    {
                        tracing::error!(error = %e, "cannot record the acknowledgement");
                    }
                    hw.inner.refresh.notify_one();
                    hw.inner.presses.fetch_add(1, Ordering::SeqCst);
                });
            }
            Ok(Some(Press::Hold)) => {
                if !hw.inner.power_off.swap(true, Ordering::SeqCst) {
                    tracing::warn!("button held for 3 s: safe shutdown");
                    app_stop.cancel();
                }
            }
            Err(e) => {
                let log = hw.state().monitor.gpio_error(&e.to_string(), now);
                if log {
                    tracing::error!(error = %e, "GPIO error (fault 5); the mail services keep running");
                }
            }
        }
        {
            let mut st = hw.state();
            st.leds = board.patterns();
            st.lit = board.led_states();
            st.button_pressed = board.button_pressed();
        }
        if last {
            break;
        }
        // The button is polled every 10 ms, so the flicker's end is never missed by more.
        let wake = tokio::time::Instant::from_std(board.next_wake(Instant::now()));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = hw.inner.wake.notified() => {}
            _ = board_stop.cancelled() => {}
        }
    }
}

/// Follows the store's change events and the clock: amber flicker, debounced stats, and the
/// certificate every [`MONITOR_INTERVAL`].
async fn monitor_loop(hw: Hw, store: Store, tls: Tls, stop: CancellationToken) {
    use tokio::sync::broadcast::error::RecvError;
    use tokio::time::Instant as TInstant;
    let mut changes = store.subscribe();
    let mut stats_due: Option<TInstant> = Some(TInstant::now());
    let mut full_due = TInstant::now();
    loop {
        let deadline = stats_due.map_or(full_due, |s| s.min(full_due));
        tokio::select! {
            _ = stop.cancelled() => break,
            ev = changes.recv() => {
                let now = Instant::now();
                let dirty = match ev {
                    Ok(c) => {
                        let dirty = hw.state().monitor.on_change(&c, now);
                        if matches!(c, Change::MessageAdded { delivered: true, .. }) {
                            hw.inner.wake.notify_one();
                        }
                        dirty
                    }
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => break,
                };
                if dirty && stats_due.is_none() {
                    stats_due = Some(TInstant::now() + STATS_DEBOUNCE);
                }
            }
            _ = hw.inner.refresh.notified() => {
                stats_due = Some(TInstant::now());
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = TInstant::now();
                if full_due <= now {
                    full_due = now + MONITOR_INTERVAL;
                    let t = tls.clone();
                    let not_after = tokio::task::spawn_blocking(move || t.not_after())
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    hw.update(|m| m.apply_cert(not_after, store::now_unix()));
                    stats_due = Some(now);
                }
                if stats_due.is_some_and(|s| s <= now) {
                    stats_due = None;
                    refresh_stats(&hw, &store).await;
                }
            }
        }
    }
}

async fn refresh_stats(hw: &Hw, store: &Store) {
    let r = store
        .call(|s| {
            let file_bytes = std::fs::metadata(s.path()).map(|m| m.len()).unwrap_or(0);
            let stats = s.read(|r| r.stats(file_bytes))?;
            Ok((stats, s.free_space()))
        })
        .await;
    match r {
        Ok((stats, free)) => hw.update(|m| m.apply_stats(&stats, free, store::now_unix())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store's stats");
            hw.update(|m| m.store_result(Err(format!("database error: {e}"))));
        }
    }
}

/// One of our listeners, as the probe connects to it.
#[derive(Debug, Clone)]
struct Target {
    service: String,
    addr: SocketAddr,
    /// A plaintext listener whose greeting proves its accept loop and a session run.
    greets: bool,
}

impl Target {
    fn new(service: &str, addr: SocketAddr) -> Target {
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        Target {
            service: service.to_owned(),
            addr,
            greets: matches!(service, "smtp" | "submission" | "pop3" | "imap"),
        }
    }

    async fn check(&self) -> Result<(), String> {
        let mut s = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("{} on {}: {e}", self.service, self.addr))?;
        if self.greets {
            let mut b = [0u8; 1];
            match s.read(&mut b).await {
                Ok(1) => {}
                Ok(_) => return Err(format!("{} on {}: closed at once", self.service, self.addr)),
                Err(e) => return Err(format!("{} on {}: {e}", self.service, self.addr)),
            }
        }
        Ok(())
    }
}

/// The health probe, on the runtime: a store read and every listener; a pass stamps
/// `last_probe_ok`.
async fn probe_loop(
    hw: Hw,
    store: Store,
    targets: Vec<Target>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut was_ok = true;
    loop {
        let result = probe_once(&hw, &store, &targets).await;
        let now = Instant::now();
        let ok = result.is_ok();
        if ok {
            *lock(&hw.inner.last_probe_ok) = Some(now);
        }
        if ok != was_ok {
            match &result {
                Ok(()) => tracing::info!("health probe passes again"),
                Err(e) => tracing::warn!(error = %e, "health probe failed"),
            }
            was_ok = ok;
        }
        hw.state().probe = Some(ProbeReport {
            at: now,
            ok,
            detail: result.err().unwrap_or_default(),
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn probe_once(hw: &Hw, store: &Store, targets: &[Target]) -> Result<(), String> {
    let now = Instant::now();
    let store_result = if hw.fail_probe_active(now) {
        Err("probe failure injected (debug-fail-probe)".to_owned())
    } else {
        let read = store.call(|s| s.read(|r| r.meta("schema_version")));
        match tokio::time::timeout(PROBE_TIMEOUT, read).await {
            Ok(Ok(v)) if v > 0 => Ok(()),
            Ok(Ok(_)) => Err("database error: no schema version".to_owned()),
            Ok(Err(e)) => Err(format!("database error: {e}")),
            Err(_) => Err(format!(
                "database error: a read took over {PROBE_TIMEOUT:?}"
            )),
        }
    };
    hw.update(|m| m.store_result(store_result.clone()));
    store_result?;
    let stopping_since = hw.state().stopping_since;
    match stopping_since {
        // Shutting down: the listeners are closed on purpose.
        Some(t) if now.saturating_duration_since(t) < STOPPING_FEED_LIMIT => Ok(()),
        Some(_) => Err(format!("shutdown has taken over {STOPPING_FEED_LIMIT:?}")),
        None => {
            let all = async {
                for t in targets {
                    t.check().await?;
                }
                Ok::<(), String>(())
            };
            tokio::time::timeout(PROBE_TIMEOUT, all)
                .await
                .map_err(|_| format!("a listener did not answer within {PROBE_TIMEOUT:?}"))?
        }
    }
}

/// The feeder, on its own OS thread: every interval, feeds only if the probe passed
/// recently. A message on `disarm` disarms (magic close); the channel closing without one
/// leaves the watchdog armed.
fn feeder_loop(
    mut dog: Box<dyn Watchdog>,
    policy: FeedPolicy,
    hw: Hw,
    notify: Option<Arc<SdNotify>>,
    disarm: mpsc::Receiver<()>,
) {
    let mut starving = false;
    let mut errors = 0u64;
    loop {
        match disarm.recv_timeout(policy.interval()) {
            Ok(()) => {
                let r = dog.disarm();
                let mut st = hw.state();
                match r {
                    Ok(()) => st.watchdog.disarmed = true,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot disarm the watchdog");
                        st.watchdog.error = Some(format!("disarm failed: {e}"));
                    }
                }
                st.watchdog.feeding = false;
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                tracing::warn!("watchdog left armed (unclean shutdown)");
                return; // dropping `dog` closes it without the magic `V`
            }
        }
        let now = Instant::now();
        let last_ok = *lock(&hw.inner.last_probe_ok);
        if !policy.should_feed(last_ok, now) {
            if !starving {
                tracing::error!(
                    last_pass_ms =
                        last_ok.map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    "the health probe has not passed recently: not feeding the watchdog"
                );
                starving = true;
            }
            hw.state().watchdog.feeding = false;
            continue;
        }
        if starving {
            tracing::info!("the health probe passes: feeding the watchdog again");
            starving = false;
        }
        match dog.feed() {
            Ok(()) => {
                if let Some(n) = &notify {
                    n.send("WATCHDOG=1");
                }
                let mut st = hw.state();
                st.watchdog.last_feed = Some(Instant::now());
                st.watchdog.feeds += 1;
                st.watchdog.feeding = true;
            }
            Err(e) => {
                errors += 1;
                if errors == 1 || errors.is_multiple_of(100) {
                    tracing::error!(error = %e, errors, "feeding the watchdog failed");
                }
                hw.state().watchdog.feeding = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(delivered: bool) -> Change {
        Change::MessageAdded {
            account: 1,
            mailbox: 1,
            uid: 1,
            modseq: 1,
            delivered,
        }
    }

    #[test]
    fn delivery_flickers_and_asks_for_stats() {
        use crate::hw::health::FLICKER_FOR;
        let t0 = Instant::now();
        let mut m = Monitor::new();
        m.set_service(ServiceState::Up);
        assert!(m.on_change(&added(false), t0));
        assert_eq!(
            m.patterns(t0).amber,
            Pattern::Off,
            "APPEND/COPY do not flicker"
        );
        assert!(m.on_change(&added(true), t0));
        assert_eq!(m.patterns(t0).amber, Pattern::Flicker);
        assert_eq!(m.patterns(t0 + FLICKER_FOR).amber, Pattern::Off);
        let flags = Change::FlagsChanged {
            account: 1,
            mailbox: 1,
            uids: vec![1],
            modseq: 2,
        };
        assert!(m.on_change(&flags, t0));
        assert!(m.on_change(&Change::QueueChanged, t0));
    }

    #[test]
    fn a_refusing_relay_is_fault_three_until_it_accepts_or_the_queue_drains() {
        let t0 = Instant::now();
        let now = 1_700_000_000;
        let mut m = Monitor::new();
        m.set_service(ServiceState::Up);
        let mut s = Stats {
            oldest_queued: Some(now - 60),
            ..Stats::default()
        };
        m.apply_stats(&s, Some(1 << 40), now);
        assert_eq!(m.patterns(t0).red, Pattern::Off);
        m.relay_result(Some(
            "the relay smtp.example:587 refuses: 535 5.7.8 bad".into(),
        ));
        assert_eq!(m.patterns(t0).red, Pattern::Code(3));
        // Fresh stats with mail still waiting keep it.
        m.apply_stats(&s, Some(1 << 40), now);
        let d = m.health().describe().join("\n");
        assert!(
            d.contains("fault 3, outbound mail stuck: the relay smtp.example:587 refuses"),
            "{d}"
        );
        // The relay accepts again.
        m.relay_result(None);
        assert_eq!(m.patterns(t0).red, Pattern::Off);
        // Refused, then the queue empties (the user deleted the message): cleared.
        m.relay_result(Some("refuses".into()));
        s.oldest_queued = None;
        m.apply_stats(&s, Some(1 << 40), now);
        assert_eq!(m.patterns(t0).red, Pattern::Off);
    }

    #[test]
    fn a_configuration_error_is_fault_one_beside_storage_errors() {
        let t0 = Instant::now();
        let mut m = Monitor::new();
        m.set_service(ServiceState::Up);
        m.config_error("letterbox.toml:3: server.domains: bad".into());
        assert_eq!(m.patterns(t0).red, Pattern::Code(1));
        m.store_result(Ok(()));
        m.apply_stats(&Stats::default(), Some(1 << 40), 1_700_000_000);
        let d = m.health().describe().join("\n");
        assert!(
            d.contains("configuration error, running with the defaults: letterbox.toml:3"),
            "{d}"
        );
        assert_eq!(m.patterns(t0).red, Pattern::Code(1));
    }

    #[test]
    fn stats_drive_amber_and_faults_three_and_four() {
        let t0 = Instant::now();
        let now = 1_700_000_000;
        let mut m = Monitor::new();
        m.set_service(ServiceState::Up);
        let mut s = Stats {
            inbox_unseen: 2,
            unclean_starts: 1,
            fault4_pending: true,
            oldest_queued: Some(now - 3_601),
            ..Stats::default()
        };
        m.apply_stats(&s, Some(1 << 40), now);
        let p = m.patterns(t0);
        assert_eq!(
            (p.green, p.amber, p.red),
            (Pattern::Solid, Pattern::Solid, Pattern::Code(3))
        );
        let d = m.health().describe().join("\n");
        assert!(
            d.contains(
                "fault 3, outbound mail stuck: the oldest pending message has waited 60 minutes"
            ),
            "{d}"
        );
        assert!(
            d.contains("fault 4, restarted after a hang: the previous run did not stop cleanly"),
            "{d}"
        );
        assert!(d.contains("1 unclean start counted"), "{d}");
        // The queue drains and the message is read: only fault 4 is left.
        s.inbox_unseen = 0;
        s.oldest_queued = Some(now - 60);
        m.apply_stats(&s, Some(1 << 40), now);
        let p = m.patterns(t0);
        assert_eq!((p.amber, p.red), (Pattern::Off, Pattern::Code(4)));
        // A short press clears it at once; the store agrees on the next stats.
        m.acknowledge();
        assert_eq!(m.patterns(t0).red, Pattern::Off);
        s.fault4_pending = false;
        m.apply_stats(&s, Some(1 << 40), now);
        assert_eq!(m.patterns(t0).red, Pattern::Off);
    }

    #[test]
    fn storage_fault_from_probe_or_disk() {
        let t0 = Instant::now();
        let mut m = Monitor::new();
        m.set_service(ServiceState::Up);
        m.store_result(Err("database error: io".into()));
        assert_eq!(m.patterns(t0).red, Pattern::Code(1));
        assert_eq!(m.patterns(t0).green, Pattern::SlowBlink);
        m.apply_stats(&Stats::default(), Some(LOW_FREE_BYTES - 1), 0);
        let detail = m.health().faults.storage.clone().unwrap();
        assert!(
            detail.starts_with("database error: io; disk nearly full: 63 MiB free"),
            "{detail}"
        );
        m.store_result(Ok(()));
        assert!(
            m.health()
                .faults
                .storage
                .as_deref()
                .unwrap()
                .starts_with("disk nearly full")
        );
        m.apply_stats(&Stats::default(), Some(LOW_FREE_BYTES), 0);
        assert_eq!(m.health().faults.storage, None);
        assert_eq!(m.patterns(t0).green, Pattern::Solid);
        // Free space unknown: no fault.
        m.apply_stats(&Stats::default(), None, 0);
        assert_eq!(m.patterns(t0).red, Pattern::Off);
    }

    #[test]
    fn certificate_fault_two() {
        let now = 1_700_000_000;
        assert_eq!(cert_fault(now + CERT_WARNING_S + 1, now), None);
        assert_eq!(
            cert_fault(now + CERT_WARNING_S, now).as_deref(),
            Some("the certificate expires in 7 days")
        );
        assert_eq!(
            cert_fault(now + 3 * 3600, now).as_deref(),
            Some("the certificate expires in 3 hours")
        );
        assert_eq!(
            cert_fault(now, now).as_deref(),
            Some("the certificate expired 1 minutes ago")
        );
        assert_eq!(
            cert_fault(now - 10 * 86_400, now).as_deref(),
            Some("the certificate expired 10 days ago")
        );
        let mut m = Monitor::new();
        m.apply_cert(Ok(now + 86_400), now);
        assert_eq!(m.patterns(Instant::now()).red, Pattern::Code(2));
        m.apply_cert(Ok(now + 365 * 86_400), now);
        assert_eq!(m.patterns(Instant::now()).red, Pattern::Off);
        m.apply_cert(Err("cert.pem: no certificate found".into()), now);
        assert!(
            m.health()
                .faults
                .certificate
                .as_deref()
                .unwrap()
                .contains("cannot read")
        );
    }

    #[test]
    fn queue_fault_three_boundary() {
        assert_eq!(queue_fault(None, 10_000), None);
        assert_eq!(queue_fault(Some(10_000 - QUEUE_STUCK_S), 10_000), None);
        assert!(queue_fault(Some(10_000 - QUEUE_STUCK_S - 1), 10_000).is_some());
    }

    #[test]
    fn gpio_errors_are_fault_five_logged_sparingly_and_clear_when_quiet() {
        let t0 = Instant::now();
        let mut m = Monitor::new();
        m.set_service(ServiceState::Up);
        assert!(m.gpio_error("GPIO error on the red LED: EIO", t0));
        assert!(!m.gpio_error("GPIO error on the red LED: EIO", t0));
        assert_eq!(m.patterns(t0).red, Pattern::Code(5));
        assert_eq!(
            m.patterns(t0).green,
            Pattern::Solid,
            "mail services unaffected"
        );
        for _ in 2..999 {
            m.gpio_error("x", t0);
        }
        assert!(m.gpio_error("x", t0), "every 1000th is logged");
        m.tick(t0 + GPIO_QUIET - Duration::from_millis(1));
        assert!(m.health().faults.hardware.is_some());
        m.tick(t0 + GPIO_QUIET);
        assert_eq!(m.health().faults.hardware, None);
        assert_eq!(m.patterns(t0).red, Pattern::Off);
    }

    #[test]
    fn service_lifecycle_patterns() {
        let t0 = Instant::now();
        let mut m = Monitor::new();
        assert_eq!(m.patterns(t0).green, Pattern::SlowBlink);
        for (s, p) in [
            (ServiceState::Up, Pattern::Solid),
            (ServiceState::Stopping, Pattern::FastBlink),
            (ServiceState::Stopped, Pattern::Off),
        ] {
            m.set_service(s);
            assert_eq!(m.patterns(t0).green, p);
        }
    }

    #[test]
    fn words_for_patterns_and_durations() {
        assert_eq!(pattern_words(Pattern::Code(1)), "1 blink, pause");
        assert_eq!(pattern_words(Pattern::Code(4)), "4 blinks, pause");
        assert_eq!(pattern_words(Pattern::SlowBlink), "slow blink");
        assert!(script_duration(0.0).is_err());
        assert!(script_duration(f64::NAN).is_err());
        assert!(script_duration(61.0).is_err());
        assert_eq!(script_duration(3.0), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn probe_targets_connect_to_loopback_for_wildcards() {
        let t = Target::new("smtp", "0.0.0.0:25".parse().unwrap());
        assert_eq!(t.addr, "127.0.0.1:25".parse().unwrap());
        assert!(t.greets);
        let t = Target::new("imaps", "[::]:993".parse().unwrap());
        assert_eq!(t.addr, "[::1]:993".parse().unwrap());
        assert!(!t.greets);
    }
}
