//! The cursor over one complete IMAP command: its line parts and the literal that follows
//! each part but the last (RFC 9051 section 4.3: a literal is announced by `{n}`, `{n+}`
//! (RFC 7888) or `~{n}` (RFC 3516 literal8) at the very end of a line).
//!
//! Tokens (atoms, numbers, quoted strings, literals, astrings, nstrings, flags, sequence
//! sets, dates, mailbox names) are read here with the reference's rules and messages;
//! `commands.rs` builds the commands from them. Invariants kept from the reference:
//! - every argument read counts against `max_args` at the same point as the reference
//!   (`arg()`), and every "(" against `max_depth` (`open()`), so the same error wins when
//!   a command breaks several rules;
//! - numbers are at most 2^32-1 (number64 / mod-sequence at most 2^63-1); nz-number > 0;
//! - quoted strings take only `\"` and `\\` escapes and never CR, LF or NUL;
//! - literal data is moved out of the literal list, never copied, so an APPEND message is
//!   held once.

use super::chars::{self, Class};
use super::framer::Limits;
use super::mutf7;
use super::value::{Date, DateTime, SeqSet};

pub const MAX_U32: u64 = u32::MAX as u64;
pub const MAX_U63: u64 = i64::MAX as u64;

/// What the parser asks of its environment: charset conversions for SEARCH CHARSET and
/// the `repr` of non-ASCII text in error messages (Python's, when the host is Python).
pub trait Host {
    /// The canonical codec name for charset `name` (already upper-cased), or None when
    /// it is not supported.
    fn charset(&mut self, name: &str) -> Option<String>;
    /// `raw` decoded with `codec` (a name `charset` returned), or None when it does not
    /// decode. Never called for "utf-8" and "ascii", which are decoded natively.
    fn decode(&mut self, codec: &str, raw: &[u8]) -> Option<String>;
    /// Python's `repr()` of `text`.
    fn str_repr(&mut self, text: &str) -> String {
        chars::approx_str_repr(text)
    }
}

/// A host knowing only UTF-8 and US-ASCII (plain Rust use and tests).
pub struct PlainHost;

impl Host for PlainHost {
    fn charset(&mut self, name: &str) -> Option<String> {
        match name {
            "UTF-8" | "UTF8" | "U8" | "UTF" => Some("utf-8".into()),
            "US-ASCII" | "ASCII" | "US_ASCII" => Some("ascii".into()),
            _ => None,
        }
    }
    fn decode(&mut self, _codec: &str, _raw: &[u8]) -> Option<String> {
        None
    }
}

/// A syntax error inside one command (becomes an `ImapError` with the command's tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub message: String,
    pub reply: &'static str,
    pub code: Option<&'static str>,
}

pub type R<T> = Result<T, Bad>;

pub fn bad<T>(message: impl Into<String>) -> R<T> {
    Err(Bad { message: message.into(), reply: "BAD", code: None })
}

const MONTHS: [&[u8; 3]; 12] =
    [b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC"];

fn month(name: &[u8]) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    MONTHS.iter().position(|m| m[..] == upper[..]).map(|i| i as u8 + 1)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Python's `date(year, month, day)` succeeds.
fn valid_date(year: u32, month: u8, day: u32) -> Option<Date> {
    if !(1..=9999).contains(&year) || day == 0 || day > days_in_month(year as u16, month) as u32 {
        return None;
    }
    Some(Date { year: year as u16, month, day: day as u8 })
}

fn digits_value(raw: &[u8]) -> u32 {
    raw.iter().fold(0u32, |acc, &c| acc * 10 + (c - b'0') as u32)
}

/// (size as a saturated u64, size as written without leading zeros, non-synchronizing,
/// literal8) when `line` ends with a literal announcement outside any quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub size: u64,
    pub size_text: String,
    pub nonsync: bool,
    pub binary: bool,
    /// Where the announcement starts (at "~" for literal8, else at "{").
    pub start: usize,
}

pub fn literal_marker(line: &[u8]) -> Option<Marker> {
    let n = line.len();
    if n < 3 || line[n - 1] != b'}' {
        return None;
    }
    let mut j = n - 1;
    let nonsync = line[j - 1] == b'+';
    if nonsync {
        j -= 1;
    }
    let digits_end = j;
    while j > 0 && line[j - 1].is_ascii_digit() {
        j -= 1;
    }
    if j == digits_end || j == 0 || line[j - 1] != b'{' {
        return None;
    }
    let digits = &line[j..digits_end];
    let brace = j - 1;
    let binary = brace > 0 && line[brace - 1] == b'~';
    let start = if binary { brace - 1 } else { brace };
    if unbalanced_quote(&line[..start]) {
        return None; // the braces are inside an unterminated quoted string
    }
    let trimmed = match digits.iter().position(|&c| c != b'0') {
        Some(p) => &digits[p..],
        None => &b"0"[..],
    };
    let size = if trimmed.len() > 19 {
        u64::MAX
    } else {
        trimmed.iter().fold(0u64, |a, &c| a.saturating_mul(10).saturating_add((c - b'0') as u64))
    };
    let size_text = String::from_utf8_lossy(trimmed).into_owned();
    Some(Marker { size, size_text, nonsync, binary, start })
}

/// True when a `"` is left after removing every complete quoted string (scanned left to
/// right, escapes `\x` taken as units): the reference's `_QUOTED.sub` test.
fn unbalanced_quote(text: &[u8]) -> bool {
    let n = text.len();
    let mut i = 0;
    while i < n {
        if text[i] != b'"' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        loop {
            if j >= n {
                // No closing quote from here: this quote stays, whatever follows.
                return true;
            }
            match text[j] {
                b'"' => break,
                b'\\' if j + 1 < n => j += 2,
                b'\\' => return true,
                _ => j += 1,
            }
        }
        i = j + 1;
    }
    false
}

pub struct Cursor<'a> {
    parts: &'a [&'a [u8]],
    literals: Vec<(Vec<u8>, bool)>,
    k: usize,
    pub line: &'a [u8],
    pub pos: usize,
    pub limits: &'a Limits,
    pub utf8: bool,
    pub depth: i64,
    args: i64,
    pub host: &'a mut dyn Host,
}

impl<'a> Cursor<'a> {
    pub fn new(
        parts: &'a [&'a [u8]],
        literals: Vec<(Vec<u8>, bool)>,
        limits: &'a Limits,
        utf8: bool,
        host: &'a mut dyn Host,
    ) -> Self {
        Cursor { parts, literals, k: 0, line: parts[0], pos: 0, limits, utf8, depth: 0, args: 0, host }
    }

    // -- low level
    #[inline]
    pub fn peek(&self) -> i32 {
        self.line.get(self.pos).map_or(-1, |&c| c as i32)
    }

    fn at_end(&self) -> bool {
        self.k == self.parts.len() - 1 && self.pos >= self.line.len()
    }

    pub fn end(&self) -> R<()> {
        if !self.at_end() {
            if self.pos >= self.line.len() {
                return bad("Unexpected literal");
            }
            let rest = &self.line[self.pos..(self.pos + 20).min(self.line.len())];
            return bad(format!("Unexpected characters at end of command: {}", chars::bytes_repr(rest)));
        }
        Ok(())
    }

    #[inline]
    pub fn take(&mut self, c: &[u8]) -> bool {
        if self.line[self.pos.min(self.line.len())..].starts_with(c) {
            self.pos += c.len();
            true
        } else {
            false
        }
    }

    /// Case-insensitive `take` of an ASCII word (the reference's `re.I` matches).
    pub fn take_ci(&mut self, word: &[u8]) -> bool {
        let end = self.pos + word.len();
        if end <= self.line.len() && self.line[self.pos..end].eq_ignore_ascii_case(word) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    fn got(&self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.line.len());
        &self.line[start..(start + n).min(self.line.len())]
    }

    pub fn expect(&mut self, c: &[u8], what: Option<&str>) -> R<()> {
        if self.take(c) {
            return Ok(());
        }
        let got = self.got(10);
        let what = match what {
            Some(w) => w.to_string(),
            None => chars::ascii_str_repr(std::str::from_utf8(c).unwrap_or("?")),
        };
        if got.is_empty() {
            bad(format!("Expected {what} at end of line"))
        } else {
            bad(format!("Expected {what} but found {}", chars::bytes_repr(got)))
        }
    }

    #[inline]
    pub fn sp(&mut self) -> R<()> {
        self.expect(b" ", Some("a space"))
    }

    #[inline]
    pub fn arg(&mut self) -> R<()> {
        self.args += 1;
        if self.args > self.limits.max_args {
            return bad(format!("Too many arguments (limit {})", self.limits.max_args));
        }
        Ok(())
    }

    pub fn open(&mut self) -> R<()> {
        self.expect(b"(", None)?;
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return bad(format!("Parentheses nested too deep (limit {})", self.limits.max_depth));
        }
        Ok(())
    }

    pub fn close(&mut self) -> R<()> {
        self.expect(b")", None)?;
        self.depth -= 1;
        Ok(())
    }

    /// Nesting one level deeper without a parenthesis (NOT, OR in SEARCH).
    pub fn descend(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return bad(format!("Search keys nested too deep (limit {})", self.limits.max_depth));
        }
        Ok(())
    }

    #[inline]
    pub fn run(&mut self, allowed: &Class) -> &'a [u8] {
        let line = self.line;
        let start = self.pos.min(line.len());
        let mut end = start;
        while end < line.len() && allowed[line[end] as usize] {
            end += 1;
        }
        self.pos = end;
        &line[start..end]
    }

    // -- tokens
    pub fn atom(&mut self, what: &str) -> R<String> {
        let raw = self.run(&chars::ATOM);
        if raw.is_empty() {
            let got = self.got(10);
            return if got.is_empty() {
                bad(format!("Expected {what} at end of line"))
            } else {
                bad(format!("Expected {what} but found {}", chars::bytes_repr(got)))
            };
        }
        self.arg()?;
        Ok(ascii(raw))
    }

    pub fn keyword(&mut self) -> R<String> {
        let mut word = self.atom("a keyword")?;
        word.make_ascii_uppercase();
        Ok(word)
    }

    pub fn number(&mut self, maximum: u64, nonzero: bool) -> R<u64> {
        let raw = self.run(&chars::DIGIT);
        if raw.is_empty() {
            return bad("Expected a number");
        }
        let value = if raw.len() > 20 {
            None
        } else {
            let v = raw.iter().fold(0u128, |a, &c| a * 10 + (c - b'0') as u128);
            (v <= maximum as u128).then_some(v as u64)
        };
        let Some(value) = value else {
            let shown = ascii(&raw[..raw.len().min(24)]);
            return bad(format!("Number {shown} is out of range (at most {maximum})"));
        };
        if nonzero && value == 0 {
            return bad("Expected a non-zero number");
        }
        Ok(value)
    }

    pub fn number32(&mut self, nonzero: bool) -> R<u32> {
        self.number(MAX_U32, nonzero).map(|v| v as u32)
    }

    pub fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b"\"", None)?;
        let line = self.line;
        let mut out = Vec::new();
        loop {
            let Some(&c) = line.get(self.pos) else {
                return bad("Unterminated quoted string");
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => match line.get(self.pos) {
                    Some(&e) if e == b'"' || e == b'\\' => {
                        self.pos += 1;
                        out.push(e);
                    }
                    _ => return bad("Invalid escape in quoted string (only \\\" and \\\\)"),
                },
                b'\r' | b'\n' | 0 => return bad("Quoted strings must not contain CR, LF or NUL"),
                _ => out.push(c),
            }
        }
        Ok(out)
    }

    pub fn literal(&mut self) -> R<(Vec<u8>, bool)> {
        let binary = self.take(b"~");
        if self.peek() != b'{' as i32 {
            return bad("Expected a literal");
        }
        let valid = literal_marker(self.line).is_some()
            && self.line.iter().rposition(|&c| c == b'{') == Some(self.pos);
        if !valid {
            return bad("Invalid literal announcement");
        }
        if self.k >= self.literals.len() {
            return bad("Literal data missing");
        }
        let (data, is8) = std::mem::take(&mut self.literals[self.k]);
        self.k += 1;
        self.line = self.parts[self.k];
        self.pos = 0;
        if is8 != binary {
            return bad("Literal type mismatch");
        }
        Ok((data, binary))
    }

    pub fn string(&mut self) -> R<Vec<u8>> {
        self.arg()?;
        match self.peek() {
            0x22 => self.quoted(),
            0x7B => {
                let (data, binary) = self.literal()?;
                if !binary && data.contains(&0) {
                    return bad("NUL octets are only allowed in literal8 (RFC 3516)");
                }
                Ok(data)
            }
            _ => bad("Expected a quoted string or a literal"),
        }
    }

    /// `string` or, when it starts with "~", a literal8 (RFC 3516; NUL allowed there).
    pub fn string8(&mut self) -> R<Vec<u8>> {
        self.arg()?;
        match self.peek() {
            0x22 => self.quoted(),
            0x7B | 0x7E => {
                let (data, binary) = self.literal()?;
                if !binary && data.contains(&0) {
                    return bad("NUL octets are only allowed in literal8 (RFC 3516)");
                }
                Ok(data)
            }
            _ => bad("Expected a quoted string or a literal"),
        }
    }

    pub fn astring(&mut self) -> R<Vec<u8>> {
        let c = self.peek();
        if c == 0x22 || c == 0x7B {
            return self.string();
        }
        let raw = self.run(&chars::ASTRING);
        if raw.is_empty() {
            return bad("Expected an atom or a string");
        }
        self.arg()?;
        Ok(raw.to_vec())
    }

    /// True (and consumed) when the next three octets are NIL in any case.
    fn nil_prefix(&self) -> bool {
        let p = self.pos;
        p + 3 <= self.line.len() && self.line[p..p + 3].eq_ignore_ascii_case(b"NIL")
    }

    pub fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if self.nil_prefix()
            && self.line.get(self.pos + 3).is_none_or(|&c| !chars::ASTRING[c as usize])
        {
            self.pos += 3;
            self.arg()?;
            return Ok(None);
        }
        self.string().map(Some)
    }

    pub fn take_nil(&mut self) -> bool {
        if self.nil_prefix() {
            self.pos += 3;
            true
        } else {
            false
        }
    }

    pub fn text(&self, raw: Vec<u8>, what: &str) -> R<String> {
        String::from_utf8(raw).or_else(|_| bad(format!("{what} is not valid UTF-8")))
    }

    pub fn mailbox(&mut self) -> R<String> {
        let raw = self.astring()?;
        self.mailbox_name(raw, false)
    }

    pub fn mailbox_name(&self, raw: Vec<u8>, pattern: bool) -> R<String> {
        let name = if self.utf8 {
            let name = self.text(raw, "Mailbox name")?;
            if name.chars().any(|ch| (ch as u32) < 0x20 || ch as u32 == 0x7F) {
                return bad("Mailbox name contains control characters");
            }
            name
        } else {
            match mutf7::decode(&raw) {
                Ok(name) => name,
                Err(why) => return bad(format!("Invalid mailbox name: {why}")),
            }
        };
        // RFC 9051 5.1: INBOX in any case is INBOX (Unicode upper-casing, as the reference).
        if !pattern && name.len() <= 20 && name.to_uppercase() == "INBOX" {
            return Ok("INBOX".into());
        }
        Ok(name)
    }

    pub fn list_mailbox(&mut self) -> R<String> {
        let c = self.peek();
        let raw = if c == 0x22 || c == 0x7B {
            self.string()?
        } else {
            let raw = self.run(&chars::LIST);
            if raw.is_empty() {
                return bad("Expected a mailbox pattern");
            }
            self.arg()?;
            raw.to_vec()
        };
        self.mailbox_name(raw, true)
    }

    pub fn flag(&mut self, allow_recent: bool) -> R<String> {
        if self.take(b"\\") {
            let name = self.run(&chars::ATOM);
            if name.is_empty() {
                return bad("Expected a flag name after '\\'");
            }
            self.arg()?;
            let canonical = match name.to_ascii_uppercase().as_slice() {
                b"ANSWERED" => "\\Answered",
                b"FLAGGED" => "\\Flagged",
                b"DELETED" => "\\Deleted",
                b"SEEN" => "\\Seen",
                b"DRAFT" => "\\Draft",
                b"RECENT" => "\\Recent",
                _ => return bad(format!("Unknown system flag \\{} (RFC 9051 2.3.2)", ascii(name))),
            };
            if canonical == "\\Recent" && !allow_recent {
                return bad("\\Recent cannot be set by the client");
            }
            return Ok(canonical.into());
        }
        self.atom("a flag")
    }

    pub fn flag_list(&mut self, allow_recent: bool) -> R<Vec<String>> {
        self.open()?;
        let mut flags = Vec::new();
        if !self.take(b")") {
            loop {
                flags.push(self.flag(allow_recent)?);
                if self.take(b")") {
                    break;
                }
                self.sp()?;
            }
        }
        self.depth -= 1;
        Ok(flags)
    }

    pub fn sequence_set(&mut self) -> R<SeqSet> {
        let mut set = SeqSet::default();
        loop {
            if self.take(b"$") {
                set.saved = true; // RFC 9051: sequence-set =/ seq-last-command, also after ","
            } else {
                let lo = self.seq_number()?;
                let hi = if self.take(b":") { self.seq_number()? } else { lo };
                set.ranges.push((lo, hi));
            }
            self.arg()?;
            if !self.take(b",") {
                break;
            }
        }
        Ok(set)
    }

    fn seq_number(&mut self) -> R<Option<u32>> {
        if self.take(b"*") {
            return Ok(None);
        }
        if !(0x30..=0x39).contains(&self.peek()) {
            return bad("Expected a sequence set");
        }
        self.number32(true).map(Some)
    }

    /// `date` (RFC 9051): d-Mon-yyyy, optionally quoted.
    pub fn date(&mut self) -> R<Date> {
        let quoted = self.take(b"\"");
        let l = self.line;
        let p = self.pos;
        let d = |i: usize| l.get(p + i).is_some_and(u8::is_ascii_digit);
        let is = |i: usize, c: u8| l.get(p + i) == Some(&c);
        let day_len = if d(0) && d(1) && is(2, b'-') {
            2
        } else if d(0) && is(1, b'-') {
            1
        } else {
            return bad("Expected a date (d-Mon-yyyy)");
        };
        let m = p + day_len + 1;
        let alpha = |i: usize| l.get(i).is_some_and(u8::is_ascii_alphabetic);
        let digit = |i: usize| l.get(i).is_some_and(u8::is_ascii_digit);
        if !(alpha(m) && alpha(m + 1) && alpha(m + 2) && l.get(m + 3) == Some(&b'-')
            && (m + 4..m + 8).all(digit))
        {
            return bad("Expected a date (d-Mon-yyyy)");
        }
        let end = m + 8;
        self.pos = end;
        if quoted {
            self.expect(b"\"", None)?;
        }
        let whole = &l[p..end];
        let parsed = month(&l[m..m + 3]).and_then(|mon| {
            valid_date(digits_value(&l[m + 4..end]), mon, digits_value(&l[p..p + day_len]))
        });
        match parsed {
            Some(date) => Ok(date),
            None => bad(format!("Invalid date {}", chars::ascii_str_repr(&ascii(whole)))),
        }
    }

    /// `date-time` (RFC 9051): "dd-Mon-yyyy hh:mm:ss +zzzz", the day may start with SP.
    pub fn date_time(&mut self) -> R<DateTime> {
        const SHAPE: &[u8; 28] = b"\"XD-AAA-DDDD DD:DD:DD SDDDD\"";
        let l = self.line;
        let p = self.pos;
        let fits = p + 28 <= l.len()
            && SHAPE.iter().zip(&l[p.min(l.len())..]).all(|(&s, &c)| match s {
                b'X' => c == b' ' || c.is_ascii_digit(),
                b'D' => c.is_ascii_digit(),
                b'A' => c.is_ascii_alphabetic(),
                b'S' => c == b'+' || c == b'-',
                other => c == other,
            });
        if !fits {
            return bad("Expected a date-time (\"dd-Mon-yyyy hh:mm:ss +zzzz\")");
        }
        let s = &l[p..p + 28];
        self.pos = p + 28;
        self.arg()?;
        let num = |a: usize, b: usize| digits_value(&s[a..b]);
        let day = if s[1] == b' ' { num(2, 3) } else { num(1, 3) };
        let (hour, minute, second) = (num(13, 15), num(16, 18), num(19, 21));
        let offset = (num(23, 25) * 60 + num(25, 27)) as i32;
        let parsed = month(&s[4..7]).and_then(|mon| {
            if offset >= 24 * 60 || hour > 23 || minute > 59 || second > 59 {
                return None;
            }
            let date = valid_date(num(8, 12), mon, day)?;
            Some(DateTime {
                date,
                hour: hour as u8,
                minute: minute as u8,
                second: second as u8,
                offset_minutes: if s[22] == b'-' { -offset } else { offset },
            })
        });
        match parsed {
            Some(dt) => Ok(dt),
            None => bad(format!("Invalid date-time {}", ascii(s))),
        }
    }

    /// `"(" item *(SP item) ")"`, also accepting `()`.
    pub fn paren_list<T>(&mut self, mut item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        self.open()?;
        let mut out = Vec::new();
        if !self.take(b")") {
            loop {
                out.push(item(self)?);
                if self.take(b")") {
                    break;
                }
                self.sp()?;
            }
        }
        self.depth -= 1;
        Ok(out)
    }
}

/// Octets known to be US-ASCII (character classes above) as a String.
pub fn ascii(raw: &[u8]) -> String {
    raw.iter().map(|&c| c as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        let m = literal_marker(b"a1 LOGIN {005+}").unwrap();
        assert_eq!((m.size, m.size_text.as_str(), m.nonsync, m.binary), (5, "5", true, false));
        let m = literal_marker(b"a APPEND x ~{99999999999999999999999}").unwrap();
        assert_eq!((m.size, m.binary), (u64::MAX, true));
        assert_eq!(m.size_text, "99999999999999999999999");
        assert!(literal_marker(b"a1 LOGIN \"a {3}").is_none());
        assert!(literal_marker(b"a1 LOGIN \"a\\\" {3}").is_none());
        assert!(literal_marker(b"a1 LOGIN \"a\\\\\" {3}").is_some());
        assert!(literal_marker(b"a1 {}").is_none() && literal_marker(b"{+}").is_none());
        assert!(literal_marker(b"{0}").is_some());
    }
}
