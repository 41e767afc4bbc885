//! Sender verification of inbound mail (SPEC §5 "Verified inbound mail"), with mail-auth
//! through the resolver of [`super::dns`] (`[dns] nameservers`).
//!
//! For a message that arrived on the MX listener, after its data (RFC 5321 §4.1.1.4):
//!
//! - **SPF** (RFC 7208): the HELO identity (§2.3) and the MAIL FROM identity (§2.4); for the
//!   null reverse-path the MAIL FROM identity is `postmaster@<HELO>` (§2.4), so the HELO result
//!   stands for it. Address literals in HELO have no SPF record and give `none`.
//! - **DKIM** (RFC 6376 §6): every `DKIM-Signature`, with its key from
//!   `<s>._domainkey.<d>`.
//! - **ARC** (RFC 8617 §5.2): the chain is validated and recorded; it changes nothing about
//!   delivery (we do not override DMARC on a trusted sealer, and we do not seal).
//! - **DMARC** (RFC 7489 §6.6, as mail-auth implements it with RFC 9989's tree walk): the
//!   policy of the `From:` domain over the SPF (MAIL FROM, or HELO for `<>`) and DKIM results,
//!   with identifier alignment (§3.1).
//!
//! The results go into one `Authentication-Results` field (RFC 8601 §2.2) naming this host
//! (`[server] hostname`), which the driver puts above its `Received`. Fields that already
//! claim our host name are removed from the message ([`strip_forged`], RFC 8601 §5) after
//! verification (a DKIM signature may cover them).
//!
//! The [`Verdict`] (RFC 7489 §6.6.2 and §10.1, SPEC §5):
//! - DMARC `fail` under `p=reject`: refused (`550 5.7.1` by the driver);
//!   under `p=quarantine`: delivered to the recipients' Junk; under `p=none`: delivered.
//! - A DNS failure that decides the outcome (the DMARC record could not be fetched, or the
//!   only aligned identifier has a `temperror` and the policy is quarantine or reject):
//!   deferred (`451`), never a pass. A DNS failure that cannot change the outcome (an aligned
//!   identifier passed anyway, or the policy is `none`) is only recorded.
//! - The whole verification is bounded by [`DEADLINE`] (RFC 5321 §4.5.3.2.6 gives the client
//!   10 minutes for the reply to DATA; we use far less); past it the message is deferred.
//!
//! Nothing here panics on what the network or the DNS sends: mail-auth parses both, and
//! this module only reads its results.

use std::net::IpAddr;
use std::time::Duration;

use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult,
    MessageAuthenticator, SpfOutput, SpfResult, dmarc::verify::DmarcParameters,
};

use crate::config::DnsConfig;

/// The longest a verification may take before the message is deferred.
pub const DEADLINE: Duration = Duration::from_secs(45);

/// The verifier of the MX listener: one resolver (with its cache) for every connection.
pub struct Verifier {
    /// `None` when no resolver could be built: everything that needs DNS is deferred.
    auth: Option<MessageAuthenticator>,
    /// Our host name: the authserv-id of `Authentication-Results`.
    hostname: String,
}

/// What a verification looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// More resinfo for `Authentication-Results`, appended as is (`;\r\n\tiprev=...`,
    /// from `crate::spam`); empty for none.
    pub extra: &'a str,
    /// The SMTP client's address; unspecified (`0.0.0.0`) when unknown (pulled mail whose
    /// trace names no client): SPF is then `none`.
    pub ip: IpAddr,
    /// The EHLO/HELO argument.
    pub helo: &'a str,
    /// The MAIL FROM address, empty for the null reverse-path.
    pub mail_from: &'a str,
    /// The message as received (CRLF line endings), without our own header fields.
    pub message: &'a [u8],
}

/// Why a message is deferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempCause {
    /// The SPF check of the aligned envelope domain had a DNS error (RFC 7208 §2.6.6).
    Spf,
    /// The aligned DKIM signature's key could not be fetched (RFC 6376 §6.1.2).
    Dkim,
    /// The DMARC policy record could not be fetched (RFC 7489 §6.6.3).
    Dmarc,
    /// The checks took longer than [`DEADLINE`].
    Timeout,
    /// No resolver (see [`super::dns::authenticator`]).
    NoResolver,
}

impl TempCause {
    /// A phrase for the SMTP reply.
    pub fn describe(self) -> &'static str {
        match self {
            TempCause::Spf => "temporary DNS error in the SPF check",
            TempCause::Dkim => "temporary DNS error fetching the DKIM key",
            TempCause::Dmarc => "temporary DNS error fetching the DMARC policy",
            TempCause::Timeout => "sender verification timed out",
            TempCause::NoResolver => "no DNS resolver for sender verification",
        }
    }
}

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver to the INBOX.
    Deliver,
    /// Deliver to Junk: DMARC fail under `p=quarantine` of `domain`.
    Junk {
        /// The `From:` domain whose policy applied.
        domain: String,
    },
    /// Refuse: DMARC fail under `p=reject` of `domain`.
    Reject {
        /// The `From:` domain whose policy applied.
        domain: String,
    },
    /// Try again later: the outcome depends on an answer the DNS did not give.
    Defer(TempCause),
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The whole `Authentication-Results:` field, folded, ending in CRLF (empty when
    /// deferred before any result was known).
    pub header: String,
    /// The decision.
    pub verdict: Verdict,
    /// One line for the log: `spf=... dkim=... arc=... dmarc=...`.
    pub summary: String,
    /// The `From:` domain when DMARC passed (RFC 7489 §3.1 alignment), lower case.
    pub dmarc_pass: Option<String>,
}

impl Verifier {
    /// A verifier resolving through `[dns]`, writing `hostname` as the authserv-id.
    pub fn new(hostname: &str, dns: &DnsConfig) -> Verifier {
        let auth = match super::dns::authenticator(dns) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(error = %e, "no DNS resolver: inbound mail will be deferred");
                None
            }
        };
        Verifier {
            auth,
            hostname: hostname.to_string(),
        }
    }

    /// Our host name, as written in `Authentication-Results`.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Verifies one message, within [`DEADLINE`].
    pub async fn verify(&self, input: &Input<'_>) -> Outcome {
        let Some(auth) = &self.auth else {
            return Outcome::deferred(TempCause::NoResolver);
        };
        match tokio::time::timeout(DEADLINE, self.run(auth, input)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::deferred(TempCause::Timeout),
        }
    }

    async fn run(&self, auth: &MessageAuthenticator, input: &Input<'_>) -> Outcome {
        let host = self.hostname.as_str();
        let ip = input.ip;
        let helo = helo_domain(input.helo);
        let mail_from = input.mail_from;
        let message = AuthenticatedMessage::parse(input.message);

        // An unspecified address: mail pulled from a remote account whose connecting IP is
        // unknown (`crate::fetch`); SPF is `none` and DMARC rests on DKIM.
        let no_ip = ip.is_unspecified();
        // SPF for both identities, DKIM and ARC need only the DNS: ask concurrently.
        let spf_helo = async {
            if no_ip {
                SpfOutput::new(helo.clone()).with_result(SpfResult::None)
            } else {
                auth.verify_spf(SpfParameters::verify_ehlo(ip, &helo, host))
                    .await
            }
        };
        let spf_mail = async {
            if mail_from.is_empty() || no_ip {
                None
            } else {
                Some(
                    auth.verify_spf(SpfParameters::verify_mail_from(ip, &helo, host, mail_from))
                        .await,
                )
            }
        };
        let dkim = async {
            match &message {
                Some(m) => auth.verify_dkim(m).await,
                None => Vec::new(),
            }
        };
        let arc = async {
            match &message {
                Some(m) => Some(auth.verify_arc(m).await),
                None => None,
            }
        };
        let (spf_helo, spf_mail, dkim_raw, arc) = tokio::join!(spf_helo, spf_mail, dkim, arc);
        let dkim: Vec<DkimOutput<'_>> = dkim_raw.iter().map(body_hash_is_fail).collect();

        // RFC 7489 §3.1.2 / RFC 7208 §2.4: with the null reverse-path the HELO result and
        // domain stand for the envelope identity.
        let (spf, spf_domain) = match &spf_mail {
            Some(out) => (out, domain_of(mail_from).unwrap_or(&helo).to_string()),
            None => (&spf_helo, helo.clone()),
        };

        // RFC 8601 §2.2: one resinfo per method, in the order spf, dkim, arc, dmarc.
        let piece = |f: &dyn Fn(AuthenticationResults<'_>) -> AuthenticationResults<'_>| {
            let s = f(AuthenticationResults::new(host)).to_string();
            s.strip_prefix(host).unwrap_or(&s).to_string()
        };
        let mut header = format!("Authentication-Results: {host}");
        if let Some(out) = &spf_mail {
            header.push_str(&piece(&|ar| {
                ar.with_spf_mailfrom_result(out, ip, mail_from, &helo)
            }));
        }
        if no_ip {
            // RFC 8601 §2.7.2: "none", with a comment saying why.
            header.push_str(";\r\n\tspf=none (pulled from a remote account; no client IP)");
        } else {
            header.push_str(&piece(&|ar| ar.with_spf_ehlo_result(&spf_helo, ip, &helo)));
        }
        let mut summary = format!("spf={}", spf_word(spf.result()));

        let from = message
            .as_ref()
            .map(|m| m.from().to_string())
            .unwrap_or_default();
        if dkim.is_empty() {
            // RFC 8601 §2.7.1: "none" when the message is not signed.
            header.push_str(";\r\n\tdkim=none");
            summary.push_str(" dkim=none");
        } else {
            header.push_str(&piece(&|ar| ar.with_dkim_results(&dkim, &from)));
            let words: Vec<&str> = dkim.iter().map(|d| dkim_result_word(d.result())).collect();
            summary.push_str(&format!(" dkim={}", words.join(",")));
        }
        match &arc {
            Some(arc) => {
                header.push_str(&piece(&|ar| ar.with_arc_result(arc, ip)));
                summary.push_str(&format!(" arc={}", dkim_result_word(arc.result())));
            }
            None => {
                header.push_str(";\r\n\tarc=none");
                summary.push_str(" arc=none");
            }
        }

        let mut dmarc_pass = None;
        let verdict = match &message {
            Some(m) => {
                let dmarc = auth
                    .verify_dmarc(DmarcParameters::new(m, &dkim, &spf_domain, spf))
                    .await;
                header.push_str(&piece(&|ar| ar.with_dmarc_result(&dmarc)));
                let result = dmarc.result();
                summary.push_str(&format!(
                    " dmarc={} policy={}",
                    dmarc_result_word(&result),
                    policy_word(dmarc.policy())
                ));
                let from_domain = dmarc.domain().to_string();
                if matches!(result, DmarcResult::Pass) {
                    dmarc_pass = Some(from_domain.to_ascii_lowercase());
                }
                let facts = Facts {
                    result: Res::of(&result),
                    record: dmarc.dmarc_record().is_some(),
                    policy: dmarc.policy(),
                    spf_temp: matches!(dmarc.spf_result(), DmarcResult::TempError(_)),
                    exact_pass: exact_pass(&from_domain, spf, &spf_domain, &dkim),
                };
                decide(&facts, from_domain)
            }
            None => {
                header.push_str(";\r\n\tdmarc=none");
                summary.push_str(" dmarc=none");
                Verdict::Deliver
            }
        };
        header.push_str(input.extra);
        header.push_str("\r\n");
        Outcome {
            header: sanitize_header(header),
            verdict,
            summary,
            dmarc_pass,
        }
    }
}

impl Outcome {
    fn deferred(cause: TempCause) -> Outcome {
        Outcome {
            header: String::new(),
            verdict: Verdict::Defer(cause),
            summary: cause.describe().to_string(),
            dmarc_pass: None,
        }
    }
}

/// The HELO argument as an SPF domain: trimmed, without a trailing dot, lowercase.
fn helo_domain(helo: &str) -> String {
    helo.trim()
        .trim_end_matches('.')
        .chars()
        .take(255)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The domain of an address, if it has one.
fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// RFC 6376 §3.7: a body hash that does not match makes the signature fail (PERMFAIL
/// "body hash did not verify"), which RFC 8601 §2.7.1 records as `dkim=fail`; mail-auth
/// reports it as `neutral`. Every other result is kept. (Only `pass` counts for DMARC, so
/// this changes the record, not the verdict.)
fn body_hash_is_fail<'x>(d: &'x DkimOutput<'_>) -> DkimOutput<'x> {
    let fail = matches!(
        d.result(),
        DkimResult::Neutral(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch))
    );
    if !fail {
        return d.clone();
    }
    let out = DkimOutput::fail(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch));
    match d.signature() {
        Some(sig) => out.with_signature(sig),
        None => out,
    }
}

/// Whether an identifier that passed is identical to the `From:` domain, so DMARC cannot
/// fail whatever the policy record says (RFC 7489 §3.1: an exact match is aligned in both
/// modes). Used only when the record itself could not be fetched.
fn exact_pass(from_domain: &str, spf: &SpfOutput, spf_domain: &str, dkim: &[DkimOutput]) -> bool {
    if from_domain.is_empty() {
        return false;
    }
    let same = |d: &str| d.trim_end_matches('.').eq_ignore_ascii_case(from_domain);
    (spf.result() == SpfResult::Pass && same(spf_domain))
        || dkim
            .iter()
            .any(|d| *d.result() == DkimResult::Pass && d.signature().is_some_and(|s| same(&s.d)))
}

/// The DMARC result, without mail-auth's error detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Pass,
    Fail,
    TempError,
    PermError,
    None,
}

impl Res {
    fn of(r: &DmarcResult) -> Res {
        match r {
            DmarcResult::Pass => Res::Pass,
            DmarcResult::Fail(_) => Res::Fail,
            DmarcResult::TempError(_) => Res::TempError,
            DmarcResult::PermError(_) => Res::PermError,
            DmarcResult::None => Res::None,
        }
    }
}

/// What the decision depends on.
#[derive(Debug, Clone, Copy)]
struct Facts {
    /// The DMARC result.
    result: Res,
    /// Whether a DMARC record was found (a tree walk that failed found none).
    record: bool,
    /// The policy that applies (subdomain policy and `t=y` already applied by mail-auth).
    policy: Policy,
    /// Whether the aligned SPF identity had a temporary error.
    spf_temp: bool,
    /// Whether an identifier identical to the `From:` domain passed.
    exact_pass: bool,
}

/// RFC 7489 §6.6.2 step 6 and §6.6.3, with SPEC §5's actions.
fn decide(f: &Facts, domain: String) -> Verdict {
    let enforced = matches!(f.policy, Policy::Reject | Policy::Quarantine);
    match f.result {
        Res::Pass | Res::None => Verdict::Deliver,
        // The record could not be fetched: the policy is unknown. Only an exact-match pass
        // makes it irrelevant (DMARC would pass, or there is no record at all).
        Res::TempError if !f.record => {
            if f.exact_pass {
                Verdict::Deliver
            } else {
                Verdict::Defer(TempCause::Dmarc)
            }
        }
        // An aligned identifier could not be checked; it matters only under enforcement.
        Res::TempError if enforced => Verdict::Defer(if f.spf_temp {
            TempCause::Spf
        } else {
            TempCause::Dkim
        }),
        Res::TempError => Verdict::Deliver,
        Res::Fail | Res::PermError => match f.policy {
            Policy::Reject => Verdict::Reject { domain },
            Policy::Quarantine => Verdict::Junk { domain },
            Policy::None | Policy::Unspecified => Verdict::Deliver,
        },
    }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_result_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn dmarc_result_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

/// Belt and braces over mail-auth's own quoting: one header field whatever went into it.
/// No bare CR or LF, NUL or other controls; every line after the first starts with a tab
/// (a fold, RFC 5322 §2.2.3), none is empty (which would end the header section), and none
/// is over 998 octets (RFC 5322 §2.1.1). Ends in CRLF.
fn sanitize_header(h: String) -> String {
    let h = h.strip_suffix("\r\n").unwrap_or(&h);
    let mut out = String::with_capacity(h.len() + 2);
    for (i, line) in h.split("\r\n").enumerate() {
        let clean: String = line
            .chars()
            .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
            .collect();
        if i > 0 {
            if clean.trim().is_empty() {
                continue;
            }
            out.push_str("\r\n");
            if !clean.starts_with([' ', '\t']) {
                out.push('\t');
            }
        }
        let mut len = 0;
        for c in clean.chars() {
            len += c.len_utf8();
            if len > 900 {
                break;
            }
            out.push(c);
        }
    }
    out.push_str("\r\n");
    out
}

/// The message without `Authentication-Results` fields whose authserv-id is `hostname`
/// (RFC 8601 §5: a receiver removes results that claim to come from itself, so a sender
/// cannot forge them); `None` when there is none. Only the header section is looked at.
pub fn strip_forged(message: &[u8], hostname: &str) -> Option<Vec<u8>> {
    let header_end = header_section_len(message);
    let head = message.get(..header_end)?;
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    // Split the header section into fields (a field runs until a line that does not start
    // with WSP, RFC 5322 §2.2.3).
    while pos < head.len() {
        let rest = head.get(pos..).unwrap_or_default();
        let line_end = memchr::memchr(b'\n', rest).map_or(head.len(), |i| pos + i + 1);
        let next_is_continuation = head.get(line_end).is_some_and(|&b| b == b' ' || b == b'\t');
        if !next_is_continuation {
            fields.push((start, line_end));
            start = line_end;
        }
        pos = line_end;
    }
    let forged: Vec<(usize, usize)> = fields
        .into_iter()
        .filter(|&(s, e)| claims(head.get(s..e).unwrap_or_default(), hostname))
        .collect();
    if forged.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for (s, e) in forged {
        out.extend_from_slice(message.get(at..s).unwrap_or_default());
        at = e;
    }
    out.extend_from_slice(message.get(at..).unwrap_or_default());
    Some(out)
}

/// The length of the header section including the empty line (or all of `message`).
fn header_section_len(message: &[u8]) -> usize {
    let mut pos = 0;
    while pos < message.len() {
        let rest = message.get(pos..).unwrap_or_default();
        let line_end = memchr::memchr(b'\n', rest).map_or(message.len(), |i| pos + i + 1);
        let line = message.get(pos..line_end).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            return line_end;
        }
        pos = line_end;
    }
    message.len()
}

/// Whether one header field is `Authentication-Results` with `hostname` as authserv-id.
fn claims(field: &[u8], hostname: &str) -> bool {
    let Some(colon) = memchr::memchr(b':', field) else {
        return false;
    };
    let name = field.get(..colon).unwrap_or_default();
    if !name
        .trim_ascii()
        .eq_ignore_ascii_case(b"authentication-results")
    {
        return false;
    }
    let value = String::from_utf8_lossy(field.get(colon + 1..).unwrap_or_default());
    let id = authserv_id(&value);
    id.eq_ignore_ascii_case(hostname) || id.trim_end_matches('.').eq_ignore_ascii_case(hostname)
}

/// The authserv-id of an `Authentication-Results` value (RFC 8601 §2.2): the first value
/// after optional CFWS, a token or a quoted-string.
fn authserv_id(value: &str) -> String {
    let mut chars = value.chars().peekable();
    // Skip CFWS: whitespace and (nested) comments.
    loop {
        match chars.peek() {
            Some(c) if c.is_whitespace() => {
                chars.next();
            }
            Some('(') => {
                let mut depth = 0usize;
                for c in chars.by_ref() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => break,
        }
    }
    let mut id = String::new();
    if chars.peek() == Some(&'"') {
        chars.next();
        let mut escaped = false;
        for c in chars {
            match c {
                _ if escaped => {
                    id.push(c);
                    escaped = false;
                }
                '\\' => escaped = true,
                '"' => break,
                _ => id.push(c),
            }
        }
    } else {
        for c in chars {
            if c.is_whitespace() || c == ';' || c == '(' {
                break;
            }
            id.push(c);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(result: Res, record: bool, policy: Policy) -> Facts {
        Facts {
            result,
            record,
            policy,
            spf_temp: false,
            exact_pass: false,
        }
    }

    fn d() -> String {
        "example.test".into()
    }

    #[test]
    fn dmarc_fail_follows_the_policy() {
        let f = facts(Res::Fail, true, Policy::Reject);
        assert_eq!(decide(&f, d()), Verdict::Reject { domain: d() });
        let f = facts(Res::Fail, true, Policy::Quarantine);
        assert_eq!(decide(&f, d()), Verdict::Junk { domain: d() });
        for p in [Policy::None, Policy::Unspecified] {
            assert_eq!(decide(&facts(Res::Fail, true, p), d()), Verdict::Deliver);
        }
        for p in [Policy::Reject, Policy::Quarantine] {
            assert_eq!(decide(&facts(Res::Pass, true, p), d()), Verdict::Deliver);
        }
        assert_eq!(
            decide(&facts(Res::None, false, Policy::None), d()),
            Verdict::Deliver
        );
    }

    #[test]
    fn dns_errors_that_decide_defer_and_never_pass() {
        // The record could not be fetched.
        let f = facts(Res::TempError, false, Policy::None);
        assert_eq!(decide(&f, d()), Verdict::Defer(TempCause::Dmarc));
        // ... unless an exact-match identifier passed.
        let f = Facts {
            exact_pass: true,
            ..f
        };
        assert_eq!(decide(&f, d()), Verdict::Deliver);
        // The aligned SPF check failed temporarily under an enforcing policy.
        for p in [Policy::Reject, Policy::Quarantine] {
            let f = Facts {
                spf_temp: true,
                ..facts(Res::TempError, true, p)
            };
            assert_eq!(decide(&f, d()), Verdict::Defer(TempCause::Spf));
            let f = facts(Res::TempError, true, p);
            assert_eq!(decide(&f, d()), Verdict::Defer(TempCause::Dkim));
        }
        // Under p=none the outcome is delivery either way.
        let f = facts(Res::TempError, true, Policy::None);
        assert_eq!(decide(&f, d()), Verdict::Deliver);
    }

    #[test]
    fn forged_results_for_our_host_are_removed() {
        let msg = b"Authentication-Results: mx.home.arpa; dkim=pass\r\n\
            Subject: x\r\n\
            authentication-results:\r\n (comment) \"MX.home.arpa\";\r\n\tspf=pass\r\n\
            Authentication-Results: other.example; dkim=pass\r\n\
            Authentication-Results: mx.home.arpa.evil; dkim=pass\r\n\
            \r\n\
            Authentication-Results: mx.home.arpa; in the body\r\n";
        let out = strip_forged(msg, "mx.home.arpa").expect("stripped");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Subject: x\r\n\
             Authentication-Results: other.example; dkim=pass\r\n\
             Authentication-Results: mx.home.arpa.evil; dkim=pass\r\n\
             \r\n\
             Authentication-Results: mx.home.arpa; in the body\r\n"
        );
        assert_eq!(
            strip_forged(b"Subject: x\r\n\r\nbody\r\n", "mx.home.arpa"),
            None
        );
        assert_eq!(strip_forged(b"", "h"), None);
        assert_eq!(strip_forged(b"Authentication-Results", "h"), None);
        // A version after the id, and a header without a body.
        let out = strip_forged(b"Authentication-Results: h 1; none\r\nA: b", "h").unwrap();
        assert_eq!(out, b"A: b".to_vec());
    }

    #[test]
    fn authserv_ids() {
        assert_eq!(authserv_id(" mx.example; spf=pass"), "mx.example");
        assert_eq!(authserv_id("(c (nested)) mx.example 1; none"), "mx.example");
        assert_eq!(authserv_id(" \"mx\\\".example\"; none"), "mx\".example");
        assert_eq!(authserv_id(""), "");
        assert_eq!(authserv_id("(unclosed"), "");
    }

    #[test]
    fn header_is_one_safe_field() {
        let h = sanitize_header("A-R: x;\r\n\ty\u{0}z\rw\r\n".into());
        assert_eq!(h, "A-R: x;\r\n\ty z w\r\n");
        // An injected line becomes a fold; an empty line cannot end the header section.
        let h = sanitize_header("A-R: x;\r\nX-Evil: 1\r\n\r\n \r\nbody".into());
        assert_eq!(h, "A-R: x;\r\n\tX-Evil: 1\r\n\tbody\r\n");
        let long = format!("A-R: {}\r\n", "a".repeat(5000));
        assert!(sanitize_header(long).len() < 1000);
    }

    #[test]
    fn helo_domains() {
        assert_eq!(helo_domain(" Mail.Example.TEST. "), "mail.example.test");
        assert_eq!(domain_of("a@b.test"), Some("b.test"));
        assert_eq!(domain_of("a@"), None);
        assert_eq!(domain_of(""), None);
    }

    #[tokio::test]
    async fn no_resolver_defers() {
        let v = Verifier {
            auth: None,
            hostname: "mx.test".into(),
        };
        let input = Input {
            ip: "192.0.2.1".parse().unwrap(),
            helo: "client.test",
            mail_from: "a@b.test",
            message: b"From: a@b.test\r\n\r\nx\r\n",
            extra: "",
        };
        let o = v.verify(&input).await;
        assert_eq!(o.verdict, Verdict::Defer(TempCause::NoResolver));
        assert!(o.header.is_empty());
    }
}
