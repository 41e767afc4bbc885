//! Parse-once message metadata: the IMAP ENVELOPE (RFC 9051 §7.5.2) and the MIME
//! structure with the byte offsets of every part, computed with mail-parser when a
//! message enters the store. IMAP answers ENVELOPE, BODYSTRUCTURE and `BODY[1.2]`
//! from this without re-parsing the message.

use mail_parser::{HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

/// Nesting deeper than this is flattened into a leaf (hostile MIME, RFC 2046 has no limit).
const MAX_DEPTH: usize = 32;

/// One address of an envelope list (RFC 9051 §7.5.2 "address").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EnvAddress {
    /// Display name (decoded).
    pub name: Option<String>,
    /// Local part; for a group start, the group name (host is then `None`).
    pub mailbox: Option<String>,
    /// Domain.
    pub host: Option<String>,
}

/// The IMAP ENVELOPE fields. Unstructured fields keep the header's raw text
/// (unfolded), as RFC 9051 §7.5.2 asks; addresses are parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Envelope {
    /// Date header, raw.
    pub date: Option<String>,
    /// Subject header, raw (may hold RFC 2047 encoded words).
    pub subject: Option<String>,
    /// From.
    pub from: Vec<EnvAddress>,
    /// Sender (IMAP substitutes From when absent; that is the encoder's job).
    pub sender: Vec<EnvAddress>,
    /// Reply-To.
    pub reply_to: Vec<EnvAddress>,
    /// To.
    pub to: Vec<EnvAddress>,
    /// Cc.
    pub cc: Vec<EnvAddress>,
    /// Bcc.
    pub bcc: Vec<EnvAddress>,
    /// In-Reply-To, raw.
    pub in_reply_to: Option<String>,
    /// Message-ID, raw.
    pub message_id: Option<String>,
}

/// What kind of MIME node a [`Part`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartKind {
    /// A leaf (text, image, application ...).
    Leaf,
    /// multipart/*: the children in order.
    Multipart(Vec<Part>),
    /// message/rfc822 (or global): the enclosed message's envelope and root part.
    Message(Box<Envelope>, Box<Part>),
}

/// One MIME part with the fields BODYSTRUCTURE needs (RFC 9051 §7.5.2) and its
/// byte range in the raw message (RFC 9051 §6.4.5 section numbers index these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Media type, lowercase ("text").
    pub media_type: String,
    /// Subtype, lowercase ("plain").
    pub subtype: String,
    /// Content-Type parameters, names lowercase.
    pub params: Vec<(String, String)>,
    /// Content-ID.
    pub id: Option<String>,
    /// Content-Description.
    pub description: Option<String>,
    /// Content-Transfer-Encoding, lowercase; "7bit" when absent.
    pub encoding: String,
    /// Content-Disposition value and parameters.
    pub disposition: Option<(String, Vec<(String, String)>)>,
    /// Content-Language values.
    pub language: Vec<String>,
    /// Content-Location.
    pub location: Option<String>,
    /// Offset of the part's header in the raw message.
    pub header_start: u32,
    /// Offset of the part's body (after the blank line).
    pub body_start: u32,
    /// End of the part's body.
    pub body_end: u32,
    /// Body lines, for text/* and message/rfc822 (RFC 9051 §7.5.2 body-fld-lines).
    pub lines: u32,
    /// Children, if any.
    pub kind: PartKind,
}

impl Part {
    /// Body size in octets (body-fld-octets).
    pub fn body_size(&self) -> u32 {
        self.body_end.saturating_sub(self.body_start)
    }
}

/// Everything the store keeps about a message's content besides its bytes.
///
/// Stored postcard-encoded, which has no field names or versions: a field may only be
/// added at the end, and the store decodes records written before it with
/// [`ParsedMessage::decode`] (older records simply end earlier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedMessage {
    /// The top-level envelope.
    pub envelope: Envelope,
    /// The root MIME part (header_start 0).
    pub root: Part,
    /// The top-level References header, raw and unfolded (THREAD=REFERENCES, RFC 5256
    /// §3). `None` when absent, and for messages stored before this field existed
    /// (threading then falls back to In-Reply-To, as for a message without References).
    pub references: Option<String>,
}

/// [`ParsedMessage`] as stored before `references` was added.
#[derive(Deserialize)]
struct ParsedMessageV1 {
    envelope: Envelope,
    root: Part,
}

impl ParsedMessage {
    /// Decodes a stored record: the current layout, or the one without `references`
    /// (a record of the older layout ends right after `root`, so the current layout
    /// fails on it with an unexpected end and never misreads it).
    pub fn decode(bytes: &[u8]) -> Result<ParsedMessage, postcard::Error> {
        match postcard::from_bytes::<ParsedMessage>(bytes) {
            Ok(p) => Ok(p),
            Err(e) => match postcard::from_bytes::<ParsedMessageV1>(bytes) {
                Ok(v1) => Ok(ParsedMessage {
                    envelope: v1.envelope,
                    root: v1.root,
                    references: None,
                }),
                Err(_) => Err(e),
            },
        }
    }
}

/// An address list as ENVELOPE lists it (RFC 3501 §7.4.2, RFC 9051 §7.5.2): a group
/// starts with `(NIL NIL "name" NIL)` (NIL host, the group name as mailbox) and ends
/// with `(NIL NIL NIL NIL)`. A mailbox always has a host, so that it never reads as a
/// group marker: the empty string when the address has no domain (`To: postmaster`;
/// the RFCs are silent; Dovecot fills in `MISSING_DOMAIN`). The local part is written as
/// an address needs it (quoted when it is not a dot-atom), so `mailbox@host` can be
/// replied to.
fn addresses(value: Option<&[u8]>) -> Vec<EnvAddress> {
    use super::address::{Item, parse_list};
    let Some(value) = value else {
        return Vec::new();
    };
    parse_list(value)
        .into_iter()
        .map(|item| match item {
            Item::Mailbox(m) => EnvAddress {
                mailbox: Some(m.local_quoted()),
                host: Some(m.domain.clone().unwrap_or_default()),
                name: m.name,
            },
            Item::GroupStart(name) => EnvAddress {
                name: None,
                mailbox: Some(name),
                host: None,
            },
            Item::GroupEnd => EnvAddress::default(),
        })
        .collect()
}

/// The raw value (after the colon, folding kept) of the first header `name`.
fn raw_value<'a>(raw: &'a [u8], part: &MessagePart<'_>, name: &str) -> Option<&'a [u8]> {
    let h = part
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))?;
    raw.get(h.offset_start as usize..h.offset_end as usize)
}

/// The raw, unfolded, trimmed text of the first header `name` in `headers`.
fn raw_header(raw: &[u8], part: &MessagePart<'_>, name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw_value(raw, part, name)?);
    let unfolded: String = text.replace("\r\n", "").replace('\n', "");
    let t = unfolded.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

fn envelope(raw: &[u8], part: &MessagePart<'_>) -> Envelope {
    let list = |name: &str| addresses(raw_value(raw, part, name));
    Envelope {
        date: raw_header(raw, part, "Date"),
        subject: raw_header(raw, part, "Subject"),
        from: list("From"),
        sender: list("Sender"),
        reply_to: list("Reply-To"),
        to: list("To"),
        cc: list("Cc"),
        bcc: list("Bcc"),
        in_reply_to: raw_header(raw, part, "In-Reply-To"),
        message_id: raw_header(raw, part, "Message-ID"),
    }
}

fn count_lines(body: &[u8]) -> u32 {
    let n = body.iter().filter(|b| **b == b'\n').count();
    let extra = usize::from(!body.is_empty() && !body.ends_with(b"\n"));
    u32::try_from(n + extra).unwrap_or(u32::MAX)
}

/// Converts a mail-parser part (and its children) into our [`Part`]; `base` is the
/// offset of `msg`'s raw bytes inside the top-level message. `seen` marks the parts of
/// `msg` already converted: on broken MIME mail-parser can return a part graph where a
/// multipart lists a part twice or its own ancestor, which expanded as a tree grows
/// exponentially (found by fuzz/message_parse); each part is converted at most once.
fn convert(
    msg: &mail_parser::Message<'_>,
    idx: usize,
    base: u32,
    top: &[u8],
    depth: usize,
    seen: &mut [bool],
) -> Part {
    let Some(p) = msg.parts.get(idx) else {
        return empty_part(base);
    };
    let (media_type, subtype, params) = match p.content_type() {
        Some(ct) => (
            ct.c_type.to_ascii_lowercase(),
            ct.c_subtype.as_deref().unwrap_or("").to_ascii_lowercase(),
            ct.attributes()
                .unwrap_or(&[])
                .iter()
                .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
                .collect(),
        ),
        // RFC 2045 §5.2 default; RFC 2046 §5.1.5 inside multipart/digest.
        None => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    let subtype = if subtype.is_empty() && media_type == "text" {
        "plain".into()
    } else {
        subtype
    };
    let disposition = p.content_disposition().map(|d| {
        let ps = d
            .attributes()
            .unwrap_or(&[])
            .iter()
            .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()));
        (d.c_type.to_ascii_lowercase(), ps.collect())
    });
    let language = match p.content_language() {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    };
    let (hs, bs, be) = (
        base + p.offset_header,
        base + p.offset_body,
        base + p.offset_end,
    );
    let body = top.get(bs as usize..be as usize).unwrap_or(&[]);
    let encoding = p
        .content_transfer_encoding()
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into());
    let kind = match &p.body {
        PartType::Multipart(children) if depth < MAX_DEPTH => PartKind::Multipart(
            children
                .iter()
                .filter_map(|&c| {
                    let c = c as usize;
                    if let Some(s) = seen.get_mut(c) {
                        if *s {
                            return None;
                        }
                        *s = true;
                    }
                    let mut child = convert(msg, c, base, top, depth + 1, seen);
                    // Only an enclosed message is cut (the case mail-parser gets wrong):
                    // in hostile MIME a leaf at the depth limit, or a child reusing its
                    // parent's boundary, holds the rest of the message, which must stay
                    // searchable (tests/hostile.rs).
                    if let (PartKind::Message(..), Some((_, b))) =
                        (&child.kind, params.iter().find(|(k, _)| k == "boundary"))
                    {
                        end_at_delimiter(&mut child, top, b.as_bytes());
                    }
                    Some(child)
                })
                .collect(),
        ),
        // An encoded message/rfc822 was decoded by mail-parser, so its offsets would not
        // point into our bytes; serve it as a leaf.
        PartType::Message(inner)
            if depth < MAX_DEPTH && matches!(encoding.as_str(), "7bit" | "8bit" | "binary") =>
        {
            // Parsed inline, the nested message borrows from the whole message and its
            // offsets are absolute; parsed separately, they are relative to this body.
            let top_range = top.as_ptr_range();
            let absolute = top_range.contains(&inner.raw_message().as_ptr());
            let (inner_base, inner_raw) = if absolute {
                (0, top)
            } else {
                (bs, inner.raw_message())
            };
            let env = inner
                .parts
                .first()
                .map(|r| envelope(inner_raw, r))
                .unwrap_or_default();
            PartKind::Message(
                Box::new(env),
                Box::new(convert(inner, 0, inner_base, top, depth + 1, &mut {
                    let mut seen = vec![false; inner.parts.len()];
                    if let Some(s) = seen.first_mut() {
                        *s = true;
                    }
                    seen
                })),
            )
        }
        _ => PartKind::Leaf,
    };
    let lines = if media_type == "text" || matches!(kind, PartKind::Message(..)) {
        count_lines(body)
    } else {
        0
    };
    Part {
        media_type,
        subtype,
        params,
        id: p.content_id().map(str::to_string),
        description: p.content_description().map(str::to_string),
        encoding,
        disposition,
        language,
        location: p.content_location().map(str::to_string),
        header_start: hs,
        body_start: bs,
        body_end: be,
        lines,
        kind,
    }
}

/// Where the first delimiter line of `boundary` starts in `body`, the line break
/// before it included (RFC 2046 §5.1.1: CRLF, `--boundary`, `--` for the last one,
/// optional white space, a line break or the end).
fn delimiter_at(body: &[u8], boundary: &[u8]) -> Option<usize> {
    let mut needle = b"\n--".to_vec();
    needle.extend_from_slice(boundary);
    memchr::memmem::find_iter(body, &needle).find_map(|at| {
        let rest = body.get(at + needle.len()..).unwrap_or_default();
        let rest = rest.strip_prefix(b"--").unwrap_or(rest);
        let ws = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let rest = rest.get(ws..).unwrap_or_default();
        matches!(rest.first(), None | Some(b'\r' | b'\n')).then(|| {
            if at > 0 && body.get(at - 1) == Some(&b'\r') {
                at - 1
            } else {
                at
            }
        })
    })
}

/// Ends a message/rfc822 part of a multipart before its parent's next delimiter line,
/// which no part may contain (RFC 2046 §5.1.1). mail-parser 0.11.9 lets a message/rfc822 part whose
/// body is itself a message/rfc822 run past the delimiter that ends it (`BODY[1]`
/// then carried `\r\n--z--`); an enclosed message's root is cut at the same place.
fn end_at_delimiter(part: &mut Part, top: &[u8], boundary: &[u8]) {
    let body = top
        .get(part.body_start as usize..part.body_end as usize)
        .unwrap_or_default();
    let Some(cut) = delimiter_at(body, boundary) else {
        return;
    };
    let end = part.body_start + cut as u32;
    part.body_end = end;
    if part.lines != 0 {
        part.lines = count_lines(
            top.get(part.body_start as usize..end as usize)
                .unwrap_or_default(),
        );
    }
    if let PartKind::Message(_, inner) = &mut part.kind {
        inner.header_start = inner.header_start.min(end);
        inner.body_start = inner.body_start.min(end);
        inner.body_end = inner.body_end.min(end);
    }
}

fn empty_part(at: u32) -> Part {
    Part {
        media_type: "text".into(),
        subtype: "plain".into(),
        params: Vec::new(),
        id: None,
        description: None,
        encoding: "7bit".into(),
        disposition: None,
        language: Vec::new(),
        location: None,
        header_start: at,
        body_start: at,
        body_end: at,
        lines: 0,
        kind: PartKind::Leaf,
    }
}

/// Drops a parsed message without recursion. mail-parser keeps each message/rfc822 part
/// as a [`mail_parser::Message`] inside its parent, however deep, and its derived `Drop`
/// recurses once per level: 10,000 nested message/rfc822 headers (300 KB) overflowed a
/// tokio worker's 2 MiB stack and aborted the daemon (tests/hostile.rs). Parsing itself is
/// iterative; so is this teardown: each nested message is moved out of its part before
/// its parent is dropped.
fn drop_flat(msg: mail_parser::Message<'_>) {
    let mut stack = vec![msg];
    while let Some(mut m) = stack.pop() {
        for part in &mut m.parts {
            if let PartType::Message(inner) = std::mem::take(&mut part.body) {
                stack.push(inner);
            }
        }
    }
}

/// Parses a raw message. Never fails: unparsable input becomes a single text/plain
/// leaf whose header is empty, so anything SMTP accepted can still be stored and read.
pub fn parse(raw: &[u8]) -> ParsedMessage {
    let size = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    // mail-parser 0.11.9 has a `debug_assert!` ("Invalid part ID, could not find
    // multipart") that hostile MIME reaches (found by fuzz/message_parse; release builds
    // recover past it). Contain any panic and store the message as unparsable.
    let msg = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten();
    match msg {
        Some(msg) if !msg.parts.is_empty() => {
            let envelope = msg
                .parts
                .first()
                .map(|r| envelope(raw, r))
                .unwrap_or_default();
            let mut seen = vec![false; msg.parts.len()];
            if let Some(s) = seen.first_mut() {
                *s = true;
            }
            let mut root = convert(&msg, 0, 0, raw, 0, &mut seen);
            let references = msg
                .parts
                .first()
                .and_then(|r| raw_header(raw, r, "References"));
            drop_flat(msg);
            // mail-parser may stop before trailing bytes; the root always spans the message.
            root.header_start = 0;
            root.body_end = root.body_end.max(size).min(size);
            ParsedMessage {
                envelope,
                root,
                references,
            }
        }
        _ => {
            let mut root = empty_part(0);
            root.body_end = size;
            root.lines = count_lines(raw);
            ParsedMessage {
                envelope: Envelope::default(),
                root,
                references: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@home.arpa, \"Carol C\" <carol@home.arpa>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n  folded\r\nMessage-ID: <1@example.org>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\nWorld\r\n";

    #[test]
    fn envelope_of_simple_message() {
        let p = parse(SIMPLE);
        assert_eq!(
            p.envelope.subject.as_deref(),
            Some("=?utf-8?q?caf=C3=A9?=  folded")
        );
        assert_eq!(p.envelope.message_id.as_deref(), Some("<1@example.org>"));
        assert_eq!(p.envelope.from[0].name.as_deref(), Some("Alice"));
        assert_eq!(p.envelope.from[0].mailbox.as_deref(), Some("alice"));
        assert_eq!(p.envelope.from[0].host.as_deref(), Some("example.org"));
        assert_eq!(p.envelope.to.len(), 2);
        assert_eq!(p.envelope.to[1].name.as_deref(), Some("Carol C"));
        assert_eq!(
            (p.root.media_type.as_str(), p.root.subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(
            &SIMPLE[p.root.body_start as usize..p.root.body_end as usize],
            b"Hello\r\nWorld\r\n"
        );
        assert_eq!(p.root.lines, 2);
    }

    #[test]
    fn multipart_offsets_slice_the_parts() {
        let raw = b"Content-Type: multipart/mixed; boundary=XX\r\nSubject: m\r\n\r\npre\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\npart one\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: a@b.c\r\n\r\ninner body\r\n--XX--\r\n";
        let p = parse(raw);
        let PartKind::Multipart(kids) = &p.root.kind else {
            panic!("{:?}", p.root.kind)
        };
        assert_eq!(kids.len(), 2);
        let one = &kids[0];
        assert_eq!(
            &raw[one.body_start as usize..one.body_end as usize],
            b"part one"
        );
        assert_eq!(
            one.params,
            vec![("charset".to_string(), "utf-8".to_string())]
        );
        let PartKind::Message(env, inner) = &kids[1].kind else {
            panic!("{:?}", kids[1].kind)
        };
        assert_eq!(env.subject.as_deref(), Some("inner"));
        assert!(raw[inner.body_start as usize..inner.body_end as usize].starts_with(b"inner body"));
        assert!(raw[inner.header_start as usize..].starts_with(b"Subject: inner"));
    }

    #[test]
    fn garbage_and_empty_never_fail() {
        for raw in [
            &b""[..],
            b"\0\0\0",
            b"no header at all",
            b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
        ] {
            let p = parse(raw);
            assert!(p.root.body_end as usize <= raw.len());
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut raw = Vec::new();
        for i in 0..200 {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"\r\nleaf\r\n");
        let p = parse(&raw);
        fn depth(p: &Part) -> usize {
            match &p.kind {
                PartKind::Multipart(k) => 1 + k.iter().map(depth).max().unwrap_or(0),
                PartKind::Message(_, b) => 1 + depth(b),
                PartKind::Leaf => 0,
            }
        }
        assert!(depth(&p.root) <= MAX_DEPTH + 1);
    }

    /// fuzz/corpus/message_parse/mail-parser-invalid-part-id: a message/rfc822 inside a
    /// multipart with a broken boundary trips a `debug_assert!` in mail-parser 0.11.9.
    #[test]
    fn mail_parser_panic_is_contained() {
        let raw = b"e\nContent-Type: multipart/x;boundary=\"XX\n\r\n--XX\rContent-Type:message/rfc822\r\n\r\nContent-Type: message/rfc822\n\n\n--XX--";
        let p = parse(raw);
        assert_eq!(p.root.header_start, 0);
        assert!(p.root.body_end as usize <= raw.len());
    }

    /// fuzz/corpus/message_parse/mail-parser-part-cycle: on broken MIME mail-parser 0.11.9
    /// (release) returned multiparts listing a part twice / their own ancestor; expanding
    /// that as a tree took gigabytes for 220 bytes. Built by hand here because debug builds
    /// of mail-parser stop at a `debug_assert!` on that input instead.
    #[test]
    fn shared_and_cyclic_parts_are_converted_once() {
        use mail_parser::{Message, MessagePart};
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
        let multi = |ids: Vec<u32>| MessagePart {
            body: PartType::Multipart(ids),
            offset_end: raw.len() as u32,
            ..MessagePart::default()
        };
        // 0 -> [1, 1, 0], 1 -> [0, 1, 2, 2], 2 a leaf.
        let msg = Message {
            parts: vec![
                multi(vec![1, 1, 0]),
                multi(vec![0, 1, 2, 2]),
                MessagePart::default(),
            ],
            ..Message::default()
        };
        let mut seen = vec![true, false, false];
        let root = convert(&msg, 0, 0, raw, 0, &mut seen);
        fn count(p: &Part) -> usize {
            match &p.kind {
                PartKind::Multipart(k) => 1 + k.iter().map(count).sum::<usize>(),
                PartKind::Message(_, b) => 1 + count(b),
                PartKind::Leaf => 1,
            }
        }
        assert_eq!(count(&root), 3);
    }

    #[test]
    fn round_trips_through_postcard() {
        let p = parse(SIMPLE);
        let bytes = postcard::to_allocvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<ParsedMessage>(&bytes).unwrap(), p);
        assert_eq!(ParsedMessage::decode(&bytes).unwrap(), p);
    }

    /// The References header is kept (raw, unfolded) for THREAD; a record stored before
    /// the field existed still decodes, with no references.
    #[test]
    fn references_are_kept_and_old_records_still_decode() {
        let raw = b"Message-ID: <c@x>\r\nReferences: <a@x>\r\n <b@x>\r\nIn-Reply-To: <b@x>\r\n\r\nbody\r\n";
        let p = parse(raw);
        assert_eq!(p.references.as_deref(), Some("<a@x> <b@x>"));
        #[derive(Serialize)]
        struct Old<'a> {
            envelope: &'a Envelope,
            root: &'a Part,
        }
        let old = postcard::to_allocvec(&Old {
            envelope: &p.envelope,
            root: &p.root,
        })
        .unwrap();
        let back = ParsedMessage::decode(&old).unwrap();
        assert_eq!(back.envelope, p.envelope);
        assert_eq!(back.root, p.root);
        assert_eq!(back.references, None);
        // New records decode with an older reader too (postcard ignores trailing bytes).
        let new = postcard::to_allocvec(&p).unwrap();
        let as_old: ParsedMessageV1 = postcard::from_bytes(&new).unwrap();
        assert_eq!(as_old.root, p.root);
        assert!(ParsedMessage::decode(b"\xff\xff").is_err());
    }

    /// 10,000 nested message/rfc822 parts (found by tests/hostile.rs): parsed and dropped
    /// on a thread with a tokio worker's 2 MiB stack, without overflowing it; the
    /// structure is cut at [`MAX_DEPTH`].
    #[test]
    fn deep_message_rfc822_nesting_fits_a_worker_stack() {
        let mut m = b"From: <a@example.org>\r\nSubject: deep\r\n".to_vec();
        for i in 0..10_000 {
            m.extend_from_slice(
                format!("Content-Type: message/rfc822\r\n\r\nSubject: level {i}\r\n").as_bytes(),
            );
        }
        m.extend_from_slice(b"\r\nbottom\r\n");
        let len = m.len() as u32;
        let parsed = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse(&m))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(parsed.root.body_end, len);
        let mut depth = 0;
        let mut p = &parsed.root;
        while let PartKind::Message(_, inner) = &p.kind {
            depth += 1;
            p = inner;
        }
        assert!((1..=MAX_DEPTH).contains(&depth), "depth {depth}");
    }

    /// A truncated quoted-printable part after a broken multipart/digest reaches a
    /// subtraction that overflows in mail-parser 0.11.9 (fuzz/message_parse, corpus file
    /// qp-decoder-overflow): in a build with overflow checks it panics, and `parse`
    /// contains it; the message is still stored and served.
    #[test]
    fn a_panic_inside_mail_parser_is_contained() {
        let raw = b"Conten\nContent-Type: multipart/digest;mul\xff\xff\xff\xff\xff\xff\xff\x02tipart/mixed; boundary=b\r\n\r\n--b\r\nConpent-Type: message/rfc411\r\nContent-Transfer-Encoding: base64\r\x8e\x85/mihome.arpa\r\nSubject: hi\r\nMentable\r\n\r\ncaf=C3=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n--b--\r\n";
        let p = parse(raw);
        assert_eq!(p.root.header_start, 0);
        assert!(p.root.body_end as usize <= raw.len());
    }

    /// A multipart whose part 1 is a message/rfc822 whose body is a message/rfc822:
    /// mail-parser 0.11.9 (release; a checked build stops at a `debug_assert!` and the
    /// message is stored unparsed) ends part 1 after the closing delimiter `--z--`.
    /// The structure it returns is built here as it comes, offsets and all; the part
    /// is cut before the delimiter, so `BODY[1]` holds the enclosed message only.
    #[test]
    fn a_part_ends_before_its_parents_delimiter() {
        use mail_parser::{Message, MessagePart};
        let raw: &[u8] = b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.org\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@example.org\r\nSubject: deepest\r\n\r\nD\r\n--z--\r\n";
        let at = |needle: &[u8]| memchr::memmem::find(raw, needle).unwrap() as u32;
        // Headers as mail-parser reads them at `from`, offsets made absolute.
        let headers = |from: u32| {
            let m = MessageParser::default()
                .parse_headers(&raw[from as usize..])
                .unwrap();
            let mut hs = m.parts[0].headers.clone();
            for h in &mut hs {
                h.offset_field += from;
                h.offset_start += from;
                h.offset_end += from;
            }
            hs.into_iter().map(|h| h.into_owned()).collect::<Vec<_>>()
        };
        let part = |h: u32, b: u32, e: u32, body| MessagePart {
            headers: headers(h),
            body,
            offset_header: h,
            offset_body: b,
            offset_end: e,
            ..MessagePart::default()
        };
        let nested = |parts| {
            PartType::Message(Message {
                parts,
                raw_message: raw.into(),
                ..Message::default()
            })
        };
        let (p1, m2, m3) = (at(b"Content-Type: message"), at(b"From: b"), at(b"From: c"));
        let d = at(b"D\r\n--z--");
        let deepest = part(m3, d, d + 1, PartType::Text("D".into()));
        let inner = part(m2, m3, d + 1, nested(vec![deepest]));
        let msg = Message {
            parts: vec![
                part(
                    0,
                    at(b"--z\r\n"),
                    raw.len() as u32,
                    PartType::Multipart(vec![1]),
                ),
                part(p1, m2, d + 8, nested(vec![inner])),
            ],
            raw_message: raw.into(),
            ..Message::default()
        };
        let mut seen = vec![true, false];
        let root = convert(&msg, 0, 0, raw, 0, &mut seen);
        let PartKind::Multipart(kids) = &root.kind else {
            panic!("{root:?}")
        };
        let body = &raw[kids[0].body_start as usize..kids[0].body_end as usize];
        assert_eq!(
            body,
            b"From: b@example.org\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@example.org\r\nSubject: deepest\r\n\r\nD"
        );
        assert_eq!(kids[0].lines, 7);
        let PartKind::Message(env, b) = &kids[0].kind else {
            panic!("{:?}", kids[0].kind)
        };
        assert_eq!(env.from[0].mailbox.as_deref(), Some("b"));
        assert!(b.body_end <= kids[0].body_end);
        assert_eq!(delimiter_at(b"x\r\n--z \r\ny", b"z"), Some(1));
        assert_eq!(delimiter_at(b"x\n--zz\n--z--", b"z"), Some(6));
        assert_eq!(delimiter_at(b"x\r\n--zz\r\n", b"z"), None);
    }
}
