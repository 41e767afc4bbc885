//! The SASL PLAIN and LOGIN exchanges under arbitrary client lines.
//!
//! Input: byte 0 picks the mechanism and whether the first line is an initial response;
//! the rest is split into lines at LF. Checks: no panic; a finished exchange has a
//! non-empty user name (and for PLAIN a non-empty password); and credentials encoded
//! the way a client does decode back to the same credentials.
#![no_main]

use letterbox::sasl::{Exchange, Mechanism, Next, encode, parse_plain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mech = if ctl & 1 == 0 {
        Mechanism::Plain
    } else {
        Mechanism::Login
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let initial = if ctl & 2 != 0 { lines.next() } else { None };
    let mut state = Exchange::start(mech, initial);
    loop {
        match state {
            Err(_) => break,
            Ok((_, Next::Done(creds))) => {
                assert!(!creds.username.is_empty());
                if mech == Mechanism::Plain {
                    assert!(!creds.password.expose().is_empty());
                    assert_ne!(creds.authzid.as_deref(), Some(creds.username.as_str()));
                }
                break;
            }
            Ok((ex, Next::Challenge(_))) => match lines.next() {
                Some(line) => state = ex.step(line),
                None => break,
            },
        }
    }

    // Client-side encoding of the raw bytes as a PLAIN message must decode identically.
    let direct = parse_plain(rest);
    let via_b64 = Exchange::start(Mechanism::Plain, Some(encode(rest).as_bytes()));
    match (direct, via_b64) {
        (Ok(c), Ok((_, Next::Done(d)))) => assert_eq!(c, d),
        (Err(e), Err(f)) => assert_eq!(e, f, "{rest:?}"),
        // An empty message is "=" on the wire, which decodes to empty: Malformed too.
        (d, v) => panic!("PLAIN direct {d:?} vs base64 {v:?}"),
    }
});
