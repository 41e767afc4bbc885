//! The real backend: the GPIO character device through linux-embedded-hal's [`CdevPin`].
//!
//! Lines are requested *without* the kernel's `ACTIVE_LOW` flag: `CdevPin` reports
//! electrical levels (it undoes the kernel's inversion), and polarity is applied by our
//! [`ActiveLow`](super::polarity::ActiveLow) wrapper as the board file says.
//!
//! Pull resistors: gpio-cdev 0.6 (the version linux-embedded-hal 0.4 uses) speaks the v1
//! GPIO uAPI and has no names for the bias flags, but passes the flag bits to the kernel
//! unchanged. We set `GPIOHANDLE_REQUEST_BIAS_PULL_UP` / `_PULL_DOWN` (bits 5 and 6,
//! `include/uapi/linux/gpio.h`, Linux 5.5+) by value. If the kernel refuses them the line is
//! requested again without bias and a warning is logged (the button then needs an external
//! pull-up). `Pull::None` leaves the bias as it is.
//!
//! Opening fails with an [`HwError::Open`] naming the chip or line; a read or write that
//! fails later comes back from [`LinuxBoard::tick`] as an [`HwError::Gpio`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use linux_embedded_hal::gpio_cdev::{Chip, LineHandle, LineRequestFlags};
use linux_embedded_hal::{CdevPin, CdevPinError};

use super::board::{BoardPins, Line, Pull};
use super::button::Press;
use super::health::LedPatterns;
use super::polarity::{DynInput, DynOutput, input_with_polarity, output_with_polarity};
use super::{HwError, Panel};

/// `GPIOHANDLE_REQUEST_BIAS_PULL_UP` (Linux 5.5+).
const BIAS_PULL_UP: u32 = 1 << 5;
/// `GPIOHANDLE_REQUEST_BIAS_PULL_DOWN` (Linux 5.5+).
const BIAS_PULL_DOWN: u32 = 1 << 6;

/// Consumer label shown by `gpioinfo` for our lines.
const CONSUMER: &str = "letterbox";

/// The three LEDs and the button on a GPIO chip.
pub struct LinuxBoard {
    panel: Panel<DynOutput<CdevPinError>, DynInput<CdevPinError>>,
    chip: PathBuf,
    pins: BoardPins,
}

impl std::fmt::Debug for LinuxBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxBoard")
            .field("chip", &self.chip)
            .field("patterns", &self.panel.patterns())
            .finish_non_exhaustive()
    }
}

impl LinuxBoard {
    /// Opens the chip and requests the four lines: LEDs as outputs, initially off; the
    /// button as an input with its pull.
    pub fn open(pins: &BoardPins, now: Instant) -> Result<Self, HwError> {
        let open_err = |what: String, e: &dyn std::fmt::Display| HwError::Open {
            what,
            message: e.to_string(),
        };
        let mut chip = Chip::new(&pins.chip)
            .map_err(|e| open_err(format!("GPIO chip {}", pins.chip.display()), &e))?;
        let mut output = |name: &str, l: &Line| -> Result<DynOutput<CdevPinError>, HwError> {
            let what = format!("{name} LED (line {} of {})", l.line, pins.chip.display());
            // Off is the low level, or the high level for an active-low LED.
            let off = u8::from(l.active_low);
            let handle = request(&mut chip, l, LineRequestFlags::OUTPUT, off)
                .map_err(|e| open_err(what.clone(), &e))?;
            let pin = CdevPin::new(handle).map_err(|e| open_err(what, &e))?;
            Ok(output_with_polarity(pin, l.active_low))
        };
        let green = output("green", &pins.green)?;
        let amber = output("amber", &pins.amber)?;
        let red = output("red", &pins.red)?;
        let what = format!(
            "button (line {} of {})",
            pins.button.line,
            pins.chip.display()
        );
        let handle = request(&mut chip, &pins.button, LineRequestFlags::INPUT, 0)
            .map_err(|e| open_err(what.clone(), &e))?;
        let button = CdevPin::new(handle).map_err(|e| open_err(what, &e))?;
        let button = input_with_polarity(button, pins.button.active_low);
        tracing::info!(chip = %pins.chip.display(), "GPIO board opened");
        Ok(LinuxBoard {
            panel: Panel::new(green, amber, red, button, now),
            chip: pins.chip.clone(),
            pins: pins.clone(),
        })
    }

    /// The chip path.
    pub fn chip(&self) -> &Path {
        &self.chip
    }

    /// The panel (LED patterns and button state).
    pub fn panel(&self) -> &Panel<DynOutput<CdevPinError>, DynInput<CdevPinError>> {
        &self.panel
    }

    /// The board file's pin map.
    pub fn pins(&self) -> &BoardPins {
        &self.pins
    }

    /// The panel, to drive or read back directly (`letterbox debug-gpio`).
    pub fn panel_mut(&mut self) -> &mut Panel<DynOutput<CdevPinError>, DynInput<CdevPinError>> {
        &mut self.panel
    }

    /// See [`Panel::replay`].
    pub fn replay(&mut self, now: Instant) {
        self.panel.replay(now);
    }

    /// See [`Panel::set_leds`].
    pub fn set_leds(&mut self, patterns: LedPatterns, now: Instant) {
        self.panel.set_leds(patterns, now);
    }

    /// See [`Panel::tick`].
    pub fn tick(&mut self, now: Instant) -> Result<Option<Press>, HwError> {
        self.panel.tick(now)
    }
}

/// Requests one line with `direction` and the line's pull; retries without the bias bits if
/// the kernel refuses them.
fn request(
    chip: &mut Chip,
    l: &Line,
    direction: LineRequestFlags,
    default: u8,
) -> Result<LineHandle, linux_embedded_hal::gpio_cdev::Error> {
    let line = chip.get_line(l.line)?;
    let bias = match l.pull {
        Pull::Up => BIAS_PULL_UP,
        Pull::Down => BIAS_PULL_DOWN,
        Pull::None => 0,
    };
    if bias == 0 {
        return line.request(direction, default, CONSUMER);
    }
    let flags = LineRequestFlags::from_bits_retain(direction.bits() | bias);
    line.request(flags, default, CONSUMER).or_else(|e| {
        tracing::warn!(
            line = l.line,
            pull = ?l.pull,
            error = %e,
            "kernel refused the pull setting; using the line without it"
        );
        line.request(direction, default, CONSUMER)
    })
}
