//! The SMTP session state machine under arbitrary client bytes, split into reads at
//! data-chosen points, with every event answered by a data-chosen decision.
//!
//! Checks: no panic; `buffered_bytes()` never exceeds one read + `max_line` +
//! `max_message_size`; `Step::Wait` only while a TLS handshake is outstanding; every
//! write is well-formed reply lines (`ddd[ -]text CRLF`, no bare CR/LF); a delivered
//! message is within `max_message_size`; a closed session stays closed.
#![no_main]

use letterbox::smtp::{Decision, Event, Mode, Reply, Session, SessionConfig, Step};
use letterbox_fuzz::{Rng, assert_crlf_lines, split_ctl};
use libfuzzer_sys::fuzz_target;

fn decide(rng: &mut Rng, event: &Event) -> Decision {
    let reject = |rng: &mut Rng| {
        let code = [550, 451, 421, 554, 250, 535][rng.below(6)];
        Decision::Reject(Reply::plain(code, "fuzz says no"))
    };
    match event {
        Event::Auth { credentials, .. } => match rng.below(4) {
            0 => reject(rng),
            1 => Decision::Accept,
            _ => Decision::AuthOk {
                account: credentials.username.clone(),
            },
        },
        _ => match rng.below(8) {
            0 => reject(rng),
            1 => Decision::AuthOk {
                account: "odd".into(),
            },
            _ => Decision::Accept,
        },
    }
}

fn check_reply(out: &[u8]) {
    assert_crlf_lines(out);
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(
            line.len() >= 5
                && line[..3].iter().all(u8::is_ascii_digit)
                && matches!(line[3], b' ' | b'-'),
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((ctl, mut rest)) = split_ctl(data) else {
        return;
    };
    let mut rng = Rng::new(&ctl);
    let flags = ctl[0];
    let mode = [Mode::Mx, Mode::Submission, Mode::Submissions][usize::from(flags % 3)];
    let mut cfg = SessionConfig::new("mx.fuzz.test", mode);
    cfg.tls_available = flags & 0x04 != 0;
    cfg.plaintext_auth_allowed = flags & 0x08 != 0;
    if flags & 0x10 == 0 {
        // Small caps make the overflow paths reachable.
        cfg.max_message_size = 4096;
        cfg.max_line = 128;
        cfg.max_recipients = 3;
    }
    cfg.max_auth_failures = 1 + u32::from(ctl[1] % 4);
    let tls = mode == Mode::Submissions || flags & 0x20 != 0;
    let cap = cfg.max_line + usize::try_from(cfg.max_message_size).unwrap();

    let mut s = Session::new(cfg.clone(), tls);
    check_reply(&s.greeting());
    let mut read = 0usize;
    let mut handshake = false;
    let mut closed = false;
    loop {
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "session does not settle");
            assert!(
                s.buffered_bytes() <= read + cap,
                "buffered {} > read {read} + cap {cap}",
                s.buffered_bytes()
            );
            match s.next() {
                Step::Write(out) => check_reply(&out),
                Step::Event(event) => {
                    if let Event::Message { data, .. } = &event {
                        assert!(data.len() as u64 <= cfg.max_message_size);
                    }
                    let d = decide(&mut rng, &event);
                    s.answer(d);
                }
                Step::NeedMoreInput => break,
                Step::Wait => {
                    assert!(handshake, "Wait with every event answered");
                    break;
                }
                Step::StartTls => {
                    if rng.one_in(8) {
                        // The handshake never finishes: later bytes must be dropped.
                        handshake = true;
                    } else {
                        s.tls_established();
                        assert!(s.tls_active());
                    }
                }
                Step::Compress => panic!("SMTP never compresses"),
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
        assert_eq!(s.buffered_bytes(), 0);
    }
});
