//! The one shape every sans-I/O protocol session returns (STYLE habit 1): bytes to
//! write, an event for the driver to decide, or a request for I/O. The SMTP, POP3 and
//! IMAP sessions each instantiate it with their own event type.

/// What a session's driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<E> {
    /// Send these bytes (replies in command order; pipelined replies may be batched).
    Write(Vec<u8>),
    /// Decide this and answer the session.
    Event(E),
    /// All input is consumed: read more and feed it.
    NeedMoreInput,
    /// Nothing to do until the outstanding event is answered or TLS is established.
    Wait,
    /// The protocol's "go ahead" for TLS was written: run the handshake on the raw
    /// stream, then tell the session. Bytes that followed the command are dropped
    /// (the STARTTLS command-injection fix, CVE-2011-0411).
    StartTls,
    /// The protocol's "go ahead" for compression was written (IMAP `COMPRESS`, RFC 4978
    /// §3): from the next byte on, both directions are DEFLATE. Switch the connection's
    /// byte layer, then tell the session (IMAP: `Session::compression_started`).
    Compress,
    /// Close the connection (after writing what was handed out).
    Close,
}
