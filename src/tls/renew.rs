//! The daemon task that keeps the household server certificate fresh: every
//! [`check_interval`] it runs [`Tls::renew_household`] (renew at two thirds of the lifetime,
//! or when a name or LAN address is missing), which swaps a new certificate in for new
//! connections the way SIGHUP does. After [`super::FAILURES_FOR_FAULT`] failures in a row
//! it raises fault 2 (and [`Tls::not_after`] keeps it raised until a renewal succeeds); the
//! old certificate is served meanwhile.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Tls;
use crate::hw::health::FaultClass;
use crate::hw::supervisor::Hw;

/// How often the certificate is checked: a fortieth of its lifetime, between 1 second and
/// 1 hour (an hour for the default 397 days; a test lifetime of 30 s checks every second).
pub fn check_interval(lifetime_s: i64) -> Duration {
    Duration::from_millis((lifetime_s.max(0) as u64).saturating_mul(1000) / 40)
        .clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Runs until `stop`; does nothing (returns at once) for `[tls] cert key` files.
pub async fn run(tls: Tls, hw: Hw, stop: CancellationToken) {
    let Some(h) = tls.household() else { return };
    let every = check_interval(h.lifetime);
    let mut faulted = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let t = tls.clone();
        let result = tokio::task::spawn_blocking(move || {
            t.renew_household(&super::ifaddr::addresses(), crate::store::now_unix())
        })
        .await;
        match result {
            Ok(Ok(Some(why))) => {
                tracing::info!(reason = %why, sha256 = %tls.fingerprint().unwrap_or_default(), "renewed the household server certificate");
                if std::mem::take(&mut faulted) {
                    hw.set_fault(FaultClass::Certificate, None);
                }
            }
            Ok(Ok(None)) => {
                if std::mem::take(&mut faulted) {
                    hw.set_fault(FaultClass::Certificate, None);
                }
            }
            Ok(Err(e)) => {
                let n = tls.renewal_failures();
                tracing::error!(error = %e, failures = n, "renewing the household server certificate failed; the old one is still served");
                if n >= super::FAILURES_FOR_FAULT {
                    faulted = true;
                    hw.set_fault(
                        FaultClass::Certificate,
                        Some(format!(
                            "renewing the certificate failed {n} times in a row: {e}"
                        )),
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "the certificate renewal task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_bounded() {
        assert_eq!(
            check_interval(super::super::ca::MAX_LIFETIME_S),
            Duration::from_secs(3600)
        );
        assert_eq!(check_interval(40), Duration::from_secs(1));
        assert_eq!(check_interval(400), Duration::from_secs(10));
        assert_eq!(check_interval(0), Duration::from_secs(1));
    }
}
