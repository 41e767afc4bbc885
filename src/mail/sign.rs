//! DKIM for outbound mail (RFC 6376): key generation, signing, and the DNS records to
//! publish.
//!
//! Every domain of `[server] domains` gets two keys on the daemon's first start: an
//! Ed25519 key (`ed25519-sha256`, RFC 8463) and an RSA-2048 key (`rsa-sha256`, RFC 6376
//! §3.3.1; RFC 8301 asks for at least 1024 bits, 2048 is what receivers expect). A message
//! is signed with both, relaxed/relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4): a
//! verifier that does not know Ed25519 (still common) uses the RSA signature, and
//! RFC 6376 §4.2 makes one valid signature enough.
//!
//! Ed25519 keys come from ring. ring cannot generate RSA keys, so the RSA key is
//! generated with the RustCrypto `rsa` crate (as mail-auth's own `generate` feature does)
//! and then signed with through mail-auth/ring like any other PKCS#1 key.
//!
//! Which domain signs: the domain of the `From:` header (so that DKIM aligns for DMARC,
//! RFC 7489 §3.1.1) when it is one of ours, else the envelope sender's domain.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};

use crate::store::{DkimAlgorithm, DkimKey};

/// The header fields signed when present (RFC 6376 §5.4.1's recommended set).
pub const SIGNED_HEADERS: [&str; 14] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "Sender",
];

/// Generates the Ed25519 and RSA-2048 keys of a domain; `now` (unix seconds) names the
/// selectors (`ed25519-YYYYMMDD`, `rsa-YYYYMMDD`). CPU work (RSA takes up to a second):
/// call it on a blocking thread.
pub fn generate(now: i64) -> Result<Vec<DkimKey>, String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePublicKey;

    let date = ymd(now);
    let ed_der = Ed25519Key::generate_pkcs8().map_err(|e| format!("ed25519 key: {e}"))?;
    let ed = Ed25519Key::from_pkcs8_der(&ed_der).map_err(|e| format!("ed25519 key: {e}"))?;
    let ed_key = DkimKey {
        selector: format!("ed25519-{date}"),
        algorithm: DkimAlgorithm::Ed25519,
        private_der: ed_der,
        public: ed.public_key(),
        created: now,
    };
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
        .map_err(|e| format!("rsa key: {e}"))?;
    let private_der = private
        .to_pkcs1_der()
        .map_err(|e| format!("rsa key: {e}"))?
        .as_bytes()
        .to_vec();
    let public = rsa::RsaPublicKey::from(&private)
        .to_public_key_der()
        .map_err(|e| format!("rsa key: {e}"))?
        .as_bytes()
        .to_vec();
    let rsa_key = DkimKey {
        selector: format!("rsa-{date}"),
        algorithm: DkimAlgorithm::Rsa2048,
        private_der,
        public,
        created: now,
    };
    Ok(vec![ed_key, rsa_key])
}

/// `YYYYMMDD` of a unix time (proleptic Gregorian, UTC).
fn ymd(t: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}")
}

/// The `DKIM-Signature:` header fields for `message`, one per key, each ending in CRLF,
/// to be prepended to the message (RFC 6376 §3.5). Keys that fail are skipped (logged);
/// an empty result means the message goes out unsigned.
pub fn sign(message: &[u8], domain: &str, keys: &[DkimKey]) -> Vec<u8> {
    let mut out = Vec::new();
    for key in keys {
        match sign_one(message, domain, key) {
            Ok(h) => out.extend_from_slice(h.as_bytes()),
            Err(e) => {
                tracing::warn!(domain, selector = %key.selector, error = %e, "DKIM signing failed")
            }
        }
    }
    out
}

fn sign_one(message: &[u8], domain: &str, key: &DkimKey) -> Result<String, String> {
    let sig = match key.algorithm {
        DkimAlgorithm::Ed25519 => {
            let k = Ed25519Key::from_pkcs8_der(&key.private_der).map_err(|e| e.to_string())?;
            DkimSigner::from_key(k)
                .domain(domain)
                .selector(&key.selector)
                .headers(SIGNED_HEADERS)
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed)
                .sign(message)
        }
        DkimAlgorithm::Rsa2048 => {
            let der = rustls_pki_types::PrivatePkcs1KeyDer::from(key.private_der.clone());
            let k = RsaKey::<Sha256>::from_key_der(der.into()).map_err(|e| e.to_string())?;
            DkimSigner::from_key(k)
                .domain(domain)
                .selector(&key.selector)
                .headers(SIGNED_HEADERS)
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed)
                .sign(message)
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(sig.to_header())
}

/// A TXT value in zone-file form: quoted strings of at most 255 octets (RFC 1035
/// §3.3.14; a long RSA key spans several strings, RFC 6376 §3.6.2.2).
pub fn zone_text(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One DNS record to publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DnsRecord {
    /// Owner name, without the final dot.
    pub name: String,
    /// Record type (`TXT`).
    pub kind: &'static str,
    /// The record's text.
    pub value: String,
}

/// The TXT record of one key (RFC 6376 §3.6.1; `k=ed25519` from RFC 8463 §4.2).
pub fn key_record(domain: &str, key: &DkimKey) -> DnsRecord {
    use base64::Engine;
    let k = match key.algorithm {
        DkimAlgorithm::Ed25519 => "ed25519",
        DkimAlgorithm::Rsa2048 => "rsa",
    };
    DnsRecord {
        name: format!("{}._domainkey.{domain}", key.selector),
        kind: "TXT",
        value: format!(
            "v=DKIM1; k={k}; p={}",
            base64::engine::general_purpose::STANDARD.encode(&key.public)
        ),
    }
}

/// Every record to publish for `domain`: its DKIM keys, a suggested SPF record (RFC 7208;
/// the relay host is included when mail leaves through one) and a DMARC policy
/// (RFC 7489 §6.3) with strict alignment.
pub fn dns_records(domain: &str, keys: &[DkimKey], relay_host: Option<&str>) -> Vec<DnsRecord> {
    let mut out: Vec<DnsRecord> = keys.iter().map(|k| key_record(domain, k)).collect();
    let spf = match relay_host {
        Some(h) if h.parse::<std::net::IpAddr>().is_ok() => {
            let ip = h.parse::<std::net::IpAddr>().map(|ip| match ip {
                std::net::IpAddr::V4(_) => format!("ip4:{ip}"),
                std::net::IpAddr::V6(_) => format!("ip6:{ip}"),
            });
            format!("v=spf1 mx {} -all", ip.unwrap_or_default())
        }
        Some(h) => format!("v=spf1 mx a:{h} -all"),
        None => "v=spf1 mx -all".to_string(),
    };
    out.push(DnsRecord {
        name: domain.to_string(),
        kind: "TXT",
        value: spf,
    });
    out.push(DnsRecord {
        name: format!("_dmarc.{domain}"),
        kind: "TXT",
        value: "v=DMARC1; p=quarantine; adkim=s; aspf=s".to_string(),
    });
    out
}

/// The domain to sign `message` with: the `From:` domain when it is local, else the
/// envelope sender's domain when local, else none.
pub fn signing_domain(
    message: &[u8],
    mail_from: &str,
    is_local: impl Fn(&str) -> bool,
) -> Option<String> {
    let from = mail_parser::MessageParser::default()
        .parse_headers(message)
        .and_then(|m| {
            m.from()
                .and_then(|f| f.first())
                .and_then(|a| a.address.as_deref())
                .and_then(address_domain)
        });
    if let Some(d) = from.filter(|d| is_local(d)) {
        return Some(d);
    }
    mail_from
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .filter(|d| is_local(d))
}

/// The lower-cased domain of an address.
fn address_domain(addr: &str) -> Option<String> {
    let (_, d) = addr.trim().rsplit_once('@')?;
    let d = d.trim().to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(ymd(0), "19700101");
        assert_eq!(ymd(1_795_392_000), "20261123");
    }

    #[test]
    fn signs_with_both_keys_and_prints_records() {
        let keys = generate(1_795_392_000).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].selector, "ed25519-20261123");
        let msg =
            b"From: Alice <alice@home.arpa>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n";
        let headers = String::from_utf8(sign(msg, "home.arpa", &keys)).unwrap();
        assert_eq!(headers.matches("DKIM-Signature:").count(), 2, "{headers}");
        assert!(headers.contains("a=ed25519-sha256"));
        assert!(headers.contains("a=rsa-sha256"));
        assert!(headers.contains("c=relaxed/relaxed"));
        assert!(headers.contains("d=home.arpa"));
        let recs = dns_records("home.arpa", &keys, None);
        assert_eq!(recs[0].name, "ed25519-20261123._domainkey.home.arpa");
        assert!(recs[0].value.starts_with("v=DKIM1; k=ed25519; p="));
        assert!(recs[1].value.starts_with("v=DKIM1; k=rsa; p=MII"));
        assert_eq!(recs[2].value, "v=spf1 mx -all");
        assert_eq!(recs[3].name, "_dmarc.home.arpa");
        assert_eq!(recs[3].value, "v=DMARC1; p=quarantine; adkim=s; aspf=s");
        let z = zone_text(&recs[1].value);
        assert!(
            z.starts_with("\"v=DKIM1; k=rsa; p=MII") && z.contains("\" \""),
            "{z}"
        );
        assert_eq!(z.replace("\" \"", "").trim_matches('"'), recs[1].value);
    }

    #[test]
    fn signing_domain_prefers_a_local_from() {
        let local = |d: &str| d == "home.arpa" || d == "other.arpa";
        let m = b"From: \"A\" <a@Other.Arpa>\r\n\r\nx";
        assert_eq!(
            signing_domain(m, "a@home.arpa", local).as_deref(),
            Some("other.arpa")
        );
        let m = b"From: a@example.org\r\n\r\nx";
        assert_eq!(
            signing_domain(m, "a@home.arpa", local).as_deref(),
            Some("home.arpa")
        );
        assert_eq!(signing_domain(m, "", local), None);
    }
}
