//! RFC 5322 §3.4 address lists as mail really carries them (with the obsolete forms of
//! §4.4): mailboxes with or without a display name, groups (`team: a@b, c@d;`, empty
//! ones such as `undisclosed-recipients:;`), comments, quoted local parts, routes, and
//! RFC 2047 encoded words in display names. The IMAP ENVELOPE (RFC 9051 §7.5.2 group
//! markers) and SEARCH FROM/TO/CC/BCC (RFC 9051 §6.4.4) read addresses through
//! [`parse_list`]. Pure, and never fails: text that is not an address (a stray
//! display name, a comment after a group) yields no item, so no phantom address.

use mail_parser::parsers::MessageStream;

/// One item of an address list, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A mailbox (RFC 5322 §3.4 `mailbox`).
    Mailbox(Mailbox),
    /// `display-name ":"` that starts a group; the name is decoded.
    GroupStart(String),
    /// The `";"` that ends a group (added when a group is left open).
    GroupEnd,
}

/// A mailbox: `[display-name] <local@domain>` or `local@domain [(comment)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, RFC 2047 decoded; for a bare `addr-spec`, the text of its
    /// last comment (the old convention `alice@example.org (Alice)`).
    pub name: Option<String>,
    /// The local part, unquoted (`john doe` for `"john doe"@example.org`).
    pub local: String,
    /// The domain; `None` when the address has none (`To: postmaster`).
    pub domain: Option<String>,
}

impl Mailbox {
    /// The local part as it has to be written in an address: as is when it is a
    /// dot-atom (RFC 5322 §3.4.1), else as a quoted string.
    pub fn local_quoted(&self) -> String {
        let atom = |s: &str| !s.is_empty() && s.bytes().all(|b| is_atext(b) || b >= 0x80);
        if self.local.split('.').all(atom) {
            self.local.clone()
        } else {
            let mut q = String::from("\"");
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            q
        }
    }

    /// `local@domain` with the local part unquoted (`john doe@example.org`), or the
    /// bare local part when there is no domain.
    pub fn address(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{d}", self.local),
            None => self.local.clone(),
        }
    }
}

/// RFC 5322 §3.2.3 atext.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An atom (dots included, so `john.doe` and `J. Q. Public` stay whole) or a
    /// quoted string (unquoted). `encoded` holds the decoded text of an atom that is an
    /// RFC 2047 encoded word; `space` says whitespace came before it.
    Word {
        text: String,
        quoted: bool,
        encoded: Option<String>,
        space: bool,
    },
    /// A domain literal, brackets included.
    Literal(String),
    /// A comment's text (nested comments flattened).
    Comment(String),
    /// One of `< > @ : ; ,`.
    Special(u8),
}

/// Decodes an atom that is one RFC 2047 encoded word (`=?charset?q?text?=`).
fn encoded_word(atom: &[u8]) -> Option<String> {
    let inner = atom.strip_prefix(b"=")?;
    if !atom.starts_with(b"=?") || !atom.ends_with(b"?=") || atom.len() < 8 {
        return None;
    }
    let mut s = MessageStream::new(inner);
    let text = s.decode_rfc2047()?;
    (s.offset() == inner.len()).then_some(text)
}

fn tokens(value: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut space = false;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    while let Some(&b) = value.get(i) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                space = true;
                i += 1;
                continue;
            }
            b'"' => {
                // RFC 5322 §3.2.4 quoted-string: `\` quotes the next character; an
                // unterminated one runs to the end.
                let mut s = Vec::new();
                i += 1;
                while let Some(&c) = value.get(i) {
                    i += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            if let Some(&n) = value.get(i) {
                                s.push(n);
                                i += 1;
                            }
                        }
                        b'\r' | b'\n' => {}
                        _ => s.push(c),
                    }
                }
                out.push(Token::Word {
                    text: text(&s),
                    quoted: true,
                    encoded: None,
                    space,
                });
            }
            b'(' => {
                // RFC 5322 §3.2.2 comment: nests, `\` quotes.
                let mut depth = 0usize;
                let mut s = Vec::new();
                while let Some(&c) = value.get(i) {
                    i += 1;
                    match c {
                        b'(' => {
                            if depth > 0 {
                                s.push(b' ');
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            s.push(b' ');
                        }
                        b'\\' => {
                            if let Some(&n) = value.get(i) {
                                s.push(n);
                                i += 1;
                            }
                        }
                        b'\r' | b'\n' => {}
                        _ => s.push(c),
                    }
                }
                out.push(Token::Comment(text(&s).trim().to_string()));
            }
            b'[' => {
                let end = value
                    .get(i..)
                    .and_then(|r| r.iter().position(|&c| c == b']'))
                    .map_or(value.len(), |p| i + p + 1);
                out.push(Token::Literal(text(value.get(i..end).unwrap_or_default())));
                i = end;
            }
            b'<' | b'>' | b'@' | b':' | b';' | b',' => {
                out.push(Token::Special(b));
                i += 1;
            }
            // `)`, `]` and `\` outside their constructs are dropped.
            b')' | b']' | b'\\' => i += 1,
            _ => {
                let start = i;
                while value.get(i).is_some_and(|&c| {
                    !matches!(
                        c,
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'"'
                            | b'('
                            | b')'
                            | b'['
                            | b']'
                            | b'<'
                            | b'>'
                            | b'@'
                            | b':'
                            | b';'
                            | b','
                            | b'\\'
                    )
                }) {
                    i += 1;
                }
                let atom = value.get(start..i).unwrap_or_default();
                out.push(Token::Word {
                    text: text(atom),
                    quoted: false,
                    encoded: encoded_word(atom),
                    space,
                });
            }
        }
        space = false;
    }
    out
}

/// The text of a phrase (display name or group name): words joined by one space,
/// encoded words decoded, and the space between two adjacent encoded words dropped
/// (RFC 2047 §6.2). Quoted strings that hold encoded words (not allowed by RFC 2047
/// §5, but common) are decoded too, and their runs of white space become one space.
/// `None` when empty.
fn phrase(words: &[Token]) -> Option<String> {
    let mut out = String::new();
    let mut last_encoded = false;
    for t in words {
        let Token::Word {
            text,
            quoted,
            encoded,
            ..
        } = t
        else {
            continue;
        };
        let (piece, is_encoded) = match encoded {
            Some(d) => (d.clone(), true),
            // Folding inside a quoted string leaves runs of white space: one space.
            None if *quoted => (decode_words(text), false),
            None => (text.clone(), false),
        };
        let joined = last_encoded && is_encoded;
        if !out.is_empty() && !joined {
            out.push(' ');
        }
        out.push_str(&piece);
        last_encoded = is_encoded;
    }
    let out = out.trim().to_string();
    (!out.is_empty()).then_some(out)
}

/// Decodes the encoded words of a free text, word by word.
fn decode_words(s: &str) -> String {
    let words: Vec<Token> = s
        .split_ascii_whitespace()
        .map(|w| Token::Word {
            text: w.to_string(),
            quoted: false,
            encoded: encoded_word(w.as_bytes()),
            space: true,
        })
        .collect();
    phrase(&words).unwrap_or_default()
}

/// An addr-spec from its tokens (`local @ domain`, comments already removed): the
/// local part is everything before the last `@`, the domain everything after.
fn addr_spec(toks: &[&Token]) -> Option<(String, Option<String>)> {
    let join = |ts: &[&Token]| {
        ts.iter()
            .filter_map(|t| match t {
                Token::Word { text, .. } | Token::Literal(text) => Some(text.as_str()),
                _ => None,
            })
            .collect::<String>()
    };
    match toks.iter().rposition(|t| **t == Token::Special(b'@')) {
        Some(at) => {
            let local = join(toks.get(..at).unwrap_or_default());
            let domain = join(toks.get(at + 1..).unwrap_or_default());
            (!local.is_empty() || !domain.is_empty()).then_some((local, Some(domain)))
        }
        // Without `@`, one word is a local part with no domain; more words are a
        // display name with no address, which is no mailbox.
        None => match toks {
            [Token::Word { text, .. }] if !text.is_empty() => Some((text.clone(), None)),
            _ => None,
        },
    }
}

/// The text of the last non-empty comment among `toks`, decoded.
fn last_comment(toks: &[&Token]) -> Option<String> {
    toks.iter().rev().find_map(|t| match t {
        Token::Comment(c) if !c.is_empty() => Some(decode_words(c)),
        _ => None,
    })
}

/// Parses an address-list header value (From, To, Cc, Bcc, Sender, Reply-To).
pub fn parse_list(value: &[u8]) -> Vec<Item> {
    let toks = tokens(value);
    let mut out = Vec::new();
    let mut in_group = false;
    // The tokens of the current mailbox, up to the next `,` / `;` / `:`.
    let mut pending: Vec<&Token> = Vec::new();
    // A mailbox already produced from `<...>` for the current entry.
    let mut done = false;
    let mut i = 0;
    let finish = |pending: &mut Vec<&Token>, done: &mut bool, out: &mut Vec<Item>| {
        if !*done {
            let comment = last_comment(pending);
            let spec: Vec<&Token> = pending
                .iter()
                .copied()
                .filter(|t| !matches!(t, Token::Comment(_)))
                .collect();
            if let Some((local, domain)) = addr_spec(&spec) {
                out.push(Item::Mailbox(Mailbox {
                    name: comment,
                    local,
                    domain,
                }));
            }
        }
        pending.clear();
        *done = false;
    };
    while let Some(t) = toks.get(i) {
        i += 1;
        match t {
            Token::Special(b',') => finish(&mut pending, &mut done, &mut out),
            Token::Special(b';') => {
                finish(&mut pending, &mut done, &mut out);
                if in_group {
                    out.push(Item::GroupEnd);
                    in_group = false;
                }
            }
            // RFC 5322 §3.4 group: `display-name ":" [group-list] ";"`. A colon inside
            // a group (obsolete or broken syntax) is ignored.
            Token::Special(b':') if !in_group && !done => {
                let words: Vec<Token> = pending.iter().map(|t| (*t).clone()).collect();
                out.push(Item::GroupStart(phrase(&words).unwrap_or_default()));
                in_group = true;
                pending.clear();
            }
            Token::Special(b'<') if !done => {
                // name-addr: the words so far are the display name; the angle-addr runs
                // to `>`. An obsolete route (`<@a,@b:local@domain>`, RFC 5322 §4.4) is
                // dropped: everything up to its last `:`.
                let name_words: Vec<Token> = pending
                    .iter()
                    .filter(|t| matches!(t, Token::Word { .. }))
                    .map(|t| (*t).clone())
                    .collect();
                let name_comment = last_comment(&pending);
                let mut inside: Vec<&Token> = Vec::new();
                while let Some(t) = toks.get(i) {
                    i += 1;
                    if *t == Token::Special(b'>') {
                        break;
                    }
                    inside.push(t);
                }
                if let Some(colon) = inside.iter().rposition(|t| **t == Token::Special(b':')) {
                    inside.drain(..=colon);
                }
                inside.retain(|t| {
                    matches!(
                        t,
                        Token::Word { .. } | Token::Literal(_) | Token::Special(b'@')
                    )
                });
                let name = phrase(&name_words).or(name_comment);
                // `<>` (a null return path in a From) is no mailbox.
                if let Some((local, domain)) = addr_spec(&inside) {
                    out.push(Item::Mailbox(Mailbox {
                        name,
                        local,
                        domain,
                    }));
                }
                pending.clear();
                done = true;
            }
            // Text after an angle-addr before the next `,` (comments, junk) is ignored.
            _ if done => {}
            t => pending.push(t),
        }
    }
    finish(&mut pending, &mut done, &mut out);
    if in_group {
        out.push(Item::GroupEnd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, local: &str, domain: Option<&str>) -> Item {
        Item::Mailbox(Mailbox {
            name: name.map(str::to_string),
            local: local.into(),
            domain: domain.map(str::to_string),
        })
    }

    fn group(name: &str) -> Item {
        Item::GroupStart(name.into())
    }

    /// RFC 5322 Appendix A.1.2 and A.1.3: lists, quoted display names with specials,
    /// a group with display names inside and an empty group.
    #[test]
    fn rfc5322_appendix_a_examples() {
        assert_eq!(
            parse_list(b"Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>"),
            vec![
                mb(Some("Mary Smith"), "mary", Some("x.test")),
                mb(None, "jdoe", Some("example.org")),
                mb(Some("Who?"), "one", Some("y.test")),
            ]
        );
        assert_eq!(
            parse_list(b"<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>"),
            vec![
                mb(None, "boss", Some("nil.test")),
                mb(
                    Some("Giant; \"Big\" Box"),
                    "sysservices",
                    Some("example.net")
                ),
            ]
        );
        assert_eq!(
            parse_list(b"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;"),
            vec![
                group("A Group"),
                mb(Some("Ed Jones"), "c", Some("a.test")),
                mb(None, "joe", Some("where.test")),
                mb(Some("John"), "jdoe", Some("one.test")),
                Item::GroupEnd,
            ]
        );
        assert_eq!(
            parse_list(b"Undisclosed recipients:;"),
            vec![group("Undisclosed recipients"), Item::GroupEnd]
        );
    }

    /// RFC 5322 A.5 (white space, comments) and A.6.1–A.6.3 (obsolete forms:
    /// `J. Q. Public`, routes, comments and folding inside addresses).
    #[test]
    fn rfc5322_comments_and_obsolete_forms() {
        assert_eq!(
            parse_list(b"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
            vec![mb(Some("Pete"), "pete", Some("silly.test"))]
        );
        assert_eq!(
            parse_list(b"A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)"),
            vec![
                group("A Group"),
                mb(Some("Chris Jones"), "c", Some("public.example")),
                mb(None, "joe", Some("example.org")),
                mb(Some("John"), "jdoe", Some("one.test")),
                Item::GroupEnd,
            ]
        );
        assert_eq!(
            parse_list(b"Joe Q. Public <john.q.public@example.com>"),
            vec![mb(
                Some("Joe Q. Public"),
                "john.q.public",
                Some("example.com")
            )]
        );
        assert_eq!(
            parse_list(b"Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example"),
            vec![
                mb(Some("Mary Smith"), "mary", Some("example.net")),
                mb(None, "jdoe", Some("test.example")),
            ]
        );
    }

    /// No phantom entries: a comment or a display name after a group, an empty
    /// entry, `<>`; a group left open is closed.
    #[test]
    fn no_phantom_addresses() {
        assert_eq!(
            parse_list(b"undisclosed-recipients:; (comment)"),
            vec![group("undisclosed-recipients"), Item::GroupEnd]
        );
        assert_eq!(
            parse_list(b"team: Joe <j@x.test>; trailing name, , <>"),
            vec![
                group("team"),
                mb(Some("Joe"), "j", Some("x.test")),
                Item::GroupEnd
            ]
        );
        assert_eq!(
            parse_list(b"a@b.test, empty:;, \"Display\" <d@e.test>"),
            vec![
                mb(None, "a", Some("b.test")),
                group("empty"),
                Item::GroupEnd,
                mb(Some("Display"), "d", Some("e.test")),
            ]
        );
        assert_eq!(
            parse_list(b"open: a@b.test"),
            vec![group("open"), mb(None, "a", Some("b.test")), Item::GroupEnd]
        );
        assert_eq!(parse_list(b""), vec![]);
        assert_eq!(parse_list(b"  (only a comment) "), vec![]);
    }

    /// Quoted local parts, a local part without a domain, the name in a comment,
    /// RFC 2047 encoded words in display and group names (adjacent words joined).
    #[test]
    fn quoted_local_parts_comments_and_encoded_words() {
        let l =
            parse_list(b"\"john doe\"@example.org, postmaster, alice@example.org (Alice Liddell)");
        assert_eq!(
            l,
            vec![
                mb(None, "john doe", Some("example.org")),
                mb(None, "postmaster", None),
                mb(Some("Alice Liddell"), "alice", Some("example.org")),
            ]
        );
        let Item::Mailbox(m) = &l[0] else { panic!() };
        assert_eq!(m.local_quoted(), "\"john doe\"");
        assert_eq!(m.address(), "john doe@example.org");
        assert_eq!(
            parse_list(b"=?utf-8?q?Fr=C3=BCnde?=: =?utf-8?q?J=C3=BC?=\r\n =?utf-8?q?rgen?= M <j@x.de>, \"=?iso-8859-1?q?Andr=E9?=\" <a@x.de>;"),
            vec![
                group("Fr\u{fc}nde"),
                mb(Some("J\u{fc}rgen M"), "j", Some("x.de")),
                mb(Some("Andr\u{e9}"), "a", Some("x.de")),
                Item::GroupEnd,
            ]
        );
    }
}
