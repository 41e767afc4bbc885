//! Client commands: the typed [`Command`] tree, the parser [`parse_command`] for one
//! frame from [`super::fragment::Framer`], and the encoder [`Command::encode`] (for
//! round-trip tests and for a load-generating client).
//!
//! Grammar: IMAP4rev1 (RFC 3501 §6, §9) and IMAP4rev2 (RFC 9051 §6, §9), with the
//! extensions Letterbox offers: SASL-IR (RFC 4959), ENABLE (RFC 5161), ID (RFC 2971),
//! LITERAL+/LITERAL- (RFC 7888), BINARY literal8 (RFC 3516), UIDPLUS `UID EXPUNGE`
//! (RFC 4315), MOVE (RFC 6851), UNSELECT (RFC 3691), CONDSTORE/QRESYNC (RFC 7162),
//! ESEARCH (RFC 4731), SEARCHRES `$` (RFC 5182), WITHIN OLDER/YOUNGER (RFC 5032),
//! LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE and
//! CREATE-SPECIAL-USE (RFC 6154), STATUS=SIZE (RFC 8438), APPENDLIMIT (RFC 7889),
//! MULTIAPPEND (RFC 3502), IDLE (RFC 2177).
//!
//! The parser is a hand-written recursive descent over the whole frame; it never
//! panics, bounds its recursion (nested SEARCH keys), and returns a [`ParseError`]
//! carrying the tag whenever one was read, so the caller can answer `tag BAD`
//! (else `* BAD`). It does not check whether a command is allowed in the current state:
//! that is the session's table.
//!
//! Mailbox names are kept as the client sent them (after string unquoting), except
//! that `INBOX` is matched case-insensitively and stored as `INBOX` (RFC 9051 §5.1).
//! Modified UTF-7 (RFC 3501 §5.1.3) is *not* decoded: IMAP4rev2 and UTF8=ACCEPT
//! (RFC 6855) clients send UTF-8, and a rev1 client's `&`-encoded name is stored and
//! echoed byte for byte, which round-trips. Names must be valid UTF-8.

use super::fragment::{is_atom_char, is_tag_char};
use crate::sasl::Secret;
use std::fmt;

// ---------------------------------------------------------------------------------
// Shared value types (also used by responses).
// ---------------------------------------------------------------------------------

/// One end of a sequence range: a number or `*` (the largest in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqNum {
    /// A non-zero message sequence number or UID.
    Value(u32),
    /// `*`.
    Last,
}

/// One element of a sequence set (RFC 9051 §9 `sequence-set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqItem {
    /// `n` or `*`.
    One(SeqNum),
    /// `a:b`, in either order as sent (RFC 9051: `2:4` and `4:2` are the same).
    Range(SeqNum, SeqNum),
    /// `$`: the result saved by `SEARCH RETURN (SAVE)` (SEARCHRES, RFC 5182).
    Saved,
}

/// A sequence set: comma-separated items, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceSet(pub Vec<SeqItem>);

impl SequenceSet {
    /// A set with one number.
    pub fn single(n: u32) -> Self {
        SequenceSet(vec![SeqItem::One(SeqNum::Value(n))])
    }
    /// A set with one range.
    pub fn range(a: u32, b: u32) -> Self {
        SequenceSet(vec![SeqItem::Range(SeqNum::Value(a), SeqNum::Value(b))])
    }
    /// Builds a compact set (runs become ranges) from ascending numbers.
    pub fn from_sorted(nums: &[u32]) -> Self {
        let mut items = Vec::new();
        let mut i = 0;
        while i < nums.len() {
            let start = nums[i];
            let mut end = start;
            while i + 1 < nums.len() && nums[i + 1] == end.wrapping_add(1) {
                i += 1;
                end = nums[i];
            }
            items.push(if start == end {
                SeqItem::One(SeqNum::Value(start))
            } else {
                SeqItem::Range(SeqNum::Value(start), SeqNum::Value(end))
            });
            i += 1;
        }
        SequenceSet(items)
    }
    /// Whether the set uses `$`.
    pub fn uses_saved(&self) -> bool {
        self.0.contains(&SeqItem::Saved)
    }
    /// Whether `n` is in the set, with `*` standing for `largest`. `$` matches nothing
    /// here: the session substitutes the saved result first.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        let v = |s: SeqNum| match s {
            SeqNum::Value(v) => v,
            SeqNum::Last => largest,
        };
        self.0.iter().any(|item| match *item {
            SeqItem::One(s) => v(s) == n,
            SeqItem::Range(a, b) => {
                let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
                (lo..=hi).contains(&n)
            }
            SeqItem::Saved => false,
        })
    }
}

/// A message flag (RFC 9051 §2.3.2). System flags compare case-insensitively, so
/// they are parsed into their own variants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// `\Answered`.
    Answered,
    /// `\Flagged`.
    Flagged,
    /// `\Deleted`.
    Deleted,
    /// `\Seen`.
    Seen,
    /// `\Draft`.
    Draft,
    /// `\Recent` (IMAP4rev1 only; never settable by clients).
    Recent,
    /// A keyword (`$Forwarded`, `$Junk`, `NonJunk`...), kept as sent.
    Keyword(String),
    /// Another `\`-flag, without the backslash.
    Extension(String),
}

impl Flag {
    /// Parses `\Seen`, `$Junk`, ... (system flags case-insensitively).
    pub fn parse(s: &str) -> Option<Flag> {
        if let Some(rest) = s.strip_prefix('\\') {
            if rest.is_empty() || !rest.bytes().all(is_atom_char) {
                return None;
            }
            Some(match rest.to_ascii_uppercase().as_str() {
                "ANSWERED" => Flag::Answered,
                "FLAGGED" => Flag::Flagged,
                "DELETED" => Flag::Deleted,
                "SEEN" => Flag::Seen,
                "DRAFT" => Flag::Draft,
                "RECENT" => Flag::Recent,
                _ => Flag::Extension(rest.to_string()),
            })
        } else if !s.is_empty() && s.bytes().all(is_atom_char) {
            Some(Flag::Keyword(s.to_string()))
        } else {
            None
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flag::Answered => f.write_str("\\Answered"),
            Flag::Flagged => f.write_str("\\Flagged"),
            Flag::Deleted => f.write_str("\\Deleted"),
            Flag::Seen => f.write_str("\\Seen"),
            Flag::Draft => f.write_str("\\Draft"),
            Flag::Recent => f.write_str("\\Recent"),
            Flag::Keyword(k) => f.write_str(k),
            Flag::Extension(e) => write!(f, "\\{e}"),
        }
    }
}

/// A mailbox name as the client sent it, with `INBOX` normalised (module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox(String);

impl Mailbox {
    /// Wraps a name; any capitalisation of `INBOX` becomes `INBOX`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        if name.eq_ignore_ascii_case("INBOX") {
            Mailbox("INBOX".to_string())
        } else {
            Mailbox(name)
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether this is the INBOX.
    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

/// A calendar date, as in SEARCH `SINCE 1-Feb-1994` (RFC 9051 §9 `date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    /// Four-digit year.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31, valid for the month.
    pub day: u8,
}

impl Date {
    /// A validated date.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month) && year <= 9999)
            .then_some(Date { year, month, day })
    }
}

impl fmt::Display for Date {
    /// `1-Feb-1994` (no padding, as `date-day` allows).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = MONTHS[usize::from(self.month.clamp(1, 12) - 1)];
        write!(f, "{}-{}-{:04}", self.day, m, self.year)
    }
}

/// A date-time with zone, as in APPEND and INTERNALDATE (RFC 9051 §9 `date-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The local date.
    pub date: Date,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=60 (leap second).
    pub second: u8,
    /// Offset from UTC in minutes (`+0100` is 60).
    pub zone_minutes: i16,
}

impl DateTime {
    /// Seconds since the Unix epoch (UTC).
    pub fn unix_timestamp(&self) -> i64 {
        // Days from civil (Howard Hinnant's algorithm).
        let (y, m, d) = (
            i64::from(self.date.year),
            i64::from(self.date.month),
            i64::from(self.date.day),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.zone_minutes) * 60
    }
}

impl fmt::Display for DateTime {
    /// `17-Jul-1996 02:44:25 -0700` (the unquoted body of `date-time`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = MONTHS[usize::from(self.date.month.clamp(1, 12) - 1)];
        let sign = if self.zone_minutes < 0 { '-' } else { '+' };
        let z = self.zone_minutes.unsigned_abs();
        write!(
            f,
            "{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            self.date.day,
            m,
            self.date.year,
            self.hour,
            self.minute,
            self.second,
            sign,
            z / 60,
            z % 60
        )
    }
}

/// The text part of a section specifier (RFC 9051 §6.4.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SectionText {
    /// `HEADER`.
    Header,
    /// `HEADER.FIELDS (..)`.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (..)`.
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`.
    Text,
    /// `MIME` (only after a part number).
    Mime,
}

/// `BODY[section]`: a part path (`1.2.3`, empty for the whole message) and an optional
/// text specifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Section {
    /// Part numbers, outermost first.
    pub part: Vec<u32>,
    /// HEADER, TEXT, MIME...
    pub text: Option<SectionText>,
}

/// `<offset.length>` of a partial FETCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partial {
    /// First octet.
    pub offset: u64,
    /// Octet count (non-zero).
    pub length: u64,
}

/// A STATUS data item (RFC 9051 §6.3.11, RFC 7162, RFC 7889, RFC 8438).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusItem {
    /// `MESSAGES`.
    Messages,
    /// `UIDNEXT`.
    UidNext,
    /// `UIDVALIDITY`.
    UidValidity,
    /// `UNSEEN`.
    Unseen,
    /// `DELETED` (rev2).
    Deleted,
    /// `SIZE` (rev2, RFC 8438).
    Size,
    /// `RECENT` (rev1).
    Recent,
    /// `HIGHESTMODSEQ` (CONDSTORE).
    HighestModSeq,
    /// `APPENDLIMIT` (RFC 7889).
    AppendLimit,
}

impl StatusItem {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::Deleted => "DELETED",
            StatusItem::Size => "SIZE",
            StatusItem::Recent => "RECENT",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::AppendLimit => "APPENDLIMIT",
        }
    }
    fn parse(word: &str) -> Option<StatusItem> {
        Some(match word {
            "MESSAGES" => StatusItem::Messages,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "RECENT" => StatusItem::Recent,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "APPENDLIMIT" => StatusItem::AppendLimit,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------
// Commands.
// ---------------------------------------------------------------------------------

/// A tagged client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's tag.
    pub tag: String,
    /// What it asks for.
    pub body: CommandBody,
}

/// `SELECT`/`EXAMINE` parameters (RFC 4466 §2.1, RFC 7162 §3.1.8 / §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams {
    /// `(CONDSTORE)`.
    pub condstore: bool,
    /// `(QRESYNC (..))`.
    pub qresync: Option<QResync>,
}

/// `QRESYNC (uidvalidity modseq [known-uids [(seq-match)]])` (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QResync {
    /// The UIDVALIDITY the client last saw.
    pub uid_validity: u32,
    /// The last known HIGHESTMODSEQ.
    pub mod_seq: u64,
    /// UIDs the client knows (all when absent).
    pub known_uids: Option<SequenceSet>,
    /// `(known-sequence-set known-uid-set)`.
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// LIST selection options (RFC 5258 §3.1, RFC 6154 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListSelect {
    /// `SUBSCRIBED`.
    Subscribed,
    /// `REMOTE`.
    Remote,
    /// `RECURSIVEMATCH`.
    RecursiveMatch,
    /// `SPECIAL-USE`.
    SpecialUse,
}

/// LIST return options (RFC 5258 §3.2, RFC 5819, RFC 6154).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    /// `SUBSCRIBED`.
    Subscribed,
    /// `CHILDREN`.
    Children,
    /// `SPECIAL-USE`.
    SpecialUse,
    /// `STATUS (..)` (LIST-STATUS).
    Status(Vec<StatusItem>),
}

/// One message of an APPEND (several with MULTIAPPEND, RFC 3502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    /// Initial flags.
    pub flags: Vec<Flag>,
    /// Internal date, when given.
    pub date: Option<DateTime>,
    /// The raw message. NUL is accepted here even in a plain literal (stored as
    /// sent); elsewhere a literal with NUL is a syntax error.
    pub data: Vec<u8>,
    /// Sent as literal8 `~{n}` (RFC 3516): may contain NUL.
    pub binary: bool,
}

/// ESEARCH return options (RFC 4731, RFC 9051 §6.4.4, RFC 5182 SAVE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchReturn {
    /// `MIN`.
    Min,
    /// `MAX`.
    Max,
    /// `ALL`.
    All,
    /// `COUNT`.
    Count,
    /// `SAVE`.
    Save,
    /// `PARTIAL low:high` (RFC 5267 §4.4, SEARCH and SORT): the results at positions
    /// `low..=high` (1-based) of the result list (ascending for SEARCH, sorted for SORT).
    Partial(u32, u32),
    /// `UPDATE` (RFC 5267 §4.3): keep the result live and report its changes.
    Update,
    /// `CONTEXT` (RFC 5267 §4.2): a hint that the result will be reused; no effect.
    Context,
}

/// A SORT key (RFC 5256 §3, RFC 5957 SORT=DISPLAY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// `ARRIVAL`: INTERNALDATE.
    Arrival,
    /// `CC`: addr-mailbox of the first Cc address.
    Cc,
    /// `DATE`: the sent date (RFC 5256 §2.2).
    Date,
    /// `FROM`: addr-mailbox of the first From address.
    From,
    /// `SIZE`: RFC822.SIZE.
    Size,
    /// `SUBJECT`: the base subject (RFC 5256 §2.1).
    Subject,
    /// `TO`: addr-mailbox of the first To address.
    To,
    /// `DISPLAYFROM` (RFC 5957): display name, else addr-spec, of the first From.
    DisplayFrom,
    /// `DISPLAYTO` (RFC 5957): display name, else addr-spec, of the first To.
    DisplayTo,
}

impl SortKey {
    /// The key's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Arrival => "ARRIVAL",
            SortKey::Cc => "CC",
            SortKey::Date => "DATE",
            SortKey::From => "FROM",
            SortKey::Size => "SIZE",
            SortKey::Subject => "SUBJECT",
            SortKey::To => "TO",
            SortKey::DisplayFrom => "DISPLAYFROM",
            SortKey::DisplayTo => "DISPLAYTO",
        }
    }

    fn parse(word: &str) -> Option<SortKey> {
        Some(match word {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            _ => return None,
        })
    }
}

/// `[REVERSE] sort-key` (RFC 5256 §5 sort-criterion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortCriterion {
    /// `REVERSE`: this criterion descending.
    pub reverse: bool,
    /// The key.
    pub key: SortKey,
}

/// A THREAD algorithm (RFC 5256 §3; REFS: draft-ietf-morg-inthread-01 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadAlgorithm {
    /// `ORDEREDSUBJECT`.
    OrderedSubject,
    /// `REFERENCES`.
    References,
    /// `REFS`.
    Refs,
}

impl ThreadAlgorithm {
    /// The algorithm's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ThreadAlgorithm::OrderedSubject => "ORDEREDSUBJECT",
            ThreadAlgorithm::References => "REFERENCES",
            ThreadAlgorithm::Refs => "REFS",
        }
    }
}

/// CONDSTORE `MODSEQ` search entry type (RFC 7162 §3.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// `priv`.
    Private,
    /// `shared`.
    Shared,
    /// `all`.
    All,
}

/// A search key (RFC 3501 §6.4.4, RFC 9051 §6.4.4, RFC 7162, RFC 5032). String
/// arguments are raw bytes in the command's CHARSET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// `ALL`.
    All,
    /// `ANSWERED`.
    Answered,
    /// `BCC string`.
    Bcc(Vec<u8>),
    /// `BEFORE date`.
    Before(Date),
    /// `BODY string`.
    Body(Vec<u8>),
    /// `CC string`.
    Cc(Vec<u8>),
    /// `DELETED`.
    Deleted,
    /// `DRAFT`.
    Draft,
    /// `FLAGGED`.
    Flagged,
    /// `FROM string`.
    From(Vec<u8>),
    /// `HEADER field-name string`.
    Header(String, Vec<u8>),
    /// `KEYWORD flag`.
    Keyword(String),
    /// `LARGER n`.
    Larger(u64),
    /// `NEW`.
    New,
    /// `NOT key`.
    Not(Box<SearchKey>),
    /// `OLD`.
    Old,
    /// `ON date`.
    On(Date),
    /// `OR key1 key2`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `RECENT`.
    Recent,
    /// `SEEN`.
    Seen,
    /// `SENTBEFORE date`.
    SentBefore(Date),
    /// `SENTON date`.
    SentOn(Date),
    /// `SENTSINCE date`.
    SentSince(Date),
    /// `SINCE date`.
    Since(Date),
    /// `SMALLER n`.
    Smaller(u64),
    /// `SUBJECT string`.
    Subject(Vec<u8>),
    /// `TEXT string`.
    Text(Vec<u8>),
    /// `TO string`.
    To(Vec<u8>),
    /// `UID set`.
    Uid(SequenceSet),
    /// `UNANSWERED`.
    Unanswered,
    /// `UNDELETED`.
    Undeleted,
    /// `UNDRAFT`.
    Undraft,
    /// `UNFLAGGED`.
    Unflagged,
    /// `UNKEYWORD flag`.
    Unkeyword(String),
    /// `UNSEEN`.
    Unseen,
    /// A bare sequence set (message numbers).
    SequenceSet(SequenceSet),
    /// A parenthesised list: all must match.
    And(Vec<SearchKey>),
    /// `MODSEQ [entry-name entry-type] modseq` (CONDSTORE).
    ModSeq {
        /// `"/flags/\\Seen" priv`.
        entry: Option<(String, EntryType)>,
        /// Matches messages with a greater or equal mod-sequence.
        modseq: u64,
    },
    /// `OLDER n` seconds (RFC 5032).
    Older(u32),
    /// `YOUNGER n` seconds (RFC 5032).
    Younger(u32),
}

/// A FETCH data item (RFC 9051 §6.4.5, RFC 3516, RFC 7162).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FetchAttr {
    /// `ENVELOPE`.
    Envelope,
    /// `FLAGS`.
    Flags,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822` (rev1).
    Rfc822,
    /// `RFC822.HEADER` (rev1).
    Rfc822Header,
    /// `RFC822.SIZE`.
    Rfc822Size,
    /// `RFC822.TEXT` (rev1).
    Rfc822Text,
    /// `BODY` (non-extensible BODYSTRUCTURE).
    Body,
    /// `BODYSTRUCTURE`.
    BodyStructure,
    /// `UID`.
    Uid,
    /// `MODSEQ` (CONDSTORE).
    ModSeq,
    /// `BODY[section]<partial>` or `BODY.PEEK[..]`.
    BodySection {
        /// `.PEEK`: do not set `\Seen`.
        peek: bool,
        /// Which part.
        section: Section,
        /// `<offset.length>`.
        partial: Option<Partial>,
    },
    /// `BINARY[part]<partial>` or `BINARY.PEEK[..]`.
    Binary {
        /// `.PEEK`.
        peek: bool,
        /// Part path.
        part: Vec<u32>,
        /// `<offset.length>`.
        partial: Option<Partial>,
    },
    /// `BINARY.SIZE[part]`.
    BinarySize {
        /// Part path.
        part: Vec<u32>,
    },
}

/// What a FETCH asks for: a macro or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItems {
    /// `ALL` = FLAGS INTERNALDATE RFC822.SIZE ENVELOPE.
    All,
    /// `FAST` = FLAGS INTERNALDATE RFC822.SIZE.
    Fast,
    /// `FULL` = ALL + BODY.
    Full,
    /// Explicit items.
    Attrs(Vec<FetchAttr>),
}

impl FetchItems {
    /// Expands macros into items.
    pub fn expand(&self) -> Vec<FetchAttr> {
        use FetchAttr::*;
        match self {
            FetchItems::All => vec![Flags, InternalDate, Rfc822Size, Envelope],
            FetchItems::Fast => vec![Flags, InternalDate, Rfc822Size],
            FetchItems::Full => vec![Flags, InternalDate, Rfc822Size, Envelope, Body],
            FetchItems::Attrs(a) => a.clone(),
        }
    }
}

/// FETCH modifiers (RFC 7162 §3.1.4.1, §3.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchModifiers {
    /// `CHANGEDSINCE n`.
    pub changed_since: Option<u64>,
    /// `VANISHED` (UID FETCH with QRESYNC only).
    pub vanished: bool,
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    /// `FLAGS`.
    Replace,
    /// `+FLAGS`.
    Add,
    /// `-FLAGS`.
    Remove,
}

/// A command without its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    /// `CAPABILITY`. Any state.
    Capability,
    /// `NOOP`. Any state.
    Noop,
    /// `LOGOUT`. Any state.
    Logout,
    /// `STARTTLS`. Not authenticated.
    StartTls,
    /// `AUTHENTICATE mech [initial]` (RFC 9051 §6.2.2, SASL-IR RFC 4959). Not
    /// authenticated.
    Authenticate {
        /// Mechanism name as sent (compare case-insensitively).
        mechanism: String,
        /// The initial response as sent: base64, or `=` for an empty one. Pass it
        /// to `sasl::Exchange::start` unchanged.
        initial_response: Option<Secret<String>>,
    },
    /// `LOGIN user password`. Not authenticated.
    Login {
        /// User name.
        username: String,
        /// Password.
        password: Secret<String>,
    },
    /// `ENABLE cap..` (RFC 5161). Authenticated.
    Enable(Vec<String>),
    /// `SELECT mailbox [(params)]`. Authenticated, Selected.
    Select {
        /// The mailbox.
        mailbox: Mailbox,
        /// CONDSTORE / QRESYNC.
        params: SelectParams,
    },
    /// `EXAMINE mailbox [(params)]`. Authenticated, Selected.
    Examine {
        /// The mailbox.
        mailbox: Mailbox,
        /// CONDSTORE / QRESYNC.
        params: SelectParams,
    },
    /// `CREATE mailbox [(USE (\Sent))]` (RFC 6154 §3). Authenticated, Selected.
    Create {
        /// The mailbox.
        mailbox: Mailbox,
        /// Special-use attributes without the backslash (`Sent`, `Trash`...).
        special_use: Vec<String>,
    },
    /// `DELETE mailbox`. Authenticated, Selected.
    Delete(Mailbox),
    /// `RENAME from to`. Authenticated, Selected.
    Rename {
        /// Existing name.
        from: Mailbox,
        /// New name.
        to: Mailbox,
    },
    /// `SUBSCRIBE mailbox`. Authenticated, Selected.
    Subscribe(Mailbox),
    /// `UNSUBSCRIBE mailbox`. Authenticated, Selected.
    Unsubscribe(Mailbox),
    /// `LIST [(select)] reference pattern(s) [RETURN (..)]` (RFC 5258). Authenticated,
    /// Selected.
    List {
        /// Selection options.
        selection: Vec<ListSelect>,
        /// Reference name, raw.
        reference: String,
        /// One or more patterns (with `%`/`*`), raw.
        patterns: Vec<String>,
        /// Return options.
        returns: Vec<ListReturn>,
    },
    /// `LSUB reference pattern` (rev1). Authenticated, Selected.
    Lsub {
        /// Reference name.
        reference: String,
        /// Pattern.
        pattern: String,
    },
    /// `NAMESPACE`. Authenticated, Selected.
    Namespace,
    /// `GETQUOTA root` (RFC 9208 §4.2). Authenticated, Selected.
    GetQuota(String),
    /// `GETQUOTAROOT mailbox` (RFC 9208 §4.3). Authenticated, Selected.
    GetQuotaRoot(Mailbox),
    /// `SETQUOTA root (resource limit ...)` (RFC 9208 §4.1). Authenticated, Selected.
    SetQuota {
        /// The quota root.
        root: String,
        /// (resource name, limit), as sent.
        limits: Vec<(String, u64)>,
    },
    /// `STATUS mailbox (items)`. Authenticated, Selected.
    Status {
        /// The mailbox.
        mailbox: Mailbox,
        /// Requested items.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox [flags] [date] literal` (+ MULTIAPPEND). Authenticated, Selected.
    Append {
        /// Destination.
        mailbox: Mailbox,
        /// One or more messages.
        messages: Vec<AppendMessage>,
    },
    /// `IDLE` (RFC 2177); ended by a `DONE` line ([`parse_idle_done`]).
    Idle,
    /// `CHECK` (rev1). Selected.
    Check,
    /// `CLOSE`. Selected.
    Close,
    /// `UNSELECT`. Selected.
    Unselect,
    /// `EXPUNGE`. Selected.
    Expunge,
    /// `UID EXPUNGE set` (UIDPLUS). Selected.
    UidExpunge(SequenceSet),
    /// `[UID] SEARCH [RETURN (..)] [CHARSET c] keys`. Selected.
    Search {
        /// `UID SEARCH`.
        uid: bool,
        /// `RETURN (..)`: `None` for a plain SEARCH, `Some(vec![])` for `RETURN ()`.
        returns: Option<Vec<SearchReturn>>,
        /// `CHARSET`, as sent.
        charset: Option<String>,
        /// The keys (all must match).
        criteria: Vec<SearchKey>,
    },
    /// `[UID] SORT [RETURN (..)] (criteria) charset keys` (RFC 5256, RFC 5267 ESORT).
    /// Selected.
    Sort {
        /// `UID SORT`.
        uid: bool,
        /// `RETURN (..)` (ESORT): `None` for a plain SORT.
        returns: Option<Vec<SearchReturn>>,
        /// The sort criteria, most significant first.
        criteria: Vec<SortCriterion>,
        /// The charset of the search strings, as sent.
        charset: String,
        /// The search keys (all must match).
        keys: Vec<SearchKey>,
    },
    /// `CANCELUPDATE "tag"..` (RFC 5267 §4.3): end these live results. Selected.
    CancelUpdate(Vec<String>),
    /// `[UID] THREAD algorithm charset keys` (RFC 5256). Selected.
    Thread {
        /// `UID THREAD`.
        uid: bool,
        /// The algorithm.
        algorithm: ThreadAlgorithm,
        /// The charset of the search strings, as sent.
        charset: String,
        /// The search keys (all must match).
        keys: Vec<SearchKey>,
    },
    /// `[UID] FETCH set items [(modifiers)]`. Selected.
    Fetch {
        /// `UID FETCH`.
        uid: bool,
        /// Messages.
        set: SequenceSet,
        /// Items.
        items: FetchItems,
        /// CHANGEDSINCE / VANISHED.
        modifiers: FetchModifiers,
    },
    /// `[UID] STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] flags`. Selected.
    Store {
        /// `UID STORE`.
        uid: bool,
        /// Messages.
        set: SequenceSet,
        /// `UNCHANGEDSINCE n` (CONDSTORE).
        unchanged_since: Option<u64>,
        /// Replace, add or remove.
        action: StoreAction,
        /// `.SILENT`.
        silent: bool,
        /// The flags.
        flags: Vec<Flag>,
    },
    /// `[UID] COPY set mailbox`. Selected.
    Copy {
        /// `UID COPY`.
        uid: bool,
        /// Messages.
        set: SequenceSet,
        /// Destination.
        mailbox: Mailbox,
    },
    /// `[UID] MOVE set mailbox` (RFC 6851). Selected.
    Move {
        /// `UID MOVE`.
        uid: bool,
        /// Messages.
        set: SequenceSet,
        /// Destination.
        mailbox: Mailbox,
    },
    /// `ID NIL` or `ID ("name" "value" ..)` (RFC 2971). Any state.
    Id(Option<Vec<(String, Option<String>)>>),
    /// `COMPRESS algorithm` (RFC 4978 §3): the algorithm as sent (an atom; only
    /// `DEFLATE` is defined). Authenticated, Selected.
    Compress(String),
}

impl CommandBody {
    /// The command's name as it would be sent (`UID FETCH`, `SELECT`...), for logs.
    pub fn name(&self) -> &'static str {
        use CommandBody::*;
        match self {
            Capability => "CAPABILITY",
            Noop => "NOOP",
            Logout => "LOGOUT",
            StartTls => "STARTTLS",
            Authenticate { .. } => "AUTHENTICATE",
            Login { .. } => "LOGIN",
            Enable(_) => "ENABLE",
            Select { .. } => "SELECT",
            Examine { .. } => "EXAMINE",
            Create { .. } => "CREATE",
            Delete(_) => "DELETE",
            Rename { .. } => "RENAME",
            Subscribe(_) => "SUBSCRIBE",
            Unsubscribe(_) => "UNSUBSCRIBE",
            List { .. } => "LIST",
            Lsub { .. } => "LSUB",
            Namespace => "NAMESPACE",
            GetQuota(_) => "GETQUOTA",
            GetQuotaRoot(_) => "GETQUOTAROOT",
            SetQuota { .. } => "SETQUOTA",
            Status { .. } => "STATUS",
            Append { .. } => "APPEND",
            Idle => "IDLE",
            Check => "CHECK",
            Close => "CLOSE",
            Unselect => "UNSELECT",
            Expunge => "EXPUNGE",
            UidExpunge(_) => "UID EXPUNGE",
            Search { uid: false, .. } => "SEARCH",
            Search { uid: true, .. } => "UID SEARCH",
            Sort { uid: false, .. } => "SORT",
            Sort { uid: true, .. } => "UID SORT",
            CancelUpdate(_) => "CANCELUPDATE",
            Thread { uid: false, .. } => "THREAD",
            Thread { uid: true, .. } => "UID THREAD",
            Fetch { uid: false, .. } => "FETCH",
            Fetch { uid: true, .. } => "UID FETCH",
            Store { uid: false, .. } => "STORE",
            Store { uid: true, .. } => "UID STORE",
            Copy { uid: false, .. } => "COPY",
            Copy { uid: true, .. } => "UID COPY",
            Move { uid: false, .. } => "MOVE",
            Move { uid: true, .. } => "UID MOVE",
            Id(_) => "ID",
            Compress(_) => "COMPRESS",
        }
    }
}

// ---------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------

/// What kind of parse failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// No valid tag: answer `* BAD`.
    NoTag,
    /// The command name is not one we know.
    UnknownCommand,
    /// The arguments do not match the grammar.
    Syntax,
}

/// A frame that is not a valid command. Answer `tag BAD message` when `tag` is set,
/// else `* BAD message`; the session continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when one could be read.
    pub tag: Option<String>,
    /// Failure class.
    pub kind: ParseErrorKind,
    /// Short human-readable reason (safe to send to the client).
    pub message: &'static str,
    /// Byte offset in the frame where parsing failed.
    pub offset: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

// ---------------------------------------------------------------------------------
// Parser.
// ---------------------------------------------------------------------------------

/// Deepest nesting of SEARCH parentheses / NOT / OR.
const MAX_DEPTH: usize = 64;

type R<T> = Result<T, &'static str>;

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8, msg: &'static str) -> R<()> {
        if self.eat(c) { Ok(()) } else { Err(msg) }
    }
    fn sp(&mut self) -> R<()> {
        self.expect(b' ', "expected space")
    }
    fn end(&mut self) -> R<()> {
        if self.b[self.i..] == *b"\r\n" {
            self.i += 2;
            Ok(())
        } else if self.b[self.i..] == *b"\n" {
            Err("bare LF: lines end with CRLF")
        } else if self.i >= self.b.len() {
            Err("missing CRLF")
        } else {
            Err("unexpected characters at end of command")
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }
    /// `1*ATOM-CHAR`, as text.
    fn atom(&mut self) -> R<&'a str> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err("expected atom");
        }
        std::str::from_utf8(a).map_err(|_| "bad atom")
    }
    /// An atom, upper-cased (for keywords).
    fn keyword(&mut self) -> R<String> {
        Ok(self.atom()?.to_ascii_uppercase())
    }
    fn number64(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() {
            return Err("expected number");
        }
        let mut n: u64 = 0;
        for &c in d {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .ok_or("number too large")?;
        }
        if n > i64::MAX as u64 {
            return Err("number too large");
        }
        Ok(n)
    }
    fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| "number too large")
    }
    fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err("zero is not allowed here"),
            n => Ok(n),
        }
    }
    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"', "expected quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.i += 1;
                        }
                        _ => return Err("bad escape in quoted string"),
                    }
                }
                Some(b'\r' | b'\n' | 0) => return Err("bad character in quoted string"),
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
    /// `literal` (or `literal8` when `binary_ok`). Returns bytes and whether `~` was used.
    fn literal(&mut self, binary_ok: bool) -> R<(Vec<u8>, bool)> {
        let binary = binary_ok && self.eat(b'~');
        self.expect(b'{', "expected literal")?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}', "bad literal")?;
        if !self.b[self.i..].starts_with(b"\r\n") {
            return Err("literal must be followed by CRLF");
        }
        self.i += 2;
        let n = usize::try_from(n).map_err(|_| "literal too large")?;
        if self.b.len() - self.i < n {
            return Err("literal shorter than announced");
        }
        let data = self.b[self.i..self.i + n].to_vec();
        self.i += n;
        if !binary_ok && data.contains(&0) {
            return Err("NUL in literal");
        }
        Ok((data, binary))
    }
    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal(false)?.0),
            _ => Err("expected string"),
        }
    }
    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b == b']');
                if a.is_empty() {
                    return Err("expected string");
                }
                Ok(a.to_vec())
            }
        }
    }
    fn astring_utf8(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "string is not UTF-8")
    }
    fn string_utf8(&mut self) -> R<String> {
        String::from_utf8(self.string()?).map_err(|_| "string is not UTF-8")
    }
    fn nstring_utf8(&mut self) -> R<Option<String>> {
        if self.peek_word_is("NIL") {
            self.i += 3;
            return Ok(None);
        }
        self.string_utf8().map(Some)
    }
    fn peek_word_is(&self, w: &str) -> bool {
        let rest = &self.b[self.i..];
        rest.len() >= w.len()
            && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes())
            && !rest.get(w.len()).is_some_and(|&b| is_atom_char(b))
    }
    fn mailbox(&mut self) -> R<Mailbox> {
        Ok(Mailbox::new(self.astring_utf8()?))
    }
    /// `list-mailbox = 1*list-char / string`.
    fn list_mailbox(&mut self) -> R<String> {
        match self.peek() {
            Some(b'"' | b'{') => self.string_utf8(),
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || matches!(b, b'%' | b'*' | b']'));
                if a.is_empty() {
                    return Err("expected mailbox pattern");
                }
                Ok(String::from_utf8_lossy(a).into_owned())
            }
        }
    }
    fn seq_num(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Last)
        } else {
            Ok(SeqNum::Value(self.nz_number()?))
        }
    }
    fn sequence_set(&mut self) -> R<SequenceSet> {
        let mut items = Vec::new();
        loop {
            if self.eat(b'$') {
                items.push(SeqItem::Saved);
            } else {
                let a = self.seq_num()?;
                if self.eat(b':') {
                    items.push(SeqItem::Range(a, self.seq_num()?));
                } else {
                    items.push(SeqItem::One(a));
                }
            }
            if !self.eat(b',') {
                return Ok(SequenceSet(items));
            }
        }
    }
    fn flag(&mut self) -> R<Flag> {
        let start = self.i;
        self.eat(b'\\');
        self.take_while(is_atom_char);
        let s = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| "bad flag")?;
        Flag::parse(s).ok_or("bad flag")
    }
    fn flag_list(&mut self) -> R<Vec<Flag>> {
        self.expect(b'(', "expected flag list")?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }
    /// `"(" x *(SP x) ")"`, at least one element.
    fn paren_list<T>(&mut self, mut f: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        self.expect(b'(', "expected '('")?;
        let mut out = vec![f(self)?];
        while self.eat(b' ') {
            out.push(f(self)?);
        }
        self.expect(b')', "expected ')'")?;
        Ok(out)
    }
    fn month(&mut self) -> R<u8> {
        let m = self.b.get(self.i..self.i + 3).ok_or("bad month")?;
        let idx = MONTHS
            .iter()
            .position(|name| name.as_bytes().eq_ignore_ascii_case(m))
            .ok_or("bad month")?;
        self.i += 3;
        Ok(idx as u8 + 1)
    }
    fn digits(&mut self, n: usize) -> R<u16> {
        let d = self.b.get(self.i..self.i + n).ok_or("bad date")?;
        if !d.iter().all(u8::is_ascii_digit) {
            return Err("bad date");
        }
        self.i += n;
        Ok(d.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0')))
    }
    fn date_text(&mut self) -> R<Date> {
        let day = self.take_while(|b| b.is_ascii_digit());
        if day.is_empty() || day.len() > 2 {
            return Err("bad date");
        }
        let day = day.iter().fold(0u8, |a, &c| a * 10 + (c - b'0'));
        self.expect(b'-', "bad date")?;
        let month = self.month()?;
        self.expect(b'-', "bad date")?;
        let year = self.digits(4)?;
        Date::new(year, month, day).ok_or("invalid date")
    }
    /// SEARCH `date = date-text / DQUOTE date-text DQUOTE`.
    fn date(&mut self) -> R<Date> {
        if self.eat(b'"') {
            let d = self.date_text()?;
            self.expect(b'"', "bad date")?;
            Ok(d)
        } else {
            self.date_text()
        }
    }
    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE`.
    fn date_time(&mut self) -> R<DateTime> {
        self.expect(b'"', "expected date-time")?;
        self.eat(b' ');
        let date = self.date_text()?;
        self.sp()?;
        let hour = self.digits(2)? as u8;
        self.expect(b':', "bad time")?;
        let minute = self.digits(2)? as u8;
        self.expect(b':', "bad time")?;
        let second = self.digits(2)? as u8;
        self.sp()?;
        let neg = match self.peek() {
            Some(b'+') => false,
            Some(b'-') => true,
            _ => return Err("bad zone"),
        };
        self.i += 1;
        let zh = self.digits(2)?;
        let zm = self.digits(2)?;
        self.expect(b'"', "bad date-time")?;
        if hour > 23 || minute > 59 || second > 60 || zm > 59 {
            return Err("invalid time");
        }
        let z = (zh * 60 + zm) as i16;
        Ok(DateTime {
            date,
            hour,
            minute,
            second,
            zone_minutes: if neg { -z } else { z },
        })
    }

    // --- command bodies --------------------------------------------------------

    fn body(&mut self) -> R<CommandBody> {
        let name = self.keyword().map_err(|_| "expected command name")?;
        use CommandBody as C;
        Ok(match name.as_str() {
            "CAPABILITY" => C::Capability,
            "NOOP" => C::Noop,
            "LOGOUT" => C::Logout,
            "STARTTLS" => C::StartTls,
            "CHECK" => C::Check,
            "CLOSE" => C::Close,
            "UNSELECT" => C::Unselect,
            "EXPUNGE" => C::Expunge,
            "IDLE" => C::Idle,
            "NAMESPACE" => C::Namespace,
            // RFC 5267 §5: "CANCELUPDATE" 1*(SP quoted).
            "CANCELUPDATE" => {
                let mut tags = Vec::new();
                while tags.is_empty() || self.peek() == Some(b' ') {
                    self.sp()?;
                    let tag = self.quoted()?;
                    tags.push(String::from_utf8(tag).map_err(|_| "tag is not UTF-8")?);
                }
                C::CancelUpdate(tags)
            }
            // RFC 9208 §4.1-§4.3, §9 (formal syntax).
            "GETQUOTA" => {
                self.sp()?;
                C::GetQuota(self.astring_utf8()?)
            }
            "GETQUOTAROOT" => {
                self.sp()?;
                C::GetQuotaRoot(self.mailbox()?)
            }
            "SETQUOTA" => {
                self.sp()?;
                let root = self.astring_utf8()?;
                self.sp()?;
                // setquota_list = "(" [setquota_resource *(SP setquota_resource)] ")"
                let limits = if self.b.get(self.i..self.i + 2) == Some(b"()") {
                    self.i += 2;
                    Vec::new()
                } else {
                    self.paren_list(|p| {
                        let name = p.atom()?.to_ascii_uppercase();
                        p.sp()?;
                        Ok((name, p.number64()?))
                    })?
                };
                C::SetQuota { root, limits }
            }
            "COMPRESS" => {
                // RFC 4978 §5: compress = "COMPRESS" SP algorithm.
                self.sp()?;
                C::Compress(self.atom()?.to_string())
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.atom()?.to_string();
                let initial_response = if self.eat(b' ') {
                    let r = self.take_while(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
                    });
                    if r.is_empty() {
                        return Err("bad initial response");
                    }
                    Some(Secret::new(String::from_utf8_lossy(r).into_owned()))
                } else {
                    None
                };
                C::Authenticate {
                    mechanism,
                    initial_response,
                }
            }
            "LOGIN" => {
                self.sp()?;
                let username = self.astring_utf8()?;
                self.sp()?;
                let password = Secret::new(self.astring_utf8()?);
                C::Login { username, password }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.atom()?.to_string());
                }
                if caps.is_empty() {
                    return Err("ENABLE needs a capability");
                }
                C::Enable(caps)
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let params = if self.eat(b' ') {
                    self.select_params()?
                } else {
                    SelectParams::default()
                };
                if name == "SELECT" {
                    C::Select { mailbox, params }
                } else {
                    C::Examine { mailbox, params }
                }
            }
            "CREATE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let mut special_use = Vec::new();
                if self.eat(b' ') {
                    let params = self.paren_list(|p| {
                        if p.keyword()? != "USE" {
                            return Err("unknown CREATE parameter");
                        }
                        p.sp()?;
                        p.paren_list(|p| {
                            p.expect(b'\\', "expected special-use attribute")?;
                            Ok(p.atom()?.to_string())
                        })
                    })?;
                    special_use = params.into_iter().flatten().collect();
                }
                C::Create {
                    mailbox,
                    special_use,
                }
            }
            "DELETE" => {
                self.sp()?;
                C::Delete(self.mailbox()?)
            }
            "SUBSCRIBE" => {
                self.sp()?;
                C::Subscribe(self.mailbox()?)
            }
            "UNSUBSCRIBE" => {
                self.sp()?;
                C::Unsubscribe(self.mailbox()?)
            }
            "RENAME" => {
                self.sp()?;
                let from = self.mailbox()?;
                self.sp()?;
                let to = self.mailbox()?;
                C::Rename { from, to }
            }
            "LIST" => self.list()?,
            "LSUB" => {
                self.sp()?;
                let reference = self.astring_utf8()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                C::Lsub { reference, pattern }
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                self.sp()?;
                let items = self.status_items()?;
                C::Status { mailbox, items }
            }
            "APPEND" => self.append()?,
            "SEARCH" => self.search(false)?,
            "SORT" => self.sort(false)?,
            "THREAD" => self.thread(false)?,
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" | "MOVE" => self.copy_move(false, name == "MOVE")?,
            "UID" => {
                self.sp()?;
                let sub = self.keyword()?;
                match sub.as_str() {
                    "SEARCH" => self.search(true)?,
                    "SORT" => self.sort(true)?,
                    "THREAD" => self.thread(true)?,
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" | "MOVE" => self.copy_move(true, sub == "MOVE")?,
                    "EXPUNGE" => {
                        self.sp()?;
                        C::UidExpunge(self.sequence_set()?)
                    }
                    _ => return Err("unknown UID command"),
                }
            }
            "ID" => {
                self.sp()?;
                if self.peek_word_is("NIL") {
                    self.i += 3;
                    C::Id(None)
                } else {
                    self.expect(b'(', "expected ID parameter list")?;
                    let mut pairs = Vec::new();
                    if !self.eat(b')') {
                        loop {
                            let k = self.string_utf8()?;
                            self.sp()?;
                            let v = self.nstring_utf8()?;
                            pairs.push((k, v));
                            if self.eat(b')') {
                                break;
                            }
                            self.sp()?;
                        }
                    }
                    C::Id(Some(pairs))
                }
            }
            _ => return Err(UNKNOWN),
        })
    }

    fn select_params(&mut self) -> R<SelectParams> {
        let mut params = SelectParams::default();
        self.paren_list(|p| {
            match p.keyword()?.as_str() {
                "CONDSTORE" => params.condstore = true,
                "QRESYNC" => {
                    p.sp()?;
                    p.expect(b'(', "expected '('")?;
                    let uid_validity = p.nz_number()?;
                    p.sp()?;
                    let mod_seq = p.number64()?;
                    let mut known_uids = None;
                    let mut seq_match = None;
                    if p.eat(b' ') {
                        if p.peek() != Some(b'(') {
                            known_uids = Some(p.sequence_set()?);
                            if p.eat(b' ') {
                                seq_match = Some(p.seq_match()?);
                            }
                        } else {
                            seq_match = Some(p.seq_match()?);
                        }
                    }
                    p.expect(b')', "expected ')'")?;
                    params.qresync = Some(QResync {
                        uid_validity,
                        mod_seq,
                        known_uids,
                        seq_match,
                    });
                }
                _ => return Err("unknown SELECT parameter"),
            }
            Ok(())
        })?;
        Ok(params)
    }

    fn seq_match(&mut self) -> R<(SequenceSet, SequenceSet)> {
        self.expect(b'(', "expected '('")?;
        let a = self.sequence_set()?;
        self.sp()?;
        let b = self.sequence_set()?;
        self.expect(b')', "expected ')'")?;
        Ok((a, b))
    }

    fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.paren_list(|p| StatusItem::parse(&p.keyword()?).ok_or("unknown STATUS item"))
    }

    fn list(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mut selection = Vec::new();
        if self.peek() == Some(b'(') {
            self.i += 1;
            if !self.eat(b')') {
                loop {
                    selection.push(match self.keyword()?.as_str() {
                        "SUBSCRIBED" => ListSelect::Subscribed,
                        "REMOTE" => ListSelect::Remote,
                        "RECURSIVEMATCH" => ListSelect::RecursiveMatch,
                        "SPECIAL-USE" => ListSelect::SpecialUse,
                        _ => return Err("unknown LIST selection option"),
                    });
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
            }
            // RFC 5258 §3.1: RECURSIVEMATCH needs another, non-REMOTE option.
            if selection.contains(&ListSelect::RecursiveMatch)
                && !selection
                    .iter()
                    .any(|s| matches!(s, ListSelect::Subscribed | ListSelect::SpecialUse))
            {
                return Err("RECURSIVEMATCH needs another selection option");
            }
            self.sp()?;
        }
        let reference = self.astring_utf8()?;
        self.sp()?;
        let patterns = if self.peek() == Some(b'(') {
            self.paren_list(|p| p.list_mailbox())?
        } else {
            vec![self.list_mailbox()?]
        };
        let mut returns = Vec::new();
        if self.eat(b' ') {
            if self.keyword()? != "RETURN" {
                return Err("expected RETURN");
            }
            self.sp()?;
            self.expect(b'(', "expected '('")?;
            if !self.eat(b')') {
                loop {
                    returns.push(match self.keyword()?.as_str() {
                        "SUBSCRIBED" => ListReturn::Subscribed,
                        "CHILDREN" => ListReturn::Children,
                        "SPECIAL-USE" => ListReturn::SpecialUse,
                        "STATUS" => {
                            self.sp()?;
                            ListReturn::Status(self.status_items()?)
                        }
                        _ => return Err("unknown LIST return option"),
                    });
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
            }
        }
        Ok(CommandBody::List {
            selection,
            reference,
            patterns,
            returns,
        })
    }

    fn append(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut messages = Vec::new();
        while self.eat(b' ') {
            let mut flags = Vec::new();
            let mut date = None;
            if self.peek() == Some(b'(') {
                flags = self.flag_list()?;
                self.sp()?;
            }
            if self.peek() == Some(b'"') {
                date = Some(self.date_time()?);
                self.sp()?;
            }
            let (data, binary) = self.literal(true)?;
            messages.push(AppendMessage {
                flags,
                date,
                data,
                binary,
            });
        }
        if messages.is_empty() {
            return Err("APPEND needs a message");
        }
        Ok(CommandBody::Append { mailbox, messages })
    }

    /// `[RETURN (opts) SP]` of SEARCH (RFC 4731) and SORT (RFC 5267, which adds
    /// PARTIAL, UPDATE and CONTEXT to both, §5 `search-return-opt`).
    fn return_options(&mut self) -> R<Option<Vec<SearchReturn>>> {
        if !self.peek_word_is("RETURN") {
            return Ok(None);
        }
        self.i += 6;
        self.sp()?;
        self.expect(b'(', "expected '('")?;
        let mut opts = Vec::new();
        if !self.eat(b')') {
            loop {
                opts.push(match self.keyword()?.as_str() {
                    "MIN" => SearchReturn::Min,
                    "MAX" => SearchReturn::Max,
                    "ALL" => SearchReturn::All,
                    "COUNT" => SearchReturn::Count,
                    "SAVE" => SearchReturn::Save,
                    "UPDATE" => SearchReturn::Update,
                    "CONTEXT" => SearchReturn::Context,
                    "PARTIAL" => {
                        self.sp()?;
                        let low = self.nz_number()?;
                        self.expect(b':', "expected ':'")?;
                        let high = self.nz_number()?;
                        SearchReturn::Partial(low.min(high), low.max(high))
                    }
                    _ => return Err("unknown return option"),
                });
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        self.sp()?;
        Ok(Some(opts))
    }

    /// `charset 1*(SP search-key)` (RFC 5256 §5 search-criteria).
    fn charset_and_keys(&mut self) -> R<(String, Vec<SearchKey>)> {
        let charset = self.astring_utf8()?;
        self.sp()?;
        let mut keys = vec![self.search_key(0)?];
        while self.eat(b' ') {
            keys.push(self.search_key(0)?);
        }
        Ok((charset, keys))
    }

    /// RFC 5256 §5 `sort`, with RFC 5267 `[search-return-opts]` and RFC 5957 keys.
    fn sort(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let returns = self.return_options()?;
        let criteria = self.paren_list(|p| {
            let mut word = p.keyword()?;
            let reverse = word == "REVERSE";
            if reverse {
                p.sp()?;
                word = p.keyword()?;
            }
            let key = SortKey::parse(&word).ok_or("unknown sort key")?;
            Ok(SortCriterion { reverse, key })
        })?;
        if criteria.is_empty() {
            return Err("SORT needs a sort criterion");
        }
        self.sp()?;
        let (charset, keys) = self.charset_and_keys()?;
        Ok(CommandBody::Sort {
            uid,
            returns,
            criteria,
            charset,
            keys,
        })
    }

    /// RFC 5256 §5 `thread`.
    fn thread(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let algorithm = match self.keyword()?.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            "REFS" => ThreadAlgorithm::Refs,
            _ => return Err("unknown threading algorithm"),
        };
        self.sp()?;
        let (charset, keys) = self.charset_and_keys()?;
        Ok(CommandBody::Thread {
            uid,
            algorithm,
            charset,
            keys,
        })
    }

    fn search(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let returns = self.return_options()?;
        let mut charset = None;
        if self.peek_word_is("CHARSET") {
            self.i += 7;
            self.sp()?;
            charset = Some(self.astring_utf8()?);
            self.sp()?;
        }
        let mut criteria = vec![self.search_key(0)?];
        while self.eat(b' ') {
            criteria.push(self.search_key(0)?);
        }
        Ok(CommandBody::Search {
            uid,
            returns,
            charset,
            criteria,
        })
    }

    fn search_key(&mut self, depth: usize) -> R<SearchKey> {
        use SearchKey as K;
        if depth > MAX_DEPTH {
            return Err("search keys nested too deeply");
        }
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let mut keys = vec![self.search_key(depth + 1)?];
                while self.eat(b' ') {
                    keys.push(self.search_key(depth + 1)?);
                }
                self.expect(b')', "expected ')'")?;
                return Ok(K::And(keys));
            }
            Some(b'0'..=b'9' | b'*' | b'$') => return Ok(K::SequenceSet(self.sequence_set()?)),
            _ => {}
        }
        let word = self.keyword().map_err(|_| "expected search key")?;
        macro_rules! arg {
            ($e:expr) => {{
                self.sp()?;
                $e
            }};
        }
        Ok(match word.as_str() {
            "ALL" => K::All,
            "ANSWERED" => K::Answered,
            "DELETED" => K::Deleted,
            "DRAFT" => K::Draft,
            "FLAGGED" => K::Flagged,
            "NEW" => K::New,
            "OLD" => K::Old,
            "RECENT" => K::Recent,
            "SEEN" => K::Seen,
            "UNANSWERED" => K::Unanswered,
            "UNDELETED" => K::Undeleted,
            "UNDRAFT" => K::Undraft,
            "UNFLAGGED" => K::Unflagged,
            "UNSEEN" => K::Unseen,
            "BCC" => K::Bcc(arg!(self.astring()?)),
            "BODY" => K::Body(arg!(self.astring()?)),
            "CC" => K::Cc(arg!(self.astring()?)),
            "FROM" => K::From(arg!(self.astring()?)),
            "SUBJECT" => K::Subject(arg!(self.astring()?)),
            "TEXT" => K::Text(arg!(self.astring()?)),
            "TO" => K::To(arg!(self.astring()?)),
            "BEFORE" => K::Before(arg!(self.date()?)),
            "ON" => K::On(arg!(self.date()?)),
            "SINCE" => K::Since(arg!(self.date()?)),
            "SENTBEFORE" => K::SentBefore(arg!(self.date()?)),
            "SENTON" => K::SentOn(arg!(self.date()?)),
            "SENTSINCE" => K::SentSince(arg!(self.date()?)),
            "KEYWORD" => K::Keyword(arg!(self.atom()?.to_string())),
            "UNKEYWORD" => K::Unkeyword(arg!(self.atom()?.to_string())),
            "LARGER" => K::Larger(arg!(self.number64()?)),
            "SMALLER" => K::Smaller(arg!(self.number64()?)),
            "OLDER" => K::Older(arg!(self.nz_number()?)),
            "YOUNGER" => K::Younger(arg!(self.nz_number()?)),
            "UID" => K::Uid(arg!(self.sequence_set()?)),
            "HEADER" => {
                let field = arg!(self.astring_utf8()?);
                K::Header(field, arg!(self.astring()?))
            }
            "NOT" => K::Not(Box::new(arg!(self.search_key(depth + 1)?))),
            "OR" => {
                let a = arg!(self.search_key(depth + 1)?);
                let b = arg!(self.search_key(depth + 1)?);
                K::Or(Box::new(a), Box::new(b))
            }
            "MODSEQ" => {
                self.sp()?;
                let entry = if self.peek() == Some(b'"') {
                    let name = String::from_utf8(self.quoted()?).map_err(|_| "bad entry name")?;
                    // entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE.
                    if !is_entry_flag_name(&name) {
                        return Err("bad MODSEQ entry name");
                    }
                    self.sp()?;
                    let ty = match self.keyword()?.as_str() {
                        "PRIV" => EntryType::Private,
                        "SHARED" => EntryType::Shared,
                        "ALL" => EntryType::All,
                        _ => return Err("bad MODSEQ entry type"),
                    };
                    self.sp()?;
                    Some((name, ty))
                } else {
                    None
                };
                K::ModSeq {
                    entry,
                    modseq: self.number64()?,
                }
            }
            _ => return Err("unknown search key"),
        })
    }

    fn fetch(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let items = if self.peek() == Some(b'(') {
            FetchItems::Attrs(self.paren_list(|p| p.fetch_attr())?)
        } else if self.peek_word_is("ALL") {
            self.i += 3;
            FetchItems::All
        } else if self.peek_word_is("FAST") {
            self.i += 4;
            FetchItems::Fast
        } else if self.peek_word_is("FULL") {
            self.i += 4;
            FetchItems::Full
        } else {
            FetchItems::Attrs(vec![self.fetch_attr()?])
        };
        let mut modifiers = FetchModifiers::default();
        if self.eat(b' ') {
            self.paren_list(|p| {
                match p.keyword()?.as_str() {
                    "CHANGEDSINCE" => {
                        p.sp()?;
                        modifiers.changed_since = Some(p.number64()?);
                    }
                    "VANISHED" => modifiers.vanished = true,
                    _ => return Err("unknown FETCH modifier"),
                }
                Ok(())
            })?;
        }
        Ok(CommandBody::Fetch {
            uid,
            set,
            items,
            modifiers,
        })
    }

    fn fetch_attr(&mut self) -> R<FetchAttr> {
        use FetchAttr as F;
        let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        Ok(match name.as_str() {
            "ENVELOPE" => F::Envelope,
            "FLAGS" => F::Flags,
            "INTERNALDATE" => F::InternalDate,
            "RFC822" => F::Rfc822,
            "RFC822.HEADER" => F::Rfc822Header,
            "RFC822.SIZE" => F::Rfc822Size,
            "RFC822.TEXT" => F::Rfc822Text,
            "BODYSTRUCTURE" => F::BodyStructure,
            "UID" => F::Uid,
            "MODSEQ" => F::ModSeq,
            "BODY" if self.peek() != Some(b'[') => F::Body,
            "BODY" | "BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                F::BodySection {
                    peek: name == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            "BINARY" | "BINARY.PEEK" => {
                let part = self.binary_section()?;
                let partial = self.partial()?;
                F::Binary {
                    peek: name == "BINARY.PEEK",
                    part,
                    partial,
                }
            }
            "BINARY.SIZE" => F::BinarySize {
                part: self.binary_section()?,
            },
            _ => return Err("unknown FETCH item"),
        })
    }

    fn part_numbers(&mut self) -> R<Vec<u32>> {
        let mut part = Vec::new();
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            part.push(self.nz_number()?);
            if !(self.peek() == Some(b'.')
                && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit))
            {
                break;
            }
            self.i += 1;
        }
        Ok(part)
    }

    fn binary_section(&mut self) -> R<Vec<u32>> {
        self.expect(b'[', "expected '['")?;
        let part = self.part_numbers()?;
        self.expect(b']', "expected ']'")?;
        Ok(part)
    }

    fn section(&mut self) -> R<Section> {
        self.expect(b'[', "expected '['")?;
        let part = self.part_numbers()?;
        if !part.is_empty() && !self.eat(b'.') {
            self.expect(b']', "expected ']'")?;
            return Ok(Section { part, text: None });
        }
        if part.is_empty() && self.eat(b']') {
            return Ok(Section::default());
        }
        let word = self.take_while(|b| b.is_ascii_alphabetic() || b == b'.');
        let word = String::from_utf8_lossy(word).to_ascii_uppercase();
        let text = match word.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                self.sp()?;
                let fields = self.paren_list(|p| p.astring_utf8())?;
                if word == "HEADER.FIELDS" {
                    SectionText::HeaderFields(fields)
                } else {
                    SectionText::HeaderFieldsNot(fields)
                }
            }
            _ => return Err("bad section"),
        };
        self.expect(b']', "expected ']'")?;
        Ok(Section {
            part,
            text: Some(text),
        })
    }

    fn partial(&mut self) -> R<Option<Partial>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let offset = self.number64()?;
        self.expect(b'.', "expected '.' in partial")?;
        let length = self.number64()?;
        if length == 0 {
            return Err("zero-length partial");
        }
        self.expect(b'>', "expected '>'")?;
        Ok(Some(Partial { offset, length }))
    }

    fn store(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            self.paren_list(|p| {
                if p.keyword()? != "UNCHANGEDSINCE" {
                    return Err("unknown STORE modifier");
                }
                p.sp()?;
                unchanged_since = Some(p.number64()?);
                Ok(())
            })?;
            self.sp()?;
        }
        let action = if self.eat(b'+') {
            StoreAction::Add
        } else if self.eat(b'-') {
            StoreAction::Remove
        } else {
            StoreAction::Replace
        };
        let silent = match self.keyword()?.as_str() {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err("expected FLAGS"),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut flags = vec![self.flag()?];
            while self.eat(b' ') {
                flags.push(self.flag()?);
            }
            flags
        };
        Ok(CommandBody::Store {
            uid,
            set,
            unchanged_since,
            action,
            silent,
            flags,
        })
    }

    fn copy_move(&mut self, uid: bool, is_move: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.sequence_set()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        Ok(if is_move {
            CommandBody::Move { uid, set, mailbox }
        } else {
            CommandBody::Copy { uid, set, mailbox }
        })
    }
}

const UNKNOWN: &str = "unknown command";

/// Parses one frame (as produced by the framer: the line, CRLF, and any literals) into
/// a [`Command`]. The whole frame must be consumed.
pub fn parse_command(frame: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser { b: frame, i: 0 };
    let tag = p.take_while(is_tag_char);
    if tag.is_empty() || p.peek() != Some(b' ') {
        return Err(ParseError {
            tag: None,
            kind: ParseErrorKind::NoTag,
            message: "missing or invalid tag",
            offset: p.i,
        });
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    p.i += 1;
    let res = p.body().and_then(|body| p.end().map(|()| body));
    match res {
        Ok(body) => Ok(Command { tag, body }),
        Err(message) => Err(ParseError {
            tag: Some(tag),
            kind: if message == UNKNOWN || message == "unknown UID command" {
                ParseErrorKind::UnknownCommand
            } else {
                ParseErrorKind::Syntax
            },
            message,
            offset: p.i,
        }),
    }
}

/// Parses the line that ends IDLE (RFC 2177): `DONE` CRLF, case-insensitive.
pub fn parse_idle_done(frame: &[u8]) -> Result<(), ParseError> {
    if frame.eq_ignore_ascii_case(b"DONE\r\n") {
        Ok(())
    } else {
        Err(ParseError {
            tag: None,
            kind: ParseErrorKind::Syntax,
            message: "expected DONE",
            offset: 0,
        })
    }
}

// ---------------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------------

/// How the encoder writes literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralStyle {
    /// `{n}`: server responses; or client commands split into chunks at each literal.
    Sync,
    /// `{n+}` (client commands to a LITERAL+ server).
    NonSync,
}

/// Longest string the encoders send quoted; longer ones go as literals.
const MAX_QUOTED: usize = 1000;

/// Builds wire bytes: atoms, numbers, strings chosen as atom/quoted/literal.
/// Shared by the command and response encoders.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    /// With `LiteralStyle::Sync` for a client, finished chunks that end in `{n}\r\n`.
    pub(crate) chunks: Vec<Vec<u8>>,
    style: LiteralStyle,
    split: bool,
}

impl Writer {
    pub(crate) fn new(style: LiteralStyle, split: bool) -> Self {
        Writer {
            buf: Vec::new(),
            chunks: Vec::new(),
            style,
            split,
        }
    }
    pub(crate) fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    pub(crate) fn s(&mut self, s: &str) -> &mut Self {
        self.raw(s.as_bytes())
    }
    pub(crate) fn sp(&mut self) -> &mut Self {
        self.raw(b" ")
    }
    pub(crate) fn num(&mut self, n: impl fmt::Display) -> &mut Self {
        let s = n.to_string();
        self.raw(s.as_bytes())
    }
    pub(crate) fn literal(&mut self, data: &[u8], binary: bool) -> &mut Self {
        if binary {
            self.raw(b"~");
        }
        let plus = if self.style == LiteralStyle::NonSync {
            "+"
        } else {
            ""
        };
        let head = format!("{{{}{plus}}}\r\n", data.len());
        self.raw(head.as_bytes());
        if self.split {
            self.chunks.push(std::mem::take(&mut self.buf));
        }
        self.raw(data)
    }
    pub(crate) fn quoted(&mut self, data: &[u8]) -> &mut Self {
        self.buf.push(b'"');
        for &c in data {
            if c == b'"' || c == b'\\' {
                self.buf.push(b'\\');
            }
            self.buf.push(c);
        }
        self.raw(b"\"")
    }
    /// `string`: quoted when safe (7-bit, no CR/LF/NUL, short), else a literal.
    pub(crate) fn string(&mut self, data: &[u8]) -> &mut Self {
        if data.len() <= MAX_QUOTED
            && data
                .iter()
                .all(|&c| (1..0x80).contains(&c) && c != b'\r' && c != b'\n')
        {
            self.quoted(data)
        } else {
            self.literal(data, false)
        }
    }
    /// `astring`: an atom when possible (and not `NIL`), else a string.
    pub(crate) fn astring(&mut self, data: &[u8]) -> &mut Self {
        if !data.is_empty()
            && data.iter().all(|&b| is_atom_char(b) || b == b']')
            && !data.eq_ignore_ascii_case(b"NIL")
        {
            self.raw(data)
        } else {
            self.string(data)
        }
    }
    pub(crate) fn nstring(&mut self, data: Option<&[u8]>) -> &mut Self {
        match data {
            Some(d) => self.string(d),
            None => self.raw(b"NIL"),
        }
    }
    /// `list-mailbox`: wildcards may stay bare.
    pub(crate) fn list_mailbox(&mut self, s: &str) -> &mut Self {
        let b = s.as_bytes();
        if !b.is_empty()
            && b.iter()
                .all(|&c| is_atom_char(c) || matches!(c, b'%' | b'*' | b']'))
        {
            self.raw(b)
        } else {
            self.string(b)
        }
    }
    pub(crate) fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.raw(b"(");
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            f(self, it);
        }
        self.raw(b")")
    }
    pub(crate) fn seq_set(&mut self, set: &SequenceSet) -> &mut Self {
        let n = |w: &mut Self, s: SeqNum| match s {
            SeqNum::Value(v) => {
                w.num(v);
            }
            SeqNum::Last => {
                w.raw(b"*");
            }
        };
        for (i, item) in set.0.iter().enumerate() {
            if i > 0 {
                self.raw(b",");
            }
            match *item {
                SeqItem::One(a) => n(self, a),
                SeqItem::Range(a, b) => {
                    n(self, a);
                    self.raw(b":");
                    n(self, b);
                }
                SeqItem::Saved => {
                    self.raw(b"$");
                }
            }
        }
        self
    }
    pub(crate) fn flags(&mut self, flags: &[Flag]) -> &mut Self {
        self.list(flags, |w, f| {
            w.s(&f.to_string());
        })
    }
    pub(crate) fn section(&mut self, s: &Section) -> &mut Self {
        self.raw(b"[");
        let part: Vec<String> = s.part.iter().map(u32::to_string).collect();
        self.s(&part.join("."));
        if let Some(t) = &s.text {
            if !s.part.is_empty() {
                self.raw(b".");
            }
            match t {
                SectionText::Header => {
                    self.s("HEADER");
                }
                SectionText::Text => {
                    self.s("TEXT");
                }
                SectionText::Mime => {
                    self.s("MIME");
                }
                SectionText::HeaderFields(f) | SectionText::HeaderFieldsNot(f) => {
                    self.s(if matches!(t, SectionText::HeaderFields(_)) {
                        "HEADER.FIELDS "
                    } else {
                        "HEADER.FIELDS.NOT "
                    });
                    self.list(f, |w, h| {
                        w.astring(h.as_bytes());
                    });
                }
            }
        }
        self.raw(b"]")
    }
    pub(crate) fn part(&mut self, part: &[u32]) -> &mut Self {
        let p: Vec<String> = part.iter().map(u32::to_string).collect();
        self.raw(b"[").s(&p.join(".")).raw(b"]")
    }
    pub(crate) fn status_items(&mut self, items: &[StatusItem]) -> &mut Self {
        self.list(items, |w, i| {
            w.s(i.name());
        })
    }
    pub(crate) fn mailbox(&mut self, m: &Mailbox) -> &mut Self {
        self.astring(m.as_str().as_bytes())
    }
}

impl Command {
    /// Encodes the command with non-synchronizing literals `{n+}` (the peer must
    /// advertise LITERAL+, or LITERAL- with literals up to 4096 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(LiteralStyle::NonSync, false);
        self.write(&mut w);
        w.buf
    }

    /// Encodes with synchronizing literals, split into chunks: send a chunk, and if it
    /// ends in `{n}\r\n` wait for the server's `+` before sending the next one.
    pub fn encode_sync(&self) -> Vec<Vec<u8>> {
        let mut w = Writer::new(LiteralStyle::Sync, true);
        self.write(&mut w);
        let mut chunks = w.chunks;
        chunks.push(w.buf);
        chunks
    }

    fn write(&self, w: &mut Writer) {
        use CommandBody as C;
        w.s(&self.tag).sp().s(self.body.name());
        match &self.body {
            C::Capability
            | C::Noop
            | C::Logout
            | C::StartTls
            | C::Namespace
            | C::Idle
            | C::Check
            | C::Close
            | C::Unselect
            | C::Expunge => {}
            C::CancelUpdate(tags) => {
                for t in tags {
                    w.sp().quoted(t.as_bytes());
                }
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } => {
                w.sp().s(mechanism);
                if let Some(r) = initial_response {
                    w.sp().s(r.expose());
                }
            }
            C::Login { username, password } => {
                w.sp()
                    .astring(username.as_bytes())
                    .sp()
                    .astring(password.expose().as_bytes());
            }
            C::Enable(caps) => {
                for c in caps {
                    w.sp().s(c);
                }
            }
            C::Compress(algorithm) => {
                w.sp().s(algorithm);
            }
            C::Select { mailbox, params } | C::Examine { mailbox, params } => {
                w.sp().mailbox(mailbox);
                if params.condstore || params.qresync.is_some() {
                    w.s(" (");
                    if params.condstore {
                        w.s("CONDSTORE");
                    }
                    if let Some(q) = &params.qresync {
                        if params.condstore {
                            w.sp();
                        }
                        w.s("QRESYNC (").num(q.uid_validity).sp().num(q.mod_seq);
                        if let Some(k) = &q.known_uids {
                            w.sp().seq_set(k);
                        }
                        if let Some((a, b)) = &q.seq_match {
                            w.s(" (").seq_set(a).sp().seq_set(b).s(")");
                        }
                        w.s(")");
                    }
                    w.s(")");
                }
            }
            C::Create {
                mailbox,
                special_use,
            } => {
                w.sp().mailbox(mailbox);
                if !special_use.is_empty() {
                    w.s(" (USE ").list(special_use, |w, a| {
                        w.s("\\").s(a);
                    });
                    w.s(")");
                }
            }
            C::Delete(m) | C::Subscribe(m) | C::Unsubscribe(m) => {
                w.sp().mailbox(m);
            }
            C::Rename { from, to } => {
                w.sp().mailbox(from).sp().mailbox(to);
            }
            C::List {
                selection,
                reference,
                patterns,
                returns,
            } => {
                w.sp();
                if !selection.is_empty() {
                    w.list(selection, |w, s| {
                        w.s(match s {
                            ListSelect::Subscribed => "SUBSCRIBED",
                            ListSelect::Remote => "REMOTE",
                            ListSelect::RecursiveMatch => "RECURSIVEMATCH",
                            ListSelect::SpecialUse => "SPECIAL-USE",
                        });
                    })
                    .sp();
                }
                w.astring_or_empty(reference).sp();
                if patterns.len() == 1 {
                    w.list_mailbox(&patterns[0]);
                } else {
                    w.list(patterns, |w, p| {
                        w.list_mailbox(p);
                    });
                }
                if !returns.is_empty() {
                    w.s(" RETURN ").list(returns, |w, r| match r {
                        ListReturn::Subscribed => {
                            w.s("SUBSCRIBED");
                        }
                        ListReturn::Children => {
                            w.s("CHILDREN");
                        }
                        ListReturn::SpecialUse => {
                            w.s("SPECIAL-USE");
                        }
                        ListReturn::Status(items) => {
                            w.s("STATUS ").status_items(items);
                        }
                    });
                }
            }
            C::Lsub { reference, pattern } => {
                w.sp()
                    .astring_or_empty(reference)
                    .sp()
                    .list_mailbox(pattern);
            }
            C::Status { mailbox, items } => {
                w.sp().mailbox(mailbox).sp().status_items(items);
            }
            C::GetQuota(root) => {
                w.sp().astring(root.as_bytes());
            }
            C::GetQuotaRoot(mailbox) => {
                w.sp().mailbox(mailbox);
            }
            C::SetQuota { root, limits } => {
                w.sp().astring(root.as_bytes()).s(" (");
                for (i, (name, limit)) in limits.iter().enumerate() {
                    if i > 0 {
                        w.sp();
                    }
                    w.s(name).sp().num(*limit);
                }
                w.s(")");
            }
            C::Append { mailbox, messages } => {
                w.sp().mailbox(mailbox);
                for m in messages {
                    w.sp();
                    if !m.flags.is_empty() {
                        w.flags(&m.flags).sp();
                    }
                    if let Some(d) = &m.date {
                        w.raw(b"\"").s(&d.to_string()).raw(b"\" ");
                    }
                    w.literal(&m.data, m.binary);
                }
            }
            C::UidExpunge(set) => {
                w.sp().seq_set(set);
            }
            C::Search {
                returns,
                charset,
                criteria,
                ..
            } => {
                if let Some(r) = returns {
                    w.s(" ").return_options(r);
                }
                if let Some(c) = charset {
                    w.s(" CHARSET ").astring(c.as_bytes());
                }
                for k in criteria {
                    w.sp().search_key(k);
                }
            }
            C::Sort {
                returns,
                criteria,
                charset,
                keys,
                ..
            } => {
                if let Some(r) = returns {
                    w.s(" ").return_options(r);
                }
                w.sp().list(criteria, |w, c| {
                    if c.reverse {
                        w.s("REVERSE ");
                    }
                    w.s(c.key.name());
                });
                w.sp().astring(charset.as_bytes());
                for k in keys {
                    w.sp().search_key(k);
                }
            }
            C::Thread {
                algorithm,
                charset,
                keys,
                ..
            } => {
                w.sp().s(algorithm.name()).sp().astring(charset.as_bytes());
                for k in keys {
                    w.sp().search_key(k);
                }
            }
            C::Fetch {
                set,
                items,
                modifiers,
                ..
            } => {
                w.sp().seq_set(set).sp();
                match items {
                    FetchItems::All => {
                        w.s("ALL");
                    }
                    FetchItems::Fast => {
                        w.s("FAST");
                    }
                    FetchItems::Full => {
                        w.s("FULL");
                    }
                    FetchItems::Attrs(a) if a.len() == 1 => {
                        w.fetch_attr(&a[0]);
                    }
                    FetchItems::Attrs(a) => {
                        w.list(a, |w, a| {
                            w.fetch_attr(a);
                        });
                    }
                }
                if modifiers.changed_since.is_some() || modifiers.vanished {
                    w.s(" (");
                    if let Some(c) = modifiers.changed_since {
                        w.s("CHANGEDSINCE ").num(c);
                        if modifiers.vanished {
                            w.sp();
                        }
                    }
                    if modifiers.vanished {
                        w.s("VANISHED");
                    }
                    w.s(")");
                }
            }
            C::Store {
                set,
                unchanged_since,
                action,
                silent,
                flags,
                ..
            } => {
                w.sp().seq_set(set).sp();
                if let Some(u) = unchanged_since {
                    w.s("(UNCHANGEDSINCE ").num(u).s(") ");
                }
                w.s(match action {
                    StoreAction::Replace => "",
                    StoreAction::Add => "+",
                    StoreAction::Remove => "-",
                });
                w.s(if *silent { "FLAGS.SILENT " } else { "FLAGS " })
                    .flags(flags);
            }
            C::Copy { set, mailbox, .. } | C::Move { set, mailbox, .. } => {
                w.sp().seq_set(set).sp().mailbox(mailbox);
            }
            C::Id(None) => {
                w.s(" NIL");
            }
            C::Id(Some(pairs)) => {
                w.sp().list(pairs, |w, (k, v)| {
                    w.string(k.as_bytes())
                        .sp()
                        .nstring(v.as_deref().map(str::as_bytes));
                });
            }
        }
        w.raw(b"\r\n");
    }
}

impl Writer {
    fn return_options(&mut self, r: &[SearchReturn]) -> &mut Self {
        self.s("RETURN ").list(r, |w, o| {
            match o {
                SearchReturn::Min => w.s("MIN"),
                SearchReturn::Max => w.s("MAX"),
                SearchReturn::All => w.s("ALL"),
                SearchReturn::Count => w.s("COUNT"),
                SearchReturn::Save => w.s("SAVE"),
                SearchReturn::Partial(a, b) => w.s("PARTIAL ").num(a).s(":").num(b),
                SearchReturn::Update => w.s("UPDATE"),
                SearchReturn::Context => w.s("CONTEXT"),
            };
        })
    }

    fn astring_or_empty(&mut self, s: &str) -> &mut Self {
        self.astring(s.as_bytes())
    }

    fn fetch_attr(&mut self, a: &FetchAttr) -> &mut Self {
        use FetchAttr as F;
        let partial = |w: &mut Self, p: &Option<Partial>| {
            if let Some(p) = p {
                w.s(&format!("<{}.{}>", p.offset, p.length));
            }
        };
        match a {
            F::Envelope => self.s("ENVELOPE"),
            F::Flags => self.s("FLAGS"),
            F::InternalDate => self.s("INTERNALDATE"),
            F::Rfc822 => self.s("RFC822"),
            F::Rfc822Header => self.s("RFC822.HEADER"),
            F::Rfc822Size => self.s("RFC822.SIZE"),
            F::Rfc822Text => self.s("RFC822.TEXT"),
            F::Body => self.s("BODY"),
            F::BodyStructure => self.s("BODYSTRUCTURE"),
            F::Uid => self.s("UID"),
            F::ModSeq => self.s("MODSEQ"),
            F::BodySection {
                peek,
                section,
                partial: p,
            } => {
                self.s(if *peek { "BODY.PEEK" } else { "BODY" })
                    .section(section);
                partial(self, p);
                self
            }
            F::Binary {
                peek,
                part,
                partial: p,
            } => {
                self.s(if *peek { "BINARY.PEEK" } else { "BINARY" })
                    .part(part);
                partial(self, p);
                self
            }
            F::BinarySize { part } => self.s("BINARY.SIZE").part(part),
        }
    }

    fn search_key(&mut self, k: &SearchKey) -> &mut Self {
        use SearchKey as K;
        let simple = match k {
            K::All => "ALL",
            K::Answered => "ANSWERED",
            K::Deleted => "DELETED",
            K::Draft => "DRAFT",
            K::Flagged => "FLAGGED",
            K::New => "NEW",
            K::Old => "OLD",
            K::Recent => "RECENT",
            K::Seen => "SEEN",
            K::Unanswered => "UNANSWERED",
            K::Undeleted => "UNDELETED",
            K::Undraft => "UNDRAFT",
            K::Unflagged => "UNFLAGGED",
            K::Unseen => "UNSEEN",
            _ => "",
        };
        if !simple.is_empty() {
            return self.s(simple);
        }
        match k {
            K::Bcc(s) => self.s("BCC ").astring(s),
            K::Body(s) => self.s("BODY ").astring(s),
            K::Cc(s) => self.s("CC ").astring(s),
            K::From(s) => self.s("FROM ").astring(s),
            K::Subject(s) => self.s("SUBJECT ").astring(s),
            K::Text(s) => self.s("TEXT ").astring(s),
            K::To(s) => self.s("TO ").astring(s),
            K::Header(f, v) => self.s("HEADER ").astring(f.as_bytes()).sp().astring(v),
            K::Before(d) => self.s("BEFORE ").s(&d.to_string()),
            K::On(d) => self.s("ON ").s(&d.to_string()),
            K::Since(d) => self.s("SINCE ").s(&d.to_string()),
            K::SentBefore(d) => self.s("SENTBEFORE ").s(&d.to_string()),
            K::SentOn(d) => self.s("SENTON ").s(&d.to_string()),
            K::SentSince(d) => self.s("SENTSINCE ").s(&d.to_string()),
            K::Keyword(f) => self.s("KEYWORD ").s(f),
            K::Unkeyword(f) => self.s("UNKEYWORD ").s(f),
            K::Larger(n) => self.s("LARGER ").num(n),
            K::Smaller(n) => self.s("SMALLER ").num(n),
            K::Older(n) => self.s("OLDER ").num(n),
            K::Younger(n) => self.s("YOUNGER ").num(n),
            K::Uid(set) => self.s("UID ").seq_set(set),
            K::SequenceSet(set) => self.seq_set(set),
            K::Not(k) => self.s("NOT ").search_key(k),
            K::Or(a, b) => self.s("OR ").search_key(a).sp().search_key(b),
            K::And(keys) => self.list(keys, |w, k| {
                w.search_key(k);
            }),
            K::ModSeq { entry, modseq } => {
                self.s("MODSEQ ");
                if let Some((name, ty)) = entry {
                    self.quoted(name.as_bytes()).sp().s(match ty {
                        EntryType::Private => "priv",
                        EntryType::Shared => "shared",
                        EntryType::All => "all",
                    });
                    self.sp();
                }
                self.num(modseq)
            }
            _ => self,
        }
    }
}

/// RFC 7162 §3.1.5 / §7: `entry-flag-name = "/flags/" attr-flag`, where attr-flag is
/// a system flag (`\Seen`...) or a keyword (an atom).
fn is_entry_flag_name(name: &str) -> bool {
    let Some(flag) = name
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("/flags/"))
        .and_then(|_| name.get(7..))
    else {
        return false;
    };
    let atom = flag.strip_prefix('\\').unwrap_or(flag);
    !atom.is_empty() && atom.bytes().all(is_atom_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandBody as C;

    fn cmd(tag: &str, body: CommandBody) -> Command {
        Command {
            tag: tag.to_string(),
            body,
        }
    }
    fn mb(s: &str) -> Mailbox {
        Mailbox::new(s)
    }
    fn set(s: &str) -> SequenceSet {
        let line = format!("t UID EXPUNGE {s}\r\n");
        match parse_command(line.as_bytes()).unwrap().body {
            C::UidExpunge(s) => s,
            _ => unreachable!(),
        }
    }
    fn search(criteria: Vec<SearchKey>) -> CommandBody {
        C::Search {
            uid: false,
            returns: None,
            charset: None,
            criteria,
        }
    }
    fn fetch(set_s: &str, attrs: Vec<FetchAttr>) -> CommandBody {
        C::Fetch {
            uid: false,
            set: set(set_s),
            items: FetchItems::Attrs(attrs),
            modifiers: FetchModifiers::default(),
        }
    }
    fn d(year: u16, month: u8, day: u8) -> Date {
        Date::new(year, month, day).unwrap()
    }

    /// Decodes, checks the expected value, then encodes and decodes again.
    fn kat(input: &[u8], want: Command) {
        let got = parse_command(input)
            .unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(input)));
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        round_trip(&got);
    }

    fn round_trip(c: &Command) {
        let enc = c.encode();
        let again = parse_command(&enc)
            .unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(&enc)));
        assert_eq!(&again, c, "{:?}", String::from_utf8_lossy(&enc));
        assert_eq!(again.encode(), enc);
        // The chunked sync form concatenates to a parseable frame too.
        let sync = c.encode_sync().concat();
        assert_eq!(&parse_command(&sync).unwrap(), c);
    }

    #[test]
    fn any_state_and_not_authenticated_commands() {
        kat(b"a001 CAPABILITY\r\n", cmd("a001", C::Capability));
        kat(b"a002 noop\r\n", cmd("a002", C::Noop));
        kat(b"A023 LOGOUT\r\n", cmd("A023", C::Logout));
        kat(b"a StartTLS\r\n", cmd("a", C::StartTls));
        kat(
            b"a001 LOGIN SMITH SESAME\r\n",
            cmd(
                "a001",
                C::Login {
                    username: "SMITH".into(),
                    password: Secret::new("SESAME".into()),
                },
            ),
        );
        kat(
            b"a LOGIN \"fred@x.org\" {11}\r\np\"a ss\\w{r}\r\n",
            cmd(
                "a",
                C::Login {
                    username: "fred@x.org".into(),
                    password: Secret::new("p\"a ss\\w{r}".into()),
                },
            ),
        );
        kat(
            b"a LOGIN \"\" \"\\\\\\\"\"\r\n",
            cmd(
                "a",
                C::Login {
                    username: "".into(),
                    password: Secret::new("\\\"".into()),
                },
            ),
        );
        kat(
            b"A001 AUTHENTICATE GSSAPI\r\n",
            cmd(
                "A001",
                C::Authenticate {
                    mechanism: "GSSAPI".into(),
                    initial_response: None,
                },
            ),
        );
        kat(
            b"a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
            cmd(
                "a",
                C::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial_response: Some(Secret::new("dGVzdAB0ZXN0AHRlc3Q=".into())),
                },
            ),
        );
        kat(
            b"a AUTHENTICATE EXTERNAL =\r\n",
            cmd(
                "a",
                C::Authenticate {
                    mechanism: "EXTERNAL".into(),
                    initial_response: Some(Secret::new("=".into())),
                },
            ),
        );
        kat(
            b"t1 ENABLE CONDSTORE QRESYNC UTF8=ACCEPT\r\n",
            cmd(
                "t1",
                C::Enable(vec![
                    "CONDSTORE".into(),
                    "QRESYNC".into(),
                    "UTF8=ACCEPT".into(),
                ]),
            ),
        );
        kat(b"a023 ID NIL\r\n", cmd("a023", C::Id(None)));
        kat(
            b"a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" NIL)\r\n",
            cmd(
                "a023",
                C::Id(Some(vec![
                    ("name".into(), Some("sodr".into())),
                    ("version".into(), Some("19.34".into())),
                    ("vendor".into(), None),
                ])),
            ),
        );
        kat(b"a ID ()\r\n", cmd("a", C::Id(Some(vec![]))));
    }

    #[test]
    fn mailbox_commands() {
        kat(
            b"A142 SELECT INBOX\r\n",
            cmd(
                "A142",
                C::Select {
                    mailbox: mb("INBOX"),
                    params: SelectParams::default(),
                },
            ),
        );
        let sel = parse_command(b"a select inbox\r\n").unwrap();
        assert!(
            matches!(sel.body, C::Select { ref mailbox, .. } if mailbox.is_inbox() && mailbox.as_str() == "INBOX")
        );
        kat(
            b"A932 EXAMINE blurdybloop (CONDSTORE)\r\n",
            cmd(
                "A932",
                C::Examine {
                    mailbox: mb("blurdybloop"),
                    params: SelectParams {
                        condstore: true,
                        qresync: None,
                    },
                },
            ),
        );
        // RFC 7162 §3.2.5.2 example.
        kat(
            b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
            cmd(
                "A02",
                C::Select {
                    mailbox: mb("INBOX"),
                    params: SelectParams {
                        condstore: false,
                        qresync: Some(QResync {
                            uid_validity: 67890007,
                            mod_seq: 20050715194045000,
                            known_uids: Some(set("41,43:211,214:541")),
                            seq_match: None,
                        }),
                    },
                },
            ),
        );
        kat(
            b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))\r\n",
            cmd(
                "B04",
                C::Select {
                    mailbox: mb("INBOX"),
                    params: SelectParams {
                        condstore: false,
                        qresync: Some(QResync {
                            uid_validity: 67890007,
                            mod_seq: 90060115194045000,
                            known_uids: Some(set("1:29997")),
                            seq_match: Some((
                                set("5000,7500,9000,9990:9999"),
                                set("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997"),
                            )),
                        }),
                    },
                },
            ),
        );
        kat(
            b"a SELECT x (CONDSTORE QRESYNC (1 2))\r\n",
            cmd(
                "a",
                C::Select {
                    mailbox: mb("x"),
                    params: SelectParams {
                        condstore: true,
                        qresync: Some(QResync {
                            uid_validity: 1,
                            mod_seq: 2,
                            known_uids: None,
                            seq_match: None,
                        }),
                    },
                },
            ),
        );
        kat(
            b"A003 CREATE owatagusiam/\r\n",
            cmd(
                "A003",
                C::Create {
                    mailbox: mb("owatagusiam/"),
                    special_use: vec![],
                },
            ),
        );
        kat(
            b"t1 CREATE \"Important Messages\" (USE (\\Important \\Flagged))\r\n",
            cmd(
                "t1",
                C::Create {
                    mailbox: mb("Important Messages"),
                    special_use: vec!["Important".into(), "Flagged".into()],
                },
            ),
        );
        kat(
            b"A683 DELETE blurdybloop\r\n",
            cmd("A683", C::Delete(mb("blurdybloop"))),
        );
        kat(
            b"A683 RENAME blurdybloop sarasoop\r\n",
            cmd(
                "A683",
                C::Rename {
                    from: mb("blurdybloop"),
                    to: mb("sarasoop"),
                },
            ),
        );
        kat(
            b"A002 SUBSCRIBE #news.comp.mail.mime\r\n",
            cmd("A002", C::Subscribe(mb("#news.comp.mail.mime"))),
        );
        kat(
            b"A002 UNSUBSCRIBE \"a b\"\r\n",
            cmd("A002", C::Unsubscribe(mb("a b"))),
        );
        kat(b"A002 NAMESPACE\r\n", cmd("A002", C::Namespace));
        // RFC 9208 §4.1-§4.3 examples.
        kat(
            b"G0001 GETQUOTA \"!partition/sda4\"\r\n",
            cmd("G0001", C::GetQuota("!partition/sda4".into())),
        );
        kat(
            b"A003 GETQUOTAROOT INBOX\r\n",
            cmd("A003", C::GetQuotaRoot(mb("INBOX"))),
        );
        kat(
            b"S0000 SETQUOTA \"#user/alice\" (STORAGE 510 MESSAGE 3)\r\n",
            cmd(
                "S0000",
                C::SetQuota {
                    root: "#user/alice".into(),
                    limits: vec![("STORAGE".into(), 510), ("MESSAGE".into(), 3)],
                },
            ),
        );
        kat(
            b"S0001 SETQUOTA \"\" ()\r\n",
            cmd(
                "S0001",
                C::SetQuota {
                    root: String::new(),
                    limits: vec![],
                },
            ),
        );
        kat(
            b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
            cmd(
                "A042",
                C::Status {
                    mailbox: mb("blurdybloop"),
                    items: vec![StatusItem::UidNext, StatusItem::Messages],
                },
            ),
        );
        kat(
            b"a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT)\r\n",
            cmd(
                "a",
                C::Status {
                    mailbox: mb("INBOX"),
                    items: vec![
                        StatusItem::Messages,
                        StatusItem::UidNext,
                        StatusItem::UidValidity,
                        StatusItem::Unseen,
                        StatusItem::Deleted,
                        StatusItem::Size,
                        StatusItem::Recent,
                        StatusItem::HighestModSeq,
                        StatusItem::AppendLimit,
                    ],
                },
            ),
        );
        // UTF-8 mailbox names (IMAP4rev2) are kept; so is modified UTF-7.
        kat(
            "a SELECT \"Entwürfe\"\r\n".as_bytes(),
            cmd(
                "a",
                C::Select {
                    mailbox: mb("Entwürfe"),
                    params: SelectParams::default(),
                },
            ),
        );
        kat(
            b"a SELECT Entw&APw-rfe\r\n",
            cmd(
                "a",
                C::Select {
                    mailbox: mb("Entw&APw-rfe"),
                    params: SelectParams::default(),
                },
            ),
        );
    }

    #[test]
    fn list_forms() {
        let list = |sel: Vec<ListSelect>, r: &str, p: Vec<&str>, ret: Vec<ListReturn>| C::List {
            selection: sel,
            reference: r.into(),
            patterns: p.into_iter().map(String::from).collect(),
            returns: ret,
        };
        kat(
            b"A101 LIST \"\" \"\"\r\n",
            cmd("A101", list(vec![], "", vec![""], vec![])),
        );
        kat(
            b"A102 LIST #news.comp.mail.misc \"\"\r\n",
            cmd(
                "A102",
                list(vec![], "#news.comp.mail.misc", vec![""], vec![]),
            ),
        );
        kat(
            b"A202 LIST ~/Mail/ %\r\n",
            cmd("A202", list(vec![], "~/Mail/", vec!["%"], vec![])),
        );
        kat(
            b"a LIST \"\" *\r\n",
            cmd("a", list(vec![], "", vec!["*"], vec![])),
        );
        kat(
            b"A02 LIST (SUBSCRIBED) \"\" \"*\"\r\n",
            cmd(
                "A02",
                list(vec![ListSelect::Subscribed], "", vec!["*"], vec![]),
            ),
        );
        kat(
            b"A03 LIST () \"\" \"%\" RETURN (CHILDREN)\r\n",
            cmd(
                "A03",
                list(vec![], "", vec!["%"], vec![ListReturn::Children]),
            ),
        );
        kat(
            b"A04 LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) \"\" (\"foo/%\" \"bar/*\")\r\n",
            cmd(
                "A04",
                list(
                    vec![
                        ListSelect::Remote,
                        ListSelect::Subscribed,
                        ListSelect::RecursiveMatch,
                    ],
                    "",
                    vec!["foo/%", "bar/*"],
                    vec![],
                ),
            ),
        );
        kat(
            b"t1 LIST (SPECIAL-USE) \"\" \"*\" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
            cmd(
                "t1",
                list(
                    vec![ListSelect::SpecialUse],
                    "",
                    vec!["*"],
                    vec![
                        ListReturn::Subscribed,
                        ListReturn::Children,
                        ListReturn::SpecialUse,
                        ListReturn::Status(vec![StatusItem::Messages, StatusItem::Unseen]),
                    ],
                ),
            ),
        );
        kat(
            b"A002 LSUB \"#news.\" \"comp.mail.*\"\r\n",
            cmd(
                "A002",
                C::Lsub {
                    reference: "#news.".into(),
                    pattern: "comp.mail.*".into(),
                },
            ),
        );
        assert!(parse_command(b"a LIST (RECURSIVEMATCH) \"\" *\r\n").is_err());
        assert!(parse_command(b"a LIST (FOO) \"\" *\r\n").is_err());
        assert!(parse_command(b"a LIST \"\" * RETURN (BAR)\r\n").is_err());
    }

    #[test]
    fn append_forms() {
        let msg = b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
        let mut input =
            format!("A003 APPEND saved-messages (\\Seen) {{{}}}\r\n", msg.len()).into_bytes();
        input.extend_from_slice(msg);
        input.extend_from_slice(b"\r\n");
        kat(
            &input,
            cmd(
                "A003",
                C::Append {
                    mailbox: mb("saved-messages"),
                    messages: vec![AppendMessage {
                        flags: vec![Flag::Seen],
                        date: None,
                        data: msg.to_vec(),
                        binary: false,
                    }],
                },
            ),
        );
        kat(
            b"a APPEND INBOX (\\Seen \\Draft $Forwarded) \"17-Jul-1996 02:44:25 -0700\" {5+}\r\nhello\r\n",
            cmd(
                "a",
                C::Append {
                    mailbox: mb("INBOX"),
                    messages: vec![AppendMessage {
                        flags: vec![Flag::Seen, Flag::Draft, Flag::Keyword("$Forwarded".into())],
                        date: Some(DateTime {
                            date: d(1996, 7, 17),
                            hour: 2,
                            minute: 44,
                            second: 25,
                            zone_minutes: -420,
                        }),
                        data: b"hello".to_vec(),
                        binary: false,
                    }],
                },
            ),
        );
        kat(
            b"a APPEND Sent \" 1-Feb-1994 00:00:00 +0130\" ~{3}\r\na\x00b\r\n",
            cmd(
                "a",
                C::Append {
                    mailbox: mb("Sent"),
                    messages: vec![AppendMessage {
                        flags: vec![],
                        date: Some(DateTime {
                            date: d(1994, 2, 1),
                            hour: 0,
                            minute: 0,
                            second: 0,
                            zone_minutes: 90,
                        }),
                        data: b"a\x00b".to_vec(),
                        binary: true,
                    }],
                },
            ),
        );
        // MULTIAPPEND (RFC 3502).
        kat(
            b"A003 APPEND saved {1}\r\na (\\Seen) {1}\r\nb\r\n",
            cmd(
                "A003",
                C::Append {
                    mailbox: mb("saved"),
                    messages: vec![
                        AppendMessage {
                            flags: vec![],
                            date: None,
                            data: b"a".to_vec(),
                            binary: false,
                        },
                        AppendMessage {
                            flags: vec![Flag::Seen],
                            date: None,
                            data: b"b".to_vec(),
                            binary: false,
                        },
                    ],
                },
            ),
        );
        let e =
            parse_command(b"a APPEND x \"31-Feb-2020 00:00:00 +0000\" {1}\r\nz\r\n").unwrap_err();
        assert_eq!(e.tag.as_deref(), Some("a"));
        assert!(parse_command(b"a APPEND x\r\n").is_err());
        assert!(parse_command(b"a APPEND x {5}\r\nab\r\n").is_err());
        assert!(parse_command(b"a LOGIN ~{1}\r\na b\r\n").is_err());
        assert!(parse_command(b"a LOGIN {1}\r\n\x00 b\r\n").is_err());
    }

    #[test]
    fn selected_state_simple_commands() {
        for (s, b) in [
            ("CHECK", C::Check),
            ("CLOSE", C::Close),
            ("UNSELECT", C::Unselect),
            ("EXPUNGE", C::Expunge),
            ("IDLE", C::Idle),
        ] {
            kat(format!("x {s}\r\n").as_bytes(), cmd("x", b));
        }
        kat(
            b"A202 UID EXPUNGE 3000:3002\r\n",
            cmd("A202", C::UidExpunge(set("3000:3002"))),
        );
        assert_eq!(parse_idle_done(b"done\r\n"), Ok(()));
        // RFC 4978 §3 example; the algorithm is any atom (unknown ones get BAD later).
        kat(
            b"a COMPRESS DEFLATE\r\n",
            cmd("a", C::Compress("DEFLATE".into())),
        );
        kat(b"b compress lzw\r\n", cmd("b", C::Compress("lzw".into())));
        assert!(parse_command(b"c COMPRESS\r\n").is_err());
        assert!(parse_command(b"c COMPRESS \"DEFLATE\"\r\n").is_err());
        assert!(parse_command(b"c COMPRESS DEFLATE x\r\n").is_err());
        assert!(parse_idle_done(b"DONE \r\n").is_err());
    }

    #[test]
    fn sequence_sets() {
        use SeqItem::*;
        use SeqNum::*;
        assert_eq!(set("1"), SequenceSet(vec![One(Value(1))]));
        assert_eq!(set("*"), SequenceSet(vec![One(Last)]));
        assert_eq!(set("4:2"), SequenceSet(vec![Range(Value(4), Value(2))]));
        assert_eq!(
            set("2,4:7,9,12:*"),
            SequenceSet(vec![
                One(Value(2)),
                Range(Value(4), Value(7)),
                One(Value(9)),
                Range(Value(12), Last)
            ])
        );
        assert_eq!(set("*:4"), SequenceSet(vec![Range(Last, Value(4))]));
        assert_eq!(set("$"), SequenceSet(vec![Saved]));
        assert_eq!(set("1,$"), SequenceSet(vec![One(Value(1)), Saved]));
        for bad in ["0", "1:0", "", ",", "1,", "1::2", "4294967296", "-1", "$:3"] {
            assert!(
                parse_command(format!("t UID EXPUNGE {bad}\r\n").as_bytes()).is_err(),
                "{bad}"
            );
        }
        let s = set("4:2,10:*");
        assert!(s.contains(3, 20) && s.contains(20, 20) && !s.contains(5, 20));
        assert_eq!(
            SequenceSet::from_sorted(&[1, 2, 3, 5, 7, 8]),
            set("1:3,5,7:8")
        );
    }

    #[test]
    fn search_forms() {
        use SearchKey as K;
        kat(
            b"A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
            cmd(
                "A282",
                search(vec![
                    K::Flagged,
                    K::Since(d(1994, 2, 1)),
                    K::Not(Box::new(K::From(b"Smith".to_vec()))),
                ]),
            ),
        );
        kat(
            b"A283 SEARCH TEXT \"string not in mailbox\"\r\n",
            cmd(
                "A283",
                search(vec![K::Text(b"string not in mailbox".to_vec())]),
            ),
        );
        kat(
            b"A284 SEARCH CHARSET UTF-8 TEXT {12}\r\n\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xa7\r\n",
            cmd(
                "A284",
                C::Search {
                    uid: false,
                    returns: None,
                    charset: Some("UTF-8".into()),
                    criteria: vec![K::Text("日本語で".as_bytes().to_vec())],
                },
            ),
        );
        kat(
            b"A285 UID SEARCH RETURN (MIN COUNT) CHARSET US-ASCII OR (SEEN UNDELETED) 1:100 UID 4:*\r\n",
            cmd(
                "A285",
                C::Search {
                    uid: true,
                    returns: Some(vec![SearchReturn::Min, SearchReturn::Count]),
                    charset: Some("US-ASCII".into()),
                    criteria: vec![
                        K::Or(Box::new(K::And(vec![K::Seen, K::Undeleted])), Box::new(K::SequenceSet(set("1:100")))),
                        K::Uid(set("4:*")),
                    ],
                },
            ),
        );
        kat(
            b"A301 SEARCH RETURN () UNSEEN\r\n",
            cmd(
                "A301",
                C::Search {
                    uid: false,
                    returns: Some(vec![]),
                    charset: None,
                    criteria: vec![K::Unseen],
                },
            ),
        );
        kat(
            b"A302 SEARCH RETURN (MIN MAX ALL COUNT SAVE) $\r\n",
            cmd(
                "A302",
                C::Search {
                    uid: false,
                    returns: Some(vec![
                        SearchReturn::Min,
                        SearchReturn::Max,
                        SearchReturn::All,
                        SearchReturn::Count,
                        SearchReturn::Save,
                    ]),
                    charset: None,
                    criteria: vec![K::SequenceSet(set("$"))],
                },
            ),
        );
        // RFC 7162 §3.1.5 example.
        kat(
            b"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
            cmd(
                "a",
                search(vec![K::ModSeq {
                    entry: Some(("/flags/\\draft".into(), EntryType::All)),
                    modseq: 620162338,
                }]),
            ),
        );
        kat(
            b"a SEARCH MODSEQ 0\r\n",
            cmd(
                "a",
                search(vec![K::ModSeq {
                    entry: None,
                    modseq: 0,
                }]),
            ),
        );
        // Every key, one at a time.
        let all: Vec<(&str, K)> = vec![
            ("ALL", K::All),
            ("ANSWERED", K::Answered),
            ("BCC x", K::Bcc(b"x".to_vec())),
            ("BEFORE \"1-Feb-1994\"", K::Before(d(1994, 2, 1))),
            ("BODY \"a b\"", K::Body(b"a b".to_vec())),
            ("CC x", K::Cc(b"x".to_vec())),
            ("DELETED", K::Deleted),
            ("DRAFT", K::Draft),
            ("FLAGGED", K::Flagged),
            ("FROM x", K::From(b"x".to_vec())),
            (
                "HEADER Message-ID \"<a@b>\"",
                K::Header("Message-ID".into(), b"<a@b>".to_vec()),
            ),
            ("HEADER X-Spam \"\"", K::Header("X-Spam".into(), Vec::new())),
            ("KEYWORD $Junk", K::Keyword("$Junk".into())),
            ("LARGER 10000", K::Larger(10000)),
            ("NEW", K::New),
            ("NOT SEEN", K::Not(Box::new(K::Seen))),
            ("OLD", K::Old),
            ("ON 29-Feb-2024", K::On(d(2024, 2, 29))),
            (
                "OR SEEN FLAGGED",
                K::Or(Box::new(K::Seen), Box::new(K::Flagged)),
            ),
            ("RECENT", K::Recent),
            ("SEEN", K::Seen),
            ("SENTBEFORE 1-Jan-2000", K::SentBefore(d(2000, 1, 1))),
            ("SENTON 31-dec-1999", K::SentOn(d(1999, 12, 31))),
            ("SENTSINCE 01-Mar-2001", K::SentSince(d(2001, 3, 1))),
            ("SINCE 1-Feb-1994", K::Since(d(1994, 2, 1))),
            ("SMALLER 5", K::Smaller(5)),
            ("SUBJECT {3}\r\nabc", K::Subject(b"abc".to_vec())),
            ("TEXT x", K::Text(b"x".to_vec())),
            ("TO x", K::To(b"x".to_vec())),
            ("UID 1:*", K::Uid(set("1:*"))),
            ("UNANSWERED", K::Unanswered),
            ("UNDELETED", K::Undeleted),
            ("UNDRAFT", K::Undraft),
            ("UNFLAGGED", K::Unflagged),
            ("UNKEYWORD $Junk", K::Unkeyword("$Junk".into())),
            ("UNSEEN", K::Unseen),
            ("2:4,*", K::SequenceSet(set("2:4,*"))),
            (
                "(SEEN (FLAGGED DRAFT))",
                K::And(vec![K::Seen, K::And(vec![K::Flagged, K::Draft])]),
            ),
            ("OLDER 3600", K::Older(3600)),
            ("YOUNGER 60", K::Younger(60)),
            (
                "MODSEQ \"/flags/\\\\Seen\" priv 5",
                K::ModSeq {
                    entry: Some(("/flags/\\Seen".into(), EntryType::Private)),
                    modseq: 5,
                },
            ),
        ];
        for (text, key) in all {
            kat(
                format!("t SEARCH {text}\r\n").as_bytes(),
                cmd("t", search(vec![key.clone()])),
            );
            let lowered =
                parse_command(format!("t UID SEARCH not {}\r\n", text.to_lowercase()).as_bytes())
                    .unwrap();
            round_trip(&lowered);
        }
        for bad in [
            "t SEARCH\r\n",
            "t SEARCH FOO\r\n",
            "t SEARCH SINCE 30-Feb-2020\r\n",
            "t SEARCH SINCE 1-Foo-2020\r\n",
            "t SEARCH OR SEEN\r\n",
            "t SEARCH (SEEN\r\n",
            "t SEARCH ()\r\n",
            "t SEARCH RETURN (FOO) ALL\r\n",
            "t SEARCH KEYWORD \\Seen\r\n",
            "t SEARCH LARGER -1\r\n",
            "t SEARCH MODSEQ \"/flags/x\" bogus 5\r\n",
            "t SEARCH MODSEQ \"/other/x\" all 5\r\n",
            "t SEARCH MODSEQ \"/flags/\" all 5\r\n",
            "t SEARCH MODSEQ \"/flags/a b\" all 5\r\n",
        ] {
            let e = parse_command(bad.as_bytes()).unwrap_err();
            assert_eq!(e.tag.as_deref(), Some("t"), "{bad}");
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = format!(
            "t SEARCH {}SEEN{}\r\n",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(parse_command(deep.as_bytes()).is_err());
        let deep = format!("t SEARCH {}SEEN\r\n", "NOT ".repeat(10_000));
        assert!(parse_command(deep.as_bytes()).is_err());
    }

    /// RFC 5256 §3's SORT and THREAD examples, RFC 5267 ESORT, RFC 5957 keys, and the
    /// UID forms; each decoded, checked, encoded and decoded again.
    #[test]
    fn sort_and_thread_forms() {
        use SearchKey as K;
        use SortKey as S;
        let c = |reverse, key| SortCriterion { reverse, key };
        let sort = |uid, returns, criteria, charset: &str, keys| C::Sort {
            uid,
            returns,
            criteria,
            charset: charset.into(),
            keys,
        };
        kat(
            b"A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994\r\n",
            cmd(
                "A282",
                sort(
                    false,
                    None,
                    vec![c(false, S::Subject)],
                    "UTF-8",
                    vec![K::Since(d(1994, 2, 1))],
                ),
            ),
        );
        kat(
            b"A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL\r\n",
            cmd(
                "A283",
                sort(
                    false,
                    None,
                    vec![c(false, S::Subject), c(true, S::Date)],
                    "UTF-8",
                    vec![K::All],
                ),
            ),
        );
        kat(
            b"A284 SORT (SUBJECT) US-ASCII TEXT \"not in mailbox\"\r\n",
            cmd(
                "A284",
                sort(
                    false,
                    None,
                    vec![c(false, S::Subject)],
                    "US-ASCII",
                    vec![K::Text(b"not in mailbox".to_vec())],
                ),
            ),
        );
        // Every key, REVERSE on each, lower case accepted.
        kat(
            b"t uid sort (arrival reverse cc date from reverse size subject to displayfrom reverse displayto) utf-8 undeleted 1:5\r\n",
            cmd(
                "t",
                sort(
                    true,
                    None,
                    vec![
                        c(false, S::Arrival),
                        c(true, S::Cc),
                        c(false, S::Date),
                        c(false, S::From),
                        c(true, S::Size),
                        c(false, S::Subject),
                        c(false, S::To),
                        c(false, S::DisplayFrom),
                        c(true, S::DisplayTo),
                    ],
                    "utf-8",
                    vec![K::Undeleted, K::SequenceSet(set("1:5"))],
                ),
            ),
        );
        // RFC 5267 §3.1 and §4.4.
        kat(
            b"A283 UID SORT RETURN (MIN MAX COUNT ALL PARTIAL 1:500 SAVE) (DATE) UTF-8 UNDELETED UNKEYWORD $Junk\r\n",
            cmd(
                "A283",
                sort(
                    true,
                    Some(vec![
                        SearchReturn::Min,
                        SearchReturn::Max,
                        SearchReturn::Count,
                        SearchReturn::All,
                        SearchReturn::Partial(1, 500),
                        SearchReturn::Save,
                    ]),
                    vec![c(false, S::Date)],
                    "UTF-8",
                    vec![K::Undeleted, K::Unkeyword("$Junk".into())],
                ),
            ),
        );
        kat(
            b"t SORT RETURN () (SIZE) \"UTF-8\" ALL\r\n",
            cmd(
                "t",
                sort(
                    false,
                    Some(vec![]),
                    vec![c(false, S::Size)],
                    "UTF-8",
                    vec![K::All],
                ),
            ),
        );
        let thread = |uid, algorithm, charset: &str, keys| C::Thread {
            uid,
            algorithm,
            charset: charset.into(),
            keys,
        };
        kat(
            b"A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000\r\n",
            cmd(
                "A283",
                thread(
                    false,
                    ThreadAlgorithm::OrderedSubject,
                    "UTF-8",
                    vec![K::Since(d(2000, 3, 5))],
                ),
            ),
        );
        kat(
            b"A284 THREAD ORDEREDSUBJECT US-ASCII TEXT \"gewp\"\r\n",
            cmd(
                "A284",
                thread(
                    false,
                    ThreadAlgorithm::OrderedSubject,
                    "US-ASCII",
                    vec![K::Text(b"gewp".to_vec())],
                ),
            ),
        );
        kat(
            b"A285 UID THREAD REFERENCES UTF-8 SINCE 5-MAR-2000\r\n",
            cmd(
                "A285",
                thread(
                    true,
                    ThreadAlgorithm::References,
                    "UTF-8",
                    vec![K::Since(d(2000, 3, 5))],
                ),
            ),
        );
        kat(
            b"t thread refs utf-8 all\r\n",
            cmd(
                "t",
                thread(false, ThreadAlgorithm::Refs, "utf-8", vec![K::All]),
            ),
        );
        // A charset other than UTF-8 parses (the session answers NO [BADCHARSET]).
        kat(
            b"t SORT (TO) ISO-8859-1 ALL\r\n",
            cmd(
                "t",
                sort(
                    false,
                    None,
                    vec![c(false, S::To)],
                    "ISO-8859-1",
                    vec![K::All],
                ),
            ),
        );
        for bad in [
            "t SORT\r\n",
            "t SORT () UTF-8 ALL\r\n",
            "t SORT (SUBJECT) ALL\r\n",
            "t SORT (SUBJECT) UTF-8\r\n",
            "t SORT (REVERSE) UTF-8 ALL\r\n",
            "t SORT (REVERSE REVERSE DATE) UTF-8 ALL\r\n",
            "t SORT (BOGUS) UTF-8 ALL\r\n",
            "t SORT SUBJECT UTF-8 ALL\r\n",
            "t SORT RETURN (PARTIAL 0:5) (DATE) UTF-8 ALL\r\n",
            "t SORT RETURN (PARTIAL 5) (DATE) UTF-8 ALL\r\n",
            "t SORT RETURN (FOO) (DATE) UTF-8 ALL\r\n",
            "t SEARCH RETURN (UPDATE PARTIAL) ALL\r\n",
            "t SEARCH RETURN (UPDATE 1:5) ALL\r\n",
            "t THREAD UTF-8 ALL\r\n",
            "t THREAD JWZ UTF-8 ALL\r\n",
            "t THREAD REFERENCES UTF-8\r\n",
            "t THREAD REFERENCES\r\n",
            "t UID THREAD\r\n",
        ] {
            let e = parse_command(bad.as_bytes()).unwrap_err();
            assert_eq!(e.tag.as_deref(), Some("t"), "{bad}");
        }
        // PARTIAL with the range the wrong way round is normalised.
        let p = parse_command(b"t SORT RETURN (PARTIAL 9:3) (DATE) UTF-8 ALL\r\n").unwrap();
        assert!(
            matches!(p.body, C::Sort { returns: Some(ref r), .. } if r == &[SearchReturn::Partial(3, 9)])
        );
        // RFC 5267 §5: PARTIAL, UPDATE and CONTEXT on SEARCH too.
        let p = parse_command(b"t UID SEARCH RETURN (update PARTIAL 1:5 CONTEXT) ALL\r\n").unwrap();
        assert!(matches!(
            p.body,
            C::Search { returns: Some(ref r), .. }
                if r == &[SearchReturn::Update, SearchReturn::Partial(1, 5), SearchReturn::Context]
        ));
        round_trip(&p);
    }

    /// SORT and THREAD with literals through the framer and the parser, split at every
    /// byte boundary.
    #[test]
    fn sort_and_thread_split_everywhere() {
        use crate::imap::fragment::{Event, Framer, FramerConfig};
        let transcript: &[u8] = b"s1 UID SORT RETURN (MIN COUNT) (REVERSE ARRIVAL SUBJECT) UTF-8 SUBJECT {5}\r\nlunch FROM {3+}\r\nbob\r\n\
s2 THREAD REFERENCES {5}\r\nUTF-8 NOT DELETED\r\n\
s3 UID THREAD REFS UTF-8 ALL\r\n";
        for cut in 0..=transcript.len() {
            let mut f = Framer::new(FramerConfig::default());
            let mut got = Vec::new();
            for chunk in [&transcript[..cut], &transcript[cut..]] {
                f.enqueue(chunk);
                while let Some(ev) = f.progress() {
                    match ev {
                        Event::LiteralAnnounced(_) => f.accept_literal(),
                        Event::Frame(frame) => {
                            let c = parse_command(&frame).unwrap();
                            round_trip(&c);
                            got.push(c.body.name());
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
            assert_eq!(got, ["UID SORT", "THREAD", "UID THREAD"], "cut {cut}");
        }
    }

    #[test]
    fn fetch_forms() {
        use FetchAttr as F;
        let body = |peek: bool,
                    part: Vec<u32>,
                    text: Option<SectionText>,
                    partial: Option<Partial>| F::BodySection {
            peek,
            section: Section { part, text },
            partial,
        };
        kat(
            b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
            cmd(
                "A654",
                fetch(
                    "2:4",
                    vec![
                        F::Flags,
                        body(
                            false,
                            vec![],
                            Some(SectionText::HeaderFields(vec![
                                "DATE".into(),
                                "FROM".into(),
                            ])),
                            None,
                        ),
                    ],
                ),
            ),
        );
        kat(
            b"a FETCH 1 ALL\r\n",
            cmd(
                "a",
                C::Fetch {
                    uid: false,
                    set: set("1"),
                    items: FetchItems::All,
                    modifiers: FetchModifiers::default(),
                },
            ),
        );
        kat(
            b"a FETCH 1 fast\r\n",
            cmd(
                "a",
                C::Fetch {
                    uid: false,
                    set: set("1"),
                    items: FetchItems::Fast,
                    modifiers: FetchModifiers::default(),
                },
            ),
        );
        kat(
            b"a FETCH 1 FULL\r\n",
            cmd(
                "a",
                C::Fetch {
                    uid: false,
                    set: set("1"),
                    items: FetchItems::Full,
                    modifiers: FetchModifiers::default(),
                },
            ),
        );
        kat(b"a FETCH 1:* UID\r\n", cmd("a", fetch("1:*", vec![F::Uid])));
        kat(
            b"a UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE INTERNALDATE MODSEQ BODY RFC822 RFC822.HEADER RFC822.TEXT)\r\n",
            cmd(
                "a",
                C::Fetch {
                    uid: true,
                    set: set("1:*"),
                    items: FetchItems::Attrs(vec![F::Uid, F::Flags, F::Rfc822Size, F::Envelope, F::BodyStructure, F::InternalDate, F::ModSeq, F::Body, F::Rfc822, F::Rfc822Header, F::Rfc822Text]),
                    modifiers: FetchModifiers::default(),
                },
            ),
        );
        let cases: Vec<(&str, F)> = vec![
            ("BODY[]", body(false, vec![], None, None)),
            (
                "BODY.PEEK[]<0.2048>",
                body(
                    true,
                    vec![],
                    None,
                    Some(Partial {
                        offset: 0,
                        length: 2048,
                    }),
                ),
            ),
            (
                "BODY[HEADER]",
                body(false, vec![], Some(SectionText::Header), None),
            ),
            (
                "body.peek[text]",
                body(true, vec![], Some(SectionText::Text), None),
            ),
            ("BODY[1]", body(false, vec![1], None, None)),
            ("BODY[1.2.3]", body(false, vec![1, 2, 3], None, None)),
            (
                "BODY[1.2.HEADER]",
                body(false, vec![1, 2], Some(SectionText::Header), None),
            ),
            (
                "BODY[3.MIME]",
                body(false, vec![3], Some(SectionText::Mime), None),
            ),
            (
                "BODY[4.2.TEXT]<100.5>",
                body(
                    false,
                    vec![4, 2],
                    Some(SectionText::Text),
                    Some(Partial {
                        offset: 100,
                        length: 5,
                    }),
                ),
            ),
            (
                "BODY.PEEK[HEADER.FIELDS.NOT (Received \"X-Spam\")]",
                body(
                    true,
                    vec![],
                    Some(SectionText::HeaderFieldsNot(vec![
                        "Received".into(),
                        "X-Spam".into(),
                    ])),
                    None,
                ),
            ),
            (
                "BODY[1.HEADER.FIELDS (Subject)]",
                body(
                    false,
                    vec![1],
                    Some(SectionText::HeaderFields(vec!["Subject".into()])),
                    None,
                ),
            ),
            (
                "BINARY[1]",
                F::Binary {
                    peek: false,
                    part: vec![1],
                    partial: None,
                },
            ),
            (
                "BINARY.PEEK[1.2]<0.10>",
                F::Binary {
                    peek: true,
                    part: vec![1, 2],
                    partial: Some(Partial {
                        offset: 0,
                        length: 10,
                    }),
                },
            ),
            (
                "BINARY[]",
                F::Binary {
                    peek: false,
                    part: vec![],
                    partial: None,
                },
            ),
            ("BINARY.SIZE[2]", F::BinarySize { part: vec![2] }),
        ];
        for (text, attr) in cases {
            kat(
                format!("t FETCH 1 {text}\r\n").as_bytes(),
                cmd("t", fetch("1", vec![attr.clone()])),
            );
            kat(
                format!("t FETCH 1 (FLAGS {text})\r\n").as_bytes(),
                cmd("t", fetch("1", vec![F::Flags, attr])),
            );
        }
        // RFC 7162 modifiers.
        kat(
            b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
            cmd(
                "s100",
                C::Fetch {
                    uid: true,
                    set: set("1:*"),
                    items: FetchItems::Attrs(vec![F::Flags]),
                    modifiers: FetchModifiers {
                        changed_since: Some(12345),
                        vanished: false,
                    },
                },
            ),
        );
        kat(
            b"A03 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
            cmd(
                "A03",
                C::Fetch {
                    uid: true,
                    set: set("300:500"),
                    items: FetchItems::Attrs(vec![F::Flags]),
                    modifiers: FetchModifiers {
                        changed_since: Some(12345),
                        vanished: true,
                    },
                },
            ),
        );
        for bad in [
            "t FETCH 1 (FLAGS\r\n",
            "t FETCH 1 BODY[0]\r\n",
            "t FETCH 1 BODY[MIME]\r\n",
            "t FETCH 1 BODY[1.]\r\n",
            "t FETCH 1 BODY.PEEK\r\n",
            "t FETCH 1 BODY[]<0.0>\r\n",
            "t FETCH 1 BODY[]<1>\r\n",
            "t FETCH 1 BINARY[HEADER]\r\n",
            "t FETCH 1 FOO\r\n",
            "t FETCH 1 ()\r\n",
            "t FETCH 1 FLAGS (CHANGEDSINCE)\r\n",
            "t FETCH FLAGS\r\n",
        ] {
            let e = parse_command(bad.as_bytes()).unwrap_err();
            assert_eq!(e.tag.as_deref(), Some("t"), "{bad}");
        }
    }

    #[test]
    fn store_copy_move() {
        let store = |uid, s: &str, us: Option<u64>, action, silent, flags: Vec<Flag>| C::Store {
            uid,
            set: set(s),
            unchanged_since: us,
            action,
            silent,
            flags,
        };
        kat(
            b"A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
            cmd(
                "A003",
                store(
                    false,
                    "2:4",
                    None,
                    StoreAction::Add,
                    false,
                    vec![Flag::Deleted],
                ),
            ),
        );
        kat(
            b"a STORE 1 -FLAGS.SILENT (\\Seen $Junk)\r\n",
            cmd(
                "a",
                store(
                    false,
                    "1",
                    None,
                    StoreAction::Remove,
                    true,
                    vec![Flag::Seen, Flag::Keyword("$Junk".into())],
                ),
            ),
        );
        kat(
            b"a UID STORE 1:* FLAGS ()\r\n",
            cmd(
                "a",
                store(true, "1:*", None, StoreAction::Replace, false, vec![]),
            ),
        );
        kat(
            b"a STORE 1 +FLAGS \\Seen \\Flagged\r\n",
            cmd(
                "a",
                store(
                    false,
                    "1",
                    None,
                    StoreAction::Add,
                    false,
                    vec![Flag::Seen, Flag::Flagged],
                ),
            ),
        );
        kat(
            b"d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n",
            cmd(
                "d105",
                store(
                    false,
                    "7,5,9",
                    Some(320162338),
                    StoreAction::Add,
                    true,
                    vec![Flag::Deleted],
                ),
            ),
        );
        kat(
            b"a STORE $ +flags (\\answered)\r\n",
            cmd(
                "a",
                store(
                    false,
                    "$",
                    None,
                    StoreAction::Add,
                    false,
                    vec![Flag::Answered],
                ),
            ),
        );
        kat(
            b"A003 COPY 2:4 MEETING\r\n",
            cmd(
                "A003",
                C::Copy {
                    uid: false,
                    set: set("2:4"),
                    mailbox: mb("MEETING"),
                },
            ),
        );
        kat(
            b"a UID COPY 4827313:4828442 \"Saved Items\"\r\n",
            cmd(
                "a",
                C::Copy {
                    uid: true,
                    set: set("4827313:4828442"),
                    mailbox: mb("Saved Items"),
                },
            ),
        );
        kat(
            b"a MOVE 1:3 Trash\r\n",
            cmd(
                "a",
                C::Move {
                    uid: false,
                    set: set("1:3"),
                    mailbox: mb("Trash"),
                },
            ),
        );
        kat(
            b"a UID MOVE 42 inbox\r\n",
            cmd(
                "a",
                C::Move {
                    uid: true,
                    set: set("42"),
                    mailbox: mb("INBOX"),
                },
            ),
        );
        for bad in [
            "t STORE 1 FLAGS\r\n",
            "t STORE 1 +FLAGS (\\*)\r\n",
            "t STORE 1 *FLAGS (\\Seen)\r\n",
            "t STORE 1 (UNCHANGEDSINCE x) FLAGS ()\r\n",
            "t COPY 1\r\n",
            "t UID FOO 1\r\n",
            "t MOVE 1 a b\r\n",
        ] {
            let e = parse_command(bad.as_bytes()).unwrap_err();
            assert_eq!(e.tag.as_deref(), Some("t"), "{bad}");
        }
    }

    #[test]
    fn errors_carry_tag() {
        let e = parse_command(b"a1 FROB\r\n").unwrap_err();
        assert_eq!(
            (e.tag.as_deref(), e.kind),
            (Some("a1"), ParseErrorKind::UnknownCommand)
        );
        let e = parse_command(b"a1 UID FROB 1\r\n").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::UnknownCommand);
        for (input, tag) in [
            (&b"\r\n"[..], None),
            (b"NOOP\r\n", None),
            (b"+ NOOP\r\n", None),
            (b" a NOOP\r\n", None),
            (b"a{ NOOP\r\n", None),
            (b"a NOOP\n", Some("a")),
            (b"a NOOP", Some("a")),
            (b"a NOOP extra\r\n", Some("a")),
            (b"a  NOOP\r\n", Some("a")),
            (b"a LOGIN\r\n", Some("a")),
            (b"a LOGIN a\r\n", Some("a")),
            (b"a LOGIN \"a\r\n", Some("a")),
            (b"a LOGIN \"a\\x\" b\r\n", Some("a")),
            (b"a LOGIN {3}\r\nab\r\n", Some("a")),
            (b"a LOGIN {3}ab\r\n", Some("a")),
            (b"a LOGIN {99999999999999999999}\r\n", Some("a")),
            (b"a SELECT\r\n", Some("a")),
            (b"a SELECT \xff\xfe\r\n", Some("a")),
            (b"a SELECT x (FOO)\r\n", Some("a")),
            (b"a ENABLE\r\n", Some("a")),
            (b"a ID (\"a\")\r\n", Some("a")),
            (b"a AUTHENTICATE\r\n", Some("a")),
            (b"a AUTHENTICATE PLAIN !!\r\n", Some("a")),
            (b"a CREATE x (USE (Sent))\r\n", Some("a")),
            (b"a STATUS x ()\r\n", Some("a")),
            (b"a STATUS x (FOO)\r\n", Some("a")),
        ] {
            let e = parse_command(input).unwrap_err();
            assert_eq!(
                e.tag.as_deref(),
                tag,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            if tag.is_none() {
                assert_eq!(e.kind, ParseErrorKind::NoTag);
            }
        }
    }

    #[test]
    fn encoder_picks_atom_quoted_literal() {
        let login = |u: &str, p: &str| {
            cmd(
                "a",
                C::Login {
                    username: u.into(),
                    password: Secret::new(p.into()),
                },
            )
        };
        assert_eq!(login("bob", "pw").encode(), b"a LOGIN bob pw\r\n");
        assert_eq!(
            login("a b", "q\"\\").encode(),
            b"a LOGIN \"a b\" \"q\\\"\\\\\"\r\n"
        );
        assert_eq!(login("NIL", "").encode(), b"a LOGIN \"NIL\" \"\"\r\n");
        assert_eq!(
            login("bob", "p\u{e9}").encode(),
            b"a LOGIN bob {3+}\r\np\xc3\xa9\r\n"
        );
        assert_eq!(
            login("x\ny", "pw").encode_sync(),
            vec![b"a LOGIN {3}\r\n".to_vec(), b"x\ny pw\r\n".to_vec()]
        );
        let long = "x".repeat(2000);
        assert!(
            login(&format!("a {long}"), "pw")
                .encode()
                .starts_with(b"a LOGIN {2002+}\r\n")
        );
    }

    #[test]
    fn date_time_helpers() {
        let dt = DateTime {
            date: d(1996, 7, 17),
            hour: 2,
            minute: 44,
            second: 25,
            zone_minutes: -420,
        };
        assert_eq!(dt.to_string(), "17-Jul-1996 02:44:25 -0700");
        assert_eq!(dt.unix_timestamp(), 837_596_665);
        assert_eq!(d(1994, 2, 1).to_string(), "1-Feb-1994");
        assert!(Date::new(2023, 2, 29).is_none());
        assert!(Date::new(2000, 2, 29).is_some());
        assert!(Date::new(1900, 2, 29).is_none());
    }

    /// A first-sync transcript (the sequence Thunderbird and Apple Mail send) through
    /// the framer and the parser, split at every byte boundary.
    #[test]
    fn framer_then_parser_transcript_split_everywhere() {
        use crate::imap::fragment::{Event, Framer, FramerConfig};
        let transcript: &[u8] = b"a1 CAPABILITY\r\n\
a2 ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n\
a3 AUTHENTICATE PLAIN\r\n\
dGVzdAB0ZXN0AHRlc3Q=\r\n\
a4 LIST (SPECIAL-USE) \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n\
a5 SELECT INBOX (CONDSTORE)\r\n\
a6 UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n\
a7 IDLE\r\n\
DONE\r\n\
a8 UID STORE 3 +FLAGS.SILENT (\\Seen)\r\n\
a9 UID MOVE 3 Trash\r\n\
a10 APPEND Sent (\\Seen) {14+}\r\nSubject: x\r\n\r\n\r\n\
a11 LOGIN {3}\r\nbob {2}\r\npw\r\n\
a12 LOGOUT\r\n";
        let want = [
            "CAPABILITY",
            "ID",
            "AUTHENTICATE",
            "<sasl>",
            "LIST",
            "SELECT",
            "UID FETCH",
            "IDLE",
            "<done>",
            "UID STORE",
            "UID MOVE",
            "APPEND",
            "LOGIN",
            "LOGOUT",
        ];
        for cut in 0..=transcript.len() {
            let mut f = Framer::new(FramerConfig::default());
            let mut got = Vec::new();
            for chunk in [&transcript[..cut], &transcript[cut..]] {
                f.enqueue(chunk);
                while let Some(ev) = f.progress() {
                    match ev {
                        Event::LiteralAnnounced(_) => f.accept_literal(),
                        Event::Frame(frame) => got.push(if parse_idle_done(&frame).is_ok() {
                            "<done>"
                        } else if frame.starts_with(b"dGVz") {
                            "<sasl>"
                        } else {
                            parse_command(&frame).unwrap().body.name()
                        }),
                        other => panic!("{other:?}"),
                    }
                }
            }
            assert_eq!(got, want, "cut {cut}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let seeds: &[&[u8]] = &[
            b"a UID FETCH 1:* (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (A B)]<0.5>) (CHANGEDSINCE 5 VANISHED)\r\n",
            b"a SEARCH RETURN (MIN) CHARSET UTF-8 OR (SEEN NOT {3}\r\nabc) HEADER x y MODSEQ \"/flags/x\" all 5\r\n",
            b"a APPEND x (\\Seen) \"17-Jul-1996 02:44:25 -0700\" ~{3}\r\nabc\r\n",
            b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (a b) RETURN (STATUS (MESSAGES))\r\n",
            b"a SELECT INBOX (QRESYNC (1 2 1:5 (1 2)))\r\n",
            b"a STORE 1 (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Seen)\r\n",
            b"a ID (\"a\" NIL)\r\n",
            b"a UID SORT RETURN (MIN PARTIAL 1:9) (REVERSE DATE DISPLAYFROM) UTF-8 OR SEEN {2}\r\nab\r\n",
            b"a THREAD REFERENCES US-ASCII (UNDELETED SUBJECT x)\r\n",
        ];
        let mut ok = 0;
        for i in 0..5000 {
            let mut input = seeds[i % seeds.len()].to_vec();
            let edits = 1 + next() % 4;
            for _ in 0..edits {
                let r = next();
                if input.is_empty() {
                    break;
                }
                let pos = (r as usize >> 8) % input.len();
                match r % 4 {
                    0 => input[pos] = (r >> 32) as u8,
                    1 => {
                        input.remove(pos);
                    }
                    2 => {
                        let alphabet = b"(){}[]<>\" \\*$:,.0123456789~+\r\n";
                        input.insert(pos, alphabet[(r >> 40) as usize % alphabet.len()]);
                    }
                    _ => input.truncate(pos),
                }
            }
            if let Ok(c) = parse_command(&input) {
                ok += 1;
                round_trip(&c);
            }
        }
        assert!(ok > 0);
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_command(&bytes);
        }
    }
}
