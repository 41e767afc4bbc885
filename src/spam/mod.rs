//! Keeping spam out (issue 17), at the connection and SMTP level of the MX listener
//! (port 25; `[spam]`, see `config::spam`). Never for submission, never for the networks
//! of `[auth] plaintext_networks` or `[spam] exempt_networks` (the LAN: loopback, RFC 1918,
//! RFC 6598, link-local and unique-local addresses by default).
//!
//! - [`dnsbl`]: DNS block and allow lists (RFC 5782) and iprev (RFC 8601 §3), looked up
//!   through the `[dns]` resolver at connect, concurrently, within `[spam] dns_timeout`,
//!   with a bounded cache. The pure parts (query names, answers) are here.
//! - [`greylist`]: the greylisting decision (pure); its state is `store::greylist`.
//! - [`counts`]: what `status` shows for the last day.
//! - Early talkers: the greeting waits `greet_delay` and a client that sends first is
//!   refused (the timing is in `smtp::driver`, at the edge); HELO + pipelining is refused
//!   by the SMTP session itself (`smtp::session`, RFC 2920 §3.1).
//!
//! Scores are whole points: blocklist weights (positive), allowlist weights (negative),
//! and `iprev_fail_weight` when the reverse DNS fails. The sum is written in
//! `X-Spam-Connection` for the content filter and the person to read.
//!
//! The content filter that learns from each person (item 2 of issue 17):
//! - [`bayes`]: the learning filter's pure core (tokens and the score);
//! - [`learn`]: applies it to deliveries and trains it from what each person does
//!   (its statistics are `store::spam`).

pub mod bayes;
pub mod counts;
pub mod dnsbl;
pub mod greylist;
pub mod learn;

use std::net::{IpAddr, Ipv6Addr};

use crate::config::Config;

pub use counts::Counts;

/// Whether `ip` is checked at all: false for `[auth] plaintext_networks` and
/// `[spam] exempt_networks`. IPv4-mapped IPv6 addresses count as IPv4.
pub fn is_checked(config: &Config, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    !(config.is_plaintext_allowed(ip)
        || config.spam.exempt_networks.iter().any(|n| n.contains(&ip)))
}

/// The DNS list query name of `ip` in `zone` (RFC 5782 §2.1: IPv4 octets reversed;
/// §2.4: IPv6 as 32 reversed nibbles), e.g. `2.0.0.127.zen.spamhaus.org`.
pub fn reversed_name(ip: IpAddr, zone: &str) -> String {
    let mut name = String::with_capacity(72 + zone.len());
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for o in v4.octets().iter().rev() {
                name.push_str(&o.to_string());
                name.push('.');
            }
        }
        IpAddr::V6(v6) => {
            for b in v6.octets().iter().rev() {
                for nibble in [b & 0x0f, b >> 4] {
                    name.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    name.push('.');
                }
            }
        }
    }
    name.push_str(zone);
    name
}

/// The client network greylisting remembers: the /24 of an IPv4 address, the /64 of an
/// IPv6 one (a sender's retries may come from a neighbouring address of its pool).
pub fn network_of(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// The greylist key of (network, envelope sender, recipient): lower case, `<>` for the
/// null sender, at most 600 bytes (addresses are at most 256 each, RFC 5321 §4.5.3.1.3).
pub fn triple_key(network: &str, sender: &str, recipient: &str) -> String {
    let sender = if sender.is_empty() { "<>" } else { sender };
    let clip = |s: &str| -> String { s.chars().take(256).collect::<String>().to_lowercase() };
    format!("{network} {} {}", clip(sender), clip(recipient))
}

/// The domain of an address, lower case; `None` for the null sender.
pub fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// The iprev result of a connection (RFC 8601 §2.7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iprev {
    /// The reverse name leads back to the address.
    Pass(String),
    /// No reverse name, or none leads back.
    Fail(Option<String>),
    /// A lookup failed for a reason that may pass.
    TempError,
    /// A lookup failed permanently (a malformed answer).
    PermError,
    /// Not looked up (exempt client, or no resolver).
    None,
}

impl Iprev {
    /// The resinfo for `Authentication-Results`, starting with `;` (RFC 8601 §2.7.3):
    /// `;\r\n\tiprev=pass policy.iprev=192.0.2.1 (mail.example.org)`.
    pub fn resinfo(&self, ip: IpAddr) -> String {
        let ip = ip.to_canonical();
        // An IPv6 address contains ':', which is not a token character (RFC 2045 §5.1):
        // it is written as a quoted string.
        let pvalue = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"{v6}\""),
        };
        let (word, host) = match self {
            Iprev::Pass(h) => ("pass", Some(h.as_str())),
            Iprev::Fail(h) => ("fail", h.as_deref()),
            Iprev::TempError => ("temperror", None),
            Iprev::PermError => ("permerror", None),
            Iprev::None => return String::new(),
        };
        let mut s = format!(";\r\n\tiprev={word} policy.iprev={pvalue}");
        if let Some(h) = host {
            s.push_str(&format!(" ({})", comment_safe(h)));
        }
        s
    }

    /// A short word for logs and `X-Spam-Connection`.
    pub fn word(&self) -> &'static str {
        match self {
            Iprev::Pass(_) => "pass",
            Iprev::Fail(_) => "fail",
            Iprev::TempError => "temperror",
            Iprev::PermError => "permerror",
            Iprev::None => "none",
        }
    }
}

/// A DNS name as it may stand in a header comment: letters, digits, `-`, `.`, `_`, at most
/// 255 characters.
fn comment_safe(s: &str) -> String {
    s.chars()
        .take(255)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What the connection checks found about a client: its score and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Blocklist zones with their weights (score-only zones; a refusing zone closes the
    /// connection before anything is scored).
    pub listed: Vec<(String, i32)>,
    /// Allowlist zones with their weights.
    pub allowed: Vec<(String, i32)>,
    /// iprev.
    pub iprev: Option<Iprev>,
    /// Points for iprev.
    pub iprev_points: i32,
}

impl Report {
    /// The total points.
    pub fn score(&self) -> i32 {
        let lists: i32 = self
            .listed
            .iter()
            .chain(self.allowed.iter())
            .map(|(_, w)| *w)
            .sum();
        lists.saturating_add(self.iprev_points)
    }

    /// Whether an allowlist lists the client (it then skips greylisting).
    pub fn allowlisted(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// `X-Spam-Connection: score=3; iprev=fail(1) bl.example=2`, ending in CRLF.
    pub fn header(&self) -> String {
        let mut h = format!("X-Spam-Connection: score={}", self.score());
        let mut why = Vec::new();
        if let Some(i) = &self.iprev {
            why.push(format!("iprev={}({})", i.word(), self.iprev_points));
        }
        for (zone, w) in self.listed.iter().chain(self.allowed.iter()) {
            why.push(format!("{}={w}", comment_safe(zone)));
        }
        if !why.is_empty() {
            h.push_str("; ");
            h.push_str(&why.join(" "));
        }
        h.push_str("\r\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5782_query_names() {
        // RFC 5782 §2.1 example: 192.0.2.99 → 99.2.0.192.
        assert_eq!(
            reversed_name("192.0.2.99".parse().unwrap(), "bl.example"),
            "99.2.0.192.bl.example"
        );
        assert_eq!(
            reversed_name("::ffff:127.0.0.2".parse().unwrap(), "bl.test"),
            "2.0.0.127.bl.test"
        );
        // RFC 5782 §2.4 example: 2001:db8:1:2:3:4:567:89ab.
        assert_eq!(
            reversed_name("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), "ugly.example"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example"
        );
    }

    #[test]
    fn networks_are_24_and_64() {
        assert_eq!(
            network_of("198.51.100.77".parse().unwrap()),
            "198.51.100.0/24"
        );
        assert_eq!(
            network_of("::ffff:198.51.100.7".parse().unwrap()),
            "198.51.100.0/24"
        );
        assert_eq!(
            network_of("2001:db8:aa:bb:1:2:3:4".parse().unwrap()),
            "2001:db8:aa:bb::/64"
        );
        assert_eq!(
            network_of("2001:db8:aa:bb:ffff::1".parse().unwrap()),
            network_of("2001:db8:aa:bb::2".parse().unwrap())
        );
    }

    #[test]
    fn triple_keys() {
        let k = triple_key("198.51.100.0/24", "Bob@Example.ORG", "alice@home.arpa");
        assert_eq!(k, "198.51.100.0/24 bob@example.org alice@home.arpa");
        assert_eq!(triple_key("n", "", "a@b"), "n <> a@b");
        let long = "x".repeat(10_000);
        assert!(triple_key("n", &long, &long).len() <= 2 + 1 + 512 + 1);
        assert_eq!(domain_of("a@Example.org."), Some("example.org".into()));
        assert_eq!(domain_of(""), None);
    }

    #[test]
    fn exemptions() {
        let c = Config::defaults();
        assert!(!is_checked(&c, "127.0.0.1".parse().unwrap()));
        assert!(!is_checked(&c, "192.168.1.20".parse().unwrap()));
        assert!(!is_checked(&c, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!is_checked(&c, "fd00::1".parse().unwrap()));
        assert!(is_checked(&c, "198.51.100.1".parse().unwrap()));
        assert!(is_checked(&c, "2001:db8::1".parse().unwrap()));
        let c = Config::parse(
            "[auth]\nplaintext_networks = [\"127.0.0.2/32\"]\n[spam]\nexempt_networks = []\n",
            "t",
        )
        .unwrap();
        assert!(is_checked(&c, "127.0.0.1".parse().unwrap()));
        assert!(!is_checked(&c, "127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn iprev_resinfo_and_score() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            Iprev::Pass("mail.example.org".into()).resinfo(ip),
            ";\r\n\tiprev=pass policy.iprev=192.0.2.1 (mail.example.org)"
        );
        assert_eq!(
            Iprev::Fail(Some("x (y)\r\nInjected: 1".into())).resinfo(ip),
            ";\r\n\tiprev=fail policy.iprev=192.0.2.1 (x__y___Injected__1)"
        );
        assert_eq!(
            Iprev::TempError.resinfo("2001:db8::1".parse().unwrap()),
            ";\r\n\tiprev=temperror policy.iprev=\"2001:db8::1\""
        );
        assert_eq!(Iprev::None.resinfo(ip), "");
        let r = Report {
            listed: vec![("bl.test".into(), 3)],
            allowed: vec![("wl.test".into(), -5)],
            iprev: Some(Iprev::Fail(None)),
            iprev_points: 1,
        };
        assert_eq!(r.score(), -1);
        assert!(r.allowlisted());
        assert_eq!(
            r.header(),
            "X-Spam-Connection: score=-1; iprev=fail(1) bl.test=3 wl.test=-5\r\n"
        );
    }
}
