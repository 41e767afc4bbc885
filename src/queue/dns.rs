//! Name resolution for outbound delivery, behind the [`MxResolver`] trait (habit 10), so
//! the delivery code can be tested with a seeded resolver.
//!
//! The real implementation is the resolver of `mail::dns` (the one inbound SPF/DKIM/DMARC
//! use, built from the same `[dns] nameservers`, or the system resolver when none are
//! configured), asked for MX, A and AAAA records.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use crate::config::DnsConfig;

/// A boxed future, for the object-safe trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failed lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN): a permanent failure.
    NotFound(String),
    /// Timeout, SERVFAIL, network trouble: try again later.
    Temporary(String),
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::NotFound(s) | DnsError::Temporary(s) => f.write_str(s),
        }
    }
}

/// The answer to an MX query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mx {
    /// MX hosts with their preference (lower first), in the order received.
    Hosts(Vec<(u16, String)>),
    /// The domain exists but has no MX record: RFC 5321 §5.1 says to treat the domain itself
    /// as the only host (the "implicit MX", its A/AAAA records).
    Implicit,
    /// `MX 0 .`: the domain accepts no mail at all (RFC 7505).
    Null,
}

/// The lookups delivery needs.
pub trait MxResolver: Send + Sync {
    /// The MX records of `domain`.
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Mx, DnsError>>;
    /// The IPv4 and IPv6 addresses of `host`.
    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, DnsError>>;
}

/// A fully qualified name for a lookup: a final dot so no search domain is appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// hickory-resolver from `[dns]`.
pub struct Hickory {
    resolver: TokioResolver,
}

impl Hickory {
    /// Builds the resolver: the configured name servers, or the system's.
    pub fn from_config(dns: &DnsConfig) -> Result<Hickory, String> {
        let resolver = crate::mail::dns::resolver(dns).map_err(|e| format!("resolver: {e}"))?;
        Ok(Hickory { resolver })
    }
}

fn map_err(name: &str, e: hickory_resolver::net::NetError) -> DnsError {
    if e.is_nx_domain() {
        DnsError::NotFound(format!("{name}: no such domain"))
    } else {
        DnsError::Temporary(format!("{name}: DNS lookup failed: {e}"))
    }
}

impl MxResolver for Hickory {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Mx, DnsError>> {
        Box::pin(async move {
            let lookup = match self.resolver.mx_lookup(fqdn(domain).as_str()).await {
                Ok(l) => l,
                Err(e) if e.is_no_records_found() && !e.is_nx_domain() => return Ok(Mx::Implicit),
                Err(e) => return Err(map_err(domain, e)),
            };
            let mut hosts = Vec::new();
            for r in lookup.answers() {
                if let RData::MX(mx) = &r.data {
                    let host = mx.exchange.to_ascii();
                    let host = host.trim_end_matches('.').to_ascii_lowercase();
                    hosts.push((mx.preference, host));
                }
            }
            Ok(classify(hosts))
        })
    }

    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, DnsError>> {
        Box::pin(async move {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Ok(vec![ip]);
            }
            match self.resolver.lookup_ip(fqdn(host).as_str()).await {
                Ok(l) => Ok(l.iter().collect()),
                Err(e) if e.is_no_records_found() && !e.is_nx_domain() => Ok(Vec::new()),
                Err(e) => Err(map_err(host, e)),
            }
        })
    }
}

/// Interprets MX answers: a lone `0 .` is a null MX (RFC 7505 §3); no usable host is
/// treated like no MX at all (RFC 5321 §5.1).
pub fn classify(hosts: Vec<(u16, String)>) -> Mx {
    if hosts.iter().any(|(_, h)| h.is_empty() || h == ".") {
        // RFC 7505 §3: a null MX is the only MX; anything else with it is broken, and the
        // domain has still declared that it takes no mail.
        return Mx::Null;
    }
    if hosts.is_empty() {
        return Mx::Implicit;
    }
    Mx::Hosts(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_mx_answers() {
        assert_eq!(classify(vec![(0, String::new())]), Mx::Null);
        assert_eq!(classify(vec![]), Mx::Implicit);
        assert_eq!(
            classify(vec![(10, "mx.example".into())]),
            Mx::Hosts(vec![(10, "mx.example".into())])
        );
        assert_eq!(fqdn("a.example"), "a.example.");
        assert_eq!(fqdn("a.example."), "a.example.");
    }
}
