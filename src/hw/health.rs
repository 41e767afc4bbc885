//! The health model behind the LEDs (SPEC §6), as plain data and pure functions.
//!
//! [`Health`] records the service state, the mail state and the four fault classes;
//! [`Health::patterns`] turns it into what each LED shows and [`Health::describe`] into words
//! for `letterbox status`. The daemon updates `Health` and hands the patterns to the board;
//! nothing here touches a pin or reads a clock.
//!
//! Choices the SPEC leaves open:
//!
//! - green is solid only when the services are up *and* there is no storage fault. Up with a
//!   storage fault shows the slow blink ("not ready"), never off, because off means "safe to
//!   unplug";
//! - the amber flicker after a delivery lasts [`FLICKER_FOR`] and takes precedence over solid;
//! - red shows the *lowest-numbered* active fault: storage is the most urgent (mail may be at
//!   risk) and the restart notice the least. `describe` lists every active fault;
//! - a fifth class, [`FaultClass::Hardware`], is ours: an LED or the button failed at run
//!   time (a GPIO error). The mail services keep running; red blinks 5 if it still can.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::led::Pattern;

/// How long the amber LED flickers after a delivery.
pub const FLICKER_FOR: Duration = Duration::from_secs(1);

/// What the three LEDs show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct LedPatterns {
    /// Health LED.
    pub green: Pattern,
    /// Mail LED.
    pub amber: Pattern,
    /// Fault LED.
    pub red: Pattern,
}

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Opening the store and the listeners.
    #[default]
    Starting,
    /// Every service is accepting.
    Up,
    /// Safe shutdown in progress.
    Stopping,
    /// Shut down: safe to unplug.
    Stopped,
}

/// The fault classes of SPEC §6; the discriminant is the red LED's blink count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    /// 1: database error, or the disk nearly full.
    Storage = 1,
    /// 2: certificate expired or expiring within 7 days.
    Certificate = 2,
    /// 3: outbound mail stuck (oldest deferred message over 1 hour, or the relay refuses).
    Outbound = 3,
    /// 4: the box restarted after a hang (watchdog or unclean reset), until acknowledged.
    UncleanRestart = 4,
    /// 5 (ours, not in SPEC §6): a GPIO read or write failed at run time.
    Hardware = 5,
    /// 6 (SPEC §6 "further classes"): the last scheduled backup failed, or none succeeded
    /// for over two days while `[backup] schedule` is set.
    Backup = 6,
    /// 7 (SPEC §6 "further classes"): pulling from a `[[fetch]]` account has failed for
    /// over a day.
    Fetch = 7,
}

impl FaultClass {
    /// Every class, lowest number first.
    pub const ALL: [FaultClass; 7] = [
        FaultClass::Storage,
        FaultClass::Certificate,
        FaultClass::Outbound,
        FaultClass::UncleanRestart,
        FaultClass::Hardware,
        FaultClass::Backup,
        FaultClass::Fetch,
    ];

    /// The class number, which is also the number of red blinks.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short name for the class.
    pub fn label(self) -> &'static str {
        match self {
            FaultClass::Storage => "storage",
            FaultClass::Certificate => "certificate",
            FaultClass::Outbound => "outbound mail stuck",
            FaultClass::UncleanRestart => "restarted after a hang",
            FaultClass::Hardware => "hardware (GPIO)",
            FaultClass::Backup => "backup failing",
            FaultClass::Fetch => "pulling mail failing",
        }
    }
}

/// The active faults, each with a detail in words (`None` = not active).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// Fault 1: database error or disk nearly full.
    pub storage: Option<String>,
    /// Fault 2: certificate expired or expiring within 7 days.
    pub certificate: Option<String>,
    /// Fault 3: outbound mail stuck.
    pub outbound: Option<String>,
    /// Fault 4: unclean restart, until acknowledged with a short press.
    pub unclean_restart: Option<String>,
    /// Fault 5: an LED or the button failed at run time.
    pub hardware: Option<String>,
    /// Fault 6: scheduled backups failing.
    pub backup: Option<String>,
    /// Fault 7: pulling from a remote account failing.
    pub fetch: Option<String>,
}

impl Faults {
    fn slot(&mut self, class: FaultClass) -> &mut Option<String> {
        match class {
            FaultClass::Storage => &mut self.storage,
            FaultClass::Certificate => &mut self.certificate,
            FaultClass::Outbound => &mut self.outbound,
            FaultClass::UncleanRestart => &mut self.unclean_restart,
            FaultClass::Hardware => &mut self.hardware,
            FaultClass::Backup => &mut self.backup,
            FaultClass::Fetch => &mut self.fetch,
        }
    }

    /// The detail of `class` if it is active.
    pub fn get(&self, class: FaultClass) -> Option<&str> {
        match class {
            FaultClass::Storage => self.storage.as_deref(),
            FaultClass::Certificate => self.certificate.as_deref(),
            FaultClass::Outbound => self.outbound.as_deref(),
            FaultClass::UncleanRestart => self.unclean_restart.as_deref(),
            FaultClass::Hardware => self.hardware.as_deref(),
            FaultClass::Backup => self.backup.as_deref(),
            FaultClass::Fetch => self.fetch.as_deref(),
        }
    }

    /// Raises `class` with `detail` (replacing an earlier detail).
    pub fn set(&mut self, class: FaultClass, detail: impl Into<String>) {
        *self.slot(class) = Some(detail.into());
    }

    /// Clears `class`.
    pub fn clear(&mut self, class: FaultClass) {
        *self.slot(class) = None;
    }

    /// The active faults, lowest number first.
    pub fn active(&self) -> impl Iterator<Item = (FaultClass, &str)> {
        FaultClass::ALL
            .into_iter()
            .filter_map(|c| self.get(c).map(|d| (c, d)))
    }

    /// The lowest-numbered active fault: the one the red LED shows.
    pub fn lowest(&self) -> Option<FaultClass> {
        self.active().next().map(|(c, _)| c)
    }
}

/// Everything the LEDs and `letterbox status` report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Service state (green LED).
    pub service: ServiceState,
    /// Some account's INBOX has unseen mail (amber LED solid).
    pub unseen_mail: bool,
    /// When the last message was delivered (amber flicker). Not serialized: an `Instant`
    /// means nothing outside this process.
    #[serde(skip)]
    pub last_delivery: Option<Instant>,
    /// Active faults (red LED).
    pub faults: Faults,
}

impl Health {
    /// Starting, no mail, no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a delivery at `now` (starts the amber flicker).
    pub fn delivered(&mut self, now: Instant) {
        self.last_delivery = Some(now);
    }

    /// The short press: clears fault 4 (the unclean-restart notice).
    pub fn acknowledge(&mut self) {
        self.faults.clear(FaultClass::UncleanRestart);
    }

    /// What each LED shows at `now` (SPEC §6 table; see the module doc for the choices).
    pub fn patterns(&self, now: Instant) -> LedPatterns {
        let green = match self.service {
            ServiceState::Starting => Pattern::SlowBlink,
            ServiceState::Up if self.faults.storage.is_some() => Pattern::SlowBlink,
            ServiceState::Up => Pattern::Solid,
            ServiceState::Stopping => Pattern::FastBlink,
            ServiceState::Stopped => Pattern::Off,
        };
        let amber = if self.delivered_recently(now) {
            Pattern::Flicker
        } else if self.unseen_mail {
            Pattern::Solid
        } else {
            Pattern::Off
        };
        let red = self
            .faults
            .lowest()
            .map_or(Pattern::Off, |c| Pattern::Code(c.code()));
        LedPatterns { green, amber, red }
    }

    /// Whether a delivery happened within [`FLICKER_FOR`] before `now`.
    pub fn delivered_recently(&self, now: Instant) -> bool {
        self.last_delivery
            .is_some_and(|t| now.saturating_duration_since(t) < FLICKER_FOR)
    }

    /// Every part of the state in words, one line each, for `letterbox status`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(match self.service {
            ServiceState::Starting => "service: starting (green slow blink)".to_owned(),
            ServiceState::Up if self.faults.storage.is_some() => {
                "service: up, but the store is not healthy (green slow blink)".to_owned()
            }
            ServiceState::Up => "service: up, store healthy (green solid)".to_owned(),
            ServiceState::Stopping => "service: shutting down (green fast blink)".to_owned(),
            ServiceState::Stopped => "service: stopped, safe to unplug (green off)".to_owned(),
        });
        lines.push(if self.unseen_mail {
            "mail: unseen mail in an INBOX (amber solid)".to_owned()
        } else {
            "mail: no unseen mail (amber off)".to_owned()
        });
        if self.last_delivery.is_some() {
            lines.push("mail: a message has been delivered since start".to_owned());
        }
        let lowest = self.faults.lowest();
        for (class, detail) in self.faults.active() {
            let n = class.code();
            let shown = if Some(class) == lowest {
                format!("red: {n} blink{}", if n == 1 { "" } else { "s" })
            } else {
                "not shown on red: a lower-numbered fault is".to_owned()
            };
            let ack = if class == FaultClass::UncleanRestart {
                "; a short press acknowledges it"
            } else {
                ""
            };
            lines.push(format!(
                "fault {n}, {}: {detail} ({shown}{ack})",
                class.label()
            ));
        }
        if lowest.is_none() {
            lines.push("faults: none (red off)".to_owned());
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: &Health, now: Instant) -> (Pattern, Pattern, Pattern) {
        let p = h.patterns(now);
        (p.green, p.amber, p.red)
    }

    #[test]
    fn green_rows() {
        let now = Instant::now();
        let mut h = Health::new();
        assert_eq!(h.patterns(now).green, Pattern::SlowBlink);
        h.service = ServiceState::Up;
        assert_eq!(h.patterns(now).green, Pattern::Solid);
        h.service = ServiceState::Stopping;
        assert_eq!(h.patterns(now).green, Pattern::FastBlink);
        h.service = ServiceState::Stopped;
        assert_eq!(h.patterns(now).green, Pattern::Off);
    }

    #[test]
    fn green_is_not_solid_with_a_storage_fault() {
        let now = Instant::now();
        let mut h = Health {
            service: ServiceState::Up,
            ..Health::new()
        };
        h.faults.set(FaultClass::Storage, "disk 97% full");
        assert_eq!(
            at(&h, now),
            (Pattern::SlowBlink, Pattern::Off, Pattern::Code(1))
        );
        h.faults.clear(FaultClass::Storage);
        h.faults.set(FaultClass::Certificate, "expires in 3 days");
        assert_eq!(h.patterns(now).green, Pattern::Solid);
    }

    #[test]
    fn amber_rows() {
        let t0 = Instant::now();
        let mut h = Health {
            service: ServiceState::Up,
            ..Health::new()
        };
        assert_eq!(h.patterns(t0).amber, Pattern::Off);
        h.unseen_mail = true;
        assert_eq!(h.patterns(t0).amber, Pattern::Solid);
        h.delivered(t0);
        assert_eq!(h.patterns(t0).amber, Pattern::Flicker);
        let later = t0 + Duration::from_millis(999);
        assert_eq!(h.patterns(later).amber, Pattern::Flicker);
        assert_eq!(h.patterns(t0 + FLICKER_FOR).amber, Pattern::Solid);
        h.unseen_mail = false;
        assert_eq!(h.patterns(t0 + FLICKER_FOR).amber, Pattern::Off);
        assert_eq!(h.patterns(later).amber, Pattern::Flicker);
    }

    #[test]
    fn red_rows_each_fault_class() {
        let now = Instant::now();
        for class in FaultClass::ALL {
            let mut h = Health::new();
            h.faults.set(class, "x");
            assert_eq!(h.patterns(now).red, Pattern::Code(class.code()));
        }
        assert_eq!(Health::new().patterns(now).red, Pattern::Off);
    }

    #[test]
    fn red_shows_lowest_fault() {
        let now = Instant::now();
        let mut h = Health::new();
        h.faults.set(FaultClass::UncleanRestart, "1 unclean start");
        h.faults.set(FaultClass::Outbound, "relay refuses");
        assert_eq!(h.patterns(now).red, Pattern::Code(3));
        h.faults.set(FaultClass::Certificate, "expired");
        assert_eq!(h.patterns(now).red, Pattern::Code(2));
        h.faults.clear(FaultClass::Certificate);
        h.faults.clear(FaultClass::Outbound);
        assert_eq!(h.patterns(now).red, Pattern::Code(4));
    }

    #[test]
    fn acknowledge_clears_only_fault_four() {
        let now = Instant::now();
        let mut h = Health::new();
        h.faults.set(FaultClass::UncleanRestart, "watchdog reset");
        h.faults.set(FaultClass::Outbound, "stuck");
        h.acknowledge();
        assert_eq!(h.faults.get(FaultClass::UncleanRestart), None);
        assert_eq!(h.faults.get(FaultClass::Outbound), Some("stuck"));
        assert_eq!(h.patterns(now).red, Pattern::Code(3));
        h.faults.clear(FaultClass::Outbound);
        assert_eq!(h.patterns(now).red, Pattern::Off);
    }

    #[test]
    fn describe_names_every_state() {
        let mut h = Health::new();
        assert_eq!(
            h.describe(),
            [
                "service: starting (green slow blink)",
                "mail: no unseen mail (amber off)",
                "faults: none (red off)",
            ]
        );
        h.service = ServiceState::Up;
        h.unseen_mail = true;
        h.faults.set(FaultClass::Storage, "database error: io");
        h.faults.set(FaultClass::UncleanRestart, "2 unclean starts");
        let d = h.describe();
        assert_eq!(
            d[0],
            "service: up, but the store is not healthy (green slow blink)"
        );
        assert_eq!(d[1], "mail: unseen mail in an INBOX (amber solid)");
        assert_eq!(d[2], "fault 1, storage: database error: io (red: 1 blink)");
        assert!(d[3].starts_with("fault 4, restarted after a hang: 2 unclean starts (not shown"));
        assert!(d[3].ends_with("a short press acknowledges it)"));
        for (state, word) in [
            (ServiceState::Stopping, "shutting down"),
            (ServiceState::Stopped, "safe to unplug"),
        ] {
            h.service = state;
            assert!(h.describe()[0].contains(word));
        }
    }

    #[test]
    fn serializes_without_the_instant() {
        let mut h = Health::new();
        h.delivered(Instant::now());
        h.faults.set(FaultClass::Certificate, "expires in 2 days");
        let toml = toml::to_string(&h).unwrap();
        assert!(toml.contains("service = \"starting\""), "{toml}");
        assert!(
            toml.contains("certificate = \"expires in 2 days\""),
            "{toml}"
        );
        assert!(!toml.contains("last_delivery"), "{toml}");
        let p = toml::to_string(&h.patterns(Instant::now())).unwrap();
        assert!(p.contains("green = \"slow_blink\""), "{p}");
    }
}
