//! DKIM (RFC 6376) and ARC (RFC 8617) message work that runs per message: splitting the
//! raw message into header fields and body, header canonicalization (3.4.1 simple, 3.4.2
//! relaxed), emptying the `b=` tag of a signature field (3.7), and body canonicalization
//! (3.4.3 simple, 3.4.4 relaxed) streamed straight into SHA-256 with the `l=` limit.
//!
//! The Python module `stalwart/mailauth/canon.py` keeps the reference implementation of
//! every function here, and this module must give byte-identical results for *any* input,
//! including input no conforming message has (bare CR, bare LF, a field without a colon):
//! `tests/unit/test_canon_native.py` compares both on a real corpus and on edge cases.
//! The rules below are those of the reference, stated once:
//!
//! Splitting (`split`)
//!   - a bare LF (one not preceded by CR) becomes CRLF first;
//!   - a message starting with CRLF has no fields and its body is the rest;
//!   - otherwise the header ends at the first CRLF CRLF (no such pair: the whole message
//!     is header and the body is empty); the header is cut at each CRLF not followed by
//!     SP or HTAB; a piece is a field when it has a colon after at least one byte, does
//!     not start with WSP, and its name (before the colon, trailing WSP removed) is not
//!     empty and has no SP, HTAB or CR. Other pieces are skipped. A field's raw bytes are
//!     the piece plus CRLF; its name is lower-cased (ASCII only).
//!
//! Relaxed header (`relaxed_header`)
//!   name = bytes before the first colon (all of them when there is none), trailing WSP
//!   removed, ASCII lower-cased; value = the rest with every CRLF removed (one left-to-
//!   right pass), one final CR dropped, WSP runs made one SP, SP removed at both ends;
//!   result `name ":" value CRLF`.
//!
//! Body (`BodyHasher`)
//!   Both methods drop the trailing CRLFs of the body and end a non-empty result with
//!   CRLF; `simple` turns an empty result into one CRLF, `relaxed` leaves it empty and
//!   also makes each WSP run one SP, drops an SP just before a CRLF and at the very end.
//!   A line end is exactly CR LF; a bare CR or bare LF is an ordinary byte. The hasher
//!   streams: `update` may be called with any split of the body, and only a bounded state
//!   (pending blank lines, a pending WSP, a pending CR) is kept between calls. The
//!   canonical body is never built: bytes go to SHA-256, at most `limit` of them, and the
//!   full canonical length is counted.
//!
//! Nothing here panics on any input; `strip_b_value` is the only fallible function (a
//! field without a colon).

use std::borrow::Cow;

use sha2::{Digest, Sha256};

const CRLF: &[u8] = b"\r\n";

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

// ------------------------------------------------------------------------------ message

/// One header field of a split message, as positions in [`Split::buf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    /// Start of the field (its name).
    pub start: usize,
    /// End of the name, trailing WSP removed.
    pub name_end: usize,
    /// End of the field's last line, before its CRLF.
    pub end: usize,
}

/// A message split into header fields and body (see the module notes).
#[derive(Debug)]
pub struct Split<'a> {
    /// The message with bare LFs made CRLF (borrowed when there were none).
    pub buf: Cow<'a, [u8]>,
    pub fields: Vec<FieldSpan>,
    pub body_start: usize,
}

impl Split<'_> {
    /// The field name, lower case.
    pub fn lname(&self, f: &FieldSpan) -> Vec<u8> {
        self.buf[f.start..f.name_end].to_ascii_lowercase()
    }

    /// The whole field with its folding and final CRLF.
    pub fn raw(&self, f: &FieldSpan) -> Cow<'_, [u8]> {
        if self.buf.get(f.end..f.end + 2) == Some(CRLF) {
            Cow::Borrowed(&self.buf[f.start..f.end + 2])
        } else {
            let mut v = Vec::with_capacity(f.end - f.start + 2);
            v.extend_from_slice(&self.buf[f.start..f.end]);
            v.extend_from_slice(CRLF);
            Cow::Owned(v)
        }
    }

    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_start..]
    }
}

fn has_bare_lf(message: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', message).any(|p| p == 0 || message[p - 1] != b'\r')
}

/// `message` with every LF not preceded by CR made CRLF.
pub fn normalize_line_ends(message: &[u8]) -> Cow<'_, [u8]> {
    if !has_bare_lf(message) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    let mut prev = 0u8;
    for &c in message {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    Cow::Owned(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The piece `buf[start..end]` as a field, if it is one.
fn field(buf: &[u8], start: usize, end: usize) -> Option<FieldSpan> {
    let piece = &buf[start..end];
    let colon = piece.iter().position(|&c| c == b':')?;
    if colon == 0 || is_wsp(piece[0]) {
        return None;
    }
    let mut name_end = colon;
    while name_end > 0 && is_wsp(piece[name_end - 1]) {
        name_end -= 1;
    }
    let name = &piece[..name_end];
    if name.is_empty() || name.iter().any(|&c| c == b' ' || c == b'\r' || c == b'\t') {
        return None;
    }
    Some(FieldSpan { start, name_end: start + name_end, end })
}

/// The header fields in order and where the body starts (see the module notes).
pub fn split(message: &[u8]) -> Split<'_> {
    let buf = normalize_line_ends(message);
    if buf.starts_with(CRLF) {
        return Split { buf, fields: Vec::new(), body_start: 2 };
    }
    let (head_end, body_start) = match find(&buf, b"\r\n\r\n") {
        Some(end) => (end, end + 4),
        None if buf.ends_with(CRLF) => (buf.len() - 2, buf.len()),
        None => (buf.len(), buf.len()),
    };
    let head = &buf[..head_end];
    let mut fields = Vec::new();
    let mut start = 0;
    for lf in memchr::memchr_iter(b'\n', head) {
        // a CRLF not followed by WSP ends a field
        if lf == 0 || head[lf - 1] != b'\r' || head.get(lf + 1).is_some_and(|&c| is_wsp(c)) {
            continue;
        }
        fields.extend(field(&buf, start, lf - 1));
        start = lf + 1;
    }
    fields.extend(field(&buf, start, head_end));
    Split { buf, fields, body_start }
}

// ------------------------------------------------------------------------------ headers

/// RFC 6376 3.4.2 for one whole field (`raw` may or may not end in CRLF), appended to `out`.
pub fn relaxed_header_into(raw: &[u8], out: &mut Vec<u8>) {
    let (name, value) = match raw.iter().position(|&c| c == b':') {
        Some(colon) => (&raw[..colon], &raw[colon + 1..]),
        None => (raw, &raw[raw.len()..]),
    };
    let mut name_end = name.len();
    while name_end > 0 && is_wsp(name[name_end - 1]) {
        name_end -= 1;
    }
    out.extend(name[..name_end].iter().map(|c| c.to_ascii_lowercase()));
    out.push(b':');
    // The value without its CRLFs, then without one final CR.
    let mut unfolded: Vec<u8> = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'\r' && value.get(i + 1) == Some(&b'\n') {
            i += 2;
        } else {
            unfolded.push(value[i]);
            i += 1;
        }
    }
    if unfolded.last() == Some(&b'\r') {
        unfolded.pop();
    }
    // WSP runs become one SP; SP at both ends goes.
    let mut pending_sp = false;
    let mut started = false;
    for &c in &unfolded {
        if is_wsp(c) {
            pending_sp = started;
        } else {
            if pending_sp {
                out.push(b' ');
                pending_sp = false;
            }
            out.push(c);
            started = true;
        }
    }
    out.extend_from_slice(CRLF);
}

pub fn relaxed_header(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 2);
    relaxed_header_into(raw, &mut out);
    out
}

/// The field with the value of its first `b=` tag emptied (RFC 6376 3.7), everything
/// else kept byte for byte. Only the part after the first colon is searched; the tag is
/// found at the start of that part or after a `;`, with FWS allowed around the name.
/// `None` when the field has no colon.
pub fn strip_b_value(raw: &[u8]) -> Option<Cow<'_, [u8]>> {
    let colon = raw.iter().position(|&c| c == b':')? + 1;
    let fws = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let mut candidate = Some(colon);
    let mut search = colon;
    while let Some(mut j) = candidate {
        while j < raw.len() && fws(raw[j]) {
            j += 1;
        }
        if raw.get(j) == Some(&b'b') {
            j += 1;
            while j < raw.len() && fws(raw[j]) {
                j += 1;
            }
            if raw.get(j) == Some(&b'=') {
                let value_start = j + 1;
                let value_end = raw[value_start..]
                    .iter()
                    .position(|&c| c == b';')
                    .map_or(raw.len(), |p| value_start + p);
                if value_end == value_start {
                    return Some(Cow::Borrowed(raw));
                }
                let mut out = Vec::with_capacity(raw.len() - (value_end - value_start));
                out.extend_from_slice(&raw[..value_start]);
                out.extend_from_slice(&raw[value_end..]);
                return Some(Cow::Owned(out));
            }
        }
        candidate = raw[search..].iter().position(|&c| c == b';').map(|p| search + p + 1);
        if let Some(next) = candidate {
            search = next;
        }
    }
    Some(Cow::Borrowed(raw))
}

/// What a signature signs of the header (RFC 6376 5.4.2, 3.7): each field of `fields`
/// canonicalized, then the signature field with an empty `b=`, canonicalized, without
/// its final CRLF. `None` when the signature field has no colon.
pub fn header_data<'f, I>(fields: I, relaxed: bool, signature: &[u8]) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = &'f [u8]>,
{
    let stripped = strip_b_value(signature)?;
    let mut out = Vec::with_capacity(1024);
    for raw in fields {
        if relaxed {
            relaxed_header_into(raw, &mut out);
        } else {
            out.extend_from_slice(raw);
        }
    }
    if relaxed {
        relaxed_header_into(&stripped, &mut out);
    } else {
        out.extend_from_slice(&stripped);
    }
    if out.ends_with(CRLF) {
        out.truncate(out.len() - 2);
    }
    Some(out)
}

// ------------------------------------------------------------------------------ body

/// Where canonical body bytes go: SHA-256 of the first `limit` bytes, and the count.
struct Sink {
    hasher: Sha256,
    limit: u64,
    length: u64,
    /// Also keep the bytes (only `canonical_body` asks for this).
    copy: Option<Vec<u8>>,
}

impl Sink {
    fn write(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.length);
        if room > 0 {
            let take = if (data.len() as u64) > room { room as usize } else { data.len() };
            self.hasher.update(&data[..take]);
        }
        self.length += data.len() as u64;
        if let Some(copy) = self.copy.as_mut() {
            copy.extend_from_slice(data);
        }
    }
}

const CRLFS: &[u8; 128] = b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\
\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\
\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\
\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";

/// Streaming body canonicalization into SHA-256 (see the module notes).
pub struct BodyHasher {
    relaxed: bool,
    sink: Sink,
    /// Blank-line CRLFs seen and not yet written (dropped if the body ends).
    crlfs: u64,
    /// A WSP run seen and not yet written (relaxed only).
    wsp: bool,
    /// A CR seen as the last byte: a line end if LF follows, content otherwise.
    cr: bool,
    /// Some byte other than trailing line ends was written.
    content: bool,
}

impl BodyHasher {
    /// `limit`: hash at most this many canonical bytes (`l=`); `None` for all.
    pub fn new(relaxed: bool, limit: Option<u64>) -> Self {
        BodyHasher {
            relaxed,
            sink: Sink {
                hasher: Sha256::new(),
                limit: limit.unwrap_or(u64::MAX),
                length: 0,
                copy: None,
            },
            crlfs: 0,
            wsp: false,
            cr: false,
            content: false,
        }
    }

    /// Writes what is pending before a content byte: the held CRLFs, then the SP.
    fn flush_pending(&mut self) {
        while self.crlfs > 0 {
            let n = self.crlfs.min((CRLFS.len() / 2) as u64);
            self.sink.write(&CRLFS[..(n * 2) as usize]);
            self.crlfs -= n;
        }
        if self.wsp {
            self.sink.write(b" ");
            self.wsp = false;
        }
        self.content = true;
    }

    /// The next byte at or after `from` that is not plain content: CR, and in relaxed
    /// mode a WSP run (a lone SP between two content bytes is content and stays inside
    /// the span, which keeps spans long on text).
    ///
    /// A CRLF between two content bytes (after at least one content byte of the span, so
    /// no WSP is pending before it, and before a byte that is neither CR nor WSP) is
    /// content too.
    fn next_special(&self, data: &[u8], from: usize) -> usize {
        let plain = |c: u8| !is_wsp(c) && c != b'\r';
        let mut at = from;
        while let Some(p) = memchr::memchr3(b'\r', b' ', b'\t', &data[at..]) {
            let p = at + p;
            if data[p] == b' ' && data.get(p + 1).is_some_and(|&c| plain(c)) {
                at = p + 1;
                continue;
            }
            if data[p] == b'\r'
                && p > from
                && data.get(p + 1) == Some(&b'\n')
                && data.get(p + 2).is_some_and(|&c| plain(c))
            {
                at = p + 2;
                continue;
            }
            return p;
        }
        data.len()
    }

    /// Simple canonicalization only drops the trailing CRLFs: everything of the chunk up
    /// to its final run of CRLFs (and a final CR, which may start one) is written at once.
    fn update_simple(&mut self, data: &[u8]) {
        let mut end = data.len();
        let cr = data.last() == Some(&b'\r');
        if cr {
            end -= 1;
        }
        let mut crlfs = 0;
        // An LF pairs with the byte before it, so pairs found from the end are the ones
        // a forward reading finds.
        while end >= 2 && &data[end - 2..end] == CRLF {
            end -= 2;
            crlfs += 1;
        }
        if end > 0 {
            self.flush_pending();
            self.sink.write(&data[..end]);
        }
        self.crlfs += crlfs;
        self.cr = cr;
    }

    pub fn update(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut i = 0;
        if self.cr {
            self.cr = false;
            if data[0] == b'\n' {
                self.wsp = false; // SP before a line end goes (relaxed)
                self.crlfs += 1;
                i = 1;
            } else {
                self.flush_pending();
                self.sink.write(b"\r");
            }
        } else if self.wsp {
            // a WSP run continued from the previous chunk
            while i < data.len() && is_wsp(data[i]) {
                i += 1;
            }
        }
        if !self.relaxed {
            self.update_simple(&data[i..]);
            return;
        }
        while i < data.len() {
            let next = self.next_special(data, i);
            if next > i {
                if self.crlfs > 0 || self.wsp || !self.content {
                    self.flush_pending();
                }
                self.sink.write(&data[i..next]);
            }
            if next == data.len() {
                break;
            }
            if data[next] == b'\r' {
                match data.get(next + 1) {
                    Some(b'\n') => {
                        self.wsp = false;
                        self.crlfs += 1;
                        i = next + 2;
                    }
                    Some(_) => {
                        // a bare CR is content
                        self.flush_pending();
                        self.sink.write(b"\r");
                        i = next + 1;
                    }
                    None => {
                        self.cr = true;
                        i = next + 1;
                    }
                }
            } else {
                let mut j = next + 1;
                while j < data.len() && is_wsp(data[j]) {
                    j += 1;
                }
                self.wsp = true;
                i = j;
            }
        }
    }

    /// The SHA-256 of the (limited) canonical body and the canonical body's full length.
    pub fn finish(self) -> ([u8; 32], u64) {
        let sink = self.finish_sink();
        (sink.hasher.finalize().into(), sink.length)
    }

    fn finish_sink(mut self) -> Sink {
        if self.cr {
            self.flush_pending();
            self.sink.write(b"\r");
        }
        if self.content || !self.relaxed {
            self.sink.write(CRLF);
        }
        self.sink
    }
}

/// One-shot [`BodyHasher`].
pub fn body_hash(body: &[u8], relaxed: bool, limit: Option<u64>) -> ([u8; 32], u64) {
    let mut h = BodyHasher::new(relaxed, limit);
    h.update(body);
    h.finish()
}

/// The canonical body itself, for tests and diagnostics (the hot path never builds it).
pub fn canonical_body(body: &[u8], relaxed: bool) -> Vec<u8> {
    let mut h = BodyHasher::new(relaxed, Some(0));
    h.sink.copy = Some(Vec::with_capacity(body.len() + 2));
    h.update(body);
    h.finish_sink().copy.unwrap_or_default()
}

#[cfg(test)]
mod tests;
