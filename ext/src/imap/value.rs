//! The values the IMAP command parser produces, in plain Rust.
//!
//! Each type mirrors one class of `stalwart/protocols/imap/types.py` field for field; the
//! pyo3 glue (`imap_py.rs`) turns them into those classes, so the Python side sees the
//! same objects the reference grammar builds. Conventions are the same: octet strings
//! (`Vec<u8>`) where the meaning is octets, `String` where the grammar makes them text,
//! `None` for `*` in a sequence set, upper-case names where the reference upper-cases.

/// `SequenceSet`: ranges as sent (`None` = `*`) and whether `$` appeared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeqSet {
    pub ranges: Vec<(Option<u32>, Option<u32>)>,
    pub saved: bool,
}

/// A calendar date (`date` in Python), already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// An RFC 9051 date-time with its zone offset in minutes east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub date: Date,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub offset_minutes: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<&'static str>,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchItem {
    pub name: &'static str,
    pub section: Option<Section>,
    pub partial: Option<(u64, u64)>,
    pub peek: bool,
    pub lazy: bool,
}

impl FetchItem {
    pub fn plain(name: &'static str) -> Self {
        FetchItem { name, section: None, partial: None, peek: false, lazy: false }
    }
}

/// A search key; the Python form is a tuple whose first item is the lower-case key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Recent,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    Seq(SeqSet),
    Uid(SeqSet),
    Keyword(String),
    /// ("before" | "on" | "since" | "sentbefore" | "senton" | "sentsince", date)
    Date(&'static str, Date),
    /// ("larger" | "smaller" | "modseq" | "older" | "younger", number)
    Number(&'static str, u64),
    /// ("header", FIELD, value)
    Header(String, String),
    /// ("body" | "text", value)
    Text(&'static str, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SeqSet>,
    pub seq_match: Option<(SeqSet, SeqSet)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    pub date: Option<DateTime>,
    pub data: Vec<u8>,
    pub binary: bool,
}

/// The typed arguments of a command (`Command.args`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    None,
    Login { username: String, password: String },
    Authenticate { mechanism: String, initial: Option<Vec<u8>> },
    Enable(Vec<String>),
    Id(Option<Vec<(String, Option<String>)>>),
    Mailbox(String),
    Rename { old: String, new: String },
    Create { name: String, special_use: Vec<String> },
    Select { name: String, condstore: bool, qresync: Option<Qresync> },
    List {
        reference: String,
        patterns: Vec<String>,
        select: Vec<String>,
        returns: Vec<String>,
        status: Vec<String>,
        extended: bool,
    },
    Lsub { reference: String, pattern: String },
    Status { name: String, items: Vec<String> },
    Append { name: String, messages: Vec<AppendMessage> },
    Search { key: SearchKey, returns: Option<Vec<String>>, charset: Option<String> },
    Fetch {
        sequence: SeqSet,
        items: Vec<FetchItem>,
        changed_since: Option<u64>,
        vanished: bool,
        macro_: bool,
    },
    Store {
        sequence: SeqSet,
        mode: &'static str,
        silent: bool,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    },
    CopyMove { sequence: SeqSet, name: String },
    Expunge(SeqSet),
    /// SORT (RFC 5256, RFC 5957): (reverse, KEY) criteria, the search key, the charset.
    Sort { criteria: Vec<(bool, String)>, key: SearchKey, charset: String },
    /// THREAD (RFC 5256): ORDEREDSUBJECT or REFERENCES.
    Thread { algorithm: String, key: SearchKey, charset: String },
    /// REPLACE / UID REPLACE (RFC 8508).
    Replace { number: u32, name: String, message: AppendMessage },
    /// GETQUOTA / SETQUOTA (RFC 9208): the root and SETQUOTA's (RESOURCE, limit) pairs.
    Quota { root: String, limits: Vec<(String, u64)> },
    /// SETACL, DELETEACL, LISTRIGHTS (RFC 4314): mailbox, identifier, SETACL's rights.
    Acl { name: String, identifier: String, rights: Option<String> },
    /// COMPRESS (RFC 4978): the mechanism, upper case.
    Compress(String),
    /// GETMETADATA (RFC 5464): mailbox, entries, MAXSIZE, DEPTH (None: infinity).
    GetMetadata { name: String, entries: Vec<String>, maxsize: Option<u32>, depth: Option<u8> },
    /// SETMETADATA (RFC 5464): (entry, value) pairs, None for NIL.
    SetMetadata { name: String, entries: Vec<(String, Option<Vec<u8>>)> },
    /// NOTIFY NONE (None) or NOTIFY SET [STATUS] groups (RFC 5465).
    Notify { groups: Option<Vec<NotifyGroup>>, status: bool },
}

/// One event group of NOTIFY SET (RFC 5465 3.1), as `types.NotifyGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: String,
    pub mailboxes: Vec<String>,
    pub events: Vec<String>,
    pub fetch: Vec<FetchItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub name: String,
    pub args: Args,
}

/// What the framer hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Command(Command),
    /// A synchronizing literal was announced: (tag, command name, size).
    Continuation(String, String, u64),
    IdleDone,
    SaslResponse(Vec<u8>),
    /// Octets of an APPEND literal, handed out as they arrive when the reader streams
    /// messages (`Parser::stream_append`); `true` on the literal's last chunk. The
    /// command's literal is then empty: the caller spooled the octets.
    LiteralData(Vec<u8>, bool),
    NeedData,
}

/// `ImapError`: BAD/NO (or BYE when `close`) with an optional response code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapError {
    pub message: String,
    pub reply: &'static str,
    pub tag: Option<String>,
    pub code: Option<&'static str>,
    pub close: bool,
}

impl ImapError {
    pub fn new(message: impl Into<String>) -> Self {
        ImapError { message: message.into(), reply: "BAD", tag: None, code: None, close: false }
    }
    pub fn tagged(mut self, tag: Option<String>) -> Self {
        self.tag = tag;
        self
    }
}
