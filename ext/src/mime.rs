//! MIME message model for IMAP and JMAP, built on the `mail-parser` crate.
//!
//! `parse(raw)` turns an RFC 5322 message into a [`ParsedMessage`]: a flat list of parts
//! (index 0 is the root) where every part carries byte offsets into `raw`, its MIME
//! header fields (RFC 2045, 2046, 2183, 2231, 2392, 3282, 2557), its size in octets and in
//! lines, and, for `message/rfc822` parts, the nested message with its own envelope and
//! part list. The envelope fields (RFC 5322 section 3.6) are decoded: RFC 2047
//! encoded-words and charsets are converted to UTF-8, dates to a Unix timestamp.
//! `text_body`/`html_body`/`attachments` follow RFC 8621 section 4.1.4 (as computed by
//! `mail-parser`), and `preview` is the RFC 8621 / RFC 8970 preview.
//!
//! Offsets (all absolute positions in the outermost `raw`, `usize`):
//! - `header_start..body_start` is the part's header block including the blank line that
//!   ends it (IMAP `BODY[n.MIME]`, or `BODY[HEADER]` for a message root);
//! - `body_start..body_end` is the body (IMAP `BODY[n]`, `BODY[n.TEXT]`), excluding the
//!   line break that precedes the next boundary delimiter (RFC 2046 section 5.1.1);
//! - every header field is `field_start..end` (name through its final line break), its
//!   raw value `value_start..end`.
//!
//! Invariants:
//! - `parse` never panics and never fails: broken input yields as much structure as can be
//!   recovered, and at worst a single text part spanning the whole input;
//! - `header_start <= body_start <= body_end <= raw.len()` for every part, and the parts
//!   of a nested message lie inside the body of the part that holds it;
//! - container nesting (multipart and message/rfc822 together) is at most [`MAX_DEPTH`]
//!   levels; a container at the limit is kept as a leaf without children, so consumers
//!   may recurse over the tree;
//! - a `message/rfc822` part whose body is base64 or quoted-printable encoded (forbidden
//!   by RFC 2046 section 5.2.1) is a leaf: its offsets could not point into `raw`;
//! - no recursion over input-controlled depth: the parser is iterative and the nested
//!   messages it builds are taken apart with an explicit work list.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use mail_parser::{
    Address, ContentType, DateTime, Encoding, GetHeader, HeaderName, HeaderValue,
    MessageParser, MessagePart, PartType,
};

/// Deepest container nesting exposed (IMAP servers use 100; 64 keeps consumers that
/// recurse once per level far below Python's recursion limit).
pub const MAX_DEPTH: usize = 64;

/// Longest preview, in characters (RFC 8621 section 4.1.4: "up to 256 characters").
pub const PREVIEW_CHARS: usize = 256;

/// One header field, as it appears in the raw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// Field name as written (case preserved, no colon).
    pub name: String,
    pub field_start: usize,
    pub value_start: usize,
    pub end: usize,
}

/// One mailbox: display name (decoded) and `local@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// A group (RFC 5322 section 3.4); `name` is `None` for addresses outside any group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressGroup {
    pub name: Option<String>,
    pub addresses: Vec<Mailbox>,
}

/// Content-Transfer-Encoding as far as decoding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Identity,
    Base64,
    QuotedPrintable,
}

/// One MIME entity.
#[derive(Debug, Clone)]
pub struct Part {
    pub header_start: usize,
    pub body_start: usize,
    pub body_end: usize,
    /// Lower-case media type and subtype; the RFC 2045 default when absent or invalid
    /// (`text/plain`, or `message/rfc822` inside `multipart/digest`).
    pub content_type: String,
    pub subtype: String,
    /// Content-Type parameters in order, names lower-cased, RFC 2231 values decoded.
    pub params: Vec<(String, String)>,
    /// Content-Transfer-Encoding, lower-cased, `None` when absent.
    pub encoding: Option<String>,
    pub transfer: Transfer,
    /// Content-ID without angle brackets.
    pub content_id: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    /// Content-Disposition type, lower-cased, and its parameters.
    pub disposition: Option<String>,
    pub disposition_params: Vec<(String, String)>,
    pub language: Vec<String>,
    pub lines: usize,
    /// Indexes of the direct children (multipart only).
    pub children: Vec<usize>,
    /// The nested message of a `message/rfc822` (or `message/global`) part.
    pub message: Option<Arc<ParsedMessage>>,
    pub headers: Vec<RawHeader>,
    /// Decoded text (charset converted to UTF-8) for parts read as text.
    pub text: Option<String>,
    /// True when the part is `text/html` and was read as text.
    pub is_html: bool,
    /// The body could not be decoded as declared and is exposed as raw text.
    pub encoding_problem: bool,
}

/// A message (the top-level one, or one nested in a `message/rfc822` part).
#[derive(Debug, Clone, Default)]
pub struct ParsedMessage {
    pub parts: Vec<Part>,
    pub text_body: Vec<usize>,
    pub html_body: Vec<usize>,
    pub attachments: Vec<usize>,
    pub subject: Option<String>,
    pub from: Vec<AddressGroup>,
    pub sender: Vec<AddressGroup>,
    pub reply_to: Vec<AddressGroup>,
    pub to: Vec<AddressGroup>,
    pub cc: Vec<AddressGroup>,
    pub bcc: Vec<AddressGroup>,
    /// Seconds since the Unix epoch, `None` when missing or unparseable.
    pub date: Option<i64>,
    /// The Date field's value as written, trimmed.
    pub date_raw: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub preview: String,
    /// Byte range of this message in the outermost raw message.
    pub start: usize,
    pub end: usize,
}

/// A part's decoded content: text for parts read as text, bytes otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
}

/// The `mail-parser` configuration: structured parsing only for the fields read here;
/// every other field (Received, DKIM-Signature, ...) is kept raw, which is cheaper.
/// Date is parsed from its raw value afterwards, because the crate's in-stream date
/// parser swallows the next line after some malformed dates ("... UT", "3:36:25 AM").
fn parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        MessageParser::new()
            .with_mime_headers()
            .with_message_ids()
            .header_text(HeaderName::Subject)
            .header_address(HeaderName::From)
            .header_address(HeaderName::Sender)
            .header_address(HeaderName::ReplyTo)
            .header_address(HeaderName::To)
            .header_address(HeaderName::Cc)
            .header_address(HeaderName::Bcc)
            .header_comma_separated(HeaderName::ContentLanguage)
    })
}

/// Parses `raw`; never fails (see the module invariants).
pub fn parse(raw: &[u8]) -> ParsedMessage {
    if !starts_with_header(raw) {
        return fallback(raw);
    }
    if raw.last().is_some_and(|&b| b != b'\n') && header_end(raw).is_none() {
        // A header block cut short: the field parsers need its last line terminated.
        // The body is empty, so the added line break changes no content; offsets are
        // clamped back to `raw`.
        let mut terminated = Vec::with_capacity(raw.len() + 1);
        terminated.extend_from_slice(raw);
        terminated.push(b'\n');
        let mut message = match parser().parse(&terminated) {
            Some(message) => build(&terminated, message),
            None => return fallback(raw),
        };
        clamp(&mut message, raw.len());
        return message;
    }
    match parser().parse(raw) {
        Some(message) => build(raw, message),
        None => fallback(raw),
    }
}

/// Offset just past the blank line that ends the header block, if there is one.
fn header_end(raw: &[u8]) -> Option<usize> {
    if raw.starts_with(b"\n") {
        return Some(1);
    }
    if raw.starts_with(b"\r\n") {
        return Some(2);
    }
    let mut pos = 0;
    while let Some(nl) = raw[pos..].iter().position(|&b| b == b'\n') {
        let next = pos + nl + 1;
        match raw.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if raw.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            None => return None,
            _ => pos = next,
        }
    }
    None
}

/// Limits every offset of a header-only message to `len`.
fn clamp(message: &mut ParsedMessage, len: usize) {
    message.end = message.end.min(len);
    for part in &mut message.parts {
        part.header_start = part.header_start.min(len);
        part.body_start = part.body_start.min(len);
        part.body_end = part.body_end.min(len);
        for h in &mut part.headers {
            h.field_start = h.field_start.min(len);
            h.value_start = h.value_start.min(len);
            h.end = h.end.min(len);
        }
        // A header-only message has no nested message (its body is empty).
    }
}

/// The content of `part`, transfer-decoded and, for text, converted to UTF-8.
/// Containers (multipart, message/rfc822) return their raw body.
pub fn decode<'a>(raw: &'a [u8], part: &'a Part) -> Decoded<'a> {
    if let Some(text) = &part.text {
        return Decoded::Text(Cow::Borrowed(text.as_str()));
    }
    let body = raw.get(part.body_start..part.body_end).unwrap_or_default();
    if !part.children.is_empty() || part.message.is_some() {
        return Decoded::Bytes(Cow::Borrowed(body));
    }
    Decoded::Bytes(transfer_decode(body, part.transfer))
}

/// Decodes a body with its transfer encoding; bodies that do not decode are returned
/// as they are.
pub fn transfer_decode(body: &[u8], transfer: Transfer) -> Cow<'_, [u8]> {
    let mut stream = MessageStream::new(body);
    let (end, bytes) = match transfer {
        Transfer::Identity => return Cow::Borrowed(body),
        Transfer::Base64 => stream.decode_base64_mime(b""),
        Transfer::QuotedPrintable => stream.decode_quoted_printable_mime(b""),
    };
    if end == usize::MAX {
        Cow::Borrowed(body)
    } else {
        bytes
    }
}

/// Number of lines in `body` as IMAP counts them (RFC 3501 body-fld-lines): line
/// breaks, plus one for a last line without a line break.
pub fn count_lines(body: &[u8]) -> usize {
    let newlines = body.iter().filter(|&&b| b == b'\n').count();
    match body.last() {
        Some(b'\n') | None => newlines,
        Some(_) => newlines + 1,
    }
}

/// True when `raw` starts with a header field (RFC 5322 section 2.2: printable US-ASCII
/// other than colon, then a colon; obsolete white space before the colon is allowed) or
/// with the empty line of an empty header. Anything else is not a message header, and
/// the whole input is body (as other MIME parsers treat it).
fn starts_with_header(raw: &[u8]) -> bool {
    match raw.first() {
        None => true,
        Some(b'\n') => true,
        Some(b'\r') if raw.get(1) == Some(&b'\n') => true,
        _ => {
            let mut name_len = 0;
            let mut after_space = false;
            for &b in raw {
                match b {
                    b':' => return name_len > 0,
                    b' ' | b'\t' => after_space = name_len > 0,
                    33..=126 if !after_space => name_len += 1,
                    _ => return false,
                }
            }
            false
        }
    }
}

/// Input with no header at all: one text part holding everything.
fn fallback(raw: &[u8]) -> ParsedMessage {
    let text = String::from_utf8_lossy(raw).into_owned();
    let part = Part {
        header_start: 0,
        body_start: 0,
        body_end: raw.len(),
        content_type: "text".into(),
        subtype: "plain".into(),
        params: Vec::new(),
        encoding: None,
        transfer: Transfer::Identity,
        content_id: None,
        description: None,
        location: None,
        disposition: None,
        disposition_params: Vec::new(),
        language: Vec::new(),
        lines: count_lines(raw),
        children: Vec::new(),
        message: None,
        headers: Vec::new(),
        text: Some(text),
        is_html: false,
        encoding_problem: false,
    };
    let mut message = ParsedMessage {
        parts: vec![part],
        text_body: vec![0],
        html_body: vec![0],
        end: raw.len(),
        ..Default::default()
    };
    message.preview = preview(&message);
    message
}

/// A `mail-parser` message waiting to be converted, with where its result goes.
struct Pending<'x> {
    message: mail_parser::Message<'x>,
    /// Depth of the message's root part (0 for the top-level message).
    depth: usize,
    /// (index in `done` of the parent message, part index in the parent).
    parent: Option<(usize, usize)>,
    /// Byte range the message occupies.
    start: usize,
    end: usize,
}

/// Converts the `mail-parser` tree into ours without recursion: nested messages are
/// detached onto a work list, converted, then attached to their parents deepest first.
fn build<'x>(raw: &'x [u8], top: mail_parser::Message<'x>) -> ParsedMessage {
    let mut work = vec![Pending { message: top, depth: 0, parent: None, start: 0, end: raw.len() }];
    let mut done: Vec<(ParsedMessage, Option<(usize, usize)>)> = Vec::new();

    while let Some(mut pending) = work.pop() {
        let this = done.len();
        let (mut converted, nested) = convert(raw, &mut pending.message, pending.depth);
        converted.start = pending.start;
        converted.end = pending.end;
        for (part_index, child, depth) in nested {
            let part = &converted.parts[part_index];
            work.push(Pending {
                message: child,
                depth,
                parent: Some((this, part_index)),
                start: part.body_start,
                end: part.body_end,
            });
        }
        done.push((converted, pending.parent));
        // `pending.message` is dropped here; its nested messages were moved out.
    }

    // Children always come after their parents in `done`: attach from the end.
    while done.len() > 1 {
        let (child, parent) = done.pop().expect("len > 1");
        if let Some((message_index, part_index)) = parent {
            if let Some(part) = done[message_index].0.parts.get_mut(part_index) {
                part.message = Some(Arc::new(child));
            }
        }
    }
    match done.pop() {
        Some((message, _)) if !message.parts.is_empty() => message,
        _ => fallback(raw),
    }
}

/// Converts one message level. Returns the message and its nested messages to convert
/// next, as (part index, message, depth of its root).
fn convert<'x>(
    raw: &'x [u8],
    message: &mut mail_parser::Message<'x>,
    root_depth: usize,
) -> (ParsedMessage, Vec<(usize, mail_parser::Message<'x>, usize)>) {
    let count = message.parts.len();

    // Walk the multipart tree from the root: depth and parent of each reachable part;
    // containers at MAX_DEPTH are cut, and parts below them dropped.
    let mut depth = vec![usize::MAX; count];
    let mut parent_digest = vec![false; count];
    let mut cut = vec![false; count];
    let mut order = Vec::with_capacity(count);
    if count > 0 {
        depth[0] = root_depth;
        let mut stack = vec![0usize];
        while let Some(id) = stack.pop() {
            order.push(id);
            if let PartType::Multipart(children) = &message.parts[id].body {
                if depth[id] >= MAX_DEPTH {
                    cut[id] = true;
                    continue;
                }
                let digest = is_type(&message.parts[id], "multipart", "digest");
                for &child in children.iter().rev() {
                    let child = child as usize;
                    // Each part has one parent; ignore anything else defensively.
                    if child < count && depth[child] == usize::MAX && child != 0 {
                        depth[child] = depth[id] + 1;
                        parent_digest[child] = digest;
                        stack.push(child);
                    }
                }
            }
        }
    }
    order.sort_unstable();
    let mut new_index = vec![usize::MAX; count];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }

    let mut parts = Vec::with_capacity(order.len());
    let mut nested = Vec::new();
    for &old in &order {
        let src = &mut message.parts[old];
        let (part, child) = convert_part(raw, src, parent_digest[old], cut[old], &new_index);
        if let Some(child) = child {
            if depth[old] < MAX_DEPTH {
                nested.push((parts.len(), child, depth[old] + 1));
            } else {
                // Too deep to expose: the part stays a leaf, and the nested message
                // (itself arbitrarily deep) is taken apart without recursion.
                drop_iteratively(child);
            }
        }
        parts.push(part);
    }

    let remap = |ids: &[u32]| -> Vec<usize> {
        ids.iter()
            .filter_map(|&id| new_index.get(id as usize).copied().filter(|&i| i != usize::MAX))
            .collect()
    };
    let mut converted = ParsedMessage {
        text_body: remap(&message.text_body),
        html_body: remap(&message.html_body),
        attachments: remap(&message.attachments),
        ..Default::default()
    };
    if let Some(root) = message.parts.first() {
        envelope(raw, &root.headers, &mut converted);
    }
    converted.parts = parts;
    converted.preview = preview(&converted);
    (converted, nested)
}

/// Drops a `mail-parser` message whose nesting may be arbitrarily deep without
/// recursing once per level.
fn drop_iteratively(message: mail_parser::Message<'_>) {
    let mut stack = vec![message];
    while let Some(mut message) = stack.pop() {
        for part in message.parts.iter_mut() {
            if let PartType::Message(_) = part.body {
                if let PartType::Message(inner) = std::mem::take(&mut part.body) {
                    stack.push(inner);
                }
            }
        }
    }
}

fn is_type(part: &MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    part.headers
        .header_value(&HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
        .is_some_and(|ct| {
            ct.c_type.eq_ignore_ascii_case(ctype)
                && ct.c_subtype.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(subtype))
        })
}

fn params_of(ct: &ContentType<'_>) -> Vec<(String, String)> {
    ct.attributes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .collect()
}

fn text_of(value: Option<&HeaderValue<'_>>) -> Option<String> {
    match value? {
        HeaderValue::Text(text) => Some(text.to_string()),
        HeaderValue::TextList(list) => Some(list.join(" ")),
        HeaderValue::Empty => Some(String::new()),
        _ => None,
    }
}

fn list_of(value: Option<&HeaderValue<'_>>) -> Vec<String> {
    match value {
        Some(HeaderValue::Text(text)) if !text.is_empty() => vec![text.to_string()],
        Some(HeaderValue::TextList(list)) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn raw_headers(raw: &[u8], headers: &[mail_parser::Header<'_>]) -> Vec<RawHeader> {
    headers
        .iter()
        .map(|h| {
            let field_start = h.offset_field as usize;
            let value_start = (h.offset_start as usize).max(field_start);
            let end = (h.offset_end as usize).max(value_start).min(raw.len());
            let name_bytes = raw.get(field_start..value_start).unwrap_or_default();
            let name_bytes = name_bytes.strip_suffix(b":").unwrap_or(name_bytes);
            let name = String::from_utf8_lossy(name_bytes.trim_ascii()).into_owned();
            RawHeader { name, field_start, value_start: value_start.min(end), end }
        })
        .collect()
}

/// Converts one part; returns the nested message to convert, if any.
fn convert_part<'x>(
    raw: &'x [u8],
    src: &mut MessagePart<'x>,
    parent_is_digest: bool,
    cut: bool,
    new_index: &[usize],
) -> (Part, Option<mail_parser::Message<'x>>) {
    let len = raw.len();
    let header_start = (src.offset_header as usize).min(len);
    let body_start = (src.offset_body as usize).clamp(header_start, len);
    let body_end = (src.offset_end as usize).clamp(body_start, len);

    let headers = &src.headers;
    let ct = headers
        .header_value(&HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type);
    let (content_type, subtype, params) = match ct {
        Some(ct) if ct.c_subtype.as_deref().is_some_and(|s| !s.is_empty()) => (
            ct.c_type.to_ascii_lowercase(),
            ct.c_subtype.as_deref().unwrap_or_default().to_ascii_lowercase(),
            params_of(ct),
        ),
        // RFC 2045 section 5.2: a missing or syntactically invalid Content-Type means
        // the default; parameters of an invalid one are still kept.
        _ => {
            let (t, s) = if parent_is_digest { ("message", "rfc822") } else { ("text", "plain") };
            (t.to_string(), s.to_string(), ct.map(params_of).unwrap_or_default())
        }
    };
    let encoding = text_of(headers.header_value(&HeaderName::ContentTransferEncoding))
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty());
    let transfer = match src.encoding {
        Encoding::Base64 => Transfer::Base64,
        Encoding::QuotedPrintable => Transfer::QuotedPrintable,
        Encoding::None => Transfer::Identity,
    };
    let (disposition, disposition_params) = match headers
        .header_value(&HeaderName::ContentDisposition)
        .and_then(HeaderValue::as_content_type)
    {
        Some(cd) => (Some(cd.c_type.to_ascii_lowercase()), params_of(cd)),
        None => (None, Vec::new()),
    };
    let content_id = match headers.header_value(&HeaderName::ContentId) {
        Some(HeaderValue::Text(id)) => Some(id.to_string()),
        Some(HeaderValue::TextList(ids)) => ids.first().map(|id| id.to_string()),
        _ => None,
    };
    let mut part = Part {
        header_start,
        body_start,
        body_end,
        content_type,
        subtype,
        params,
        encoding,
        transfer,
        content_id,
        description: text_of(headers.header_value(&HeaderName::ContentDescription)),
        location: text_of(headers.header_value(&HeaderName::ContentLocation)),
        disposition,
        disposition_params,
        language: list_of(headers.header_value(&HeaderName::ContentLanguage)),
        lines: count_lines(&raw[body_start..body_end]),
        children: Vec::new(),
        message: None,
        headers: raw_headers(raw, headers),
        text: None,
        is_html: false,
        encoding_problem: src.is_encoding_problem,
    };

    let mut nested = None;
    match std::mem::take(&mut src.body) {
        PartType::Text(text) => part.text = Some(text.into_owned()),
        PartType::Html(text) => {
            part.text = Some(text.into_owned());
            part.is_html = true;
        }
        PartType::Binary(_) | PartType::InlineBinary(_) => {}
        PartType::Multipart(children) => {
            if !cut {
                part.children = children
                    .iter()
                    .filter_map(|&c| new_index.get(c as usize).copied())
                    .filter(|&c| c != usize::MAX)
                    .collect();
            }
        }
        PartType::Message(message) => {
            // Offsets of a message parsed out of an encoded body point into the decoded
            // bytes, not into `raw`: such a part stays a leaf.
            if src.encoding == Encoding::None && !message.parts.is_empty() {
                nested = Some(message);
            } else {
                drop_iteratively(message);
            }
        }
    }
    if part.encoding_problem && part.children.is_empty() && nested.is_none() {
        recover_encoding(raw, &mut part);
    }
    (part, nested)
}

/// `mail-parser` gives up on a base64 or quoted-printable body when the closing
/// boundary is missing or on a malformed quoted-printable escape, and exposes the raw
/// text. Decode such a body leniently instead, as RFC 2045 section 6.7 advises (an "="
/// not followed by two hex digits is kept as it is).
fn recover_encoding(raw: &[u8], part: &mut Part) {
    let transfer = match part.encoding.as_deref() {
        Some("base64") => Transfer::Base64,
        Some("quoted-printable") => Transfer::QuotedPrintable,
        _ => return,
    };
    let body = &raw[part.body_start..part.body_end];
    let decoded = match transfer {
        Transfer::Base64 => lenient_base64(body),
        _ => lenient_quoted_printable(body),
    };
    part.transfer = transfer;
    part.encoding_problem = false;
    part.text = (part.content_type == "text").then(|| {
        let charset = part.params.iter().find(|(n, _)| n == "charset").map(|(_, v)| v.as_bytes());
        match charset.and_then(charset_decoder) {
            Some(decoder) => decoder(&decoded),
            None => String::from_utf8_lossy(&decoded).into_owned(),
        }
    });
}

/// Base64 decoding that never fails (RFC 2045 section 6.8: characters outside the
/// alphabet are ignored); it stops at the first padding "=", so text appended after the
/// encoded data (mailing-list footers) is dropped when the data ends with padding.
pub fn lenient_base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in body {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable decoding that never fails (RFC 2045 section 6.7): soft line breaks
/// removed, "=XX" decoded, any other "=" kept, trailing white space of lines dropped.
pub fn lenient_quoted_printable(body: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(body.len());
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let has_cr = line.last() == Some(&b'\r');
        let line = if has_cr { &line[..line.len() - 1] } else { line };
        let line = line.trim_ascii_end();
        let soft = line.last() == Some(&b'=');
        let line = if soft { &line[..line.len() - 1] } else { line };
        let mut i = 0;
        while i < line.len() {
            match (line[i], line.get(i + 1).copied().and_then(hex), line.get(i + 2).copied().and_then(hex)) {
                (b'=', Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        if !soft && lines.peek().is_some() {
            out.extend_from_slice(if has_cr { b"\r\n" } else { b"\n" });
        }
    }
    out
}

fn addresses(value: Option<&HeaderValue<'_>>) -> Vec<AddressGroup> {
    let mailbox = |a: &mail_parser::Addr<'_>| Mailbox {
        name: a.name.as_ref().map(|n| n.to_string()),
        address: a.address.as_ref().map(|a| a.to_string()),
    };
    match value {
        Some(HeaderValue::Address(Address::List(list))) => {
            vec![AddressGroup { name: None, addresses: list.iter().map(mailbox).collect() }]
        }
        Some(HeaderValue::Address(Address::Group(groups))) => groups
            .iter()
            .map(|g| AddressGroup {
                name: g.name.as_ref().map(|n| n.to_string()),
                addresses: g.addresses.iter().map(mailbox).collect(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Fills the envelope fields from a message's root header. Where a field occurs more
/// than once the last occurrence wins (RFC 8621 section 4.1.3).
fn envelope(raw: &[u8], headers: &Vec<mail_parser::Header<'_>>, out: &mut ParsedMessage) {
    out.subject = text_of(headers.header_value(&HeaderName::Subject));
    out.from = addresses(headers.header_value(&HeaderName::From));
    out.sender = addresses(headers.header_value(&HeaderName::Sender));
    out.reply_to = addresses(headers.header_value(&HeaderName::ReplyTo));
    out.to = addresses(headers.header_value(&HeaderName::To));
    out.cc = addresses(headers.header_value(&HeaderName::Cc));
    out.bcc = addresses(headers.header_value(&HeaderName::Bcc));
    if let Some(header) = headers.header(HeaderName::Date) {
        let value = raw
            .get(header.offset_start as usize..header.offset_end as usize)
            .unwrap_or_default();
        let value = unfold(value);
        out.date = DateTime::parse_rfc822(&value)
            .filter(DateTime::is_valid)
            .map(|dt| dt.to_timestamp());
        out.date_raw = Some(value);
    }
    out.message_id = ids(headers.header_value(&HeaderName::MessageId)).into_iter().next();
    out.in_reply_to = ids(headers.header_value(&HeaderName::InReplyTo));
    out.references = ids(headers.header_value(&HeaderName::References));
}

/// Message identifiers (RFC 5322 section 3.6.4). An id that runs over a line break
/// comes from an unclosed "<" swallowing the following lines: it is cut there.
fn ids(value: Option<&HeaderValue<'_>>) -> Vec<String> {
    list_of(value)
        .into_iter()
        .filter_map(|id| {
            let id = match id.find(['\r', '\n']) {
                Some(end) => id[..end].trim_end().to_string(),
                None => id,
            };
            (!id.is_empty()).then_some(id)
        })
        .collect()
}

/// A raw header value as one line: folding line breaks removed, ends trimmed.
pub fn unfold(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch != '\r' && ch != '\n' {
            out.push(ch);
        }
    }
    out.trim().to_string()
}

/// RFC 8621 `preview`: the text of the text body parts (HTML converted to text), white
/// space collapsed, at most [`PREVIEW_CHARS`] characters.
pub fn preview(message: &ParsedMessage) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut pending_space = false;
    for &id in &message.text_body {
        let Some(part) = message.parts.get(id) else { continue };
        let Some(text) = &part.text else { continue };
        let converted;
        let text = if part.is_html {
            converted = html_to_text(text);
            converted.as_str()
        } else {
            text.as_str()
        };
        for ch in text.chars() {
            if ch.is_whitespace() || ch.is_control() {
                pending_space = chars > 0;
                continue;
            }
            if pending_space {
                if chars + 1 >= PREVIEW_CHARS {
                    return out;
                }
                out.push(' ');
                chars += 1;
                pending_space = false;
            }
            out.push(ch);
            chars += 1;
            if chars >= PREVIEW_CHARS {
                return out;
            }
        }
        pending_space = chars > 0;
    }
    out
}

#[cfg(test)]
mod tests;
