//! `[spam]`, the learning junk filter's keys (src/spam/learn.rs): whether it runs, the
//! score that sends a message to Junk, the one that refuses it (off by default), and
//! how much training an account needs before its filter may junk anything.

use super::{Builder, ConfigError};

/// The learning filter's keys of the `[spam]` table as written (read with the rest of the
/// table by `spam.rs`).
#[derive(Default)]
pub(super) struct RawSpamFilter {
    pub(super) learn: Option<bool>,
    pub(super) junk_threshold: Option<f64>,
    pub(super) reject_threshold: Option<f64>,
    pub(super) min_trained: Option<u32>,
}

/// The learning junk filter's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamFilterConfig {
    /// `learn`: score incoming mail and learn from what people do (default true).
    pub enabled: bool,
    /// `junk_threshold`: a spam probability at or over this goes to Junk (default 0.95).
    pub junk_threshold: f64,
    /// `reject_threshold`: at or over this the message is refused with 550 5.7.1 at the
    /// end of DATA (port 25 only; off by default).
    pub reject_threshold: Option<f64>,
    /// `min_trained`: spam and ham messages each an account needs trained before its
    /// filter junks anything (default 20).
    pub min_trained: u32,
}

// The thresholds are checked finite when parsed, so equality is an equivalence.
impl Eq for SpamFilterConfig {}

impl Default for SpamFilterConfig {
    fn default() -> Self {
        SpamFilterConfig {
            enabled: true,
            junk_threshold: 0.95,
            reject_threshold: None,
            min_trained: 20,
        }
    }
}

impl Builder<'_> {
    /// `[spam]` learning-filter keys: thresholds are probabilities between 0.5 and 1, and
    /// `reject_threshold` may not be below `junk_threshold`.
    pub(super) fn spam_filter(&self, raw: RawSpamFilter) -> Result<SpamFilterConfig, ConfigError> {
        let mut c = SpamFilterConfig::default();
        if let Some(b) = raw.learn {
            c.enabled = b;
        }
        let prob = |key: &str, v: f64| {
            if v.is_finite() && (0.5..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(self.err(key, format!("{v} is not a probability between 0.5 and 1")))
            }
        };
        if let Some(v) = raw.junk_threshold {
            c.junk_threshold = prob("spam.junk_threshold", v)?;
        }
        if let Some(v) = raw.reject_threshold {
            let v = prob("spam.reject_threshold", v)?;
            if v < c.junk_threshold {
                return Err(self.err(
                    "spam.reject_threshold",
                    format!("{v} is below junk_threshold ({})", c.junk_threshold),
                ));
            }
            c.reject_threshold = Some(v);
        }
        if let Some(n) = raw.min_trained {
            if n == 0 {
                return Err(self.err("spam.min_trained", "must be at least 1"));
            }
            c.min_trained = n;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn spam_filter_defaults_and_errors() {
        let d = Config::defaults().spam_filter;
        assert!(d.enabled);
        assert_eq!(
            (d.junk_threshold, d.reject_threshold, d.min_trained),
            (0.95, None, 20)
        );
        let c = Config::parse(
            "[spam]\nlearn = true\njunk_threshold = 0.9\nreject_threshold = 0.9999\nmin_trained = 5\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.spam_filter.junk_threshold, 0.9);
        assert_eq!(c.spam_filter.reject_threshold, Some(0.9999));
        assert_eq!(c.spam_filter.min_trained, 5);
        let e = Config::parse("[spam]\njunk_threshold = 1.5\n", "t").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("spam.junk_threshold"))
        );
        let e = Config::parse("[spam]\n\nreject_threshold = 0.6\n", "t").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("spam.reject_threshold"))
        );
        let e = Config::parse("[spam]\nmin_trained = 0\n", "t").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("spam.min_trained"))
        );
    }
}
