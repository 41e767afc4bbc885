//! The paths of the web listeners and their handlers (axum). HTTP serves only what must be
//! reachable in plain HTTP (client autoconfiguration) and redirects everything else to
//! HTTPS; HTTPS adds the public page, its stylesheet, the certificate download and the
//! Apple profiles. `/.well-known/acme-challenge/` belongs to the certificate side.
//!
//! Every path parameter and query value that names an account goes through
//! [`check_address`] (no `/`, `\`, `..` runs, markup or control characters) and must be at
//! one of `[server] domains`; no handler touches the store except through the `status`
//! control request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::Inner;
use super::autoconfig::{self, ClientSettings, ProfileCert, check_address};
use super::page;
use crate::control::{self, Request};

/// The largest request body read (an Autodiscover request is about 400 bytes).
pub const MAX_BODY: usize = autoconfig::MAX_AUTODISCOVER_REQUEST;
/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

type Shared = State<Arc<Inner>>;

/// The routes of one listener.
pub(crate) fn router(inner: Arc<Inner>, https: bool) -> Router {
    let mut r = Router::new()
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird),
        )
        .route(
            "/autodiscover/autodiscover.xml",
            get(autodiscover_get).post(autodiscover_post),
        )
        .route(
            "/Autodiscover/Autodiscover.xml",
            get(autodiscover_get).post(autodiscover_post),
        )
        .route("/.well-known/acme-challenge/{token}", get(acme_http01));
    r = if https {
        r.route("/", get(index))
            .route("/style.css", get(style))
            .route("/ca.crt", get(ca_der))
            .route("/ca.pem", get(ca_pem))
            .route("/apple", get(apple_query))
            .route("/apple/{address}", get(apple_path))
            .fallback(not_found)
    } else {
        r.fallback(redirect)
    };
    r.layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(inner)
}

/// Headers on every answer: the strict CSP ([`page::CSP`]), no MIME sniffing, no referrer,
/// no framing.
async fn common_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(page::CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn xml(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// ACME http-01 (RFC 8555 §8.3): the key authorization of a pending challenge, as
/// `application/octet-stream`, on plain HTTP (where the CA asks) and HTTPS. Tokens are
/// base64url (§8.1); anything else is 404 without a lookup.
async fn acme_http01(State(i): Shared, Path(token): Path<String>) -> Response {
    let well_formed = !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match well_formed
        .then(|| i.tls.challenges().http01(&token))
        .flatten()
    {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => not_found().await,
    }
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found")
}

fn settings(i: &Inner) -> ClientSettings {
    let cfg = &i.ctx.config;
    ClientSettings::from_config(cfg, &crate::app::client_host(cfg))
}

/// Checks a client-given address: plausible, and at one of our domains.
fn our_address(i: &Inner, raw: &str) -> Result<String, Response> {
    let a = check_address(raw).map_err(|e| text(StatusCode::BAD_REQUEST, e))?;
    let domain = a.rsplit_once('@').map_or("", |(_, d)| d);
    if !i.ctx.config.is_local_domain(domain) {
        return Err(text(
            StatusCode::NOT_FOUND,
            format!("{domain} is not a domain of this server"),
        ));
    }
    Ok(a)
}

/// Thunderbird's autoconfig; `?emailaddress=` (sent by Thunderbird) must be at one of ours.
async fn thunderbird(State(i): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(a) = q.get("emailaddress")
        && let Err(r) = our_address(&i, a)
    {
        return r;
    }
    xml(autoconfig::thunderbird(&settings(&i)))
}

/// Autodiscover by GET (`?email=` or `?emailaddress=`, optional).
async fn autodiscover_get(State(i): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let address = match q.get("email").or_else(|| q.get("emailaddress")) {
        Some(a) => match our_address(&i, a) {
            Ok(a) => Some(a),
            Err(r) => return r,
        },
        None => None,
    };
    xml(autoconfig::autodiscover(&settings(&i), address.as_deref()))
}

/// Autodiscover by POST with the request XML ([MS-OXDSCLI] §2.2.3), body bounded in size
/// and time.
async fn autodiscover_post(State(i): Shared, body: Body) -> Response {
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY} bytes, or cut off"),
            );
        }
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "request body too slow"),
    };
    let address = match autoconfig::parse_autodiscover_request(&bytes) {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match our_address(&i, &address) {
        Ok(a) => xml(autoconfig::autodiscover(&settings(&i), Some(&a))),
        Err(r) => r,
    }
}

/// Everything else on HTTP: a permanent redirect to the same path on HTTPS, at the host
/// the client asked for (when it is a plain host name or address).
async fn redirect(State(i): Shared, headers: HeaderMap, uri: Uri) -> Response {
    let Some(https) = i.ctx.config.listen.https else {
        return text(StatusCode::NOT_FOUND, "not found (HTTPS is off)");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_of)
        .unwrap_or_else(|| crate::app::client_host(&i.ctx.config));
    let port = match https.port() {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => text(StatusCode::BAD_REQUEST, "bad request target"),
    }
}

/// The host part of a `Host` header (without the port), when it is a DNS name or an IP
/// address literal; anything else is ignored.
fn host_of(h: &str) -> Option<String> {
    let host = if let Some(rest) = h.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(format!("[{v6}]"));
    } else {
        h.rsplit_once(':').map_or(h, |(host, _)| host)
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then(|| host.to_ascii_lowercase())
}

/// The public page: built from `status`, as `letterbox status` gets it.
async fn index(State(i): Shared) -> Response {
    let ctx = i.ctx.clone();
    let status = tokio::task::spawn_blocking(move || control::handle(&ctx, Request::Status))
        .await
        .map(|r| r.data)
        .unwrap_or_default();
    let cfg = &i.ctx.config;
    let data = page::PageData {
        hostname: cfg.server.hostname.clone(),
        leds: page::led_lines(&status),
        services: page::service_rows(cfg, &status),
        cert: i.tls.fingerprint().map(|sha256| page::CertInfo {
            sha256,
            not_after: i.tls.not_after().ok(),
            ca_sha256: i.tls.ca_fingerprint(),
        }),
        settings: settings(&i),
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page::render(&data),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        page::STYLE,
    )
        .into_response()
}

/// What a device must trust: the household CA when it issued the certificate, otherwise
/// the first certificate of the certificate file in use.
fn trust_cert(i: &Inner) -> Option<Vec<u8>> {
    if let Some(ca) = i.tls.ca_der() {
        return Some(ca);
    }
    let der = CertificateDer::pem_file_iter(i.tls.cert_path())
        .ok()?
        .next()?
        .ok()?;
    Some(der.as_ref().to_vec())
}

async fn ca_der(State(i): Shared) -> Response {
    match trust_cert(&i) {
        Some(der) => (
            [
                (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"letterbox.crt\"",
                ),
            ],
            der,
        )
            .into_response(),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "certificate not readable"),
    }
}

async fn ca_pem(State(i): Shared) -> Response {
    use base64::Engine;
    match trust_cert(&i) {
        Some(der) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap_or(""));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            (
                [
                    (header::CONTENT_TYPE, "application/x-pem-file"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"letterbox.pem\"",
                    ),
                ],
                pem,
            )
                .into_response()
        }
        None => text(StatusCode::SERVICE_UNAVAILABLE, "certificate not readable"),
    }
}

fn apple(i: &Inner, raw: &str) -> Response {
    let address = match our_address(i, raw) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cert = trust_cert(i).map(|der| ProfileCert {
        der,
        root: i.tls.is_household(),
    });
    (
        [
            (header::CONTENT_TYPE, "application/x-apple-aspen-config"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"letterbox.mobileconfig\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        autoconfig::mobileconfig(&settings(i), &address, cert.as_ref()),
    )
        .into_response()
}

/// `/apple?address=` (the page's form).
async fn apple_query(State(i): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    apple(&i, q.get("address").map_or("", String::as_str))
}

/// `/apple/<address>` (a link to share).
async fn apple_path(State(i): Shared, Path(address): Path<String>) -> Response {
    apple(&i, &address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_forms() {
        assert_eq!(host_of("Box.Local:2080").as_deref(), Some("box.local"));
        assert_eq!(host_of("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:80").as_deref(), Some("[::1]"));
        for bad in ["", "a/b", "evil.com/x?", "[zz]", "a b", "x@y"] {
            assert_eq!(host_of(bad), None, "{bad:?}");
        }
    }
}
