//! The simulated board, the host default: in-memory pins whose state `letterbox status`
//! shows, and a button driven by `letterbox button press` / `button hold SECONDS`.
//!
//! [`SimPin`] is a shared level (`Arc<AtomicBool>`) that is both an `OutputPin` and an
//! `InputPin`. Sim pins are active-high: a lit LED's pin is high and a pressed button's pin
//! is high; there is no wiring to invert.
//!
//! Scripted presses keep time as an argument: [`SimControl::press_for`] records the interval
//! during which the contact is closed, and [`SimBoard::tick`] sets the button pin from that
//! script using the `now` it is given, before the button driver samples it. The daemon's
//! hardware task owns the `SimBoard`; whoever handles `letterbox button ...` holds a cloned
//! [`SimControl`].

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_hal::digital::{ErrorType, InputPin, OutputPin, StatefulOutputPin};

use super::button::{DEBOUNCE_SAMPLES, POLL_INTERVAL, Press};
use super::health::LedPatterns;
use super::{HwError, Panel};

/// Extra time a scripted press keeps the contact closed, so that the *debounced* press lasts
/// at least the requested duration when polled every [`POLL_INTERVAL`].
pub const SCRIPT_MARGIN: Duration =
    Duration::from_millis(POLL_INTERVAL.as_millis() as u64 * (DEBOUNCE_SAMPLES as u64 + 1));

/// An in-memory pin; clones share the level.
#[derive(Debug, Clone, Default)]
pub struct SimPin(Arc<AtomicBool>);

impl SimPin {
    /// A pin at `level`.
    pub fn new(level: bool) -> Self {
        SimPin(Arc::new(AtomicBool::new(level)))
    }

    /// The current level.
    pub fn level(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the level.
    pub fn set(&self, level: bool) {
        self.0.store(level, Ordering::Relaxed);
    }
}

impl ErrorType for SimPin {
    type Error = Infallible;
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

impl StatefulOutputPin for SimPin {
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.level())
    }

    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.level())
    }
}

impl InputPin for SimPin {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.level())
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.level())
    }
}

/// The scripted button: a clonable handle to the interval the contact is closed.
#[derive(Debug, Clone, Default)]
pub struct SimControl {
    script: Arc<Mutex<Option<(Instant, Instant)>>>,
}

impl SimControl {
    /// Closes the contact from `now` for `duration` (plus [`SCRIPT_MARGIN`]), replacing any
    /// press still scripted. `press_for(200 ms)` is a short press, `press_for(3 s)` a hold.
    pub fn press_for(&self, duration: Duration, now: Instant) {
        let until = now
            .checked_add(duration.saturating_add(SCRIPT_MARGIN))
            .unwrap_or(now);
        *self.lock() = Some((now, until));
    }

    /// Whether the contact is closed at `now`; forgets a script that has ended.
    fn closed_at(&self, now: Instant) -> bool {
        let mut script = self.lock();
        match *script {
            Some((_, until)) if now >= until => {
                *script = None;
                false
            }
            Some((from, _)) => from <= now,
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Instant)>> {
        // The data is two Instants; a panic elsewhere cannot leave it half-written.
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Three simulated LEDs and a simulated button.
#[derive(Debug)]
pub struct SimBoard {
    panel: Panel<SimPin, SimPin>,
    leds: [SimPin; 3],
    button: SimPin,
    control: SimControl,
}

impl SimBoard {
    /// A board with every LED off and the button released.
    pub fn new(now: Instant) -> Self {
        let leds = [SimPin::new(false), SimPin::new(false), SimPin::new(false)];
        let button = SimPin::new(false);
        let [g, a, r] = leds.clone();
        SimBoard {
            panel: Panel::new(g, a, r, button.clone(), now),
            leds,
            button,
            control: SimControl::default(),
        }
    }

    /// A handle for scripting the button from elsewhere.
    pub fn control(&self) -> SimControl {
        self.control.clone()
    }

    /// Shorthand for `self.control().press_for(duration, now)`.
    pub fn press_for(&self, duration: Duration, now: Instant) {
        self.control.press_for(duration, now);
    }

    /// The pin levels of the green, amber and red LEDs (true = lit).
    pub fn led_states(&self) -> [bool; 3] {
        self.leds.each_ref().map(SimPin::level)
    }

    /// The button pin level (true = pressed).
    pub fn button_level(&self) -> bool {
        self.button.level()
    }

    /// The panel (LED patterns and button state).
    pub fn panel(&self) -> &Panel<SimPin, SimPin> {
        &self.panel
    }

    /// See [`Panel::replay`].
    pub fn replay(&mut self, now: Instant) {
        self.panel.replay(now);
    }

    /// See [`Panel::set_leds`].
    pub fn set_leds(&mut self, patterns: LedPatterns, now: Instant) {
        self.panel.set_leds(patterns, now);
    }

    /// Applies the button script for `now`, then runs [`Panel::tick`].
    pub fn tick(&mut self, now: Instant) -> Result<Option<Press>, HwError> {
        self.button.set(self.control.closed_at(now));
        self.panel.tick(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::led::Pattern;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Ticks every 10 ms over `[from, to)`; returns the presses with their offsets.
    fn run(board: &mut SimBoard, t0: Instant, from: u64, to: u64) -> Vec<(Press, u64)> {
        (from..to)
            .step_by(10)
            .filter_map(|t| board.tick(t0 + ms(t)).unwrap().map(|p| (p, t)))
            .collect()
    }

    #[test]
    fn leds_follow_patterns() {
        let t0 = Instant::now();
        let mut board = SimBoard::new(t0);
        assert_eq!(board.led_states(), [false; 3]);
        board.set_leds(
            LedPatterns {
                green: Pattern::Solid,
                amber: Pattern::Off,
                red: Pattern::Code(2),
            },
            t0,
        );
        board.tick(t0).unwrap();
        assert_eq!(board.led_states(), [true, false, true]);
        board.tick(t0 + ms(250)).unwrap();
        assert_eq!(board.led_states(), [true, false, false]);
        board.tick(t0 + ms(500)).unwrap();
        assert_eq!(board.led_states(), [true, false, true]);
    }

    #[test]
    fn scripted_short_press() {
        let t0 = Instant::now();
        let mut board = SimBoard::new(t0);
        assert!(run(&mut board, t0, 0, 100).is_empty()); // arms
        board.control().press_for(ms(200), t0 + ms(100));
        assert_eq!(board.tick(t0 + ms(100)).unwrap(), None);
        assert!(board.button_level());
        let presses = run(&mut board, t0, 110, 1000);
        assert_eq!(presses.len(), 1);
        assert_eq!(presses[0].0, Press::Short);
        assert!(!board.button_level());
    }

    #[test]
    fn scripted_hold_of_exactly_three_seconds_is_a_hold() {
        let t0 = Instant::now();
        let mut board = SimBoard::new(t0);
        run(&mut board, t0, 0, 100);
        board.press_for(Duration::from_secs(3), t0 + ms(100));
        let presses = run(&mut board, t0, 100, 5000);
        assert_eq!(presses.len(), 1, "{presses:?}");
        assert_eq!(presses[0].0, Press::Hold);
    }

    #[test]
    fn press_scripted_in_the_future_waits() {
        let t0 = Instant::now();
        let control = SimControl::default();
        control.press_for(ms(100), t0 + ms(50));
        assert!(!control.closed_at(t0));
        assert!(control.closed_at(t0 + ms(50)));
        assert!(!control.closed_at(t0 + ms(50) + ms(100) + SCRIPT_MARGIN));
        assert!(!control.closed_at(t0 + ms(60)));
    }
}
