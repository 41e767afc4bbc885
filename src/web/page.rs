//! The public page at `/` (HTTPS), as pure functions: [`PageData`] is made from the same
//! `status` answer the CLI prints ([`crate::control::Request::Status`]) and the
//! configuration, and [`render`] turns it into HTML. No script at all, one stylesheet
//! ([`STYLE`], served as `/style.css` so that the Content-Security-Policy needs no
//! `'unsafe-inline'`), readable on a phone (viewport meta, one column).
//!
//! Nothing about any account's mail is shown: the status answer's quotas and store figures
//! are not read, and fault details (which can name an account or a remote server) are
//! dropped; only what each LED says stays.

use super::autoconfig::{ClientSettings, Security, xml_escape};
use crate::config::Config;

/// The stylesheet of the page.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:40em;padding:1em;line-height:1.4;color:#222;background:#fafafa}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25em .5em .25em 0;vertical-align:top}\
.up{color:#070}.down{color:#a00}.off{color:#777}code{word-break:break-all;font-size:.9em}\
input{font-size:1em;padding:.3em;max-width:100%}button{font-size:1em;padding:.3em .8em}\
ul{padding-left:1.2em}";

/// The Content-Security-Policy of every HTML answer: nothing but our own stylesheet, no
/// script at all, no framing, forms only to ourselves.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// One service line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// `[listen]` key.
    pub name: &'static str,
    /// The configured address, `None` when disabled.
    pub addr: Option<String>,
    /// Listening now.
    pub up: bool,
}

/// The certificate clients see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 fingerprint, colon-separated hex.
    pub sha256: String,
    /// Not-after, unix seconds.
    pub not_after: Option<i64>,
    /// SHA-256 fingerprint of the household CA, when it issued the certificate (a device
    /// installs the CA once; renewals then need nothing).
    pub ca_sha256: Option<String>,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageData {
    /// `[server] hostname`.
    pub hostname: String,
    /// What the LEDs say, in words.
    pub leds: Vec<String>,
    /// Every service.
    pub services: Vec<ServiceRow>,
    /// The certificate, when readable.
    pub cert: Option<CertInfo>,
    /// Client settings.
    pub settings: ClientSettings,
}

/// The LED lines of a `status` answer (`health_words`), with each fault's detail dropped:
/// `fault 3, outbound mail: <detail> (red: 3 blinks)` becomes
/// `fault 3, outbound mail (red: 3 blinks)`.
pub fn led_lines(status: &serde_json::Value) -> Vec<String> {
    let Some(words) = status.get("health_words").and_then(|w| w.as_array()) else {
        return vec!["the daemon's status is not available".into()];
    };
    words
        .iter()
        .filter_map(|w| w.as_str())
        .map(|line| {
            if line.starts_with("fault ")
                && let Some((head, _)) = line.split_once(": ")
            {
                match line.rfind(" (") {
                    Some(p) if p > head.len() => format!("{head}{}", &line[p..]),
                    _ => head.to_string(),
                }
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Every `[listen]` service with whether the daemon reports it listening.
pub fn service_rows(cfg: &Config, status: &serde_json::Value) -> Vec<ServiceRow> {
    let listening: Vec<&str> = status
        .pointer("/daemon/services")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("name").and_then(|n| n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    cfg.listen
        .services()
        .into_iter()
        .map(|(name, addr)| ServiceRow {
            name,
            addr: addr.map(|a| a.to_string()),
            up: addr.is_some() && listening.contains(&name),
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM UTC` of a unix time.
pub fn utc(t: i64) -> String {
    let (y, m, d) = crate::imap::fetch::civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60
    )
}

/// The page.
pub fn render(p: &PageData) -> String {
    let e = xml_escape;
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Letterbox {0}</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body>\n\
         <h1>Letterbox {0}</h1>\n",
        e(&p.hostname)
    ));
    h.push_str("<h2>The lights now</h2>\n<ul>\n");
    for l in &p.leds {
        h.push_str(&format!("<li>{}</li>\n", e(l)));
    }
    h.push_str("</ul>\n<h2>Services</h2>\n<table>\n");
    for s in &p.services {
        let (class, word) = match (&s.addr, s.up) {
            (None, _) => ("off", "off"),
            (Some(_), true) => ("up", "up"),
            (Some(_), false) => ("down", "down"),
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td></tr>\n",
            s.name,
            e(s.addr.as_deref().unwrap_or(""))
        ));
    }
    h.push_str("</table>\n<h2>Certificate</h2>\n");
    match &p.cert {
        Some(c) => {
            h.push_str(&format!(
                "<p>SHA-256 fingerprint:<br><code>{}</code></p>\n<p>Valid until {}.</p>\n",
                e(&c.sha256),
                c.not_after.map(utc).unwrap_or_else(|| "unknown".into())
            ));
            match &c.ca_sha256 {
                Some(ca) => h.push_str(&format!(
                    "<p>It is issued by this box's own household certificate authority. \
                     Install the authority once on each device so that mail apps trust the \
                     box, now and after every renewal: \
                     <a href=\"/ca.crt\">certificate authority (DER, for phones)</a> or \
                     <a href=\"/ca.pem\">PEM</a>. Compare its SHA-256 fingerprint with what \
                     the device shows:<br><code>{}</code></p>\n",
                    e(ca)
                )),
                None => h.push_str(
                    "<p>It comes from the configured certificate files or from ACME, so \
                     devices that trust its issuer need nothing more. \
                     <a href=\"/ca.crt\">The certificate (DER)</a> or \
                     <a href=\"/ca.pem\">PEM</a>.</p>\n",
                ),
            }
        }
        None => h.push_str("<p>The certificate cannot be read right now.</p>\n"),
    }
    h.push_str("<h2>Set up a mail app</h2>\n");
    h.push_str(
        "<p><b>iPhone, iPad, Mac:</b> enter your address to download a profile with the \
         settings and the certificate (your password is asked when you install it).</p>\n\
         <form method=\"get\" action=\"/apple\"><input type=\"email\" name=\"address\" \
         placeholder=\"you@example.org\" required> <button>Download profile</button></form>\n\
         <p><b>Thunderbird, K-9 / Thunderbird for Android, Evolution:</b> enter your address \
         and password; the app finds <a href=\"/mail/config-v1.1.xml\">the settings</a> by \
         itself.</p>\n<p><b>Outlook:</b> finds the settings through \
         <code>/autodiscover/autodiscover.xml</code>.</p>\n<p><b>Any other app:</b></p>\n<table>\n",
    );
    let s = &p.settings;
    h.push_str(&format!(
        "<tr><td>Server</td><td><code>{}</code></td></tr>\n<tr><td>User name</td><td>your whole address</td></tr>\n",
        e(&s.host)
    ));
    for (label, list) in [("IMAP", &s.imap), ("POP3", &s.pop3), ("SMTP", &s.smtp)] {
        for ep in list {
            h.push_str(&format!(
                "<tr><td>{label}</td><td>port {}, {}</td></tr>\n",
                ep.port,
                match ep.security {
                    Security::Tls => "SSL/TLS",
                    Security::StartTls => "STARTTLS",
                }
            ));
        }
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn led_lines_drop_fault_details() {
        let st = serde_json::json!({"health_words": [
            "service: up, store healthy (green solid)",
            "fault 3, outbound mail: alice@example.org: 550 no (red: 3 blinks)",
            "fault 5, fetching: x (y) z (not shown on red: a lower-numbered fault is)",
            "fault 6, backup: odd",
        ]});
        assert_eq!(
            led_lines(&st),
            [
                "service: up, store healthy (green solid)",
                "fault 3, outbound mail (red: 3 blinks)",
                "fault 5, fetching (not shown on red: a lower-numbered fault is)",
                "fault 6, backup",
            ]
        );
        assert_eq!(led_lines(&serde_json::Value::Null).len(), 1);
    }

    #[test]
    fn services_up_down_off() {
        let mut cfg = Config::defaults();
        cfg.listen.pop3 = None;
        let st = serde_json::json!({"daemon": {"services": [{"name": "imaps", "addr": "x"}]}});
        let rows = service_rows(&cfg, &st);
        let row = |n: &str| rows.iter().find(|r| r.name == n).unwrap().clone();
        assert!(row("imaps").up);
        assert!(!row("imap").up && row("imap").addr.is_some());
        assert!(row("pop3").addr.is_none());
        assert_eq!(rows.len(), 9);
    }

    #[test]
    fn page_escapes_and_has_no_script() {
        let cfg = Config::defaults();
        let p = PageData {
            hostname: "<b>x</b>".into(),
            leds: vec!["a & b".into()],
            services: service_rows(&cfg, &serde_json::Value::Null),
            cert: Some(CertInfo {
                sha256: "AB:CD".into(),
                not_after: Some(86_400 * 365),
                ca_sha256: Some("EF:01".into()),
            }),
            settings: ClientSettings::from_config(&cfg, "127.0.0.1"),
        };
        let h = render(&p);
        assert!(h.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(h.contains("a &amp; b"));
        assert!(h.contains("AB:CD") && h.contains("1971-01-01 00:00 UTC"));
        assert!(!h.to_ascii_lowercase().contains("<script"));
        assert!(!h.contains("style="), "no inline style");
        assert!(h.contains("port 2993, SSL/TLS"));
    }
}
