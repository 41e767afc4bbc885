//! Message handling shared by the protocols: parsing a raw RFC 5322 message once,
//! at delivery, into the envelope and MIME structure that IMAP serves; DKIM signing of
//! outbound mail; delivery status notifications.

pub mod dsn;
pub mod message;
pub mod sign;
