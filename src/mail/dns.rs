//! The one DNS resolver configuration, used for sender verification (SPF, DKIM keys, ARC
//! keys, DMARC policies; see [`super::verify`]) and for outbound MX/A/AAAA lookups
//! (`queue::dns`): `[dns] nameservers` (SPEC §3), or the system resolver
//! (`/etc/resolv.conf`) when that list is empty.
//!
//! It is hickory-resolver, as mail-auth re-exports it, asking each configured server over UDP
//! and falling back to TCP for truncated answers (RFC 1035 §4.2, RFC 7766). Timeouts are
//! short ([`TIMEOUT`] per try, [`TRIES`] tries) because an SMTP client is waiting for the
//! reply to its DATA while we look names up; a server that does not answer gives a
//! temporary error, which the verifier turns into `451`, never into a pass.

use std::net::SocketAddr;
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::hickory_resolver::system_conf::read_system_conf;

use crate::config::DnsConfig;

/// How long one query waits for an answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a query is sent in all before it is a temporary error.
pub const TRIES: usize = 2;

/// The resolver configuration for explicit name servers: each one over UDP, then TCP, on
/// its own port. No search domains: every name we look up is fully qualified.
pub fn resolver_config(nameservers: &[SocketAddr]) -> ResolverConfig {
    let servers = nameservers
        .iter()
        .map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        })
        .collect();
    ResolverConfig::from_name_servers(servers)
}

/// Our options over `base` (the system's, or hickory's defaults): short timeouts, few
/// attempts, no `/etc/hosts` (mail policy records only live in the DNS).
pub fn options(mut base: ResolverOpts) -> ResolverOpts {
    base.timeout = TIMEOUT;
    // hickory's `attempts` counts the retries after the first try.
    base.attempts = TRIES - 1;
    base.use_hosts_file = ResolveHosts::Never;
    base
}

/// The resolver for `[dns]`, shared by verification and outbound delivery.
///
/// When the system configuration cannot be read (no `/etc/resolv.conf` on a board without
/// network yet), the resolver has no name servers: every lookup is a temporary error, so
/// inbound mail that needs a policy decision is deferred with `451` and outbound mail stays
/// queued until that is fixed (logged). An `Err` (the resolver could not be built at all)
/// means the same to the caller.
pub fn resolver(dns: &DnsConfig) -> Result<TokioResolver, String> {
    let (config, opts) = if dns.nameservers.is_empty() {
        match read_system_conf() {
            Ok((config, opts)) => (config, opts),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the system DNS configuration; mail needing DNS will wait");
                (
                    ResolverConfig::from_name_servers(Vec::new()),
                    ResolverOpts::default(),
                )
            }
        }
    } else {
        (resolver_config(&dns.nameservers), ResolverOpts::default())
    };
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options(opts))
        .with_tls_config(tls_config()?)
        .build()
        .map_err(|e| e.to_string())
}

/// The authenticator (mail-auth's handle on the resolver) for `[dns]`.
pub fn authenticator(dns: &DnsConfig) -> Result<MessageAuthenticator, String> {
    resolver(dns).map(MessageAuthenticator)
}

/// hickory wants a TLS client configuration even though we never use DNS over TLS; its
/// default one loads the platform's certificate verifier, which can fail on a bare board.
/// An empty root store cannot.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nameserver_gets_udp_and_tcp_on_its_port() {
        let servers: Vec<SocketAddr> = vec![
            "127.0.0.1:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
        ];
        let c = resolver_config(&servers);
        assert_eq!(c.name_servers().len(), 2);
        let first = &c.name_servers()[0];
        assert_eq!(first.ip, servers[0].ip());
        assert_eq!(first.connections.len(), 2);
        assert!(first.connections.iter().all(|c| c.port == 5353));
        assert_eq!(c.name_servers()[1].connections[1].port, 53);
        assert!(c.search().is_empty());
    }

    #[test]
    fn options_are_short() {
        let o = options(ResolverOpts::default());
        assert_eq!(o.timeout, TIMEOUT);
        assert_eq!(o.attempts + 1, TRIES);
    }
}
