//! The greylisting decision, pure: what RCPT gets, given what the store remembers.
//!
//! Greylisting happens at RCPT TO (as postgrey does): an unknown (client /24 or /64,
//! envelope sender, recipient) triple gets `451 4.7.1`, and the same triple retried
//! after `greylist_delay` passes; its network is then remembered for `greylist_remember`
//! and every later message from it passes at once. Skipped for clients on a DNS
//! allowlist, and for a sender whose domain the recipient has written to. That last skip
//! is provisional: it is only worth something if the sender is who it claims, which DMARC
//! tells after DATA. So when it was used, the end of DATA greylists the message
//! (`451 4.7.1`, and the triples are recorded) unless DMARC passed for that same domain.

use std::time::Duration;

/// How long a deferred triple waits for its retry before it is forgotten (postgrey's
/// `--max-age` is 35 days for passed triples; a retry comes within a day or two).
pub const RETRY_WINDOW: Duration = Duration::from_secs(2 * 86_400);

/// What the store knows about one recipient of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Known {
    /// When the client network last passed greylisting (unix seconds).
    pub network_passed: Option<i64>,
    /// When this triple was first deferred (unix seconds).
    pub triple_seen: Option<i64>,
    /// The recipient has sent mail to the sender's domain.
    pub wrote_to: bool,
}

/// The decision for one RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Accept: the network passed within `remember`.
    KnownNetwork,
    /// Accept: a DNS allowlist lists the client.
    Allowlisted,
    /// Accept for now: the recipient wrote to the sender's domain (DMARC decides after
    /// DATA).
    WroteTo,
    /// Accept: the triple waited long enough. Remember the network, forget the triple.
    Passed,
    /// `451 4.7.1`. `new` when the triple must be recorded (first time, or its earlier
    /// record is too old to count).
    Defer {
        /// Record the triple now.
        new: bool,
    },
}

impl Decision {
    /// Whether RCPT is accepted.
    pub fn accepts(self) -> bool {
        !matches!(self, Decision::Defer { .. })
    }
}

/// The decision at `now` for what the store knows, with `delay`, `remember` and the retry
/// window already scaled.
pub fn decide(
    known: Known,
    allowlisted: bool,
    now: i64,
    delay: Duration,
    remember: Duration,
    retry_window: Duration,
) -> Decision {
    let secs = |d: Duration| i64::try_from(d.as_millis().div_ceil(1000)).unwrap_or(i64::MAX);
    if let Some(t) = known.network_passed
        && now.saturating_sub(t) <= secs(remember)
    {
        return Decision::KnownNetwork;
    }
    if allowlisted {
        return Decision::Allowlisted;
    }
    // Only for a triple not yet deferred: once the end of DATA deferred it (DMARC did not
    // pass), it waits like any other.
    if known.wrote_to && known.triple_seen.is_none() {
        return Decision::WroteTo;
    }
    match known.triple_seen {
        Some(t) if now.saturating_sub(t) > secs(delay).saturating_add(secs(retry_window)) => {
            Decision::Defer { new: true }
        }
        Some(t) if now.saturating_sub(t) >= secs(delay) => Decision::Passed,
        Some(_) => Decision::Defer { new: false },
        None => Decision::Defer { new: true },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(300);
    const R: Duration = Duration::from_secs(30 * 86_400);

    fn at(known: Known, now: i64) -> Decision {
        decide(known, false, now, D, R, RETRY_WINDOW)
    }

    #[test]
    fn an_unknown_triple_waits_then_passes() {
        assert_eq!(at(Known::default(), 1000), Decision::Defer { new: true });
        let k = Known {
            triple_seen: Some(1000),
            ..Known::default()
        };
        assert_eq!(at(k, 1001), Decision::Defer { new: false });
        assert_eq!(at(k, 1299), Decision::Defer { new: false });
        assert_eq!(at(k, 1300), Decision::Passed);
        // A retry long after is a new triple.
        assert_eq!(at(k, 1300 + 2 * 86_400 + 1), Decision::Defer { new: true });
        assert!(Decision::Passed.accepts() && !Decision::Defer { new: false }.accepts());
    }

    #[test]
    fn known_networks_allowlists_and_correspondents_skip() {
        let k = Known {
            network_passed: Some(0),
            ..Known::default()
        };
        assert_eq!(at(k, 30 * 86_400), Decision::KnownNetwork);
        assert_eq!(at(k, 30 * 86_400 + 1), Decision::Defer { new: true });
        assert_eq!(
            decide(Known::default(), true, 5, D, R, RETRY_WINDOW),
            Decision::Allowlisted
        );
        let k = Known {
            wrote_to: true,
            ..Known::default()
        };
        assert_eq!(at(k, 5), Decision::WroteTo);
        let k = Known {
            wrote_to: true,
            triple_seen: Some(5),
            ..Known::default()
        };
        assert_eq!(at(k, 6), Decision::Defer { new: false });
        assert_eq!(at(k, 305), Decision::Passed);
    }

    #[test]
    fn scaled_durations_round_up_to_seconds() {
        let k = Known {
            triple_seen: Some(100),
            ..Known::default()
        };
        let d = Duration::from_millis(1500);
        assert_eq!(
            decide(k, false, 101, d, R, RETRY_WINDOW),
            Decision::Defer { new: false }
        );
        assert_eq!(decide(k, false, 102, d, R, RETRY_WINDOW), Decision::Passed);
    }
}
