//! Client autoconfiguration, as pure functions of the configuration (no I/O): what a mail
//! app needs to set itself up from an address and a password alone.
//!
//! - [`ClientSettings`]: the host name clients should use and which mail ports are on,
//!   with their security (implicit TLS or STARTTLS), taken from `[listen]`.
//! - [`thunderbird`]: Thunderbird's `config-v1.1.xml` (the "autoconfig" format, served at
//!   `/mail/config-v1.1.xml` and `/.well-known/autoconfig/mail/config-v1.1.xml`).
//! - [`parse_autodiscover_request`] and [`autodiscover`]: Outlook's POX Autodiscover
//!   (`/autodiscover/autodiscover.xml`), a bounded hand-checked reader of the request's
//!   `EMailAddress` and the answer.
//! - [`mobileconfig`]: an Apple configuration profile for one account (IMAP + SMTP, and the
//!   certificate to trust), unsigned.
//! - [`dns_records`]: the RFC 6186 SRV records and the `autoconfig` / `autodiscover` names
//!   that `letterbox dns` prints.
//!
//! Every string that reaches XML goes through [`xml_escape`]; addresses are checked by
//! [`check_address`] first, so none carries markup anyway.

use std::net::SocketAddr;

use crate::config::Config;
use crate::mail::sign::DnsRecord;

/// The most bytes of an Autodiscover request body that are read (the real ones are ~400).
pub const MAX_AUTODISCOVER_REQUEST: usize = 16 * 1024;
/// The longest address accepted (RFC 5321 §4.5.3.1.3: a path is at most 256 octets,
/// of which 254 are the address).
pub const MAX_ADDRESS: usize = 254;

/// How a client secures one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (RFC 8314 §3: 993, 995, 465).
    Tls,
    /// Plain first, then STARTTLS / STLS (RFC 3207, RFC 9051 §6.2.1, RFC 2595 §4).
    StartTls,
}

/// One mail service a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The port.
    pub port: u16,
    /// Its security.
    pub security: Security,
}

/// What every autoconfiguration answer is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The server name clients connect to.
    pub host: String,
    /// Every domain served (`[server] domains`).
    pub domains: Vec<String>,
    /// IMAP endpoints, implicit TLS first (RFC 8314 §3.3 prefers it).
    pub imap: Vec<Endpoint>,
    /// POP3 endpoints, implicit TLS first.
    pub pop3: Vec<Endpoint>,
    /// Submission endpoints, implicit TLS first.
    pub smtp: Vec<Endpoint>,
}

impl ClientSettings {
    /// The settings for `cfg`, with clients told to use `host`.
    pub fn from_config(cfg: &Config, host: &str) -> ClientSettings {
        let l = &cfg.listen;
        let pair = |tls: Option<SocketAddr>, starttls: Option<SocketAddr>| {
            let mut v = Vec::new();
            if let Some(a) = tls {
                v.push(Endpoint {
                    port: a.port(),
                    security: Security::Tls,
                });
            }
            if let Some(a) = starttls {
                v.push(Endpoint {
                    port: a.port(),
                    security: Security::StartTls,
                });
            }
            v
        };
        ClientSettings {
            host: host.to_string(),
            domains: cfg.server.domains.clone(),
            imap: pair(l.imaps, l.imap),
            pop3: pair(l.pop3s, l.pop3),
            smtp: pair(l.submissions, l.submission),
        }
    }

    /// The primary domain.
    fn primary(&self) -> &str {
        self.domains.first().map_or("home.arpa", String::as_str)
    }

    /// Whether `domain` is one of ours.
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Checks a mail address given by a client (query, path or Autodiscover request): one `@`,
/// a non-empty local part and domain, at most [`MAX_ADDRESS`] bytes, printable ASCII
/// without spaces, quotes, markup or path characters. Returns it with the domain in lower
/// case.
pub fn check_address(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("no address".into());
    }
    if s.len() > MAX_ADDRESS {
        return Err(format!("address longer than {MAX_ADDRESS} bytes"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || "<>&\"'\\/()[],;:".contains(*c))
    {
        return Err(format!("character {c:?} not allowed in an address"));
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err("an address needs an @".into());
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err("an address is local-part@domain".into());
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err("invalid domain".into());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("invalid local part".into());
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// Thunderbird's autoconfig file (the "config-v1.1.xml" format, Mozilla wiki
/// "Thunderbird:Autoconfiguration:ConfigFileFormat"). The user name is the whole address
/// (`%EMAILADDRESS%`), the authentication the password over TLS.
pub fn thunderbird(s: &ClientSettings) -> String {
    let host = xml_escape(&s.host);
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n",
    );
    x.push_str(&format!(
        "  <emailProvider id=\"{}\">\n",
        xml_escape(s.primary())
    ));
    for d in &s.domains {
        x.push_str(&format!("    <domain>{}</domain>\n", xml_escape(d)));
    }
    x.push_str(&format!(
        "    <displayName>Letterbox ({})</displayName>\n    <displayShortName>Letterbox</displayShortName>\n",
        xml_escape(s.primary())
    ));
    let server = |tag: &str, kind: &str, e: &Endpoint| {
        format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      <port>{}</port>\n      <socketType>{}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILADDRESS%</username>\n    </{tag}>\n",
            e.port,
            match e.security {
                Security::Tls => "SSL",
                Security::StartTls => "STARTTLS",
            }
        )
    };
    for e in &s.imap {
        x.push_str(&server("incomingServer", "imap", e));
    }
    for e in &s.pop3 {
        x.push_str(&server("incomingServer", "pop3", e));
    }
    for e in &s.smtp {
        x.push_str(&server("outgoingServer", "smtp", e));
    }
    x.push_str("  </emailProvider>\n</clientConfig>\n");
    x
}

/// Why an Autodiscover request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutodiscoverError {
    /// Larger than [`MAX_AUTODISCOVER_REQUEST`].
    TooLarge,
    /// Not UTF-8, no `EMailAddress` element, or an unclosed one.
    Malformed(&'static str),
    /// The address in it is not a plausible address.
    BadAddress(String),
}

impl std::fmt::Display for AutodiscoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AutodiscoverError::TooLarge => {
                write!(f, "request larger than {MAX_AUTODISCOVER_REQUEST} bytes")
            }
            AutodiscoverError::Malformed(w) => write!(f, "malformed request: {w}"),
            AutodiscoverError::BadAddress(w) => write!(f, "bad EMailAddress: {w}"),
        }
    }
}

/// Reads the `EMailAddress` of a POX Autodiscover request ([MS-OXDSCLI] §2.2.3: an
/// `Autodiscover` element holding `Request` / `EMailAddress` and
/// `AcceptableResponseSchema`). This is not a general XML parser: it finds the first
/// element whose local name is `EMailAddress` (any namespace prefix, attributes allowed),
/// takes its text up to the next `<`, and checks it with [`check_address`]. Bounded: the
/// input is at most [`MAX_AUTODISCOVER_REQUEST`] bytes and is scanned once.
pub fn parse_autodiscover_request(body: &[u8]) -> Result<String, AutodiscoverError> {
    if body.len() > MAX_AUTODISCOVER_REQUEST {
        return Err(AutodiscoverError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| AutodiscoverError::Malformed("not UTF-8"))?;
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after
            .find('>')
            .ok_or(AutodiscoverError::Malformed("unclosed tag"))?;
        let tag = &after[..close];
        rest = &after[close + 1..];
        // Skip end tags, declarations, comments and processing instructions.
        if tag.starts_with(['/', '!', '?']) {
            continue;
        }
        let name = tag
            .split(|c: char| c.is_ascii_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        let local = name.rsplit_once(':').map_or(name, |(_, l)| l);
        if local != "EMailAddress" {
            continue;
        }
        if tag.ends_with('/') {
            return Err(AutodiscoverError::Malformed("empty EMailAddress"));
        }
        let end = rest
            .find('<')
            .ok_or(AutodiscoverError::Malformed("unclosed EMailAddress"))?;
        let closing = &rest[end..];
        let expect = format!("</{name}>");
        if !closing.starts_with(&expect) {
            return Err(AutodiscoverError::Malformed(
                "EMailAddress is not closed right after its text",
            ));
        }
        return check_address(&rest[..end]).map_err(AutodiscoverError::BadAddress);
    }
    Err(AutodiscoverError::Malformed("no EMailAddress element"))
}

/// The POX Autodiscover answer ([MS-OXDSCLI] §2.2.4, response schema `.../outlook/
/// responseschema/2006a`): one `Protocol` per service, the preferred endpoint of each
/// (implicit TLS when on). `Encryption` is `SSL` for implicit TLS and `TLS` for STARTTLS.
/// `address` (when known) is the `LoginName`.
pub fn autodiscover(s: &ClientSettings, address: Option<&str>) -> String {
    let host = xml_escape(&s.host);
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n",
    );
    let login = address
        .map(|a| format!("        <LoginName>{}</LoginName>\n", xml_escape(a)))
        .unwrap_or_default();
    for (kind, list) in [("IMAP", &s.imap), ("POP3", &s.pop3), ("SMTP", &s.smtp)] {
        let Some(e) = list.first() else { continue };
        let (ssl, enc) = match e.security {
            Security::Tls => ("on", "SSL"),
            Security::StartTls => ("on", "TLS"),
        };
        x.push_str(&format!(
            "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{host}</Server>\n        <Port>{}</Port>\n{login}        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n        <SSL>{ssl}</SSL>\n        <Encryption>{enc}</Encryption>\n        <AuthRequired>on</AuthRequired>\n{}      </Protocol>\n",
            e.port,
            if kind == "SMTP" {
                "        <UsePOPAuth>on</UsePOPAuth>\n        <SMTPLast>off</SMTPLast>\n"
            } else {
                ""
            }
        ));
    }
    x.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    x
}

/// A stable UUID (version 4 layout) derived from `seed`, so the same account gets the same
/// profile identifiers on every download (iOS then replaces the profile instead of adding
/// a second one).
fn uuid_from(seed: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The certificate put in a profile for the device to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileCert {
    /// DER bytes.
    pub der: Vec<u8>,
    /// True for a self-signed (root) certificate: `com.apple.security.root`; otherwise
    /// `com.apple.security.pkcs1`.
    pub root: bool,
}

/// An Apple configuration profile (Configuration Profile Reference: `com.apple.mail.managed`
/// with IMAP and SMTP, plus the certificate payload) for `address`. The password is not in
/// it: iOS and macOS ask for it when the profile is installed. Unsigned.
pub fn mobileconfig(s: &ClientSettings, address: &str, cert: Option<&ProfileCert>) -> String {
    use base64::Engine;
    let esc = xml_escape;
    let host = esc(&s.host);
    let addr = esc(address);
    let imap = s.imap.first();
    let smtp = s.smtp.first();
    let mut payloads = String::new();
    if let (Some(i), Some(o)) = (imap, smtp) {
        payloads.push_str(&format!(
            "    <dict>\n      <key>EmailAccountDescription</key><string>{addr}</string>\n      <key>EmailAccountName</key><string>{addr}</string>\n      <key>EmailAccountType</key><string>EmailTypeIMAP</string>\n      <key>EmailAddress</key><string>{addr}</string>\n      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>\n      <key>IncomingMailServerHostName</key><string>{host}</string>\n      <key>IncomingMailServerPortNumber</key><integer>{}</integer>\n      <key>IncomingMailServerUseSSL</key><{}/>\n      <key>IncomingMailServerUsername</key><string>{addr}</string>\n      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>\n      <key>OutgoingMailServerHostName</key><string>{host}</string>\n      <key>OutgoingMailServerPortNumber</key><integer>{}</integer>\n      <key>OutgoingMailServerUseSSL</key><{}/>\n      <key>OutgoingMailServerUsername</key><string>{addr}</string>\n      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>\n      <key>PayloadDescription</key><string>Mail account {addr}</string>\n      <key>PayloadDisplayName</key><string>{addr}</string>\n      <key>PayloadIdentifier</key><string>letterbox.mail.{}</string>\n      <key>PayloadType</key><string>com.apple.mail.managed</string>\n      <key>PayloadUUID</key><string>{}</string>\n      <key>PayloadVersion</key><integer>1</integer>\n    </dict>\n",
            i.port,
            // iOS: UseSSL on a STARTTLS port means STARTTLS; true either way.
            "true",
            o.port,
            "true",
            uuid_from(&format!("mail {address}")),
            uuid_from(&format!("mail {address}")),
        ));
    }
    if let Some(c) = cert {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&c.der);
        let mut wrapped = String::new();
        for chunk in b64.as_bytes().chunks(64) {
            wrapped.push_str("      ");
            wrapped.push_str(std::str::from_utf8(chunk).unwrap_or(""));
            wrapped.push('\n');
        }
        payloads.push_str(&format!(
            "    <dict>\n      <key>PayloadCertificateFileName</key><string>letterbox.crt</string>\n      <key>PayloadContent</key>\n      <data>\n{wrapped}      </data>\n      <key>PayloadDescription</key><string>The certificate of {host}</string>\n      <key>PayloadDisplayName</key><string>Letterbox {host}</string>\n      <key>PayloadIdentifier</key><string>letterbox.cert.{}</string>\n      <key>PayloadType</key><string>{}</string>\n      <key>PayloadUUID</key><string>{}</string>\n      <key>PayloadVersion</key><integer>1</integer>\n    </dict>\n",
            uuid_from(&format!("cert {}", s.host)),
            if c.root {
                "com.apple.security.root"
            } else {
                "com.apple.security.pkcs1"
            },
            uuid_from(&format!("cert {}", s.host)),
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n  <key>PayloadContent</key>\n  <array>\n{payloads}  </array>\n  <key>PayloadDescription</key><string>Mail settings for {addr} on {host}</string>\n  <key>PayloadDisplayName</key><string>Letterbox: {addr}</string>\n  <key>PayloadIdentifier</key><string>letterbox.profile.{}</string>\n  <key>PayloadRemovalDisallowed</key><false/>\n  <key>PayloadType</key><string>Configuration</string>\n  <key>PayloadUUID</key><string>{}</string>\n  <key>PayloadVersion</key><integer>1</integer>\n</dict>\n</plist>\n",
        uuid_from(&format!("profile {address}")),
        uuid_from(&format!("profile {address}")),
    )
}

/// The DNS records that let clients find the services (for `letterbox dns`), for `domain`
/// served by `host` (`[server] hostname`):
/// - RFC 6186 §3.1 (IMAP, POP3) and §3.2 (submission) SRV records, and RFC 8314 §5.1's
///   `_submissions`; a service that is off gets the target `.` (RFC 6186 §4: "not
///   available"), so a client does not try it;
/// - `autoconfig.<domain>` (Thunderbird) and `autodiscover.<domain>` (Outlook) as CNAMEs of
///   the host, and `_autodiscover._tcp` SRV to the HTTPS port, when HTTPS is on.
pub fn dns_records(cfg: &Config, domain: &str) -> Vec<DnsRecord> {
    let host = cfg.server.hostname.trim_end_matches('.');
    let l = &cfg.listen;
    let mut out = Vec::new();
    let services = [
        ("_submissions", l.submissions),
        ("_submission", l.submission),
        ("_imaps", l.imaps),
        ("_imap", l.imap),
        ("_pop3s", l.pop3s),
        ("_pop3", l.pop3),
    ];
    // RFC 6186 §3.4 / RFC 8314 §5.1: a lower priority is preferred; implicit TLS first.
    for (i, (name, addr)) in services.into_iter().enumerate() {
        let value = match addr {
            Some(a) => format!("{} 1 {} {host}.", if i % 2 == 0 { 0 } else { 10 }, a.port()),
            None => "0 0 0 .".to_string(),
        };
        out.push(DnsRecord {
            name: format!("{name}._tcp.{domain}"),
            kind: "SRV",
            value,
        });
    }
    if let Some(https) = l.https {
        for label in ["autoconfig", "autodiscover"] {
            let name = format!("{label}.{domain}");
            if name.eq_ignore_ascii_case(host) {
                continue;
            }
            out.push(DnsRecord {
                name,
                kind: "CNAME",
                value: format!("{host}."),
            });
        }
        out.push(DnsRecord {
            name: format!("_autodiscover._tcp.{domain}"),
            kind: "SRV",
            value: format!("0 1 {} {host}.", https.port()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClientSettings {
        let mut cfg = Config::defaults();
        cfg.server.domains = vec!["example.org".into(), "example.net".into()];
        ClientSettings::from_config(&cfg, "mail.example.org")
    }

    #[test]
    fn settings_follow_listen() {
        let mut cfg = Config::defaults();
        cfg.listen.imaps = None;
        cfg.listen.submission = None;
        let s = ClientSettings::from_config(&cfg, "h");
        assert_eq!(
            s.imap,
            [Endpoint {
                port: 2143,
                security: Security::StartTls
            }]
        );
        assert_eq!(
            s.smtp,
            [Endpoint {
                port: 2465,
                security: Security::Tls
            }]
        );
        assert_eq!(s.pop3.len(), 2);
        assert_eq!(s.pop3[0].security, Security::Tls);
    }

    #[test]
    fn thunderbird_names_every_enabled_service() {
        let x = thunderbird(&settings());
        assert!(x.contains("<domain>example.org</domain>"), "{x}");
        assert!(x.contains("<domain>example.net</domain>"), "{x}");
        assert!(x.contains("<incomingServer type=\"imap\">\n      <hostname>mail.example.org</hostname>\n      <port>2993</port>\n      <socketType>SSL</socketType>"), "{x}");
        assert!(
            x.contains("<port>2143</port>\n      <socketType>STARTTLS</socketType>"),
            "{x}"
        );
        assert!(x.contains("<outgoingServer type=\"smtp\">\n      <hostname>mail.example.org</hostname>\n      <port>2465</port>"), "{x}");
        assert!(
            x.contains("<port>2587</port>\n      <socketType>STARTTLS</socketType>"),
            "{x}"
        );
        assert_eq!(x.matches("<incomingServer").count(), 4);
        assert_eq!(x.matches("<outgoingServer").count(), 2);
    }

    #[test]
    fn autodiscover_request_parses_real_and_hostile_forms() {
        let outlook = br#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>Alice@Example.ORG</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;
        assert_eq!(
            parse_autodiscover_request(outlook).unwrap(),
            "Alice@example.org"
        );
        // Namespace prefix, attributes, comments before it.
        let prefixed = b"<!-- x --><a:Autodiscover><a:Request><a:EMailAddress id=\"1\"> bob@example.org </a:EMailAddress></a:Request></a:Autodiscover>";
        assert_eq!(
            parse_autodiscover_request(prefixed).unwrap(),
            "bob@example.org"
        );
        let bad: &[(&[u8], &str)] = &[
            (b"", "no EMailAddress"),
            (b"<Autodiscover><Request></Request>", "no EMailAddress"),
            (b"<EMailAddress>a@b", "unclosed EMailAddress"),
            (b"<EMailAddress", "unclosed tag"),
            (b"<EMailAddress/>", "empty"),
            (
                b"<EMailAddress>a@b<x/></EMailAddress>",
                "closed right after",
            ),
            (b"<EMailAddress>a@b</Other>", "closed right after"),
            (b"<EMailAddress>a&amp;b@c</EMailAddress>", "not allowed"),
            (b"<EMailAddress>../../etc@x</EMailAddress>", "not allowed"),
            (b"<EMailAddress>nobody</EMailAddress>", "needs an @"),
            (b"<EMailAddress>a@@b</EMailAddress>", "local-part@domain"),
            (b"<EMailAddress>\xff@b</EMailAddress>", "not UTF-8"),
        ];
        for (input, want) in bad {
            let e = parse_autodiscover_request(input).unwrap_err().to_string();
            assert!(
                e.contains(want),
                "{:?}: {e}",
                String::from_utf8_lossy(input)
            );
        }
        let long = format!("<EMailAddress>{}@b</EMailAddress>", "a".repeat(300));
        assert!(parse_autodiscover_request(long.as_bytes()).is_err());
        let huge = vec![b'<'; MAX_AUTODISCOVER_REQUEST + 1];
        assert_eq!(
            parse_autodiscover_request(&huge),
            Err(AutodiscoverError::TooLarge)
        );
    }

    #[test]
    fn autodiscover_answer_prefers_implicit_tls() {
        let x = autodiscover(&settings(), Some("a@example.org"));
        assert!(x.contains("<Type>IMAP</Type>\n        <Server>mail.example.org</Server>\n        <Port>2993</Port>\n        <LoginName>a@example.org</LoginName>"), "{x}");
        assert!(x.contains("<Type>SMTP</Type>\n        <Server>mail.example.org</Server>\n        <Port>2465</Port>"), "{x}");
        assert!(x.contains("<Encryption>SSL</Encryption>"), "{x}");
        let mut s = settings();
        s.imap.remove(0);
        let x = autodiscover(&s, None);
        assert!(
            x.contains("<Port>2143</Port>\n        <DomainRequired>"),
            "{x}"
        );
        assert!(x.contains("<Encryption>TLS</Encryption>"), "{x}");
    }

    #[test]
    fn mobileconfig_is_stable_and_escaped() {
        let cert = ProfileCert {
            der: vec![1, 2, 3],
            root: true,
        };
        let a = mobileconfig(&settings(), "a@example.org", Some(&cert));
        assert_eq!(a, mobileconfig(&settings(), "a@example.org", Some(&cert)));
        assert!(a.contains("<key>IncomingMailServerPortNumber</key><integer>2993</integer>"));
        assert!(a.contains("<key>OutgoingMailServerPortNumber</key><integer>2465</integer>"));
        assert!(a.contains("com.apple.security.root"));
        assert!(a.contains("AQID"), "the DER in base64");
        let b = mobileconfig(&settings(), "b@example.org", None);
        assert!(!b.contains("com.apple.security"));
        let uuid = |s: &str| uuid_from(s);
        assert_ne!(uuid("x"), uuid("y"));
        assert_eq!(uuid("x").len(), 36);
        assert_eq!(&uuid("x")[14..15], "4");
        assert!(xml_escape("<a&\"'>") == "&lt;a&amp;&quot;&apos;&gt;");
    }

    #[test]
    fn check_address_cases() {
        assert_eq!(check_address(" a.b@Ex.ORG ").unwrap(), "a.b@ex.org");
        for bad in [
            "", "a", "@b", "a@", "a b@c", "a@b/c", "a@..", ".a@b", "a@b.", "a<@b", "a@b%00\0",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn srv_and_autoconfig_records() {
        let mut cfg = Config::defaults();
        cfg.server.hostname = "mail.example.org".into();
        cfg.listen.pop3 = None;
        let r = dns_records(&cfg, "example.org");
        let find = |n: &str| r.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(
            find("_submissions._tcp.example.org").value,
            "0 1 2465 mail.example.org."
        );
        assert_eq!(
            find("_submission._tcp.example.org").value,
            "10 1 2587 mail.example.org."
        );
        assert_eq!(
            find("_imaps._tcp.example.org").value,
            "0 1 2993 mail.example.org."
        );
        assert_eq!(find("_pop3._tcp.example.org").value, "0 0 0 .");
        assert_eq!(find("autoconfig.example.org").kind, "CNAME");
        assert_eq!(find("autodiscover.example.org").value, "mail.example.org.");
        assert_eq!(
            find("_autodiscover._tcp.example.org").value,
            "0 1 2443 mail.example.org."
        );
        cfg.listen.https = None;
        assert!(
            !dns_records(&cfg, "example.org")
                .iter()
                .any(|x| x.name.starts_with("auto"))
        );
    }
}
