//! [`Deflate`]: raw DEFLATE (RFC 1951, no zlib header or checksum) in both directions of
//! one connection, sans-I/O: bytes in, bytes out, no socket. IMAP's COMPRESS=DEFLATE
//! (RFC 4978) uses it once the tagged OK of `COMPRESS DEFLATE` is written; the driver
//! owns the socket and calls [`Deflate::compress`] on every batch it writes and
//! [`Deflate::push_input`] / [`Deflate::inflate`] on what it reads.
//!
//! - Output: each batch is compressed and ended with a sync flush (RFC 4978 §4, zlib's
//!   `Z_SYNC_FLUSH`): the compressed bytes end in the empty stored block `00 00 ff ff`
//!   and the peer can decode everything written so far, so a response (an IDLE push, a
//!   tagged OK) never waits in the compressor for more data.
//! - Input: decompressed in bounded pieces ([`Deflate::inflate`] returns at most `max`
//!   bytes), so a small input that expands a thousandfold (a decompression bomb) is
//!   handed on a piece at a time, and the line and literal caps of the protocol's framer
//!   apply to the decompressed bytes. Input that is not valid DEFLATE (or anything after
//!   a final block) is an error: close the connection.
//!
//! Level: [`LEVEL`] = 1 (miniz_oxide's fastest, greedy matching). On IMAP responses (FETCH
//! summaries) it reaches 7 % of the input against 6 % at level 6, at a sixth of the
//! CPU time (measured on 5 MB of `FETCH (... ENVELOPE ...)` lines, x86: 9 ms against
//! 49 ms): on a Raspberry Pi the CPU is the scarce side, and the last percent is not
//! worth it. Decompression costs the same at any level.
//!
//! Memory (miniz_oxide 0.9, measured with a counting allocator): the decompressor holds
//! 43 KB (its 32 KiB window and tables) for the life of the connection; the compressor
//! 312 KB (a 32 KiB window, hash chains and the symbol buffer; the same at every level),
//! so [`Deflate::release_compressor`] drops it between batches when the connection is
//! expected to stay quiet (IDLE): the next batch starts a new compressor. That is valid
//! DEFLATE: after a sync flush the stream is at a block boundary, and a new block need
//! not refer back to earlier data (the peer's decompressor keeps its window either way).
//! Buffered input is at most one read plus [`MAX_PENDING`].

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The compression level (see the module docs for why 1).
pub const LEVEL: u32 = 1;

/// The most compressed input held before it is decompressed: the caller reads again only
/// after [`Deflate::inflate`] returned nothing, so in practice this is never reached.
pub const MAX_PENDING: usize = 64 * 1024;

/// Why the input cannot be decompressed: the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// Not valid DEFLATE.
    Corrupt,
    /// Data after the final block (RFC 4978 has no way to end compression).
    AfterEnd,
    /// More than [`MAX_PENDING`] compressed bytes could not be decompressed.
    TooMuchPending,
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InflateError::Corrupt => "invalid DEFLATE data",
            InflateError::AfterEnd => "data after the final DEFLATE block",
            InflateError::TooMuchPending => "too much undecodable DEFLATE input",
        })
    }
}

impl std::error::Error for InflateError {}

/// Both directions of one compressed connection.
pub struct Deflate {
    /// `None` between batches after [`Deflate::release_compressor`].
    compressor: Option<Box<Compress>>,
    decompressor: Box<Decompress>,
    /// Compressed input not yet decompressed (from `pos`).
    pending: Vec<u8>,
    pos: usize,
    /// The peer's stream ended with a final block.
    ended: bool,
    /// The input turned out broken; reported once the bytes before it are handed out.
    failed: Option<InflateError>,
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate::new()
    }
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("compressor", &self.compressor.is_some())
            .field("pending", &(self.pending.len() - self.pos))
            .field("ended", &self.ended)
            .finish()
    }
}

impl Deflate {
    /// Both directions, nothing compressed yet (raw DEFLATE: `zlib_header = false`).
    pub fn new() -> Deflate {
        Deflate {
            compressor: None,
            decompressor: Box::new(Decompress::new(false)),
            pending: Vec::new(),
            pos: 0,
            ended: false,
            failed: None,
        }
    }

    /// Compresses `data` and sync-flushes: the result decodes to exactly `data` once
    /// appended to what was compressed before.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        self.compress_part(data, true)
    }

    /// Compresses one part of a batch; `last`: sync-flush after it. Parts before the last
    /// may come out short or empty (the compressor holds data back until the flush), so a
    /// large batch goes out in bounded pieces, never whole in a second buffer.
    pub fn compress_part(&mut self, data: &[u8], last: bool) -> Vec<u8> {
        let flush = if last {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        let c = self
            .compressor
            .get_or_insert_with(|| Box::new(Compress::new(Compression::new(LEVEL), false)));
        // Level 1 on text rarely grows it; incompressible data grows by ~0.03 %.
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let start = c.total_in();
        loop {
            let done = usize::try_from(c.total_in() - start).unwrap_or(usize::MAX);
            let rest = data.get(done..).unwrap_or_default();
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let made_before = out.len();
            // The rust backend never fails to compress (flate2's error is for zlib's
            // stream-state errors); should it, or make no progress with room left, stop
            // rather than loop: the peer then sees a broken stream and disconnects.
            let res = c.compress_vec(rest, &mut out, flush);
            let now_done = usize::try_from(c.total_in() - start).unwrap_or(usize::MAX);
            let room = out.len() < out.capacity();
            let stuck = now_done == done && out.len() == made_before && room;
            // Finished when all input is in and the flush left room (nothing withheld).
            if res.is_err() || stuck || (now_done >= data.len() && room) {
                return out;
            }
        }
    }

    /// Drops the compressor's state (312 KB) until the next [`Deflate::compress`]. Every
    /// batch ends with a sync flush, so the stream stays valid (see the module docs); the
    /// cost is the next batch's lost back-references and a new allocation.
    pub fn release_compressor(&mut self) {
        self.compressor = None;
    }

    /// True while the compressor's state is allocated.
    pub fn compressor_allocated(&self) -> bool {
        self.compressor.is_some()
    }

    /// Adds compressed bytes read from the peer. Call [`Deflate::inflate`] until it
    /// returns nothing before reading again. An error here is also [`Deflate::inflate`]'s
    /// from now on.
    pub fn push_input(&mut self, compressed: &[u8]) -> Result<(), InflateError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.ended && !compressed.is_empty() {
            self.failed = Some(InflateError::AfterEnd);
            return Err(InflateError::AfterEnd);
        }
        if self.pos > 0 {
            self.pending.drain(..self.pos);
            self.pos = 0;
        }
        if self.pending.len() + compressed.len() > MAX_PENDING + crate::net::pump::READ_BUFFER {
            self.failed = Some(InflateError::TooMuchPending);
            return Err(InflateError::TooMuchPending);
        }
        self.pending.extend_from_slice(compressed);
        Ok(())
    }

    /// Compressed bytes held, not yet decompressed.
    pub fn pending_len(&self) -> usize {
        self.pending.len() - self.pos
    }

    /// Decompresses at most `max` bytes of what was pushed. Empty: everything pushed is
    /// decoded (read more). An error means the peer's stream is broken.
    pub fn inflate(&mut self, max: usize) -> Result<Vec<u8>, InflateError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut out = vec![0u8; max];
        let mut n = 0;
        while n < out.len() {
            let input = self.pending.get(self.pos..).unwrap_or_default();
            let (in0, out0) = (self.decompressor.total_in(), self.decompressor.total_out());
            let res = self.decompressor.decompress(
                input,
                out.get_mut(n..).unwrap_or_default(),
                FlushDecompress::None,
            );
            let used = usize::try_from(self.decompressor.total_in() - in0).unwrap_or(0);
            let made = usize::try_from(self.decompressor.total_out() - out0).unwrap_or(0);
            self.pos = (self.pos + used).min(self.pending.len());
            n += made;
            match res {
                Err(_) => self.failed = Some(InflateError::Corrupt),
                Ok(Status::StreamEnd) if self.pos < self.pending.len() => {
                    self.failed = Some(InflateError::AfterEnd);
                }
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(_) => {}
            }
            if self.failed.is_some() || (used == 0 && made == 0) {
                break;
            }
        }
        if self.pos == self.pending.len() {
            self.pending.clear();
            self.pos = 0;
        } else if self.pending.len() - self.pos > MAX_PENDING {
            self.failed = Some(InflateError::TooMuchPending);
        }
        // What decoded before an error is handed out first; the error comes next call.
        if n == 0
            && let Some(e) = self.failed
        {
            return Err(e);
        }
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decompresses `data` whole with a fresh raw decompressor (the peer's view).
    fn peer_inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() * 4 + 1024);
        let start = d.total_in();
        loop {
            let done = (d.total_in() - start) as usize;
            out.reserve(64 * 1024);
            d.decompress_vec(&data[done..], &mut out, FlushDecompress::Sync)
                .unwrap();
            if (d.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// A long, varied, text-like input.
    fn sample(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        let mut i = 0u64;
        while v.len() < n {
            v.extend_from_slice(
                format!(
                    "* {i} FETCH (UID {} FLAGS (\\Seen) RFC822.SIZE {})\r\n",
                    i * 7,
                    i ^ 0x5a5a
                )
                .as_bytes(),
            );
            i += 1;
        }
        v.truncate(n);
        v
    }

    /// Random bytes (xorshift), incompressible.
    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Every batch ends in a sync flush (`00 00 ff ff`) and decodes on its own, in order,
    /// with the peer's one decompressor: nothing is held back.
    #[test]
    fn each_batch_is_sync_flushed_and_decodes_at_once() {
        let mut z = Deflate::new();
        let mut peer = Decompress::new(false);
        for batch in [
            b"* OK [CAPABILITY IMAP4rev1] hi\r\n".to_vec(),
            b"a OK done\r\n".to_vec(),
            sample(300_000),
            noise(100_000, 7),
            Vec::new(),
            b"* 3 EXISTS\r\n".to_vec(),
        ] {
            let c = z.compress(&batch);
            assert!(
                c.ends_with(&[0, 0, 0xff, 0xff]),
                "{:?}",
                &c[c.len().saturating_sub(8)..]
            );
            assert_eq!(peer_inflate(&mut peer, &c), batch);
        }
    }

    /// A batch compressed in parts decodes as a whole once the last part is flushed.
    #[test]
    fn a_batch_in_parts_is_flushed_by_its_last_part() {
        let mut z = Deflate::new();
        let mut peer = Decompress::new(false);
        let data = sample(500_000);
        let mut wire = Vec::new();
        let mut parts = data.chunks(64 * 1024).peekable();
        while let Some(p) = parts.next() {
            wire.extend(z.compress_part(p, parts.peek().is_none()));
        }
        assert!(wire.len() * 5 < data.len(), "{}", wire.len());
        assert!(wire.ends_with(&[0, 0, 0xff, 0xff]));
        assert_eq!(peer_inflate(&mut peer, &wire), data);
    }

    /// Level 1 compresses IMAP responses well (the first-sync FETCH lines).
    #[test]
    fn compresses_fetch_responses() {
        let data = sample(1 << 20);
        let c = Deflate::new().compress(&data);
        assert!(c.len() * 5 < data.len(), "{} of {}", c.len(), data.len());
    }

    /// Releasing the compressor between batches (IDLE) keeps the stream valid for the
    /// peer's one decompressor.
    #[test]
    fn released_compressor_continues_the_stream() {
        let mut z = Deflate::new();
        let mut peer = Decompress::new(false);
        let a = sample(50_000);
        assert_eq!(peer_inflate(&mut peer, &z.compress(&a)), a);
        z.release_compressor();
        assert!(!z.compressor_allocated());
        let b = b"* 42 EXISTS\r\n".to_vec();
        assert_eq!(peer_inflate(&mut peer, &z.compress(&b)), b);
        assert!(z.compressor_allocated());
        assert_eq!(peer_inflate(&mut peer, &z.compress(&a)), a);
    }

    /// Input pushed in odd-sized pieces (1, 3, 7... bytes, as a client that flushes
    /// partially) decodes to the same bytes, never more than `max` at a time.
    #[test]
    fn inflates_partial_pieces_in_bounded_chunks() {
        let mut client = Deflate::new();
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        for part in [sample(10), sample(70_000), noise(5_000, 3), sample(3)] {
            wire.extend(client.compress(&part));
            plain.extend(part);
        }
        for max in [1, 5, 4096] {
            let mut server = Deflate::new();
            let mut got = Vec::new();
            let mut rest = &wire[..];
            let sizes = [1usize, 3, 7, 11, 64, 1000];
            let mut k = 0;
            while !rest.is_empty() {
                let n = sizes[k % sizes.len()].min(rest.len());
                k += 1;
                server.push_input(&rest[..n]).unwrap();
                rest = &rest[n..];
                loop {
                    let chunk = server.inflate(max).unwrap();
                    assert!(chunk.len() <= max);
                    if chunk.is_empty() {
                        break;
                    }
                    got.extend(chunk);
                }
                assert_eq!(server.pending_len(), 0);
            }
            assert_eq!(got, plain, "max {max}");
        }
    }

    /// A decompression bomb (16 MiB of one byte in 16 KB, level 9) comes out 16 KiB at a
    /// time; the compressed input held never grows.
    #[test]
    fn a_bomb_comes_out_in_bounded_chunks() {
        let bomb = vec![b'a'; 16 << 20];
        let mut c = Compress::new(Compression::new(9), false);
        let mut wire = Vec::with_capacity(1 << 20);
        c.compress_vec(&bomb, &mut wire, FlushCompress::Sync)
            .unwrap();
        assert!(wire.len() < 20_000, "{}", wire.len());
        let mut server = Deflate::new();
        let mut total = 0usize;
        let mut calls = 0;
        for piece in wire.chunks(16 * 1024) {
            server.push_input(piece).unwrap();
            loop {
                let chunk = server.inflate(16 * 1024).unwrap();
                assert!(chunk.len() <= 16 * 1024);
                assert!(server.pending_len() <= 16 * 1024);
                if chunk.is_empty() {
                    break;
                }
                assert!(chunk.iter().all(|&b| b == b'a'));
                total += chunk.len();
                calls += 1;
            }
        }
        assert_eq!(total, bomb.len());
        assert!(calls >= 1024);
    }

    /// Garbage is an error, at once or after the valid prefix; never a panic.
    #[test]
    fn garbage_is_an_error() {
        // BTYPE 11 (reserved, RFC 1951 §3.2.3).
        let mut z = Deflate::new();
        z.push_input(&[0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(z.inflate(1024), Err(InflateError::Corrupt));
        // A stored block whose LEN and NLEN disagree.
        let mut z = Deflate::new();
        z.push_input(&[0x00, 0x05, 0x00, 0x00, 0x00, b'x']).unwrap();
        assert_eq!(z.inflate(1024), Err(InflateError::Corrupt));
        // Valid commands, then junk: the commands come out first, then the error (which
        // stays). With a piece smaller than what miniz_oxide decoded ahead, the rest of
        // that is lost with the error: a prefix.
        let mut wire = Deflate::new().compress(b"a NOOP\r\n");
        wire.extend_from_slice(&[0xfe; 64]);
        for max in [1024, 3] {
            let mut z = Deflate::new();
            z.push_input(&wire).unwrap();
            let mut got = Vec::new();
            let err = loop {
                match z.inflate(max) {
                    Ok(c) if c.is_empty() => panic!("junk accepted"),
                    Ok(c) => got.extend(c),
                    Err(e) => break e,
                }
            };
            assert_eq!(err, InflateError::Corrupt);
            assert!(b"a NOOP\r\n".starts_with(&got), "{got:?}");
            if max == 1024 {
                assert_eq!(got, b"a NOOP\r\n");
            }
            assert_eq!(z.inflate(max), Err(InflateError::Corrupt));
            assert_eq!(z.push_input(b"x"), Err(InflateError::Corrupt));
        }
    }

    /// Anything after a final block is refused (RFC 4978 never ends compression).
    #[test]
    fn data_after_the_final_block_is_an_error() {
        let mut c = Compress::new(Compression::new(1), false);
        let mut wire = Vec::with_capacity(1024);
        c.compress_vec(b"x", &mut wire, FlushCompress::Finish)
            .unwrap();
        wire.extend_from_slice(b"more");
        let mut z = Deflate::new();
        z.push_input(&wire).unwrap();
        assert_eq!(z.inflate(1024), Ok(b"x".to_vec()));
        assert_eq!(z.inflate(1024), Err(InflateError::AfterEnd));
        assert_eq!(z.push_input(b"x"), Err(InflateError::AfterEnd));
        // The final block alone is fine; anything pushed after it is not.
        let mut z = Deflate::new();
        z.push_input(&wire[..wire.len() - 4]).unwrap();
        assert_eq!(z.inflate(1024), Ok(b"x".to_vec()));
        assert_eq!(z.inflate(1024), Ok(Vec::new()));
        assert_eq!(z.push_input(b"more"), Err(InflateError::AfterEnd));
    }

    /// Random input in random pieces: no panic, bounded output and buffers.
    #[test]
    fn random_input_never_panics() {
        for seed in 1..400u64 {
            let data = noise(64 + (seed as usize * 37) % 4000, seed);
            let mut z = Deflate::new();
            let mut rest = &data[..];
            'outer: while !rest.is_empty() {
                let n = (1 + (seed as usize ^ rest.len()) % 97).min(rest.len());
                if z.push_input(&rest[..n]).is_err() {
                    break;
                }
                rest = &rest[n..];
                loop {
                    match z.inflate(512) {
                        Ok(c) if c.is_empty() => break,
                        Ok(c) => assert!(c.len() <= 512),
                        Err(_) => break 'outer,
                    }
                    assert!(z.pending_len() <= MAX_PENDING);
                }
            }
        }
    }
}
