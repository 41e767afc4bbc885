//! The POP3 session state machine under arbitrary client bytes, split into reads at
//! data-chosen points, with a maildrop of a few messages and every event answered by a
//! data-chosen decision (including ones that do not fit the event).
//!
//! Checks: no panic; the input buffer never exceeds one read + `MAX_SASL_LINE`;
//! `Step::Wait` only while a TLS handshake is outstanding; every write is CRLF lines
//! with no bare CR/LF; Retrieve/Commit events name messages of the maildrop; a closed
//! session stays closed. The transcript is also encoded as a message with
//! `encode_message`, which must decode back to its lines (no terminator smuggling).
#![no_main]

use letterbox::pop3::codec::{self, MAX_SASL_LINE};
use letterbox::pop3::{Decision, Event, MaildropEntry, Session, SessionConfig, Step};
use letterbox_fuzz::{Rng, assert_crlf_lines, split_ctl};
use libfuzzer_sys::fuzz_target;

const MESSAGES: [&[u8]; 4] = [
    b"From: a@example.org\r\nTo: b@home.arpa\r\nSubject: one\r\n\r\nHello\r\n.\r\n..dots\r\nbye\r\n",
    b"Subject: bare\n\nline one\nline two\r.\rno final newline",
    b"",
    b"no header\r\n\r\n\r\n.\r\n",
];

fn maildrop() -> Vec<MaildropEntry> {
    MESSAGES
        .iter()
        .enumerate()
        .map(|(i, m)| MaildropEntry {
            uid: format!("uid-{i}"),
            size: codec::message_size(m),
        })
        .collect()
}

fn decide(rng: &mut Rng, event: &Event, logged_in: &mut bool) -> Decision {
    let wrong = rng.one_in(16);
    match event {
        Event::Authenticate { .. } => match rng.below(6) {
            0 => Decision::AuthFailed,
            1 => Decision::InUse,
            2 => Decision::Unavailable,
            3 if wrong => Decision::Committed,
            _ => {
                *logged_in = true;
                Decision::LoggedIn {
                    maildrop: maildrop(),
                }
            }
        },
        Event::Retrieve { index, .. } => {
            assert!(*logged_in && *index < MESSAGES.len(), "bad index {index}");
            match rng.below(8) {
                0 => Decision::MessageGone,
                1 => Decision::Unavailable,
                2 if wrong => Decision::AuthFailed,
                // A message that changed under us: the session must still frame it.
                3 => Decision::Message(MESSAGES[rng.below(MESSAGES.len())].to_vec()),
                _ => Decision::Message(MESSAGES[*index].to_vec()),
            }
        }
        Event::Commit { deleted } => {
            assert!(*logged_in);
            assert!(deleted.windows(2).all(|w| w[0] < w[1]), "{deleted:?}");
            assert!(deleted.iter().all(|&i| i < MESSAGES.len()), "{deleted:?}");
            match rng.below(4) {
                0 => Decision::CommitFailed,
                1 if wrong => Decision::InUse,
                _ => Decision::Committed,
            }
        }
    }
}

/// Decodes a multi-line body (RFC 1939 §3) and compares it with the message's lines.
fn check_encoding(raw: &[u8], top: Option<u64>) {
    let mut out = Vec::new();
    codec::encode_message(raw, top, &mut out);
    assert_crlf_lines(&out);
    let mut got: Vec<&[u8]> = Vec::new();
    let mut rest = &out[..];
    loop {
        let i = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let line = &rest[..i];
        rest = &rest[i + 2..];
        if line == b"." {
            break;
        }
        got.push(line.strip_prefix(b".").unwrap_or(line));
    }
    assert!(rest.is_empty(), "bytes after the terminator");
    let want: Vec<&[u8]> = codec::lines(raw).collect();
    match top {
        None => assert_eq!(got, want),
        Some(_) => assert!(want.starts_with(&got)),
    }
    if top.is_none() {
        let stuffing = got.iter().filter(|l| l.first() == Some(&b'.')).count();
        assert_eq!(
            codec::message_size(raw),
            (out.len() - 3 - stuffing) as u64,
            "message_size disagrees with what is sent"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((ctl, mut rest)) = split_ctl(data) else {
        return;
    };
    check_encoding(rest, None);
    check_encoding(rest, Some(u64::from(ctl[7] % 4)));

    let mut rng = Rng::new(&ctl);
    let flags = ctl[0];
    let cfg = SessionConfig {
        hostname: "pop.fuzz.test".into(),
        tls_available: flags & 0x01 != 0,
        plaintext_auth_allowed: flags & 0x02 != 0,
        max_auth_failures: 1 + u32::from(ctl[1] % 4),
    };
    let mut s = Session::new(cfg, flags & 0x04 != 0);
    assert_crlf_lines(&s.greeting());
    let mut read = 0usize;
    let mut handshake = false;
    let mut closed = false;
    let mut logged_in = false;
    loop {
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "session does not settle");
            assert!(
                s.buffered_bytes() <= read + MAX_SASL_LINE,
                "buffered {} > read {read} + {MAX_SASL_LINE}",
                s.buffered_bytes()
            );
            match s.next() {
                Step::Write(out) => assert_crlf_lines(&out),
                Step::Event(event) => {
                    let d = decide(&mut rng, &event, &mut logged_in);
                    s.answer(d);
                }
                Step::NeedMoreInput => break,
                Step::Wait => {
                    assert!(handshake, "Wait with every event answered");
                    break;
                }
                Step::StartTls => {
                    if rng.one_in(8) {
                        handshake = true;
                    } else {
                        s.tls_established();
                        assert!(s.tls_active());
                    }
                }
                Step::Compress => panic!("POP3 never compresses"),
                Step::Close => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || rest.is_empty() {
            break;
        }
        let n = rng.chunk(rest.len());
        s.feed(&rest[..n]);
        read = n;
        rest = &rest[n..];
    }
    if closed {
        s.feed(b"NOOP\r\n");
        assert_eq!(s.next(), Step::Close);
    }
});
