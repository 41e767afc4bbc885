//! Delivery status notifications (RFC 3464) for the outbound queue: a `multipart/report;
//! report-type=delivery-status` message (RFC 6522) with a human-readable part, a
//! `message/delivery-status` part (one per-recipient block each with the remote server's
//! reply as `Diagnostic-Code`), and the original message's header as
//! `text/rfc822-headers`. Used for permanent failures and expiry (`Action: failed`) and
//! for the one "still trying" notice (`Action: delayed`, RFC 3464 §2.3.3).
//!
//! Pure: the caller passes the time and the names; nothing here touches the store.

/// What happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given up: permanent failure or expiry.
    Failed,
    /// Still being retried.
    Delayed,
}

/// One recipient's block of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as given in RCPT TO.
    pub address: String,
    /// Failed or delayed.
    pub action: Action,
    /// The remote server's reply (`550 5.1.1 no such user`), or our own reason.
    pub diagnostic: String,
}

/// A whole report.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Our host name (`Reporting-MTA`, the `From:` address's domain).
    pub hostname: &'a str,
    /// The original envelope sender, who receives the report.
    pub to: &'a str,
    /// The original message (only its header is included).
    pub original: &'a [u8],
    /// Unix seconds the message was queued (`Arrival-Date`).
    pub arrival: i64,
    /// Unix seconds now (`Date:`).
    pub now: i64,
    /// For delay notices: when we give up, unix seconds.
    pub expires: Option<i64>,
    /// The recipients reported on.
    pub recipients: Vec<Recipient>,
}

/// The RFC 3463 status code for a reply: its enhanced code when it has one, else the
/// class of its basic code (`5.0.0`/`4.0.0`).
pub fn status_of(reply: &str, action: Action) -> String {
    let mut words = reply.split_whitespace();
    let basic = words.next().unwrap_or("");
    if let Some(enh) = words.next() {
        let parts: Vec<&str> = enh.split('.').collect();
        if parts.len() == 3
            && (parts[0] == "2" || parts[0] == "4" || parts[0] == "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return enh.to_string();
        }
    }
    match (basic.as_bytes().first(), action) {
        (Some(b'5'), Action::Failed) => "5.0.0".into(),
        (_, Action::Failed) => "4.4.7".into(), // expired: RFC 3463 X.4.7 delivery time expired
        (_, Action::Delayed) => "4.0.0".into(),
    }
}

/// Keeps text safe in a header or DSN field: one line, printable ASCII, bounded.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .take(900)
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The header section of a message, up to and including its final CRLF.
fn header_of(message: &[u8]) -> &[u8] {
    let end = memchr::memmem::find(message, b"\r\n\r\n")
        .map(|i| i + 2)
        .or_else(|| memchr::memmem::find(message, b"\n\n").map(|i| i + 1))
        .unwrap_or(message.len());
    message.get(..end).unwrap_or(message)
}

fn date(unix: i64) -> String {
    mail_parser::DateTime::from_timestamp(unix).to_rfc822()
}

impl Report<'_> {
    /// True when this is a delay notice rather than a failure report.
    fn delayed(&self) -> bool {
        self.recipients.iter().all(|r| r.action == Action::Delayed)
    }

    /// The report as a complete RFC 5322 message (CRLF line ends).
    pub fn compose(&self, boundary: &str, message_id: &str) -> Vec<u8> {
        let host = one_line(self.hostname);
        let delayed = self.delayed();
        let subject = if delayed {
            "Delayed Mail (still being retried)"
        } else {
            "Undelivered Mail Returned to Sender"
        };
        let mut m = String::new();
        m.push_str(&format!(
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n"
        ));
        m.push_str(&format!("To: <{}>\r\n", one_line(self.to)));
        m.push_str(&format!("Subject: {subject}\r\n"));
        m.push_str(&format!("Date: {}\r\n", date(self.now)));
        m.push_str(&format!("Message-ID: <{message_id}@{host}>\r\n"));
        // RFC 3834 §5: automatic responses are marked, so nobody answers them.
        m.push_str("Auto-Submitted: auto-replied\r\n");
        m.push_str("MIME-Version: 1.0\r\n");
        m.push_str(&format!(
            "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
        ));
        m.push_str("This is a MIME-encapsulated delivery status notification.\r\n\r\n");
        // Part 1: for people.
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        ));
        if delayed {
            m.push_str(&format!(
                "This is the mail system at {host}.\r\n\r\nYour message could not be delivered yet to the recipients below.\r\nIt is still being retried{}; you do not need to send it again.\r\n\r\n",
                self.expires
                    .map(|t| format!(" until {}", date(t)))
                    .unwrap_or_default()
            ));
        } else {
            m.push_str(&format!(
                "This is the mail system at {host}.\r\n\r\nYour message could not be delivered to the recipients below.\r\n\r\n"
            ));
        }
        for r in &self.recipients {
            m.push_str(&format!(
                "<{}>: {}\r\n",
                one_line(&r.address),
                one_line(&r.diagnostic)
            ));
        }
        m.push_str("\r\n");
        // Part 2: for machines (RFC 3464 §2.2, §2.3).
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        ));
        m.push_str(&format!("Reporting-MTA: dns; {host}\r\n"));
        m.push_str(&format!("Arrival-Date: {}\r\n", date(self.arrival)));
        for r in &self.recipients {
            let status = status_of(&r.diagnostic, r.action);
            m.push_str("\r\n");
            m.push_str(&format!(
                "Final-Recipient: rfc822; {}\r\n",
                one_line(&r.address)
            ));
            m.push_str(&format!(
                "Action: {}\r\n",
                match r.action {
                    Action::Failed => "failed",
                    Action::Delayed => "delayed",
                }
            ));
            m.push_str(&format!("Status: {status}\r\n"));
            let diag = one_line(&r.diagnostic);
            if diag.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                m.push_str(&format!("Diagnostic-Code: smtp; {diag}\r\n"));
            } else {
                m.push_str(&format!("Diagnostic-Code: X-Letterbox; {diag}\r\n"));
            }
            if let (Action::Delayed, Some(t)) = (r.action, self.expires) {
                m.push_str(&format!("Will-Retry-Until: {}\r\n", date(t)));
            }
        }
        m.push_str("\r\n");
        // Part 3: the original header (RFC 6522 §3: text/rfc822-headers).
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        ));
        let mut out = m.into_bytes();
        let head = header_of(self.original);
        out.extend_from_slice(head);
        if !head.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status_of("550 5.1.1 no such user", Action::Failed), "5.1.1");
        assert_eq!(status_of("550 no such user", Action::Failed), "5.0.0");
        assert_eq!(status_of("451 4.3.0 later", Action::Delayed), "4.3.0");
        assert_eq!(status_of("connection refused", Action::Failed), "4.4.7");
        assert_eq!(status_of("550 5.x.1 odd", Action::Failed), "5.0.0");
    }

    #[test]
    fn report_has_the_three_parts() {
        let original = b"From: a@home.arpa\r\nSubject: hello\r\n\r\nsecret body\r\n";
        let r = Report {
            hostname: "letterbox.home.arpa",
            to: "a@home.arpa",
            original,
            arrival: 0,
            now: 60,
            expires: None,
            recipients: vec![Recipient {
                address: "x@example.org".into(),
                action: Action::Failed,
                diagnostic: "550 5.1.1 <x@example.org>: no such\r\n user".into(),
            }],
        };
        let text = String::from_utf8(r.compose("BOUND", "id1")).unwrap();
        assert!(text.contains("report-type=delivery-status"));
        assert!(text.contains(
            "Final-Recipient: rfc822; x@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(
            text.contains("Diagnostic-Code: smtp; 550 5.1.1 <x@example.org>: no such user\r\n")
        );
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: a@home.arpa\r\nSubject: hello\r\n\r\n--BOUND--\r\n"));
        assert!(!text.contains("secret body"));
        let parsed = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(parsed.parts.len(), 4);
    }
}
