//! The button: debounce and press classification as pure functions of samples, and the
//! [`Button`] driver that samples a pin.
//!
//! Samples go through an integrator ([`Debouncer`]): a counter that moves one step towards
//! the raw level on each sample and flips the debounced state only at its ends (0 or
//! [`DEBOUNCE_SAMPLES`]). A contact that bounces for a few samples cannot produce a second
//! edge. Polled every [`POLL_INTERVAL`], an edge is seen 30–40 ms after the contact settles.
//!
//! [`PressDetector`] turns debounced edges into [`Press`]es, with the times passed in:
//!
//! - [`Press::Short`]: emitted on release when the button was held less than [`SHORT_MAX`];
//! - [`Press::Hold`]: emitted once, *while still held*, as soon as it has been held
//!   [`HOLD_MIN`]; the release that follows emits nothing;
//! - a hold between [`SHORT_MAX`] and [`HOLD_MIN`] emits nothing: it is neither an
//!   acknowledgement nor a shutdown, so an unsure press does nothing.
//!
//! The detector starts *disarmed*: it assumes the button is held until it has seen it
//! released. A button that is stuck, or held down while the box boots, therefore never
//! triggers a shutdown at start-up.
//!
//! The driver works with logical levels (high = pressed); a button to ground with a pull-up
//! is wrapped in [`ActiveLow`](super::polarity::ActiveLow).

use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;
use serde::Serialize;

/// Samples needed to move the integrator from one end to the other.
pub const DEBOUNCE_SAMPLES: u8 = 4;
/// How often a driver should call [`Button::poll`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// A press released before this long is [`Press::Short`].
pub const SHORT_MAX: Duration = Duration::from_secs(1);
/// A press held this long is [`Press::Hold`], reported while still held.
pub const HOLD_MIN: Duration = Duration::from_secs(3);

/// A classified press.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Press {
    /// Pressed and released within [`SHORT_MAX`]: acknowledge and replay the state.
    Short,
    /// Held for [`HOLD_MIN`] or more: safe shutdown.
    Hold,
}

/// A change of the debounced state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// The button went down.
    Pressed,
    /// The button came up.
    Released,
}

/// Integrating debouncer over raw samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debouncer {
    count: u8,
    pressed: bool,
}

impl Debouncer {
    /// A debouncer that starts in state `pressed`, with its integrator at that end.
    pub fn new(pressed: bool) -> Self {
        Debouncer {
            count: if pressed { DEBOUNCE_SAMPLES } else { 0 },
            pressed,
        }
    }

    /// Feeds one raw sample; returns the edge if the debounced state changed.
    pub fn update(&mut self, raw_pressed: bool) -> Option<Edge> {
        if raw_pressed {
            self.count = (self.count + 1).min(DEBOUNCE_SAMPLES);
        } else {
            self.count = self.count.saturating_sub(1);
        }
        match (self.pressed, self.count) {
            (false, DEBOUNCE_SAMPLES) => {
                self.pressed = true;
                Some(Edge::Pressed)
            }
            (true, 0) => {
                self.pressed = false;
                Some(Edge::Released)
            }
            _ => None,
        }
    }

    /// The debounced state.
    pub fn is_pressed(&self) -> bool {
        self.pressed
    }
}

/// Debounce plus classification: raw samples with their times in, [`Press`]es out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressDetector {
    debouncer: Debouncer,
    armed: bool,
    down_since: Option<Instant>,
    hold_sent: bool,
}

impl Default for PressDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl PressDetector {
    /// A disarmed detector: it reports nothing until it has seen the button released.
    pub fn new() -> Self {
        PressDetector {
            debouncer: Debouncer::new(true),
            armed: false,
            down_since: None,
            hold_sent: false,
        }
    }

    /// Feeds one sample taken at `now` (`level_pressed`: the contact is closed).
    pub fn update(&mut self, level_pressed: bool, now: Instant) -> Option<Press> {
        match self.debouncer.update(level_pressed) {
            Some(Edge::Pressed) if self.armed => {
                self.down_since = Some(now);
                self.hold_sent = false;
                None
            }
            Some(Edge::Pressed) => None,
            Some(Edge::Released) => {
                let was_armed = std::mem::replace(&mut self.armed, true);
                let since = self.down_since.take()?;
                let held = now.saturating_duration_since(since);
                (was_armed && !self.hold_sent && held < SHORT_MAX).then_some(Press::Short)
            }
            None => {
                let since = self.down_since?;
                let held = now.saturating_duration_since(since);
                if !self.hold_sent && held >= HOLD_MIN {
                    self.hold_sent = true;
                    Some(Press::Hold)
                } else {
                    None
                }
            }
        }
    }

    /// The debounced state: true while the button is held.
    pub fn is_pressed(&self) -> bool {
        self.debouncer.is_pressed()
    }

    /// Whether the button has been seen released since start (presses count only then).
    pub fn is_armed(&self) -> bool {
        self.armed
    }
}

/// Samples a button pin (logical high = pressed) and classifies presses.
#[derive(Debug)]
pub struct Button<P> {
    pin: P,
    detector: PressDetector,
}

impl<P: InputPin> Button<P> {
    /// Takes `pin`; the detector starts disarmed (see the module doc).
    pub fn new(pin: P) -> Self {
        Button {
            pin,
            detector: PressDetector::new(),
        }
    }

    /// Reads the pin once and feeds the sample. A read error is returned and the sample is
    /// skipped.
    pub fn poll(&mut self, now: Instant) -> Result<Option<Press>, P::Error> {
        let level = self.pin.is_high()?;
        Ok(self.detector.update(level, now))
    }

    /// The debounced state: true while the button is held.
    pub fn is_pressed(&self) -> bool {
        self.detector.is_pressed()
    }

    /// Reads the pin once without feeding the detector (true = pressed).
    pub fn read_level(&mut self) -> Result<bool, P::Error> {
        self.pin.is_high()
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::polarity::ActiveLow;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `(level, ms)` samples to `det` from `t0`; returns every press with its time.
    fn feed(det: &mut PressDetector, t0: Instant, samples: &[(bool, u64)]) -> Vec<(Press, u64)> {
        samples
            .iter()
            .filter_map(|&(level, t)| det.update(level, t0 + ms(t)).map(|p| (p, t)))
            .collect()
    }

    /// An armed detector: fed released samples at 0..40 ms.
    fn armed(t0: Instant) -> PressDetector {
        let mut det = PressDetector::new();
        let idle: Vec<_> = (0..5).map(|i| (false, i * 10)).collect();
        assert!(feed(&mut det, t0, &idle).is_empty());
        assert!(det.is_armed());
        det
    }

    /// Samples every 10 ms from `from` to `to` (exclusive) at `level`.
    fn steady(level: bool, from: u64, to: u64) -> Vec<(bool, u64)> {
        (from..to).step_by(10).map(|t| (level, t)).collect()
    }

    #[test]
    fn integrator_ignores_bounce() {
        let mut d = Debouncer::new(false);
        let bounce = [true, false, true, true, false, true, true, true, true, true];
        let edges: Vec<_> = bounce.iter().filter_map(|&s| d.update(s)).collect();
        assert_eq!(edges, [Edge::Pressed]);
        let release = [false, true, false, false, true, false, false, false, false];
        let edges: Vec<_> = release.iter().filter_map(|&s| d.update(s)).collect();
        assert_eq!(edges, [Edge::Released]);
    }

    #[test]
    fn bouncing_short_press_gives_one_short() {
        let t0 = Instant::now();
        let mut det = armed(t0);
        // Contact closes at 100 ms, bouncing for 20 ms (2 ms samples).
        let mut s: Vec<(bool, u64)> = [1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1]
            .iter()
            .enumerate()
            .map(|(i, &b)| (b == 1, 100 + 2 * i as u64))
            .collect();
        s.extend(steady(true, 130, 400));
        // Opens at 400 ms, bouncing again.
        s.extend(
            [0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0]
                .iter()
                .enumerate()
                .map(|(i, &b)| (b == 1, 400 + 2 * i as u64)),
        );
        s.extend(steady(false, 430, 2000));
        let presses = feed(&mut det, t0, &s);
        assert_eq!(presses.len(), 1, "{presses:?}");
        assert_eq!(presses[0].0, Press::Short);
    }

    #[test]
    fn long_hold_gives_one_hold_while_held_and_nothing_on_release() {
        let t0 = Instant::now();
        let mut det = armed(t0);
        let mut s = steady(true, 100, 3600); // 3.5 s
        s.extend(steady(false, 3600, 5000));
        let presses = feed(&mut det, t0, &s);
        assert_eq!(presses.len(), 1, "{presses:?}");
        let (press, at) = presses[0];
        assert_eq!(press, Press::Hold);
        // Debounced down at 130 ms, so the hold fires at 3130 ms: before release.
        assert_eq!(at, 3130);
    }

    #[test]
    fn middle_length_press_gives_nothing() {
        let t0 = Instant::now();
        let mut det = armed(t0);
        let mut s = steady(true, 100, 2100);
        s.extend(steady(false, 2100, 6000));
        assert!(feed(&mut det, t0, &s).is_empty());
    }

    #[test]
    fn button_held_at_start_is_ignored_until_released() {
        let t0 = Instant::now();
        let mut det = PressDetector::new();
        // Held from boot for 5 s: no hold, no short on release.
        let mut s = steady(true, 0, 5000);
        s.extend(steady(false, 5000, 5100));
        assert!(feed(&mut det, t0, &s).is_empty());
        assert!(det.is_armed());
        // The next real press counts.
        let mut s = steady(true, 6000, 6200);
        s.extend(steady(false, 6200, 6300));
        assert_eq!(feed(&mut det, t0, &s), [(Press::Short, 6230)]);
    }

    #[test]
    fn two_short_presses_give_two_shorts() {
        let t0 = Instant::now();
        let mut det = armed(t0);
        let mut s = steady(true, 100, 300);
        s.extend(steady(false, 300, 500));
        s.extend(steady(true, 500, 700));
        s.extend(steady(false, 700, 900));
        let kinds: Vec<_> = feed(&mut det, t0, &s).into_iter().map(|p| p.0).collect();
        assert_eq!(kinds, [Press::Short, Press::Short]);
    }

    #[test]
    fn button_driver_reads_active_low_pin() {
        // Electrical: released = high (pull-up), pressed = low.
        let mut tx = vec![Transaction::get(State::High); 4]; // arm
        tx.extend(vec![Transaction::get(State::Low); 10]); // press 100 ms
        tx.extend(vec![Transaction::get(State::High); 4]); // release
        let mock = Mock::new(&tx);
        let mut done = mock.clone();
        let t0 = Instant::now();
        let mut button = Button::new(ActiveLow::new(mock));
        let mut presses = Vec::new();
        for i in 0..tx.len() as u64 {
            if let Some(p) = button.poll(t0 + ms(10 * i)).unwrap() {
                presses.push(p);
            }
        }
        assert_eq!(presses, [Press::Short]);
        assert!(!button.is_pressed());
        button.release().release();
        done.done();
    }

    #[test]
    fn read_error_is_returned() {
        let err = MockError::Io(std::io::ErrorKind::Other);
        let mock = Mock::new(&[Transaction::get(State::High).with_error(err)]);
        let mut done = mock.clone();
        let mut button = Button::new(mock);
        assert!(button.poll(Instant::now()).is_err());
        button.release();
        done.done();
    }
}
