//! `[spam]`: the checks of the MX listener (port 25) at the connection and SMTP level
//! (`crate::spam`): DNS block and allow lists, greylisting, early talkers, and which
//! networks are never checked. Weights are whole points; a positive sum means spam.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::{Builder, Cidr, ConfigError, Seconds, TimeScale, check_domain};

/// `[spam]` as validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpamConfig {
    /// DNS blocklists (RFC 5782), none by default.
    pub dnsbl: Vec<DnsList>,
    /// DNS allowlists (RFC 5782), none by default. A listed client skips greylisting.
    pub dnswl: Vec<DnsList>,
    /// How long all list and reverse-DNS lookups of one connection may take together;
    /// a zone that has not answered by then counts as not listed. Default 3 s.
    pub dns_timeout: Duration,
    /// Greylisting on port 25. Default on.
    pub greylist: bool,
    /// How long an unknown (network, sender, recipient) triple is deferred. Default 5 min.
    pub greylist_delay: Duration,
    /// How long a network that passed greylisting once is remembered. Default 30 days.
    pub greylist_remember: Duration,
    /// At most this many greylist entries (triples and networks) are kept; the oldest go.
    pub greylist_max_entries: u64,
    /// Refuse clients that talk before the greeting or pipeline after HELO. Default on.
    pub early_talkers: bool,
    /// How long the greeting waits to see whether the client talks first. Default 2 s.
    pub greet_delay: Duration,
    /// Points added when the client's reverse DNS fails (no name, or the name does not
    /// lead back to the address; RFC 8601 §3). Default 1.
    pub iprev_fail_weight: i32,
    /// Multiplies the greylist durations (delay, remember); (0, 1]. Tests only.
    pub time_scale: TimeScale,
    /// Clients never checked (the LAN), besides `[auth] plaintext_networks`.
    pub exempt_networks: Vec<IpNet>,
}

/// One DNS list zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsList {
    /// The zone, such as `zen.spamhaus.org`, without a trailing dot.
    pub zone: String,
    /// Points when listed (negative for an allowlist).
    pub weight: i32,
    /// Refuse a listed client with `554 5.7.1` (blocklists only), or only score it.
    pub refuse: bool,
}

impl Default for SpamConfig {
    fn default() -> SpamConfig {
        SpamConfig {
            dnsbl: Vec::new(),
            dnswl: Vec::new(),
            dns_timeout: Duration::from_secs(3),
            greylist: true,
            greylist_delay: Duration::from_secs(300),
            greylist_remember: Duration::from_secs(30 * 86_400),
            greylist_max_entries: 100_000,
            early_talkers: true,
            greet_delay: Duration::from_secs(2),
            iprev_fail_weight: 1,
            time_scale: TimeScale(1.0),
            exempt_networks: lan_networks(),
        }
    }
}

/// The LAN: loopback, RFC 1918 private, RFC 6598 shared, link-local (RFC 3927, RFC 4291
/// §2.5.6) and unique local IPv6 (RFC 4193) addresses.
pub fn lan_networks() -> Vec<IpNet> {
    let v4 = |a, b, len| IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(a, b, 0, 0)), len);
    let v6 = |seg, len| IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(seg, 0, 0, 0, 0, 0, 0, 0)), len);
    vec![
        v4(127, 0, 8),
        v4(10, 0, 8),
        v4(172, 16, 12),
        v4(192, 168, 16),
        v4(100, 64, 10),
        v4(169, 254, 16),
        IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        v6(0xfc00, 7),
        v6(0xfe80, 10),
    ]
}

/// The `[spam]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub(super) struct RawSpam {
    dnsbl: Option<Vec<RawDnsList>>,
    dnswl: Option<Vec<RawDnsList>>,
    dns_timeout: Option<Seconds>,
    greylist: Option<bool>,
    greylist_delay: Option<Seconds>,
    greylist_remember: Option<Seconds>,
    greylist_max_entries: Option<u64>,
    early_talkers: Option<bool>,
    greet_delay: Option<Seconds>,
    iprev_fail_weight: Option<i32>,
    time_scale: Option<f64>,
    exempt_networks: Option<Vec<Cidr>>,
    // The learning filter's keys (spam_filter.rs).
    learn: Option<bool>,
    junk_threshold: Option<f64>,
    reject_threshold: Option<f64>,
    min_trained: Option<u32>,
}

impl RawSpam {
    /// The learning filter's keys, for `spam_filter.rs`.
    pub(super) fn filter(&self) -> super::spam_filter::RawSpamFilter {
        super::spam_filter::RawSpamFilter {
            learn: self.learn,
            junk_threshold: self.junk_threshold,
            reject_threshold: self.reject_threshold,
            min_trained: self.min_trained,
        }
    }
}

/// One zone as written: `{ zone = "...", weight = 5, action = "refuse" }`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { zone = \"bl.example\", weight = 5 }"
)]
struct RawDnsList {
    zone: String,
    weight: Option<i32>,
    action: Option<String>,
}

impl Builder<'_> {
    /// `[spam]`: zones are domain names; `action` is "refuse" or "score" ("refuse" only
    /// on a blocklist); the time scale is in (0, 1].
    pub(super) fn spam(&self, raw: RawSpam) -> Result<SpamConfig, ConfigError> {
        let mut c = SpamConfig {
            dnsbl: self.dns_lists("dnsbl", raw.dnsbl.unwrap_or_default(), 5, true)?,
            dnswl: self.dns_lists("dnswl", raw.dnswl.unwrap_or_default(), -5, false)?,
            ..SpamConfig::default()
        };
        if let Some(Seconds(t)) = raw.dns_timeout {
            if t > Duration::from_secs(60) {
                return Err(self.err("spam.dns_timeout", "must be at most 60 seconds"));
            }
            c.dns_timeout = t;
        }
        if let Some(g) = raw.greylist {
            c.greylist = g;
        }
        if let Some(Seconds(t)) = raw.greylist_delay {
            c.greylist_delay = t;
        }
        if let Some(Seconds(t)) = raw.greylist_remember {
            c.greylist_remember = t;
        }
        if let Some(n) = raw.greylist_max_entries {
            if n < 100 {
                return Err(self.err("spam.greylist_max_entries", "must be at least 100"));
            }
            c.greylist_max_entries = n;
        }
        if let Some(e) = raw.early_talkers {
            c.early_talkers = e;
        }
        if let Some(Seconds(t)) = raw.greet_delay {
            if t > Duration::from_secs(30) {
                return Err(self.err("spam.greet_delay", "must be at most 30 seconds"));
            }
            c.greet_delay = t;
        }
        if let Some(w) = raw.iprev_fail_weight {
            c.iprev_fail_weight = w;
        }
        if let Some(scale) = raw.time_scale {
            c.time_scale = self.time_scale("spam.time_scale", scale)?;
        }
        if let Some(nets) = raw.exempt_networks {
            c.exempt_networks = nets.into_iter().map(|n| n.0).collect();
        }
        Ok(c)
    }

    fn dns_lists(
        &self,
        name: &str,
        raw: Vec<RawDnsList>,
        default_weight: i32,
        block: bool,
    ) -> Result<Vec<DnsList>, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("spam.{name}[{i}].{k}");
            let zone = r.zone.trim().trim_end_matches('.').to_ascii_lowercase();
            if let Err(e) = check_domain(&zone) {
                return Err(self.err(&key("zone"), e));
            }
            let refuse = match r.action.as_deref() {
                None | Some("score") => false,
                Some("refuse") if block => true,
                Some("refuse") => {
                    return Err(self.err(&key("action"), "an allowlist only scores"));
                }
                Some(other) => {
                    return Err(self.err(
                        &key("action"),
                        format!("{other:?} is not \"refuse\" or \"score\""),
                    ));
                }
            };
            out.push(DnsList {
                zone,
                weight: r.weight.unwrap_or(default_weight),
                refuse,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn spam_defaults_and_lists() {
        let d = Config::defaults().spam;
        assert!(d.greylist && d.early_talkers && d.dnsbl.is_empty());
        let c = Config::parse(
            "[spam]\ndnsbl = [{ zone = \"Zen.Spamhaus.org.\", weight = 10, action = \"refuse\" },\n\
             { zone = \"bl.test\" }]\ndnswl = [{ zone = \"wl.test\", weight = -3 }]\n\
             greylist_delay = \"1m\"\ntime_scale = 0.01\n",
            "t",
        )
        .unwrap();
        let s = c.spam;
        assert_eq!(s.dnsbl[0].zone, "zen.spamhaus.org");
        assert!(s.dnsbl[0].refuse && !s.dnsbl[1].refuse);
        assert_eq!((s.dnsbl[0].weight, s.dnsbl[1].weight), (10, 5));
        assert_eq!(s.dnswl[0].weight, -3);
        assert_eq!(
            s.time_scale.apply(s.greylist_delay),
            std::time::Duration::from_millis(600)
        );
    }

    #[test]
    fn spam_errors_name_key_and_line() {
        let e = Config::parse("[spam]\n\ndnsbl = [{ zone = \"bad zone\" }]\n", "t").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("spam.dnsbl[0].zone"));
        assert_eq!(e.line, Some(3));
        let e = Config::parse(
            "[spam]\ndnswl = [{ zone = \"a.test\", action = \"refuse\" }]\n",
            "t",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("spam.dnswl[0].action"));
        let e = Config::parse("[spam]\ntime_scale = 2.0\n", "t").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("spam.time_scale"))
        );
        let e = Config::parse("[spam]\nnope = 1\n", "t").unwrap_err();
        assert_eq!(e.line, Some(2));
    }
}
