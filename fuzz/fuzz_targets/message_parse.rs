//! The path from a raw message to what the store keeps: `mail::message::parse` and the
//! postcard encoding of its result.
//!
//! Checks: no panic; the root spans the message from 0; every part's offsets lie within
//! the input with `header_start <= body_start <= body_end`; the result survives a
//! postcard round trip.
#![no_main]

use letterbox::mail::message::{ParsedMessage, Part, PartKind, parse};
use libfuzzer_sys::fuzz_target;

fn check(p: &Part, len: u32, depth: usize) {
    assert!(depth < 200, "nesting too deep");
    assert!(
        p.header_start <= p.body_start && p.body_start <= p.body_end && p.body_end <= len,
        "bad offsets {}..{}..{} in {len} bytes ({}/{})",
        p.header_start,
        p.body_start,
        p.body_end,
        p.media_type,
        p.subtype
    );
    match &p.kind {
        PartKind::Leaf => {}
        PartKind::Multipart(kids) => kids.iter().for_each(|k| check(k, len, depth + 1)),
        PartKind::Message(_, inner) => check(inner, len, depth + 1),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(len) = u32::try_from(data.len()) else {
        return;
    };
    let parsed = parse(data);
    assert_eq!(parsed.root.header_start, 0);
    check(&parsed.root, len, 0);
    let bytes = postcard::to_allocvec(&parsed).expect("postcard encode");
    let back: ParsedMessage = postcard::from_bytes(&bytes).expect("postcard decode");
    assert_eq!(back, parsed);
});
