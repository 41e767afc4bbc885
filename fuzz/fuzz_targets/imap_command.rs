//! The IMAP framer and command parser under arbitrary client bytes, split into reads at
//! data-chosen points, with literals accepted or refused by the data.
//!
//! Checks: no panic; the framer's buffers stay under one read + `max_frame` +
//! `max_line`; an accepted literal is within its cap; and every frame (and the raw input
//! itself) that parses as a command round-trips: `Command::encode` and `encode_sync`
//! parse back to an equal command, encoding is stable, and the encoded bytes frame as
//! exactly one frame.
#![no_main]

use letterbox::imap::command::{Command, parse_command, parse_idle_done};
use letterbox::imap::fragment::{Event, Framer, FramerConfig};
use letterbox_fuzz::{Rng, split_ctl};
use libfuzzer_sys::fuzz_target;

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The encoded form of a command must come out of a framer as one frame, unchanged.
fn frames_as_one(enc: &[u8]) {
    let mut f = Framer::new(FramerConfig {
        max_line: usize::MAX / 2,
        max_literal: u64::MAX / 2,
        max_append_literal: u64::MAX / 2,
        max_frame: u64::MAX / 2,
        max_discard: u64::MAX / 2,
    });
    f.enqueue(enc);
    loop {
        match f.progress() {
            Some(Event::LiteralAnnounced(_)) => f.accept_literal(),
            Some(Event::Frame(frame)) => {
                assert_eq!(frame, enc, "re-framed differently");
                assert!(f.progress().is_none(), "more than one frame");
                assert_eq!(f.buffered_len(), 0);
                return;
            }
            other => panic!("encoded command did not frame: {other:?} for {:?}", show(enc)),
        }
    }
}

fn round_trip(cmd: &Command) {
    let enc = cmd.encode();
    let again = parse_command(&enc)
        .unwrap_or_else(|e| panic!("re-parse of {:?} failed: {e:?}\n{cmd:?}", show(&enc)));
    assert_eq!(&again, cmd, "round trip changed the command; encoded {:?}", show(&enc));
    assert_eq!(again.encode(), enc, "encoding not stable");
    let sync = cmd.encode_sync().concat();
    let again = parse_command(&sync)
        .unwrap_or_else(|e| panic!("re-parse of sync {:?} failed: {e:?}", show(&sync)));
    assert_eq!(&again, cmd, "sync round trip changed the command");
    frames_as_one(&enc);
}

fn check_frame(frame: &[u8]) {
    let _ = parse_idle_done(frame);
    if let Ok(cmd) = parse_command(frame) {
        round_trip(&cmd);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((ctl, mut rest)) = split_ctl(data) else {
        return;
    };
    // The raw input as one frame: the parser sees bytes the framer would never pass.
    check_frame(rest);

    let mut rng = Rng::new(&ctl);
    let config = if ctl[0] & 1 == 0 {
        FramerConfig {
            max_line: 64 + usize::from(ctl[1]) * 4,
            max_literal: 64 + u64::from(ctl[2]) * 8,
            max_append_literal: 4096,
            max_frame: 8192,
            max_discard: 16384,
        }
    } else {
        FramerConfig::default()
    };
    let max_line = config.max_line;
    let max_frame = usize::try_from(config.max_frame).unwrap();
    let mut f = Framer::new(config.clone());
    let mut read = 0usize;
    loop {
        let mut steps = 0usize;
        while let Some(ev) = f.progress() {
            steps += 1;
            assert!(steps < 1_000_000, "framer does not settle");
            match ev {
                Event::Frame(frame) => {
                    assert!(!frame.is_empty());
                    assert!(frame.len() <= max_frame + max_line, "frame of {}", frame.len());
                    check_frame(&frame);
                }
                Event::LiteralAnnounced(ann) => {
                    assert!(f.awaiting_decision());
                    assert!(ann.length <= config.max_append_literal.max(config.max_literal));
                    if rng.below(4) != 0 {
                        f.accept_literal();
                    } else if let Some(ev) = f.reject_literal() {
                        assert!(matches!(ev, Event::Fatal(_)), "{ev:?}");
                        assert!(f.is_closed());
                    }
                }
                Event::Rejected(_) => {}
                Event::Fatal(_) => assert!(f.is_closed()),
            }
        }
        assert!(!f.awaiting_decision());
        assert!(
            f.buffered_len() <= read + max_frame + max_line + 64,
            "buffered {} after a read of {read}",
            f.buffered_len()
        );
        if f.is_closed() || rest.is_empty() {
            break;
        }
        let n = rng.chunk(rest.len());
        f.enqueue(&rest[..n]);
        read = n;
        rest = &rest[n..];
    }
});
