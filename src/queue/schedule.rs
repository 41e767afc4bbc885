//! The retry schedule, as pure functions of the attempt count and the time (habit 6:
//! time is an input; the runner owns the timer).
//!
//! RFC 5321 §4.5.4.1 asks for at least 30 minutes between retries and for giving up only
//! after 4–5 days. Letterbox retries sooner at first, as Postfix and mox do, because most
//! temporary failures (greylisting, a restarting server) clear within minutes:
//! 5 min, 15 min, 30 min, 1 h, 2 h, then every 4 h, until 5 days after queueing. The
//! last retry is moved to the expiry time so a message is never given up on without one
//! attempt at the end. A sender whose message is still queued after 4 hours gets one
//! "delayed" notice (RFC 3464 `Action: delayed`).
//!
//! `[queue] retry_scale` multiplies every one of these durations (tests use 0.001, so
//! 5 minutes becomes 1 second and 5 days about 7 minutes); each scaled delay is at
//! least one second.

/// Delays after the first, second, … failed attempt, in seconds; the last repeats.
const BACKOFF: [i64; 6] = [5 * 60, 15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600];
/// Give up this long after queueing (RFC 5321 §4.5.4.1: "at least 4-5 days").
pub const EXPIRE_AFTER: i64 = 5 * 86_400;
/// Tell the sender about the delay once the message is this old.
pub const DELAY_NOTICE_AFTER: i64 = 4 * 3600;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again at this unix time.
    RetryAt(i64),
    /// Too old: give up and bounce.
    Expire,
}

/// The schedule, scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    scale: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { scale: 1.0 }
    }
}

impl Schedule {
    /// A schedule with every duration multiplied by `scale` (clamped to (0, 1]).
    pub fn new(scale: f64) -> Schedule {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale.min(1.0)
        } else {
            1.0
        };
        Schedule { scale }
    }

    /// `secs` scaled, at least one second.
    pub fn scaled(&self, secs: i64) -> i64 {
        ((secs as f64 * self.scale).round() as i64).max(1)
    }

    /// The delay after `attempts` failed attempts (1 = after the first).
    pub fn backoff(&self, attempts: u32) -> i64 {
        let i = (attempts.max(1) as usize - 1).min(BACKOFF.len() - 1);
        self.scaled(BACKOFF[i])
    }

    /// When a message queued at `created` expires.
    pub fn expires_at(&self, created: i64) -> i64 {
        created.saturating_add(self.scaled(EXPIRE_AFTER))
    }

    /// After the `attempts`-th attempt failed temporarily at `now`: retry when, or give up.
    pub fn after_failure(&self, created: i64, attempts: u32, now: i64) -> Verdict {
        let expires = self.expires_at(created);
        if now >= expires {
            return Verdict::Expire;
        }
        Verdict::RetryAt(now.saturating_add(self.backoff(attempts)).min(expires))
    }

    /// Whether the one delay notice is due for a message queued at `created`.
    pub fn delay_notice_due(&self, created: i64, already_sent: bool, now: i64) -> bool {
        !already_sent && now >= created.saturating_add(self.scaled(DELAY_NOTICE_AFTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_steps_then_every_four_hours() {
        let s = Schedule::default();
        let got: Vec<i64> = (1..=8).map(|n| s.backoff(n)).collect();
        assert_eq!(
            got,
            vec![300, 900, 1800, 3600, 7200, 14_400, 14_400, 14_400]
        );
        assert_eq!(s.backoff(0), 300);
        assert_eq!(s.backoff(u32::MAX), 14_400);
    }

    #[test]
    fn retries_until_five_days_with_a_last_attempt_at_expiry() {
        let s = Schedule::default();
        let created = 1_000;
        let (mut now, mut attempts) = (created, 0u32);
        let mut times = Vec::new();
        loop {
            attempts += 1;
            match s.after_failure(created, attempts, now) {
                Verdict::RetryAt(t) => {
                    assert!(t > now);
                    times.push(t);
                    now = t;
                }
                Verdict::Expire => break,
            }
        }
        assert_eq!(*times.last().unwrap(), created + EXPIRE_AFTER);
        assert_eq!(now, created + EXPIRE_AFTER);
        // 5 short steps (3h50m together), then every 4 h for the rest of 5 days.
        assert_eq!(times.len(), 5 + 30);
    }

    #[test]
    fn delay_notice_once_after_four_hours() {
        let s = Schedule::default();
        assert!(!s.delay_notice_due(0, false, 4 * 3600 - 1));
        assert!(s.delay_notice_due(0, false, 4 * 3600));
        assert!(!s.delay_notice_due(0, true, 5 * 3600));
    }

    #[test]
    fn scale_shrinks_everything_but_never_below_a_second() {
        let s = Schedule::new(0.001);
        assert_eq!(s.backoff(1), 1);
        assert_eq!(s.backoff(6), 14);
        assert_eq!(s.expires_at(0), 432);
        assert!(s.delay_notice_due(0, false, 14));
        assert_eq!(Schedule::new(0.0), Schedule::default());
        assert_eq!(Schedule::new(f64::NAN), Schedule::default());
        assert_eq!(Schedule::new(7.0), Schedule::default());
    }
}
