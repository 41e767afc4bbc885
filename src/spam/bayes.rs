//! The learning junk filter's pure core: a message's tokens, and the spam probability
//! of a set of tokens given the account's statistics.
//!
//! # Tokens
//! Tokens come from the decoded header fields (RFC 2047 encoded words undone by
//! mail-parser, the parser the store uses) and from the text the reader sees, decoded
//! exactly as IMAP SEARCH BODY decodes it ([`crate::imap::search::decoded_text`]: the
//! transfer encoding undone, the charset converted to UTF-8, `text/*` parts only, the
//! header and text of attached messages included). Only a bounded prefix is looked at:
//! [`MAX_HEADER`] bytes of header, [`MAX_PART`] raw bytes of each text part, [`MAX_TEXT`]
//! decoded bytes in all, and at most [`MAX_TOKENS`] distinct tokens, so a message of a
//! million words or of one 1 MB word costs the same bounded time and memory.
//!
//! A token is a lower-cased word of 2 to [`MAX_WORD`] characters; a header word is
//! prefixed with its field's name (`subject:cheap`); a longer word becomes a `skip:`
//! token of its first characters and its length class (as SpamAssassin does); an
//! all-capitals word also gives an `upper:` token; a run of letters without spaces in a
//! script that does not separate words (CJK) gives its character pairs. Tokens are kept
//! as 64-bit FNV-1a hashes, which is what the store keeps.
//!
//! # Score
//! Gary Robinson's smoothed token probability f(w) = (s·x + n·p(w)) / (s + n), and
//! Fisher's chi-square combining of the [`MAX_DISCRIMINATORS`] tokens farthest from 0.5
//! (as SpamBayes, SpamAssassin's Bayes and bogofilter do): the result is 0 for clear ham,
//! 1 for clear spam, and about 0.5 when the evidence is absent or conflicting.

use std::collections::HashSet;

use crate::imap::search::decoded_text;
use crate::mail::message::{ParsedMessage, Part, PartKind};

/// Bytes of the top-level header that are tokenized.
pub const MAX_HEADER: usize = 32 * 1024;
/// Raw bytes of one text part that are decoded and tokenized.
pub const MAX_PART: usize = 128 * 1024;
/// Decoded text bytes tokenized over the whole message.
pub const MAX_TEXT: usize = 192 * 1024;
/// Distinct tokens kept per message.
pub const MAX_TOKENS: usize = 3000;
/// Longest word kept as itself, in characters.
pub const MAX_WORD: usize = 20;
/// Parts visited at most (a message of ten thousand empty parts stays cheap).
const MAX_PARTS: usize = 64;
/// Robinson's strength of the prior (SpamBayes' `unknown_word_strength`).
const PRIOR_STRENGTH: f64 = 0.45;
/// Robinson's prior probability of an unseen word.
const PRIOR: f64 = 0.5;
/// Tokens nearer than this to 0.5 are ignored (SpamBayes' `minimum_prob_strength`).
const MIN_STRENGTH: f64 = 0.1;
/// Tokens used for the verdict at most (SpamBayes' `max_discriminators`).
pub const MAX_DISCRIMINATORS: usize = 150;

/// Header fields whose words say nothing about the message (unique ids, dates, our own
/// verdict, signatures) and are not tokenized.
const SKIPPED_FIELDS: &[&str] = &[
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "dkim-signature",
    "arc-seal",
    "arc-message-signature",
    "x-spam-score",
    "x-spam-flag",
    "x-spam-status",
    "content-length",
];

/// 64-bit FNV-1a: stable across builds and platforms (the store keeps these).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Collects distinct token hashes up to [`MAX_TOKENS`].
struct Sink {
    seen: HashSet<u64>,
    text: usize,
}

impl Sink {
    fn full(&self) -> bool {
        self.seen.len() >= MAX_TOKENS
    }

    fn add(&mut self, prefix: &str, word: &str) {
        if self.full() {
            return;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in prefix.as_bytes().iter().chain(word.as_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.seen.insert(h);
    }

    /// Splits `text` into words and adds their tokens under `prefix`.
    fn words(&mut self, prefix: &str, text: &str) {
        let mut word = String::new();
        let mut chars = 0usize;
        for c in text.chars().chain(std::iter::once(' ')) {
            if self.full() {
                return;
            }
            if c.is_alphanumeric()
                || matches!(
                    c,
                    '$' | '€' | '£' | '!' | '\'' | '-' | '.' | '@' | '_' | '%'
                )
            {
                chars += 1;
                // A word past the limit is not grown further: its prefix and length say
                // enough, and a 1 MB word costs no memory.
                if chars <= MAX_WORD + 1 {
                    word.push(c);
                }
                continue;
            }
            if chars > 0 {
                self.word(prefix, &word, chars);
                word.clear();
                chars = 0;
            }
        }
    }

    fn word(&mut self, prefix: &str, word: &str, chars: usize) {
        let trimmed = word.trim_matches(|c: char| matches!(c, '.' | '-' | '\'' | '_'));
        let n = if chars > MAX_WORD {
            chars
        } else {
            trimmed.chars().count()
        };
        if n < 2 {
            return;
        }
        if n > MAX_WORD {
            let cjk = trimmed.chars().take(MAX_WORD).all(no_spaces_script);
            if cjk {
                // Scripts without spaces: character pairs of the kept prefix.
                let cs: Vec<char> = trimmed.chars().take(MAX_WORD + 1).collect();
                for w in cs.windows(2) {
                    let pair: String = w.iter().collect();
                    self.add(prefix, &pair);
                }
                return;
            }
            let head: String = trimmed
                .chars()
                .take(7)
                .flat_map(char::to_lowercase)
                .collect();
            // Length class: 20s, 40s, 80s ... (log2), so long junk of similar size groups.
            let class = usize::BITS - n.leading_zeros();
            self.add(prefix, &format!("skip:{head}:{class}"));
            return;
        }
        let lower = trimmed.to_lowercase();
        if n >= 3
            && trimmed.chars().any(char::is_uppercase)
            && !trimmed.chars().any(char::is_lowercase)
        {
            self.add(prefix, &format!("upper:{lower}"));
        }
        if no_spaces_script(trimmed.chars().next().unwrap_or(' ')) && n > 2 {
            let cs: Vec<char> = trimmed.chars().collect();
            for w in cs.windows(2) {
                let pair: String = w.iter().collect();
                self.add(prefix, &pair);
            }
            return;
        }
        self.add(prefix, &lower);
    }
}

/// Scripts written without spaces between words (Han, Hiragana, Katakana, Thai ...).
fn no_spaces_script(c: char) -> bool {
    matches!(u32::from(c),
        0x0E00..=0x0EFF | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF)
}

fn slice(raw: &[u8], from: u32, to: u32) -> &[u8] {
    raw.get(from as usize..to as usize).unwrap_or_default()
}

/// The prefix of a part body that is decoded: at most [`MAX_PART`] bytes, cut after a
/// line end so that base64 and quoted-printable decode cleanly.
fn part_prefix(body: &[u8]) -> &[u8] {
    if body.len() <= MAX_PART {
        return body;
    }
    let head = &body[..MAX_PART];
    match memchr::memrchr(b'\n', head) {
        Some(i) => &head[..=i],
        None => head,
    }
}

/// Tokens of the header fields in `header` (decoded as mail-parser decodes them).
fn header_tokens(sink: &mut Sink, header: &[u8]) {
    use mail_parser::{HeaderValue, MessageParser};
    let header = &header[..header.len().min(MAX_HEADER)];
    let Some(msg) = MessageParser::default().parse_headers(header) else {
        return;
    };
    let Some(part) = msg.parts.first() else {
        return;
    };
    for h in &part.headers {
        let name = h.name.as_str().to_ascii_lowercase();
        if SKIPPED_FIELDS.contains(&name.as_str()) {
            continue;
        }
        let prefix = format!("{name}:");
        match &h.value {
            HeaderValue::Text(t) => sink.words(&prefix, t),
            HeaderValue::TextList(l) => {
                for t in l {
                    sink.words(&prefix, t);
                }
            }
            HeaderValue::Address(a) => {
                for x in a.iter() {
                    if let Some(n) = &x.name {
                        sink.words(&prefix, n);
                    }
                    if let Some(addr) = &x.address {
                        let addr = addr.to_lowercase();
                        sink.add(&prefix, &addr);
                        if let Some((_, domain)) = addr.rsplit_once('@') {
                            sink.add(&prefix, &format!("@{domain}"));
                        }
                    }
                }
            }
            HeaderValue::ContentType(ct) => {
                sink.add(&prefix, &ct.c_type.to_lowercase());
                if let Some(sub) = &ct.c_subtype {
                    sink.add(&prefix, &sub.to_lowercase());
                }
                for a in ct.attributes.iter().flatten() {
                    if a.name.eq_ignore_ascii_case("charset") {
                        sink.add("charset:", &a.value.to_lowercase());
                    }
                }
            }
            _ => {}
        }
        if sink.full() {
            return;
        }
    }
}

fn charset(part: &Part) -> Option<&str> {
    part.params
        .iter()
        .find(|(k, _)| k == "charset")
        .map(|(_, v)| v.as_str())
}

/// Tokens of the text the reader sees, the way SEARCH BODY walks it.
fn body_tokens(sink: &mut Sink, raw: &[u8], part: &Part, parts: &mut usize) {
    *parts += 1;
    if *parts > MAX_PARTS || sink.full() || sink.text >= MAX_TEXT {
        return;
    }
    match &part.kind {
        PartKind::Multipart(children) => {
            for c in children {
                body_tokens(sink, raw, c, parts);
            }
        }
        PartKind::Message(_, inner) => {
            header_tokens(sink, slice(raw, inner.header_start, inner.body_start));
            body_tokens(sink, raw, inner, parts);
        }
        PartKind::Leaf if part.media_type == "text" => {
            let body = part_prefix(slice(raw, part.body_start, part.body_end));
            let text = decoded_text(body, &part.encoding, charset(part));
            let room = MAX_TEXT - sink.text;
            let text = String::from_utf8_lossy(&text[..text.len().min(room)]).into_owned();
            sink.text += text.len();
            let text = if part.subtype == "html" {
                strip_tags(&text)
            } else {
                text
            };
            sink.words("", &text);
        }
        PartKind::Leaf => {
            // Attachments: their type and name say something, their bytes are not text.
            sink.add("part:", &format!("{}/{}", part.media_type, part.subtype));
        }
    }
}

/// HTML to words: tags become spaces, except that link targets (`href`, `src`) stay,
/// because where a message points is the most telling thing about spam.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        out.push(' ');
        let after = &rest[i..];
        let Some(end) = after.find('>') else {
            break;
        };
        let tag = &after[..end];
        for attr in ["href=", "src="] {
            if let Some(j) = tag.to_ascii_lowercase().find(attr) {
                let v = tag[j + attr.len()..].trim_start_matches(['"', '\'']);
                let v = v.split(['"', '\'', ' ']).next().unwrap_or_default();
                out.push_str(" url ");
                out.push_str(&v.replace(['/', ':', '?', '=', '&'], " "));
                out.push(' ');
            }
        }
        rest = &after[end + 1..];
    }
    if !rest.contains('<') {
        out.push_str(rest);
    }
    out
}

/// The distinct token hashes of a message, sorted. Bounded in time and memory whatever
/// the message holds (see the module docs).
pub fn tokens(raw: &[u8], parsed: &ParsedMessage) -> Vec<u64> {
    let mut sink = Sink {
        seen: HashSet::with_capacity(512),
        text: 0,
    };
    header_tokens(&mut sink, slice(raw, 0, parsed.root.body_start));
    let mut parts = 0;
    body_tokens(&mut sink, raw, &parsed.root, &mut parts);
    let mut v: Vec<u64> = sink.seen.into_iter().collect();
    v.sort_unstable();
    v
}

/// How often a token was seen in the account's trained spam and ham.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Spam messages that held the token.
    pub spam: u32,
    /// Ham messages that held the token.
    pub ham: u32,
}

/// Messages trained so far in an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Spam messages.
    pub spam: u32,
    /// Ham messages.
    pub ham: u32,
}

/// Robinson's f(w) for a token, or `None` when it is not seen in any trained message.
pub fn token_prob(c: Counts, t: Totals) -> Option<f64> {
    let n = f64::from(c.spam) + f64::from(c.ham);
    if n == 0.0 {
        return None;
    }
    let spam_ratio = f64::from(c.spam) / f64::from(t.spam.max(1));
    let ham_ratio = f64::from(c.ham) / f64::from(t.ham.max(1));
    let p = spam_ratio / (spam_ratio + ham_ratio);
    Some((PRIOR_STRENGTH * PRIOR + n * p) / (PRIOR_STRENGTH + n))
}

/// Q(χ² | v) for an even `v`: the probability that a chi-square variable with `v`
/// degrees of freedom exceeds `x2` (the series SpamBayes uses, exact for even v).
fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// The verdict of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Spam probability, 0 (ham) to 1 (spam).
    pub prob: f64,
    /// Tokens that took part.
    pub used: usize,
}

/// Fisher–Robinson chi-square combining of the token probabilities `probs` (each the
/// f(w) of one token): the [`MAX_DISCRIMINATORS`] strongest beyond [`MIN_STRENGTH`].
pub fn combine(probs: impl IntoIterator<Item = f64>) -> Score {
    let mut strong: Vec<f64> = probs
        .into_iter()
        .filter(|p| (p - 0.5).abs() >= MIN_STRENGTH)
        .collect();
    if strong.is_empty() {
        return Score { prob: 0.5, used: 0 };
    }
    strong.sort_unstable_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
    strong.truncate(MAX_DISCRIMINATORS);
    let n = strong.len();
    // Clamp so ln never sees 0.
    let (mut ln_p, mut ln_q) = (0.0f64, 0.0f64);
    for p in &strong {
        let p = p.clamp(1e-6, 1.0 - 1e-6);
        ln_p += p.ln();
        ln_q += (1.0 - p).ln();
    }
    let s = 1.0 - chi2q(-2.0 * ln_q, 2 * n);
    let h = 1.0 - chi2q(-2.0 * ln_p, 2 * n);
    Score {
        prob: ((s - h + 1.0) / 2.0).clamp(0.0, 1.0),
        used: n,
    }
}

/// The spam probability of a message's `tokens`, looking each one up with `counts`.
pub fn classify(tokens: &[u64], totals: Totals, mut counts: impl FnMut(u64) -> Counts) -> Score {
    combine(tokens.iter().filter_map(|&t| token_prob(counts(t), totals)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn toks(raw: &str) -> Vec<u64> {
        let p = crate::mail::message::parse(raw.as_bytes());
        tokens(raw.as_bytes(), &p)
    }

    fn has(raw: &str, prefix: &str, word: &str) -> bool {
        let mut key = prefix.to_string();
        key.push_str(word);
        toks(raw).binary_search(&hash(key.as_bytes())).is_ok()
    }

    #[test]
    fn tokens_come_from_decoded_headers_and_text() {
        let raw = "From: =?utf-8?q?Gr=C3=BC=C3=9Fe?= <Shop@Example.COM>\r\n\
                   Subject: =?utf-8?b?Q2hlYXAgV2F0Y2hlcw==?=\r\n\
                   Date: Mon, 7 Dec 2026 01:00:00 +0000\r\n\
                   Content-Type: text/plain; charset=iso-8859-1\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   Sch=F6ne Uhren, FREE shipping!\r\n";
        assert!(has(raw, "subject:", "cheap"));
        assert!(has(raw, "subject:", "watches"));
        assert!(has(raw, "from:", "grüße"));
        assert!(has(raw, "from:", "shop@example.com"));
        assert!(has(raw, "from:", "@example.com"));
        assert!(has(raw, "", "schöne"));
        assert!(has(raw, "", "free"));
        assert!(has(raw, "", "upper:free"));
        assert!(has(raw, "", "shipping!"));
        // Dates are noise and not tokenized.
        assert!(!has(raw, "date:", "dec"));
    }

    #[test]
    fn base64_html_and_attached_messages_are_decoded() {
        let raw = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                   PGEgaHJlZj0iaHR0cDovL3BpbGxzLmV4YW1wbGUvYnV5Ij5CdXkgbm93PC9hPg==\r\n\
                   --b\r\nContent-Type: message/rfc822\r\n\r\n\
                   Subject: inner words\r\n\r\nnested body\r\n\
                   --b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                   iVBORw0KGgo=\r\n--b--\r\n";
        assert!(has(raw, "", "buy"));
        assert!(has(raw, "", "pills.example"));
        assert!(has(raw, "", "url"));
        assert!(has(raw, "subject:", "inner"));
        assert!(has(raw, "", "nested"));
        assert!(has(raw, "part:", "image/png"));
        assert!(!has(raw, "", "ivborw0kggo"));
    }

    #[test]
    fn long_words_and_cjk() {
        let long = "a".repeat(50);
        let raw = format!("Subject: s\r\n\r\n{long} 今日は良い天気ですね\r\n");
        assert!(has(&raw, "", "skip:aaaaaaa:6"));
        assert!(has(&raw, "", "今日"));
        assert!(has(&raw, "", "天気"));
    }

    #[test]
    fn huge_input_is_bounded() {
        // A million distinct words: tokens stop at MAX_TOKENS.
        let mut body = String::with_capacity(8 << 20);
        for i in 0..1_000_000u32 {
            body.push_str(&format!("w{i} "));
        }
        let raw = format!("Subject: big\r\n\r\n{body}\r\n");
        let t = toks(&raw);
        assert!(t.len() <= MAX_TOKENS, "{}", t.len());
        assert!(t.len() > 1000);
        // One word of 1 MB: a single skip token, not a 1 MB string.
        let raw = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(1 << 20));
        let t = toks(&raw);
        assert!(t.len() <= 3, "{t:?}");
        assert!(has(&raw, "", "skip:xxxxxxx:18"));
        // A 1 MB header line is cut at MAX_HEADER.
        let raw = format!("Subject: {}\r\n\r\nbody\r\n", "y ".repeat(1 << 19));
        assert!(toks(&raw).len() < 10);
    }

    #[test]
    fn chi2q_matches_known_values() {
        // Q(χ²=2 | 2) = e^-1; Q(0 | v) = 1; large χ² -> 0.
        assert!((chi2q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert_eq!(chi2q(0.0, 10), 1.0);
        assert!(chi2q(500.0, 10) < 1e-50);
        // Q(4 | 4) = e^-2 (1 + 2) = 0.40600584970983811
        assert!((chi2q(4.0, 4) - 0.406_005_849_709_838_1).abs() < 1e-12);
    }

    #[test]
    fn token_prob_follows_robinson() {
        let t = Totals { spam: 10, ham: 10 };
        assert_eq!(token_prob(Counts::default(), t), None);
        let p = token_prob(Counts { spam: 10, ham: 0 }, t).unwrap();
        assert!((p - (0.45 * 0.5 + 10.0) / 10.45).abs() < 1e-12);
        let p = token_prob(Counts { spam: 5, ham: 5 }, t).unwrap();
        assert!((p - 0.5).abs() < 1e-12);
        // Unequal totals: a token in half the spam and half the ham is neutral.
        let t = Totals { spam: 100, ham: 10 };
        let p = token_prob(Counts { spam: 50, ham: 5 }, t).unwrap();
        assert!((p - 0.5).abs() < 1e-12);
    }

    #[test]
    fn combine_is_symmetric_and_decisive() {
        assert_eq!(combine([]).prob, 0.5);
        assert_eq!(combine([0.52, 0.47]).used, 0);
        let spam = combine(vec![0.99; 20]);
        let ham = combine(vec![0.01; 20]);
        assert!(spam.prob > 0.99, "{spam:?}");
        assert!(ham.prob < 0.01, "{ham:?}");
        assert!((spam.prob + ham.prob - 1.0).abs() < 1e-9);
        let mixed = combine([0.99, 0.01, 0.99, 0.01]);
        assert!((mixed.prob - 0.5).abs() < 1e-9);
        assert_eq!(combine(vec![0.9; 1000]).used, MAX_DISCRIMINATORS);
    }

    #[test]
    fn classify_learns_from_counts() {
        let spam_msgs = [
            "Subject: cheap pills\r\n\r\nbuy cheap viagra now, limited offer\r\n",
            "Subject: winner\r\n\r\nyou are a winner, claim your prize now\r\n",
            "Subject: offer\r\n\r\ncheap loans, act now, limited offer\r\n",
        ];
        let ham_msgs = [
            "Subject: dinner\r\n\r\nshall we have dinner on friday with the kids\r\n",
            "Subject: school\r\n\r\nthe school trip is on friday, bring lunch\r\n",
            "Subject: photos\r\n\r\nhere are the photos from the weekend with grandma\r\n",
        ];
        let mut counts: HashMap<u64, Counts> = HashMap::new();
        for m in spam_msgs {
            for t in toks(m) {
                counts.entry(t).or_default().spam += 1;
            }
        }
        for m in ham_msgs {
            for t in toks(m) {
                counts.entry(t).or_default().ham += 1;
            }
        }
        let totals = Totals { spam: 3, ham: 3 };
        let look = |t| counts.get(&t).copied().unwrap_or_default();
        let s = classify(
            &toks("Subject: cheap offer\r\n\r\nclaim your cheap prize now\r\n"),
            totals,
            look,
        );
        let h = classify(
            &toks("Subject: friday\r\n\r\ndinner with grandma and the kids\r\n"),
            totals,
            look,
        );
        assert!(s.prob > 0.9, "{s:?}");
        assert!(h.prob < 0.1, "{h:?}");
        let unknown = classify(&toks("Subject: zzz\r\n\r\nqqq rrr\r\n"), totals, look);
        assert_eq!(unknown.prob, 0.5);
    }

    #[test]
    fn strip_tags_keeps_links() {
        let s = strip_tags("<p>Hello <a href=\"https://x.example/a?b=c\">there</a></p>");
        assert!(s.contains("Hello"));
        assert!(s.contains("there"));
        assert!(s.contains("x.example"));
        assert!(!s.contains('<'));
    }
}
