//! The GPIO self-test behind `letterbox debug-gpio` (a hidden developer command).
//!
//! It drives each LED on and off through the [`Panel`] (the code path the daemon uses) and
//! reads every LED pin back after each write; it reads the button pin, and can wait for a
//! real press. On the real backend the pins are `CdevPin`s on the GPIO character device: a
//! line requested as an output reads back the level it drives, so a wrong line, a wrong
//! polarity or a write that never reached the chip shows up as a mismatch.
//! `image/test-gpio.sh` runs it in an aarch64 kernel under QEMU (the `-M virt` PL061 chip).
//!
//! Nothing here sleeps or reads the clock; [`wait_press`] takes both as arguments.

use std::fmt;
use std::time::{Duration, Instant};

use embedded_hal::digital::{InputPin, OutputPin};

use super::Panel;
use super::board::{BoardPins, Line};
use super::button::{POLL_INTERVAL, Press};
use super::health::LedPatterns;
use super::led::Pattern;

/// The LED names, in panel order.
const LEDS: [&str; 3] = ["green", "amber", "red"];

/// The result of one check: one line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Passed.
    pub ok: bool,
    /// What was checked, e.g. `green LED on`.
    pub what: String,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{tag} {}: {}", self.what, self.detail)
    }
}

/// `lit` as the electrical level of `line`.
fn level(line: &Line, logical: bool) -> &'static str {
    if logical != line.active_low {
        "high"
    } else {
        "low"
    }
}

/// Drives each LED on, then off, `rounds` times, reading all three back after every write.
/// Ends with every LED off. Reports one [`Check`] per write; returns the number that failed.
pub fn led_cycle<O, I>(
    panel: &mut Panel<O, I>,
    pins: &BoardPins,
    rounds: u32,
    now: Instant,
    report: &mut dyn FnMut(Check),
) -> usize
where
    O: OutputPin + InputPin,
    I: InputPin,
{
    let lines = [&pins.green, &pins.amber, &pins.red];
    let mut failed = 0;
    for _ in 0..rounds {
        for (i, name) in LEDS.iter().enumerate() {
            for on in [true, false] {
                let pattern = |j: usize| {
                    if j == i && on {
                        Pattern::Solid
                    } else {
                        Pattern::Off
                    }
                };
                let patterns = LedPatterns {
                    green: pattern(0),
                    amber: pattern(1),
                    red: pattern(2),
                };
                let expected = [0, 1, 2].map(|j| j == i && on);
                let what = format!("{name} LED {}", if on { "on" } else { "off" });
                panel.set_leds(patterns, now);
                let check = match panel.tick(now).and_then(|_| panel.read_back_leds()) {
                    Err(e) => Check {
                        ok: false,
                        what,
                        detail: e.to_string(),
                    },
                    Ok(seen) => {
                        let detail = LEDS
                            .iter()
                            .zip(lines)
                            .zip(seen)
                            .map(|((n, l), s)| {
                                format!(
                                    "{n}={} (line {} {})",
                                    if s { "lit" } else { "dark" },
                                    l.line,
                                    level(l, s)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" ");
                        Check {
                            ok: seen == expected,
                            what,
                            detail: format!("read back {detail}"),
                        }
                    }
                };
                if !check.ok {
                    failed += 1;
                }
                report(check);
            }
        }
    }
    failed
}

/// Reads the button pin once. With `expect_pressed`, the level must match.
pub fn button_level<O, I>(
    panel: &mut Panel<O, I>,
    pins: &BoardPins,
    expect_pressed: Option<bool>,
) -> Check
where
    O: OutputPin + InputPin,
    I: InputPin,
{
    let what = format!("button (line {})", pins.button.line);
    match panel.read_button_level() {
        Err(e) => Check {
            ok: false,
            what,
            detail: e.to_string(),
        },
        Ok(pressed) => Check {
            ok: expect_pressed.is_none_or(|x| x == pressed),
            what,
            detail: format!(
                "reads {} ({}){}",
                if pressed { "pressed" } else { "released" },
                level(&pins.button, pressed),
                match expect_pressed {
                    Some(true) => ", expected pressed",
                    Some(false) => ", expected released",
                    None => "",
                }
            ),
        },
    }
}

/// Polls the button through [`Panel::tick`] every [`POLL_INTERVAL`] until a press is
/// classified or `timeout` has passed. `clock` reads the time, `sleep` waits.
pub fn wait_press<O, I>(
    panel: &mut Panel<O, I>,
    timeout: Duration,
    clock: &mut dyn FnMut() -> Instant,
    sleep: &mut dyn FnMut(Duration),
) -> Check
where
    O: OutputPin + InputPin,
    I: InputPin,
{
    let start = clock();
    let what = "button press".to_owned();
    loop {
        let now = clock();
        match panel.tick(now) {
            Ok(Some(press)) => {
                let kind = match press {
                    Press::Short => "short",
                    Press::Hold => "hold",
                };
                return Check {
                    ok: true,
                    what,
                    detail: format!(
                        "{kind} press seen after {:.2} s",
                        now.saturating_duration_since(start).as_secs_f64()
                    ),
                };
            }
            Ok(None) => {}
            Err(e) => {
                return Check {
                    ok: false,
                    what,
                    detail: e.to_string(),
                };
            }
        }
        if now.saturating_duration_since(start) >= timeout {
            return Check {
                ok: false,
                what,
                detail: format!("no press within {} s", timeout.as_secs_f64()),
            };
        }
        sleep(POLL_INTERVAL);
    }
}

/// One line naming the chip and each part's line, for the top of the report.
pub fn describe(pins: &BoardPins) -> String {
    let l = |name: &str, line: &Line| {
        format!(
            "{name}=line {}{}",
            line.line,
            if line.active_low { " (active low)" } else { "" }
        )
    };
    format!(
        "{}: {} {} {} {}",
        pins.chip.display(),
        l("green", &pins.green),
        l("amber", &pins.amber),
        l("red", &pins.red),
        l("button", &pins.button)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::board::parse_board;
    use crate::hw::sim::SimPin;
    use embedded_hal::digital::ErrorType;
    use std::cell::Cell;
    use std::convert::Infallible;

    const BOARD: &str = r#"
chip = "/dev/gpiochip0"
[green]
line = 0
[amber]
line = 1
active_low = true
[red]
line = 2
[button]
line = 3
active_low = false
pull = "none"
"#;

    fn pins() -> BoardPins {
        parse_board(BOARD, "test").unwrap()
    }

    fn sim_panel(now: Instant) -> (Panel<SimPin, SimPin>, [SimPin; 3], SimPin) {
        let leds = [SimPin::new(false), SimPin::new(false), SimPin::new(false)];
        let button = SimPin::new(false);
        let panel = Panel::new(
            leds[0].clone(),
            leds[1].clone(),
            leds[2].clone(),
            button.clone(),
            now,
        );
        (panel, leds, button)
    }

    #[test]
    fn cycle_passes_on_pins_that_read_back_and_ends_dark() {
        let now = Instant::now();
        let (mut panel, leds, _) = sim_panel(now);
        let mut checks = Vec::new();
        let failed = led_cycle(&mut panel, &pins(), 2, now, &mut |c| checks.push(c));
        assert_eq!(failed, 0, "{checks:#?}");
        assert_eq!(checks.len(), 12);
        assert!(checks.iter().all(|c| c.ok));
        assert_eq!(checks[0].what, "green LED on");
        // amber is active low in BOARD: dark is the high level.
        assert_eq!(
            checks[0].detail,
            "read back green=lit (line 0 high) amber=dark (line 1 high) red=dark (line 2 low)"
        );
        assert_eq!(checks[5].what, "red LED off");
        assert!(leds.iter().all(|p| !p.level()));
    }

    /// An output that ignores writes and always reads low: a line that is not driven.
    struct Stuck;
    impl ErrorType for Stuck {
        type Error = Infallible;
    }
    impl OutputPin for Stuck {
        fn set_low(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }
    impl InputPin for Stuck {
        fn is_high(&mut self) -> Result<bool, Infallible> {
            Ok(false)
        }
        fn is_low(&mut self) -> Result<bool, Infallible> {
            Ok(true)
        }
    }

    #[test]
    fn a_line_that_does_not_follow_is_a_failure() {
        let now = Instant::now();
        let mut panel = Panel::new(Stuck, Stuck, Stuck, SimPin::new(false), now);
        let mut checks = Vec::new();
        let failed = led_cycle(&mut panel, &pins(), 1, now, &mut |c| checks.push(c));
        // Every "on" fails; every "off" reads dark as expected.
        assert_eq!(failed, 3);
        assert!(!checks[0].ok);
        assert!(checks[0].to_string().starts_with("FAIL green LED on: "));
        assert!(checks[1].ok);
    }

    #[test]
    fn button_level_and_expectation() {
        let now = Instant::now();
        let (mut panel, _, button) = sim_panel(now);
        let c = button_level(&mut panel, &pins(), Some(false));
        assert!(c.ok, "{c}");
        assert_eq!(
            c.to_string(),
            "ok   button (line 3): reads released (low), expected released"
        );
        button.set(true);
        let c = button_level(&mut panel, &pins(), Some(false));
        assert!(!c.ok);
        let c = button_level(&mut panel, &pins(), None);
        assert!(c.ok);
        assert!(c.detail.starts_with("reads pressed (high)"));
    }

    #[test]
    fn wait_press_sees_a_pulse_and_times_out_without_one() {
        let t0 = Instant::now();
        let (mut panel, _, button) = sim_panel(t0);
        let t = Cell::new(t0);
        // The button goes down 0.5 s in and comes up 100 ms later (QEMU's gpio-key pulse).
        let mut sleep = |d: Duration| {
            t.set(t.get() + d);
            let e = t.get() - t0;
            button.set(e >= Duration::from_millis(500) && e < Duration::from_millis(600));
        };
        let c = wait_press(
            &mut panel,
            Duration::from_secs(5),
            &mut || t.get(),
            &mut sleep,
        );
        assert!(c.ok, "{c}");
        assert!(c.detail.starts_with("short press seen after 0.6"), "{c}");

        let t0 = Instant::now();
        let (mut panel, _, _) = sim_panel(t0);
        let t = Cell::new(t0);
        let c = wait_press(
            &mut panel,
            Duration::from_secs(1),
            &mut || t.get(),
            &mut |d| t.set(t.get() + d),
        );
        assert!(!c.ok);
        assert_eq!(c.detail, "no press within 1 s");
    }

    #[test]
    fn describe_names_every_line() {
        assert_eq!(
            describe(&pins()),
            "/dev/gpiochip0: green=line 0 amber=line 1 (active low) red=line 2 button=line 3"
        );
    }
}
