//! The DEFLATE layer of IMAP COMPRESS (`net::deflate`, RFC 4978) under arbitrary peer
//! bytes, split into reads at data-chosen points, decompressed in data-chosen piece
//! sizes; and the same bytes as plain data through compress → inflate.
//!
//! Checks: no panic; no piece longer than asked; the compressed input held stays under
//! one read + `MAX_PENDING`; after an error every call fails; and any data compressed
//! in batches (each sync-flushed, the compressor released now and then as in IDLE)
//! inflates back to itself.
#![no_main]

use letterbox::net::deflate::{Deflate, MAX_PENDING};
use letterbox_fuzz::{Rng, split_ctl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((ctl, input)) = split_ctl(data) else {
        return;
    };
    let mut rng = Rng::new(&ctl);
    let max = 1 + rng.below(20_000);

    // Arbitrary bytes as the peer's compressed stream.
    let mut z = Deflate::new();
    let mut rest = input;
    'reads: while !rest.is_empty() {
        let n = rng.chunk(rest.len());
        if z.push_input(&rest[..n]).is_err() {
            assert!(z.inflate(max).is_err(), "error not sticky");
            break;
        }
        rest = &rest[n..];
        loop {
            match z.inflate(max) {
                Ok(piece) if piece.is_empty() => break,
                Ok(piece) => assert!(piece.len() <= max),
                Err(_) => {
                    assert!(z.inflate(max).is_err(), "error not sticky");
                    assert!(z.push_input(b"x").is_err(), "error not sticky");
                    break 'reads;
                }
            }
            assert!(z.pending_len() <= MAX_PENDING + n);
        }
    }

    // The same bytes as plain data, compressed in batches: a round trip.
    let mut tx = Deflate::new();
    let mut rx = Deflate::new();
    let mut got = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = rng.chunk(rest.len());
        let wire = tx.compress(&rest[..n]);
        assert!(wire.ends_with(&[0, 0, 0xff, 0xff]));
        if rng.one_in(4) {
            tx.release_compressor();
        }
        rest = &rest[n..];
        for piece in wire.chunks(1 + rng.below(64)) {
            rx.push_input(piece).expect("own output refused");
            loop {
                let p = rx.inflate(max).expect("own output is valid");
                if p.is_empty() {
                    break;
                }
                got.extend_from_slice(&p);
            }
        }
    }
    assert_eq!(got, input);
});
