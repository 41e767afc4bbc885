//! SEARCH evaluation (RFC 9051 §6.4.4, RFC 7162 MODSEQ, RFC 5032 OLDER/YOUNGER,
//! RFC 5182 `$`): a pure predicate over one message. The session walks its view of the
//! mailbox, loads the bytes only when [`needs_content`] says a key looks inside the
//! message, and collects the matches.
//!
//! String keys match as case-insensitive substrings (RFC 9051 §6.4.4: "case-insensitive
//! substring"; ASCII folding for an ASCII string, Unicode lowercase otherwise):
//!
//! - HEADER, FROM, SUBJECT...: the raw field values, and the decoded ones when they hold
//!   RFC 2047 encoded words.
//! - BODY: the text the reader sees, as Dovecot matches it: every `text/*` part with its
//!   Content-Transfer-Encoding undone (base64, quoted-printable) and its charset converted
//!   to UTF-8 (mail-parser's decoders: the ISO-8859 and Windows code pages, KOI8, UTF-16,
//!   UTF-7 ...), and the header and text of attached messages. Other parts (images,
//!   archives, PDFs) are not text and are not searched. A body that cannot be decoded is
//!   matched as stored.
//! - TEXT: the top-level header (raw and decoded), the MIME headers of the parts (file
//!   names), and BODY.

use std::borrow::Cow;

use super::command::{Date, SearchKey, SequenceSet};
use super::fetch;
use crate::mail::message::{ParsedMessage, Part, PartKind};
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
    /// `\Recent` for this session (RFC 3501 §2.3.2).
    pub recent: bool,
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

/// A SEARCH string, prepared for matching: ASCII strings are compared ASCII
/// case-insensitively on the bytes; others are compared Unicode-lowercased.
pub struct Needle<'a> {
    bytes: &'a [u8],
    folded: Option<String>,
}

impl<'a> Needle<'a> {
    /// Prepares `bytes` (UTF-8 or US-ASCII, the SEARCH charsets we accept).
    pub fn new(bytes: &'a [u8]) -> Needle<'a> {
        let folded = (!bytes.is_ascii()).then(|| String::from_utf8_lossy(bytes).to_lowercase());
        Needle { bytes, folded }
    }

    /// Whether the needle occurs in `hay` (UTF-8 text, or bytes in an unknown charset).
    pub fn found_in(&self, hay: &[u8]) -> bool {
        match &self.folded {
            None => find_ascii_ci(hay, self.bytes),
            Some(f) => String::from_utf8_lossy(hay)
                .to_lowercase()
                .contains(f.as_str()),
        }
    }
}

/// ASCII case-insensitive substring search: memchr on the first byte's two cases, then
/// a comparison of the rest.
fn find_ascii_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut at = 0;
    while let Some(tail) = hay.get(at..) {
        let Some(i) = memchr::memchr2(lo, up, tail) else {
            return false;
        };
        let start = at + i + 1;
        match hay.get(start..start + rest.len()) {
            Some(w) if w.eq_ignore_ascii_case(rest) => return true,
            Some(_) => at = start,
            None => return false,
        }
    }
    false
}

fn slice(raw: &[u8], from: u32, to: u32) -> &[u8] {
    raw.get(from as usize..to as usize).unwrap_or_default()
}

fn charset(part: &Part) -> Option<&str> {
    part.params
        .iter()
        .find(|(k, _)| k == "charset")
        .map(|(_, v)| v.as_str())
}

/// A part body with its transfer encoding undone (RFC 2045 §6) and its charset
/// converted to UTF-8; as stored when either cannot be undone.
pub fn decoded_text<'a>(body: &'a [u8], encoding: &str, charset: Option<&str>) -> Cow<'a, [u8]> {
    let bytes: Cow<'a, [u8]> = match encoding {
        "base64" | "quoted-printable" => fetch::decode_body(encoding, body)
            .map(Cow::Owned)
            .unwrap_or(Cow::Borrowed(body)),
        _ => Cow::Borrowed(body),
    };
    let Some(cs) = charset else { return bytes };
    if ["utf-8", "utf8", "us-ascii"]
        .iter()
        .any(|u| cs.eq_ignore_ascii_case(u))
        || bytes.is_ascii()
    {
        return bytes;
    }
    match mail_parser::decoders::charsets::map::charset_decoder(cs.as_bytes()) {
        Some(decode) => Cow::Owned(decode(&bytes).into_bytes()),
        None => bytes,
    }
}

/// Whether the needle occurs in the text of `part`'s body (see the module docs); with
/// `mime_headers`, also in the MIME headers of its parts (TEXT).
fn body_has(raw: &[u8], part: &Part, needle: &Needle<'_>, mime_headers: bool) -> bool {
    match &part.kind {
        PartKind::Multipart(children) => children.iter().any(|c| {
            (mime_headers && needle.found_in(slice(raw, c.header_start, c.body_start)))
                || body_has(raw, c, needle, mime_headers)
        }),
        PartKind::Message(_, inner) => {
            let header = slice(raw, inner.header_start, inner.body_start);
            header_text_has(header, needle) || body_has(raw, inner, needle, mime_headers)
        }
        PartKind::Leaf if part.media_type == "text" => {
            let body = slice(raw, part.body_start, part.body_end);
            needle.found_in(&decoded_text(body, &part.encoding, charset(part)))
        }
        // A container below the structure's depth limit (message.rs MAX_DEPTH) was not
        // split into parts: its bytes are searched as they are, so that nothing a deeply
        // nested message holds is unsearchable.
        PartKind::Leaf if matches!(part.media_type.as_str(), "multipart" | "message") => {
            needle.found_in(slice(raw, part.body_start, part.body_end))
        }
        PartKind::Leaf => false,
    }
}

/// Whether the needle occurs in a header: raw, or decoded where it has encoded words.
fn header_text_has(header: &[u8], needle: &Needle<'_>) -> bool {
    needle.found_in(header)
        || (find_ascii_ci(header, b"=?") && decoded_has(header, None, needle.bytes))
}

fn header<'a>(c: &Candidate<'a>) -> &'a [u8] {
    match (c.raw, c.parsed) {
        (Some(raw), Some(p)) => raw.get(..p.root.body_start as usize).unwrap_or(raw),
        (Some(raw), None) => raw,
        _ => &[],
    }
}

/// BODY (and the body half of TEXT): the decoded text parts; the raw bytes when the
/// structure is missing.
fn body_text_has(c: &Candidate<'_>, needle: &[u8], mime_headers: bool) -> bool {
    let n = Needle::new(needle);
    match (c.raw, c.parsed) {
        (Some(raw), Some(p)) => body_has(raw, &p.root, &n, mime_headers),
        (Some(raw), None) => n.found_in(raw),
        _ => false,
    }
}

fn header_has(c: &Candidate<'_>, name: &str, needle: &[u8]) -> bool {
    let values = fetch::header_value(header(c), name);
    let n = Needle::new(needle);
    // RFC 9051 §6.4.4 HEADER: an empty string matches every message with the field.
    if values.iter().any(|v| n.found_in(v)) {
        return true;
    }
    // Encoded words (RFC 2047): also match the decoded text, case-folded.
    values.iter().any(|v| find_ascii_ci(v, b"=?")) && decoded_has(header(c), Some(name), needle)
}

/// FROM, TO, CC, BCC (RFC 9051 §6.4.4: "contains the specified string" in the field):
/// the raw field as `header_has` sees it, and each address of the parsed list
/// (RFC 5322 §3.4, groups included) in the forms a user knows it by: its display name
/// (RFC 2047 decoded, folding and comments gone; a bare address's comment), the
/// address with its local part unquoted (`john doe@example.org`) and as written
/// (`"john doe"@example.org`), `Name <address>`, and a group's name.
fn address_has(c: &Candidate<'_>, name: &str, needle: &[u8]) -> bool {
    use crate::mail::address::{Item, parse_list};
    if header_has(c, name, needle) {
        return true;
    }
    let n = Needle::new(needle);
    fetch::header_value(header(c), name).iter().any(|v| {
        parse_list(v).iter().any(|item| match item {
            Item::GroupStart(g) => n.found_in(g.as_bytes()),
            Item::GroupEnd => false,
            Item::Mailbox(m) => {
                let written = match &m.domain {
                    Some(d) => format!("{}@{d}", m.local_quoted()),
                    None => m.local_quoted(),
                };
                let display = m.name.as_deref().unwrap_or_default();
                [
                    display.to_string(),
                    m.address(),
                    format!("{display} <{written}>"),
                    written,
                ]
                .iter()
                .any(|f| n.found_in(f.as_bytes()))
            }
        })
    })
}

/// Whether a decoded value of the field `name` (of any field, for `None`) contains
/// `needle` (Unicode case-folded).
fn decoded_has(header: &[u8], name: Option<&str>, needle: &[u8]) -> bool {
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
        .filter(|h| name.is_none_or(|n| h.name.as_str().eq_ignore_ascii_case(n)))
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
        // RFC 3501 §6.4.4: \Recent as this session holds it (never in IMAP4rev2).
        SearchKey::New => c.recent && !has(flag::SEEN),
        SearchKey::Recent => c.recent,
        SearchKey::Old => !c.recent,
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
        // RFC 7162 §3.1.5: a server that keeps one mod-sequence per message (not one per
        // flag) MUST ignore the entry name and type.
        SearchKey::ModSeq { modseq, .. } => c.modseq >= *modseq,
        SearchKey::Not(k) => !matches_one(k, c, cx),
        SearchKey::Or(a, b) => matches_one(a, c, cx) || matches_one(b, c, cx),
        SearchKey::And(ks) => matches(ks, c, cx),
        SearchKey::Bcc(s) => address_has(c, "bcc", s),
        SearchKey::Cc(s) => address_has(c, "cc", s),
        SearchKey::From(s) => address_has(c, "from", s),
        SearchKey::To(s) => address_has(c, "to", s),
        SearchKey::Subject(s) => header_has(c, "subject", s),
        SearchKey::Header(name, s) => header_has(c, name, s),
        SearchKey::Body(s) => body_text_has(c, s, false),
        SearchKey::Text(s) => {
            let n = Needle::new(s);
            header_text_has(header(c), &n) || body_text_has(c, s, true)
        }
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
            recent: false,
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
            Some("subject"),
            "CAFÉ AU".as_bytes()
        ));
        assert!(decoded_has(
            b"From: =?utf-8?q?J=C3=BCrgen?= <j@x.de>\r\n\r\n",
            Some("from"),
            "jürgen".as_bytes()
        ));
        assert!(!needs_content(&[Not(Box::new(Seen))]));
    }

    /// A multipart message with a base64 UTF-8 part, a quoted-printable Windows-1252
    /// part, an 8-bit ISO-8859-1 part, a base64 attachment and an attached message
    /// whose own text is base64.
    const MIME: &[u8] = b"From: a@example.org\r\nSubject: =?utf-8?q?Caf=C3=A9_menu?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nR3LDvMOfZSBhdXMgS8O2bG4=\r\n--b\r\nContent-Type: text/html; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>=80 12 soft=\r\nbreak</p>\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nna\xefve\r\n--b\r\nContent-Type: application/octet-stream; name=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0IHdvcmQ=\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naW5uZXIgdGV4dA==\r\n--b--\r\n";

    fn mime(key: SearchKey) -> bool {
        matches_raw(MIME, key)
    }

    /// Whether the message `raw` (parsed as on delivery) matches `key`.
    fn matches_raw(raw: &[u8], key: SearchKey) -> bool {
        let p = message::parse(raw);
        let c = Candidate {
            seq: 1,
            uid: 1,
            flags: 0,
            keywords: &[],
            recent: false,
            internal_date: 0,
            size: raw.len() as u64,
            modseq: 1,
            raw: Some(raw),
            parsed: Some(&p),
        };
        let cx = Context {
            last_seq: 1,
            last_uid: 1,
            saved: &[],
            now: 0,
        };
        matches(&[key], &c, &cx)
    }

    /// RFC 9051 §6.4.4 BODY/TEXT match the decoded text: transfer encodings undone and
    /// charsets converted to UTF-8, case-insensitive beyond ASCII.
    #[test]
    fn body_and_text_match_decoded_text() {
        use SearchKey::{Body, Text};
        let b = |s: &str| Body(s.as_bytes().to_vec());
        let t = |s: &str| Text(s.as_bytes().to_vec());
        // base64 UTF-8, matched with Unicode case folding.
        assert!(mime(b("grüße aus")));
        assert!(mime(b("KÖLN")));
        assert!(
            !mime(b("R3LDvMOf")),
            "the base64 text itself is not the body"
        );
        // quoted-printable Windows-1252: =80 is the euro sign, soft line breaks joined.
        assert!(mime(b("€ 12")));
        assert!(mime(b("softbreak")));
        // 8-bit ISO-8859-1.
        assert!(mime(b("NAÏVE")));
        // The attached message: its header and its decoded text.
        assert!(mime(b("inner text")));
        assert!(mime(b("subject: inner")));
        // A binary attachment is not text; its MIME header (the file name) is TEXT only.
        assert!(!mime(b("secret")));
        assert!(!mime(t("secret word")));
        assert!(!mime(b("report.pdf")));
        assert!(mime(t("report.pdf")));
        // TEXT: the top header, raw and RFC 2047 decoded, and the body.
        assert!(mime(t("CAFÉ MENU")));
        assert!(mime(t("a@example.org")));
        assert!(mime(t("köln")));
        assert!(!mime(b("a@example.org")), "BODY is not the header");
        assert!(!mime(t("nowhere")));
    }

    /// Text below the structure's depth limit is still found (as stored), in nested
    /// multiparts and in nested messages alike.
    #[test]
    fn text_beyond_the_depth_limit_is_searched_as_stored() {
        for inner in [
            "multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n",
            "message/rfc822\r\n\r\nSubject: {i}\r\n",
        ] {
            let mut m = String::from("From: a@example.org\r\nMIME-Version: 1.0\r\n");
            for i in 0..100 {
                m.push_str("Content-Type: ");
                m.push_str(&inner.replace("{i}", &i.to_string()));
            }
            m.push_str("Content-Type: text/plain\r\n\r\ndeep needle\r\n");
            let raw = m.as_bytes();
            for key in [
                SearchKey::Body(b"NEEDLE".to_vec()),
                SearchKey::Text(b"deep needle".to_vec()),
            ] {
                assert!(matches_raw(raw, key), "{inner}");
            }
            assert!(!matches_raw(raw, SearchKey::Body(b"haystack".to_vec())));
        }
    }

    #[test]
    fn ascii_search_finds_every_position() {
        assert!(find_ascii_ci(b"aaab", b"AAB"));
        assert!(find_ascii_ci(b"xyz", b""));
        assert!(find_ascii_ci(b"Hello", b"hello"));
        assert!(!find_ascii_ci(b"Hell", b"hello"));
        assert!(!find_ascii_ci(b"", b"a"));
        assert!(find_ascii_ci(b"a.b", b"."));
    }

    /// SEARCH FROM/TO/CC/BCC match the display name and the whole address in every
    /// address form (RFC 9051 §6.4.4 substring, case-insensitive): groups (the name
    /// and the members), RFC 2047 encoded words (decoded, adjacent words joined),
    /// comments, quoted local parts, folded names.
    #[test]
    fn address_keys_match_every_address_form() {
        const RAW: &[u8] =
            b"From: =?utf-8?q?J=C3=BCrgen?=\r\n =?utf-8?q?_M=C3=BCller?= <juergen@example.de>\r\n\
To: =?utf-8?q?Fr=C3=BCnde?=: Ann <ann@a.test>, \"bob smith\"@b.test;, undisclosed-recipients:;\r\n\
Cc: carol@c.test (Carol\r\n  Jones)\r\n\
Bcc: \"Dan\r\n  Brown\" <dan@d.test>\r\n\
Subject: s\r\n\r\nbody\r\n";
        use SearchKey::{Bcc, Cc, From, To};
        let m = |k: SearchKey| matches_raw(RAW, k);
        let v = |s: &str| s.as_bytes().to_vec();
        // Encoded words, decoded and case-folded; the address; Name <address>.
        assert!(m(From(v("jürgen müller"))));
        assert!(m(From(v("JÜRGEN"))));
        assert!(m(From(v("Juergen@Example.DE"))));
        assert!(m(From(v("Müller <juergen@"))));
        assert!(!m(From(v("ann@a.test"))));
        // A group: its (encoded) name and its members; an empty group's name.
        assert!(m(To(v("fründe"))));
        assert!(m(To(v("Ann <ann@a.test>"))));
        assert!(m(To(v("undisclosed-recipients"))));
        // A quoted local part, unquoted and as written.
        assert!(m(To(v("bob smith@b.test"))));
        assert!(m(To(v("\"bob smith\"@b.test"))));
        // The name in a comment, folded; a folded quoted name.
        assert!(m(Cc(v("carol jones"))));
        assert!(m(Cc(v("carol@c.test"))));
        assert!(m(Bcc(v("dan brown"))));
        assert!(m(Bcc(v("Dan Brown <dan@d.test>"))));
        assert!(!m(Bcc(v("carol"))));
        // The field must exist for the empty string (RFC 9051 §6.4.4 HEADER).
        assert!(m(Cc(Vec::new())));
        assert!(!matches_raw(b"Subject: s\r\n\r\nb\r\n", Cc(Vec::new())));
    }
}
