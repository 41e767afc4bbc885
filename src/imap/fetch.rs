//! FETCH item rendering (RFC 9051 §6.4.5, §7.5.2; RFC 3516 BINARY): turns a stored
//! message (its row, its parse-once [`ParsedMessage`] and, only when a body section is
//! asked for, its bytes) into response [`FetchItem`]s. Pure functions, no store access:
//! the session loads what [`needs_blob`] / [`needs_parsed`] say and calls [`render`].
//!
//! ENVELOPE and BODYSTRUCTURE come from the parse done when the message entered the
//! store; `BODY[1.2.MIME]` and friends are byte ranges of the raw message taken from the
//! part offsets recorded then. Nothing here re-parses MIME.

use super::command::{Date, DateTime, FetchAttr, Flag, Partial, Section, SectionText};
use super::response::{
    Address, BodyStructure, Disposition, Envelope, FetchItem, MultiPartExt, SingleKind, SinglePart,
    SinglePartExt,
};
use crate::mail::message::{self, EnvAddress, ParsedMessage, Part, PartKind};
use crate::store::MessageRow;
use crate::store::records::flag;

/// Why an item could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// BINARY of a part with a Content-Transfer-Encoding we cannot decode
    /// (RFC 3516 §4.3: `NO [UNKNOWN-CTE]`).
    UnknownCte,
}

/// Whether any item needs the raw message bytes.
pub fn needs_blob(attrs: &[FetchAttr]) -> bool {
    attrs.iter().any(|a| {
        matches!(
            a,
            FetchAttr::BodySection { .. }
                | FetchAttr::Binary { .. }
                | FetchAttr::BinarySize { .. }
                | FetchAttr::Rfc822
                | FetchAttr::Rfc822Header
                | FetchAttr::Rfc822Text
        )
    })
}

/// Whether any item needs the parsed structure.
pub fn needs_parsed(attrs: &[FetchAttr]) -> bool {
    attrs.iter().any(|a| {
        matches!(
            a,
            FetchAttr::Envelope
                | FetchAttr::Body
                | FetchAttr::BodyStructure
                | FetchAttr::BodySection { .. }
                | FetchAttr::Binary { .. }
                | FetchAttr::BinarySize { .. }
                | FetchAttr::Rfc822Header
                | FetchAttr::Rfc822Text
        )
    })
}

/// Whether fetching these items sets `\Seen` (RFC 9051 §6.4.5: `BODY[..]` without
/// `.PEEK`, `BINARY[..]` without `.PEEK`, and rev1's `RFC822` / `RFC822.TEXT`).
pub fn sets_seen(attrs: &[FetchAttr]) -> bool {
    attrs.iter().any(|a| {
        matches!(
            a,
            FetchAttr::BodySection { peek: false, .. }
                | FetchAttr::Binary { peek: false, .. }
                | FetchAttr::Rfc822
                | FetchAttr::Rfc822Text
        )
    })
}

/// The flags of a row as IMAP flags (system flags first, then keywords).
pub fn flags_of(bits: u8, keywords: &[String]) -> Vec<Flag> {
    let mut out = Vec::new();
    for (bit, f) in [
        (flag::SEEN, Flag::Seen),
        (flag::ANSWERED, Flag::Answered),
        (flag::FLAGGED, Flag::Flagged),
        (flag::DELETED, Flag::Deleted),
        (flag::DRAFT, Flag::Draft),
    ] {
        if bits & bit != 0 {
            out.push(f);
        }
    }
    out.extend(keywords.iter().map(|k| Flag::Keyword(k.clone())));
    out
}

/// Splits client flags into system bits and keywords (`\Recent` and unknown
/// `\`-flags are ignored: they cannot be stored, RFC 9051 §2.3.2).
pub fn bits_of(flags: &[Flag]) -> (u8, Vec<String>) {
    let mut bits = 0;
    let mut kw: Vec<String> = Vec::new();
    for f in flags {
        match f {
            Flag::Seen => bits |= flag::SEEN,
            Flag::Answered => bits |= flag::ANSWERED,
            Flag::Flagged => bits |= flag::FLAGGED,
            Flag::Deleted => bits |= flag::DELETED,
            Flag::Draft => bits |= flag::DRAFT,
            Flag::Keyword(k) => {
                if !kw.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    kw.push(k.clone());
                }
            }
            Flag::Recent | Flag::Extension(_) => {}
        }
    }
    (bits, kw)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// INTERNALDATE of a unix timestamp, in UTC.
pub fn internal_date(ts: i64) -> DateTime {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let date = Date::new(y.clamp(1, 9999) as u16, m as u8, d as u8)
        .or_else(|| Date::new(1970, 1, 1))
        .unwrap_or(Date {
            year: 1970,
            month: 1,
            day: 1,
        });
    DateTime {
        date,
        hour: (secs / 3600) as u8,
        minute: (secs % 3600 / 60) as u8,
        second: (secs % 60) as u8,
        zone_minutes: 0,
    }
}

fn nstr(s: &Option<String>) -> Option<Vec<u8>> {
    s.as_ref().map(|s| s.as_bytes().to_vec())
}

fn addresses(list: &[EnvAddress]) -> Vec<Address> {
    list.iter()
        .map(|a| Address {
            name: nstr(&a.name),
            adl: None,
            mailbox: nstr(&a.mailbox),
            host: nstr(&a.host),
        })
        .collect()
}

/// The ENVELOPE (RFC 9051 §7.5.2): Sender and Reply-To default to From.
pub fn envelope(e: &message::Envelope) -> Envelope {
    let from = addresses(&e.from);
    let or_from = |l: &[EnvAddress]| {
        if l.is_empty() {
            from.clone()
        } else {
            addresses(l)
        }
    };
    Envelope {
        date: nstr(&e.date),
        subject: nstr(&e.subject),
        sender: or_from(&e.sender),
        reply_to: or_from(&e.reply_to),
        from: from.clone(),
        to: addresses(&e.to),
        cc: addresses(&e.cc),
        bcc: addresses(&e.bcc),
        in_reply_to: nstr(&e.in_reply_to),
        message_id: nstr(&e.message_id),
    }
}

/// BODYSTRUCTURE (`ext`) or BODY (no extension data) of a part (RFC 9051 §7.5.2).
pub fn body_structure(p: &Part, ext: bool) -> BodyStructure {
    let disposition = p.disposition.as_ref().map(|(k, params)| Disposition {
        kind: k.clone(),
        params: params.clone(),
    });
    match &p.kind {
        PartKind::Multipart(children) if !children.is_empty() => BodyStructure::Multi {
            parts: children.iter().map(|c| body_structure(c, ext)).collect(),
            subtype: p.subtype.clone(),
            ext: ext.then(|| MultiPartExt {
                params: p.params.clone(),
                disposition,
                language: p.language.clone(),
                location: nstr(&p.location),
            }),
        },
        kind => {
            let kind = match kind {
                PartKind::Message(env, inner) => SingleKind::Message {
                    envelope: Box::new(envelope(env)),
                    body: Box::new(body_structure(inner, ext)),
                    lines: p.lines,
                },
                _ if p.media_type.eq_ignore_ascii_case("text") => {
                    SingleKind::Text { lines: p.lines }
                }
                _ => SingleKind::Basic,
            };
            // An empty multipart has no children to list: describe it as a leaf.
            let (media_type, subtype) = if matches!(p.kind, PartKind::Multipart(_)) {
                ("text".to_string(), "plain".to_string())
            } else {
                (p.media_type.clone(), p.subtype.clone())
            };
            BodyStructure::Single {
                part: SinglePart {
                    media_type,
                    subtype,
                    params: p.params.clone(),
                    id: nstr(&p.id),
                    description: nstr(&p.description),
                    encoding: p.encoding.clone(),
                    size: p.body_size(),
                    kind,
                },
                ext: ext.then(|| SinglePartExt {
                    md5: None,
                    disposition,
                    language: p.language.clone(),
                    location: nstr(&p.location),
                }),
            }
        }
    }
}

/// Finds the part a section path names (RFC 9051 §6.4.5): in a multipart, `n` is the
/// n-th child; in a non-multipart message, `1` is the body itself; after a
/// message/rfc822 part the numbers continue inside the enclosed message.
pub fn find_part<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let mut cur = root;
    for &n in path {
        // Inside an encapsulated message, numbering applies to its root.
        if let PartKind::Message(_, inner) = &cur.kind
            && !std::ptr::eq(cur, root)
        {
            cur = inner;
        }
        cur = match &cur.kind {
            PartKind::Multipart(children) => {
                children.get(usize::try_from(n).ok()?.checked_sub(1)?)?
            }
            _ if n == 1 => cur,
            _ => return None,
        };
    }
    Some(cur)
}

fn slice(raw: &[u8], start: u32, end: u32) -> &[u8] {
    raw.get(start as usize..end as usize).unwrap_or(&[])
}

/// The header fields of a header block whose names are (or, with `not`, are not) in
/// `names`, followed by the blank line (RFC 9051 §6.4.5 HEADER.FIELDS).
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, field) in fields(header) {
        let listed = names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
        if listed != not {
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Splits a header block into `(name, whole field with its CRLF and folded lines)`.
pub fn fields(header: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out: Vec<(&[u8], &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut field_start: Option<usize> = None;
    while i <= header.len() {
        let end_of_line = match header
            .get(i..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
        {
            Some(p) => i + p + 1,
            None => header.len(),
        };
        let line = header.get(i..end_of_line).unwrap_or(&[]);
        let blank = line.is_empty() || line == b"\r\n" || line == b"\n";
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            if let Some(fs) = field_start.take() {
                let field = header.get(fs..i).unwrap_or(&[]);
                let name_end = field.iter().position(|&b| b == b':').unwrap_or(0);
                out.push((field.get(..name_end).unwrap_or(&[]).trim_ascii(), field));
            }
            if blank {
                break;
            }
            field_start = Some(i);
        }
        start = end_of_line;
        if end_of_line == i {
            break;
        }
        i = end_of_line;
    }
    let _ = start;
    out
}

/// The value of the first header field called `name`, unfolded, or `None`.
pub fn header_value(header: &[u8], name: &str) -> Vec<Vec<u8>> {
    fields(header)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(n, f)| {
            let v = f.get(n.len()..).unwrap_or(&[]);
            let v = v.strip_prefix(b":").unwrap_or(v);
            v.iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect::<Vec<u8>>()
                .trim_ascii()
                .to_vec()
        })
        .collect()
}

/// The bytes of `BODY[section]` before any partial (RFC 9051 §6.4.5); `None` when the
/// section names no part (sent as the empty string, as Dovecot and mox do).
pub fn section_bytes(raw: &[u8], parsed: &ParsedMessage, section: &Section) -> Option<Vec<u8>> {
    let root = &parsed.root;
    let part = find_part(root, &section.part)?;
    // For HEADER/TEXT after a part number the part must be a message/rfc822: the
    // specifier applies to the enclosed message.
    let msg_root = if section.part.is_empty() {
        Some(root)
    } else {
        match &part.kind {
            PartKind::Message(_, inner) => Some(inner.as_ref()),
            _ => None,
        }
    };
    Some(match &section.text {
        None if section.part.is_empty() => raw.to_vec(),
        None => slice(raw, part.body_start, part.body_end).to_vec(),
        Some(SectionText::Mime) => slice(raw, part.header_start, part.body_start).to_vec(),
        Some(SectionText::Header) => {
            let m = msg_root?;
            slice(raw, m.header_start, m.body_start).to_vec()
        }
        Some(SectionText::Text) => {
            let m = msg_root?;
            slice(raw, m.body_start, m.body_end).to_vec()
        }
        Some(SectionText::HeaderFields(names)) => {
            let m = msg_root?;
            header_fields(slice(raw, m.header_start, m.body_start), names, false)
        }
        Some(SectionText::HeaderFieldsNot(names)) => {
            let m = msg_root?;
            header_fields(slice(raw, m.header_start, m.body_start), names, true)
        }
    })
}

/// Applies `<offset.length>`: the origin to report and the bytes.
pub fn apply_partial(data: Vec<u8>, partial: Option<Partial>) -> (Option<u64>, Vec<u8>) {
    match partial {
        None => (None, data),
        Some(p) => {
            let start = usize::try_from(p.offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let len = usize::try_from(p.length).unwrap_or(usize::MAX);
            let end = start.saturating_add(len).min(data.len());
            (Some(p.offset), data.get(start..end).unwrap_or(&[]).to_vec())
        }
    }
}

/// Decodes a part body for BINARY (RFC 3516): 7bit/8bit/binary as is, base64 and
/// quoted-printable decoded; anything else is [`FetchError::UnknownCte`].
pub fn decode_body(encoding: &str, body: &[u8]) -> Result<Vec<u8>, FetchError> {
    match encoding.to_ascii_lowercase().as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(body.to_vec()),
        "base64" => {
            use base64::Engine as _;
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(&clean)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean))
                .map_err(|_| FetchError::UnknownCte)
        }
        "quoted-printable" => Ok(decode_qp(body)),
        _ => Err(FetchError::UnknownCte),
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable decoding (RFC 2045 §6.7), lenient with malformed escapes.
pub fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        if b == b'=' {
            match (body.get(i + 1).copied(), body.get(i + 2).copied()) {
                (Some(b'\r'), Some(b'\n')) => i += 3,
                (Some(b'\n'), _) => i += 2,
                (Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                    out.push(hex(h).unwrap_or(0) << 4 | hex(l).unwrap_or(0));
                    i += 3;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

/// Everything [`render`] needs about one message.
pub struct Message<'a> {
    /// Its UID.
    pub uid: u32,
    /// Its row (flags as the session knows them are passed separately).
    pub row: &'a MessageRow,
    /// Current flags to report.
    pub flags: Vec<Flag>,
    /// Parsed structure, when [`needs_parsed`].
    pub parsed: Option<&'a ParsedMessage>,
    /// Raw bytes, when [`needs_blob`].
    pub raw: Option<&'a [u8]>,
}

/// Renders the requested items of one message, in request order.
pub fn render(m: &Message<'_>, attrs: &[FetchAttr]) -> Result<Vec<FetchItem>, FetchError> {
    let raw = m.raw.unwrap_or(&[]);
    let fallback;
    let parsed = match m.parsed {
        Some(p) => p,
        None => {
            fallback = message::parse(raw);
            &fallback
        }
    };
    let mut out = Vec::with_capacity(attrs.len());
    for a in attrs {
        out.push(match a {
            FetchAttr::Flags => FetchItem::Flags(m.flags.clone()),
            FetchAttr::Uid => FetchItem::Uid(m.uid),
            FetchAttr::ModSeq => FetchItem::ModSeq(m.row.modseq),
            FetchAttr::InternalDate => FetchItem::InternalDate(internal_date(m.row.internal_date)),
            FetchAttr::Rfc822Size => FetchItem::Rfc822Size(m.row.size),
            FetchAttr::Envelope => FetchItem::Envelope(Box::new(envelope(&parsed.envelope))),
            FetchAttr::BodyStructure => {
                FetchItem::BodyStructure(Box::new(body_structure(&parsed.root, true)))
            }
            FetchAttr::Body => FetchItem::Body(Box::new(body_structure(&parsed.root, false))),
            FetchAttr::Rfc822 => FetchItem::Rfc822(Some(raw.to_vec())),
            FetchAttr::Rfc822Header => {
                FetchItem::Rfc822Header(Some(slice(raw, 0, parsed.root.body_start).to_vec()))
            }
            FetchAttr::Rfc822Text => FetchItem::Rfc822Text(Some(
                slice(raw, parsed.root.body_start, parsed.root.body_end).to_vec(),
            )),
            FetchAttr::BodySection {
                section, partial, ..
            } => {
                let data = section_bytes(raw, parsed, section).unwrap_or_default();
                let (origin, data) = apply_partial(data, *partial);
                FetchItem::BodySection {
                    section: section.clone(),
                    origin,
                    data: Some(data),
                }
            }
            FetchAttr::Binary { part, partial, .. } => {
                let data = binary(raw, parsed, part)?;
                let (origin, data) = apply_partial(data, *partial);
                FetchItem::Binary {
                    part: part.clone(),
                    origin,
                    data: Some(data),
                }
            }
            FetchAttr::BinarySize { part } => FetchItem::BinarySize {
                part: part.clone(),
                size: binary(raw, parsed, part)?.len() as u64,
            },
        });
    }
    Ok(out)
}

fn binary(raw: &[u8], parsed: &ParsedMessage, part: &[u32]) -> Result<Vec<u8>, FetchError> {
    if part.is_empty() {
        return Ok(raw.to_vec());
    }
    match find_part(&parsed.root, part) {
        Some(p) => decode_body(&p.encoding, slice(raw, p.body_start, p.body_end)),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::response::{Data, Response};

    const MULTI: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@home.arpa\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";

    fn row(size: usize) -> MessageRow {
        MessageRow {
            blob: [0; 32],
            flags: flag::SEEN,
            keywords: vec!["$Forwarded".into()],
            internal_date: 1_795_420_800,
            size: size as u64,
            modseq: 7,
        }
    }

    fn fetch_line(attrs: &[FetchAttr], raw: &[u8]) -> String {
        let parsed = message::parse(raw);
        let r = row(raw.len());
        let m = Message {
            uid: 42,
            row: &r,
            flags: flags_of(r.flags, &r.keywords),
            parsed: Some(&parsed),
            raw: Some(raw),
        };
        let items = render(&m, attrs).unwrap();
        String::from_utf8(Response::Data(Data::Fetch { seq: 3, items }).to_bytes()).unwrap()
    }

    #[test]
    fn kat_flags_uid_size_date_modseq() {
        let s = fetch_line(
            &[
                FetchAttr::Uid,
                FetchAttr::Flags,
                FetchAttr::Rfc822Size,
                FetchAttr::InternalDate,
                FetchAttr::ModSeq,
            ],
            MULTI,
        );
        assert_eq!(
            s,
            format!(
                "* 3 FETCH (UID 42 FLAGS (\\Seen $Forwarded) RFC822.SIZE {} INTERNALDATE \"23-Nov-2026 08:00:00 +0000\" MODSEQ (7))\r\n",
                MULTI.len()
            )
        );
    }

    #[test]
    fn kat_sections() {
        let sec = |part: Vec<u32>, text: Option<SectionText>| FetchAttr::BodySection {
            peek: true,
            section: Section { part, text },
            partial: None,
        };
        let s = fetch_line(&[sec(vec![1], None)], MULTI);
        assert_eq!(s, "* 3 FETCH (BODY[1] {5}\r\nHello)\r\n");
        let s = fetch_line(&[sec(vec![2], Some(SectionText::Mime))], MULTI);
        assert!(s.contains("BODY[2.MIME] {"), "{s}");
        assert!(
            s.contains("Content-Transfer-Encoding: base64\r\n\r\n)"),
            "{s}"
        );
        let s = fetch_line(
            &[sec(
                vec![],
                Some(SectionText::HeaderFields(vec![
                    "subject".into(),
                    "To".into(),
                ])),
            )],
            MULTI,
        );
        assert!(
            s.ends_with("{34}\r\nTo: bob@home.arpa\r\nSubject: hi\r\n\r\n)\r\n"),
            "{s}"
        );
        let s = fetch_line(
            &[FetchAttr::BodySection {
                peek: false,
                section: Section::default(),
                partial: Some(Partial {
                    offset: 6,
                    length: 5,
                }),
            }],
            MULTI,
        );
        assert_eq!(s, "* 3 FETCH (BODY[]<6> {5}\r\nAlice)\r\n");
        let s = fetch_line(&[sec(vec![9], None)], MULTI);
        assert_eq!(s, "* 3 FETCH (BODY[9] {0}\r\n)\r\n");
    }

    #[test]
    fn kat_binary_decodes_base64() {
        let s = fetch_line(
            &[
                FetchAttr::BinarySize { part: vec![2] },
                FetchAttr::Binary {
                    peek: true,
                    part: vec![2],
                    partial: None,
                },
            ],
            MULTI,
        );
        assert_eq!(
            s,
            "* 3 FETCH (BINARY.SIZE[2] 3 BINARY[2] ~{3}\r\n\x00\x01\x02)\r\n"
        );
    }

    #[test]
    fn kat_envelope_and_bodystructure() {
        let s = fetch_line(&[FetchAttr::Envelope, FetchAttr::BodyStructure], MULTI);
        assert!(
            s.starts_with("* 3 FETCH (ENVELOPE (NIL \"hi\" ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((NIL NIL \"bob\" \"home.arpa\")) NIL NIL NIL NIL) BODYSTRUCTURE (("),
            "{s}"
        );
        assert!(s.to_ascii_lowercase().contains("\"mixed\""), "{s}");
    }

    #[test]
    fn single_part_message_part_one_is_the_body() {
        let raw = b"Subject: x\r\n\r\nbody\r\n";
        let p = message::parse(raw);
        let sec = Section {
            part: vec![1],
            text: None,
        };
        assert_eq!(section_bytes(raw, &p, &sec).unwrap(), b"body\r\n");
        assert!(find_part(&p.root, &[2]).is_none());
        assert!(find_part(&p.root, &[0]).is_none());
    }

    #[test]
    fn dates_round_trip() {
        for d in [-1000_i64, 0, 1, 59, 19_000, 20_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_from_civil(2026, 11, 23), 20_780);
    }

    #[test]
    fn qp_decoding() {
        assert_eq!(
            decode_qp(b"caf=C3=A9=\r\nx=ZZ"),
            "café x=ZZ".replace(' ', "").as_bytes()
        );
    }
}
