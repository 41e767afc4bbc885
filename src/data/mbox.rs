//! The mbox format, sans I/O: a streaming splitter fed arbitrary chunks that yields one
//! message at a time (never the whole file in memory), and the writer of mboxrd.
//!
//! Variants read (the `mbox(5)` family; see also RFC 4155):
//! - mboxo and mboxrd: a message starts at a `From ` line that follows an empty line (or
//!   starts the file) and carries a date, as mutt's `is_from()` demands, so a body line
//!   "From here on ..." after an empty line stays in the body. Lines matching `^>+From `
//!   lose one `>` (mboxrd un-quoting; for mboxo this also un-quotes lines the writer
//!   quoted, which is the common reading).
//! - mboxcl / mboxcl2: when the header has `Content-Length: N` and the N body bytes end at
//!   the end of the file or just before a `From ` line (after an optional empty line),
//!   the body is taken as counted, unquoted, even if it holds `From ` lines. If the count
//!   does not land there, the message is split by `From ` lines as above.
//! - LF and CRLF line ends (each message keeps those of the file).
//!
//! Each message comes with its `From ` line's date (the internal date), the byte offset
//! of its `From ` line, and the offset where the next message starts (the resume point).
//! A file that ends inside a line, or inside a counted body, has a truncated last message:
//! [`Splitter::finish`] reports it with its offset instead of returning it.

/// One message split out of an mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Byte offset of the message's `From ` line in the file.
    pub offset: u64,
    /// Byte offset just after the message and its separator: where the next one starts.
    pub end: u64,
    /// Unix seconds from the `From ` line, when it carries a date we can read.
    pub date: Option<i64>,
    /// The message (headers and body), un-quoted, without the `From ` line and without
    /// the empty line that separates it from the next message.
    pub bytes: Vec<u8>,
}

/// Why the input is not a usable mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The data does not start with a `From ` line.
    NotMbox {
        /// Byte offset.
        offset: u64,
    },
    /// One message is larger than the limit.
    TooLarge {
        /// Offset of its `From ` line.
        offset: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// The file ends inside the last message.
    Truncated {
        /// Offset of the truncated message's `From ` line.
        offset: u64,
        /// Where the data ends.
        at: u64,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotMbox { offset } => write!(
                f,
                "byte {offset}: not an mbox (expected a line \"From sender date\")"
            ),
            Error::TooLarge { offset, limit } => write!(
                f,
                "byte {offset}: the message starting here is larger than {limit} bytes"
            ),
            Error::Truncated { offset, at } => write!(
                f,
                "byte {offset}: the last message is truncated (the file ends at byte {at} inside it)"
            ),
        }
    }
}

impl std::error::Error for Error {}

#[derive(Debug)]
enum State {
    /// Before the first `From ` line.
    Start,
    /// In the header of a message.
    Header,
    /// In a body split by `From ` lines.
    Body,
    /// Reading `n` more counted body bytes (Content-Length).
    Counted(u64),
    /// After a counted body: an optional empty line, then `From ` or the end.
    AfterCounted,
}

/// The streaming splitter. Feed it with [`Splitter::feed`], take messages with
/// [`Splitter::next_message`] until it returns `None`, feed more; at the end of the data
/// call [`Splitter::finish`].
#[derive(Debug)]
pub struct Splitter {
    /// Bytes fed but not yet consumed (at most one partial line, bounded by `max`).
    pending: Vec<u8>,
    /// Start of `pending[0]` in the file.
    pos: u64,
    state: State,
    max: usize,
    /// The message being assembled.
    cur: Vec<u8>,
    cur_offset: u64,
    cur_date: Option<i64>,
    /// Content-Length seen in the current header.
    content_length: Option<u64>,
    /// The previous line was empty (a `From ` line may follow).
    prev_blank: bool,
    /// Length of the last line end appended to `cur` when it was an empty line
    /// (removed if a `From ` line follows: it belongs to the separator).
    blank_len: usize,
    /// Length of `cur` when a counted body began (to fall back to line splitting).
    counted_from: usize,
    /// The empty line seen after a counted body (given back if no `From ` follows).
    skipped_blank: Vec<u8>,
    /// Bytes to process again as lines (a counted body that was not one).
    replay: Option<Vec<u8>>,
    ready: Option<Message>,
}

impl Splitter {
    /// A splitter for data that starts at byte `offset` of the file (0, or a resume
    /// point), refusing messages over `max` bytes.
    pub fn new(offset: u64, max: usize) -> Splitter {
        Splitter {
            pending: Vec::new(),
            pos: offset,
            state: State::Start,
            max,
            cur: Vec::new(),
            cur_offset: offset,
            cur_date: None,
            content_length: None,
            prev_blank: true,
            blank_len: 0,
            counted_from: 0,
            skipped_blank: Vec::new(),
            replay: None,
            ready: None,
        }
    }

    /// Adds data. Call [`Splitter::next_message`] until it returns `Ok(None)` before
    /// feeding again, so memory stays bounded.
    pub fn feed(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// The next complete message, if the data fed so far holds one.
    pub fn next_message(&mut self) -> Result<Option<Message>, Error> {
        let mut start = 0;
        let res = loop {
            if let Some(m) = self.ready.take() {
                break Ok(Some(m));
            }
            if let State::Counted(n) = self.state {
                let avail = (self.pending.len() - start) as u64;
                let take = avail.min(n) as usize;
                self.cur
                    .extend_from_slice(&self.pending[start..start + take]);
                start += take;
                if let Err(e) = self.check_size() {
                    break Err(e);
                }
                if take as u64 == n {
                    self.state = State::AfterCounted;
                    self.prev_blank = false;
                    continue;
                }
                self.state = State::Counted(n - take as u64);
                break Ok(None);
            }
            if matches!(self.state, State::Start) {
                let rest = &self.pending[start..];
                let n = rest.len().min(5);
                if rest[..n] != b"From "[..n] {
                    break Err(Error::NotMbox {
                        offset: self.pos + start as u64,
                    });
                }
            }
            let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') else {
                if self.pending.len() - start > self.max.saturating_add(2) {
                    break Err(Error::TooLarge {
                        offset: self.cur_offset,
                        limit: self.max,
                    });
                }
                break Ok(None);
            };
            let end = start + nl + 1;
            let line = self.pending[start..end].to_vec();
            let line_pos = self.pos + start as u64;
            start = end;
            if let Err(e) = self.line(&line, line_pos) {
                break Err(e);
            }
            if let Some(mut replay) = self.replay.take() {
                // Put the bytes back in front of what is pending, at their file offset.
                self.pending.drain(..start);
                self.pos += start as u64;
                start = 0;
                self.pos -= replay.len() as u64;
                replay.extend_from_slice(&self.pending);
                self.pending = replay;
            }
        };
        self.pending.drain(..start);
        self.pos += start as u64;
        res
    }

    /// The end of the data: returns the last message, or reports it truncated.
    pub fn finish(&mut self) -> Result<Option<Message>, Error> {
        if let Some(m) = self.next_message()? {
            return Ok(Some(m));
        }
        let at = self.pos + self.pending.len() as u64;
        match self.state {
            State::Start if self.pending.is_empty() => Ok(None),
            State::Start => Err(Error::NotMbox { offset: self.pos }),
            _ if !self.pending.is_empty() => Err(Error::Truncated {
                offset: self.cur_offset,
                at,
            }),
            State::Counted(_) => Err(Error::Truncated {
                offset: self.cur_offset,
                at,
            }),
            State::Header | State::Body | State::AfterCounted => {
                let mut bytes = std::mem::take(&mut self.cur);
                if self.prev_blank {
                    bytes.truncate(bytes.len() - self.blank_len);
                }
                self.state = State::Start;
                Ok(Some(Message {
                    offset: self.cur_offset,
                    end: at,
                    date: self.cur_date,
                    bytes,
                }))
            }
        }
    }

    fn check_size(&self) -> Result<(), Error> {
        if self.cur.len() > self.max {
            return Err(Error::TooLarge {
                offset: self.cur_offset,
                limit: self.max,
            });
        }
        Ok(())
    }

    /// One whole line (with its line end) at file offset `pos`.
    fn line(&mut self, line: &[u8], pos: u64) -> Result<(), Error> {
        if line.len() > self.max.saturating_add(2) {
            return Err(Error::TooLarge {
                offset: self.cur_offset,
                limit: self.max,
            });
        }
        let blank = line == b"\n" || line == b"\r\n";
        let from = self.prev_blank && line.starts_with(b"From ");
        let from_date = if from { parse_from_line(line) } else { None };
        match self.state {
            State::Start => {
                if !line.starts_with(b"From ") {
                    return Err(Error::NotMbox { offset: pos });
                }
                self.begin(pos, parse_from_line(line));
                return Ok(());
            }
            State::AfterCounted if blank && !self.prev_blank => {
                self.prev_blank = true;
                self.blank_len = 0;
                self.skipped_blank = line.to_vec();
                return Ok(());
            }
            State::AfterCounted if line.starts_with(b"From ") => {
                self.emit(pos, false);
                self.begin(pos, parse_from_line(line));
                return Ok(());
            }
            State::AfterCounted => {
                // The count did not land on a message boundary: read the body again as
                // lines (mboxrd un-quoting, `From ` lines split).
                let mut replay = self.cur.split_off(self.counted_from);
                if self.prev_blank {
                    replay.append(&mut self.skipped_blank);
                }
                replay.extend_from_slice(line);
                self.state = State::Body;
                self.prev_blank = true;
                self.blank_len = if self.cur.ends_with(b"\r\n") { 2 } else { 1 };
                self.replay = Some(replay);
                return Ok(());
            }
            _ => {}
        }
        if from && from_date.is_some() {
            self.emit(pos, true);
            self.begin(pos, from_date);
            return Ok(());
        }
        match self.state {
            State::Header if blank => {
                self.cur.extend_from_slice(line);
                self.state = match self.content_length {
                    // A count over the size limit cannot be right: split by lines.
                    Some(n) if n > 0 && n <= self.max as u64 => {
                        self.counted_from = self.cur.len();
                        State::Counted(n)
                    }
                    _ => State::Body,
                };
            }
            State::Header => {
                if let Some(n) = content_length(line) {
                    self.content_length = Some(n);
                }
                self.cur.extend_from_slice(line);
            }
            _ => self.cur.extend_from_slice(unquote(line)),
        }
        self.prev_blank = blank;
        self.blank_len = if blank { line.len() } else { 0 };
        self.check_size()
    }

    fn begin(&mut self, pos: u64, date: Option<i64>) {
        self.state = State::Header;
        self.cur_offset = pos;
        self.cur_date = date;
        self.content_length = None;
        self.prev_blank = false;
        self.blank_len = 0;
        self.skipped_blank.clear();
    }

    /// The current message is complete; the next starts at `next`.
    fn emit(&mut self, next: u64, strip_blank: bool) {
        let mut bytes = std::mem::take(&mut self.cur);
        if strip_blank && self.prev_blank {
            bytes.truncate(bytes.len() - self.blank_len);
        }
        self.ready = Some(Message {
            offset: self.cur_offset,
            end: next,
            date: self.cur_date,
            bytes,
        });
    }
}

/// mboxrd: `>From `, `>>From ` ... lose one `>`.
fn unquote(line: &[u8]) -> &[u8] {
    let n = line.iter().take_while(|&&b| b == b'>').count();
    if n > 0 && line[n..].starts_with(b"From ") {
        &line[1..]
    } else {
        line
    }
}

fn content_length(line: &[u8]) -> Option<u64> {
    let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
    if !name.eq_ignore_ascii_case(b"Content-Length") {
        return None;
    }
    std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The date of a `From sender date` line (asctime form `Mon Jan  1 12:00:00 2024`,
/// optionally with a zone before or after the year, as RFC 4155 §2 shows), as unix
/// seconds; the zone is honoured when numeric, else UTC is assumed.
pub fn parse_from_line(line: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(line).ok()?;
    let toks: Vec<&str> = text.split_ascii_whitespace().collect();
    // toks[0] = "From", toks[1] = sender; find "Mon DD HH:MM[:SS]" after that.
    let i = (2..toks.len()).find(|&i| month(toks[i]).is_some())?;
    let mon = month(toks[i])?;
    let day: u32 = toks.get(i + 1)?.parse().ok()?;
    let time = toks.get(i + 2)?;
    let mut tp = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m) = (tp.next()??, tp.next()??);
    let s = tp.next().flatten().unwrap_or(0);
    let mut year = None;
    let mut zone = 0i64;
    for t in toks.iter().skip(i + 3).take(2) {
        if let Ok(y) = t.parse::<i64>()
            && (1900..=9999).contains(&y)
            && t.len() == 4
        {
            year = Some(y);
        } else if let Some(z) = numeric_zone(t) {
            zone = z;
        }
    }
    let year = year?;
    if day == 0 || day > 31 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(
        crate::imap::fetch::days_from_civil(year, mon, day) * 86400
            + i64::from(h * 3600 + m * 60 + s)
            - zone,
    )
}

fn month(t: &str) -> Option<u32> {
    let t = t.to_ascii_lowercase();
    MONTHS.iter().position(|m| *m == t).map(|i| i as u32 + 1)
}

fn numeric_zone(t: &str) -> Option<i64> {
    let (sign, digits) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(sign * ((n / 100) * 3600 + (n % 100) * 60))
}

/// The asctime date of a `From ` line for `unix` seconds (UTC).
pub fn asctime(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    // civil_from_days (Hinnant).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MON[(m - 1) as usize],
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        y
    )
}

/// Writes one message in mboxrd form: the `From ` line, `extra` header lines (already
/// terminated) before the message's own, the message with LF line ends and `^>*From `
/// lines quoted with one more `>`, and the separating empty line.
pub fn write_message(out: &mut Vec<u8>, sender: &str, date: i64, extra_headers: &[u8], raw: &[u8]) {
    out.extend_from_slice(b"From ");
    out.extend_from_slice(if sender.is_empty() {
        b"MAILER-DAEMON"
    } else {
        sender.as_bytes()
    });
    out.push(b' ');
    out.extend_from_slice(asctime(date).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(extra_headers);
    let mut last_nl = true;
    for l in raw.split_inclusive(|&b| b == b'\n') {
        let body = l
            .strip_suffix(b"\r\n")
            .or_else(|| l.strip_suffix(b"\n"))
            .unwrap_or(l);
        let n = body.iter().take_while(|&&b| b == b'>').count();
        if body[n..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(body);
        last_nl = body.len() != l.len();
        if last_nl {
            out.push(b'\n');
        }
    }
    if !last_nl {
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Feeds all of `data` (an in-memory file) through `s` in chunks of the sizes `chunks`
/// (cycled; a 0 counts as 1), then finishes: the messages found, and the error that
/// stopped the split if one did. For the unit tests and the fuzz target (the importer
/// streams from the file instead).
pub fn split_all(mut s: Splitter, data: &[u8], chunks: &[usize]) -> (Vec<Message>, Option<Error>) {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let size = chunks.get(i % chunks.len().max(1)).copied().unwrap_or(1);
        let n = size.max(1).min(rest.len());
        i += 1;
        s.feed(&rest[..n]);
        rest = &rest[n..];
        loop {
            match s.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    loop {
        match s.finish() {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole of `data` through a fresh splitter, in chunks of the sizes `chunks`.
    fn split(data: &[u8], chunks: &[usize]) -> Result<Vec<Message>, Error> {
        match split_all(Splitter::new(0, 1 << 20), data, chunks) {
            (msgs, None) => Ok(msgs),
            (_, Some(e)) => Err(e),
        }
    }

    /// A small deterministic generator (xorshift) for chunk sizes.
    fn chunkings(seed: u64) -> Vec<Vec<usize>> {
        let mut x = seed | 1;
        let mut all = vec![vec![1], vec![2], vec![7], vec![4096]];
        for _ in 0..20 {
            let mut v = Vec::new();
            for _ in 0..16 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push((x % 97) as usize + 1);
            }
            all.push(v);
        }
        all
    }

    fn check(data: &[u8], want: &[&[u8]]) -> Vec<Message> {
        let mut first = None;
        for c in chunkings(data.len() as u64) {
            let got = split(data, &c).unwrap();
            let bodies: Vec<&[u8]> = got.iter().map(|m| m.bytes.as_slice()).collect();
            assert_eq!(
                bodies,
                want,
                "chunks {c:?}: {:?}",
                bodies
                    .iter()
                    .map(|b| String::from_utf8_lossy(b))
                    .collect::<Vec<_>>()
            );
            if let Some(f) = &first {
                assert_eq!(f, &got);
            }
            first = Some(got);
        }
        first.unwrap_or_default()
    }

    #[test]
    fn mboxrd_lf_with_from_lines_in_bodies() {
        let data = b"From a@b Mon Jan  1 12:00:00 2024\nSubject: one\n\nhello\n>From the start\n>>From twice\nFrom here on, no date\n\nFrom b@c Tue Jan  2 00:00:01 2024\nSubject: two\n\nbye\n\n";
        let got = check(
            data,
            &[
                b"Subject: one\n\nhello\nFrom the start\n>From twice\nFrom here on, no date\n",
                b"Subject: two\n\nbye\n",
            ],
        );
        assert_eq!(got[0].offset, 0);
        assert_eq!(got[0].date, Some(1704110400));
        assert_eq!(got[1].offset, got[0].end);
        assert_eq!(&data[got[1].offset as usize..][..5], b"From ");
        assert_eq!(got[1].end, data.len() as u64);
        assert_eq!(got[1].date, Some(1704153601));
    }

    #[test]
    fn crlf_file_and_blank_line_then_from_in_body_without_date() {
        let data = b"From a Mon Jan  1 12:00:00 2024\r\nA: 1\r\n\r\nx\r\n\r\nFrom me to you\r\n\r\nFrom b Mon Jan  1 12:00:00 2024\r\nB: 2\r\n\r\ny\r\n";
        check(
            data,
            &[
                b"A: 1\r\n\r\nx\r\n\r\nFrom me to you\r\n",
                b"B: 2\r\n\r\ny\r\n",
            ],
        );
    }

    #[test]
    fn content_length_bodies_keep_unquoted_from_lines() {
        let data = b"From a Mon Jan  1 12:00:00 2024\nContent-Length: 21\n\nbody\n\nFrom x Jan 1 1:00\n\nFrom b Mon Jan  1 12:00:00 2024\nContent-Length: 3\n\nyo\n";
        check(
            data,
            &[
                b"Content-Length: 21\n\nbody\n\nFrom x Jan 1 1:00\n",
                b"Content-Length: 3\n\nyo\n",
            ],
        );
    }

    #[test]
    fn wrong_content_length_falls_back_to_from_lines() {
        let data = b"From a Mon Jan  1 12:00:00 2024\nContent-Length: 2\n\n>From body\nmore\n\nFrom b Mon Jan  1 12:00:00 2024\nX: y\n\nz\n";
        check(
            data,
            &[b"Content-Length: 2\n\nFrom body\nmore\n", b"X: y\n\nz\n"],
        );
    }

    #[test]
    fn truncated_last_message_is_reported_with_offsets() {
        let data = b"From a Mon Jan  1 12:00:00 2024\nA: 1\n\nx\n\nFrom b Mon Jan  1 12:00:00 2024\nB: 2\n\ncut in the mid";
        let mut s = Splitter::new(0, 1 << 20);
        s.feed(data);
        let first = s.next_message().unwrap().unwrap();
        assert_eq!(first.bytes, b"A: 1\n\nx\n");
        assert_eq!(s.next_message().unwrap(), None);
        assert_eq!(
            s.finish(),
            Err(Error::Truncated {
                offset: first.end,
                at: data.len() as u64
            })
        );
        let counted = b"From a Mon Jan  1 12:00:00 2024\nContent-Length: 100\n\nshort\n";
        assert!(matches!(
            split(counted, &[3]),
            Err(Error::Truncated { offset: 0, .. })
        ));
    }

    #[test]
    fn not_an_mbox_and_too_large() {
        assert_eq!(
            split(b"Subject: x\n\nhi\n", &[5]),
            Err(Error::NotMbox { offset: 0 })
        );
        assert_eq!(split(b"", &[5]), Ok(vec![]));
        let mut s = Splitter::new(0, 10);
        s.feed(b"From a Mon Jan  1 12:00:00 2024\n0123456789abcdef\n");
        assert!(matches!(s.next_message(), Err(Error::TooLarge { .. })));
        let mut s = Splitter::new(0, 10);
        s.feed(b"From a Mon Jan  1 12:00:00 2024\n");
        s.feed(&[b'x'; 100]);
        assert!(matches!(s.next_message(), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn resume_at_an_offset() {
        let data = b"From a Mon Jan  1 12:00:00 2024\nA: 1\n\nx\n\nFrom b Mon Jan  1 12:00:00 2024\nB: 2\n\ny\n";
        let all = split(data, &[9]).unwrap();
        let mut s = Splitter::new(all[0].end, 1 << 20);
        s.feed(&data[all[0].end as usize..]);
        let m = s.finish().unwrap().unwrap();
        assert_eq!(m, all[1]);
    }

    #[test]
    fn from_line_dates() {
        assert_eq!(
            parse_from_line(b"From x@y Thu Jan  1 00:00:00 1970\n"),
            Some(0)
        );
        assert_eq!(
            parse_from_line(b"From x@y Thu Jan  1 01:00:00 +0100 1970\n"),
            Some(0)
        );
        assert_eq!(
            parse_from_line(b"From 1234@xxx Sat Mar 02 10:11:12 +0000 2024\r\n"),
            Some(1709374272)
        );
        assert_eq!(parse_from_line(b"From here on we go\n"), None);
        assert_eq!(parse_from_line(b"From x Jan 99 10:00:00 2024\n"), None);
        for t in [0i64, 1709374272, 951782400, 4102444799] {
            let line = format!("From a {}\n", asctime(t));
            assert_eq!(parse_from_line(line.as_bytes()), Some(t), "{line}");
        }
    }

    #[test]
    fn writer_round_trips_through_the_splitter() {
        let msgs: [&[u8]; 3] = [
            b"Subject: a\r\n\r\nFrom x\r\n>From y\r\n\r\nFrom z Mon Jan  1 12:00:00 2024\r\n",
            b"Subject: b\r\n\r\nno final newline",
            b"Subject: c\r\n\r\n\r\n\r\n",
        ];
        let mut out = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            write_message(&mut out, "a@b", 1704110400 + i as i64, b"Status: RO\n", m);
        }
        let got = split(&out, &[13]).unwrap();
        assert_eq!(got.len(), 3);
        for (i, (g, m)) in got.iter().zip(msgs).enumerate() {
            let lf: Vec<u8> = String::from_utf8_lossy(m).replace("\r\n", "\n").into();
            let mut want = b"Status: RO\n".to_vec();
            want.extend_from_slice(&lf);
            if !want.ends_with(b"\n") {
                want.push(b'\n');
            }
            assert_eq!(g.bytes, want, "{i}");
            assert_eq!(g.date, Some(1704110400 + i as i64));
        }
    }

    /// The fuzz target's properties over generated files: the same result whatever the
    /// chunking, offsets that chain, and a resume at a boundary yields the rest.
    #[test]
    fn generated_files_split_the_same_in_any_chunks() {
        const PARTS: [&[u8]; 12] = [
            b"From a Mon Jan  1 12:00:00 2024\n",
            b"From b Tue Feb  2 01:02:03 2021\r\n",
            b"\n",
            b"\r\n",
            b">From x\n",
            b"Content-Length: 5\n",
            b"Content-Length: 0\n",
            b"hello\n",
            b"From here\n",
            b"X: y\n",
            b"abc",
            b">>From z\r\n",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..400 {
            let mut file = Vec::new();
            for _ in 0..(next() % 30) {
                file.extend_from_slice(PARTS[(next() % PARTS.len() as u64) as usize]);
            }
            let split = |data: &[u8], offset: u64, chunk: usize| {
                split_all(Splitter::new(offset, 64), data, &[chunk])
            };
            let whole = split(&file, 0, file.len().max(1));
            let chunk = (next() % 9) as usize + 1;
            assert_eq!(
                whole,
                split(&file, 0, chunk),
                "{:?}",
                String::from_utf8_lossy(&file)
            );
            let mut prev = 0;
            for m in &whole.0 {
                assert_eq!(m.offset, prev);
                assert!(m.end > m.offset && m.end as usize <= file.len());
                prev = m.end;
            }
            if let Some(first) = whole.0.first() {
                let rest = split(&file[first.end as usize..], first.end, 3);
                assert_eq!(rest.0.as_slice(), &whole.0[1..]);
            }
        }
    }
}
