//! The streaming mbox splitter under arbitrary files fed in arbitrary chunks.
//!
//! Input: byte 0 picks the chunk size; the rest is the file. Checks: no panic; the same
//! messages (or the same error) whether fed in one piece or in chunks; offsets strictly
//! increase, each message ends where the next begins, and no message is longer than
//! the data; and a resume at any message's start yields exactly the messages after it.
#![no_main]

use letterbox::data::mbox::{Error, Message, Splitter, split_all};
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8], offset: u64, chunk: usize) -> (Vec<Message>, Option<Error>) {
    split_all(Splitter::new(offset, 4096), data, &[chunk])
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, file)) = data.split_first() else {
        return;
    };
    let whole = split(file, 0, file.len().max(1));
    let chunked = split(file, 0, usize::from(ctl % 64) + 1);
    assert_eq!(whole, chunked);
    let (msgs, _) = whole;
    let mut prev_end = 0;
    for m in &msgs {
        assert_eq!(m.offset, prev_end);
        assert!(m.end > m.offset);
        assert!(m.end as usize <= file.len());
        assert!(m.bytes.len() as u64 <= m.end - m.offset);
        prev_end = m.end;
    }
    if let Some(first) = msgs.first() {
        let (rest, _) = split(&file[first.end as usize..], first.end, 7);
        assert_eq!(rest.as_slice(), &msgs[1..]);
    }
});
