//! Delivery of one queued message over SMTP, behind the [`Transport`] trait (habit 10).
//! The SMTP client is mail-send's `SmtpClient` (its reply parser, dot-stuffing, STARTTLS
//! and AUTH); the policy around it is here.
//!
//! # Direct delivery (no `[relay]`)
//! Recipients are grouped by domain; one connection per domain carries all of its
//! recipients. For each domain (RFC 5321 §5.1): the MX records through `[dns]
//! nameservers`, tried in preference order (equal preferences in random order); no MX →
//! the domain's own A/AAAA records; a null MX (`MX 0 .`, RFC 7505 §3) or a domain that does
//! not exist → a permanent failure without connecting. Each address of each host is tried
//! until one server completes the greeting and EHLO; a host that cannot be reached, does
//! not greet with 2xx, or fails TLS is skipped.
//!
//! STARTTLS is used whenever the server offers it (opportunistic TLS, RFC 3207). The
//! certificate is *not* verified on direct MX delivery: MX host names come from unsigned
//! DNS and most MX certificates would not match them anyway, so verification would buy
//! no security without DANE or MTA-STS (RFC 7672, RFC 8461; not implemented), while
//! refusing would lose mail. TLS still protects against passive eavesdropping. If the
//! TLS handshake fails, the same address is retried once in clear (as Postfix's
//! `smtp_tls_security_level = may` does).
//!
//! # Relay (`[relay]`)
//! Every recipient goes to `host:port` in one transaction. `security = "tls"` is TLS
//! from the first byte; `"starttls"` requires STARTTLS: a relay that does not offer it is
//! a temporary failure, and AUTH is never sent outside TLS. The relay's certificate is
//! verified against the system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` add
//! roots). The password is read from `password_file` at each connection, trimmed.
//!
//! # Outcomes
//! Per recipient: the remote's 2xx after DATA is delivered; a 5xx to MAIL, RCPT or DATA is
//! permanent, with the reply text; anything else (4xx, timeouts, garbage, a connection
//! dropped mid-DATA) is temporary. Every connect and every reply is bounded by `[queue]
//! timeout` (the end of DATA by twice that), as RFC 5321 §4.5.3.2 asks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mail_send::SmtpClient;
use rand::seq::SliceRandom;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use smtp_proto::{EXT_START_TLS, EhloResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::dns::{BoxFuture, DnsError, Mx, MxResolver};
use crate::config::{Config, RelayConfig, RelaySecurity};

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the remote (its reply).
    Delivered(String),
    /// Try again later (the reason).
    Temporary(String),
    /// Give up (the remote's reply, or our reason).
    Permanent(String),
}

/// One delivery: the message (already signed) and the recipients still pending.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Envelope sender (`""` for a bounce).
    pub mail_from: String,
    /// Recipients to attempt.
    pub rcpts: Vec<String>,
    /// The message bytes.
    pub message: Arc<Vec<u8>>,
}

/// Sends envelopes somewhere; the outcomes are in the order of `env.rcpts`.
pub trait Transport: Send + Sync {
    /// Delivers `env`, never failing as a whole: every recipient gets an outcome.
    fn send<'a>(&'a self, env: &'a Envelope) -> BoxFuture<'a, Vec<Outcome>>;
}

/// The SMTP transport: direct to each MX, or through the relay.
pub struct SmtpTransport {
    resolver: Arc<dyn MxResolver>,
    relay: Option<RelayConfig>,
    helo: String,
    timeout: Duration,
    mx_port: u16,
    /// No certificate verification: direct MX (see the module doc).
    opportunistic: TlsConnector,
    /// Verifying connector for the relay.
    verified: TlsConnector,
}

/// Why a host could not be used before MAIL FROM: the next host is tried.
#[derive(Debug)]
struct HostError {
    message: String,
    /// The TLS handshake failed: the same address may be tried in clear.
    tls: bool,
    /// A permanent refusal (5xx greeting or EHLO/HELO).
    permanent: bool,
}

impl HostError {
    fn temp(message: impl Into<String>) -> HostError {
        HostError {
            message: message.into(),
            tls: false,
            permanent: false,
        }
    }
}

/// How TLS is used on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// STARTTLS if offered, certificate not verified (direct MX).
    Opportunistic,
    /// Direct MX in clear after a failed handshake.
    Clear,
    /// STARTTLS required and verified (relay, `starttls`).
    RequireStartTls,
    /// TLS from the first byte, verified (relay, `tls`).
    Implicit,
    /// No TLS (relay, `none`).
    None,
}

fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl SmtpTransport {
    /// The transport for `config`: relay when `[relay]` is set, else direct.
    pub fn new(config: &Config, resolver: Arc<dyn MxResolver>) -> Result<SmtpTransport, String> {
        let provider = ring();
        let opportunistic = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
            .with_no_client_auth();
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| format!("trust store: {e}"))?;
        let verified = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(SmtpTransport {
            resolver,
            relay: config.relay.clone(),
            helo: config.server.hostname.clone(),
            timeout: config.queue.timeout,
            mx_port: config.queue.mx_port,
            opportunistic: TlsConnector::from(Arc::new(opportunistic)),
            verified: TlsConnector::from(Arc::new(verified)),
        })
    }

    /// Connecting gets at most 30 s (Postfix's `smtp_connect_timeout`), so that a
    /// black-holed MX host does not hold up the others for minutes.
    fn connect_timeout(&self) -> Duration {
        self.timeout.min(Duration::from_secs(30))
    }

    async fn send_all(&self, env: &Envelope) -> Vec<Outcome> {
        let all: Vec<usize> = (0..env.rcpts.len()).collect();
        let mut out = vec![Outcome::Temporary("not attempted".into()); env.rcpts.len()];
        if let Some(relay) = &self.relay {
            for (i, o) in self.via_relay(relay, env, &all).await {
                out[i] = o;
            }
            return out;
        }
        // Group by domain; each domain is one connection.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, r) in env.rcpts.iter().enumerate() {
            let domain = r
                .rsplit_once('@')
                .map(|(_, d)| d.trim_matches(['[', ']']).to_ascii_lowercase())
                .unwrap_or_default();
            match groups.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, v)) => v.push(i),
                None => groups.push((domain, vec![i])),
            }
        }
        for (domain, idx) in &groups {
            for (i, o) in self.to_domain(domain, env, idx).await {
                out[i] = o;
            }
        }
        out
    }

    async fn via_relay(
        &self,
        relay: &RelayConfig,
        env: &Envelope,
        idx: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let temp = |m: String| {
            idx.iter()
                .map(|&i| (i, Outcome::Temporary(m.clone())))
                .collect()
        };
        let creds = match (&relay.username, &relay.password_file) {
            (Some(u), Some(p)) => match tokio::fs::read_to_string(p).await {
                Ok(pw) => Some((u.clone(), pw.trim().to_string())),
                Err(e) => {
                    return temp(format!(
                        "cannot read relay password file {}: {e}",
                        p.display()
                    ));
                }
            },
            _ => None,
        };
        let mode = match relay.security {
            RelaySecurity::StartTls => TlsMode::RequireStartTls,
            RelaySecurity::Tls => TlsMode::Implicit,
            RelaySecurity::None => TlsMode::None,
        };
        let ips = match self.resolver.ips(&relay.host).await {
            Ok(ips) if !ips.is_empty() => ips,
            Ok(_) => return temp(format!("relay {}: no address", relay.host)),
            Err(e) => return temp(format!("relay {}: {e}", relay.host)),
        };
        let mut last = String::from("relay unreachable");
        for ip in ips {
            let addr = SocketAddr::new(ip, relay.port);
            match self
                .session(addr, &relay.host, mode, creds.as_ref(), env, idx)
                .await
            {
                Ok(r) => return r,
                Err(e) => last = format!("relay {} ({addr}): {}", relay.host, e.message),
            }
        }
        temp(last)
    }

    async fn to_domain(
        &self,
        domain: &str,
        env: &Envelope,
        idx: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let all = |o: Outcome| idx.iter().map(|&i| (i, o.clone())).collect::<Vec<_>>();
        if domain.is_empty() {
            return all(Outcome::Permanent(
                "501 5.1.3 bad recipient address syntax".into(),
            ));
        }
        // An address literal (`user@[192.0.2.1]`) names the host itself (RFC 5321 §4.1.3).
        let hosts: Vec<String> = if let Ok(ip) = domain.parse::<IpAddr>() {
            vec![ip.to_string()]
        } else {
            match self.resolver.mx(domain).await {
                Ok(Mx::Null) => {
                    // RFC 7505 §4.1: the sender should not even try; 556 5.1.10.
                    return all(Outcome::Permanent(format!(
                        "556 5.1.10 {domain} accepts no mail (null MX, RFC 7505)"
                    )));
                }
                Ok(Mx::Implicit) => vec![domain.to_string()],
                Ok(Mx::Hosts(mut hosts)) => {
                    order_mx(&mut hosts);
                    hosts.into_iter().map(|(_, h)| h).collect()
                }
                Err(DnsError::NotFound(m)) => {
                    return all(Outcome::Permanent(format!("550 5.1.2 {m}")));
                }
                Err(DnsError::Temporary(m)) => return all(Outcome::Temporary(m)),
            }
        };
        let mut last = format!("{domain}: no mail server reachable");
        let mut permanent = false;
        for host in hosts.iter().take(10) {
            let ips = match self.resolver.ips(host).await {
                Ok(ips) => ips,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            if ips.is_empty() {
                last = format!("{host}: no address records");
                continue;
            }
            for ip in ips.into_iter().take(4) {
                let addr = SocketAddr::new(ip, self.mx_port);
                let mut mode = TlsMode::Opportunistic;
                loop {
                    match self.session(addr, host, mode, None, env, idx).await {
                        Ok(r) => return r,
                        Err(e) if e.tls && mode == TlsMode::Opportunistic => {
                            tracing::info!(host, %addr, error = %e.message, "TLS failed; retrying in clear");
                            mode = TlsMode::Clear;
                        }
                        Err(e) => {
                            last = format!("{host} ({addr}): {}", e.message);
                            permanent = e.permanent;
                            break;
                        }
                    }
                }
            }
        }
        // Every host refused at greeting with 5xx: RFC 5321 §3.1 554 means "no SMTP service
        // here", still worth a retry with other hosts later; only a single refusing host
        // makes it permanent.
        if permanent && hosts.len() == 1 {
            all(Outcome::Permanent(last))
        } else {
            all(Outcome::Temporary(last))
        }
    }

    /// One SMTP connection: greeting, EHLO, TLS, AUTH, then the transaction.
    async fn session(
        &self,
        addr: SocketAddr,
        host: &str,
        mode: TlsMode,
        creds: Option<&(String, String)>,
        env: &Envelope,
        idx: &[usize],
    ) -> Result<Vec<(usize, Outcome)>, HostError> {
        let tcp = match tokio::time::timeout(self.connect_timeout(), TcpStream::connect(addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(HostError::temp(format!("connect: {e}"))),
            Err(_) => return Err(HostError::temp("connect: timed out")),
        };
        let _ = tcp.set_nodelay(true);
        let mut client = SmtpClient {
            stream: tcp,
            timeout: self.timeout,
        };
        if mode == TlsMode::Implicit {
            let mut client = self.tls(client, host, true).await?;
            self.greeting(&mut client).await?;
            let caps = self.ehlo(&mut client).await?;
            return self.authed(client, caps, creds, env, idx).await;
        }
        self.greeting(&mut client).await?;
        let caps = self.ehlo(&mut client).await?;
        let offers_tls = caps.has_capability(EXT_START_TLS);
        match mode {
            TlsMode::Opportunistic | TlsMode::RequireStartTls if offers_tls => {
                let verify = mode == TlsMode::RequireStartTls;
                match client.cmd(b"STARTTLS\r\n").await {
                    Ok(r) if r.code == 220 => {}
                    Ok(r) => {
                        return Err(HostError {
                            message: format!("STARTTLS refused: {}", reply_text(&r)),
                            tls: true,
                            permanent: false,
                        });
                    }
                    Err(e) => return Err(HostError::temp(format!("STARTTLS: {e}"))),
                }
                let mut client = self.tls(client, host, verify).await?;
                let caps = self.ehlo(&mut client).await?;
                self.authed(client, caps, creds, env, idx).await
            }
            TlsMode::RequireStartTls => {
                let _ = tokio::time::timeout(self.timeout, client.quit()).await;
                Err(HostError::temp(
                    "the relay does not offer STARTTLS; not sending credentials or mail in clear",
                ))
            }
            _ => {
                // Never AUTH in clear (config refuses credentials with security = "none").
                self.authed(client, caps, None, env, idx).await
            }
        }
    }

    async fn tls(
        &self,
        client: SmtpClient<TcpStream>,
        host: &str,
        verify: bool,
    ) -> Result<SmtpClient<tokio_rustls::client::TlsStream<TcpStream>>, HostError> {
        let connector = if verify {
            &self.verified
        } else {
            &self.opportunistic
        };
        let name = host.trim_end_matches('.');
        if ServerName::try_from(name.to_string()).is_err() {
            return Err(HostError::temp(format!(
                "{name}: not a valid TLS server name"
            )));
        }
        client
            .into_tls(connector, name)
            .await
            .map_err(|e| HostError {
                message: format!("TLS handshake: {e}"),
                tls: true,
                permanent: false,
            })
    }

    async fn greeting<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<(), HostError> {
        let r = match tokio::time::timeout(self.timeout, client.read()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(HostError::temp(format!("greeting: {e}"))),
            Err(_) => return Err(HostError::temp("greeting: timed out")),
        };
        match r.code {
            200..=299 => Ok(()),
            500..=599 => Err(HostError {
                message: format!("greeting: {}", reply_text(&r)),
                tls: false,
                permanent: true,
            }),
            _ => Err(HostError::temp(format!("greeting: {}", reply_text(&r)))),
        }
    }

    /// EHLO, falling back to HELO when EHLO is refused (RFC 5321 §4.1.1.1).
    async fn ehlo<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
    ) -> Result<EhloResponse<String>, HostError> {
        match client.ehlo(&self.helo).await {
            Ok(caps) => Ok(caps),
            Err(mail_send::Error::UnexpectedReply(r)) if r.code >= 500 => {
                match client.cmd(format!("HELO {}\r\n", self.helo)).await {
                    Ok(r) if (200..300).contains(&r.code) => Ok(EhloResponse::default()),
                    Ok(r) => Err(HostError {
                        message: format!("HELO: {}", reply_text(&r)),
                        tls: false,
                        permanent: r.code >= 500,
                    }),
                    Err(e) => Err(HostError::temp(format!("HELO: {e}"))),
                }
            }
            Err(e) => Err(HostError::temp(format!("EHLO: {}", error_text(&e)))),
        }
    }

    /// AUTH (only ever called on a TLS connection with credentials), then the transaction.
    async fn authed<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut client: SmtpClient<T>,
        caps: EhloResponse<String>,
        creds: Option<&(String, String)>,
        env: &Envelope,
        idx: &[usize],
    ) -> Result<Vec<(usize, Outcome)>, HostError> {
        if let Some((user, pass)) = creds {
            let c = mail_send::Credentials::new(user.as_str(), pass.as_str());
            if let Err(e) = client.authenticate(&c, &caps).await {
                return Err(HostError::temp(format!("AUTH: {}", error_text(&e))));
            }
        }
        let out = self.transaction(&mut client, env, idx).await;
        let _ = tokio::time::timeout(self.timeout, client.quit()).await;
        Ok(out)
    }

    /// MAIL, RCPT for each recipient, DATA. Outcomes per recipient.
    async fn transaction<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: &mut SmtpClient<T>,
        env: &Envelope,
        idx: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let all = |o: Outcome| idx.iter().map(|&i| (i, o.clone())).collect::<Vec<_>>();
        match client
            .cmd(format!("MAIL FROM:<{}>\r\n", env.mail_from))
            .await
        {
            Ok(r) if (200..300).contains(&r.code) => {}
            Ok(r) => return all(classify(&r)),
            Err(e) => return all(Outcome::Temporary(format!("MAIL FROM: {}", error_text(&e)))),
        }
        let mut results: Vec<(usize, Outcome)> = Vec::with_capacity(idx.len());
        let mut accepted = Vec::new();
        for &i in idx {
            let rcpt = &env.rcpts[i];
            match client.cmd(format!("RCPT TO:<{rcpt}>\r\n")).await {
                Ok(r) if (200..300).contains(&r.code) => accepted.push(i),
                Ok(r) => results.push((i, classify(&r))),
                Err(e) => {
                    // The connection is gone: everything not yet answered is temporary.
                    let m = format!("RCPT TO: {}", error_text(&e));
                    for &j in idx {
                        if !results.iter().any(|(k, _)| *k == j) {
                            results.push((j, Outcome::Temporary(m.clone())));
                        }
                    }
                    return results;
                }
            }
        }
        if accepted.is_empty() {
            let _ = client.rset().await;
            return results;
        }
        let data_reply = match client.cmd(b"DATA\r\n").await {
            Ok(r) if r.code == 354 => {
                // RFC 5321 §4.5.3.2.6: the end of data may take up to 10 minutes.
                match tokio::time::timeout(self.timeout.saturating_mul(2), async {
                    client
                        .write_message(&env.message)
                        .await
                        .map_err(mail_send::Error::Io)?;
                    client.read().await
                })
                .await
                {
                    Ok(Ok(r)) => classify_final(&r),
                    Ok(Err(e)) => Outcome::Temporary(format!("during DATA: {}", error_text(&e))),
                    Err(_) => Outcome::Temporary("during DATA: timed out".into()),
                }
            }
            Ok(r) => classify(&r),
            Err(e) => Outcome::Temporary(format!("DATA: {}", error_text(&e))),
        };
        for i in accepted {
            results.push((i, data_reply.clone()));
        }
        results
    }
}

/// Sorts MX hosts by preference, shuffling hosts of equal preference (RFC 5321 §5.1).
fn order_mx(hosts: &mut [(u16, String)]) {
    hosts.shuffle(&mut rand::thread_rng());
    hosts.sort_by_key(|(p, _)| *p);
}

/// `code esc text` on one line.
fn reply_text(r: &Response<String>) -> String {
    let text: String = r
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    if r.esc[0] != 0 {
        format!("{} {}.{}.{} {}", r.code, r.esc[0], r.esc[1], r.esc[2], text)
    } else {
        format!("{} {}", r.code, text)
    }
}

fn error_text(e: &mail_send::Error) -> String {
    match e {
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
            reply_text(r)
        }
        mail_send::Error::UnparseableReply => "unparseable reply or connection closed".into(),
        mail_send::Error::Timeout => "timed out".into(),
        e => e.to_string(),
    }
}

/// A reply to MAIL, RCPT or DATA that is not 2xx/354: 5xx permanent, anything else temporary.
fn classify(r: &Response<String>) -> Outcome {
    if (500..600).contains(&r.code) {
        Outcome::Permanent(reply_text(r))
    } else {
        Outcome::Temporary(reply_text(r))
    }
}

/// The reply after the end of DATA.
fn classify_final(r: &Response<String>) -> Outcome {
    if (200..300).contains(&r.code) {
        Outcome::Delivered(reply_text(r))
    } else {
        classify(r)
    }
}

impl Transport for SmtpTransport {
    fn send<'a>(&'a self, env: &'a Envelope) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(self.send_all(env))
    }
}

/// Accepts any certificate but still checks the handshake signatures: opportunistic TLS
/// for direct MX delivery (see the module doc).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// How the fake receiving server misbehaves.
    #[derive(Clone, Copy, PartialEq)]
    enum Fake {
        /// Answers properly; RCPT to an address containing "bad" gets 550.
        Good,
        /// Greets with noise.
        Garbage,
        /// Accepts the connection and says nothing.
        Stall,
        /// Closes the connection in the middle of the message data.
        DropMidData,
        /// Never answers the end of data.
        StallAfterData,
    }

    async fn fake_server(mode: Fake) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    match mode {
                        Fake::Garbage => {
                            let _ = w.write_all(b"\x00\xffHELLO THERE\r\nxyz\r\n").await;
                        }
                        Fake::Stall => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        _ => {
                            let _ = w.write_all(b"220 fake ESMTP\r\n").await;
                        }
                    }
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let up = line.to_ascii_uppercase();
                        let reply: &[u8] = if up.starts_with("EHLO") {
                            b"250-fake\r\n250 8BITMIME\r\n"
                        } else if up.starts_with("RCPT") && up.contains("BAD") {
                            b"550 5.1.1 no such user here\r\n"
                        } else if up.starts_with("DATA") {
                            let _ = w.write_all(b"354 go ahead\r\n").await;
                            if mode == Fake::DropMidData {
                                let mut buf = [0u8; 8];
                                let _ = tokio::io::AsyncReadExt::read(&mut r, &mut buf).await;
                                return;
                            }
                            loop {
                                line.clear();
                                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                            }
                            if mode == Fake::StallAfterData {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                            b"250 2.0.0 accepted\r\n"
                        } else if up.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        if w.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    /// Every domain's MX is `mx.test` at 127.0.0.1 (habit 10: a seeded resolver).
    struct Seeded;

    impl MxResolver for Seeded {
        fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Mx, DnsError>> {
            Box::pin(async move {
                match domain {
                    "nx.test" => Err(DnsError::NotFound("nx.test: no such domain".into())),
                    "servfail.test" => Err(DnsError::Temporary("servfail".into())),
                    _ => Ok(Mx::Hosts(vec![(10, "mx.test".into())])),
                }
            })
        }
        fn ips<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, DnsError>> {
            Box::pin(async { Ok(vec![IpAddr::from([127, 0, 0, 1])]) })
        }
    }

    async fn send(mode: Fake, rcpts: &[&str]) -> Vec<Outcome> {
        let port = fake_server(mode).await;
        let mut cfg = Config::defaults();
        cfg.queue.mx_port = port;
        cfg.queue.timeout = Duration::from_millis(500);
        let t = SmtpTransport::new(&cfg, Arc::new(Seeded)).unwrap();
        let env = Envelope {
            mail_from: "a@home.arpa".into(),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
            message: Arc::new(b"Subject: x\r\n\r\nbody\r\n".to_vec()),
        };
        tokio::time::timeout(Duration::from_secs(20), t.send(&env))
            .await
            .expect("bounded")
    }

    fn is_temp(o: &Outcome) -> bool {
        matches!(o, Outcome::Temporary(_))
    }

    #[tokio::test]
    async fn per_recipient_outcomes() {
        let got = send(
            Fake::Good,
            &["ok@x.test", "bad@x.test", "a@nx.test", "b@servfail.test"],
        )
        .await;
        assert!(
            matches!(&got[0], Outcome::Delivered(r) if r.starts_with("250 2.0.0")),
            "{got:?}"
        );
        assert_eq!(
            got[1],
            Outcome::Permanent("550 5.1.1 no such user here".into())
        );
        assert!(
            matches!(&got[2], Outcome::Permanent(r) if r.starts_with("550 5.1.2")),
            "{got:?}"
        );
        assert!(is_temp(&got[3]), "{got:?}");
    }

    #[tokio::test]
    async fn misbehaving_servers_are_temporary_failures() {
        for mode in [
            Fake::Garbage,
            Fake::Stall,
            Fake::DropMidData,
            Fake::StallAfterData,
        ] {
            let got = send(mode, &["ok@x.test"]).await;
            assert!(is_temp(&got[0]), "{got:?}");
        }
    }

    fn resp(code: u16, esc: [u8; 3], m: &str) -> Response<String> {
        Response {
            code,
            esc,
            message: m.into(),
        }
    }

    #[test]
    fn replies_are_classified() {
        assert_eq!(
            classify(&resp(550, [5, 1, 1], "no such user")),
            Outcome::Permanent("550 5.1.1 no such user".into())
        );
        assert_eq!(
            classify(&resp(451, [0, 0, 0], "later\r\nplease")),
            Outcome::Temporary("451 later  please".into())
        );
        assert_eq!(
            classify_final(&resp(250, [2, 0, 0], "ok")),
            Outcome::Delivered("250 2.0.0 ok".into())
        );
    }

    #[test]
    fn mx_order_by_preference() {
        let mut h = vec![
            (20, "b".to_string()),
            (10, "a".to_string()),
            (30, "c".to_string()),
        ];
        order_mx(&mut h);
        assert_eq!(
            h.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
