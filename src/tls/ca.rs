//! The household certificate authority's certificate profile: the CA ("Letterbox <host>
//! household CA"), the server certificates it signs, and when one is due for renewal. Pure
//! functions over names, addresses and times (unix seconds); files and clocks are the
//! caller's (`tls::household`).
//!
//! Choices (the issue leaves them open):
//!
//! - keys are ECDSA P-256 with SHA-256: every mail client and OS accepts them, and ring
//!   signs them quickly on a Pi;
//! - the CA lives [`CA_LIFETIME_S`] (25 years) and is kept forever once made: a person trusts
//!   it once. It is name-constrained (RFC 5280 section 4.2.1.10, critical) to the box's DNS
//!   names (the host name, each mail domain, `local`) and to the private, loopback and
//!   link-local address ranges ([`PERMITTED_NETS`]). iOS/macOS (since 10.13), Android,
//!   Windows, Firefox, Chrome, OpenSSL and webpki all enforce name constraints; a client that
//!   did not understand a critical extension would refuse the CA rather than trust it wider.
//!   A stolen CA key therefore cannot impersonate a bank;
//! - the server certificate lives at most [`MAX_LIFETIME_S`] (397 days, Apple's and the CA/B
//!   Forum's limit), carries serverAuth only, and is renewed once two thirds of its lifetime
//!   have passed (132 days before expiry with the default lifetime): [`renewal_due`];
//! - public addresses are not put in the server certificate (a box with a public address
//!   should use ACME), nor IPv6 link-local ones (they need a zone index no URL carries).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PublicKeyData, SanType, SerialNumber,
};

/// The longest server certificate lifetime: 397 days.
pub const MAX_LIFETIME_S: i64 = 397 * 86_400;

/// The CA's lifetime: 25 years.
pub const CA_LIFETIME_S: i64 = 25 * 365 * 86_400;

/// Certificates start this long before they are made (clients with a clock slightly behind).
pub const BACKDATE_S: i64 = 3600;

/// The address ranges the CA may vouch for: RFC 1918 private, RFC 6598 shared (carrier NAT,
/// VPN overlays), loopback, link-local, and IPv6 unique-local and loopback.
pub const PERMITTED_NETS: &[(IpAddr, u8)] = &[
    (IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(std::net::Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V4(std::net::Ipv4Addr::new(100, 64, 0, 0)), 10),
    (IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), 8),
    (IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 0, 0)), 16),
    (
        IpAddr::V6(std::net::Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)),
        7,
    ),
    (IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128),
];

/// A certificate-making error.
#[derive(Debug)]
pub struct CaError(pub String);

impl std::fmt::Display for CaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError(format!("certificate generation: {e}"))
    }
}

/// The names a server certificate should carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Names {
    /// DNS names, lower case, without duplicates.
    pub dns: Vec<String>,
    /// IP addresses, without duplicates.
    pub ips: Vec<IpAddr>,
}

impl Names {
    /// The names of a box called `hostname` serving `domains` (the first is the primary
    /// domain) at `addresses`: the host name, `<first label>.local`, `letterbox.local`, and
    /// `autoconfig.` / `autodiscover.` + the primary domain (client autoconfiguration, issue
    /// 16 item 3); the addresses that are in [`PERMITTED_NETS`], except IPv6 link-local.
    pub fn for_box(hostname: &str, domains: &[String], addresses: &[IpAddr]) -> Names {
        let host = hostname.trim_end_matches('.').to_ascii_lowercase();
        let short = host.split('.').next().unwrap_or("letterbox");
        let mut dns = vec![host.clone(), format!("{short}.local")];
        dns.push("letterbox.local".into());
        if let Some(primary) = domains.first() {
            let p = primary.to_ascii_lowercase();
            dns.push(format!("autoconfig.{p}"));
            dns.push(format!("autodiscover.{p}"));
        }
        let mut out = Names::default();
        for d in dns {
            if !d.is_empty() && !out.dns.contains(&d) {
                out.dns.push(d);
            }
        }
        for ip in addresses {
            if permitted_ip(*ip) && !out.ips.contains(ip) {
                out.ips.push(*ip);
            }
        }
        out
    }

    /// True when every name and address of `self` is also in `other`.
    pub fn covered_by(&self, other: &Names) -> bool {
        self.dns.iter().all(|d| other.dns.contains(d))
            && self.ips.iter().all(|i| other.ips.contains(i))
    }
}

/// True when `ip` may be named in a server certificate: inside [`PERMITTED_NETS`], and not
/// IPv6 link-local (`fe80::/10`, which [`PERMITTED_NETS`] does not list either).
pub fn permitted_ip(ip: IpAddr) -> bool {
    PERMITTED_NETS
        .iter()
        .any(|(net, prefix)| in_net(ip, *net, *prefix))
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The CA's subject common name.
pub fn ca_common_name(hostname: &str) -> String {
    format!("Letterbox {} household CA", hostname.trim_end_matches('.'))
}

fn ca_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn time(unix: i64) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| CaError(format!("time {unix}: {e}")))
}

fn serial() -> SerialNumber {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // ring's system random cannot fail on Linux once getrandom works; a zero serial would
    // still be a valid (if unlucky) one.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b[0] &= 0x7f;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

/// The CA's parameters: `common_name`, name-constrained to `dns_subtrees` and
/// [`PERMITTED_NETS`], valid from `now - BACKDATE_S` for [`CA_LIFETIME_S`].
fn ca_params(
    common_name: &str,
    dns_subtrees: &[String],
    now: i64,
) -> Result<CertificateParams, CaError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = ca_dn(common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut permitted: Vec<GeneralSubtree> = Vec::new();
    for d in dns_subtrees {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if !d.is_empty() && !permitted.contains(&GeneralSubtree::DnsName(d.clone())) {
            permitted.push(GeneralSubtree::DnsName(d));
        }
    }
    for (net, prefix) in PERMITTED_NETS {
        permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
            *net, *prefix,
        )));
    }
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    p.not_before = time(now - BACKDATE_S)?;
    p.not_after = time(now - BACKDATE_S + CA_LIFETIME_S)?;
    p.serial_number = Some(serial());
    Ok(p)
}

/// The DNS subtrees a new CA for this box is constrained to: the host name, each mail domain
/// and `local` (mDNS names).
pub fn dns_subtrees(hostname: &str, domains: &[String]) -> Vec<String> {
    let mut v = vec![hostname.trim_end_matches('.').to_ascii_lowercase()];
    v.extend(domains.iter().map(|d| d.to_ascii_lowercase()));
    v.push("local".into());
    v
}

/// A new CA: (certificate PEM, private key PEM).
pub fn make_ca(hostname: &str, domains: &[String], now: i64) -> Result<(String, String), CaError> {
    let key = KeyPair::generate()?;
    let params = ca_params(
        &ca_common_name(hostname),
        &dns_subtrees(hostname, domains),
        now,
    )?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a server certificate needs of its CA.
#[derive(Debug)]
pub struct Ca {
    common_name: String,
    /// The CA's subject, DER (a certificate it issued names it as issuer).
    pub subject: Vec<u8>,
    key: KeyPair,
    /// The CA's permitted DNS subtrees (names outside them are left out of server
    /// certificates, since clients would refuse the certificate).
    pub dns_subtrees: Vec<String>,
}

impl Ca {
    /// The CA from its certificate (DER) and private key (PEM).
    pub fn load(cert_der: &[u8], key_pem: &str) -> Result<Ca, CaError> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| CaError(format!("the CA certificate: {e}")))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .ok_or_else(|| CaError("the CA certificate has no common name".into()))?
            .to_string();
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError(format!("the CA key: {e}")))?;
        if key.subject_public_key_info() != cert.public_key().raw {
            return Err(CaError(
                "the CA key does not match the CA certificate".into(),
            ));
        }
        let mut dns_subtrees = Vec::new();
        if let Ok(Some(nc)) = cert.name_constraints() {
            for s in nc.value.permitted_subtrees.iter().flatten() {
                if let x509_parser::extensions::GeneralName::DNSName(d) = s.base {
                    dns_subtrees.push(d.to_ascii_lowercase());
                }
            }
        }
        Ok(Ca {
            common_name,
            subject: cert.subject().as_raw().to_vec(),
            key,
            dns_subtrees,
        })
    }

    /// True when the CA may vouch for the DNS name `name` (RFC 5280 section 4.2.1.10: the
    /// name is a subtree or equal to it). An unconstrained CA permits every name.
    pub fn permits(&self, name: &str) -> bool {
        self.dns_subtrees.is_empty()
            || self
                .dns_subtrees
                .iter()
                .any(|s| name == s || name.ends_with(&format!(".{s}")))
    }

    /// A server certificate for `names` (those the CA may vouch for), valid from
    /// `now - BACKDATE_S` for `lifetime` seconds (at most [`MAX_LIFETIME_S`]): (certificate
    /// PEM, private key PEM).
    pub fn issue(
        &self,
        names: &Names,
        lifetime: i64,
        now: i64,
    ) -> Result<(String, String), CaError> {
        let lifetime = lifetime.clamp(1, MAX_LIFETIME_S);
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let first = names
            .dns
            .iter()
            .find(|d| self.permits(d))
            .ok_or_else(|| CaError("no name the CA may vouch for".into()))?;
        dn.push(DnType::CommonName, first.as_str());
        p.distinguished_name = dn;
        for d in names.dns.iter().filter(|d| self.permits(d)) {
            let ia5 = d
                .clone()
                .try_into()
                .map_err(|e| CaError(format!("the name {d:?}: {e}")))?;
            p.subject_alt_names.push(SanType::DnsName(ia5));
        }
        for ip in names.ips.iter().filter(|ip| permitted_ip(**ip)) {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        // With backdating the whole validity still fits in `lifetime`.
        p.not_before = time(now - BACKDATE_S.min(lifetime / 10))?;
        p.not_after = time(now - BACKDATE_S.min(lifetime / 10) + lifetime)?;
        p.serial_number = Some(serial());
        let key = KeyPair::generate()?;
        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = ca_dn(&self.common_name);
        issuer_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = Issuer::new(issuer_params, &self.key);
        let cert = p.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// What a certificate in use says about itself (from its DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Validity, unix seconds.
    pub not_before: i64,
    /// Validity, unix seconds.
    pub not_after: i64,
    /// The subject alternative names.
    pub names: Names,
    /// The issuer's distinguished name, DER (compared with the CA's subject: an old
    /// self-signed certificate names itself).
    pub issuer: Vec<u8>,
}

impl Issued {
    /// Parses `der`.
    pub fn parse(der: &[u8]) -> Result<Issued, CaError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| CaError(format!("certificate: {e}")))?;
        let mut names = Names::default();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        names.dns.push(d.to_ascii_lowercase())
                    }
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            names.ips.push(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            names.ips.push(IpAddr::from(a));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Issued {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            names,
            issuer: cert.issuer().as_raw().to_vec(),
        })
    }
}

/// When the certificate valid from `not_before` to `not_after` should be renewed: once two
/// thirds of its lifetime have passed.
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    not_before + (not_after.saturating_sub(not_before)) * 2 / 3
}

/// Why `issued` must be replaced at `now` by a certificate for `wanted`, if it must: it is
/// past [`renew_at`], or a wanted name or address is missing.
pub fn renewal_due(issued: &Issued, wanted: &Names, now: i64) -> Option<String> {
    if now >= renew_at(issued.not_before, issued.not_after) {
        return Some("two thirds of its lifetime have passed".into());
    }
    let missing: Vec<String> = wanted
        .dns
        .iter()
        .filter(|d| !issued.names.dns.contains(d))
        .cloned()
        .chain(
            wanted
                .ips
                .iter()
                .filter(|i| !issued.names.ips.contains(i))
                .map(|i| i.to_string()),
        )
        .collect();
    (!missing.is_empty()).then(|| format!("it does not name {}", missing.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    const NOW: i64 = 1_800_000_000;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn ca() -> (Vec<u8>, Ca) {
        let domains = vec!["example.org".to_string(), "example.net".to_string()];
        let (cert, key) = make_ca("mail.example.org", &domains, NOW).unwrap();
        let d = der(&cert);
        let ca = Ca::load(&d, &key).unwrap();
        (d, ca)
    }

    fn lan() -> Names {
        let ips: Vec<IpAddr> = [
            "192.168.1.20",
            "8.8.8.8",
            "fe80::1",
            "fd00::20",
            "127.0.0.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        Names::for_box(
            "Mail.example.org",
            &["example.org".into(), "example.net".into()],
            &ips,
        )
    }

    /// Verifies `leaf` for `name` at `at` with webpki (rustls' own verifier), trusting `ca`.
    fn verify(ca: &[u8], leaf: &[u8], name: &str, at: i64) -> Result<(), rustls::Error> {
        crate::tls::install_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.to_vec())).unwrap();
        let v = WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at as u64));
        v.verify_server_cert(&CertificateDer::from(leaf.to_vec()), &[], &name, &[], at)
            .map(|_| ())
    }
    use std::sync::Arc;

    #[test]
    fn names_of_the_box() {
        let n = lan();
        assert_eq!(
            n.dns,
            [
                "mail.example.org",
                "mail.local",
                "letterbox.local",
                "autoconfig.example.org",
                "autodiscover.example.org"
            ]
        );
        let ips: Vec<String> = n.ips.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            ips,
            ["192.168.1.20", "fd00::20", "127.0.0.1"],
            "no public, no link-local v6"
        );
    }

    #[test]
    fn ca_profile() {
        let (d, _) = ca();
        let (_, c) = x509_parser::parse_x509_certificate(&d).unwrap();
        let cn = c
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(cn, "Letterbox mail.example.org household CA");
        let bc = c.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let nc = c.name_constraints().unwrap().unwrap();
        assert!(nc.critical, "RFC 5280 4.2.1.10: MUST be critical");
        let mut dns = Vec::new();
        let mut ip_nets = 0;
        for s in nc.value.permitted_subtrees.as_ref().unwrap() {
            match s.base {
                GeneralName::DNSName(n) => dns.push(n.to_string()),
                GeneralName::IPAddress(_) => ip_nets += 1,
                _ => panic!("unexpected subtree"),
            }
        }
        assert_eq!(
            dns,
            ["mail.example.org", "example.org", "example.net", "local"]
        );
        assert_eq!(ip_nets, PERMITTED_NETS.len());
        let ku = c.key_usage().unwrap().unwrap();
        assert!(ku.value.key_cert_sign());
        let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
        assert_eq!(life, CA_LIFETIME_S);
    }

    #[test]
    fn server_certificate_profile() {
        let (ca_der, ca) = ca();
        let (cert, key) = ca.issue(&lan(), MAX_LIFETIME_S, NOW).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let d = der(&cert);
        let (_, c) = x509_parser::parse_x509_certificate(&d).unwrap();
        let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
        assert!(life <= 397 * 86_400, "{life}");
        assert!(c.validity().not_before.timestamp() <= NOW);
        let eku = c.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth && !eku.value.client_auth && !eku.value.any);
        let bc = c.basic_constraints().unwrap();
        assert!(bc.is_none_or(|b| !b.value.ca), "not a CA");
        let issued = Issued::parse(&d).unwrap();
        assert_eq!(issued.names, lan());
        assert_eq!(issued.issuer, ca.subject);
        let aki = c.extensions().iter().any(|e| {
            matches!(
                e.parsed_extension(),
                ParsedExtension::AuthorityKeyIdentifier(_)
            )
        });
        assert!(aki, "authority key identifier, for chain building");
        // webpki (name constraints included) accepts every name and address, at start and
        // just before expiry, and refuses after.
        for name in [
            "mail.example.org",
            "mail.local",
            "autoconfig.example.org",
            "192.168.1.20",
            "127.0.0.1",
            "fd00::20",
        ] {
            verify(&ca_der, &d, name, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        verify(&ca_der, &d, "mail.example.org", issued.not_after - 1).unwrap();
        assert!(verify(&ca_der, &d, "mail.example.org", issued.not_after + 1).is_err());
        assert!(verify(&ca_der, &d, "www.example.com", NOW).is_err());
    }

    #[test]
    fn name_constraints_bind_a_stolen_ca() {
        let (ca_der, mut ca) = ca();
        assert!(
            ca.permits("mail.example.org")
                && ca.permits("x.example.net")
                && ca.permits("box.local")
        );
        assert!(!ca.permits("bank.example") && !ca.permits("notexample.org"));
        // Lift our own filter: a certificate for a foreign name or a public address is
        // refused by clients anyway, because of the CA's name constraints.
        ca.dns_subtrees.clear();
        let foreign = Names {
            dns: vec!["bank.example".into()],
            ips: vec![],
        };
        let (cert, _) = ca.issue(&foreign, 86_400, NOW).unwrap();
        let e = verify(&ca_der, &der(&cert), "bank.example", NOW).unwrap_err();
        assert!(format!("{e:?}").contains("NameConstraint"), "{e:?}");
        // Names the CA does not permit are left out of what it issues.
        let (ca_der2, ca2) = super::tests::ca();
        let mixed = Names {
            dns: vec!["mail.example.org".into(), "bank.example".into()],
            ips: vec!["8.8.8.8".parse().unwrap(), "10.1.2.3".parse().unwrap()],
        };
        let (cert, _) = ca2.issue(&mixed, 86_400, NOW).unwrap();
        let issued = Issued::parse(&der(&cert)).unwrap();
        assert_eq!(issued.names.dns, ["mail.example.org"]);
        assert_eq!(issued.names.ips, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        verify(&ca_der2, &der(&cert), "10.1.2.3", NOW).unwrap();
    }

    #[test]
    fn renewal_at_two_thirds_or_on_a_missing_name() {
        let (_, ca) = ca();
        let (cert, _) = ca.issue(&lan(), 300, NOW).unwrap();
        let issued = Issued::parse(&der(&cert)).unwrap();
        assert_eq!(
            issued.not_after - issued.not_before,
            300,
            "short test lifetime kept"
        );
        assert_eq!(
            renew_at(issued.not_before, issued.not_after),
            issued.not_before + 200
        );
        assert_eq!(renewal_due(&issued, &lan(), issued.not_before + 199), None);
        assert!(renewal_due(&issued, &lan(), issued.not_before + 200).is_some());
        let mut more = lan();
        more.ips.push("10.0.0.9".parse().unwrap());
        let why = renewal_due(&issued, &more, NOW).unwrap();
        assert!(why.contains("10.0.0.9"), "{why}");
        // A name that went away is no reason to renew early.
        let mut fewer = lan();
        fewer.ips.pop();
        assert_eq!(renewal_due(&issued, &fewer, NOW), None);
        // The lifetime is capped at 397 days whatever is asked.
        let (cert, _) = ca.issue(&lan(), 10 * MAX_LIFETIME_S, NOW).unwrap();
        let i = Issued::parse(&der(&cert)).unwrap();
        assert_eq!(i.not_after - i.not_before, MAX_LIFETIME_S);
    }

    #[test]
    fn a_mismatched_ca_key_is_refused() {
        let (d, _) = ca();
        let other = KeyPair::generate().unwrap().serialize_pem();
        let e = Ca::load(&d, &other).err().unwrap();
        assert!(e.0.contains("does not match"), "{e}");
        assert!(Ca::load(b"junk", &other).is_err());
    }
}
