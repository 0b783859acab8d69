//! The incremental IMAP command reader (framing, limits, modes), sans-IO.
//!
//! Bytes go in with `receive_data`; `next_event` hands out `Event`s until `NeedData`. This
//! is the state machine of the reference `Parser` in `grammar_ref.py`, transcribed so that
//! both produce the same events for every input cut in any way.
//!
//! Framing (RFC 9051 sections 2.2, 4.3, 7.5; RFC 7888 LITERAL+; RFC 3516 literal8): a
//! command is one or more lines; a line ending with `{n}`, `{n+}` or `~{n}` (outside a
//! quoted string) is followed by exactly n octets, and the command goes on after them.
//! Lines end with CRLF or a bare LF.
//!
//! Invariants:
//! - Memory: the line buffer holds at most what was fed since the caller last drained
//!   events plus one partial line; a line longer than `max_line` is dropped as it arrives
//!   and reported once, at its LF (the reference `LineReader`). Literal octets are moved
//!   from the line buffer into the literal as they arrive (streamed, never re-scanned for
//!   line ends), and a literal is accepted only when its announced size is within the
//!   limits, so `{4294967295}` is refused before one octet of it is read or reserved.
//!   The literal's buffer grows with the octets received (doubling, capped at the announced
//!   size, so nothing is reserved for data not yet sent), and when the reader runs out of
//!   input it gives back the memory of a burst (`IDLE_CAPACITY` kept).
//! - A refused synchronizing literal is answered at once (BAD/NO [TOOBIG]) and the client
//!   does not send it; a refused non-synchronizing one is read and dropped without being
//!   stored (up to `max_discard`, else BYE: RFC 7888 section 4).
//! - After any error the reader is at the start of the next command.
//! - With `stream_append` on, the message literals (APPEND, REPLACE, UID REPLACE:
//!   `is_message_command`) are not collected at all: their octets leave as
//!   `Event::LiteralData` chunks (each at most what was buffered) and the command carries
//!   an empty literal in their place, so a message of any size costs the reader no more
//!   than one input burst; the caller spools the chunks (IMAP session: a blob writer) and
//!   pairs them with the command's messages in order.
//! - Work is linear in the octets fed: each octet is looked at for a line end once.

use super::commands::{parse_command, tag_and_name};
use super::cursor::{literal_marker, Host};
use super::value::{Event, ImapError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_line: usize,
    pub max_command: i64,
    pub max_literal: i64,
    pub max_append: i64,
    pub max_append_total: i64,
    pub max_discard: i64,
    pub max_depth: i64,
    pub max_args: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 64 * 1024,
            max_command: 2 * 1024 * 1024,
            max_literal: 1024 * 1024,
            max_append: 50 * 1024 * 1024,
            max_append_total: 200 * 1024 * 1024,
            max_discard: 50 * 1024 * 1024,
            max_depth: 32,
            max_args: 10000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Command,
    Idle,
    Sasl,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Command => "command",
            Mode::Idle => "idle",
            Mode::Sasl => "sasl",
        }
    }
}

/// Why `next_event` stopped without an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The client broke the grammar or a limit.
    Imap(ImapError),
    /// A host callback failed (its error is kept by the host).
    Host,
    /// The caller used the reader wrongly (a bug on this side).
    Local(&'static str),
}

impl From<ImapError> for Stop {
    fn from(e: ImapError) -> Self {
        Stop::Imap(e)
    }
}

/// The literal size limit for a command, asked of the host (e.g. smaller before login).
pub trait LiteralLimit {
    /// `Ok(None)` for the default (`max_append` for APPEND, `max_literal` otherwise).
    fn literal_limit(&mut self, name: &str) -> Result<Option<i64>, ()>;
}

enum Next {
    Line(usize, usize),
    NeedData,
    TooLong,
}

pub struct Parser {
    pub limits: Limits,
    pub utf8: bool,
    pub mode: Mode,
    /// Hand message literals (APPEND, REPLACE, UID REPLACE) out as `Event::LiteralData`
    /// chunks instead of collecting them.
    pub stream_append: bool,
    streaming: bool,
    // line reader
    buf: Vec<u8>,
    head: usize,
    scanned: usize,
    discarding: bool,
    // the command being read
    parts: Vec<Vec<u8>>,
    literals: Vec<(Vec<u8>, bool)>,
    size: u64,
    tag: Option<String>,
    name: Option<String>,
    literal_left: u64,
    literal8: bool,
    literal_buf: Vec<u8>,
    skipping: bool,
    discard: u64,
}

/// The line buffer capacity an idle reader keeps.
const IDLE_CAPACITY: usize = 16 * 1024;

/// Commands whose literal is a message: APPENDLIMIT applies (RFC 7889), a refusal is
/// NO [TOOBIG] rather than BAD.
pub fn is_message_command(name: &str) -> bool {
    matches!(name, "APPEND" | "REPLACE" | "UID REPLACE")
}

fn find_lf(data: &[u8]) -> Option<usize> {
    data.iter().position(|&c| c == b'\n')
}

fn over(value: u64, limit: i64) -> bool {
    value as i128 > limit as i128
}

impl Parser {
    pub fn new(limits: Limits, utf8: bool) -> Self {
        Parser {
            limits,
            utf8,
            mode: Mode::Command,
            stream_append: false,
            streaming: false,
            buf: Vec::new(),
            head: 0,
            scanned: 0,
            discarding: false,
            parts: Vec::new(),
            literals: Vec::new(),
            size: 0,
            tag: None,
            name: None,
            literal_left: 0,
            literal8: false,
            literal_buf: Vec::new(),
            skipping: false,
            discard: 0,
        }
    }

    pub fn receive_data(&mut self, data: &[u8]) {
        if self.head > 0 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Octets of memory held by the buffers (capacity), for tests and diagnostics.
    pub fn memory(&self) -> usize {
        self.buf.capacity() + self.literal_buf.capacity()
    }

    /// Octets received and not yet consumed (0 is required when STARTTLS starts).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Drops every buffered octet (the plaintext pipelined behind STARTTLS).
    pub fn discard_buffer(&mut self) -> Result<Vec<u8>, Stop> {
        self.reset();
        if self.discarding {
            return Err(Stop::Local("take() while discarding an over-long line"));
        }
        let out = self.buf[self.head..].to_vec();
        self.buf.clear();
        self.head = 0;
        self.scanned = 0;
        Ok(out)
    }

    /// The session answered a `Continuation` with a tagged response instead of "+": the
    /// client will not send the literal, so forget the command.
    pub fn refuse_literal(&mut self) {
        self.reset();
    }

    fn reset(&mut self) {
        self.parts.clear();
        self.literals.clear();
        self.size = 0;
        self.tag = None;
        self.name = None;
        self.literal_left = 0;
        self.literal8 = false;
        self.literal_buf = Vec::new();
        self.skipping = false;
        self.streaming = false;
    }

    fn consume(&mut self, n: usize) {
        self.head += n;
        self.scanned = 0;
    }

    fn next_line(&mut self) -> Next {
        let max = self.limits.max_line;
        let data = &self.buf[self.head..];
        if self.discarding {
            return match find_lf(data) {
                None => {
                    self.buf.clear();
                    self.head = 0;
                    Next::NeedData
                }
                Some(p) => {
                    self.head += p + 1;
                    self.discarding = false;
                    Next::TooLong
                }
            };
        }
        let limit = data.len().min(max);
        if let Some(p) = find_lf(&data[self.scanned.min(limit)..limit]) {
            let start = self.head;
            let end = start + self.scanned.min(limit) + p + 1;
            self.head = end;
            self.scanned = 0;
            return Next::Line(start, end);
        }
        if data.len() < max {
            self.scanned = data.len();
            return Next::NeedData;
        }
        // No LF within max_line octets: the line is too long whatever follows.
        self.scanned = 0;
        match find_lf(&data[max..]) {
            None => {
                self.buf.clear();
                self.head = 0;
                self.discarding = true;
                Next::NeedData
            }
            Some(p) => {
                self.head += max + p + 1;
                Next::TooLong
            }
        }
    }

    /// The next event, `Event::NeedData`, or why there is none.
    pub fn next_event(&mut self, host: &mut dyn Host, limit: &mut dyn LiteralLimit) -> Result<Event, Stop> {
        let event = self.next_event_inner(host, limit);
        if matches!(event, Ok(Event::NeedData)) {
            self.trim();
        }
        event
    }

    /// Gives back the memory of a burst once it is consumed: an idle connection keeps a
    /// small buffer, whatever it was sent before (many IDLE clients per worker).
    fn trim(&mut self) {
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
            self.scanned = 0;
        }
        if self.buf.capacity() > IDLE_CAPACITY && self.buf.len() - self.head <= IDLE_CAPACITY / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
            self.buf.shrink_to(IDLE_CAPACITY);
        }
        if self.literal_left == 0 && self.literal_buf.capacity() > 0 && self.literal_buf.is_empty() {
            self.literal_buf = Vec::new();
        }
    }

    fn next_event_inner(&mut self, host: &mut dyn Host, limit: &mut dyn LiteralLimit) -> Result<Event, Stop> {
        loop {
            if self.discard > 0 {
                let n = (self.buffered() as u64).min(self.discard);
                self.consume(n as usize);
                self.discard -= n;
                if self.discard > 0 {
                    return Ok(Event::NeedData);
                }
                continue;
            }
            if self.literal_left > 0 {
                let n = (self.buffered() as u64).min(self.literal_left) as usize;
                if n == 0 {
                    return Ok(Event::NeedData);
                }
                if self.streaming {
                    let chunk = self.buf[self.head..self.head + n].to_vec();
                    self.consume(n);
                    self.literal_left -= n as u64;
                    let last = self.literal_left == 0;
                    if last {
                        self.streaming = false;
                        self.literals.push((Vec::new(), self.literal8));
                    }
                    return Ok(Event::LiteralData(chunk, last));
                }
                // Grow by doubling, never past the announced size: memory follows the
                // octets received (a client announcing 50 MB and sending 1 KB costs 1 KB)
                // and a finished literal holds no spare capacity.
                let len = self.literal_buf.len();
                if len + n > self.literal_buf.capacity() {
                    let total = len + self.literal_left as usize;
                    let target = (self.literal_buf.capacity() * 2).max(len + n).min(total);
                    self.literal_buf.reserve_exact(target - len);
                }
                self.literal_buf.extend_from_slice(&self.buf[self.head..self.head + n]);
                self.consume(n);
                self.literal_left -= n as u64;
                if self.literal_left > 0 {
                    return Ok(Event::NeedData);
                }
                let data = std::mem::take(&mut self.literal_buf);
                self.literals.push((data, self.literal8));
                continue;
            }
            match self.next_line() {
                Next::NeedData => return Ok(Event::NeedData),
                Next::TooLong => {
                    let tag = self.tag.take();
                    let skipping = self.skipping;
                    self.reset();
                    if skipping {
                        continue;
                    }
                    let mut err = ImapError::new(format!(
                        "Line too long (limit {} octets)",
                        self.limits.max_line
                    ));
                    err.tag = tag;
                    err.code = Some("TOOBIG");
                    return Err(Stop::Imap(err));
                }
                Next::Line(start, end) => {
                    let end = if end - start >= 2 && self.buf[end - 2] == b'\r' { end - 2 } else { end - 1 };
                    // The line stays in `buf` (consumed but not yet dropped) while it is read.
                    let buf = std::mem::take(&mut self.buf);
                    let result = self.line(&buf[start..end], host, limit);
                    self.buf = buf;
                    if let Some(event) = result? {
                        return Ok(event);
                    }
                }
            }
        }
    }

    fn line(&mut self, line: &[u8], host: &mut dyn Host, limit: &mut dyn LiteralLimit) -> Result<Option<Event>, Stop> {
        if self.skipping {
            match literal_marker(line) {
                Some(m) if m.nonsync => self.discard_literal(m.size),
                _ => self.reset(),
            }
            return Ok(None);
        }
        if self.parts.is_empty() {
            match self.mode {
                Mode::Idle => {
                    self.mode = Mode::Command;
                    if line.eq_ignore_ascii_case(b"DONE") {
                        return Ok(Some(Event::IdleDone));
                    }
                    return Err(ImapError::new("Expected DONE to end IDLE").into());
                }
                Mode::Sasl => return Ok(Some(Event::SaslResponse(line.to_vec()))),
                Mode::Command => {}
            }
            if line.is_empty() {
                return Ok(None); // empty lines between commands are ignored, as most servers do
            }
            let (tag, name) = tag_and_name(line);
            if tag.is_none() {
                self.reset();
                if let Some(m) = literal_marker(line) {
                    if m.nonsync {
                        self.discard_literal(m.size);
                    }
                }
                return Err(ImapError::new("Invalid tag").into());
            }
            self.tag = tag;
            self.name = name;
        }
        self.size = self.size.saturating_add(line.len() as u64 + 2);
        let marker = literal_marker(line);
        let name = self.name.clone().unwrap_or_default();
        let Some(marker) = marker else {
            let tag_name = (self.tag.take(), self.name.take());
            let size = self.size;
            let tag = tag_name.0.clone();
            let mut parts = std::mem::take(&mut self.parts);
            let literals = std::mem::take(&mut self.literals);
            self.reset();
            if over(size, self.command_limit(&name)) {
                let mut err = ImapError::new("Command too long").tagged(tag);
                err.code = Some("TOOBIG");
                return Err(err.into());
            }
            let limits = self.limits;
            let result = if parts.is_empty() {
                parse_command(&[line], literals, &limits, self.utf8, host, Some(tag_name))
            } else {
                parts.push(line.to_vec());
                let views: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                parse_command(&views, literals, &limits, self.utf8, host, Some(tag_name))
            };
            return result.map(|c| Some(Event::Command(c))).map_err(Stop::Imap);
        };
        self.parts.push(line.to_vec());
        let size_limit = match limit.literal_limit(&name) {
            Err(()) => return Err(Stop::Host),
            Ok(Some(v)) => v,
            Ok(None) if is_message_command(&name) => self.limits.max_append,
            Ok(None) => self.limits.max_literal,
        };
        let total = self.size.saturating_add(marker.size);
        if over(marker.size, size_limit) || over(total, self.command_limit(&name)) {
            let tag = self.tag.clone();
            let append = is_message_command(&name);
            self.reset();
            let mut close = false;
            if marker.nonsync {
                // RFC 7888 4: the data is on its way; read and drop it, or hang up when
                // there is too much of it to be worth reading.
                close = over(marker.size, self.limits.max_discard);
                if !close {
                    self.skipping = true;
                    self.discard = marker.size;
                }
            }
            return Err(Stop::Imap(ImapError {
                message: format!(
                    "{} of {} octets is over the limit of {size_limit} octets",
                    if append { "Message" } else { "Literal" },
                    marker.size_text
                ),
                reply: if append { "NO" } else { "BAD" },
                tag,
                code: Some("TOOBIG"),
                close,
            }));
        }
        self.size = total;
        self.literal_left = marker.size;
        self.literal8 = marker.binary;
        self.streaming = self.stream_append && marker.size > 0 && is_message_command(&name);
        if marker.size == 0 {
            self.literals.push((Vec::new(), marker.binary)); // nothing to wait for: complete already
        }
        if !marker.nonsync {
            let tag = self.tag.clone().unwrap_or_else(|| "*".into());
            return Ok(Some(Event::Continuation(tag, name, marker.size)));
        }
        Ok(None)
    }

    /// Drops a non-synchronizing literal of a command already refused.
    fn discard_literal(&mut self, size: u64) {
        self.discard = size.min(self.limits.max_discard.max(0) as u64);
    }

    fn command_limit(&self, name: &str) -> i64 {
        if name == "APPEND" {
            self.limits.max_append_total
        } else if is_message_command(name) {
            self.limits.max_append.saturating_add(self.limits.max_line as i64)
        } else {
            self.limits.max_command
        }
    }
}
