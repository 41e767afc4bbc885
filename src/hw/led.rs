//! LED patterns as pure functions of time, and the [`Led`] driver that writes them to a pin.
//!
//! A [`Pattern`] is a periodic on/off signal; [`Pattern::level_at`] says whether the LED is lit
//! a given time after the pattern started and [`Pattern::next_change`] says how long until it
//! changes, so a driver can sleep until then (habit 6: time is an argument). Timings:
//!
//! | pattern | cycle |
//! |---|---|
//! | `Off` / `Solid` | constant |
//! | `SlowBlink` | 1 Hz: 500 ms on, 500 ms off |
//! | `FastBlink` | 5 Hz: 100 ms on, 100 ms off |
//! | `Flicker` | 10 Hz: 50 ms off, 50 ms on (starts dark, so it shows even on a lit LED) |
//! | `Code(n)` | n × (200 ms on, 300 ms off), then 1.5 s dark; `Code(0)` is `Off` |
//!
//! [`Led`] writes the pin only when the level changes and gives the pin back with
//! [`Led::release`]. It handles logical levels only: wrap the pin in
//! [`ActiveLow`](super::polarity::ActiveLow) for an LED wired to the supply.

use std::time::{Duration, Instant};

use embedded_hal::digital::{InputPin, OutputPin};
use serde::Serialize;

/// Half period of [`Pattern::SlowBlink`] (1 Hz).
pub const SLOW_HALF: Duration = Duration::from_millis(500);
/// Half period of [`Pattern::FastBlink`] (5 Hz).
pub const FAST_HALF: Duration = Duration::from_millis(100);
/// Half period of [`Pattern::Flicker`] (10 Hz); the dark half comes first.
pub const FLICKER_HALF: Duration = Duration::from_millis(50);
/// How long each blink of a [`Pattern::Code`] is lit.
pub const CODE_ON: Duration = Duration::from_millis(200);
/// One blink slot of a [`Pattern::Code`]: [`CODE_ON`] lit, then dark for the rest.
pub const CODE_SLOT: Duration = Duration::from_millis(500);
/// The dark pause after the last blink slot of a [`Pattern::Code`].
pub const CODE_PAUSE: Duration = Duration::from_millis(1500);

/// What one LED shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Dark.
    #[default]
    Off,
    /// Lit.
    Solid,
    /// 1 Hz blink (green: starting).
    SlowBlink,
    /// 5 Hz blink (green: shutting down).
    FastBlink,
    /// 10 Hz flicker (amber: a message was just delivered).
    Flicker,
    /// `n` blinks, a pause, repeat (red: fault class `n`).
    Code(u8),
}

impl Pattern {
    /// Length of one cycle, or `None` for a constant pattern.
    pub fn period(self) -> Option<Duration> {
        match self {
            Pattern::Off | Pattern::Solid | Pattern::Code(0) => None,
            Pattern::SlowBlink => Some(SLOW_HALF * 2),
            Pattern::FastBlink => Some(FAST_HALF * 2),
            Pattern::Flicker => Some(FLICKER_HALF * 2),
            Pattern::Code(n) => Some(CODE_SLOT * u32::from(n) + CODE_PAUSE),
        }
    }

    /// Whether the LED is lit `elapsed` after the pattern started.
    pub fn level_at(self, elapsed: Duration) -> bool {
        match self.period() {
            None => self == Pattern::Solid,
            Some(period) => self.run_at(phase(elapsed, period), period).0,
        }
    }

    /// How long after `elapsed` the level next changes, or `None` if it never does.
    pub fn next_change(self, elapsed: Duration) -> Option<Duration> {
        let period = self.period()?;
        let phase = phase(elapsed, period);
        let (_, end) = self.run_at(phase, period);
        Some(end.saturating_sub(phase))
    }

    /// The level at `phase` (< `period`) and the phase at which that level ends. Every run
    /// ends with a change of level: cycles end dark and (apart from `Flicker`) start lit;
    /// `Flicker` starts dark and ends lit.
    fn run_at(self, phase: Duration, period: Duration) -> (bool, Duration) {
        let half = |h: Duration, lit_first: bool| {
            if phase < h {
                (lit_first, h)
            } else {
                (!lit_first, period)
            }
        };
        match self {
            Pattern::SlowBlink => half(SLOW_HALF, true),
            Pattern::FastBlink => half(FAST_HALF, true),
            Pattern::Flicker => half(FLICKER_HALF, false),
            Pattern::Code(n) => {
                let slot = phase.as_nanos() / CODE_SLOT.as_nanos();
                if slot >= u128::from(n) {
                    return (false, period);
                }
                // slot < n <= 255, so it fits in u32.
                let slot = slot as u32;
                let slot_start = CODE_SLOT * slot;
                if phase - slot_start < CODE_ON {
                    (true, slot_start + CODE_ON)
                } else if slot + 1 < u32::from(n) {
                    (false, slot_start + CODE_SLOT)
                } else {
                    (false, period)
                }
            }
            Pattern::Off | Pattern::Solid => (self == Pattern::Solid, period),
        }
    }
}

/// `elapsed` modulo `period` (which is non-zero and well under `u64::MAX` nanoseconds).
fn phase(elapsed: Duration, period: Duration) -> Duration {
    let nanos = elapsed.as_nanos() % period.as_nanos().max(1);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// Drives one LED pin with a [`Pattern`]. The pattern's phase starts when it is set.
#[derive(Debug)]
pub struct Led<P> {
    pin: P,
    pattern: Pattern,
    since: Instant,
    written: Option<bool>,
}

impl<P: OutputPin> Led<P> {
    /// Takes `pin` with pattern [`Pattern::Off`]. Nothing is written until [`Led::tick`].
    pub fn new(pin: P, now: Instant) -> Self {
        Led {
            pin,
            pattern: Pattern::Off,
            since: now,
            written: None,
        }
    }

    /// Shows `pattern` from `now` on. Setting the pattern already shown changes nothing (its
    /// phase keeps running), so a caller may set patterns on every tick.
    pub fn set_pattern(&mut self, pattern: Pattern, now: Instant) {
        if pattern != self.pattern {
            self.pattern = pattern;
            self.since = now;
        }
    }

    /// Restarts the current pattern's cycle at `now` (the button's "replay the state").
    pub fn restart(&mut self, now: Instant) {
        self.since = now;
    }

    /// The pattern being shown.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// Whether the LED was last written lit (false before the first write).
    pub fn is_lit(&self) -> bool {
        self.written == Some(true)
    }

    /// Writes the level for `now` if it differs from the last level written. On an error the
    /// level is not recorded, so the next tick tries again.
    pub fn tick(&mut self, now: Instant) -> Result<(), P::Error> {
        let level = self
            .pattern
            .level_at(now.saturating_duration_since(self.since));
        if self.written != Some(level) {
            if level {
                self.pin.set_high()?;
            } else {
                self.pin.set_low()?;
            }
            self.written = Some(level);
        }
        Ok(())
    }

    /// When [`Led::tick`] next has something to write, or `None` if the level is constant
    /// (and already written).
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let elapsed = now.saturating_duration_since(self.since);
        if self.written != Some(self.pattern.level_at(elapsed)) {
            return Some(now);
        }
        self.pattern
            .next_change(elapsed)
            .and_then(|d| now.checked_add(d))
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}

impl<P: OutputPin + InputPin> Led<P> {
    /// Reads the pin's level back (true = lit), whatever was last written.
    pub fn read_back(&mut self) -> Result<bool, P::Error> {
        self.pin.is_high()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::polarity::ActiveLow;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    const H: State = State::High;
    const L: State = State::Low;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs `pattern` on a mock, ticking at each millisecond offset in `ticks`, and checks
    /// that exactly `expected` was written.
    fn run(pattern: Pattern, ticks: &[u64], expected: &[State]) {
        let tx: Vec<_> = expected.iter().map(|s| Transaction::set(*s)).collect();
        let mock = Mock::new(&tx);
        let mut done = mock.clone();
        let t0 = Instant::now();
        let mut led = Led::new(mock, t0);
        led.set_pattern(pattern, t0);
        for &t in ticks {
            led.tick(t0 + ms(t)).unwrap();
        }
        led.release();
        done.done();
    }

    /// Level of `p` at each millisecond offset.
    fn levels(p: Pattern, at: &[u64]) -> Vec<bool> {
        at.iter().map(|&t| p.level_at(ms(t))).collect()
    }

    #[test]
    fn constant_patterns() {
        run(Pattern::Off, &[0, 10, 5000], &[L]);
        run(Pattern::Solid, &[0, 10, 5000], &[H]);
        assert_eq!(Pattern::Solid.next_change(ms(3)), None);
        assert_eq!(Pattern::Code(0).period(), None);
        assert!(!Pattern::Code(0).level_at(ms(100)));
    }

    #[test]
    fn slow_blink_sequence() {
        run(
            Pattern::SlowBlink,
            &[0, 100, 499, 500, 999, 1000, 1500, 2000],
            &[H, L, H, L, H],
        );
        assert_eq!(Pattern::SlowBlink.next_change(ms(0)), Some(ms(500)));
        assert_eq!(Pattern::SlowBlink.next_change(ms(700)), Some(ms(300)));
    }

    #[test]
    fn fast_blink_sequence() {
        run(
            Pattern::FastBlink,
            &[0, 50, 100, 150, 200, 300, 400],
            &[H, L, H, L, H],
        );
        assert_eq!(
            levels(Pattern::FastBlink, &[0, 99, 100, 199, 200]),
            [true, true, false, false, true]
        );
    }

    #[test]
    fn flicker_sequence_starts_dark() {
        run(Pattern::Flicker, &[0, 50, 100, 150, 200], &[L, H, L, H, L]);
        assert_eq!(Pattern::Flicker.next_change(ms(0)), Some(ms(50)));
        assert_eq!(Pattern::Flicker.next_change(ms(60)), Some(ms(40)));
    }

    #[test]
    fn code_three_sequence() {
        // 3 blinks: lit 0-200, 500-700, 1000-1200; dark until 3000 (1500 + 1500 pause).
        let ticks = [0, 199, 200, 500, 700, 1000, 1200, 1400, 2999, 3000, 3200];
        run(Pattern::Code(3), &ticks, &[H, L, H, L, H, L, H, L]);
        let p = Pattern::Code(3);
        assert_eq!(p.period(), Some(ms(3000)));
        assert_eq!(p.next_change(ms(0)), Some(ms(200)));
        assert_eq!(p.next_change(ms(200)), Some(ms(300)));
        assert_eq!(p.next_change(ms(1200)), Some(ms(1800)));
        assert_eq!(p.next_change(ms(3100)), Some(ms(100)));
    }

    #[test]
    fn code_one_and_four() {
        run(Pattern::Code(1), &[0, 200, 1999, 2000], &[H, L, H]);
        let lit: Vec<u64> = (0..3500)
            .step_by(100)
            .filter(|&t| Pattern::Code(4).level_at(ms(t)))
            .collect();
        assert_eq!(lit, [0, 100, 500, 600, 1000, 1100, 1500, 1600]);
        assert!(Pattern::Code(4).level_at(ms(3500)));
        // The largest code does not overflow.
        assert!(Pattern::Code(255).level_at(ms(254 * 500)));
        assert!(!Pattern::Code(255).level_at(ms(255 * 500)));
    }

    #[test]
    fn next_change_agrees_with_level_at() {
        let all = [
            Pattern::SlowBlink,
            Pattern::FastBlink,
            Pattern::Flicker,
            Pattern::Code(1),
            Pattern::Code(2),
            Pattern::Code(4),
        ];
        for p in all {
            for t in (0..7000).step_by(7) {
                let d = p.next_change(ms(t)).unwrap();
                assert!(d > Duration::ZERO, "{p:?} at {t}");
                let before = ms(t) + d - Duration::from_nanos(1);
                assert_eq!(p.level_at(ms(t)), p.level_at(before), "{p:?} at {t}");
                assert_ne!(p.level_at(ms(t)), p.level_at(ms(t) + d), "{p:?} at {t}");
            }
        }
    }

    #[test]
    fn changing_pattern_restarts_phase_same_pattern_does_not() {
        let mock = Mock::new(&[
            Transaction::set(H),
            Transaction::set(L),
            Transaction::set(H),
        ]);
        let mut done = mock.clone();
        let t0 = Instant::now();
        let mut led = Led::new(mock, t0);
        led.set_pattern(Pattern::SlowBlink, t0);
        led.tick(t0).unwrap(); // H
        led.set_pattern(Pattern::SlowBlink, t0 + ms(400)); // same: phase keeps running
        led.tick(t0 + ms(600)).unwrap(); // L
        led.set_pattern(Pattern::FastBlink, t0 + ms(650));
        assert_eq!(led.next_wake(t0 + ms(650)), Some(t0 + ms(650)));
        led.tick(t0 + ms(650)).unwrap(); // H: fast blink starts lit
        assert_eq!(led.next_wake(t0 + ms(700)), Some(t0 + ms(750)));
        assert!(led.is_lit());
        led.release();
        done.done();
    }

    #[test]
    fn active_low_led_writes_inverted_levels() {
        let mock = Mock::new(&[Transaction::set(L), Transaction::set(H)]);
        let mut done = mock.clone();
        let t0 = Instant::now();
        let mut led = Led::new(ActiveLow::new(mock), t0);
        led.set_pattern(Pattern::FastBlink, t0);
        led.tick(t0).unwrap();
        led.tick(t0 + ms(100)).unwrap();
        led.release().release();
        done.done();
    }

    #[test]
    fn write_error_is_returned_and_retried() {
        let err = MockError::Io(std::io::ErrorKind::Other);
        let mock = Mock::new(&[Transaction::set(H).with_error(err), Transaction::set(H)]);
        let mut done = mock.clone();
        let t0 = Instant::now();
        let mut led = Led::new(mock, t0);
        led.set_pattern(Pattern::Solid, t0);
        assert!(led.tick(t0).is_err());
        assert!(!led.is_lit());
        led.tick(t0 + ms(10)).unwrap();
        led.tick(t0 + ms(20)).unwrap();
        assert!(led.is_lit());
        assert_eq!(led.next_wake(t0 + ms(20)), None);
        led.release();
        done.done();
    }
}
