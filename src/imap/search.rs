//! SEARCH evaluation (RFC 9051 §6.4.4, RFC 7162 MODSEQ, RFC 5032 OLDER/YOUNGER,
//! RFC 5182 `$`): a pure predicate over one message. The session walks its view of the
//! mailbox, loads the bytes only when [`needs_content`] says a key looks inside the
//! message, and collects the matches.
//!
//! String keys match as case-insensitive substrings (RFC 9051 §6.4.4: "case-insensitive
//! substring") over the raw header field values (HEADER, FROM, SUBJECT...), the body
//! (BODY) or the whole message (TEXT). Header fields with RFC 2047 encoded words are also
//! matched decoded (Unicode case-folded); bodies are matched as stored, without undoing
//! a transfer encoding.

use super::command::{Date, SearchKey, SequenceSet};
use super::fetch;
use crate::mail::message::ParsedMessage;
use crate::store::records::flag;

/// One message as SEARCH sees it.
pub struct Candidate<'a> {
    /// Sequence number.
    pub seq: u32,
    /// UID.
    pub uid: u32,
    /// System flag bits.
    pub flags: u8,
    /// Keywords.
    pub keywords: &'a [String],
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// RFC822.SIZE.
    pub size: u64,
    /// Modseq.
    pub modseq: u64,
    /// Raw bytes (when [`needs_content`]).
    pub raw: Option<&'a [u8]>,
    /// Parsed structure (when [`needs_content`]).
    pub parsed: Option<&'a ParsedMessage>,
}

/// What every candidate shares.
pub struct Context<'a> {
    /// Number of messages (`*` in a sequence set).
    pub last_seq: u32,
    /// Largest UID (`*` in a UID set).
    pub last_uid: u32,
    /// UIDs saved by `SEARCH RETURN (SAVE)` (`$`).
    pub saved: &'a [u32],
    /// Now, unix seconds (OLDER / YOUNGER).
    pub now: i64,
}

/// Whether a key needs the message bytes.
pub fn needs_content(keys: &[SearchKey]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => true,
        SearchKey::Not(k) => needs_content(std::slice::from_ref(k)),
        SearchKey::Or(a, b) => needs_content(&[(**a).clone(), (**b).clone()]),
        SearchKey::And(ks) => needs_content(ks),
        _ => false,
    })
}

/// Whether a MODSEQ key is used (the `* SEARCH` reply then carries `(MODSEQ n)`,
/// RFC 7162 §3.1.5).
pub fn uses_modseq(keys: &[SearchKey]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::ModSeq { .. } => true,
        SearchKey::Not(k) => uses_modseq(std::slice::from_ref(k)),
        SearchKey::Or(a, b) => uses_modseq(&[(**a).clone(), (**b).clone()]),
        SearchKey::And(ks) => uses_modseq(ks),
        _ => false,
    })
}

/// Whether a set uses `$` or any key does.
pub fn uses_saved(keys: &[SearchKey]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::Uid(s) | SearchKey::SequenceSet(s) => s.uses_saved(),
        SearchKey::Not(k) => uses_saved(std::slice::from_ref(k)),
        SearchKey::Or(a, b) => uses_saved(&[(**a).clone(), (**b).clone()]),
        SearchKey::And(ks) => uses_saved(ks),
        _ => false,
    })
}

fn day(d: Date) -> i64 {
    fetch::days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn header<'a>(c: &Candidate<'a>) -> &'a [u8] {
    match (c.raw, c.parsed) {
        (Some(raw), Some(p)) => raw.get(..p.root.body_start as usize).unwrap_or(raw),
        (Some(raw), None) => raw,
        _ => &[],
    }
}

fn body<'a>(c: &Candidate<'a>) -> &'a [u8] {
    match (c.raw, c.parsed) {
        (Some(raw), Some(p)) => raw.get(p.root.body_start as usize..).unwrap_or(&[]),
        (Some(raw), None) => raw,
        _ => &[],
    }
}

fn header_has(c: &Candidate<'_>, name: &str, needle: &[u8]) -> bool {
    let values = fetch::header_value(header(c), name);
    // RFC 9051 §6.4.4 HEADER: an empty string matches every message with the field.
    if values.iter().any(|v| contains_ci(v, needle)) {
        return true;
    }
    // Encoded words (RFC 2047): also match the decoded text, case-folded.
    values.iter().any(|v| contains_ci(v, b"=?")) && decoded_has(header(c), name, needle)
}

/// Whether a decoded value of the field `name` contains `needle` (Unicode case-folded).
fn decoded_has(header: &[u8], name: &str, needle: &[u8]) -> bool {
    use mail_parser::{HeaderValue, MessageParser};
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    let Some(msg) = MessageParser::default().parse_headers(header) else {
        return false;
    };
    let Some(part) = msg.parts.first() else {
        return false;
    };
    part.headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .any(|h| {
            let text = match &h.value {
                HeaderValue::Text(t) => t.to_string(),
                HeaderValue::TextList(l) => l.join(" "),
                HeaderValue::Address(a) => a
                    .iter()
                    .map(|x| {
                        format!(
                            "{} <{}>",
                            x.name.as_deref().unwrap_or(""),
                            x.address.as_deref().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => return false,
            };
            text.to_lowercase().contains(&needle)
        })
}

/// The day of the `Date:` header (its own zone; RFC 9051 §6.4.4 SENT* disregard time
/// and zone), or `None`.
pub fn sent_day(c: &Candidate<'_>) -> Option<i64> {
    let date = c.parsed?.envelope.date.as_deref()?;
    parse_date_day(date)
}

/// Parses the day of an RFC 5322 date (`[Mon, ]23 Nov 2026 ...`).
pub fn parse_date_day(s: &str) -> Option<i64> {
    let s = match s.split_once(',') {
        Some((_, rest)) => rest,
        None => s,
    };
    let mut it = s.split_ascii_whitespace();
    let d: u32 = it.next()?.parse().ok()?;
    let m = it.next()?;
    let m = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|x| m.len() >= 3 && m.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(x)))?;
    let mut y: i64 = it.next()?.parse().ok()?;
    if y < 50 {
        y += 2000;
    } else if y < 1000 {
        y += 1900;
    }
    if !(1..=31).contains(&d) {
        return None;
    }
    Some(fetch::days_from_civil(y, m as u32 + 1, d))
}

fn in_set(set: &SequenceSet, n: u32, last: u32, uid: u32, saved: &[u32]) -> bool {
    set.contains(n, last) || (set.uses_saved() && saved.binary_search(&uid).is_ok())
}

/// Whether the message matches every key (RFC 9051 §6.4.4: keys are ANDed).
pub fn matches(keys: &[SearchKey], c: &Candidate<'_>, cx: &Context<'_>) -> bool {
    keys.iter().all(|k| matches_one(k, c, cx))
}

fn matches_one(k: &SearchKey, c: &Candidate<'_>, cx: &Context<'_>) -> bool {
    let has = |bit: u8| c.flags & bit != 0;
    let internal_day = c.internal_date.div_euclid(86_400);
    match k {
        SearchKey::All => true,
        SearchKey::Answered => has(flag::ANSWERED),
        SearchKey::Deleted => has(flag::DELETED),
        SearchKey::Draft => has(flag::DRAFT),
        SearchKey::Flagged => has(flag::FLAGGED),
        SearchKey::Seen => has(flag::SEEN),
        SearchKey::Unanswered => !has(flag::ANSWERED),
        SearchKey::Undeleted => !has(flag::DELETED),
        SearchKey::Undraft => !has(flag::DRAFT),
        SearchKey::Unflagged => !has(flag::FLAGGED),
        SearchKey::Unseen => !has(flag::SEEN),
        // No session ever sees \Recent (RFC 9051 removes it): NEW and RECENT match none.
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::Old => true,
        SearchKey::Keyword(kw) => c.keywords.iter().any(|x| x.eq_ignore_ascii_case(kw)),
        SearchKey::Unkeyword(kw) => !c.keywords.iter().any(|x| x.eq_ignore_ascii_case(kw)),
        SearchKey::Before(d) => internal_day < day(*d),
        SearchKey::On(d) => internal_day == day(*d),
        SearchKey::Since(d) => internal_day >= day(*d),
        SearchKey::SentBefore(d) => sent_day(c).is_some_and(|s| s < day(*d)),
        SearchKey::SentOn(d) => sent_day(c).is_some_and(|s| s == day(*d)),
        SearchKey::SentSince(d) => sent_day(c).is_some_and(|s| s >= day(*d)),
        SearchKey::Larger(n) => c.size > *n,
        SearchKey::Smaller(n) => c.size < *n,
        SearchKey::Older(secs) => cx.now.saturating_sub(c.internal_date) >= i64::from(*secs),
        SearchKey::Younger(secs) => cx.now.saturating_sub(c.internal_date) <= i64::from(*secs),
        SearchKey::Uid(set) => in_set(set, c.uid, cx.last_uid, c.uid, cx.saved),
        SearchKey::SequenceSet(set) => in_set(set, c.seq, cx.last_seq, c.uid, cx.saved),
        SearchKey::ModSeq { modseq, .. } => c.modseq >= *modseq,
        SearchKey::Not(k) => !matches_one(k, c, cx),
        SearchKey::Or(a, b) => matches_one(a, c, cx) || matches_one(b, c, cx),
        SearchKey::And(ks) => matches(ks, c, cx),
        SearchKey::Bcc(s) => header_has(c, "bcc", s),
        SearchKey::Cc(s) => header_has(c, "cc", s),
        SearchKey::From(s) => header_has(c, "from", s),
        SearchKey::To(s) => header_has(c, "to", s),
        SearchKey::Subject(s) => header_has(c, "subject", s),
        SearchKey::Header(name, s) => header_has(c, name, s),
        SearchKey::Body(s) => contains_ci(body(c), s),
        SearchKey::Text(s) => contains_ci(c.raw.unwrap_or(&[]), s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::{SeqItem, SeqNum};
    use crate::mail::message;

    const RAW: &[u8] = b"From: Alice <alice@example.org>\r\nSubject: Lunch Plans\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\nSee you at NOON\r\n";

    fn check(keys: Vec<SearchKey>) -> bool {
        let p = message::parse(RAW);
        let kw = vec!["$Work".to_string()];
        let c = Candidate {
            seq: 2,
            uid: 10,
            flags: flag::SEEN,
            keywords: &kw,
            internal_date: 1_795_420_800,
            size: RAW.len() as u64,
            modseq: 5,
            raw: Some(RAW),
            parsed: Some(&p),
        };
        let saved = [10];
        let cx = Context {
            last_seq: 3,
            last_uid: 12,
            saved: &saved,
            now: 1_795_420_800 + 100,
        };
        matches(&keys, &c, &cx)
    }

    #[test]
    fn keys() {
        use SearchKey::*;
        let d = |y, m, dd| Date::new(y, m, dd).unwrap();
        assert!(check(vec![All, Seen, Unflagged, Old]));
        assert!(!check(vec![Unseen]));
        assert!(!check(vec![New]));
        assert!(check(vec![
            Subject(b"lunch".to_vec()),
            From(b"ALICE".to_vec())
        ]));
        assert!(!check(vec![Subject(b"dinner".to_vec())]));
        assert!(check(vec![Body(b"noon".to_vec())]));
        assert!(!check(vec![Body(b"lunch".to_vec())]));
        assert!(check(vec![Text(b"lunch".to_vec())]));
        assert!(check(vec![Header("date".into(), Vec::new())]));
        assert!(!check(vec![Header("x-none".into(), Vec::new())]));
        assert!(check(vec![On(d(2026, 11, 23)), SentOn(d(2026, 11, 23))]));
        assert!(check(vec![Before(d(2026, 11, 24)), Since(d(2026, 11, 23))]));
        assert!(!check(vec![SentBefore(d(2026, 11, 23))]));
        assert!(check(vec![Younger(200), Not(Box::new(Older(200)))]));
        assert!(check(vec![Keyword("$work".into()), Unkeyword("$x".into())]));
        assert!(check(vec![Or(Box::new(Deleted), Box::new(Seen))]));

        assert!(check(vec![Uid(super::SequenceSet(vec![SeqItem::Range(
            SeqNum::Value(5),
            SeqNum::Last
        )]))]));
        assert!(check(vec![SequenceSet(super::SequenceSet(vec![
            SeqItem::Saved
        ]))]));
        assert!(!check(vec![SequenceSet(super::SequenceSet::single(3))]));
        assert!(check(vec![ModSeq {
            entry: None,
            modseq: 5
        }]));
        assert!(check(vec![Larger(10), Smaller(1000)]));
        assert!(needs_content(&[Not(Box::new(Subject(vec![])))]));
        assert!(decoded_has(
            b"Subject: =?utf-8?q?Caf=C3=A9_au_lait?=\r\nFrom: =?utf-8?q?J=C3=BCrgen?= <j@x.de>\r\n\r\n",
            "subject",
            "CAFÉ AU".as_bytes()
        ));
        assert!(decoded_has(
            b"From: =?utf-8?q?J=C3=BCrgen?= <j@x.de>\r\n\r\n",
            "from",
            "jürgen".as_bytes()
        ));
        assert!(!needs_content(&[Not(Box::new(Seen))]));
    }
}
