//! Modified UTF-7 mailbox names (RFC 3501 section 5.1.3, kept by RFC 9051 5.1.3): decoding
//! with the same rules and messages as `stalwart/protocols/imap/mutf7.py`.
//!
//! Rules (a name breaking one is refused, never guessed at): printable US-ASCII other than
//! "&" stands for itself, "&-" is "&"; anything else is "&" + modified BASE64 (RFC 2152 with
//! "," for "/", no padding) of UTF-16BE + "-". A shifted run must end with "-", must not
//! follow another one directly, must hold whole UTF-16 units with zero padding bits,
//! must decode to well-formed UTF-16 and must not encode printable US-ASCII.

const EIGHT_BIT: &str =
    "mailbox name has 8-bit characters; use modified UTF-7 (RFC 3501 5.1.3) or ENABLE UTF8=ACCEPT";

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => (c - b'A') as u32,
        b'a'..=b'z' => (c - b'a') as u32 + 26,
        b'0'..=b'9' => (c - b'0') as u32 + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    })
}

/// Decodes a modified UTF-7 name; `Err` carries the reason (the reference's wording).
pub fn decode(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = String::with_capacity(raw.len());
    let n = raw.len();
    let mut i = 0;
    let mut last_shift_end = usize::MAX;
    while i < n {
        let c = raw[i];
        if c != b'&' {
            if c >= 0x80 {
                return Err(EIGHT_BIT);
            }
            if c < 0x20 || c == 0x7F {
                return Err("mailbox name has a control character");
            }
            out.push(c as char);
            i += 1;
            continue;
        }
        let end = match raw[i + 1..].iter().position(|&b| b == b'-') {
            Some(p) => i + 1 + p,
            None => return Err("modified UTF-7 shift sequence is not terminated by '-'"),
        };
        let body = &raw[i + 1..end];
        if body.is_empty() {
            out.push('&');
            i = end + 1;
            continue;
        }
        if last_shift_end == i {
            return Err("adjacent modified UTF-7 shift sequences must be merged");
        }
        let mut values = Vec::with_capacity(body.len());
        for &b in body {
            match b64_value(b) {
                Some(v) => values.push(v),
                None => return Err("invalid character in modified UTF-7 shift sequence"),
            }
        }
        if body.len() % 4 == 1 {
            return Err("truncated modified UTF-7 shift sequence");
        }
        // Decode 6-bit groups into octets; the bits left over are the padding bits.
        let mut octets = Vec::with_capacity(body.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0u32);
        for v in values {
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                octets.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        if octets.len() % 2 == 1 {
            return Err("modified UTF-7 shift sequence holds a partial UTF-16 unit");
        }
        if acc != 0 {
            return Err("modified UTF-7 shift sequence has non-zero padding bits");
        }
        let units = octets.chunks_exact(2).map(|u| u16::from_be_bytes([u[0], u[1]]));
        let mut text = String::new();
        for ch in char::decode_utf16(units) {
            match ch {
                Ok(ch) => text.push(ch),
                Err(_) => return Err("modified UTF-7 shift sequence is not valid UTF-16"),
            }
        }
        if text.chars().any(|ch| (' '..='~').contains(&ch)) {
            return Err("modified UTF-7 must not encode printable US-ASCII");
        }
        out.push_str(&text);
        i = end + 1;
        last_shift_end = i;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn round_trip_examples() {
        assert_eq!(decode(b"&AOk-t&AOk-").unwrap(), "\u{e9}t\u{e9}");
        assert_eq!(decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
                   "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}");
        assert_eq!(decode(b"&2D3eAA-").unwrap(), "\u{1F600}");
        assert_eq!(decode(b"a&-b").unwrap(), "a&b");
    }

    #[test]
    fn refusals() {
        for bad in [&b"&"[..], b"&AOk", b"&AOk-&AOg-", b"&AGE-", b"&A-", b"&AO!-",
                    b"caf\xc3\xa9", b"a\x01b", b"&2D0-", b"&AOl-"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
