//! Server responses: typed status responses with response codes, untagged data, and
//! continuation requests, and their encoder [`Response::encode`].
//!
//! Grammar: RFC 3501 §7 and §9, RFC 9051 §7 and §9 (`response`, `resp-text-code`,
//! `mailbox-data`, `message-data`, `msg-att`, `envelope`, `body`), plus the codes and
//! data of UIDPLUS (RFC 4315), CONDSTORE/QRESYNC (RFC 7162: HIGHESTMODSEQ, NOMODSEQ,
//! MODIFIED, CLOSED, VANISHED), ESEARCH (RFC 4731), ENABLE (RFC 5161), ID (RFC 2971),
//! NAMESPACE (RFC 2342), LIST-EXTENDED (RFC 5258: CHILDINFO), RFC 9051 OLDNAME,
//! SPECIAL-USE attributes (RFC 6154), response codes of RFC 5530, APPENDLIMIT TOOBIG
//! (RFC 7889) and BINARY (RFC 3516).
//!
//! Strings are written the safe way, whatever the client enabled: an `astring` is an
//! atom when it can be, any string is quoted when it is 7-bit without CR/LF and short,
//! and a literal otherwise (8-bit text included: always correct, even before
//! UTF8=ACCEPT). Message data (`BODY[..]`, `RFC822*`) is always a literal; `BINARY[..]`
//! data is a literal8 (`~{n}`) when it contains NUL. ENVELOPE and BODYSTRUCTURE are
//! built elsewhere (from the parsed message) as [`Envelope`] and [`BodyStructure`] and
//! only serialised here, with `NIL` for absent parts.

use super::command::{
    DateTime, Flag, LiteralStyle, Mailbox, Section, SequenceSet, StatusItem, Writer,
};

/// Bytes that are absent (`NIL`) or present.
pub type NString = Option<Vec<u8>>;

/// Anything the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `tag OK/NO/BAD ...` or `* OK/NO/BAD/PREAUTH/BYE ...`.
    Status(StatusResponse),
    /// `* ...` data.
    Data(Data),
    /// `+ text` (or `+ base64` during AUTHENTICATE).
    Continue(String),
}

/// The kind of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// `OK`.
    Ok,
    /// `NO`.
    No,
    /// `BAD`.
    Bad,
    /// `PREAUTH` (greeting only).
    PreAuth,
    /// `BYE`.
    Bye,
}

/// A status response, tagged or untagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    /// The command's tag, or `None` for `*`.
    pub tag: Option<String>,
    /// OK, NO, ...
    pub kind: StatusKind,
    /// `[CODE ...]`.
    pub code: Option<Code>,
    /// Human-readable text (CR and LF are replaced by spaces when encoding).
    pub text: String,
}

impl StatusResponse {
    fn new(tag: Option<&str>, kind: StatusKind, code: Option<Code>, text: &str) -> Self {
        StatusResponse {
            tag: tag.map(str::to_string),
            kind,
            code,
            text: text.to_string(),
        }
    }
    /// `tag OK [code] text` (untagged when `tag` is `None`).
    pub fn ok(tag: Option<&str>, code: Option<Code>, text: &str) -> Self {
        Self::new(tag, StatusKind::Ok, code, text)
    }
    /// `tag NO [code] text`.
    pub fn no(tag: Option<&str>, code: Option<Code>, text: &str) -> Self {
        Self::new(tag, StatusKind::No, code, text)
    }
    /// `tag BAD [code] text`.
    pub fn bad(tag: Option<&str>, code: Option<Code>, text: &str) -> Self {
        Self::new(tag, StatusKind::Bad, code, text)
    }
    /// `* BYE [code] text`.
    pub fn bye(code: Option<Code>, text: &str) -> Self {
        Self::new(None, StatusKind::Bye, code, text)
    }
    /// `* PREAUTH [code] text`.
    pub fn preauth(code: Option<Code>, text: &str) -> Self {
        Self::new(None, StatusKind::PreAuth, code, text)
    }
}

/// A response code (`resp-text-code`, RFC 9051 §7.1; RFC 5530; extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// `ALERT`.
    Alert,
    /// `ALREADYEXISTS` (RFC 5530).
    AlreadyExists,
    /// `APPENDUID uidvalidity uids` (UIDPLUS).
    AppendUid {
        /// Destination UIDVALIDITY.
        uid_validity: u32,
        /// UIDs assigned.
        uids: SequenceSet,
    },
    /// `AUTHENTICATIONFAILED`.
    AuthenticationFailed,
    /// `AUTHORIZATIONFAILED`.
    AuthorizationFailed,
    /// `BADCHARSET [(charsets)]`.
    BadCharset(Vec<String>),
    /// `CANNOT`.
    Cannot,
    /// `CAPABILITY caps..`.
    Capability(Vec<String>),
    /// `CLIENTBUG`.
    ClientBug,
    /// `CLOSED` (QRESYNC).
    Closed,
    /// `COMPRESSIONACTIVE` (RFC 4978 §3).
    CompressionActive,
    /// `CONTACTADMIN`.
    ContactAdmin,
    /// `COPYUID uidvalidity source dest` (UIDPLUS).
    CopyUid {
        /// Destination UIDVALIDITY.
        uid_validity: u32,
        /// Source UIDs.
        source: SequenceSet,
        /// Destination UIDs, in the same order.
        dest: SequenceSet,
    },
    /// `CORRUPTION`.
    Corruption,
    /// `EXPIRED`.
    Expired,
    /// `EXPUNGEISSUED`.
    ExpungeIssued,
    /// `HASCHILDREN` (RFC 9051).
    HasChildren,
    /// `HIGHESTMODSEQ n` (CONDSTORE).
    HighestModSeq(u64),
    /// `INUSE`.
    InUse,
    /// `LIMIT`.
    Limit,
    /// `MODIFIED set` (CONDSTORE).
    Modified(SequenceSet),
    /// `NOMODSEQ`.
    NoModSeq,
    /// `NOUPDATE "tag"` (RFC 5267 §4.3): no live result for that command.
    NoUpdate(String),
    /// `NONEXISTENT`.
    NonExistent,
    /// `NOPERM`.
    NoPerm,
    /// `OVERQUOTA`.
    OverQuota,
    /// `PARSE`.
    Parse,
    /// `PERMANENTFLAGS (flags [\*])`.
    PermanentFlags {
        /// Flags that can be changed permanently.
        flags: Vec<Flag>,
        /// `\*`: new keywords may be created.
        new_keywords: bool,
    },
    /// `PRIVACYREQUIRED`.
    PrivacyRequired,
    /// `READ-ONLY`.
    ReadOnly,
    /// `READ-WRITE`.
    ReadWrite,
    /// `SERVERBUG`.
    ServerBug,
    /// `TOOBIG` (RFC 7889, RFC 9051).
    TooBig,
    /// `TRYCREATE`.
    TryCreate,
    /// `UIDNEXT n`.
    UidNext(u32),
    /// `UIDNOTSTICKY` (UIDPLUS).
    UidNotSticky,
    /// `UIDVALIDITY n`.
    UidValidity(u32),
    /// `UNAVAILABLE`.
    Unavailable,
    /// `UNKNOWN-CTE` (BINARY).
    UnknownCte,
    /// `UNSEEN n` (rev1).
    Unseen(u32),
    /// `USEATTR` (CREATE-SPECIAL-USE).
    UseAttr,
    /// Any other `atom [text]`.
    Other {
        /// The atom.
        name: String,
        /// Its argument text (no `]`, CR or LF).
        text: Option<String>,
    },
}

/// A mailbox attribute in LIST/LSUB (RFC 9051 §7.3.1, RFC 5258, RFC 6154).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MailboxAttr {
    /// `\Noinferiors`.
    NoInferiors,
    /// `\Noselect`.
    NoSelect,
    /// `\Marked`.
    Marked,
    /// `\Unmarked`.
    Unmarked,
    /// `\NonExistent`.
    NonExistent,
    /// `\Subscribed`.
    Subscribed,
    /// `\Remote`.
    Remote,
    /// `\HasChildren`.
    HasChildren,
    /// `\HasNoChildren`.
    HasNoChildren,
    /// `\All`.
    All,
    /// `\Archive`.
    Archive,
    /// `\Drafts`.
    Drafts,
    /// `\Flagged`.
    Flagged,
    /// `\Junk`.
    Junk,
    /// `\Sent`.
    Sent,
    /// `\Trash`.
    Trash,
    /// `\Important`.
    Important,
    /// Another `\Name`, without the backslash.
    Other(String),
}

impl MailboxAttr {
    /// The wire form, with backslash.
    pub fn name(&self) -> String {
        let s = match self {
            MailboxAttr::NoInferiors => "Noinferiors",
            MailboxAttr::NoSelect => "Noselect",
            MailboxAttr::Marked => "Marked",
            MailboxAttr::Unmarked => "Unmarked",
            MailboxAttr::NonExistent => "NonExistent",
            MailboxAttr::Subscribed => "Subscribed",
            MailboxAttr::Remote => "Remote",
            MailboxAttr::HasChildren => "HasChildren",
            MailboxAttr::HasNoChildren => "HasNoChildren",
            MailboxAttr::All => "All",
            MailboxAttr::Archive => "Archive",
            MailboxAttr::Drafts => "Drafts",
            MailboxAttr::Flagged => "Flagged",
            MailboxAttr::Junk => "Junk",
            MailboxAttr::Sent => "Sent",
            MailboxAttr::Trash => "Trash",
            MailboxAttr::Important => "Important",
            MailboxAttr::Other(s) => s,
        };
        format!("\\{s}")
    }
}

/// Extended LIST data (RFC 5258 §3.5, RFC 9051 §7.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListExtended {
    /// `("CHILDINFO" ("SUBSCRIBED"))`.
    ChildInfo(Vec<String>),
    /// `("OLDNAME" ("old"))` after a RENAME.
    OldName(Mailbox),
}

/// One LIST or LSUB line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListData {
    /// Attributes.
    pub attributes: Vec<MailboxAttr>,
    /// Hierarchy delimiter (`None` = flat, sent as NIL).
    pub delimiter: Option<char>,
    /// The name.
    pub mailbox: Mailbox,
    /// Extended data items.
    pub extended: Vec<ListExtended>,
}

/// One ESEARCH result item (RFC 4731, RFC 9051 §7.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ESearchItem {
    /// `MIN n`.
    Min(u32),
    /// `MAX n`.
    Max(u32),
    /// `ALL set`.
    All(SequenceSet),
    /// `COUNT n`.
    Count(u32),
    /// `MODSEQ n` (CONDSTORE).
    ModSeq(u64),
    /// `PARTIAL (low:high set)` (RFC 5267 §4.4), `NIL` for no results in the range.
    Partial(u32, u32, Option<SequenceSet>),
    /// `ADDTO (position set ..)` (RFC 5267 §4.3): messages now in a live result.
    AddTo(Vec<(u32, SequenceSet)>),
    /// `REMOVEFROM (position set ..)` (RFC 5267 §4.3): messages no longer in it.
    RemoveFrom(Vec<(u32, SequenceSet)>),
}

/// One namespace (RFC 2342).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDesc {
    /// Prefix, e.g. `""` or `"Other Users/"`.
    pub prefix: String,
    /// Delimiter.
    pub delimiter: Option<char>,
}

/// Untagged data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// `* CAPABILITY ...`.
    Capability(Vec<String>),
    /// `* ENABLED ...`.
    Enabled(Vec<String>),
    /// `* FLAGS (...)`.
    Flags(Vec<Flag>),
    /// `* n EXISTS`.
    Exists(u32),
    /// `* n RECENT` (rev1).
    Recent(u32),
    /// `* n EXPUNGE`.
    Expunge(u32),
    /// `* n FETCH (...)`.
    Fetch {
        /// Message sequence number.
        seq: u32,
        /// Items, in order.
        items: Vec<FetchItem>,
    },
    /// `* LIST ...`.
    List(ListData),
    /// `* LSUB ...`.
    Lsub(ListData),
    /// `* STATUS mailbox (...)`.
    Status {
        /// The mailbox.
        mailbox: Mailbox,
        /// Item values.
        items: Vec<(StatusItem, u64)>,
    },
    /// `* SEARCH n.. [(MODSEQ m)]`.
    Search {
        /// Matches.
        ids: Vec<u32>,
        /// Highest mod-sequence of the matches (CONDSTORE).
        modseq: Option<u64>,
    },
    /// `* ESEARCH [(TAG "t")] [UID] items`.
    ESearch {
        /// Correlator.
        tag: Option<String>,
        /// Results are UIDs.
        uid: bool,
        /// Items.
        items: Vec<ESearchItem>,
    },
    /// `* SORT n.. [(MODSEQ m)]` (RFC 5256 §4, RFC 7162 §3.1.5), in sorted order.
    Sort {
        /// Matches, sorted.
        ids: Vec<u32>,
        /// Highest mod-sequence of the matches (CONDSTORE).
        modseq: Option<u64>,
    },
    /// `* THREAD (..)(..)` (RFC 5256 §4).
    Thread(crate::imap::thread::Threads),
    /// `* ID (...)` or `* ID NIL`.
    Id(Option<Vec<(String, Option<String>)>>),
    /// `* NAMESPACE personal other shared` (empty lists are NIL).
    Namespace {
        /// Personal namespaces.
        personal: Vec<NamespaceDesc>,
        /// Other users'.
        other: Vec<NamespaceDesc>,
        /// Shared.
        shared: Vec<NamespaceDesc>,
    },
    /// `* QUOTA root (resource usage limit ...)` (RFC 9208 §5.1).
    Quota {
        /// The quota root.
        root: String,
        /// (resource, usage, limit).
        resources: Vec<(String, u64, u64)>,
    },
    /// `* QUOTAROOT mailbox root ...` (RFC 9208 §5.2).
    QuotaRoot {
        /// The mailbox asked about.
        mailbox: Mailbox,
        /// Its quota roots.
        roots: Vec<String>,
    },
    /// `* VANISHED [(EARLIER)] uids` (QRESYNC).
    Vanished {
        /// `(EARLIER)`.
        earlier: bool,
        /// The UIDs.
        uids: SequenceSet,
    },
}

/// One address (RFC 9051 §7.5.2). A group start has `host: None` and the group name in
/// `mailbox`; a group end has `mailbox` and `host` both `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// Display name.
    pub name: NString,
    /// Source route (always NIL in practice).
    pub adl: NString,
    /// Local part (or group name).
    pub mailbox: NString,
    /// Domain.
    pub host: NString,
}

/// The ENVELOPE of a message; empty address lists are sent as NIL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `Date:` header, raw.
    pub date: NString,
    /// `Subject:` header, raw (RFC 2047 words not decoded).
    pub subject: NString,
    /// `From:`.
    pub from: Vec<Address>,
    /// `Sender:` (the caller fills it from `From:` when absent).
    pub sender: Vec<Address>,
    /// `Reply-To:` (the caller fills it from `From:` when absent).
    pub reply_to: Vec<Address>,
    /// `To:`.
    pub to: Vec<Address>,
    /// `Cc:`.
    pub cc: Vec<Address>,
    /// `Bcc:`.
    pub bcc: Vec<Address>,
    /// `In-Reply-To:`.
    pub in_reply_to: NString,
    /// `Message-ID:`.
    pub message_id: NString,
}

/// `Content-Disposition`: type and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// `inline`, `attachment`...
    pub kind: String,
    /// Parameters.
    pub params: Vec<(String, String)>,
}

/// Fields shared by every non-multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinglePart {
    /// `TEXT`, `IMAGE`, ...
    pub media_type: String,
    /// `PLAIN`, ...
    pub subtype: String,
    /// Content-Type parameters.
    pub params: Vec<(String, String)>,
    /// Content-ID.
    pub id: NString,
    /// Content-Description.
    pub description: NString,
    /// Content-Transfer-Encoding.
    pub encoding: String,
    /// Size in octets of the encoded body.
    pub size: u32,
    /// Type-specific fields.
    pub kind: SingleKind,
}

/// Type-specific fields of a single part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SingleKind {
    /// Any type without extra fields.
    Basic,
    /// `TEXT/*`: line count.
    Text {
        /// Lines.
        lines: u32,
    },
    /// `MESSAGE/RFC822` (and `MESSAGE/GLOBAL`): envelope, body and line count.
    Message {
        /// Inner envelope.
        envelope: Box<Envelope>,
        /// Inner structure.
        body: Box<BodyStructure>,
        /// Lines.
        lines: u32,
    },
}

/// BODYSTRUCTURE extension data of a single part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SinglePartExt {
    /// Content-MD5.
    pub md5: NString,
    /// Content-Disposition.
    pub disposition: Option<Disposition>,
    /// Content-Language (NIL when empty).
    pub language: Vec<String>,
    /// Content-Location.
    pub location: NString,
}

/// BODYSTRUCTURE extension data of a multipart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiPartExt {
    /// Content-Type parameters (`boundary`...).
    pub params: Vec<(String, String)>,
    /// Content-Disposition.
    pub disposition: Option<Disposition>,
    /// Content-Language.
    pub language: Vec<String>,
    /// Content-Location.
    pub location: NString,
}

/// A MIME structure tree (RFC 9051 §7.5.2 BODYSTRUCTURE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStructure {
    /// A leaf.
    Single {
        /// Basic fields.
        part: SinglePart,
        /// Extension data (only sent for BODYSTRUCTURE).
        ext: Option<SinglePartExt>,
    },
    /// A multipart.
    Multi {
        /// Children (at least one).
        parts: Vec<BodyStructure>,
        /// `MIXED`, `ALTERNATIVE`...
        subtype: String,
        /// Extension data (only sent for BODYSTRUCTURE).
        ext: Option<MultiPartExt>,
    },
}

/// One FETCH response item (RFC 9051 §7.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    /// `FLAGS (...)`.
    Flags(Vec<Flag>),
    /// `INTERNALDATE "..."`.
    InternalDate(DateTime),
    /// `RFC822.SIZE n`.
    Rfc822Size(u64),
    /// `UID n`.
    Uid(u32),
    /// `MODSEQ (n)`.
    ModSeq(u64),
    /// `ENVELOPE (...)`.
    Envelope(Box<Envelope>),
    /// `BODYSTRUCTURE (...)` with extension data.
    BodyStructure(Box<BodyStructure>),
    /// `BODY (...)`: the structure without extension data.
    Body(Box<BodyStructure>),
    /// `BODY[section]<origin> data`.
    BodySection {
        /// Section as requested (HEADER.FIELDS lists included).
        section: Section,
        /// Origin octet of a partial fetch.
        origin: Option<u64>,
        /// The bytes, or NIL.
        data: NString,
    },
    /// `BINARY[part]<origin> data`.
    Binary {
        /// Part path.
        part: Vec<u32>,
        /// Origin of a partial fetch.
        origin: Option<u64>,
        /// Decoded bytes, or NIL.
        data: NString,
    },
    /// `BINARY.SIZE[part] n`.
    BinarySize {
        /// Part path.
        part: Vec<u32>,
        /// Decoded size.
        size: u64,
    },
    /// `RFC822 data` (rev1).
    Rfc822(NString),
    /// `RFC822.HEADER data` (rev1).
    Rfc822Header(NString),
    /// `RFC822.TEXT data` (rev1).
    Rfc822Text(NString),
}

impl Response {
    /// Appends the wire form, CRLF included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(LiteralStyle::Sync, false);
        std::mem::swap(&mut w.buf, out);
        match self {
            Response::Status(s) => w.status(s),
            Response::Data(d) => w.data(d),
            Response::Continue(text) => {
                w.s("+ ").text(text);
            }
        }
        w.raw(b"\r\n");
        std::mem::swap(&mut w.buf, out);
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl From<StatusResponse> for Response {
    fn from(s: StatusResponse) -> Self {
        Response::Status(s)
    }
}

impl From<Data> for Response {
    fn from(d: Data) -> Self {
        Response::Data(d)
    }
}

impl Writer {
    /// `"(" context-position SP sequence-set *(SP context-position SP sequence-set) ")"`
    /// (RFC 5267 §5 `ret-data-addto`, `ret-data-removefrom`).
    fn context_pairs(&mut self, pairs: &[(u32, SequenceSet)]) -> &mut Self {
        self.s("(");
        for (i, (pos, set)) in pairs.iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            self.num(pos).sp().seq_set(set);
        }
        self.s(")")
    }

    /// Human text: CR/LF become spaces so a reply can never inject a line.
    fn text(&mut self, t: &str) -> &mut Self {
        for &b in t.as_bytes() {
            self.buf.push(if b == b'\r' || b == b'\n' || b == 0 {
                b' '
            } else {
                b
            });
        }
        self
    }

    fn atoms(&mut self, items: &[String]) -> &mut Self {
        for it in items {
            self.sp().atom_safe(it);
        }
        self
    }

    /// An atom we were handed: anything not atom-safe is dropped to keep the line valid.
    fn atom_safe(&mut self, s: &str) -> &mut Self {
        let clean: Vec<u8> = s
            .bytes()
            .filter(|&b| super::fragment::is_atom_char(b) || b == b']')
            .collect();
        self.raw(&clean)
    }

    fn status(&mut self, s: &StatusResponse) {
        match &s.tag {
            Some(t) => self.s(t),
            None => self.s("*"),
        };
        self.s(match s.kind {
            StatusKind::Ok => " OK",
            StatusKind::No => " NO",
            StatusKind::Bad => " BAD",
            StatusKind::PreAuth => " PREAUTH",
            StatusKind::Bye => " BYE",
        });
        if let Some(c) = &s.code {
            self.s(" [").code(c).s("]");
        }
        // resp-text needs text after the code; RFC 9051 requires at least one char.
        let text = if s.text.is_empty() {
            "done"
        } else {
            s.text.as_str()
        };
        self.sp().text(text);
    }

    fn code(&mut self, c: &Code) -> &mut Self {
        use Code as K;
        let simple = match c {
            K::Alert => "ALERT",
            K::AlreadyExists => "ALREADYEXISTS",
            K::AuthenticationFailed => "AUTHENTICATIONFAILED",
            K::AuthorizationFailed => "AUTHORIZATIONFAILED",
            K::Cannot => "CANNOT",
            K::ClientBug => "CLIENTBUG",
            K::Closed => "CLOSED",
            K::CompressionActive => "COMPRESSIONACTIVE",
            K::ContactAdmin => "CONTACTADMIN",
            K::Corruption => "CORRUPTION",
            K::Expired => "EXPIRED",
            K::ExpungeIssued => "EXPUNGEISSUED",
            K::HasChildren => "HASCHILDREN",
            K::InUse => "INUSE",
            K::Limit => "LIMIT",
            K::NoModSeq => "NOMODSEQ",
            K::NonExistent => "NONEXISTENT",
            K::NoPerm => "NOPERM",
            K::OverQuota => "OVERQUOTA",
            K::Parse => "PARSE",
            K::PrivacyRequired => "PRIVACYREQUIRED",
            K::ReadOnly => "READ-ONLY",
            K::ReadWrite => "READ-WRITE",
            K::ServerBug => "SERVERBUG",
            K::TooBig => "TOOBIG",
            K::TryCreate => "TRYCREATE",
            K::UidNotSticky => "UIDNOTSTICKY",
            K::Unavailable => "UNAVAILABLE",
            K::UnknownCte => "UNKNOWN-CTE",
            K::UseAttr => "USEATTR",
            _ => "",
        };
        if !simple.is_empty() {
            return self.s(simple);
        }
        match c {
            K::AppendUid { uid_validity, uids } => {
                self.s("APPENDUID ").num(uid_validity).sp().seq_set(uids)
            }
            K::CopyUid {
                uid_validity,
                source,
                dest,
            } => self
                .s("COPYUID ")
                .num(uid_validity)
                .sp()
                .seq_set(source)
                .sp()
                .seq_set(dest),
            K::BadCharset(cs) => {
                self.s("BADCHARSET");
                if !cs.is_empty() {
                    self.sp().list(cs, |w, c| {
                        w.astring(c.as_bytes());
                    });
                }
                self
            }
            K::Capability(caps) => self.s("CAPABILITY").atoms(caps),
            K::HighestModSeq(n) => self.s("HIGHESTMODSEQ ").num(n),
            K::NoUpdate(tag) => self.s("NOUPDATE ").quoted(tag.as_bytes()),
            K::Modified(set) => self.s("MODIFIED ").seq_set(set),
            K::PermanentFlags {
                flags,
                new_keywords,
            } => {
                self.s("PERMANENTFLAGS (");
                for (i, f) in flags.iter().enumerate() {
                    if i > 0 {
                        self.sp();
                    }
                    self.s(&f.to_string());
                }
                if *new_keywords {
                    if !flags.is_empty() {
                        self.sp();
                    }
                    self.s("\\*");
                }
                self.s(")")
            }
            K::UidNext(n) => self.s("UIDNEXT ").num(n),
            K::UidValidity(n) => self.s("UIDVALIDITY ").num(n),
            K::Unseen(n) => self.s("UNSEEN ").num(n),
            K::Other { name, text } => {
                self.atom_safe(name);
                if let Some(t) = text {
                    let clean: String = t
                        .chars()
                        .filter(|&c| c != ']' && c != '\r' && c != '\n')
                        .collect();
                    self.sp().s(&clean);
                }
                self
            }
            _ => self,
        }
    }

    fn data(&mut self, d: &Data) {
        self.s("* ");
        match d {
            Data::Capability(caps) => {
                self.s("CAPABILITY").atoms(caps);
            }
            Data::Enabled(caps) => {
                self.s("ENABLED").atoms(caps);
            }
            Data::Flags(flags) => {
                self.s("FLAGS ").flags(flags);
            }
            Data::Exists(n) => {
                self.num(n).s(" EXISTS");
            }
            Data::Recent(n) => {
                self.num(n).s(" RECENT");
            }
            Data::Expunge(n) => {
                self.num(n).s(" EXPUNGE");
            }
            Data::Fetch { seq, items } => {
                self.num(seq)
                    .s(" FETCH ")
                    .list(items, |w, it| w.fetch_item(it));
            }
            Data::List(l) => {
                self.s("LIST ").list_data(l);
            }
            Data::Lsub(l) => {
                self.s("LSUB ").list_data(l);
            }
            Data::Status { mailbox, items } => {
                self.s("STATUS ")
                    .mailbox(mailbox)
                    .sp()
                    .list(items, |w, (k, v)| {
                        w.s(k.name()).sp().num(v);
                    });
            }
            Data::Sort { ids, modseq } => {
                self.s("SORT");
                for id in ids {
                    self.sp().num(id);
                }
                if let Some(m) = modseq {
                    self.s(" (MODSEQ ").num(m).s(")");
                }
            }
            Data::Thread(threads) => {
                self.s("THREAD");
                if !threads.roots.is_empty() {
                    self.sp();
                    threads.encode(&mut self.buf);
                }
            }
            Data::Search { ids, modseq } => {
                self.s("SEARCH");
                for id in ids {
                    self.sp().num(id);
                }
                if let Some(m) = modseq {
                    self.s(" (MODSEQ ").num(m).s(")");
                }
            }
            Data::ESearch { tag, uid, items } => {
                self.s("ESEARCH");
                if let Some(t) = tag {
                    self.s(" (TAG ").string(t.as_bytes()).s(")");
                }
                if *uid {
                    self.s(" UID");
                }
                for it in items {
                    self.sp();
                    match it {
                        ESearchItem::Min(n) => self.s("MIN ").num(n),
                        ESearchItem::Max(n) => self.s("MAX ").num(n),
                        ESearchItem::Count(n) => self.s("COUNT ").num(n),
                        ESearchItem::ModSeq(n) => self.s("MODSEQ ").num(n),
                        ESearchItem::All(set) => self.s("ALL ").seq_set(set),
                        ESearchItem::Partial(low, high, set) => {
                            self.s("PARTIAL (").num(low).s(":").num(high).sp();
                            match set {
                                Some(set) => self.seq_set(set),
                                None => self.s("NIL"),
                            };
                            self.s(")")
                        }
                        ESearchItem::AddTo(pairs) => self.s("ADDTO ").context_pairs(pairs),
                        ESearchItem::RemoveFrom(pairs) => {
                            self.s("REMOVEFROM ").context_pairs(pairs)
                        }
                    };
                }
            }
            Data::Id(None) => {
                self.s("ID NIL");
            }
            Data::Id(Some(pairs)) => {
                self.s("ID ").list(pairs, |w, (k, v)| {
                    w.string(k.as_bytes())
                        .sp()
                        .nstring(v.as_deref().map(str::as_bytes));
                });
            }
            Data::Namespace {
                personal,
                other,
                shared,
            } => {
                self.s("NAMESPACE");
                for ns in [personal, other, shared] {
                    self.sp();
                    if ns.is_empty() {
                        self.s("NIL");
                    } else {
                        self.raw(b"(");
                        for n in ns {
                            self.raw(b"(")
                                .string(n.prefix.as_bytes())
                                .sp()
                                .delimiter(n.delimiter)
                                .raw(b")");
                        }
                        self.raw(b")");
                    }
                }
            }
            Data::Quota { root, resources } => {
                self.s("QUOTA ").astring(root.as_bytes()).s(" (");
                for (i, (name, usage, limit)) in resources.iter().enumerate() {
                    if i > 0 {
                        self.sp();
                    }
                    self.s(name)
                        .sp()
                        .s(&usage.to_string())
                        .sp()
                        .s(&limit.to_string());
                }
                self.s(")");
            }
            Data::QuotaRoot { mailbox, roots } => {
                self.s("QUOTAROOT ").mailbox(mailbox);
                for r in roots {
                    self.sp().astring(r.as_bytes());
                }
            }
            Data::Vanished { earlier, uids } => {
                self.s("VANISHED ");
                if *earlier {
                    self.s("(EARLIER) ");
                }
                self.seq_set(uids);
            }
        }
    }

    fn delimiter(&mut self, d: Option<char>) -> &mut Self {
        match d {
            Some(c) => {
                let mut b = [0; 4];
                self.string(c.encode_utf8(&mut b).as_bytes())
            }
            None => self.s("NIL"),
        }
    }

    fn list_data(&mut self, l: &ListData) -> &mut Self {
        self.list(&l.attributes, |w, a| {
            w.s(&a.name());
        })
        .sp()
        .delimiter(l.delimiter)
        .sp()
        .mailbox(&l.mailbox);
        if !l.extended.is_empty() {
            self.sp().list(&l.extended, |w, e| match e {
                ListExtended::ChildInfo(opts) => {
                    w.s("\"CHILDINFO\" ").list(opts, |w, o| {
                        w.string(o.as_bytes());
                    });
                }
                ListExtended::OldName(m) => {
                    w.s("\"OLDNAME\" (").mailbox(m).s(")");
                }
            });
        }
        self
    }

    /// Message bytes: always a literal (NIL when absent).
    fn message_data(&mut self, data: &NString) -> &mut Self {
        match data {
            Some(d) => self.literal(d, false),
            None => self.s("NIL"),
        }
    }

    fn fetch_item(&mut self, it: &FetchItem) {
        match it {
            FetchItem::Flags(f) => {
                self.s("FLAGS ").flags(f);
            }
            FetchItem::InternalDate(d) => {
                self.s("INTERNALDATE \"").s(&d.to_string()).s("\"");
            }
            FetchItem::Rfc822Size(n) => {
                self.s("RFC822.SIZE ").num(n);
            }
            FetchItem::Uid(n) => {
                self.s("UID ").num(n);
            }
            FetchItem::ModSeq(n) => {
                self.s("MODSEQ (").num(n).s(")");
            }
            FetchItem::Envelope(e) => {
                self.s("ENVELOPE ").envelope(e);
            }
            FetchItem::BodyStructure(b) => {
                self.s("BODYSTRUCTURE ").body_structure(b, true);
            }
            FetchItem::Body(b) => {
                self.s("BODY ").body_structure(b, false);
            }
            FetchItem::BodySection {
                section,
                origin,
                data,
            } => {
                self.s("BODY").section(section);
                if let Some(o) = origin {
                    self.s("<").num(o).s(">");
                }
                self.sp().message_data(data);
            }
            FetchItem::Binary { part, origin, data } => {
                self.s("BINARY").part(part);
                if let Some(o) = origin {
                    self.s("<").num(o).s(">");
                }
                self.sp();
                match data {
                    Some(d) => {
                        self.literal(d, d.contains(&0));
                    }
                    None => {
                        self.s("NIL");
                    }
                }
            }
            FetchItem::BinarySize { part, size } => {
                self.s("BINARY.SIZE").part(part).sp().num(size);
            }
            FetchItem::Rfc822(d) => {
                self.s("RFC822 ").message_data(d);
            }
            FetchItem::Rfc822Header(d) => {
                self.s("RFC822.HEADER ").message_data(d);
            }
            FetchItem::Rfc822Text(d) => {
                self.s("RFC822.TEXT ").message_data(d);
            }
        }
    }

    fn ns(&mut self, s: &NString) -> &mut Self {
        self.nstring(s.as_deref())
    }

    fn addresses(&mut self, list: &[Address]) -> &mut Self {
        if list.is_empty() {
            return self.s("NIL");
        }
        self.raw(b"(");
        for a in list {
            self.raw(b"(")
                .ns(&a.name)
                .sp()
                .ns(&a.adl)
                .sp()
                .ns(&a.mailbox)
                .sp()
                .ns(&a.host)
                .raw(b")");
        }
        self.raw(b")")
    }

    fn envelope(&mut self, e: &Envelope) -> &mut Self {
        self.raw(b"(")
            .ns(&e.date)
            .sp()
            .ns(&e.subject)
            .sp()
            .addresses(&e.from)
            .sp()
            .addresses(&e.sender)
            .sp()
            .addresses(&e.reply_to)
            .sp()
            .addresses(&e.to)
            .sp()
            .addresses(&e.cc)
            .sp()
            .addresses(&e.bcc)
            .sp()
            .ns(&e.in_reply_to)
            .sp()
            .ns(&e.message_id)
            .raw(b")")
    }

    /// `body-fld-param`: NIL when empty.
    fn params(&mut self, params: &[(String, String)]) -> &mut Self {
        if params.is_empty() {
            return self.s("NIL");
        }
        self.list(params, |w, (k, v)| {
            w.string(k.as_bytes()).sp().string(v.as_bytes());
        })
    }

    fn disposition(&mut self, d: &Option<Disposition>) -> &mut Self {
        match d {
            None => self.s("NIL"),
            Some(d) => self
                .raw(b"(")
                .string(d.kind.as_bytes())
                .sp()
                .params(&d.params)
                .raw(b")"),
        }
    }

    /// `body-fld-lang`: NIL, one string, or a list.
    fn language(&mut self, l: &[String]) -> &mut Self {
        match l {
            [] => self.s("NIL"),
            [one] => self.string(one.as_bytes()),
            many => self.list(many, |w, s| {
                w.string(s.as_bytes());
            }),
        }
    }

    fn body_structure(&mut self, b: &BodyStructure, ext: bool) -> &mut Self {
        self.raw(b"(");
        match b {
            BodyStructure::Single { part, ext: e } => {
                self.string(part.media_type.as_bytes())
                    .sp()
                    .string(part.subtype.as_bytes())
                    .sp()
                    .params(&part.params)
                    .sp()
                    .ns(&part.id)
                    .sp()
                    .ns(&part.description)
                    .sp()
                    .string(part.encoding.as_bytes())
                    .sp()
                    .num(part.size);
                match &part.kind {
                    SingleKind::Basic => {}
                    SingleKind::Text { lines } => {
                        self.sp().num(lines);
                    }
                    SingleKind::Message {
                        envelope,
                        body,
                        lines,
                    } => {
                        self.sp()
                            .envelope(envelope)
                            .sp()
                            .body_structure(body, ext)
                            .sp()
                            .num(lines);
                    }
                }
                if let (true, Some(e)) = (ext, e) {
                    self.sp()
                        .ns(&e.md5)
                        .sp()
                        .disposition(&e.disposition)
                        .sp()
                        .language(&e.language)
                        .sp()
                        .ns(&e.location);
                }
            }
            BodyStructure::Multi {
                parts,
                subtype,
                ext: e,
            } => {
                for p in parts {
                    self.body_structure(p, ext);
                }
                self.sp().string(subtype.as_bytes());
                if let (true, Some(e)) = (ext, e) {
                    self.sp()
                        .params(&e.params)
                        .sp()
                        .disposition(&e.disposition)
                        .sp()
                        .language(&e.language)
                        .sp()
                        .ns(&e.location);
                }
            }
        }
        self.raw(b")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::{Date, SectionText, SeqItem, SeqNum};

    fn enc(r: impl Into<Response>) -> String {
        String::from_utf8(r.into().to_bytes()).unwrap()
    }
    fn ns(s: &str) -> NString {
        Some(s.as_bytes().to_vec())
    }
    fn addr(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address {
            name: name.and_then(ns),
            adl: None,
            mailbox: ns(mailbox),
            host: ns(host),
        }
    }
    fn text_plain(
        params: Vec<(&str, &str)>,
        id: NString,
        desc: NString,
        enc: &str,
        size: u32,
        lines: u32,
    ) -> SinglePart {
        SinglePart {
            media_type: "TEXT".into(),
            subtype: "PLAIN".into(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            id,
            description: desc,
            encoding: enc.into(),
            size,
            kind: SingleKind::Text { lines },
        }
    }

    #[test]
    fn status_responses() {
        let cases: Vec<(Response, &str)> = vec![
            (
                StatusResponse::ok(None, Some(Code::UidValidity(3857529045)), "UIDs valid").into(),
                "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
            ),
            (
                StatusResponse::ok(Some("A142"), Some(Code::ReadWrite), "SELECT completed").into(),
                "A142 OK [READ-WRITE] SELECT completed\r\n",
            ),
            (
                StatusResponse::ok(Some("A932"), Some(Code::ReadOnly), "EXAMINE completed").into(),
                "A932 OK [READ-ONLY] EXAMINE completed\r\n",
            ),
            (
                StatusResponse::no(Some("A003"), Some(Code::TryCreate), "no such mailbox").into(),
                "A003 NO [TRYCREATE] no such mailbox\r\n",
            ),
            (
                StatusResponse::bad(None, None, "Empty command line").into(),
                "* BAD Empty command line\r\n",
            ),
            (
                StatusResponse::bye(None, "IMAP4rev2 Server logging out").into(),
                "* BYE IMAP4rev2 Server logging out\r\n",
            ),
            (
                StatusResponse::preauth(None, "IMAP4rev2 server logged in as Smith").into(),
                "* PREAUTH IMAP4rev2 server logged in as Smith\r\n",
            ),
            (
                StatusResponse::ok(
                    None,
                    Some(Code::PermanentFlags {
                        flags: vec![Flag::Deleted, Flag::Seen],
                        new_keywords: true,
                    }),
                    "Limited",
                )
                .into(),
                "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
            ),
            (
                StatusResponse::ok(
                    None,
                    Some(Code::PermanentFlags {
                        flags: vec![],
                        new_keywords: false,
                    }),
                    "No permanent flags permitted",
                )
                .into(),
                "* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n",
            ),
            (
                StatusResponse::ok(
                    Some("A003"),
                    Some(Code::AppendUid {
                        uid_validity: 38505,
                        uids: SequenceSet::single(3955),
                    }),
                    "APPEND completed",
                )
                .into(),
                "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n",
            ),
            (
                StatusResponse::ok(
                    Some("A004"),
                    Some(Code::CopyUid {
                        uid_validity: 38505,
                        source: SequenceSet::from_sorted(&[304, 319, 320]),
                        dest: SequenceSet::range(3956, 3958),
                    }),
                    "Done",
                )
                .into(),
                "A004 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
            ),
            (
                StatusResponse::ok(None, Some(Code::HighestModSeq(715194045007)), "Highest").into(),
                "* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
            ),
            (
                StatusResponse::ok(
                    None,
                    Some(Code::NoModSeq),
                    "Sorry, this mailbox format doesn't support modsequences",
                )
                .into(),
                "* OK [NOMODSEQ] Sorry, this mailbox format doesn't support modsequences\r\n",
            ),
            (
                StatusResponse::ok(
                    Some("d105"),
                    Some(Code::Modified(SequenceSet::single(7))),
                    "Conditional STORE failed",
                )
                .into(),
                "d105 OK [MODIFIED 7] Conditional STORE failed\r\n",
            ),
            (
                StatusResponse::ok(None, Some(Code::Closed), "x").into(),
                "* OK [CLOSED] x\r\n",
            ),
            (
                StatusResponse::no(Some("a"), Some(Code::TooBig), "Message too big").into(),
                "a NO [TOOBIG] Message too big\r\n",
            ),
            (
                StatusResponse::no(
                    Some("a"),
                    Some(Code::AuthenticationFailed),
                    "Authentication failed",
                )
                .into(),
                "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n",
            ),
            (
                StatusResponse::ok(
                    Some("a"),
                    Some(Code::Capability(vec![
                        "IMAP4rev1".into(),
                        "IMAP4rev2".into(),
                        "LITERAL+".into(),
                        "AUTH=PLAIN".into(),
                    ])),
                    "Logged in",
                )
                .into(),
                "a OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ AUTH=PLAIN] Logged in\r\n",
            ),
            (
                StatusResponse::no(
                    Some("a"),
                    Some(Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()])),
                    "charset",
                )
                .into(),
                "a NO [BADCHARSET (UTF-8 US-ASCII)] charset\r\n",
            ),
            (
                StatusResponse::no(Some("a"), Some(Code::BadCharset(vec![])), "charset").into(),
                "a NO [BADCHARSET] charset\r\n",
            ),
            (
                StatusResponse::ok(
                    Some("a"),
                    Some(Code::Other {
                        name: "X-FOO".into(),
                        text: Some("bar]\r\nbaz".into()),
                    }),
                    "",
                )
                .into(),
                "a OK [X-FOO barbaz] done\r\n",
            ),
            (
                StatusResponse::no(Some("a"), None, "multi\r\nline").into(),
                "a NO multi  line\r\n",
            ),
            (
                Response::Continue("Ready for literal data".into()),
                "+ Ready for literal data\r\n",
            ),
            (Response::Continue(String::new()), "+ \r\n"),
        ];
        for (r, want) in cases {
            assert_eq!(enc(r), want);
        }
        let simple = [
            (Code::Alert, "ALERT"),
            (Code::AlreadyExists, "ALREADYEXISTS"),
            (Code::AuthorizationFailed, "AUTHORIZATIONFAILED"),
            (Code::Cannot, "CANNOT"),
            (Code::ClientBug, "CLIENTBUG"),
            (Code::CompressionActive, "COMPRESSIONACTIVE"),
            (Code::ContactAdmin, "CONTACTADMIN"),
            (Code::Corruption, "CORRUPTION"),
            (Code::Expired, "EXPIRED"),
            (Code::ExpungeIssued, "EXPUNGEISSUED"),
            (Code::HasChildren, "HASCHILDREN"),
            (Code::InUse, "INUSE"),
            (Code::Limit, "LIMIT"),
            (Code::NonExistent, "NONEXISTENT"),
            (Code::NoPerm, "NOPERM"),
            (Code::OverQuota, "OVERQUOTA"),
            (Code::Parse, "PARSE"),
            (Code::PrivacyRequired, "PRIVACYREQUIRED"),
            (Code::ServerBug, "SERVERBUG"),
            (Code::UidNotSticky, "UIDNOTSTICKY"),
            (Code::Unavailable, "UNAVAILABLE"),
            (Code::UnknownCte, "UNKNOWN-CTE"),
            (Code::UseAttr, "USEATTR"),
            (Code::UidNext(4392), "UIDNEXT 4392"),
            (Code::Unseen(12), "UNSEEN 12"),
        ];
        for (code, name) in simple {
            assert_eq!(
                enc(StatusResponse::no(Some("t"), Some(code), "x")),
                format!("t NO [{name}] x\r\n")
            );
        }
    }

    #[test]
    fn untagged_data() {
        let cases: Vec<(Data, &str)> = vec![
            (
                Data::Capability(vec![
                    "IMAP4rev2".into(),
                    "STARTTLS".into(),
                    "LOGINDISABLED".into(),
                ]),
                "* CAPABILITY IMAP4rev2 STARTTLS LOGINDISABLED\r\n",
            ),
            (
                Data::Enabled(vec!["CONDSTORE".into()]),
                "* ENABLED CONDSTORE\r\n",
            ),
            (Data::Enabled(vec![]), "* ENABLED\r\n"),
            (
                Data::Flags(vec![
                    Flag::Answered,
                    Flag::Flagged,
                    Flag::Deleted,
                    Flag::Seen,
                    Flag::Draft,
                    Flag::Keyword("$Junk".into()),
                ]),
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n",
            ),
            (Data::Exists(172), "* 172 EXISTS\r\n"),
            (Data::Recent(1), "* 1 RECENT\r\n"),
            (Data::Expunge(44), "* 44 EXPUNGE\r\n"),
            (
                Data::List(ListData {
                    attributes: vec![MailboxAttr::HasNoChildren, MailboxAttr::Sent],
                    delimiter: Some('/'),
                    mailbox: Mailbox::new("Sent Items"),
                    extended: vec![],
                }),
                "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n",
            ),
            (
                Data::List(ListData {
                    attributes: vec![MailboxAttr::NoSelect],
                    delimiter: None,
                    mailbox: Mailbox::new(""),
                    extended: vec![],
                }),
                "* LIST (\\Noselect) NIL \"\"\r\n",
            ),
            (
                Data::List(ListData {
                    attributes: vec![],
                    delimiter: Some('/'),
                    mailbox: Mailbox::new("Foo"),
                    extended: vec![ListExtended::ChildInfo(vec!["SUBSCRIBED".into()])],
                }),
                "* LIST () \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
            ),
            (
                Data::List(ListData {
                    attributes: vec![],
                    delimiter: Some('/'),
                    mailbox: Mailbox::new("NewName"),
                    extended: vec![ListExtended::OldName(Mailbox::new("Old Name"))],
                }),
                "* LIST () \"/\" NewName (\"OLDNAME\" (\"Old Name\"))\r\n",
            ),
            (
                Data::List(ListData {
                    attributes: vec![],
                    delimiter: Some('"'),
                    mailbox: Mailbox::new("inbox"),
                    extended: vec![],
                }),
                "* LIST () \"\\\"\" INBOX\r\n",
            ),
            (
                Data::Lsub(ListData {
                    attributes: vec![],
                    delimiter: Some('.'),
                    mailbox: Mailbox::new("#news.comp.mail.mime"),
                    extended: vec![],
                }),
                "* LSUB () \".\" #news.comp.mail.mime\r\n",
            ),
            (
                Data::Status {
                    mailbox: Mailbox::new("blurdybloop"),
                    items: vec![(StatusItem::Messages, 231), (StatusItem::UidNext, 44292)],
                },
                "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n",
            ),
            (
                Data::Search {
                    ids: vec![2, 84, 882],
                    modseq: None,
                },
                "* SEARCH 2 84 882\r\n",
            ),
            (
                Data::Search {
                    ids: vec![],
                    modseq: None,
                },
                "* SEARCH\r\n",
            ),
            (
                Data::Search {
                    ids: vec![2, 5, 6],
                    modseq: Some(917162500),
                },
                "* SEARCH 2 5 6 (MODSEQ 917162500)\r\n",
            ),
            (
                Data::ESearch {
                    tag: Some("A285".into()),
                    uid: true,
                    items: vec![ESearchItem::Min(7), ESearchItem::Max(3800)],
                },
                "* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n",
            ),
            (
                Data::ESearch {
                    tag: Some("A283".into()),
                    uid: false,
                    items: vec![ESearchItem::All(SequenceSet::from_sorted(&[
                        2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                    ]))],
                },
                "* ESEARCH (TAG \"A283\") ALL 2,10:19\r\n",
            ),
            (
                Data::ESearch {
                    tag: Some("t".into()),
                    uid: false,
                    items: vec![ESearchItem::Count(0)],
                },
                "* ESEARCH (TAG \"t\") COUNT 0\r\n",
            ),
            (
                Data::ESearch {
                    tag: None,
                    uid: false,
                    items: vec![ESearchItem::ModSeq(5)],
                },
                "* ESEARCH MODSEQ 5\r\n",
            ),
            // RFC 5256 §4.
            (
                Data::Sort {
                    ids: vec![2, 3, 6],
                    modseq: None,
                },
                "* SORT 2 3 6\r\n",
            ),
            (
                Data::Sort {
                    ids: vec![],
                    modseq: None,
                },
                "* SORT\r\n",
            ),
            (
                Data::Sort {
                    ids: vec![6, 2],
                    modseq: Some(9),
                },
                "* SORT 6 2 (MODSEQ 9)\r\n",
            ),
            (
                Data::Thread(crate::imap::thread::Threads::default()),
                "* THREAD\r\n",
            ),
            // RFC 5256 §4: `(2)(3 6 (4 23)(44 7 96))` and `((3)(5))`.
            (
                Data::Thread({
                    use crate::imap::thread::{Node, Threads};
                    let n = |id: Option<u32>, children: Vec<usize>| Node { id, children };
                    Threads {
                        nodes: vec![
                            n(Some(2), vec![]),
                            n(Some(3), vec![2]),
                            n(Some(6), vec![3, 5]),
                            n(Some(4), vec![4]),
                            n(Some(23), vec![]),
                            n(Some(44), vec![6]),
                            n(Some(7), vec![7]),
                            n(Some(96), vec![]),
                            n(None, vec![9, 10]),
                            n(Some(3), vec![]),
                            n(Some(5), vec![]),
                        ],
                        roots: vec![0, 1, 8],
                    }
                }),
                "* THREAD (2)(3 6 (4 23)(44 7 96))((3)(5))\r\n",
            ),
            // RFC 5267 §3.1 (ALL in sort order) and §4.4.
            (
                Data::ESearch {
                    tag: Some("A283".into()),
                    uid: true,
                    items: vec![
                        ESearchItem::All(SequenceSet(vec![
                            SeqItem::One(SeqNum::Value(23765)),
                            SeqItem::One(SeqNum::Value(23764)),
                            SeqItem::Range(SeqNum::Value(3), SeqNum::Value(5)),
                        ])),
                        ESearchItem::Partial(1, 3, None),
                        ESearchItem::Partial(
                            4,
                            5,
                            Some(SequenceSet(vec![SeqItem::One(SeqNum::Value(9))])),
                        ),
                    ],
                },
                "* ESEARCH (TAG \"A283\") UID ALL 23765,23764,3:5 PARTIAL (1:3 NIL) PARTIAL (4:5 9)\r\n",
            ),
            (Data::Id(None), "* ID NIL\r\n"),
            (
                Data::Id(Some(vec![
                    ("name".into(), Some("Letterbox".into())),
                    ("support-url".into(), None),
                ])),
                "* ID (\"name\" \"Letterbox\" \"support-url\" NIL)\r\n",
            ),
            (
                Data::Namespace {
                    personal: vec![NamespaceDesc {
                        prefix: String::new(),
                        delimiter: Some('/'),
                    }],
                    other: vec![],
                    shared: vec![],
                },
                "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n",
            ),
            (
                Data::Namespace {
                    personal: vec![NamespaceDesc {
                        prefix: String::new(),
                        delimiter: Some('/'),
                    }],
                    other: vec![NamespaceDesc {
                        prefix: "~".into(),
                        delimiter: Some('/'),
                    }],
                    shared: vec![
                        NamespaceDesc {
                            prefix: "#shared/".into(),
                            delimiter: Some('/'),
                        },
                        NamespaceDesc {
                            prefix: "#public/".into(),
                            delimiter: None,
                        },
                    ],
                },
                "* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" NIL))\r\n",
            ),
            (
                Data::Vanished {
                    earlier: true,
                    uids: SequenceSet::from_sorted(&[41, 43, 44, 45]),
                },
                "* VANISHED (EARLIER) 41,43:45\r\n",
            ),
            (
                Data::Vanished {
                    earlier: false,
                    uids: SequenceSet::range(405, 410),
                },
                "* VANISHED 405:410\r\n",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(enc(d), want);
        }
    }

    /// The FETCH example of RFC 3501 §8 (ENVELOPE and BODY with NILs).
    #[test]
    fn rfc3501_fetch_example() {
        let gray = addr(Some("Terry Gray"), "gray", "cac.washington.edu");
        let env = Envelope {
            date: ns("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)"),
            subject: ns("IMAP4rev1 WG mtg summary and minutes"),
            from: vec![gray.clone()],
            sender: vec![gray.clone()],
            reply_to: vec![gray],
            to: vec![addr(None, "imap", "cac.washington.edu")],
            cc: vec![
                addr(None, "minutes", "CNRI.Reston.VA.US"),
                addr(Some("John Klensin"), "KLENSIN", "MIT.EDU"),
            ],
            bcc: vec![],
            in_reply_to: None,
            message_id: ns("<B27397-0100000@cac.washington.edu>"),
        };
        let body = BodyStructure::Single {
            part: text_plain(vec![("CHARSET", "US-ASCII")], None, None, "7BIT", 3028, 92),
            ext: Some(SinglePartExt::default()),
        };
        let r = Data::Fetch {
            seq: 12,
            items: vec![
                FetchItem::Flags(vec![Flag::Seen]),
                FetchItem::InternalDate(DateTime {
                    date: Date::new(1996, 7, 17).unwrap(),
                    hour: 2,
                    minute: 44,
                    second: 25,
                    zone_minutes: -420,
                }),
                FetchItem::Rfc822Size(4286),
                FetchItem::Envelope(Box::new(env)),
                FetchItem::Body(Box::new(body.clone())),
            ],
        };
        assert_eq!(
            enc(r),
            "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \"<B27397-0100000@cac.washington.edu>\") BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92))\r\n"
        );
        // The same part as BODYSTRUCTURE carries the (all-NIL) extension data.
        assert_eq!(
            enc(Data::Fetch {
                seq: 1,
                items: vec![FetchItem::BodyStructure(Box::new(body))]
            }),
            "* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92 NIL NIL NIL NIL))\r\n"
        );
        // An empty envelope is all NIL.
        assert_eq!(
            enc(Data::Fetch {
                seq: 2,
                items: vec![FetchItem::Envelope(Box::default())]
            }),
            "* 2 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
        );
    }

    #[test]
    fn multipart_and_message_rfc822_structures() {
        let p1 = BodyStructure::Single {
            part: text_plain(vec![("CHARSET", "US-ASCII")], None, None, "7BIT", 1152, 23),
            ext: None,
        };
        let p2 = BodyStructure::Single {
            part: text_plain(
                vec![("CHARSET", "US-ASCII"), ("NAME", "cc.diff")],
                ns("<960723163407.20117h@cac.washington.edu>"),
                ns("Compiler diff"),
                "BASE64",
                4554,
                73,
            ),
            ext: Some(SinglePartExt {
                md5: None,
                disposition: Some(Disposition {
                    kind: "attachment".into(),
                    params: vec![("filename".into(), "cc.diff".into())],
                }),
                language: vec!["en".into()],
                location: None,
            }),
        };
        let multi = BodyStructure::Multi {
            parts: vec![p1, p2],
            subtype: "MIXED".into(),
            ext: Some(MultiPartExt {
                params: vec![("BOUNDARY".into(), "xyz".into())],
                disposition: None,
                language: vec!["en".into(), "de".into()],
                location: ns("http://x/"),
            }),
        };
        // RFC 3501 §7.4.2 example (BODY form: no extension data anywhere).
        assert_eq!(
            enc(Data::Fetch {
                seq: 3,
                items: vec![FetchItem::Body(Box::new(multi.clone()))]
            }),
            "* 3 FETCH (BODY ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23)(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") \"<960723163407.20117h@cac.washington.edu>\" \"Compiler diff\" \"BASE64\" 4554 73) \"MIXED\"))\r\n"
        );
        assert_eq!(
            enc(Data::Fetch {
                seq: 3,
                items: vec![FetchItem::BodyStructure(Box::new(multi.clone()))]
            }),
            "* 3 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23)(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") \"<960723163407.20117h@cac.washington.edu>\" \"Compiler diff\" \"BASE64\" 4554 73 NIL (\"attachment\" (\"filename\" \"cc.diff\")) \"en\" NIL) \"MIXED\" (\"BOUNDARY\" \"xyz\") NIL (\"en\" \"de\") \"http://x/\"))\r\n"
        );
        let inner_env = Envelope {
            subject: ns("fwd"),
            from: vec![addr(None, "a", "b.example")],
            ..Envelope::default()
        };
        let image = BodyStructure::Single {
            part: SinglePart {
                media_type: "IMAGE".into(),
                subtype: "PNG".into(),
                params: vec![],
                id: None,
                description: None,
                encoding: "BASE64".into(),
                size: 10,
                kind: SingleKind::Basic,
            },
            ext: None,
        };
        let msg = BodyStructure::Single {
            part: SinglePart {
                media_type: "MESSAGE".into(),
                subtype: "RFC822".into(),
                params: vec![],
                id: None,
                description: None,
                encoding: "7BIT".into(),
                size: 500,
                kind: SingleKind::Message {
                    envelope: Box::new(inner_env),
                    body: Box::new(image),
                    lines: 12,
                },
            },
            ext: None,
        };
        assert_eq!(
            enc(Data::Fetch {
                seq: 4,
                items: vec![FetchItem::BodyStructure(Box::new(msg))]
            }),
            "* 4 FETCH (BODYSTRUCTURE (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 500 (NIL \"fwd\" ((NIL NIL \"a\" \"b.example\")) NIL NIL NIL NIL NIL NIL NIL) (\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 10) 12))\r\n"
        );
        // Group syntax: start (host NIL) and end (mailbox and host NIL).
        let env = Envelope {
            to: vec![
                Address {
                    mailbox: ns("undisclosed-recipients"),
                    ..Address::default()
                },
                Address::default(),
            ],
            ..Envelope::default()
        };
        assert_eq!(
            enc(Data::Fetch {
                seq: 5,
                items: vec![FetchItem::Envelope(Box::new(env))]
            }),
            "* 5 FETCH (ENVELOPE (NIL NIL NIL NIL NIL ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL))\r\n"
        );
    }

    #[test]
    fn strings_quoted_escaped_or_literal() {
        let env = |subject: &[u8]| {
            enc(Data::Fetch {
                seq: 1,
                items: vec![FetchItem::Envelope(Box::new(Envelope {
                    subject: Some(subject.to_vec()),
                    ..Envelope::default()
                }))],
            })
        };
        assert_eq!(
            env(b"say \"hi\" \\o/"),
            "* 1 FETCH (ENVELOPE (NIL \"say \\\"hi\\\" \\\\o/\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
        );
        assert_eq!(
            env("Grüße".as_bytes()),
            "* 1 FETCH (ENVELOPE (NIL {7}\r\nGrüße NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
        );
        assert_eq!(
            env(b"a\r\nb"),
            "* 1 FETCH (ENVELOPE (NIL {4}\r\na\r\nb NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
        );
        assert_eq!(
            env(b""),
            "* 1 FETCH (ENVELOPE (NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
        );
        let long = vec![b'x'; 1001];
        assert!(env(&long).contains("{1001}\r\n"));
        // Mailbox names: atom, quoted, literal.
        let list = |name: &str| {
            enc(Data::List(ListData {
                attributes: vec![],
                delimiter: Some('/'),
                mailbox: Mailbox::new(name),
                extended: vec![],
            }))
        };
        assert_eq!(list("Archive/2024"), "* LIST () \"/\" Archive/2024\r\n");
        assert_eq!(list("a%b"), "* LIST () \"/\" \"a%b\"\r\n");
        assert_eq!(list("NIL"), "* LIST () \"/\" \"NIL\"\r\n");
        assert_eq!(list("Entwürfe"), "* LIST () \"/\" {9}\r\nEntwürfe\r\n");
    }

    #[test]
    fn fetch_items() {
        let hdr = Section {
            part: vec![],
            text: Some(SectionText::HeaderFields(vec![
                "Subject".into(),
                "From".into(),
            ])),
        };
        let cases: Vec<(FetchItem, &str)> = vec![
            (FetchItem::Uid(4827313), "UID 4827313"),
            (FetchItem::ModSeq(12121231000), "MODSEQ (12121231000)"),
            (FetchItem::Flags(vec![]), "FLAGS ()"),
            (
                FetchItem::BodySection {
                    section: Section::default(),
                    origin: None,
                    data: ns("Hi\r\n"),
                },
                "BODY[] {4}\r\nHi\r\n",
            ),
            (
                FetchItem::BodySection {
                    section: Section {
                        part: vec![1, 2],
                        text: Some(SectionText::Mime),
                    },
                    origin: Some(0),
                    data: ns("x"),
                },
                "BODY[1.2.MIME]<0> {1}\r\nx",
            ),
            (
                FetchItem::BodySection {
                    section: hdr,
                    origin: None,
                    data: ns("Subject: x\r\n\r\n"),
                },
                "BODY[HEADER.FIELDS (Subject From)] {14}\r\nSubject: x\r\n\r\n",
            ),
            (
                FetchItem::BodySection {
                    section: Section {
                        part: vec![3],
                        text: None,
                    },
                    origin: None,
                    data: None,
                },
                "BODY[3] NIL",
            ),
            (
                FetchItem::Binary {
                    part: vec![1],
                    origin: None,
                    data: Some(b"a\x00b".to_vec()),
                },
                "BINARY[1] ~{3}\r\na\x00b",
            ),
            (
                FetchItem::Binary {
                    part: vec![1],
                    origin: Some(5),
                    data: ns("ab"),
                },
                "BINARY[1]<5> {2}\r\nab",
            ),
            (
                FetchItem::BinarySize {
                    part: vec![2, 1],
                    size: 4096,
                },
                "BINARY.SIZE[2.1] 4096",
            ),
            (FetchItem::Rfc822(ns("abc")), "RFC822 {3}\r\nabc"),
            (FetchItem::Rfc822Header(ns("")), "RFC822.HEADER {0}\r\n"),
            (FetchItem::Rfc822Text(None), "RFC822.TEXT NIL"),
        ];
        for (it, want) in cases {
            assert_eq!(
                Response::Data(Data::Fetch {
                    seq: 9,
                    items: vec![it]
                })
                .to_bytes(),
                format!("* 9 FETCH ({want})\r\n").into_bytes()
            );
        }
    }

    #[test]
    fn encode_appends_to_buffer() {
        let mut out = b"prefix".to_vec();
        Response::Data(Data::Exists(1)).encode(&mut out);
        StatusResponse::ok(Some("a"), None, "done")
            .into_response()
            .encode(&mut out);
        assert_eq!(out, b"prefix* 1 EXISTS\r\na OK done\r\n");
    }

    impl StatusResponse {
        fn into_response(self) -> Response {
            self.into()
        }
    }
}
