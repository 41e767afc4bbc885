//! The process-wide memory budget for message bytes that are still arriving: SMTP DATA
//! and BDAT data, and IMAP literals (APPEND and any other). Each is bounded per
//! connection by `max_message_size`, but without a shared bound `max_connections`
//! clients could make the daemon hold `max_connections × max_message_size` at once
//! (tests/hostile.rs measured 640 MiB for 600 unauthenticated port-25 clients at 1 MiB
//! each; 10 GB with the defaults, on a Pi with 1 to 8 GB). `[limits] max_message_memory`
//! caps the sum; a message that does not fit is refused with a temporary error (SMTP
//! `452 4.3.1`, IMAP `NO [UNAVAILABLE]`) and its bytes are not kept.
//!
//! Plain `std` atomics: the sans-I/O sessions use it without a runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes that may be held in all.
#[derive(Debug)]
pub struct Budget {
    used: AtomicU64,
    max: u64,
}

impl Budget {
    /// A budget of `max` bytes.
    pub fn new(max: u64) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicU64::new(0),
            max,
        })
    }

    /// Bytes held now (for status and tests).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.max
    }

    fn take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.max)
            })
            .is_ok()
    }

    fn give(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// What one connection holds of a [`Budget`]; given back when dropped. Without a budget
/// every request succeeds (unit tests, tools).
#[derive(Debug, Default)]
pub struct Hold {
    budget: Option<Arc<Budget>>,
    held: u64,
}

impl Hold {
    /// Holds nothing yet of `budget`.
    pub fn new(budget: Option<Arc<Budget>>) -> Hold {
        Hold { budget, held: 0 }
    }

    /// Bytes held.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Holds `total` bytes in all: gives back the excess, or takes the growth if the
    /// budget has room. False (and nothing changed) when it has not.
    pub fn set(&mut self, total: u64) -> bool {
        if let Some(b) = &self.budget {
            if total > self.held {
                if !b.take(total - self.held) {
                    return false;
                }
            } else {
                b.give(self.held - total);
            }
        }
        self.held = total;
        true
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_capped_together_and_given_back() {
        let b = Budget::new(100);
        let mut x = Hold::new(Some(b.clone()));
        let mut y = Hold::new(Some(b.clone()));
        assert!(x.set(60));
        assert!(!y.set(41), "over the cap");
        assert_eq!((y.held(), b.used()), (0, 60));
        assert!(y.set(40));
        assert!(!x.set(61));
        assert!(x.set(10), "shrinking always works");
        assert_eq!(b.used(), 50);
        drop(x);
        assert_eq!(b.used(), 40);
        drop(y);
        assert_eq!(b.used(), 0);
        let mut free = Hold::new(None);
        assert!(free.set(u64::MAX));
    }
}
