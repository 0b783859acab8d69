//! Character classes of the IMAP grammar (RFC 9051 section 9) and the Python-style
//! `repr` used in error messages.
//!
//! The classes are 256-entry tables built at compile time:
//! - ATOM-CHAR: US-ASCII except atom-specials `( ) { SP % * " \ ]` and CTL (0x00-0x1F, 0x7F);
//! - ASTRING-CHAR: ATOM-CHAR plus `]` (resp-specials);
//! - tag: ASTRING-CHAR except `+`;
//! - list-char: ATOM-CHAR plus the wildcards `%` `*` and `]`.
//!
//! Error messages must be byte-for-byte those of the pure-Python reference
//! (`grammar_ref.py`), which quotes offending input with Python's `repr`; `bytes_repr`
//! reproduces `repr(bytes)` exactly and `ascii_str_repr` reproduces `repr(str)` for
//! ASCII text (non-ASCII text is delegated to the host, see `Host::str_repr`).

const fn is_atom(c: u8) -> bool {
    c > 0x1F
        && c < 0x7F
        && !matches!(c, b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']')
}

const fn table(kind: u8) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        t[c] = match kind {
            0 => is_atom(b),
            1 => is_atom(b) || b == b']',
            2 => (is_atom(b) || b == b']') && b != b'+',
            3 => is_atom(b) || b == b'%' || b == b'*' || b == b']',
            4 => b.is_ascii_digit(),
            5 => b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=',
            6 => b.is_ascii_alphanumeric() || b == b'.',
            7 => b.is_ascii_alphabetic() || b == b'.',
            _ => b.is_ascii_alphabetic(),
        };
        c += 1;
    }
    t
}

pub type Class = [bool; 256];
pub static ATOM: Class = table(0);
pub static ASTRING: Class = table(1);
pub static TAG: Class = table(2);
pub static LIST: Class = table(3);
pub static DIGIT: Class = table(4);
/// The characters of a SASL-IR initial response (base64 and "=").
pub static BASE64: Class = table(5);
/// The characters of a fetch attribute name (`[A-Za-z0-9.]`).
pub static FETCH_ATT: Class = table(6);
/// The characters of a section text word (`[A-Za-z.]`).
pub static SECTION_WORD: Class = table(7);
pub static ALPHA: Class = table(8);

/// Python's `repr(bytes)`.
pub fn bytes_repr(data: &[u8]) -> String {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') { b'"' } else { b'\'' };
    let mut out = String::with_capacity(data.len() + 3);
    out.push('b');
    out.push(quote as char);
    push_escaped(&mut out, data.iter().map(|&c| c as u32), quote);
    out.push(quote as char);
    out
}

/// Python's `repr(str)` for a string of US-ASCII characters.
pub fn ascii_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { b'"' } else { b'\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote as char);
    push_escaped(&mut out, text.chars().map(|c| c as u32), quote);
    out.push(quote as char);
    out
}

/// Python's `repr(str)` for any text, with the printable test approximated for non-ASCII
/// characters (C0/C1 controls, separators other than U+0020, format characters and
/// private use are escaped). Used where no Python host is present (Rust tests).
pub fn approx_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        let c = ch as u32;
        if c < 0x80 {
            push_escaped(&mut out, std::iter::once(c), quote as u8);
        } else if !printable(c) {
            if c < 0x100 {
                out.push_str(&format!("\\x{c:02x}"));
            } else if c < 0x10000 {
                out.push_str(&format!("\\u{c:04x}"));
            } else {
                out.push_str(&format!("\\U{c:08x}"));
            }
        } else {
            out.push(ch);
        }
    }
    out.push(quote);
    out
}

fn printable(c: u32) -> bool {
    !matches!(c,
        0x80..=0xA0 | 0xAD | 0x1680 | 0x2000..=0x200F | 0x2028..=0x202F | 0x205F..=0x206F
        | 0x3000 | 0xD800..=0xF8FF | 0xFEFF | 0xFFF9..=0xFFFB | 0xF0000..)
}

fn push_escaped(out: &mut String, chars: impl Iterator<Item = u32>, quote: u8) {
    for c in chars {
        match c {
            0x5C => out.push_str("\\\\"),
            0x09 => out.push_str("\\t"),
            0x0A => out.push_str("\\n"),
            0x0D => out.push_str("\\r"),
            c if c == quote as u32 => {
                out.push('\\');
                out.push(quote as char);
            }
            c if !(0x20..0x7F).contains(&c) => out.push_str(&format!("\\x{c:02x}")),
            c => out.push(char::from_u32(c).unwrap_or('?')),
        }
    }
}

/// Python's `bytes.strip()` is empty: only ASCII white space (SP, HT, LF, VT, FF, CR).
pub fn is_blank(data: &[u8]) -> bool {
    data.iter().all(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reprs_match_python() {
        assert_eq!(bytes_repr(b"extra"), "b'extra'");
        assert_eq!(bytes_repr(b"a'b"), "b\"a'b\"");
        assert_eq!(bytes_repr(b"a'\"b"), "b'a\\'\"b'");
        assert_eq!(bytes_repr(b"\x00\xff\r\\"), "b'\\x00\\xff\\r\\\\'");
        assert_eq!(ascii_str_repr("("), "'('");
        assert_eq!(ascii_str_repr("\\"), "'\\\\'");
        assert_eq!(ascii_str_repr("\""), "'\"'");
        assert_eq!(approx_str_repr("X\u{1}\u{e9}\u{a0}"), "'X\\x01\u{e9}\\xa0'");
    }

    #[test]
    fn classes() {
        assert!(ATOM[b'a' as usize] && !ATOM[b']' as usize] && ASTRING[b']' as usize]);
        assert!(!TAG[b'+' as usize] && LIST[b'%' as usize] && !ATOM[0x80]);
    }
}
