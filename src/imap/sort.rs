//! SORT (RFC 5256 §3 BASE.6.4.SORT, RFC 5957 SORT=DISPLAY) as pure functions over the
//! parse-once data: the base subject (RFC 5256 §2.1), the sent date (§2.2), the
//! i;unicode-casemap collation (RFC 5051) and the per-message sort keys. The session
//! extracts one [`SortRow`] per matching message from its stored
//! [`ParsedMessage`](crate::mail::message::ParsedMessage) (never from the bytes), drops
//! the structure, and sorts the rows.
//!
//! # Collation: i;unicode-casemap (RFC 5051 §2), as implemented
//! Each character is mapped to its titlecase, then the string is decomposed to NFKD
//! (`icu_normalizer`), and the results are compared octet by octet as UTF-8. Rust has no
//! titlecase table; we use the simple uppercase mapping, which equals the titlecase for
//! every character but the four Latin digraph triples (mapped to their titlecase form by
//! hand here) and characters whose uppercase is several characters (`ß`, `ŉ`, Greek with
//! iota subscript ...): those are left as they are. Like Dovecot, the characters that
//! decomposition produces are titlecased as well, so the ligature `ﬁ` equals `FI`
//! (RFC 5051 alone would leave it `fi`).

use std::cmp::Ordering;

use super::command::{SortCriterion, SortKey};
use super::fetch;
use crate::mail::message::{EnvAddress, ParsedMessage};

/// The i;unicode-casemap form of `s` (see the module docs).
pub fn casemap(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    let titled: String = s.chars().map(titlecase).collect();
    match icu_normalizer::DecomposingNormalizerBorrowed::new_nfkd().normalize(&titled) {
        std::borrow::Cow::Borrowed(_) => titled,
        // What decomposition produced (the "fi" of a ligature) is titlecased too.
        std::borrow::Cow::Owned(d) => d.chars().map(titlecase).collect(),
    }
}

/// Simple titlecase of one character (see the module docs for the approximation).
fn titlecase(c: char) -> char {
    match c {
        '\u{1C4}'..='\u{1C6}' => '\u{1C5}',
        '\u{1C7}'..='\u{1C9}' => '\u{1C8}',
        '\u{1CA}'..='\u{1CC}' => '\u{1CB}',
        '\u{1F1}'..='\u{1F3}' => '\u{1F2}',
        _ => {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        }
    }
}

/// Decodes RFC 2047 encoded words in an unstructured header value (mail-parser's
/// decoder, with its charset tables); the value unchanged when it has none.
pub fn decode_words(raw: &str) -> String {
    if !raw.contains("=?") {
        return raw.to_string();
    }
    let mut line = Vec::with_capacity(raw.len() + 2);
    line.extend_from_slice(raw.as_bytes());
    line.extend_from_slice(b"\r\n");
    match mail_parser::parsers::MessageStream::new(&line).parse_unstructured() {
        mail_parser::HeaderValue::Text(t) => t.into_owned(),
        mail_parser::HeaderValue::TextList(l) => l.join(" "),
        _ => raw.to_string(),
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Length of a subj-blob at the start of `s` (`"[" *BLOBCHAR "]" *WSP`), if any.
fn blob_len(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let close = s.iter().skip(1).position(|&b| b == b'[' || b == b']')? + 1;
    if s.get(close) != Some(&b']') {
        return None;
    }
    let mut n = close + 1;
    while s.get(n).copied().is_some_and(is_wsp) {
        n += 1;
    }
    Some(n)
}

/// The run of subj-blobs at the start of `s`: the length of the whole run and the
/// offset of its last blob.
fn blob_run(s: &[u8]) -> (usize, usize) {
    let (mut end, mut last) = (0, 0);
    while let Some(n) = s.get(end..).and_then(blob_len) {
        last = end;
        end += n;
    }
    (end, last)
}

fn refwd_len(s: &[u8]) -> Option<usize> {
    let starts = |p: &[u8]| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p);
    let mut i = if starts(b"re") {
        2
    } else if starts(b"fwd") {
        3
    } else if starts(b"fw") {
        2
    } else {
        return None;
    };
    while s.get(i).copied().is_some_and(is_wsp) {
        i += 1;
    }
    if let Some(n) = s.get(i..).and_then(blob_len) {
        i += n;
    }
    (s.get(i) == Some(&b':')).then_some(i + 1)
}

/// The base subject of a Subject header (RFC 5256 §2.1 steps 1-7), not yet casemapped,
/// and whether the message is a reply or forward (RFC 5256 §3 REFERENCES: the
/// extraction removed a subj-refwd, a `(fwd)` trailer, or a `[fwd: ...]` wrapper).
pub fn base_subject(raw: &str) -> (String, bool) {
    // (1) Encoded words to UTF-8; tabs and continuations to spaces; runs of spaces to one.
    let decoded = decode_words(raw);
    let mut s = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if !(c == ' ' && s.ends_with(' ')) {
            s.push(c);
        }
    }
    let mut reply = false;
    let mut b: &str = &s;
    loop {
        // (2) Trailing "(fwd)" and whitespace, repeatedly.
        loop {
            let t = b.trim_end_matches([' ', '\t']);
            if t.len() >= 5 && t.as_bytes()[t.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                b = &t[..t.len() - 5];
                reply = true;
            } else {
                b = t;
                break;
            }
        }
        // (3)-(5) Leaders (whitespace, blobs followed by re/fw/fwd) and a leading blob
        // that is not the whole subject, until none is left.
        loop {
            let bytes = b.as_bytes();
            if bytes.first().copied().is_some_and(is_wsp) {
                b = &b[1..];
                continue;
            }
            // `*subj-blob subj-refwd`: blob boundaries are unambiguous, so the blobs
            // before a refwd are the whole run of leading blobs.
            let (run, last) = blob_run(bytes);
            if let Some(n) = bytes.get(run..).and_then(refwd_len) {
                b = &b[run + n..];
                reply = true;
                continue;
            }
            // Step (4), repeated with (3) finding nothing new in between: leading blobs
            // go while something is left after them; of a subject that is only blobs, the
            // last stays. All at once, so "[a][a][a]..." costs one pass, not one each.
            if run > 0 {
                let cut = if b[run..].bytes().any(|c| !is_wsp(c)) {
                    run
                } else {
                    last
                };
                if cut > 0 {
                    b = &b[cut..];
                    continue;
                }
            }
            break;
        }
        // (6) "[fwd:" ... "]" around the whole: unwrap and start again from (2).
        let bytes = b.as_bytes();
        if bytes.len() >= 6 && bytes[..5].eq_ignore_ascii_case(b"[fwd:") && b.ends_with(']') {
            b = &b[5..b.len() - 1];
            reply = true;
            continue;
        }
        // (7).
        return (b.to_string(), reply);
    }
}

/// The sent date (RFC 5256 §2.2) of an RFC 5322 `Date:` value, as unix seconds in UTC:
/// an invalid zone counts as UTC and an invalid time as 00:00:00. `None` when the day
/// itself cannot be read (the caller falls back to INTERNALDATE).
pub fn sent_date(s: &str) -> Option<i64> {
    // Comments (obsolete zone names in parentheses and the like) are not part of it.
    let s = s.split('(').next().unwrap_or(s);
    let s = match s.split_once(',') {
        Some((_, rest)) => rest,
        None => s,
    };
    let mut it = s.split_ascii_whitespace();
    let day: u32 = it.next()?.parse().ok()?;
    let m = it.next()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|x| m.len() >= 3 && m.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(x)))?;
    let mut year: i64 = it.next()?.parse().ok()?;
    // RFC 5322 §4.3 obsolete two- and three-digit years.
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    if !(1..=31).contains(&day) {
        return None;
    }
    let days = fetch::days_from_civil(year, month as u32 + 1, day);
    let mut secs = 0i64;
    let mut offset = 0i64;
    if let Some(time) = it.next() {
        let mut parts = time.split(':').map(|p| p.parse::<i64>().ok());
        let (h, mi, se) = (parts.next().flatten(), parts.next().flatten(), parts.next());
        if let (Some(h), Some(mi)) = (h, mi)
            && (0..24).contains(&h)
            && (0..60).contains(&mi)
        {
            let se = match se {
                None => Some(0),
                Some(v) => v.filter(|v| (0..=60).contains(v)),
            };
            if let Some(se) = se {
                secs = h * 3600 + mi * 60 + se;
                offset = it.next().map(zone_offset).unwrap_or(0);
            }
        }
    }
    Some(days * 86_400 + secs - offset)
}

/// A zone's offset from UTC in seconds (RFC 5322 §3.3 and §4.3 obsolete names); 0 when
/// it is not valid.
fn zone_offset(z: &str) -> i64 {
    let b = z.as_bytes();
    if b.len() == 5 && matches!(b[0], b'+' | b'-') && b[1..].iter().all(u8::is_ascii_digit) {
        let n = |i: usize| i64::from(b[i] - b'0');
        let (h, m) = (n(1) * 10 + n(2), n(3) * 10 + n(4));
        if m >= 60 {
            return 0;
        }
        let off = h * 3600 + m * 60;
        return if b[0] == b'-' { -off } else { off };
    }
    let hours = match z.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => 0,
    };
    hours * 3600
}

/// The sent date of a message, or its INTERNALDATE when the Date header is missing or
/// unreadable (RFC 5256 §2.2).
pub fn sent_or_internal(parsed: Option<&ParsedMessage>, internal_date: i64) -> i64 {
    parsed
        .and_then(|p| p.envelope.date.as_deref())
        .and_then(sent_date)
        .unwrap_or(internal_date)
}

/// `addr-mailbox` of the first address of a list (RFC 5256 SORT FROM, TO, CC), empty
/// when there is none.
fn first_mailbox(list: &[EnvAddress]) -> &str {
    list.first()
        .and_then(|a| a.mailbox.as_deref())
        .unwrap_or("")
}

/// RFC 5957 §3: the display name of the first address when it has a non-empty one
/// (decoded, as mail-parser stores it), else its addr-spec; empty when there is none.
fn display(list: &[EnvAddress]) -> String {
    let Some(a) = list.first() else {
        return String::new();
    };
    match a.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => decode_words(n),
        _ => match (&a.mailbox, &a.host) {
            (Some(m), Some(h)) => format!("{m}@{h}"),
            (Some(m), None) => m.clone(),
            _ => String::new(),
        },
    }
}

/// One sort value of a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    /// ARRIVAL, DATE, SIZE.
    Num(i64),
    /// The casemapped string keys; the empty string collates first.
    Str(String),
}

/// What a message is sorted by: its values for the criteria, in criterion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortRow {
    /// Sequence number (the implicit last criterion, RFC 5256 §3).
    pub seq: u32,
    /// UID.
    pub uid: u32,
    /// Mod-sequence (CONDSTORE's `(MODSEQ n)` in the reply).
    pub modseq: u64,
    /// One value per criterion.
    pub values: Vec<SortValue>,
}

/// Whether a criterion needs the parse-once structure (all but ARRIVAL and SIZE).
pub fn needs_parsed(criteria: &[SortCriterion]) -> bool {
    criteria
        .iter()
        .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size))
}

/// The value of one key for a message.
pub fn value(
    key: SortKey,
    parsed: Option<&ParsedMessage>,
    internal_date: i64,
    size: u64,
) -> SortValue {
    let env = parsed.map(|p| &p.envelope);
    let s = |f: fn(&crate::mail::message::Envelope) -> &[EnvAddress]| {
        SortValue::Str(
            env.map(|e| casemap(first_mailbox(f(e))))
                .unwrap_or_default(),
        )
    };
    match key {
        SortKey::Arrival => SortValue::Num(internal_date),
        SortKey::Size => SortValue::Num(i64::try_from(size).unwrap_or(i64::MAX)),
        SortKey::Date => SortValue::Num(sent_or_internal(parsed, internal_date)),
        SortKey::Subject => SortValue::Str(
            env.and_then(|e| e.subject.as_deref())
                .map(|s| casemap(&base_subject(s).0))
                .unwrap_or_default(),
        ),
        SortKey::From => s(|e| &e.from),
        SortKey::To => s(|e| &e.to),
        SortKey::Cc => s(|e| &e.cc),
        SortKey::DisplayFrom => {
            SortValue::Str(env.map(|e| casemap(&display(&e.from))).unwrap_or_default())
        }
        SortKey::DisplayTo => {
            SortValue::Str(env.map(|e| casemap(&display(&e.to))).unwrap_or_default())
        }
    }
}

/// The sort keys of one message body, all at once, as [`KeyCache`] keeps them: strings
/// already casemapped, the sent date without its INTERNALDATE fallback (that belongs to
/// the mailbox row: a copy may have another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyKeys {
    sent: Option<i64>,
    subject: Box<str>,
    /// The subject shows a reply or forward (THREAD=REFERENCES).
    pub reply: bool,
    /// Message-ID and references (THREAD).
    pub thread: super::thread::ThreadKeys,
    from: Box<str>,
    to: Box<str>,
    cc: Box<str>,
    display_from: Box<str>,
    display_to: Box<str>,
}

impl BodyKeys {
    /// The keys of a parsed message.
    pub fn of(parsed: &ParsedMessage) -> BodyKeys {
        let e = &parsed.envelope;
        let s = |x: &str| casemap(x).into_boxed_str();
        let (subject, reply) = e.subject.as_deref().map(base_subject).unwrap_or_default();
        BodyKeys {
            sent: e.date.as_deref().and_then(sent_date),
            subject: s(&subject),
            reply,
            thread: super::thread::ThreadKeys::of(
                e.message_id.as_deref(),
                parsed.references.as_deref(),
                e.in_reply_to.as_deref(),
            ),
            from: s(first_mailbox(&e.from)),
            to: s(first_mailbox(&e.to)),
            cc: s(first_mailbox(&e.cc)),
            display_from: s(&display(&e.from)),
            display_to: s(&display(&e.to)),
        }
    }

    /// The value of `key` (the same as [`value`] gives from the parsed message).
    pub fn value(&self, key: SortKey, internal_date: i64, size: u64) -> SortValue {
        let s = |x: &str| SortValue::Str(x.to_string());
        match key {
            SortKey::Arrival => SortValue::Num(internal_date),
            SortKey::Size => SortValue::Num(i64::try_from(size).unwrap_or(i64::MAX)),
            SortKey::Date => SortValue::Num(self.sent.unwrap_or(internal_date)),
            SortKey::Subject => s(&self.subject),
            SortKey::From => s(&self.from),
            SortKey::To => s(&self.to),
            SortKey::Cc => s(&self.cc),
            SortKey::DisplayFrom => s(&self.display_from),
            SortKey::DisplayTo => s(&self.display_to),
        }
    }

    /// The sent date, or `internal_date` when the Date header could not be read.
    pub fn sent(&self, internal_date: i64) -> i64 {
        self.sent.unwrap_or(internal_date)
    }

    /// The casemapped base subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Bytes held, roughly (for the cache's bound).
    fn weight(&self) -> usize {
        128 + self.thread.weight()
            + self.subject.len()
            + self.from.len()
            + self.to.len()
            + self.cc.len()
            + self.display_from.len()
            + self.display_to.len()
    }
}

/// The sort keys of message bodies, kept across commands and sessions and keyed by the
/// body's SHA-256 (so copies and every session share them), as Dovecot keeps its sort
/// data in its index cache: a SORT then reads the mailbox's rows in one range scan and
/// decodes a stored structure only for bodies it has not seen. Bounded by
/// [`KeyCache::MAX_BYTES`]; when full it is emptied and fills again.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<Entries>,
}

/// What [`KeyCache`] holds: the keys, and about how many bytes they take.
#[derive(Debug, Default)]
struct Entries {
    map: std::collections::HashMap<[u8; 32], std::sync::Arc<BodyKeys>>,
    bytes: usize,
}

impl KeyCache {
    /// The bound on what the cache holds: 16 MiB, about 100,000 messages.
    pub const MAX_BYTES: usize = 16 << 20;

    /// The keys of these bodies that are known, in order (`None` for the others).
    pub fn get_many(&self, blobs: &[[u8; 32]]) -> Vec<Option<std::sync::Arc<BodyKeys>>> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        blobs.iter().map(|b| e.map.get(b).cloned()).collect()
    }

    /// Remembers the keys of a body.
    pub fn insert(&self, blob: [u8; 32], keys: BodyKeys) -> std::sync::Arc<BodyKeys> {
        let keys = std::sync::Arc::new(keys);
        let w = keys.weight() + 48;
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.bytes + w > Self::MAX_BYTES {
            e.map = Default::default();
            e.bytes = 0;
        }
        if e.map.insert(blob, keys.clone()).is_none() {
            e.bytes += w;
        }
        keys
    }
}

/// Orders two rows by the criteria (each possibly REVERSE), then by sequence number,
/// which REVERSE never affects (RFC 5256 §3).
pub fn compare(criteria: &[SortCriterion], a: &SortRow, b: &SortRow) -> Ordering {
    for (i, c) in criteria.iter().enumerate() {
        let o = a.values.get(i).cmp(&b.values.get(i));
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.seq.cmp(&b.seq)
}

/// Sorts rows in place (RFC 5256 §3).
pub fn sort(criteria: &[SortCriterion], rows: &mut [SortRow]) {
    rows.sort_unstable_by(|a, b| compare(criteria, a, b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::message;

    fn base(s: &str) -> &'static str {
        Box::leak(base_subject(s).0.into_boxed_str())
    }

    /// RFC 5256 §2.1, step by step, with the artefacts its ABNF (§5) names.
    #[test]
    fn base_subject_extraction() {
        // (1) whitespace normalised, encoded words decoded.
        assert_eq!(base("  Hello \t  world  "), "Hello world");
        assert_eq!(
            base("=?utf-8?q?Caf=C3=A9?= =?utf-8?q?_au_lait?="),
            "Café au lait"
        );
        assert_eq!(base("Re: =?iso-8859-1?q?caf=E9?="), "café");
        // (2) trailers.
        assert_eq!(base("Lunch (fwd)"), "Lunch");
        assert_eq!(base("Lunch (FWD) (fwd)  "), "Lunch");
        // (3) leaders: re, fw, fwd, with blobs before and inside, repeated.
        assert_eq!(base("Re: Lunch"), "Lunch");
        assert_eq!(base("RE: re: Fwd: FW: Lunch"), "Lunch");
        assert_eq!(base("Re[2]: Lunch"), "Lunch");
        assert_eq!(base("Re [2] : Lunch"), "Lunch");
        assert_eq!(base("[list] Re: Lunch"), "Lunch");
        assert_eq!(base("[list] [x] Re: [list] Re: Lunch"), "Lunch");
        // Not a leader: no colon, or a word that merely starts with "re".
        assert_eq!(base("Re Lunch"), "Re Lunch");
        assert_eq!(base("Report: done"), "Report: done");
        // (4) a leading blob is removed unless it is all that is left.
        assert_eq!(base("[PATCH] fix"), "fix");
        assert_eq!(base("[PATCH v2] [1/3] fix"), "fix");
        assert_eq!(base("[only a blob]"), "[only a blob]");
        assert_eq!(base("[a][b]"), "[b]");
        // (6) the [fwd: ...] wrapper, then (2)-(5) again inside it.
        assert_eq!(base("[Fwd: Re: Lunch (fwd)]"), "Lunch");
        assert_eq!(base("Re: [fwd: [fwd: Lunch]]"), "Lunch");
        // Empty and degenerate subjects.
        assert_eq!(base(""), "");
        assert_eq!(base("Re:"), "");
        assert_eq!(base("(fwd)"), "");
        assert_eq!(base("[fwd:]"), "");
        assert_eq!(base("["), "[");
        assert_eq!(base("[a] [b]  "), "[b]");
        assert_eq!(base("[a][b] x"), "x");
    }

    /// Hostile subjects cost one pass, not one per artefact.
    #[test]
    fn base_subject_is_linear() {
        let blobs = "[x]".repeat(200_000);
        let t = std::time::Instant::now();
        assert_eq!(base_subject(&blobs).0, "[x]");
        assert_eq!(base_subject(&format!("{blobs}Re: y")).0, "y");
        let fwd = format!("{}z{}", "[fwd: ".repeat(50_000), "]".repeat(50_000));
        assert_eq!(base_subject(&fwd).0, "z");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }

    /// RFC 5256 §3 REFERENCES: "reply or forward" is whether the extraction removed a
    /// subj-refwd, a "(fwd)" trailer or a subj-fwd-hdr/trl; blobs alone do not count.
    #[test]
    fn reply_or_forward() {
        for (s, want) in [
            ("Lunch", false),
            ("[list] Lunch", false),
            ("Re: Lunch", true),
            ("Lunch (fwd)", true),
            ("[Fwd: Lunch]", true),
            ("Fw: Lunch", true),
        ] {
            assert_eq!(base_subject(s).1, want, "{s}");
        }
    }

    /// RFC 5051: case and compatibility forms compare equal; the empty string first.
    #[test]
    fn unicode_casemap() {
        assert_eq!(casemap("lunch"), casemap("LUNCH"));
        assert_eq!(casemap("café"), casemap("CAFÉ"));
        // NFKD: a precomposed letter equals its decomposed form; ligatures decompose.
        assert_eq!(casemap("e\u{301}"), casemap("\u{e9}"));
        assert_eq!(casemap("\u{fb01}x"), casemap("FIX"));
        // Digraphs go to their titlecase form.
        assert_eq!(casemap("\u{1c6}"), casemap("\u{1c4}"));
        assert!(casemap("") < casemap("a"));
        // Titlecase (like uppercase) puts '_' after the letters, as Dovecot does.
        assert!(casemap("a") < casemap("_"));
    }

    /// RFC 5256 §2.2: sent dates in UTC, the example from the RFC included.
    #[test]
    fn sent_dates() {
        let utc = |y, m, d, h: i64, mi: i64, s: i64| {
            fetch::days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s
        };
        assert_eq!(
            sent_date("31 Dec 2000 16:01:33 -0800"),
            Some(utc(2001, 1, 1, 0, 1, 33))
        );
        assert_eq!(
            sent_date("Mon, 23 Nov 2026 10:00:00 +0100"),
            Some(utc(2026, 11, 23, 9, 0, 0))
        );
        assert_eq!(
            sent_date("Mon, 23 Nov 2026 10:00 EST"),
            Some(utc(2026, 11, 23, 15, 0, 0))
        );
        // Invalid zone: UTC. Invalid time: midnight. Comments ignored.
        assert_eq!(
            sent_date("23 Nov 2026 10:00:00 +9999"),
            Some(utc(2026, 11, 23, 10, 0, 0))
        );
        assert_eq!(
            sent_date("23 Nov 2026 xx"),
            Some(utc(2026, 11, 23, 0, 0, 0))
        );
        assert_eq!(
            sent_date("23 Nov 2026 10:00:00 +0000 (UTC)"),
            Some(utc(2026, 11, 23, 10, 0, 0))
        );
        assert_eq!(
            sent_date("1 Jan 99 00:00:00 GMT"),
            Some(utc(1999, 1, 1, 0, 0, 0))
        );
        // No day: the caller uses INTERNALDATE.
        assert_eq!(sent_date("yesterday"), None);
        assert_eq!(sent_or_internal(None, 42), 42);
    }

    fn crit(key: SortKey, reverse: bool) -> SortCriterion {
        SortCriterion { reverse, key }
    }

    /// Keys from the parse-once data, REVERSE per criterion, sequence number last
    /// (RFC 5256 §3: REVERSE does not reverse the implicit sequence number criterion).
    #[test]
    fn keys_and_order() {
        let msgs: [&[u8]; 4] = [
            b"From: Bob <bob@b.example>\r\nTo: Zed <zed@z.example>\r\nSubject: Re: lunch\r\nDate: 2 Jan 2026 10:00:00 +0000\r\n\r\n.",
            b"From: alice@a.example\r\nCc: carol@c.example\r\nSubject: [list] Lunch\r\nDate: 1 Jan 2026 10:00:00 +0000\r\n\r\n..",
            b"From: =?utf-8?q?=C3=89mile?= <emile@e.example>\r\nSubject: dinner\r\n\r\n...",
            b"Subject: LUNCH\r\nDate: 2 Jan 2026 10:00:00 +0000\r\n\r\n....",
        ];
        let parsed: Vec<_> = msgs.iter().map(|m| message::parse(m)).collect();
        let rows = |criteria: &[SortCriterion]| {
            let mut rows: Vec<SortRow> = parsed
                .iter()
                .enumerate()
                .map(|(i, p)| SortRow {
                    seq: i as u32 + 1,
                    uid: 10 + i as u32,
                    modseq: 1,
                    values: criteria
                        .iter()
                        .map(|c| value(c.key, Some(p), 1_000 - i as i64, i as u64 + 1))
                        .collect(),
                })
                .collect();
            sort(criteria, &mut rows);
            rows.iter().map(|r| r.seq).collect::<Vec<_>>()
        };
        use SortKey::*;
        assert_eq!(rows(&[crit(Subject, false)]), [3, 1, 2, 4]);
        assert_eq!(rows(&[crit(Subject, true)]), [1, 2, 4, 3]);
        assert_eq!(
            rows(&[crit(Subject, false), crit(Date, true)]),
            [3, 1, 4, 2]
        );
        // Message 3 has no Date: its INTERNALDATE (998 seconds) sorts first.
        assert_eq!(rows(&[crit(Date, false)]), [3, 2, 1, 4]);
        assert_eq!(rows(&[crit(Arrival, false)]), [4, 3, 2, 1]);
        assert_eq!(rows(&[crit(Size, true)]), [4, 3, 2, 1]);
        // addr-mailbox; missing header = empty string, first.
        assert_eq!(rows(&[crit(From, false)]), [4, 2, 1, 3]);
        assert_eq!(rows(&[crit(Cc, false)]), [1, 3, 4, 2]);
        assert_eq!(rows(&[crit(To, false)]), [2, 3, 4, 1]);
        // RFC 5957: display name (decoded) or addr-spec.
        assert_eq!(rows(&[crit(DisplayFrom, false)]), [4, 2, 1, 3]);
        assert_eq!(rows(&[crit(DisplayTo, true)]), [1, 2, 3, 4]);
        // The cached form gives the same values.
        for p in &parsed {
            let k = BodyKeys::of(p);
            for key in [
                Arrival,
                Cc,
                Date,
                From,
                Size,
                Subject,
                To,
                DisplayFrom,
                DisplayTo,
            ] {
                assert_eq!(k.value(key, 7, 9), value(key, Some(p), 7, 9), "{key:?}");
            }
        }
        let cache = KeyCache::default();
        assert_eq!(cache.get_many(&[[1; 32]]), [None]);
        cache.insert([1; 32], BodyKeys::of(&parsed[0]));
        assert_eq!(
            cache.get_many(&[[1; 32], [2; 32]])[0].as_deref(),
            Some(&BodyKeys::of(&parsed[0]))
        );
        assert!(!needs_parsed(&[crit(Arrival, false), crit(Size, true)]));
        assert!(needs_parsed(&[crit(Size, false), crit(Cc, false)]));
    }
}
