//! The board: status LEDs, the button, the hardware watchdog, and the health model behind
//! them (SPEC §6).
//!
//! # Layout
//!
//! ```text
//! health.rs    Health → LedPatterns and words for `letterbox status` (pure)
//! led.rs       Pattern (pure timing) + Led<P: OutputPin> driver
//! button.rs    Debouncer, PressDetector (pure) + Button<P: InputPin> driver
//! polarity.rs  ActiveLow<P> wrapper; DynOutput/DynInput for polarity chosen at run time
//! watchdog.rs  Watchdog trait, DeviceWatchdog (/dev/watchdog or a fake file), NoWatchdog,
//!              FeedPolicy (pure)
//! board.rs     board/<name>.toml → BoardPins, validated; built-in copies of the four files
//! sim.rs       SimBoard: in-memory pins, scripted button (host default)
//! linux.rs     LinuxBoard: CdevPin on the GPIO character device
//! mod.rs       Panel (3 LEDs + button over any pins) and Board (Sim | Linux), `open`
//! supervisor.rs the daemon side (tokio): board task, store monitor, health probe,
//!              watchdog feeder thread; Monitor (pure) owns the Health decisions
//! sd_notify.rs systemd READY=1 / WATCHDOG=1 / STOPPING=1
//! ```
//!
//! Apart from `supervisor` (and `sd_notify`), everything takes `now` as an argument;
//! nothing sleeps, spawns or reads the clock.
//! The daemon's hardware task calls [`Board::set_leds`] with [`Health::patterns`] and
//! [`Board::tick`] every [`POLL_INTERVAL`] (or at [`Board::next_wake`]), acts on the
//! [`Press`]es and logs [`HwError`]s as faults; feeding the watchdog follows [`FeedPolicy`].

pub mod board;
pub mod button;
pub mod health;
pub mod led;
pub mod linux;
pub mod polarity;
pub mod sd_notify;
pub mod selftest;
pub mod sim;
pub mod supervisor;
pub mod watchdog;

use std::fmt;
use std::path::Path;
use std::time::Instant;

use embedded_hal::digital::{InputPin, OutputPin};

pub use board::{BoardError, BoardPins, Line, Pull, builtin_board, load_board, parse_board};
pub use button::{Button, POLL_INTERVAL, Press, PressDetector};
pub use health::{FaultClass, Faults, Health, LedPatterns, ServiceState};
pub use led::{Led, Pattern};
pub use linux::LinuxBoard;
pub use polarity::ActiveLow;
pub use sim::{SimBoard, SimControl, SimPin};
pub use watchdog::{DeviceWatchdog, FeedPolicy, NoWatchdog, Watchdog};

/// The board name that selects the simulated board.
pub const SIM: &str = "sim";

/// A part of the panel, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Health LED.
    Green,
    /// Mail LED.
    Amber,
    /// Fault LED.
    Red,
    /// The button.
    Button,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Green => "green LED",
            Part::Amber => "amber LED",
            Part::Red => "red LED",
            Part::Button => "button",
        })
    }
}

/// A hardware failure. Opening errors stop the start; GPIO errors at run time are faults to
/// log, never a reason to stop the mail services.
#[derive(Debug)]
#[non_exhaustive]
pub enum HwError {
    /// The board file was refused.
    Board(BoardError),
    /// The GPIO chip or a line could not be opened.
    Open {
        /// What was being opened.
        what: String,
        /// The system's error.
        message: String,
    },
    /// Writing an LED or reading the button failed.
    Gpio {
        /// Which part.
        part: Part,
        /// The driver's error.
        message: String,
    },
}

impl fmt::Display for HwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HwError::Board(e) => e.fmt(f),
            HwError::Open { what, message } => write!(f, "cannot open {what}: {message}"),
            HwError::Gpio { part, message } => write!(f, "GPIO error on the {part}: {message}"),
        }
    }
}

impl std::error::Error for HwError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HwError::Board(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BoardError> for HwError {
    fn from(e: BoardError) -> Self {
        HwError::Board(e)
    }
}

/// Three LEDs and a button over any pins: the logic shared by every backend.
#[derive(Debug)]
pub struct Panel<O, I> {
    leds: [Led<O>; 3],
    button: Button<I>,
    pending: Option<HwError>,
}

impl<O: OutputPin, I: InputPin> Panel<O, I> {
    /// Takes the pins (logical levels: high = lit, high = pressed). All LEDs start off.
    pub fn new(green: O, amber: O, red: O, button: I, now: Instant) -> Self {
        Panel {
            leds: [green, amber, red].map(|p| Led::new(p, now)),
            button: Button::new(button),
            pending: None,
        }
    }

    /// Shows `patterns` from `now` (an LED whose pattern is unchanged keeps its phase).
    /// Nothing is written until [`Panel::tick`].
    pub fn set_leds(&mut self, patterns: LedPatterns, now: Instant) {
        let [g, a, r] = &mut self.leds;
        g.set_pattern(patterns.green, now);
        a.set_pattern(patterns.amber, now);
        r.set_pattern(patterns.red, now);
    }

    /// Restarts every pattern's cycle at `now` (a short press "replays the state").
    pub fn replay(&mut self, now: Instant) {
        self.leds.iter_mut().for_each(|l| l.restart(now));
    }

    /// The patterns shown.
    pub fn patterns(&self) -> LedPatterns {
        let [g, a, r] = &self.leds;
        LedPatterns {
            green: g.pattern(),
            amber: a.pattern(),
            red: r.pattern(),
        }
    }

    /// Whether each LED (green, amber, red) was last written lit.
    pub fn lit(&self) -> [bool; 3] {
        self.leds.each_ref().map(Led::is_lit)
    }

    /// Whether the button is held (debounced).
    pub fn button_pressed(&self) -> bool {
        self.button.is_pressed()
    }

    /// Samples the button, then brings every LED up to date for `now`.
    ///
    /// Errors: a button read error is returned at once. An LED write error is returned too,
    /// unless a press was detected in the same tick: then the press is returned and the
    /// error on the next tick, so neither is lost. Every LED is tried on every tick.
    pub fn tick(&mut self, now: Instant) -> Result<Option<Press>, HwError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let press = self.button.poll(now).map_err(|e| HwError::Gpio {
            part: Part::Button,
            message: format!("{e:?}"),
        })?;
        let mut first_err = None;
        for (led, part) in self
            .leds
            .iter_mut()
            .zip([Part::Green, Part::Amber, Part::Red])
        {
            if let Err(e) = led.tick(now) {
                first_err.get_or_insert(HwError::Gpio {
                    part,
                    message: format!("{e:?}"),
                });
            }
        }
        match (press, first_err) {
            (_, None) => Ok(press),
            (None, Some(e)) => Err(e),
            (Some(p), Some(e)) => {
                self.pending = Some(e);
                Ok(Some(p))
            }
        }
    }

    /// When to tick next: the button's [`POLL_INTERVAL`] or an LED change, whichever is
    /// sooner.
    pub fn next_wake(&self, now: Instant) -> Instant {
        let poll = now.checked_add(POLL_INTERVAL).unwrap_or(now);
        self.leds
            .iter()
            .filter_map(|l| l.next_wake(now))
            .fold(poll, Instant::min)
    }
}

impl<O: OutputPin + InputPin, I: InputPin> Panel<O, I> {
    /// Reads the level of each LED pin (green, amber, red) back from the pins (true = lit),
    /// whatever was last written: what `letterbox debug-gpio` compares with what it wrote.
    pub fn read_back_leds(&mut self) -> Result<[bool; 3], HwError> {
        let mut out = [false; 3];
        for ((led, part), lit) in self
            .leds
            .iter_mut()
            .zip([Part::Green, Part::Amber, Part::Red])
            .zip(out.iter_mut())
        {
            *lit = led.read_back().map_err(|e| HwError::Gpio {
                part,
                message: format!("{e:?}"),
            })?;
        }
        Ok(out)
    }

    /// Reads the button pin once, undebounced (true = pressed).
    pub fn read_button_level(&mut self) -> Result<bool, HwError> {
        self.button.read_level().map_err(|e| HwError::Gpio {
            part: Part::Button,
            message: format!("{e:?}"),
        })
    }
}

/// The board in use, chosen at run time by `[board] name`.
#[derive(Debug)]
pub enum Board {
    /// The simulated board (`name = "sim"`, the host default).
    Sim(SimBoard),
    /// No LEDs or button wired (`name = "auto"` on a machine that is not a known Pi, such
    /// as QEMU's `virt`): the panel runs in memory, shown by `letterbox status`, and
    /// `letterbox button` works as on the simulated board.
    None(SimBoard),
    /// A real board on a GPIO chip.
    Linux(LinuxBoard),
}

/// Opens board `name`: [`SIM`] gives the simulated board; any other name is loaded with
/// [`load_board`] from `board_dir` (or the built-in copies) and opened on its GPIO chip.
pub fn open(name: &str, board_dir: &Path, now: Instant) -> Result<Board, HwError> {
    if name == SIM {
        return Ok(Board::Sim(SimBoard::new(now)));
    }
    if name == crate::config::NONE_BOARD {
        return Ok(Board::None(SimBoard::new(now)));
    }
    let pins = load_board(name, board_dir)?;
    Ok(Board::Linux(LinuxBoard::open(&pins, now)?))
}

impl Board {
    /// Shows `patterns` (see [`Panel::set_leds`]).
    pub fn set_leds(&mut self, patterns: LedPatterns, now: Instant) {
        match self {
            Board::Sim(b) | Board::None(b) => b.set_leds(patterns, now),
            Board::Linux(b) => b.set_leds(patterns, now),
        }
    }

    /// Samples the button and updates the LEDs (see [`Panel::tick`]).
    pub fn tick(&mut self, now: Instant) -> Result<Option<Press>, HwError> {
        match self {
            Board::Sim(b) | Board::None(b) => b.tick(now),
            Board::Linux(b) => b.tick(now),
        }
    }

    /// Restarts every LED pattern at `now` (see [`Panel::replay`]).
    pub fn replay(&mut self, now: Instant) {
        match self {
            Board::Sim(b) | Board::None(b) => b.replay(now),
            Board::Linux(b) => b.replay(now),
        }
    }

    /// Whether the green, amber and red LEDs are lit: the sim's pin levels, or what was
    /// last written to the real pins.
    pub fn led_states(&self) -> [bool; 3] {
        match self {
            Board::Sim(b) | Board::None(b) => b.led_states(),
            Board::Linux(b) => b.panel().lit(),
        }
    }

    /// The patterns shown.
    pub fn patterns(&self) -> LedPatterns {
        match self {
            Board::Sim(b) | Board::None(b) => b.panel().patterns(),
            Board::Linux(b) => b.panel().patterns(),
        }
    }

    /// When to call [`Board::tick`] next (see [`Panel::next_wake`]).
    pub fn next_wake(&self, now: Instant) -> Instant {
        match self {
            Board::Sim(b) | Board::None(b) => b.panel().next_wake(now),
            Board::Linux(b) => b.panel().next_wake(now),
        }
    }

    /// Whether the button is held (debounced).
    pub fn button_pressed(&self) -> bool {
        match self {
            Board::Sim(b) | Board::None(b) => b.panel().button_pressed(),
            Board::Linux(b) => b.panel().button_pressed(),
        }
    }

    /// The sim's button control, if this is the simulated board.
    pub fn sim_control(&self) -> Option<SimControl> {
        match self {
            Board::Sim(b) | Board::None(b) => Some(b.control()),
            Board::Linux(_) => None,
        }
    }

    /// `"sim"`, `"none ..."` or the chip path, for `letterbox status`.
    pub fn describe(&self) -> String {
        match self {
            Board::Sim(_) => SIM.to_owned(),
            Board::None(_) => "none (no LEDs or button wired; shown here only)".to_owned(),
            Board::Linux(b) => b.chip().display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn open_sim_and_refuse_bad_board_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let board = open(SIM, dir.path(), t0).unwrap();
        assert_eq!(board.describe(), "sim");
        assert!(board.sim_control().is_some());
        std::fs::write(dir.path().join("bad.toml"), "chip = \"/tmp/x\"\n").unwrap();
        let err = open("bad", dir.path(), t0).unwrap_err();
        assert!(matches!(err, HwError::Board(_)));
        assert!(
            err.to_string().contains("not a device path under /dev"),
            "{err}"
        );
    }

    #[test]
    fn opening_a_missing_chip_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let text = builtin_board("rpi4")
            .unwrap()
            .replace("/dev/gpiochip0", "/dev/letterbox-no-such-chip");
        std::fs::write(dir.path().join("x.toml"), text).unwrap();
        let err = open("x", dir.path(), Instant::now()).unwrap_err();
        assert!(matches!(err, HwError::Open { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/dev/letterbox-no-such-chip"),
            "{err}"
        );
    }

    #[test]
    fn board_sim_end_to_end() {
        let t0 = Instant::now();
        let mut board = Board::Sim(SimBoard::new(t0));
        let mut health = Health::new();
        health.service = ServiceState::Up;
        health.unseen_mail = true;
        board.set_leds(health.patterns(t0), t0);
        assert_eq!(board.tick(t0).unwrap(), None);
        assert_eq!(board.led_states(), [true, true, false]);
        assert_eq!(board.patterns().green, Pattern::Solid);
        // Constant patterns: wake for the button poll only.
        assert_eq!(board.next_wake(t0), t0 + POLL_INTERVAL);
        health
            .faults
            .set(FaultClass::UncleanRestart, "unclean start");
        board.set_leds(health.patterns(t0), t0);
        board.tick(t0).unwrap();
        assert_eq!(board.led_states(), [true, true, true]);
        let ctl = board.sim_control().unwrap();
        let mut presses = Vec::new();
        for t in (10..200).step_by(10) {
            if t == 50 {
                ctl.press_for(ms(100), t0 + ms(t));
            }
            presses.extend(board.tick(t0 + ms(t)).unwrap());
        }
        for t in (200..600).step_by(10) {
            presses.extend(board.tick(t0 + ms(t)).unwrap());
        }
        assert_eq!(presses, [Press::Short]);
        health.acknowledge();
        board.set_leds(health.patterns(t0 + ms(600)), t0 + ms(600));
        board.replay(t0 + ms(600));
        board.tick(t0 + ms(600)).unwrap();
        assert_eq!(board.led_states(), [true, true, false]);
    }

    #[test]
    fn panel_with_mocks_reports_led_error_after_press() {
        let err = MockError::Io(std::io::ErrorKind::Other);
        let green = Mock::new(&[
            Transaction::set(State::Low),
            Transaction::set(State::High).with_error(err.clone()),
            Transaction::set(State::High),
        ]);
        let amber = Mock::new(&[Transaction::set(State::Low)]);
        let red = Mock::new(&[Transaction::set(State::Low)]);
        // Released for 4 reads (arms), pressed 4 (down), released 4 (up → Short).
        let mut reads = vec![Transaction::get(State::Low); 4];
        reads.extend(vec![Transaction::get(State::High); 4]);
        reads.extend(vec![Transaction::get(State::Low); 4]);
        reads.push(Transaction::get(State::Low)); // the tick at 130 ms (120 ms only reports)
        let button = Mock::new(&reads);
        let mut done = [green.clone(), amber.clone(), red.clone(), button.clone()];

        let t0 = Instant::now();
        let mut panel = Panel::new(green, amber, red, button, t0);
        for i in 0..11 {
            assert_eq!(panel.tick(t0 + ms(10 * i)).unwrap(), None, "tick {i}");
        }
        panel.set_leds(
            LedPatterns {
                green: Pattern::Solid,
                ..LedPatterns::default()
            },
            t0 + ms(110),
        );
        // The release completes on this tick while green fails: the press comes first...
        assert_eq!(panel.tick(t0 + ms(110)).unwrap(), Some(Press::Short));
        assert_eq!(panel.lit(), [false; 3]);
        // ...then the error, then the retry succeeds.
        let err = panel.tick(t0 + ms(120)).unwrap_err();
        assert!(
            matches!(
                err,
                HwError::Gpio {
                    part: Part::Green,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(panel.tick(t0 + ms(130)).unwrap(), None);
        assert_eq!(panel.lit(), [true, false, false]);
        for m in &mut done {
            m.done();
        }
    }
}
