//! The spam counts `status` shows for the last day: one counter per [`Kind`], kept in 24
//! hourly buckets in memory (they start again at zero when the daemon restarts). Another
//! kind is one more variant and one more name.

use std::sync::Mutex;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A recipient deferred by greylisting (`451 4.7.1`).
    Greylisted,
    /// A recipient that passed greylisting after waiting.
    PassedGreylist,
    /// A connection refused because a DNS blocklist lists the client.
    RefusedDnsbl,
    /// A connection refused for talking early (pregreet or pipelining after HELO).
    RefusedEarlyTalk,
    /// A recipient's copy of a port-25 message put in Junk by the learning filter.
    Junked,
    /// A port-25 message refused at the end of DATA over `reject_threshold`.
    RefusedSpam,
}

impl Kind {
    /// Every kind, in display order.
    pub const ALL: [Kind; 6] = [
        Kind::Greylisted,
        Kind::PassedGreylist,
        Kind::RefusedDnsbl,
        Kind::RefusedEarlyTalk,
        Kind::Junked,
        Kind::RefusedSpam,
    ];

    /// The name in `status` (text and JSON).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Greylisted => "greylisted",
            Kind::PassedGreylist => "passed_greylist",
            Kind::RefusedDnsbl => "refused_dnsbl",
            Kind::RefusedEarlyTalk => "refused_early_talk",
            Kind::Junked => "junked",
            Kind::RefusedSpam => "refused_spam",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Greylisted => 0,
            Kind::PassedGreylist => 1,
            Kind::RefusedDnsbl => 2,
            Kind::RefusedEarlyTalk => 3,
            Kind::Junked => 4,
            Kind::RefusedSpam => 5,
        }
    }
}

const HOURS: usize = 24;

/// The counters, shared by every connection and by `status`.
#[derive(Debug, Default)]
pub struct Counts {
    /// Per hour slot (hour number modulo 24): the hour it holds, and its counts.
    slots: Mutex<[(i64, [u64; Kind::ALL.len()]); HOURS]>,
}

impl Counts {
    /// Counts one `kind` at unix time `now`.
    pub fn add(&self, kind: Kind, now: i64) {
        let hour = now.div_euclid(3600);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut slots[hour.rem_euclid(HOURS as i64) as usize];
        if slot.0 != hour {
            *slot = (hour, [0; Kind::ALL.len()]);
        }
        slot.1[kind.index()] = slot.1[kind.index()].saturating_add(1);
    }

    /// The counts of the 24 hours up to `now`, per kind in [`Kind::ALL`] order.
    pub fn last_day(&self, now: i64) -> Vec<(Kind, u64)> {
        let hour = now.div_euclid(3600);
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        Kind::ALL
            .iter()
            .map(|&k| {
                let n = slots
                    .iter()
                    .filter(|(h, _)| *h > hour - HOURS as i64 && *h <= hour)
                    .map(|(_, c)| c[k.index()])
                    .sum();
                (k, n)
            })
            .collect()
    }

    /// The `status` line.
    pub fn status_line(&self, now: i64) -> String {
        let parts: Vec<String> = self
            .last_day(now)
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name().replace('_', " ")))
            .collect();
        format!("spam (last day): {}", parts.join(", "))
    }

    /// The `status` JSON object.
    pub fn status_json(&self, now: i64) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .last_day(now)
            .into_iter()
            .map(|(k, n)| (k.name().to_string(), n.into()))
            .collect();
        serde_json::Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_exactly_the_last_day() {
        let c = Counts::default();
        let t0 = 1_700_000_000;
        c.add(Kind::Greylisted, t0);
        c.add(Kind::Greylisted, t0 + 3600);
        c.add(Kind::RefusedDnsbl, t0 + 7200);
        let get = |now, k| c.last_day(now).iter().find(|(x, _)| *x == k).unwrap().1;
        assert_eq!(get(t0 + 7200, Kind::Greylisted), 2);
        assert_eq!(get(t0 + 7200, Kind::RefusedDnsbl), 1);
        assert_eq!(
            c.status_line(t0 + 7200),
            "spam (last day): 2 greylisted, 0 passed greylist, 1 refused dnsbl, 0 refused early talk, \
             0 junked, 0 refused spam"
        );
        assert_eq!(c.status_json(t0 + 7200)["refused_dnsbl"], 1);
        // A day later the first hour has left the window.
        assert_eq!(get(t0 + 24 * 3600, Kind::Greylisted), 1);
        // The slot of an old hour is reused, not added to.
        c.add(Kind::Greylisted, t0 + 24 * 3600);
        assert_eq!(get(t0 + 24 * 3600, Kind::Greylisted), 2);
        assert_eq!(get(t0 + 100 * 3600, Kind::Greylisted), 0);
    }
}
