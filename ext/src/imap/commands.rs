//! The IMAP commands (RFC 9051 section 6 and the extensions the server announces): one
//! function per command, each a direct transcription of the reference grammar in
//! `stalwart/protocols/imap/grammar_ref.py` (same order of reads, same checks, same
//! messages), so both parsers agree on every input, valid or not.
//!
//! Extensions parsed: CONDSTORE/QRESYNC (RFC 7162: SELECT parameters, FETCH CHANGEDSINCE/
//! VANISHED, STORE UNCHANGEDSINCE, SEARCH MODSEQ), ESEARCH and SEARCHRES (RFC 4731, 5182:
//! RETURN options, `$`), LIST-EXTENDED and LIST-STATUS (RFC 5258, 5819), CREATE-SPECIAL-USE
//! (RFC 6154), ID (RFC 2971, at most 30 fields), ENABLE (RFC 5161), SASL-IR (RFC 4959),
//! BINARY (RFC 3516), MULTIAPPEND (RFC 3502), PREVIEW (RFC 8970), WITHIN (RFC 5032), UIDPLUS
//! (RFC 4315: UID EXPUNGE), MOVE (RFC 6851).

use super::chars;
use super::cursor::{ascii, bad, Bad, Cursor, Host, Marker, R, MAX_U32, MAX_U63};
use super::framer::Limits;
use super::value::*;

fn no_args(_: &mut Cursor) -> R<Args> {
    Ok(Args::None)
}

fn login(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let raw = c.astring()?;
    let username = c.text(raw, "User name")?;
    c.sp()?;
    let raw = c.astring()?;
    let password = c.text(raw, "Password")?;
    Ok(Args::Login { username, password })
}

fn authenticate(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let mechanism = c.atom("a SASL mechanism")?.to_ascii_uppercase();
    let mut initial = None;
    if c.take(b" ") {
        let raw = c.run(&chars::BASE64);
        if raw.is_empty() {
            return bad("Expected a base64 initial response or '='");
        }
        initial = Some(raw.to_vec());
        c.arg()?;
    }
    Ok(Args::Authenticate { mechanism, initial })
}

fn enable(c: &mut Cursor) -> R<Args> {
    let mut caps = Vec::new();
    while c.take(b" ") {
        caps.push(c.atom("a capability")?.to_ascii_uppercase());
    }
    if caps.is_empty() {
        return bad("ENABLE needs at least one capability");
    }
    Ok(Args::Enable(caps))
}

fn id(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    if c.take_nil() {
        return Ok(Args::Id(None));
    }
    c.open()?;
    let mut params = Vec::new();
    if !c.take(b")") {
        loop {
            let raw = c.string()?;
            let key = c.text(raw, "ID field")?;
            c.sp()?;
            let value = match c.nstring()? {
                None => None,
                Some(raw) => Some(c.text(raw, "ID value")?),
            };
            params.push((key, value));
            if params.len() > 30 {
                return bad("Too many ID fields (RFC 2971: at most 30)");
            }
            if c.take(b")") {
                break;
            }
            c.sp()?;
        }
    }
    c.depth -= 1;
    Ok(Args::Id(Some(params)))
}

fn mailbox_only(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    Ok(Args::Mailbox(c.mailbox()?))
}

fn rename(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let old = c.mailbox()?;
    c.sp()?;
    Ok(Args::Rename { old, new: c.mailbox()? })
}

fn create(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let name = c.mailbox()?;
    let mut special_use = Vec::new();
    if c.take(b" ") {
        c.open()?;
        if c.keyword()? != "USE" {
            return bad("Unknown CREATE parameter (only USE, RFC 6154)");
        }
        c.sp()?;
        special_use = c.paren_list(|c| {
            c.expect(b"\\", None)?;
            Ok(format!("\\{}", c.atom("a special-use attribute")?))
        })?;
        c.close()?;
    }
    Ok(Args::Create { name, special_use })
}

fn select(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let name = c.mailbox()?;
    let mut condstore = false;
    let mut qresync = None;
    if c.take(b" ") {
        c.open()?;
        loop {
            let param = c.keyword()?;
            match param.as_str() {
                "CONDSTORE" => condstore = true,
                "QRESYNC" => {
                    c.sp()?;
                    qresync = Some(qresync_param(c)?);
                }
                _ => return bad(format!("Unknown SELECT parameter {param}")),
            }
            if c.take(b")") {
                break;
            }
            c.sp()?;
        }
        c.depth -= 1;
    }
    Ok(Args::Select { name, condstore, qresync })
}

fn qresync_param(c: &mut Cursor) -> R<Qresync> {
    c.open()?;
    let uidvalidity = c.number32(true)?;
    c.sp()?;
    let modseq = c.number(MAX_U63, false)?;
    let (mut known_uids, mut seq_match) = (None, None);
    if c.take(b" ") {
        if c.peek() == b'(' as i32 {
            seq_match = Some(seq_match_data(c)?);
        } else {
            let known = c.sequence_set()?;
            if known.saved {
                return bad("$ is not allowed in QRESYNC");
            }
            known_uids = Some(known);
            if c.take(b" ") {
                seq_match = Some(seq_match_data(c)?);
            }
        }
    }
    c.close()?;
    Ok(Qresync { uidvalidity, modseq, known_uids, seq_match })
}

fn seq_match_data(c: &mut Cursor) -> R<(SeqSet, SeqSet)> {
    c.open()?;
    let seqs = c.sequence_set()?;
    c.sp()?;
    let uids = c.sequence_set()?;
    c.close()?;
    Ok((seqs, uids))
}

const LIST_SELECT: &[&str] = &["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"];
const LIST_RETURN: &[&str] = &["SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", "MYRIGHTS"];
const STATUS_ITEMS: &[&str] = &["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
    "HIGHESTMODSEQ", "RECENT", "APPENDLIMIT"];

fn list(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let mut select = Vec::new();
    let mut extended = false;
    if c.peek() == b'(' as i32 {
        extended = true;
        select = c.paren_list(Cursor::keyword)?;
        if let Some(opt) = select.iter().find(|o| !LIST_SELECT.contains(&o.as_str())) {
            return bad(format!("Unknown LIST selection option {opt}"));
        }
        if select.iter().any(|o| o == "RECURSIVEMATCH")
            && select.iter().all(|o| o == "RECURSIVEMATCH" || o == "REMOTE")
        {
            return bad("RECURSIVEMATCH needs another selection option (RFC 5258 3)");
        }
        c.sp()?;
    }
    let raw = c.astring()?;
    let reference = c.mailbox_name(raw, true)?;
    c.sp()?;
    let patterns = if c.peek() == b'(' as i32 {
        extended = true;
        let patterns = c.paren_list(Cursor::list_mailbox)?;
        if patterns.is_empty() {
            return bad("Empty pattern list");
        }
        patterns
    } else {
        vec![c.list_mailbox()?]
    };
    let mut returns = Vec::new();
    let mut status = Vec::new();
    if c.take(b" ") {
        extended = true;
        if c.keyword()? != "RETURN" {
            return bad("Expected RETURN");
        }
        c.sp()?;
        c.open()?;
        if !c.take(b")") {
            loop {
                let opt = c.keyword()?;
                if !LIST_RETURN.contains(&opt.as_str()) {
                    return bad(format!("Unknown LIST return option {opt}"));
                }
                if opt == "STATUS" {
                    c.sp()?;
                    status = status_items(c)?;
                } else {
                    returns.push(opt);
                }
                if c.take(b")") {
                    break;
                }
                c.sp()?;
            }
        }
        c.depth -= 1;
    }
    Ok(Args::List { reference, patterns, select, returns, status, extended })
}

fn lsub(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let raw = c.astring()?;
    let reference = c.mailbox_name(raw, true)?;
    c.sp()?;
    Ok(Args::Lsub { reference, pattern: c.list_mailbox()? })
}

fn status_items(c: &mut Cursor) -> R<Vec<String>> {
    let items = c.paren_list(Cursor::keyword)?;
    if items.is_empty() {
        return bad("Expected at least one status item");
    }
    if let Some(item) = items.iter().find(|i| !STATUS_ITEMS.contains(&i.as_str())) {
        return bad(format!("Unknown STATUS item {item}"));
    }
    Ok(items)
}

fn status(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let name = c.mailbox()?;
    c.sp()?;
    Ok(Args::Status { name, items: status_items(c)? })
}

/// `[flag-list SP] [date-time SP] literal` (RFC 9051 append-message, RFC 3516).
fn append_message(c: &mut Cursor) -> R<AppendMessage> {
    let mut flags = Vec::new();
    let mut date = None;
    if c.peek() == b'(' as i32 {
        flags = c.flag_list(false)?;
        c.sp()?;
    }
    if c.peek() == b'"' as i32 {
        date = Some(c.date_time()?);
        c.sp()?;
    }
    if c.peek() != b'{' as i32 && c.peek() != b'~' as i32 {
        return bad("Expected the message as a literal");
    }
    let (data, binary) = c.literal()?;
    c.arg()?;
    Ok(AppendMessage { flags, date, data, binary })
}

fn append(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let name = c.mailbox()?;
    let mut messages = Vec::new();
    while c.take(b" ") {
        messages.push(append_message(c)?);
    }
    if messages.is_empty() {
        return bad("APPEND needs a message");
    }
    Ok(Args::Append { name, messages })
}

/// RFC 8508: `REPLACE SP seq-number SP mailbox SP append-message` (UID form too).
fn replace(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let number = c.number32(true)?;
    c.sp()?;
    let name = c.mailbox()?;
    c.sp()?;
    Ok(Args::Replace { number, name, message: append_message(c)? })
}

// -- QUOTA (RFC 9208)

fn quota_root(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let raw = c.astring()?;
    Ok(Args::Quota { root: c.text(raw, "Quota root")?, limits: Vec::new() })
}

fn set_quota(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let raw = c.astring()?;
    let root = c.text(raw, "Quota root")?;
    c.sp()?;
    let limits = c.paren_list(|c| {
        let name = c.atom("a resource name")?.to_ascii_uppercase();
        c.sp()?;
        Ok((name, c.number(MAX_U63, false)?))
    })?;
    Ok(Args::Quota { root, limits })
}

fn copy_move(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let sequence = c.sequence_set()?;
    c.sp()?;
    Ok(Args::CopyMove { sequence, name: c.mailbox()? })
}

fn uid_expunge(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    Ok(Args::Expunge(c.sequence_set()?))
}

// -- STORE

fn store(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let sequence = c.sequence_set()?;
    c.sp()?;
    let mut unchanged_since = None;
    if c.peek() == b'(' as i32 {
        c.open()?;
        loop {
            let modifier = c.keyword()?;
            if modifier != "UNCHANGEDSINCE" {
                return bad(format!("Unknown STORE modifier {modifier}"));
            }
            c.sp()?;
            unchanged_since = Some(c.number(MAX_U63, false)?);
            if c.take(b")") {
                break;
            }
            c.sp()?;
        }
        c.depth -= 1;
        c.sp()?;
    }
    let mode = if c.take(b"+") {
        "+"
    } else if c.take(b"-") {
        "-"
    } else {
        ""
    };
    let item = c.keyword()?;
    if item != "FLAGS" && item != "FLAGS.SILENT" {
        return bad(format!("Expected FLAGS or FLAGS.SILENT, not {item}"));
    }
    c.sp()?;
    let flags = if c.peek() == b'(' as i32 {
        c.flag_list(false)?
    } else {
        let mut items = vec![c.flag(false)?];
        while c.take(b" ") {
            items.push(c.flag(false)?);
        }
        items
    };
    Ok(Args::Store { sequence, mode, silent: item.ends_with(".SILENT"), flags, unchanged_since })
}

// -- FETCH

const SIMPLE_ATTS: &[&str] = &["ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODYSTRUCTURE",
    "UID", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ"];

fn macro_items(word: &str) -> Option<&'static [&'static str]> {
    Some(match word {
        "ALL" => &["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
        "FAST" => &["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
        "FULL" => &["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
        _ => return None,
    })
}

fn section(c: &mut Cursor, binary: bool) -> R<Section> {
    c.expect(b"[", None)?;
    let mut part = Vec::new();
    let mut text = None;
    let mut fields = Vec::new();
    let mut dot = false;
    while (0x30..=0x39).contains(&c.peek()) {
        part.push(c.number32(true)?);
        if part.len() as i64 > c.limits.max_depth {
            return bad("Section part path too deep");
        }
        dot = c.take(b".");
        if !dot {
            break;
        }
    }
    let close = b']' as i32;
    if dot && c.peek() == close {
        return bad("Section ends with '.'");
    }
    if !part.is_empty() && !dot && c.peek() != close {
        return bad("Invalid section");
    }
    if c.peek() != close {
        if binary {
            return bad("BINARY sections are part numbers only (RFC 3516)");
        }
        let raw = c.run(&chars::SECTION_WORD);
        if raw.is_empty() {
            return bad("Invalid section");
        }
        let word = ascii(raw).to_ascii_uppercase();
        let known: Option<&'static str> = match word.as_str() {
            "HEADER" => Some("HEADER"),
            "HEADER.FIELDS" => Some("HEADER.FIELDS"),
            "HEADER.FIELDS.NOT" => Some("HEADER.FIELDS.NOT"),
            "TEXT" => Some("TEXT"),
            "MIME" if !part.is_empty() => Some("MIME"),
            _ => None,
        };
        let Some(word) = known else {
            return bad(format!("Invalid section text {word}"));
        };
        text = Some(word);
        if word.starts_with("HEADER.FIELDS") {
            c.sp()?;
            let names = c.paren_list(|c| {
                let raw = c.astring()?;
                Ok(c.text(raw, "Header name")?.to_uppercase())
            })?;
            if names.is_empty() {
                return bad("Expected at least one header field name");
            }
            for name in &names {
                if name.is_empty() || name.chars().any(|ch| ch as u32 <= 32 || ch as u32 > 126 || ch == ':') {
                    let shown = c.host.str_repr(name);
                    return bad(format!("Invalid header field name {shown}"));
                }
            }
            fields = names;
        }
    }
    c.expect(b"]", None)?;
    Ok(Section { part, text, fields })
}

/// RFC 9051: `partial = "<" number64 "." nz-number64 ">"` (RFC 3501 had 32-bit numbers).
fn partial(c: &mut Cursor) -> R<Option<(u64, u64)>> {
    if !c.take(b"<") {
        return Ok(None);
    }
    let start = c.number(MAX_U63, false)?;
    c.expect(b".", None)?;
    let count = c.number(MAX_U63, true)?;
    c.expect(b">", None)?;
    Ok(Some((start, count)))
}

fn fetch_att(c: &mut Cursor) -> R<FetchItem> {
    let raw = c.run(&chars::FETCH_ATT);
    if raw.is_empty() {
        return bad("Expected a fetch attribute");
    }
    let name = ascii(raw).to_ascii_uppercase();
    c.arg()?;
    let bracket = c.peek() == b'[' as i32;
    match name.as_str() {
        "BODY" | "BODY.PEEK" | "BINARY" | "BINARY.PEEK" | "BINARY.SIZE" if bracket => {
            let binary = name.starts_with("BINARY");
            let section = Some(section(c, binary)?);
            if name == "BINARY.SIZE" {
                return Ok(FetchItem { section, ..FetchItem::plain("BINARY.SIZE") });
            }
            let partial = partial(c)?;
            let base = if binary { "BINARY" } else { "BODY[]" };
            Ok(FetchItem { name: base, section, partial, peek: name.ends_with(".PEEK"), lazy: false })
        }
        "BODY" => Ok(FetchItem::plain("BODY")),
        "PREVIEW" => {
            let lazy = c.take_ci(b" (LAZY)");
            Ok(FetchItem { lazy, ..FetchItem::plain("PREVIEW") })
        }
        other => match SIMPLE_ATTS.iter().find(|a| **a == other) {
            Some(a) => Ok(FetchItem::plain(a)),
            None => bad(format!("Unknown fetch attribute {other}")),
        },
    }
}

fn fetch(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let sequence = c.sequence_set()?;
    c.sp()?;
    let mut macro_ = false;
    let items = if c.peek() == b'(' as i32 {
        let items = c.paren_list(fetch_att)?;
        if items.is_empty() {
            return bad("Expected at least one fetch attribute");
        }
        items
    } else {
        let start = c.pos;
        let line = c.line;
        let mut end = start;
        while end < line.len() && line[end].is_ascii_alphabetic() {
            end += 1;
        }
        let word = ascii(&line[start..end]).to_ascii_uppercase();
        match macro_items(&word) {
            Some(names) if end >= line.len() || line[end] == b' ' => {
                c.pos = end;
                macro_ = true;
                names.iter().map(|n| FetchItem::plain(n)).collect()
            }
            _ => vec![fetch_att(c)?],
        }
    };
    let mut changed_since = None;
    let mut vanished = false;
    if c.take(b" ") {
        c.open()?;
        loop {
            let modifier = c.keyword()?;
            match modifier.as_str() {
                "CHANGEDSINCE" => {
                    c.sp()?;
                    changed_since = Some(c.number(MAX_U63, false)?);
                }
                "VANISHED" => vanished = true,
                _ => return bad(format!("Unknown FETCH modifier {modifier}")),
            }
            if c.take(b")") {
                break;
            }
            c.sp()?;
        }
        c.depth -= 1;
    }
    if vanished && changed_since.is_none() {
        return bad("VANISHED needs CHANGEDSINCE (RFC 7162 3.2.6)");
    }
    Ok(Args::Fetch { sequence, items, changed_since, vanished, macro_ })
}

// -- SEARCH

fn decode_search(c: &mut Cursor, raw: Vec<u8>, codec: &str) -> R<String> {
    let decoded = match codec {
        "utf-8" => String::from_utf8(raw).ok(),
        "ascii" => raw.is_ascii().then(|| ascii(&raw)),
        _ => c.host.decode(codec, &raw),
    };
    decoded.map_or_else(|| bad(format!("Search string is not valid {codec}")), Ok)
}

fn search_string(c: &mut Cursor, codec: &str) -> R<String> {
    let raw = c.astring()?;
    decode_search(c, raw, codec)
}

fn not(key: SearchKey) -> SearchKey {
    SearchKey::Not(Box::new(key))
}

fn kw(flag: &str) -> SearchKey {
    SearchKey::Keyword(flag.into())
}

fn search_key(c: &mut Cursor, codec: &str) -> R<SearchKey> {
    c.arg()?;
    let p = c.peek();
    if p == b'(' as i32 {
        let mut keys = c.paren_list(|c| search_key(c, codec))?;
        return match keys.len() {
            0 => bad("Empty search key list"),
            1 => Ok(keys.pop().expect("one key")),
            _ => Ok(SearchKey::And(keys)),
        };
    }
    if (0x30..=0x39).contains(&p) || p == b'*' as i32 || p == b'$' as i32 {
        return Ok(SearchKey::Seq(c.sequence_set()?));
    }
    let word = c.keyword()?;
    Ok(match word.as_str() {
        "ALL" => SearchKey::All,
        "ANSWERED" => kw("\\Answered"),
        "DELETED" => kw("\\Deleted"),
        "DRAFT" => kw("\\Draft"),
        "FLAGGED" => kw("\\Flagged"),
        "SEEN" => kw("\\Seen"),
        "RECENT" => SearchKey::Recent,
        "NEW" => SearchKey::And(vec![SearchKey::Recent, not(kw("\\Seen"))]),
        "OLD" => not(SearchKey::Recent),
        "UNANSWERED" => not(kw("\\Answered")),
        "UNDELETED" => not(kw("\\Deleted")),
        "UNDRAFT" => not(kw("\\Draft")),
        "UNFLAGGED" => not(kw("\\Flagged")),
        "UNSEEN" => not(kw("\\Seen")),
        "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
            let name = match word.as_str() {
                "BEFORE" => "before",
                "ON" => "on",
                "SINCE" => "since",
                "SENTBEFORE" => "sentbefore",
                "SENTON" => "senton",
                _ => "sentsince",
            };
            c.sp()?;
            SearchKey::Date(name, c.date()?)
        }
        "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => {
            c.sp()?;
            SearchKey::Header(word, search_string(c, codec)?)
        }
        "BODY" | "TEXT" => {
            c.sp()?;
            let value = search_string(c, codec)?;
            SearchKey::Text(if word == "BODY" { "body" } else { "text" }, value)
        }
        "KEYWORD" | "UNKEYWORD" => {
            c.sp()?;
            let key = SearchKey::Keyword(c.flag(true)?);
            if word == "KEYWORD" { key } else { not(key) }
        }
        "HEADER" => {
            c.sp()?;
            let raw = c.astring()?;
            let field = c.text(raw, "Header name")?.to_uppercase();
            c.sp()?;
            SearchKey::Header(field, search_string(c, codec)?)
        }
        "LARGER" | "SMALLER" => {
            c.sp()?;
            let name = if word == "LARGER" { "larger" } else { "smaller" };
            SearchKey::Number(name, c.number(MAX_U63, false)?)
        }
        "NOT" => {
            c.sp()?;
            c.descend()?;
            let key = search_key(c, codec)?;
            c.depth -= 1;
            not(key)
        }
        "OR" => {
            c.sp()?;
            c.descend()?;
            let a = search_key(c, codec)?;
            c.sp()?;
            let b = search_key(c, codec)?;
            c.depth -= 1;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        "UID" => {
            c.sp()?;
            SearchKey::Uid(c.sequence_set()?)
        }
        "MODSEQ" => {
            c.sp()?;
            if c.peek() == b'"' as i32 {
                // entry-name entry-type-req: accepted, the value is what counts
                c.quoted()?;
                c.sp()?;
                let entry_type = c.keyword()?;
                if !matches!(entry_type.as_str(), "PRIV" | "SHARED" | "ALL") {
                    return bad("Invalid MODSEQ entry type");
                }
                c.sp()?;
            }
            SearchKey::Number("modseq", c.number(MAX_U63, false)?)
        }
        "OLDER" | "YOUNGER" => {
            c.sp()?;
            let name = if word == "OLDER" { "older" } else { "younger" };
            SearchKey::Number(name, c.number(MAX_U32, true)?)
        }
        _ => return bad(format!("Unknown search key {word}")),
    })
}

/// A CHARSET argument: (name as sent, upper case; the host's codec for it).
fn charset_arg(c: &mut Cursor) -> R<(String, String)> {
    let raw = c.astring()?;
    let name = c.text(raw, "Charset")?.to_uppercase();
    match c.host.charset(&name) {
        Some(codec) => Ok((name, codec)),
        None => Err(Bad {
            message: format!("Unsupported charset {name}"),
            reply: "NO",
            code: Some("BADCHARSET (UTF-8 US-ASCII)"),
        }),
    }
}

/// `charset 1*(SP search-key)` of SORT and THREAD (the charset is mandatory there).
fn search_criteria(c: &mut Cursor) -> R<(String, SearchKey)> {
    let (charset, codec) = charset_arg(c)?;
    let mut keys = Vec::new();
    while c.take(b" ") {
        keys.push(search_key(c, &codec)?);
    }
    if keys.is_empty() {
        return bad("Expected search keys");
    }
    Ok((charset, SearchKey::And(keys)))
}

const SORT_KEYS: &[&str] =
    &["ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"];

/// RFC 5256 3: `SORT SP sort-criteria SP search-criteria`; DISPLAY keys RFC 5957.
fn sort(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let criteria = c.paren_list(|c| {
        let mut word = c.atom("a sort key")?.to_ascii_uppercase();
        let reverse = word == "REVERSE";
        if reverse {
            c.sp()?;
            word = c.atom("a sort key")?.to_ascii_uppercase();
        }
        if !SORT_KEYS.contains(&word.as_str()) {
            let shown: String = word.chars().take(40).collect();
            return bad(format!("Unknown sort key {shown}"));
        }
        Ok((reverse, word))
    })?;
    if criteria.is_empty() {
        return bad("Expected at least one sort key");
    }
    c.sp()?;
    let (charset, key) = search_criteria(c)?;
    Ok(Args::Sort { criteria, key, charset })
}

/// RFC 5256 3: `THREAD SP thread-alg SP search-criteria`.
fn thread(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let algorithm = c.atom("a threading algorithm")?.to_ascii_uppercase();
    if algorithm != "ORDEREDSUBJECT" && algorithm != "REFERENCES" {
        let shown: String = algorithm.chars().take(40).collect();
        return bad(format!("Unsupported threading algorithm {shown}"));
    }
    c.sp()?;
    let (charset, key) = search_criteria(c)?;
    Ok(Args::Thread { algorithm, key, charset })
}

const SEARCH_RETURN: &[&str] = &["MIN", "MAX", "ALL", "COUNT", "SAVE"];

fn search(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let mut returns = None;
    let mut charset = None;
    if c.take_ci(b"RETURN ") {
        let options = c.paren_list(Cursor::keyword)?;
        if let Some(opt) = options.iter().find(|o| !SEARCH_RETURN.contains(&o.as_str())) {
            return bad(format!("Unknown SEARCH return option {opt}"));
        }
        returns = Some(options);
        c.sp()?;
    }
    let mut codec = String::from("utf-8");
    if c.take_ci(b"CHARSET ") {
        let (name, found) = charset_arg(c)?;
        codec = found;
        charset = Some(name);
        c.sp()?;
    }
    let mut keys = vec![search_key(c, &codec)?];
    while c.take(b" ") {
        keys.push(search_key(c, &codec)?);
    }
    Ok(Args::Search { key: SearchKey::And(keys), returns, charset })
}

// -- ACL (RFC 4314)

/// RFC 4314 3.2/3.4: `mailbox SP identifier` (DELETEACL, LISTRIGHTS).
fn acl_identifier(c: &mut Cursor) -> R<(String, String)> {
    c.sp()?;
    let name = c.mailbox()?;
    c.sp()?;
    let raw = c.astring()?;
    Ok((name, c.text(raw, "Identifier")?))
}

fn acl_only(c: &mut Cursor) -> R<Args> {
    let (name, identifier) = acl_identifier(c)?;
    Ok(Args::Acl { name, identifier, rights: None })
}

/// RFC 4314 3.1: `SETACL SP mailbox SP identifier SP mod-rights`.
fn setacl(c: &mut Cursor) -> R<Args> {
    let (name, identifier) = acl_identifier(c)?;
    c.sp()?;
    let raw = c.astring()?;
    Ok(Args::Acl { name, identifier, rights: Some(c.text(raw, "Rights")?) })
}

// -- COMPRESS (RFC 4978), GETMETADATA/SETMETADATA (RFC 5464), NOTIFY (RFC 5465)

fn compress(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    Ok(Args::Compress(c.atom("a compression mechanism")?.to_ascii_uppercase()))
}

fn metadata_entry(c: &mut Cursor) -> R<String> {
    let raw = c.astring()?;
    c.text(raw, "Entry name")
}

fn getmetadata(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let mut maxsize = None;
    let mut depth = Some(0u8);
    if c.peek() == b'(' as i32 {
        c.open()?;
        loop {
            let option = c.keyword()?;
            c.sp()?;
            match option.as_str() {
                "MAXSIZE" => maxsize = Some(c.number32(false)?),
                "DEPTH" => {
                    let word = c.atom("0, 1 or infinity")?.to_ascii_uppercase();
                    depth = match word.as_str() {
                        "0" => Some(0),
                        "1" => Some(1),
                        "INFINITY" => None,
                        _ => {
                            let shown: String = word.chars().take(20).collect();
                            return bad(format!("Invalid DEPTH {shown} (0, 1 or infinity)"));
                        }
                    };
                }
                _ => {
                    let shown: String = option.chars().take(40).collect();
                    return bad(format!("Unknown GETMETADATA option {shown}"));
                }
            }
            if c.take(b")") {
                break;
            }
            c.sp()?;
        }
        c.depth -= 1;
        c.sp()?;
    }
    let name = c.mailbox()?;
    c.sp()?;
    let entries = if c.peek() == b'(' as i32 {
        let entries = c.paren_list(metadata_entry)?;
        if entries.is_empty() {
            return bad("Expected at least one entry name");
        }
        entries
    } else {
        vec![metadata_entry(c)?]
    };
    Ok(Args::GetMetadata { name, entries, maxsize, depth })
}

fn setmetadata(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let name = c.mailbox()?;
    c.sp()?;
    let entries = c.paren_list(|c| {
        let entry = metadata_entry(c)?;
        c.sp()?;
        let value = if c.peek() == b'~' as i32 { Some(c.string8()?) } else { c.nstring()? };
        Ok((entry, value))
    })?;
    if entries.is_empty() {
        return bad("Expected at least one entry and value");
    }
    Ok(Args::SetMetadata { name, entries })
}

const NOTIFY_FILTERS: &[&str] =
    &["SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"];

fn notify_group(c: &mut Cursor) -> R<NotifyGroup> {
    c.open()?;
    let filter = c.atom("a mailbox filter")?.to_ascii_uppercase();
    if !NOTIFY_FILTERS.contains(&filter.as_str()) {
        let shown: String = filter.chars().take(40).collect();
        return bad(format!("Unknown NOTIFY mailbox filter {shown}"));
    }
    let mut mailboxes = Vec::new();
    if filter == "SUBTREE" || filter == "MAILBOXES" {
        c.sp()?;
        mailboxes = if c.peek() == b'(' as i32 { c.paren_list(Cursor::mailbox)? } else { vec![c.mailbox()?] };
        if mailboxes.is_empty() {
            return bad("Expected at least one mailbox");
        }
    }
    c.sp()?;
    let mut fetch = Vec::new();
    let events = if c.peek() == b'(' as i32 {
        c.open()?;
        let mut events = Vec::new();
        loop {
            let event = c.atom("an event")?.to_ascii_uppercase();
            if event == "MESSAGENEW" && c.line[c.pos.min(c.line.len())..].starts_with(b" (") {
                c.sp()?;
                fetch = c.paren_list(fetch_att)?;
            }
            events.push(event);
            if c.take(b")") {
                break;
            }
            c.sp()?;
        }
        c.depth -= 1;
        events
    } else {
        if c.keyword()? != "NONE" {
            return bad("Expected a list of events or NONE");
        }
        vec!["NONE".to_string()]
    };
    c.close()?;
    Ok(NotifyGroup { filter, mailboxes, events, fetch })
}

fn notify(c: &mut Cursor) -> R<Args> {
    c.sp()?;
    let word = c.keyword()?;
    if word == "NONE" {
        return Ok(Args::Notify { groups: None, status: false });
    }
    if word != "SET" {
        return bad("Expected NOTIFY SET or NOTIFY NONE");
    }
    c.sp()?;
    let mut status = false;
    if c.peek() != b'(' as i32 {
        if c.keyword()? != "STATUS" {
            return bad("Expected STATUS or an event group");
        }
        status = true;
        c.sp()?;
    }
    let mut groups = vec![notify_group(c)?];
    while c.take(b" ") {
        groups.push(notify_group(c)?);
    }
    Ok(Args::Notify { groups: Some(groups), status })
}

// -- dispatch

type Handler = fn(&mut Cursor) -> R<Args>;

fn handler(name: &str) -> Option<Handler> {
    Some(match name {
        "CAPABILITY" | "NOOP" | "LOGOUT" | "STARTTLS" | "NAMESPACE" | "IDLE" | "CHECK"
        | "CLOSE" | "UNSELECT" | "EXPUNGE" => no_args,
        "LOGIN" => login,
        "AUTHENTICATE" => authenticate,
        "ENABLE" => enable,
        "ID" => id,
        "SELECT" | "EXAMINE" => select,
        "CREATE" => create,
        "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => mailbox_only,
        "RENAME" => rename,
        "LIST" => list,
        "LSUB" => lsub,
        "STATUS" => status,
        "APPEND" => append,
        "SEARCH" => search,
        "FETCH" => fetch,
        "STORE" => store,
        "COPY" | "MOVE" => copy_move,
        "SORT" => sort,
        "THREAD" => thread,
        "REPLACE" => replace,
        "GETQUOTA" => quota_root,
        "GETQUOTAROOT" => mailbox_only,
        "SETQUOTA" => set_quota,
        "SETACL" => setacl,
        "DELETEACL" | "LISTRIGHTS" => acl_only,
        "GETACL" | "MYRIGHTS" => mailbox_only,
        "COMPRESS" => compress,
        "GETMETADATA" => getmetadata,
        "SETMETADATA" => setmetadata,
        "NOTIFY" => notify,
        _ => return None,
    })
}

fn uid_handler(name: &str) -> Option<Handler> {
    Some(match name {
        "FETCH" => fetch,
        "STORE" => store,
        "COPY" | "MOVE" => copy_move,
        "SEARCH" => search,
        "EXPUNGE" => uid_expunge,
        "SORT" => sort,
        "THREAD" => thread,
        "REPLACE" => replace,
        _ => return None,
    })
}

/// The tag and command name ("UID FETCH" style, upper case) at the start of a command's
/// first line, when readable: `(None, _)` for an unreadable tag, `(Some, None)` when the
/// name is missing.
pub fn tag_and_name(line: &[u8]) -> (Option<String>, Option<String>) {
    let n = line.len();
    let mut i = 0;
    while i < n && chars::TAG[line[i] as usize] {
        i += 1;
    }
    if i == 0 || i >= n || line[i] != b' ' {
        return (if i > 0 && i == n { Some(ascii(&line[..i])) } else { None }, None);
    }
    let tag = ascii(&line[..i]);
    let mut j = i + 1;
    while j < n && chars::ATOM[line[j] as usize] {
        j += 1;
    }
    let mut name = ascii(&line[i + 1..j]).to_ascii_uppercase();
    if name == "UID" && line.get(j) == Some(&b' ') {
        let mut k = j + 1;
        while k < n && chars::ATOM[line[k] as usize] {
            k += 1;
        }
        name = format!("UID {}", ascii(&line[j + 1..k]).to_ascii_uppercase());
    }
    (Some(tag), (!name.is_empty()).then_some(name))
}

/// Parses one complete command: its line parts and the literal after each part but the
/// last. `tag_name` is `tag_and_name(parts[0])` when the caller has it already.
pub fn parse_command(
    parts: &[&[u8]],
    literals: Vec<(Vec<u8>, bool)>,
    limits: &Limits,
    utf8: bool,
    host: &mut dyn Host,
    tag_name: Option<(Option<String>, Option<String>)>,
) -> Result<Command, ImapError> {
    let (tag, name) = tag_name.unwrap_or_else(|| tag_and_name(parts[0]));
    let Some(tag) = tag else {
        let message = if chars::is_blank(parts[0]) { "Empty command line" } else { "Invalid tag" };
        return Err(ImapError::new(message));
    };
    let Some(name) = name else {
        return Err(ImapError::new("Missing command name").tagged(Some(tag)));
    };
    let mut c = Cursor::new(parts, literals, limits, utf8, host);
    c.pos = tag.len() + 1;
    c.run(&chars::ATOM); // the command name, already read
    let result = (|| {
        let handler = if let Some(sub) = name.strip_prefix("UID ") {
            c.take(b" ");
            c.run(&chars::ATOM);
            uid_handler(sub)
        } else {
            handler(&name)
        };
        let Some(handler) = handler else {
            let shown: String = name.chars().take(40).collect();
            return bad(format!("Unknown command {shown}"));
        };
        let args = handler(&mut c)?;
        c.end()?;
        Ok(args)
    })();
    match result {
        Ok(args) => Ok(Command { tag, name, args }),
        Err(Bad { message, reply, code }) => {
            Err(ImapError { message, reply, tag: Some(tag), code, close: false })
        }
    }
}

/// Used by the framer: whether a literal announcement may be followed by more data.
pub fn is_marker(line: &[u8]) -> Option<Marker> {
    super::cursor::literal_marker(line)
}
