//! Board files: `board/<name>.toml` → [`BoardPins`] (the GPIO chip and the line, polarity
//! and pull of each LED and of the button), validated before anything is opened.
//!
//! The format is documented in the files themselves (`board/rpi4.toml`). Refused, each with
//! a one-line message that names the key: a TOML syntax error, an unknown key, a missing
//! key, a value of the wrong type, a line number used twice, a chip path not under `/dev`.
//!
//! [`load_board`] reads `<board_dir>/<name>.toml`; if there is no such file it falls back to
//! the copies built into the binary ([`builtin_board`]), so an installed binary works
//! without the `board/` directory while a file on disk can still override the wiring.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use toml::{Table, Value};

/// The board files built into the binary, by name.
const BUILTIN: [(&str, &str); 4] = [
    ("rpi3", include_str!("../../board/rpi3.toml")),
    ("rpi4", include_str!("../../board/rpi4.toml")),
    ("rpi-zero2w", include_str!("../../board/rpi-zero2w.toml")),
    ("rpi5", include_str!("../../board/rpi5.toml")),
];

/// Names of the built-in boards.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _)| *n)
}

/// The text of a built-in board file.
pub fn builtin_board(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Internal pull resistor of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pull {
    /// Pull-up.
    Up,
    /// Pull-down.
    Down,
    /// Leave the bias as the kernel has it.
    None,
}

/// One GPIO line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Line {
    /// Line offset on the chip (the BCM GPIO number on a Raspberry Pi).
    pub line: u32,
    /// "On" (LED) or "pressed" (button) is the low level.
    pub active_low: bool,
    /// Internal pull.
    pub pull: Pull,
}

/// The validated pin map of a board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardPins {
    /// The GPIO character device, under `/dev`.
    pub chip: PathBuf,
    /// Health LED.
    pub green: Line,
    /// Mail LED.
    pub amber: Line,
    /// Fault LED.
    pub red: Line,
    /// The button.
    pub button: Line,
}

/// What is wrong with a board file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoardErrorKind {
    /// The board name has characters other than `a-z`, `0-9`, `-` and `_`.
    BadName,
    /// No file `<dir>/<name>.toml` and no built-in board of that name.
    NotFound {
        /// The file looked for.
        tried: PathBuf,
    },
    /// The file exists but could not be read.
    Read(String),
    /// Not valid TOML.
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key this format does not have (full dotted name).
    UnknownKey(String),
    /// A required key is absent (full dotted name).
    MissingKey(String),
    /// A key has a value of the wrong type.
    WrongType {
        /// Full dotted name.
        key: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A key has a value out of range.
    BadValue {
        /// Full dotted name.
        key: String,
        /// Why.
        message: String,
    },
    /// Two parts on the same line.
    DuplicateLine {
        /// The second key using it.
        key: String,
        /// The line number.
        line: u32,
        /// The first key using it.
        first: String,
    },
    /// `chip` is not a plain path under `/dev`.
    ChipNotUnderDev(String),
}

/// A board file refused, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardError {
    /// The file path, or `built-in <name>`.
    pub origin: String,
    /// What is wrong.
    pub kind: BoardErrorKind,
}

impl fmt::Display for BoardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "board file {}: ", self.origin)?;
        match &self.kind {
            BoardErrorKind::BadName => {
                write!(f, "board name must be made of a-z, 0-9, '-' and '_'")
            }
            BoardErrorKind::NotFound { tried } => {
                let known: Vec<_> = builtin_names().collect();
                write!(
                    f,
                    "no such board: {} does not exist and the built-in boards are {} (or \"sim\")",
                    tried.display(),
                    known.join(", ")
                )
            }
            BoardErrorKind::Read(e) => write!(f, "cannot read: {e}"),
            BoardErrorKind::Syntax { line, message } => {
                write!(f, "line {line}: {}", message.trim_end())
            }
            BoardErrorKind::UnknownKey(k) => write!(f, "unknown key `{k}`"),
            BoardErrorKind::MissingKey(k) => write!(f, "missing key `{k}`"),
            BoardErrorKind::WrongType { key, expected } => {
                write!(f, "`{key}` must be {expected}")
            }
            BoardErrorKind::BadValue { key, message } => write!(f, "`{key}` {message}"),
            BoardErrorKind::DuplicateLine { key, line, first } => {
                write!(f, "`{key}` = {line} is already used by `{first}`")
            }
            BoardErrorKind::ChipNotUnderDev(chip) => {
                write!(f, "`chip` = \"{chip}\" is not a device path under /dev")
            }
        }
    }
}

impl std::error::Error for BoardError {}

/// Loads board `name`: `<board_dir>/<name>.toml` if it exists, else the built-in copy.
pub fn load_board(name: &str, board_dir: &Path) -> Result<BoardPins, BoardError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(BoardError {
            origin: format!("{name:?}"),
            kind: BoardErrorKind::BadName,
        });
    }
    let path = board_dir.join(format!("{name}.toml"));
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_board(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match builtin_board(name) {
            Some(text) => parse_board(text, &format!("built-in {name}")),
            None => Err(BoardError {
                origin: path.display().to_string(),
                kind: BoardErrorKind::NotFound { tried: path },
            }),
        },
        Err(e) => Err(BoardError {
            origin: path.display().to_string(),
            kind: BoardErrorKind::Read(e.to_string()),
        }),
    }
}

/// Parses and validates the text of a board file; `origin` names it in errors.
pub fn parse_board(text: &str, origin: &str) -> Result<BoardPins, BoardError> {
    parse(text).map_err(|kind| BoardError {
        origin: origin.to_owned(),
        kind,
    })
}

const TOP_KEYS: [&str; 5] = ["chip", "green", "amber", "red", "button"];
const LINE_KEYS: [&str; 3] = ["line", "active_low", "pull"];

fn parse(text: &str) -> Result<BoardPins, BoardErrorKind> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map_or(1, |s| {
            let upto = &text.as_bytes()[..s.start.min(text.len())];
            upto.iter().filter(|&&b| b == b'\n').count() + 1
        });
        BoardErrorKind::Syntax {
            line,
            message: e.message().replace('\n', " "),
        }
    })?;
    if let Some(k) = table.keys().find(|k| !TOP_KEYS.contains(&k.as_str())) {
        return Err(BoardErrorKind::UnknownKey(k.clone()));
    }
    let chip = match table.get("chip") {
        None => return Err(BoardErrorKind::MissingKey("chip".into())),
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(BoardErrorKind::WrongType {
                key: "chip".into(),
                expected: "a string",
            });
        }
    };
    if !is_under_dev(chip) {
        return Err(BoardErrorKind::ChipNotUnderDev(chip.clone()));
    }
    let green = line(&table, "green", false, Pull::None)?;
    let amber = line(&table, "amber", false, Pull::None)?;
    let red = line(&table, "red", false, Pull::None)?;
    let button = line(&table, "button", true, Pull::Up)?;
    let named = [
        ("green", green),
        ("amber", amber),
        ("red", red),
        ("button", button),
    ];
    for (i, (name, l)) in named.iter().enumerate() {
        if let Some((first, _)) = named[..i].iter().find(|(_, o)| o.line == l.line) {
            return Err(BoardErrorKind::DuplicateLine {
                key: format!("{name}.line"),
                line: l.line,
                first: format!("{first}.line"),
            });
        }
    }
    Ok(BoardPins {
        chip: PathBuf::from(chip),
        green,
        amber,
        red,
        button,
    })
}

/// `/dev/<something>`, made only of plain components (no `..`).
fn is_under_dev(chip: &str) -> bool {
    let mut parts = Path::new(chip).components();
    parts.next() == Some(Component::RootDir)
        && parts.next() == Some(Component::Normal("dev".as_ref()))
        && {
            let rest: Vec<_> = parts.collect();
            !rest.is_empty() && rest.iter().all(|c| matches!(c, Component::Normal(_)))
        }
}

fn line(
    table: &Table,
    name: &str,
    default_active_low: bool,
    default_pull: Pull,
) -> Result<Line, BoardErrorKind> {
    let section = match table.get(name) {
        None => return Err(BoardErrorKind::MissingKey(name.into())),
        Some(Value::Table(t)) => t,
        Some(_) => {
            return Err(BoardErrorKind::WrongType {
                key: name.into(),
                expected: "a table",
            });
        }
    };
    if let Some(k) = section.keys().find(|k| !LINE_KEYS.contains(&k.as_str())) {
        return Err(BoardErrorKind::UnknownKey(format!("{name}.{k}")));
    }
    let key = |k: &str| format!("{name}.{k}");
    let line = match section.get("line") {
        None => return Err(BoardErrorKind::MissingKey(key("line"))),
        Some(Value::Integer(n)) => u32::try_from(*n).map_err(|_| BoardErrorKind::BadValue {
            key: key("line"),
            message: format!("= {n} is not a line number (0 to {})", u32::MAX),
        })?,
        Some(_) => {
            return Err(BoardErrorKind::WrongType {
                key: key("line"),
                expected: "an integer",
            });
        }
    };
    let active_low = match section.get("active_low") {
        None => default_active_low,
        Some(Value::Boolean(b)) => *b,
        Some(_) => {
            return Err(BoardErrorKind::WrongType {
                key: key("active_low"),
                expected: "true or false",
            });
        }
    };
    let pull = match section.get("pull") {
        None => default_pull,
        Some(Value::String(s)) => match s.as_str() {
            "up" => Pull::Up,
            "down" => Pull::Down,
            "none" => Pull::None,
            _ => {
                return Err(BoardErrorKind::BadValue {
                    key: key("pull"),
                    message: format!("= {s:?} is not \"up\", \"down\" or \"none\""),
                });
            }
        },
        Some(_) => {
            return Err(BoardErrorKind::WrongType {
                key: key("pull"),
                expected: "\"up\", \"down\" or \"none\"",
            });
        }
    };
    Ok(Line {
        line,
        active_low,
        pull,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
chip = "/dev/gpiochip0"
[green]
line = 17
[amber]
line = 27
[red]
line = 22
[button]
line = 23
"#;

    fn led(line: u32) -> Line {
        Line {
            line,
            active_low: false,
            pull: Pull::None,
        }
    }

    fn default_pins() -> BoardPins {
        BoardPins {
            chip: "/dev/gpiochip0".into(),
            green: led(17),
            amber: led(27),
            red: led(22),
            button: Line {
                line: 23,
                active_low: true,
                pull: Pull::Up,
            },
        }
    }

    fn kind(text: &str) -> BoardErrorKind {
        parse_board(text, "t.toml").unwrap_err().kind
    }

    #[test]
    fn the_four_real_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
        for name in ["rpi3", "rpi4", "rpi-zero2w", "rpi5"] {
            let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(builtin_board(name), Some(text.as_str()));
            assert_eq!(load_board(name, &dir).unwrap(), default_pins(), "{name}");
        }
        assert_eq!(builtin_names().count(), 4);
    }

    #[test]
    fn builtin_used_when_no_file_and_file_overrides() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_board("rpi4", dir.path()).unwrap(), default_pins());
        std::fs::write(
            dir.path().join("rpi4.toml"),
            GOOD.replace("gpiochip0", "gpiochip4"),
        )
        .unwrap();
        let pins = load_board("rpi4", dir.path()).unwrap();
        assert_eq!(pins.chip, Path::new("/dev/gpiochip4"));
    }

    #[test]
    fn defaults() {
        assert_eq!(parse_board(GOOD, "t").unwrap(), default_pins());
    }

    #[test]
    fn unknown_keys() {
        assert_eq!(
            kind(&format!("{GOOD}\n[blue]\nline = 5\n")),
            BoardErrorKind::UnknownKey("blue".into())
        );
        let text = GOOD.replace("line = 27", "line = 27\ncolour = \"amber\"");
        assert_eq!(
            kind(&text),
            BoardErrorKind::UnknownKey("amber.colour".into())
        );
        let err = parse_board(&text, "board/x.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "board file board/x.toml: unknown key `amber.colour`"
        );
    }

    #[test]
    fn duplicate_line() {
        let text = GOOD.replace("line = 23", "line = 17");
        assert_eq!(
            kind(&text),
            BoardErrorKind::DuplicateLine {
                key: "button.line".into(),
                line: 17,
                first: "green.line".into()
            }
        );
        assert_eq!(
            parse_board(&text, "t").unwrap_err().to_string(),
            "board file t: `button.line` = 17 is already used by `green.line`"
        );
    }

    #[test]
    fn missing_keys() {
        let text = GOOD.replace("chip = \"/dev/gpiochip0\"", "");
        assert_eq!(kind(&text), BoardErrorKind::MissingKey("chip".into()));
        let text = GOOD.replace("[red]\nline = 22\n", "");
        assert_eq!(kind(&text), BoardErrorKind::MissingKey("red".into()));
        let text = GOOD.replace("[red]\nline = 22\n", "[red]\nactive_low = true\n");
        assert_eq!(kind(&text), BoardErrorKind::MissingKey("red.line".into()));
        assert_eq!(
            parse_board(&text, "t").unwrap_err().to_string(),
            "board file t: missing key `red.line`"
        );
    }

    #[test]
    fn chip_must_be_under_dev() {
        for chip in [
            "/tmp/gpiochip0",
            "gpiochip0",
            "/dev",
            "/dev/../etc/passwd",
            "/devx/a",
        ] {
            let text = GOOD.replace("/dev/gpiochip0", chip);
            assert_eq!(
                kind(&text),
                BoardErrorKind::ChipNotUnderDev(chip.into()),
                "{chip}"
            );
        }
        let text = GOOD.replace("/dev/gpiochip0", "/tmp/x");
        assert_eq!(
            parse_board(&text, "t").unwrap_err().to_string(),
            "board file t: `chip` = \"/tmp/x\" is not a device path under /dev"
        );
    }

    #[test]
    fn wrong_types_and_values() {
        let text = GOOD.replace("line = 22", "line = \"22\"");
        assert!(matches!(kind(&text), BoardErrorKind::WrongType { key, .. } if key == "red.line"));
        let text = GOOD.replace("line = 22", "line = -1");
        assert!(matches!(kind(&text), BoardErrorKind::BadValue { key, .. } if key == "red.line"));
        let text = GOOD.replace("line = 23", "line = 23\npull = \"sideways\"");
        assert!(
            matches!(kind(&text), BoardErrorKind::BadValue { key, .. } if key == "button.pull")
        );
        let text = GOOD.replace("line = 23", "line = 23\nactive_low = 1");
        assert!(
            matches!(kind(&text), BoardErrorKind::WrongType { key, .. } if key == "button.active_low")
        );
        let text = GOOD.replace("chip = \"/dev/gpiochip0\"", "chip = 0");
        assert!(matches!(kind(&text), BoardErrorKind::WrongType { key, .. } if key == "chip"));
        let text = format!("green = 1\n{}", GOOD.replace("[green]\nline = 17\n", ""));
        assert!(matches!(kind(&text), BoardErrorKind::WrongType { key, .. } if key == "green"));
    }

    #[test]
    fn syntax_error_names_the_line_on_one_line() {
        let text = GOOD.replace("line = 27", "line = = 27");
        let err = parse_board(&text, "t").unwrap_err();
        assert!(
            matches!(err.kind, BoardErrorKind::Syntax { line: 6, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
        // A key given twice is a TOML error too.
        let text = GOOD.replace("line = 27", "line = 27\nline = 28");
        assert!(matches!(kind(&text), BoardErrorKind::Syntax { .. }));
    }

    #[test]
    fn bad_or_unknown_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "../etc/passwd", "Rpi4", "a/b"] {
            assert_eq!(
                load_board(name, dir.path()).unwrap_err().kind,
                BoardErrorKind::BadName
            );
        }
        let err = load_board("rpi9", dir.path()).unwrap_err();
        assert!(matches!(err.kind, BoardErrorKind::NotFound { .. }));
        assert!(
            err.to_string().contains("rpi3, rpi4, rpi-zero2w, rpi5"),
            "{err}"
        );
    }
}
