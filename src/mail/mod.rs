//! Message handling shared by the protocols: parsing a raw RFC 5322 message once,
//! at delivery, into the envelope and MIME structure that IMAP serves, and its address
//! lists ([`address`]) for ENVELOPE and SEARCH; the DNS resolver
//! and the sender verification (SPF, DKIM, ARC, DMARC) of inbound mail; DKIM signing of
//! outbound mail; delivery status notifications.

pub mod address;
pub mod dns;
pub mod dsn;
pub mod message;
pub mod sign;
pub mod verify;
