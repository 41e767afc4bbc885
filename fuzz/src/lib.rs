//! Helpers shared by the fuzz targets.
//!
//! Every session target reads its input the same way: the first [`CTL`] bytes are
//! control bytes (configuration flags and the seed of a small PRNG), the rest is the
//! byte stream a client sends. The PRNG picks where the stream is split into reads and
//! how the fake driver answers each event, so a corpus file is a readable transcript
//! with an 8-byte prefix.

/// Number of control bytes in front of the transcript.
pub const CTL: usize = 8;

/// Splits an input into control bytes and transcript (`None` if too short).
pub fn split_ctl(data: &[u8]) -> Option<([u8; CTL], &[u8])> {
    let (ctl, rest) = data.split_at_checked(CTL)?;
    Some((ctl.try_into().ok()?, rest))
}

/// xorshift64*: deterministic choices from the control bytes.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the control bytes.
    pub fn new(ctl: &[u8; CTL]) -> Rng {
        Rng(u64::from_le_bytes(*ctl) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// The length of the next read out of `left` bytes (`left > 0`): often tiny, so
    /// that every split point is tried, sometimes everything at once.
    pub fn chunk(&mut self, left: usize) -> usize {
        let n = match self.below(5) {
            0 => 1 + self.below(4),
            1 => 1 + self.below(32),
            2 => 1 + self.below(512),
            3 => 1 + self.below(8192),
            _ => left,
        };
        n.min(left)
    }
}

/// Checks that `out` is a sequence of CRLF-terminated lines with no bare CR or LF,
/// so that nothing a client sent can inject a line into a reply.
pub fn assert_crlf_lines(out: &[u8]) {
    assert!(out.ends_with(b"\r\n"), "reply not CRLF-terminated: {out:?}");
    let mut rest = out;
    while !rest.is_empty() {
        let i = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("unterminated line");
        let line = &rest[..i];
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "bare CR/LF in reply line {:?}",
            String::from_utf8_lossy(line)
        );
        rest = &rest[i + 2..];
    }
}
