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

/// Finds the part a section path names (RFC 3501 and RFC 9051 §6.4.5 part specifiers).
///
/// Numbers index a *message* or a *multipart*: in a message whose body is a multipart,
/// `n` is its n-th child; in a non-multipart message, `1` is the body itself (the root
/// part) and nothing else exists. A multipart part's `n` is its n-th child. After a
/// message/rfc822 part (`1` of an attached message, or the top-level body when the
/// message *is* message/rfc822), the numbers continue inside the enclosed message by
/// the same rules: for a single-part enclosed message `1.1` is its body, for a
/// multipart one `1.2` is the second part of it. A leaf has no sub-parts.
pub fn find_part<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    fn child(children: &[Part], n: u32) -> Option<&Part> {
        children.get(usize::try_from(n).ok()?.checked_sub(1)?)
    }
    // The message the next number indexes into, if it indexes a message.
    let mut message: Option<&Part> = Some(root);
    let mut cur = root;
    for &n in path {
        let msg_root = match message.take() {
            Some(m) => m,
            None => match &cur.kind {
                PartKind::Message(_, inner) => inner.as_ref(),
                PartKind::Multipart(children) if !children.is_empty() => {
                    cur = child(children, n)?;
                    continue;
                }
                _ => return None,
            },
        };
        cur = match &msg_root.kind {
            // An empty multipart is described as a leaf by BODYSTRUCTURE: it is part 1.
            PartKind::Multipart(children) if !children.is_empty() => child(children, n)?,
            _ if n == 1 => msg_root,
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
    // HEADER, TEXT and HEADER.FIELDS apply to a message: the whole one without a part
    // number, else the one a message/rfc822 part encloses. That message ends where the
    // enclosing part's body ends (its TEXT runs to there).
    let msg = if section.part.is_empty() {
        Some((root, root.body_end))
    } else {
        match &part.kind {
            PartKind::Message(_, inner) => Some((inner.as_ref(), part.body_end)),
            _ => None,
        }
    };
    let header = |(m, _): (&Part, u32)| slice(raw, m.header_start, m.body_start);
    Some(match &section.text {
        None if section.part.is_empty() => raw.to_vec(),
        None => slice(raw, part.body_start, part.body_end).to_vec(),
        Some(SectionText::Mime) => slice(raw, part.header_start, part.body_start).to_vec(),
        Some(SectionText::Header) => header(msg?).to_vec(),
        Some(SectionText::Text) => {
            let (m, end) = msg?;
            slice(raw, m.body_start, end.max(m.body_end)).to_vec()
        }
        Some(SectionText::HeaderFields(names)) => header_fields(header(msg?), names, false),
        Some(SectionText::HeaderFieldsNot(names)) => header_fields(header(msg?), names, true),
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

/// Decodes a part body for BINARY (RFC 3516 §4.2): 7bit/8bit/binary as is, base64 and
/// quoted-printable decoded; anything else is [`FetchError::UnknownCte`]
/// (RFC 3516 §4.3). Names are case-insensitive (RFC 2045 §6.1).
pub fn decode_body(encoding: &str, body: &[u8]) -> Result<Vec<u8>, FetchError> {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(body.to_vec()),
        "base64" => Ok(decode_base64(body)),
        "quoted-printable" => Ok(decode_qp(body)),
        _ => Err(FetchError::UnknownCte),
    }
}

/// The value of a base64 alphabet character (RFC 2045 §6.8 Table 1).
fn sextet(b: u8) -> Option<u8> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

/// Base64 decoding as RFC 2045 §6.8 asks of a receiver: line breaks, whitespace and
/// every other character outside the alphabet are ignored, and `=` ends the data. A
/// final group of two or three characters yields one or two octets; a lone sixth
/// bit group has no whole octet and is dropped. Never fails.
pub fn decode_base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in body {
        if b == b'=' {
            break;
        }
        let Some(v) = sextet(b) else { continue };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable decoding (RFC 2045 §6.7), line by line:
/// - rule 3: trailing spaces and tabs of an encoded line are removed (transports may
///   have added them);
/// - rule 5: a line ending in `=` is a soft line break: the `=` and the line break
///   vanish (after rule 3, so `= ` at a line end is one too);
/// - rule 1: `=XX` is the octet XX (lower-case hex accepted, as §6.7 suggests of a
///   robust decoder); an `=` not followed by two hex digits is kept as it is;
/// - rule 4: other line breaks are hard ones and stay as they were written
///   (CRLF, or a bare LF).
pub fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let (line, eol, next): (&[u8], &[u8], &[u8]) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let (line, tail) = rest.split_at(i);
                let (line, eol) = match line.strip_suffix(b"\r") {
                    Some(l) => (l, &b"\r\n"[..]),
                    None => (line, &b"\n"[..]),
                };
                (line, eol, tail.get(1..).unwrap_or_default())
            }
            None => (rest, &b""[..], &b""[..]),
        };
        rest = next;
        let line = match line.iter().rposition(|&b| b != b' ' && b != b'\t') {
            Some(last) => line.get(..=last).unwrap_or_default(),
            None => &[],
        };
        let (line, soft) = match line.strip_suffix(b"=") {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut i = 0;
        while let Some(&b) = line.get(i) {
            let escaped = (b == b'=')
                .then(|| Some(hex(*line.get(i + 1)?)? << 4 | hex(*line.get(i + 2)?)?))
                .flatten();
            match escaped {
                Some(octet) => {
                    out.push(octet);
                    i += 3;
                }
                None => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        if !soft {
            out.extend_from_slice(eol);
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
    use crate::imap::response::{Data, Response, SingleKind};

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

    /// The example of RFC 3501 §6.4.5 (and RFC 9051 §6.4.5), each body naming its own
    /// part number: a multipart/mixed holding a text, an octet stream, a message/rfc822
    /// whose body is a multipart, and a multipart whose second part is a message/rfc822
    /// holding a multipart/alternative.
    const RFC3501_EXAMPLE: &[u8] = b"From: Outer <outer@example.org>\r\n\
Subject: RFC 3501 6.4.5\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"o\"\r\n\
\r\n\
--o\r\n\
Content-Type: text/plain\r\n\
\r\n\
P1\r\n\
--o\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
UDI=\r\n\
--o\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: three@example.org\r\n\
Subject: three\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"t\"\r\n\
\r\n\
--t\r\n\
Content-Type: text/plain\r\n\
\r\n\
P3.1\r\n\
--t\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
UDMuMg==\r\n\
--t--\r\n\
\r\n\
--o\r\n\
Content-Type: multipart/mixed; boundary=\"f\"\r\n\
\r\n\
--f\r\n\
Content-Type: image/gif\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
UDQuMQ==\r\n\
--f\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: four@example.org\r\n\
Subject: four-two\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"g\"\r\n\
\r\n\
--g\r\n\
Content-Type: text/plain\r\n\
\r\n\
P4.2.1\r\n\
--g\r\n\
Content-Type: multipart/alternative; boundary=\"h\"\r\n\
\r\n\
--h\r\n\
Content-Type: text/plain\r\n\
\r\n\
P4.2.2.1\r\n\
--h\r\n\
Content-Type: text/richtext\r\n\
\r\n\
P4.2.2.2\r\n\
--h--\r\n\
\r\n\
--g--\r\n\
\r\n\
--f--\r\n\
\r\n\
--o--\r\n";

    /// A message that *is* an attached message (Content-Type: message/rfc822 at the
    /// top): the enclosed message is a multipart whose second part is itself a
    /// message/rfc822 holding a single text part.
    const TOP_RFC822_MULTI: &[u8] = b"From: fwd@example.org\r\n\
Subject: forwarded\r\n\
MIME-Version: 1.0\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: inner@example.org\r\n\
Subject: inner\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"i\"\r\n\
\r\n\
--i\r\n\
Content-Type: text/plain\r\n\
\r\n\
I1\r\n\
--i\r\n\
Content-Type: message/rfc822\r\n\
Content-Description: nested\r\n\
\r\n\
From: nested@example.org\r\n\
Subject: nested\r\n\
\r\n\
N1\r\n\
--i--\r\n";

    /// Top-level message/rfc822 holding a single-part message.
    const TOP_RFC822_SINGLE: &[u8] = b"From: fwd@example.org\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: inner@example.org\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n";

    /// Two levels: part 1 of a multipart is a message/rfc822 whose body is a
    /// multipart, whose first part is a message/rfc822 holding a single text part.
    const TWO_LEVELS: &[u8] = b"From: a@example.org\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"z\"\r\n\
\r\n\
--z\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: b@example.org\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"y\"\r\n\
\r\n\
--y\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: c@example.org\r\n\
Subject: deepest\r\n\
\r\n\
D\r\n\
--y\r\n\
Content-Type: text/plain\r\n\
\r\n\
Y2\r\n\
--y--\r\n\
--z--\r\n";

    /// Two levels with nothing between: a message/rfc822 message holding a
    /// message/rfc822 message holding a text.
    const TOP_TWO_LEVELS: &[u8] = b"From: a@example.org\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: b@example.org\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: c@example.org\r\n\
Subject: deepest\r\n\
\r\n\
D\r\n";

    /// `BODY[section]` as a string, `None` when the section names no part.
    fn body_at(raw: &[u8], spec: &str) -> Option<String> {
        let parsed = message::parse(raw);
        let (nums, text) = match spec.find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) => (spec[..i].trim_end_matches('.'), Some(&spec[i..])),
            None => (spec, None),
        };
        let part = nums
            .split('.')
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let text = text.map(|t| match t {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" => SectionText::Mime,
            _ => panic!("{t}"),
        });
        section_bytes(raw, &parsed, &Section { part, text }).map(|b| String::from_utf8(b).unwrap())
    }

    /// RFC 3501 §6.4.5's example, every part specifier it lists.
    #[test]
    fn rfc3501_part_specifier_example() {
        let m = RFC3501_EXAMPLE;
        let b = |s: &str| body_at(m, s).unwrap_or_else(|| panic!("{s} names no part"));
        assert!(b("HEADER").starts_with("From: Outer") && b("HEADER").ends_with("\"o\"\r\n\r\n"));
        assert!(b("TEXT").starts_with("--o\r\n") && b("TEXT").ends_with("--o--\r\n"));
        assert_eq!(b("1"), "P1");
        assert_eq!(b("2"), "UDI=");
        assert!(b("3").starts_with("From: three@") && b("3").ends_with("--t--\r\n"));
        assert_eq!(
            b("3.HEADER"),
            "From: three@example.org\r\nSubject: three\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"t\"\r\n\r\n"
        );
        assert!(b("3.TEXT").starts_with("--t\r\nContent-Type: text/plain"));
        assert_eq!(b("3"), b("3.HEADER") + &b("3.TEXT"));
        assert_eq!(b("3.1"), "P3.1");
        assert_eq!(b("3.2"), "UDMuMg==");
        assert!(b("4").starts_with("--f\r\n") && b("4").ends_with("--f--\r\n"));
        assert_eq!(b("4.1"), "UDQuMQ==");
        assert_eq!(
            b("4.1.MIME"),
            "Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        );
        assert_eq!(b("4.2.MIME"), "Content-Type: message/rfc822\r\n\r\n");
        assert!(
            b("4.2.HEADER").starts_with("From: four@")
                && b("4.2.HEADER").ends_with("\"g\"\r\n\r\n")
        );
        assert!(b("4.2.TEXT").starts_with("--g\r\n") && b("4.2.TEXT").ends_with("--g--\r\n"));
        assert_eq!(b("4.2.1"), "P4.2.1");
        assert!(b("4.2.2").starts_with("--h\r\n") && b("4.2.2").ends_with("--h--\r\n"));
        assert_eq!(b("4.2.2.1"), "P4.2.2.1");
        assert_eq!(b("4.2.2.2"), "P4.2.2.2");
        assert_eq!(b("4.2.2.2.MIME"), "Content-Type: text/richtext\r\n\r\n");
        for none in [
            "5", "0", "1.1", "2.1", "3.3", "4.3", "4.2.3", "4.2.2.3", "4.1.1",
        ] {
            assert_eq!(body_at(m, none), None, "{none}");
        }
        // HEADER and TEXT after a part number need a message/rfc822 part.
        assert_eq!(body_at(m, "1.HEADER"), None);
        assert_eq!(body_at(m, "4.TEXT"), None);
    }

    /// A message whose body is an attached message (issue 14): for a multipart
    /// enclosed message, 1.1 and 1.2 are its parts, and 1.2 (a message/rfc822 in turn)
    /// has its own MIME header, HEADER, TEXT and 1.2.1.
    #[test]
    fn parts_inside_a_top_level_message_rfc822() {
        let m = TOP_RFC822_MULTI;
        let b = |s: &str| body_at(m, s).unwrap_or_else(|| panic!("{s} names no part"));
        assert!(b("1").starts_with("From: inner@") && b("1").ends_with("--i--\r\n"));
        assert!(
            b("1.HEADER").starts_with("From: inner@") && b("1.HEADER").ends_with("\"i\"\r\n\r\n")
        );
        assert!(b("1.TEXT").starts_with("--i\r\n") && b("1.TEXT").ends_with("--i--\r\n"));
        assert_eq!(b("1.1"), "I1");
        assert_eq!(
            b("1.2"),
            "From: nested@example.org\r\nSubject: nested\r\n\r\nN1"
        );
        assert_eq!(
            b("1.2.MIME"),
            "Content-Type: message/rfc822\r\nContent-Description: nested\r\n\r\n"
        );
        assert_eq!(
            b("1.2.HEADER"),
            "From: nested@example.org\r\nSubject: nested\r\n\r\n"
        );
        assert_eq!(b("1.2.TEXT"), "N1");
        assert_eq!(b("1.2.1"), "N1");
        assert_eq!(body_at(m, "1.3"), None);
        assert_eq!(body_at(m, "2"), None);

        // Single-part enclosed message: 1.1 is its body, not its header and body.
        let m = TOP_RFC822_SINGLE;
        assert_eq!(
            body_at(m, "1").unwrap(),
            "From: inner@example.org\r\nSubject: inner\r\n\r\ninner body\r\n"
        );
        assert_eq!(body_at(m, "1.1").unwrap(), "inner body\r\n");
        assert_eq!(body_at(m, "1.TEXT").unwrap(), "inner body\r\n");
        assert_eq!(
            body_at(m, "1.HEADER").unwrap(),
            "From: inner@example.org\r\nSubject: inner\r\n\r\n"
        );
        assert_eq!(body_at(m, "1.2"), None);
        assert_eq!(body_at(m, "1.1.1"), None);
    }

    /// An attached message as part 1 of a multipart, single-part inside (1.1 is its
    /// body), and two levels of message/rfc822 (1.1.1).
    #[test]
    fn parts_inside_attached_messages_two_levels_deep() {
        let single = b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.org\r\nSubject: inner\r\n\r\ninner body\r\n--z--\r\n";
        assert_eq!(body_at(single, "1.1").unwrap(), "inner body");
        assert_eq!(body_at(single, "1.TEXT").unwrap(), "inner body");
        assert_eq!(body_at(single, "1.2"), None);

        let m = TWO_LEVELS;
        assert!(
            body_at(m, "1")
                .unwrap()
                .starts_with("From: b@example.org\r\n")
        );
        assert_eq!(
            body_at(m, "1.1").unwrap(),
            "From: c@example.org\r\nSubject: deepest\r\n\r\nD"
        );
        assert_eq!(
            body_at(m, "1.1.HEADER").unwrap(),
            "From: c@example.org\r\nSubject: deepest\r\n\r\n"
        );
        assert_eq!(body_at(m, "1.1.1").unwrap(), "D");
        assert_eq!(body_at(m, "1.2").unwrap(), "Y2");
        assert_eq!(body_at(m, "1.1.2"), None);

        let m = TOP_TWO_LEVELS;
        assert_eq!(
            body_at(m, "1.1").unwrap(),
            "From: c@example.org\r\nSubject: deepest\r\n\r\nD\r\n"
        );
        assert_eq!(
            body_at(m, "1.1.HEADER").unwrap(),
            "From: c@example.org\r\nSubject: deepest\r\n\r\n"
        );
        assert_eq!(body_at(m, "1.1.TEXT").unwrap(), "D\r\n");
        assert_eq!(body_at(m, "1.1.1").unwrap(), "D\r\n");
        assert_eq!(body_at(m, "1.1.2"), None);
        // The same through the multipart of RFC3501_EXAMPLE's part 3: 3.1 is its text.
        assert_eq!(body_at(RFC3501_EXAMPLE, "3.1").unwrap(), "P3.1");
    }

    /// Every part number BODYSTRUCTURE implies, in message order, with its structure.
    fn part_numbers(bs: &BodyStructure) -> Vec<(Vec<u32>, &BodyStructure)> {
        fn message<'a>(
            bs: &'a BodyStructure,
            at: &[u32],
            out: &mut Vec<(Vec<u32>, &'a BodyStructure)>,
        ) {
            match bs {
                BodyStructure::Multi { parts, .. } => {
                    for (i, p) in parts.iter().enumerate() {
                        part(p, &[at, &[i as u32 + 1]].concat(), out);
                    }
                }
                single => part(single, &[at, &[1]].concat(), out),
            }
        }
        fn part<'a>(
            bs: &'a BodyStructure,
            at: &[u32],
            out: &mut Vec<(Vec<u32>, &'a BodyStructure)>,
        ) {
            out.push((at.to_vec(), bs));
            match bs {
                BodyStructure::Multi { parts, .. } => {
                    for (i, p) in parts.iter().enumerate() {
                        part(p, &[at, &[i as u32 + 1]].concat(), out);
                    }
                }
                BodyStructure::Single { part: p, .. } => {
                    if let SingleKind::Message { body, .. } = &p.kind {
                        message(body, at, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        message(bs, &[], &mut out);
        out
    }

    /// BODYSTRUCTURE, BODY[n] and BINARY[n] agree on every part number of nested test
    /// messages: the octet count, line count and type BODYSTRUCTURE gives for a part
    /// are those of the bytes BODY[n] returns; BINARY[n] is their decoding, and
    /// BINARY.SIZE[n] its length; an enclosed message is its HEADER then its TEXT.
    #[test]
    fn bodystructure_body_and_binary_agree_on_part_numbers() {
        for raw in [
            RFC3501_EXAMPLE,
            TOP_RFC822_MULTI,
            TOP_RFC822_SINGLE,
            TWO_LEVELS,
            TOP_TWO_LEVELS,
            MULTI,
        ] {
            let parsed = message::parse(raw);
            let bs = body_structure(&parsed.root, true);
            let numbers = part_numbers(&bs);
            assert!(numbers.len() > 1, "{numbers:?}");
            for (n, node) in numbers {
                let sec = |text| Section {
                    part: n.clone(),
                    text,
                };
                let body =
                    section_bytes(raw, &parsed, &sec(None)).unwrap_or_else(|| panic!("{n:?}"));
                let bin = binary(raw, &parsed, &n).unwrap();
                let found = find_part(&parsed.root, &n).unwrap();
                match node {
                    BodyStructure::Multi { subtype, .. } => {
                        assert_eq!(&found.subtype, subtype, "{n:?}");
                        assert!(body.starts_with(b"--"), "{n:?}");
                    }
                    BodyStructure::Single { part, .. } => {
                        assert_eq!(part.size as usize, body.len(), "{n:?} size");
                        assert_eq!(
                            (&found.media_type, &found.subtype),
                            (&part.media_type, &part.subtype),
                            "{n:?}"
                        );
                        assert_eq!(bin, decode_body(&part.encoding, &body).unwrap(), "{n:?}");
                        match &part.kind {
                            SingleKind::Text { lines } | SingleKind::Message { lines, .. } => {
                                assert_eq!(
                                    *lines as usize,
                                    body.split(|&b| b == b'\n')
                                        .filter(|l| !l.is_empty())
                                        .count(),
                                    "{n:?} lines"
                                )
                            }
                            SingleKind::Basic => {}
                        }
                        if let SingleKind::Message { .. } = part.kind {
                            let mut whole =
                                section_bytes(raw, &parsed, &sec(Some(SectionText::Header)))
                                    .unwrap();
                            whole.extend(
                                section_bytes(raw, &parsed, &sec(Some(SectionText::Text))).unwrap(),
                            );
                            assert_eq!(whole, body, "{n:?} HEADER + TEXT");
                        }
                    }
                }
                let size = render_one(raw, FetchAttr::BinarySize { part: n.clone() });
                assert_eq!(
                    size,
                    FetchItem::BinarySize {
                        part: n.clone(),
                        size: bin.len() as u64
                    }
                );
            }
        }
        // The decoded octet streams: BINARY[3.2], BINARY[4.1] of the RFC example.
        let parsed = message::parse(RFC3501_EXAMPLE);
        assert_eq!(binary(RFC3501_EXAMPLE, &parsed, &[3, 2]).unwrap(), b"P3.2");
        assert_eq!(binary(RFC3501_EXAMPLE, &parsed, &[4, 1]).unwrap(), b"P4.1");
        assert_eq!(binary(RFC3501_EXAMPLE, &parsed, &[2]).unwrap(), b"P2");
    }

    fn render_one(raw: &[u8], attr: FetchAttr) -> FetchItem {
        let parsed = message::parse(raw);
        let r = row(raw.len());
        let m = Message {
            uid: 1,
            row: &r,
            flags: Vec::new(),
            parsed: Some(&parsed),
            raw: Some(raw),
        };
        render(&m, &[attr]).unwrap().remove(0)
    }

    /// RFC 2045 §6.7 quoted-printable in BINARY (RFC 3516): soft line breaks vanish
    /// (with transport whitespace after the `=` too), `=XX` is decoded, trailing
    /// whitespace of a line is removed, hard line breaks stay; BINARY.SIZE is the
    /// decoded size and a partial counts decoded octets.
    #[test]
    fn binary_of_quoted_printable() {
        // RFC 2045 §6.7 rule 5's example, and trailing whitespace added in transit.
        let body = "Now's the time =\r\nfor all folk to come=  \r\n to the aid of their country.\r\ncaf=C3=A9 =E2=82=AC=\t\r\n10 \t\r\nlast line  \r\n";
        let decoded = "Now's the time for all folk to come to the aid of their country.\r\ncafé €10\r\nlast line\r\n";
        let single = format!(
            "Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n{body}"
        );
        let multi = format!(
            "Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{body}\r\n--b--\r\n"
        );
        for (raw, n) in [(single.as_bytes(), 1), (multi.as_bytes(), 2)] {
            let bin = |partial| {
                render_one(
                    raw,
                    FetchAttr::Binary {
                        peek: true,
                        part: vec![n],
                        partial,
                    },
                )
            };
            assert_eq!(
                bin(None),
                FetchItem::Binary {
                    part: vec![n],
                    origin: None,
                    data: Some(decoded.as_bytes().to_vec())
                },
                "{n}"
            );
            assert_eq!(
                render_one(raw, FetchAttr::BinarySize { part: vec![n] }),
                FetchItem::BinarySize {
                    part: vec![n],
                    size: decoded.len() as u64
                }
            );
            // <o.l> counts decoded octets: "é €" is 6 of them.
            let at = decoded.find("é").unwrap() as u64;
            assert_eq!(
                bin(Some(Partial {
                    offset: at,
                    length: 6
                })),
                FetchItem::Binary {
                    part: vec![n],
                    origin: Some(at),
                    data: Some("é €".as_bytes().to_vec())
                }
            );
        }
        // The body itself (BODY[n]) is served encoded.
        assert!(
            body_at(multi.as_bytes(), "2")
                .unwrap()
                .starts_with("Now's the time =\r\n")
        );
        // Malformed escapes are kept; lower-case hex is accepted; a bare LF stays one.
        assert_eq!(decode_qp(b"a=ZZb=4\nc=e9 =\nd"), b"a=ZZb=4\nc\xe9 d");
    }

    /// RFC 2045 §6.8 base64 in BINARY: line breaks, whitespace and characters outside
    /// the alphabet are ignored, `=` ends the data; BINARY.SIZE is the decoded size.
    #[test]
    fn binary_of_base64() {
        let raw = b"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: BASE64\r\n\r\nAAEC\r\nA w Q F\tBg\r\n  cI*CQ==\r\n--b--\r\n";
        let want: Vec<u8> = (0..10).collect();
        assert_eq!(
            render_one(
                raw,
                FetchAttr::Binary {
                    peek: true,
                    part: vec![1],
                    partial: None
                }
            ),
            FetchItem::Binary {
                part: vec![1],
                origin: None,
                data: Some(want.clone())
            }
        );
        assert_eq!(
            render_one(raw, FetchAttr::BinarySize { part: vec![1] }),
            FetchItem::BinarySize {
                part: vec![1],
                size: 10
            }
        );
        assert_eq!(
            render_one(
                raw,
                FetchAttr::Binary {
                    peek: true,
                    part: vec![1],
                    partial: Some(Partial {
                        offset: 8,
                        length: 100
                    })
                }
            ),
            FetchItem::Binary {
                part: vec![1],
                origin: Some(8),
                data: Some(vec![8, 9])
            }
        );
        assert_eq!(decode_base64(b"TWFu\r\nTWE=\r\nTQ==\r\n"), b"ManMa");
        assert_eq!(decode_base64(b"TWFuTQ"), b"ManM", "missing padding");
        assert_eq!(
            decode_base64(b"TWFuT"),
            b"Man",
            "a lone sextet has no octet"
        );
        assert_eq!(decode_body("x-uuencode", b"x"), Err(FetchError::UnknownCte));
    }

    /// BINARY of a message/rfc822 part is the enclosed message as it is (its CTE is
    /// 7bit); BINARY[] is the whole message and BINARY[1] of a single-part message its
    /// decoded body.
    #[test]
    fn binary_of_messages_and_of_the_top_level() {
        let parsed = message::parse(TOP_RFC822_MULTI);
        let b = |n: &[u32]| binary(TOP_RFC822_MULTI, &parsed, n).unwrap();
        assert_eq!(b(&[]), TOP_RFC822_MULTI);
        assert!(b(&[1]).starts_with(b"From: inner@") && b(&[1]).ends_with(b"--i--\r\n"));
        assert_eq!(
            b(&[1, 2]),
            b"From: nested@example.org\r\nSubject: nested\r\n\r\nN1"
        );
        assert_eq!(b(&[1, 2, 1]), b"N1");
        let raw = b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n";
        let parsed = message::parse(raw);
        assert_eq!(binary(raw, &parsed, &[1]).unwrap(), b"hello");
        assert_eq!(binary(raw, &parsed, &[]).unwrap(), raw);
    }

    /// ENVELOPE address lists with RFC 5322 groups use RFC 3501 §7.4.2's markers: a
    /// group starts with (NIL NIL "name" NIL) and ends with (NIL NIL NIL NIL), with
    /// no phantom entry for a comment or display name after the group; RFC 5322
    /// A.1.3's example.
    #[test]
    fn envelope_groups_follow_rfc3501_markers() {
        let raw = b"From: Pete <pete@silly.example>\r\n\
To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n\
Cc: Undisclosed recipients:;\r\n\
Bcc: team: a@b.test; (the end), Carol <carol@c.test>, postmaster, \"john doe\"@d.test\r\n\
Reply-To: undisclosed-recipients:; trailing display name\r\n\
Subject: groups\r\n\
\r\n\
body\r\n";
        let s = fetch_line(&[FetchAttr::Envelope], raw);
        assert_eq!(
            s,
            "* 3 FETCH (ENVELOPE (NIL \"groups\" ((\"Pete\" NIL \"pete\" \"silly.example\")) \
((\"Pete\" NIL \"pete\" \"silly.example\")) \
((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) \
((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")(\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)) \
((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL)) \
((NIL NIL \"team\" NIL)(NIL NIL \"a\" \"b.test\")(NIL NIL NIL NIL)(\"Carol\" NIL \"carol\" \"c.test\")(NIL NIL \"postmaster\" \"\")(NIL NIL \"\\\"john doe\\\"\" \"d.test\")) \
NIL NIL))\r\n"
        );
    }
}
