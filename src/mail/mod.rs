//! Message handling shared by the protocols: parsing a raw RFC 5322 message once,
//! at delivery, into the envelope and MIME structure that IMAP serves.

pub mod message;
