//! SMTP reply codes and enhanced status codes, each with the RFC that defines it
//! (after mox `smtp/codes.go`). This module owns only numbers; [`super::codec::Reply`]
//! puts them on the wire.
//!
//! Reply codes are RFC 5321 §4.2 unless noted. Enhanced status codes are written
//! `class.subject.detail` (RFC 3463 §2); the class always equals the first digit of the
//! reply code, so the constants below hold only `(subject, detail)` and
//! [`super::codec::Reply::new`] derives the class from the reply code.

/// `(subject, detail)` of an enhanced status code; the class comes from the reply code.
pub type Enhanced = (u16, u16);

// ---- Reply codes (RFC 5321 §4.2.2, §4.2.3 unless noted) ----

/// 211 System status, or system help reply.
pub const C211_SYSTEM_STATUS: u16 = 211;
/// 214 Help message.
pub const C214_HELP: u16 = 214;
/// 220 `<domain>` Service ready (greeting, and STARTTLS go-ahead RFC 3207 §4).
pub const C220_SERVICE_READY: u16 = 220;
/// 221 `<domain>` Service closing transmission channel.
pub const C221_CLOSING: u16 = 221;
/// 235 Authentication successful (RFC 4954 §6).
pub const C235_AUTH_SUCCESS: u16 = 235;
/// 250 Requested mail action okay, completed.
pub const C250_COMPLETED: u16 = 250;
/// 251 User not local; will forward.
pub const C251_USER_NOT_LOCAL_WILL_FORWARD: u16 = 251;
/// 252 Cannot VRFY user, but will accept message and attempt delivery (§3.5.3).
pub const C252_CANNOT_VRFY: u16 = 252;
/// 334 Server challenge in an AUTH exchange (RFC 4954 §4).
pub const C334_CONTINUE_AUTH: u16 = 334;
/// 354 Start mail input; end with `<CRLF>.<CRLF>`.
pub const C354_CONTINUE: u16 = 354;
/// 421 `<domain>` Service not available, closing transmission channel.
pub const C421_SERVICE_UNAVAILABLE: u16 = 421;
/// 450 Requested mail action not taken: mailbox unavailable (temporary).
pub const C450_MAILBOX_UNAVAILABLE: u16 = 450;
/// 451 Requested action aborted: local error in processing.
pub const C451_LOCAL_ERROR: u16 = 451;
/// 452 Requested action not taken: insufficient system storage (also "too many
/// recipients", §4.5.3.1.10).
pub const C452_STORAGE_FULL: u16 = 452;
/// 454 Temporary authentication failure (RFC 4954 §6); TLS not available (RFC 3207 §4).
pub const C454_TEMP_AUTH_FAILURE: u16 = 454;
/// 455 Server unable to accommodate parameters.
pub const C455_BAD_PARAMS: u16 = 455;
/// 500 Syntax error, command unrecognized (also "line too long", §4.5.3.1.4).
pub const C500_UNRECOGNIZED: u16 = 500;
/// 501 Syntax error in parameters or arguments.
pub const C501_BAD_PARAM_SYNTAX: u16 = 501;
/// 502 Command not implemented.
pub const C502_NOT_IMPLEMENTED: u16 = 502;
/// 503 Bad sequence of commands.
pub const C503_BAD_CMD_SEQ: u16 = 503;
/// 504 Command parameter not implemented (unsupported AUTH mechanism, RFC 4954 §4).
pub const C504_PARAM_NOT_IMPLEMENTED: u16 = 504;
/// 530 Authentication required (RFC 4954 §6), or STARTTLS first (RFC 3207 §4).
pub const C530_SECURITY_REQUIRED: u16 = 530;
/// 534 Authentication mechanism is too weak (RFC 4954 §6).
pub const C534_AUTH_MECH_WEAK: u16 = 534;
/// 535 Authentication credentials invalid (RFC 4954 §6).
pub const C535_AUTH_BAD_CREDS: u16 = 535;
/// 538 Encryption required for requested authentication mechanism (RFC 4954 §6).
pub const C538_ENCRYPTION_NEEDED: u16 = 538;
/// 550 Requested action not taken: mailbox unavailable / policy refusal.
pub const C550_MAILBOX_UNAVAILABLE: u16 = 550;
/// 551 User not local; please try `<forward-path>`.
pub const C551_USER_NOT_LOCAL: u16 = 551;
/// 552 Requested mail action aborted: exceeded storage allocation (message size,
/// RFC 1870 §6).
pub const C552_MAILBOX_FULL: u16 = 552;
/// 553 Requested action not taken: mailbox name not allowed.
pub const C553_BAD_MAILBOX: u16 = 553;
/// 554 Transaction failed (also "no valid recipients", §3.3).
pub const C554_TRANSACTION_FAILED: u16 = 554;
/// 555 MAIL FROM/RCPT TO parameters not recognized or not implemented (§4.1.1.11).
pub const C555_UNRECOGNIZED_PARAMS: u16 = 555;

// ---- Enhanced status codes: (subject, detail), RFC 3463 §3 unless noted ----

/// X.0.0 Other undefined status (RFC 3463 §3.1).
pub const SE_OTHER: Enhanced = (0, 0);

/// X.1.0 Other address status (§3.2).
pub const SE_ADDR_OTHER: Enhanced = (1, 0);
/// X.1.1 Bad destination mailbox address (§3.2).
pub const SE_ADDR_UNKNOWN_MAILBOX: Enhanced = (1, 1);
/// X.1.2 Bad destination system address (§3.2).
pub const SE_ADDR_BAD_DEST_SYSTEM: Enhanced = (1, 2);
/// X.1.3 Bad destination mailbox address syntax (§3.2).
pub const SE_ADDR_BAD_DEST_SYNTAX: Enhanced = (1, 3);
/// X.1.5 Destination address valid (§3.2), used for accepted RCPT.
pub const SE_ADDR_DEST_VALID: Enhanced = (1, 5);
/// X.1.7 Bad sender's mailbox address syntax (§3.2).
pub const SE_ADDR_BAD_SENDER_SYNTAX: Enhanced = (1, 7);
/// X.1.8 Bad sender's system address (§3.2).
pub const SE_ADDR_BAD_SENDER_SYSTEM: Enhanced = (1, 8);
/// X.1.0 used for an accepted MAIL FROM ("Other address status", §3.2).
pub const SE_ADDR_SENDER_OK: Enhanced = (1, 0);

/// X.2.0 Other or undefined mailbox status (§3.3).
pub const SE_MAILBOX_OTHER: Enhanced = (2, 0);
/// X.2.2 Mailbox full (§3.3).
pub const SE_MAILBOX_FULL: Enhanced = (2, 2);
/// X.2.3 Message length exceeds administrative limit (§3.3).
pub const SE_MAILBOX_MSG_TOO_LONG: Enhanced = (2, 3);

/// X.3.0 Other or undefined mail system status (§3.4).
pub const SE_SYS_OTHER: Enhanced = (3, 0);
/// X.3.1 Mail system full (§3.4).
pub const SE_SYS_FULL: Enhanced = (3, 1);
/// X.3.2 System not accepting network messages (§3.4), used when shutting down.
pub const SE_SYS_NOT_ACCEPTING: Enhanced = (3, 2);
/// X.3.4 Message too big for system (§3.4).
pub const SE_SYS_MSG_TOO_BIG: Enhanced = (3, 4);

/// X.4.0 Other or undefined network or routing status (§3.5).
pub const SE_NET_OTHER: Enhanced = (4, 0);
/// X.4.3 Directory server failure (§3.5), e.g. a DNS timeout.
pub const SE_NET_DIRECTORY_FAILURE: Enhanced = (4, 3);
/// X.4.2 Bad connection (§3.5): used for the idle and session timeouts.
pub const SE_NET_BAD_CONNECTION: Enhanced = (4, 2);

/// X.5.0 Other or undefined protocol status (§3.6).
pub const SE_PROTO_OTHER: Enhanced = (5, 0);
/// X.5.1 Invalid command (§3.6), also used for bad sequence.
pub const SE_PROTO_INVALID_CMD: Enhanced = (5, 1);
/// X.5.2 Syntax error (§3.6), also used for over-long lines and bad SASL data.
pub const SE_PROTO_SYNTAX: Enhanced = (5, 2);
/// X.5.3 Too many recipients (§3.6).
pub const SE_PROTO_TOO_MANY_RCPTS: Enhanced = (5, 3);
/// X.5.4 Invalid command arguments (§3.6).
pub const SE_PROTO_INVALID_ARGS: Enhanced = (5, 4);
/// X.5.6 Authentication exchange line is too long (RFC 4954 §6).
pub const SE_PROTO_AUTH_LINE_TOO_LONG: Enhanced = (5, 6);

/// X.6.0 Other or undefined media error (§3.7).
pub const SE_MEDIA_OTHER: Enhanced = (6, 0);
/// X.6.1 Media not supported (§3.7).
pub const SE_MEDIA_NOT_SUPPORTED: Enhanced = (6, 1);
/// X.6.7 Non-ASCII addresses not permitted for that sender/recipient (RFC 6531 §3.6).
pub const SE_MEDIA_NON_ASCII_ADDR: Enhanced = (6, 7);

/// X.7.0 Other or undefined security status (§3.8); "Authentication required" (RFC
/// 4954 §6) and "temporary authentication failure" (RFC 4954 §6).
pub const SE_SEC_OTHER: Enhanced = (7, 0);
/// X.7.1 Delivery not authorized, message refused (§3.8), e.g. relay denied.
pub const SE_SEC_NOT_AUTHORIZED: Enhanced = (7, 1);
/// X.7.8 Authentication credentials invalid (RFC 4954 §6).
pub const SE_SEC_AUTH_BAD_CREDS: Enhanced = (7, 8);
/// X.7.9 Authentication mechanism is too weak (RFC 4954 §6).
pub const SE_SEC_AUTH_MECH_WEAK: Enhanced = (7, 9);
/// X.7.11 Encryption required for requested authentication mechanism (RFC 4954 §6).
pub const SE_SEC_ENCRYPTION_NEEDED: Enhanced = (7, 11);
/// X.7.23 SPF validation failed (RFC 7372).
pub const SE_SEC_SPF_FAILED: Enhanced = (7, 23);
/// X.7.24 SPF validation error (RFC 7372): 4.7.24 for a temporary DNS error.
pub const SE_SEC_SPF_ERROR: Enhanced = (7, 24);
/// X.7.20 No passing DKIM signature found (RFC 7372).
pub const SE_SEC_DKIM_NONE_PASS: Enhanced = (7, 20);
/// X.7.26 Multiple authentication checks failed (RFC 7372), e.g. a DMARC failure.
pub const SE_SEC_MULTIPLE_AUTH_FAILED: Enhanced = (7, 26);
