//! DNS block and allow lists (RFC 5782) and iprev (RFC 8601 §3) for one connecting client,
//! through the `[dns]` resolver (`mail::dns::resolver`, the verifier's configuration).
//!
//! Every zone and the reverse lookup are asked at once, and the whole is bounded by
//! `[spam] dns_timeout`: whatever has not answered by then counts as not listed (and iprev
//! as `temperror`), so a dead list server delays the greeting by at most that limit. List
//! answers are cached for [`CACHE_TTL`], at most [`CACHE_MAX`] of them.
//!
//! A client is listed when the zone answers an A record in 127.0.0.0/8 (RFC 5782 §2.1),
//! except 127.255.255.0/24, which Spamhaus uses for "query refused" error codes; its TXT
//! record, asked only for a refusing zone, is the reason given to the client.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use tokio::task::JoinSet;

use super::{Iprev, Report, reversed_name};
use crate::config::{DnsConfig, DnsList, SpamConfig};

/// How long a list answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(15 * 60);
/// The most list answers cached; when full, expired ones go, then all.
pub const CACHE_MAX: usize = 4096;
/// At most this many reverse names are checked forward (RFC 8601 §3 leaves the number to
/// the verifier; a PTR set is normally one name).
const MAX_PTR: usize = 3;

/// A client refused by a blocklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The zone.
    pub zone: String,
    /// Its reason (TXT record), printable ASCII.
    pub reason: String,
}

/// One cached answer: listed (with the reason when asked), or not.
#[derive(Debug, Clone)]
struct Cached {
    until: Instant,
    listed: Option<String>,
}

/// The list checker of the MX listener.
pub struct Lists {
    resolver: Option<Arc<TokioResolver>>,
    cache: Mutex<HashMap<(String, IpAddr), Cached>>,
}

/// What one concurrent lookup found.
enum Found {
    /// Zone index in the block (true) or allow list, and whether listed (with reason).
    List(bool, usize, Option<String>),
    Iprev(Iprev),
}

impl Lists {
    /// A checker resolving through `[dns]`; without a resolver nothing is listed and
    /// iprev is not looked up.
    pub fn new(dns: &DnsConfig) -> Lists {
        let resolver = match crate::mail::dns::resolver(dns) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                tracing::error!(error = %e, "no DNS resolver: DNS lists and iprev are off");
                None
            }
        };
        Lists {
            resolver,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `ip` against every zone of `cfg`, and its reverse DNS, within
    /// `cfg.dns_timeout`.
    pub async fn check(&self, cfg: &SpamConfig, ip: IpAddr) -> Result<Report, Refusal> {
        let ip = ip.to_canonical();
        let mut report = Report::default();
        let Some(resolver) = &self.resolver else {
            return Ok(report);
        };
        let mut set = JoinSet::new();
        let mut cached = Vec::new();
        for (block, lists) in [(true, &cfg.dnsbl), (false, &cfg.dnswl)] {
            for (i, list) in lists.iter().enumerate() {
                if let Some(hit) = self.cached(&list.zone, ip) {
                    cached.push(Found::List(block, i, hit));
                    continue;
                }
                let r = resolver.clone();
                let name = reversed_name(ip, &list.zone);
                let want_reason = block && list.refuse;
                set.spawn(
                    async move { Found::List(block, i, lookup(&r, &name, want_reason).await) },
                );
            }
        }
        let r = resolver.clone();
        set.spawn(async move { Found::Iprev(iprev(&r, ip).await) });
        let deadline = tokio::time::Instant::now() + cfg.dns_timeout;
        let mut found = cached;
        loop {
            match tokio::time::timeout_at(deadline, set.join_next()).await {
                Ok(Some(Ok(f))) => {
                    if let Found::List(block, i, hit) = &f {
                        let zone = zone_of(cfg, *block, *i);
                        self.remember(zone, ip, hit.clone());
                    }
                    found.push(f);
                }
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    tracing::info!(%ip, "DNS lists: time limit reached; the rest count as not listed");
                    report.iprev = Some(Iprev::TempError);
                    break;
                }
            }
        }
        set.abort_all();
        // In the order of the configuration, whatever order the answers came in.
        found.sort_by_key(|f| match f {
            Found::List(block, i, _) => (!*block, *i),
            Found::Iprev(_) => (true, usize::MAX),
        });
        for f in found {
            match f {
                Found::Iprev(i) => report.iprev = Some(i),
                Found::List(_, _, None) => {}
                Found::List(true, i, Some(reason)) => {
                    let Some(list) = cfg.dnsbl.get(i) else {
                        continue;
                    };
                    if list.refuse {
                        return Err(Refusal {
                            zone: list.zone.clone(),
                            reason: if reason.is_empty() {
                                format!("listed by {}", list.zone)
                            } else {
                                reason
                            },
                        });
                    }
                    report.listed.push((list.zone.clone(), list.weight));
                }
                Found::List(false, i, Some(_)) => {
                    if let Some(list) = cfg.dnswl.get(i) {
                        report.allowed.push((list.zone.clone(), list.weight));
                    }
                }
            }
        }
        if matches!(report.iprev, Some(Iprev::Fail(_))) {
            report.iprev_points = cfg.iprev_fail_weight;
        }
        Ok(report)
    }

    fn cached(&self, zone: &str, ip: IpAddr) -> Option<Option<String>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&(zone.to_string(), ip))
            .filter(|c| c.until > Instant::now())
            .map(|c| c.listed.clone())
    }

    fn remember(&self, zone: &str, ip: IpAddr, listed: Option<String>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            (zone.to_string(), ip),
            Cached {
                until: now + CACHE_TTL,
                listed,
            },
        );
    }

    /// Entries in the cache (for tests and `status`).
    pub fn cache_len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn zone_of(cfg: &SpamConfig, block: bool, i: usize) -> &str {
    let lists: &[DnsList] = if block { &cfg.dnsbl } else { &cfg.dnswl };
    lists.get(i).map(|l| l.zone.as_str()).unwrap_or_default()
}

/// Whether an A answer means "listed" (RFC 5782 §2.1; 127.255.255.0/24 are error codes).
pub fn is_listing(addrs: &[Ipv4Addr]) -> bool {
    addrs
        .iter()
        .any(|a| a.octets()[0] == 127 && !(a.octets()[1] == 255 && a.octets()[2] == 255))
}

/// A TXT reason as it may go into an SMTP reply: printable ASCII, single spaces, at
/// most 200 characters.
pub fn clean_reason(parts: &[&[u8]]) -> String {
    let text: String = parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|&b| {
            if (0x21..0x7f).contains(&b) {
                b as char
            } else {
                ' '
            }
        })
        .collect();
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

/// One list query: `None` when not listed (or on any error), else the reason (empty
/// when not asked for or not given).
async fn lookup(r: &TokioResolver, name: &str, want_reason: bool) -> Option<String> {
    let fqdn = format!("{name}.");
    let answer = r.ipv4_lookup(fqdn.as_str()).await.ok()?;
    let addrs: Vec<Ipv4Addr> = answer
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    if !is_listing(&addrs) {
        return None;
    }
    if !want_reason {
        return Some(String::new());
    }
    let reason = match r.txt_lookup(fqdn.as_str()).await {
        Ok(txt) => txt
            .answers()
            .iter()
            .find_map(|rec| match &rec.data {
                RData::TXT(t) => {
                    let parts: Vec<&[u8]> = t.txt_data.iter().map(|p| &p[..]).collect();
                    Some(clean_reason(&parts))
                }
                _ => None,
            })
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    Some(reason)
}

/// RFC 8601 §3 iprev: the PTR names of `ip`, each looked up forward; `pass` when one
/// leads back to `ip`.
async fn iprev(r: &TokioResolver, ip: IpAddr) -> Iprev {
    let ptr = match r.reverse_lookup(ip).await {
        Ok(l) => l,
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Iprev::Fail(None),
        Err(_) => return Iprev::TempError,
    };
    let names: Vec<String> = ptr
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::PTR(p) => Some(p.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .take(MAX_PTR)
        .collect();
    let Some(first) = names.first().cloned() else {
        return Iprev::Fail(None);
    };
    let mut temp = false;
    for name in names {
        match r.lookup_ip(format!("{name}.").as_str()).await {
            Ok(ips) if ips.iter().any(|a| a.to_canonical() == ip) => return Iprev::Pass(name),
            Ok(_) => {}
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {}
            Err(_) => temp = true,
        }
    }
    if temp {
        Iprev::TempError
    } else {
        Iprev::Fail(Some(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_answers() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(is_listing(&[a("127.0.0.2")]));
        assert!(is_listing(&[a("127.0.0.10"), a("127.255.255.254")]));
        assert!(!is_listing(&[a("127.255.255.254")]));
        assert!(!is_listing(&[a("10.0.0.2")]));
        assert!(!is_listing(&[]));
    }

    #[test]
    fn reasons_are_one_clean_line() {
        assert_eq!(
            clean_reason(&[b"Listed, see ", b"https://x.test/q?ip=1\r\n\x00evil"]),
            "Listed, see https://x.test/q?ip=1 evil"
        );
        assert_eq!(clean_reason(&[&[b'a'; 1000]]).len(), 200);
        assert_eq!(clean_reason(&[]), "");
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let lists = Lists {
            resolver: None,
            cache: Mutex::new(HashMap::new()),
        };
        for i in 0..(CACHE_MAX as u32 + 10) {
            lists.remember("bl.test", IpAddr::V4(Ipv4Addr::from(i)), None);
        }
        assert!(lists.cache_len() <= CACHE_MAX);
        assert_eq!(
            lists.cached("bl.test", IpAddr::V4(Ipv4Addr::from(CACHE_MAX as u32 + 9))),
            Some(None)
        );
    }
}
