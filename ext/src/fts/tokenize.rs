//! Tokenizing for the full-text index: Unicode words, folded, then stemmed.
//!
//! - Words are the UAX #29 word segments holding a letter or digit (`unicode_words`):
//!   "e-mail" is two words, "don't" and "3.14" are one, each CJK ideograph is one.
//! - Folding: lower case (Unicode), then compatibility decomposition with the combining
//!   marks dropped ("Crème" -> "creme", "ﬁ" -> "fi"), plus the letters NFKD leaves whole
//!   (ß -> ss, æ -> ae, œ -> oe, ø -> o, ł -> l, đ -> d, þ -> th, ı -> i, final ς -> σ). ASCII takes a fast
//!   path.
//! - Stemming: the Snowball stemmer of the document's language (`rust-stemmers`), or none.
//! - Words longer than `MAX_WORD_BYTES` after folding (base64 runs, hashes) are not
//!   indexed but still take a position, so a phrase never matches across one.
//!
//! Invariant: the same text and language give the same terms at indexing and at query
//! time; positions count every word of a part from 0 in order.

use std::borrow::Cow;
use std::cell::RefCell;

use rust_stemmers::Algorithm;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_segmentation::UnicodeSegmentation;

/// Longest folded word indexed, in octets.
pub const MAX_WORD_BYTES: usize = 64;

/// The stemming languages (ISO 639-1 codes), and "none".
pub const LANGUAGES: &[&str] = &[
    "none", "ar", "da", "de", "el", "en", "es", "fi", "fr", "hu", "it", "nl", "no", "pt", "ro",
    "ru", "sv", "ta", "tr",
];

/// The Snowball stemmer of one language, with the language's index in `LANGUAGES` (the
/// key of the stem cache).
pub struct Stemmer {
    id: u8,
    inner: rust_stemmers::Stemmer,
}

impl Stemmer {
    pub fn stem<'a>(&self, word: &'a str) -> Cow<'a, str> {
        self.inner.stem(word)
    }

    /// The stem of `word`, from a per-thread cache of recent words (stemming costs about
    /// 2 us a word, a lookup a few tens of ns, and mail repeats its words).
    fn stem_cached(&self, word: &str, emit: impl FnOnce(&str)) {
        STEMS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let (id, map) = &mut cache[self.id as usize];
            debug_assert_eq!(*id, self.id);
            if let Some(stem) = map.get(word) {
                emit(stem);
                return;
            }
            let stem = self.inner.stem(word).into_owned();
            emit(&stem);
            if map.len() >= STEM_CACHE_WORDS {
                map.clear();
            }
            map.insert(word.to_string(), stem);
        })
    }
}

/// Words kept per language and thread in the stem cache (about 2 MB when full).
const STEM_CACHE_WORDS: usize = 20_000;

thread_local! {
    static STEMS: RefCell<Vec<(u8, super::FxMap<String, String>)>> = RefCell::new(
        (0..LANGUAGES.len() as u8).map(|i| (i, super::FxMap::default())).collect());
}

/// The stemmer for an ISO 639-1 code; `Ok(None)` for "none"; `Err` for an unknown code.
pub fn stemmer(language: &str) -> Result<Option<Stemmer>, String> {
    let algorithm = match language {
        "none" => return Ok(None),
        "ar" => Algorithm::Arabic,
        "da" => Algorithm::Danish,
        "de" => Algorithm::German,
        "el" => Algorithm::Greek,
        "en" => Algorithm::English,
        "es" => Algorithm::Spanish,
        "fi" => Algorithm::Finnish,
        "fr" => Algorithm::French,
        "hu" => Algorithm::Hungarian,
        "it" => Algorithm::Italian,
        "nl" => Algorithm::Dutch,
        "no" => Algorithm::Norwegian,
        "pt" => Algorithm::Portuguese,
        "ro" => Algorithm::Romanian,
        "ru" => Algorithm::Russian,
        "sv" => Algorithm::Swedish,
        "ta" => Algorithm::Tamil,
        "tr" => Algorithm::Turkish,
        other => return Err(format!("no stemmer for language {other:?} (known: {LANGUAGES:?})")),
    };
    let id = LANGUAGES.iter().position(|l| *l == language).expect("listed") as u8;
    Ok(Some(Stemmer { id, inner: rust_stemmers::Stemmer::create(algorithm) }))
}

fn push_folded_char(ch: char, out: &mut String) {
    match ch {
        'ß' | 'ẞ' => out.push_str("ss"),
        'æ' => out.push_str("ae"),
        'œ' => out.push_str("oe"),
        'ø' => out.push('o'),
        'ł' => out.push('l'),
        'đ' => out.push('d'),
        'þ' => out.push_str("th"),
        'ı' => out.push('i'),
        'ς' => out.push('σ'),
        _ => decompose_compatible(ch, |d| {
            if !is_combining_mark(d) {
                out.push(d);
            }
        }),
    }
}

/// Appends the folded form of `word` to `out` (lower case, no diacritics).
pub fn fold_into(word: &str, out: &mut String) {
    if word.is_ascii() {
        out.extend(word.bytes().map(|b| b.to_ascii_lowercase() as char));
        return;
    }
    for ch in word.chars() {
        if ch.is_ascii() {
            out.push(ch.to_ascii_lowercase());
        } else {
            for lower in ch.to_lowercase() {
                push_folded_char(lower, out);
            }
        }
    }
}

pub fn fold(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    fold_into(word, &mut out);
    out
}

/// ASCII word-break classes (UAX #29 Word_Break of the ASCII characters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wb {
    Letter,
    Digit,
    /// ExtendNumLet: "_".
    Connector,
    /// MidLetter: ":".
    MidLetter,
    /// MidNum: "," and ";".
    MidNum,
    /// MidNumLet: "." and "'".
    MidNumLet,
    Other,
}

fn wb(c: u8) -> Wb {
    match c {
        b'a'..=b'z' | b'A'..=b'Z' => Wb::Letter,
        b'0'..=b'9' => Wb::Digit,
        b'_' => Wb::Connector,
        b':' => Wb::MidLetter,
        b',' | b';' => Wb::MidNum,
        b'.' | b'\'' => Wb::MidNumLet,
        _ => Wb::Other,
    }
}

/// The words of an ASCII token without white space, by the UAX #29 rules restricted to
/// ASCII (WB5-WB13b): letters, digits and "_" join; "." "'" ":" join two letters; "." "'"
/// "," ";" join two digits. Words without a letter or digit are dropped, as
/// `unicode_words` does.
fn ascii_words<'a>(token: &'a str, out: &mut impl FnMut(&'a str)) {
    let b = token.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        let class = wb(b[i]);
        if !matches!(class, Wb::Letter | Wb::Digit | Wb::Connector) {
            i += 1;
            continue;
        }
        let start = i;
        let mut alnum = class != Wb::Connector;
        let mut last = class;
        i += 1;
        while i < n {
            let c = wb(b[i]);
            match c {
                Wb::Letter | Wb::Digit | Wb::Connector => {
                    alnum |= c != Wb::Connector;
                    last = c;
                    i += 1;
                }
                Wb::MidLetter | Wb::MidNum | Wb::MidNumLet if i + 1 < n => {
                    let after = wb(b[i + 1]);
                    let letters = last == Wb::Letter && after == Wb::Letter
                        && matches!(c, Wb::MidLetter | Wb::MidNumLet);
                    let digits = last == Wb::Digit && after == Wb::Digit
                        && matches!(c, Wb::MidNum | Wb::MidNumLet);
                    if !(letters || digits) {
                        break;
                    }
                    last = after;
                    i += 2;
                }
                _ => break,
            }
        }
        if alnum {
            out(&token[start..i]);
        }
    }
}

/// The words of `text`: `unicode_words` (UAX #29), with a fast path for the ASCII runs
/// between white space (white space always ends a word, so each run is segmented alone).
pub fn words<'a>(text: &'a str, mut out: impl FnMut(&'a str)) {
    for token in text.split(|c: char| c.is_ascii_whitespace()) {
        if token.is_empty() {
            continue;
        }
        if token.is_ascii() {
            ascii_words(token, &mut out);
        } else {
            for word in token.unicode_words() {
                out(word);
            }
        }
    }
}

/// Calls `emit(term, position)` for every indexed word of `text`; returns the number of
/// positions used (every word counts, indexed or not).
pub fn for_each_term(text: &str, stemmer: Option<&Stemmer>, mut emit: impl FnMut(&str, u32)) -> u32 {
    let mut folded = String::new();
    let mut position = 0u32;
    words(text, |word| {
        folded.clear();
        fold_into(word, &mut folded);
        if !folded.is_empty() && folded.len() <= MAX_WORD_BYTES {
            match stemmer {
                Some(s) => s.stem_cached(&folded, |stem| emit(stem, position)),
                None => emit(&folded, position),
            }
        }
        position += 1;
    });
    position
}

/// The terms of `text` in order (query side).
pub fn terms(text: &str, stemmer: Option<&Stemmer>) -> Vec<String> {
    let mut out = Vec::new();
    for_each_term(text, stemmer, |t, _| out.push(t.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold("Crème BRÛLÉE"), "creme brulee");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("ﬁsh Øre Ærø"), "fish ore aero");
        assert_eq!(fold("ΟΔΥΣΣΕΥΣ"), "οδυσσευσ");
    }

    #[test]
    fn words_positions_and_stems() {
        let en = stemmer("en").unwrap();
        let mut got = Vec::new();
        let n = for_each_term("The runners were RUNNING, e-mail: don't!", en.as_ref(), |t, p| {
            got.push((t.to_string(), p))
        });
        assert_eq!(n, 7);
        let terms: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(terms, ["the", "runner", "were", "run", "e", "mail", "don't"]);
        assert_eq!(got[5].1, 5);
    }

    #[test]
    fn fast_words_are_unicode_words() {
        let samples = [
            "e-mail don't 3.14 user@example.com a.b.c 1,000,000 x_y __ _a a_ http://x.org/a?b=c",
            "a..b a:b 1:2 1;2 a;b 3.a a.3 'quoted' it's  end. 12.34.56 foo_bar_1 ::: ,,, _1_",
            "Crème brûlée naïve 日本語のテキスト Straße ΟΔΥΣΣΕΥΣ mixed-ASCIIé café's x.é",
            "tab\tsep\nline\r\nnext\x0bvt\x0cff\u{a0}nbsp a\u{301}b a \u{301}b",
        ];
        for text in samples {
            let mut got = Vec::new();
            words(text, |w| got.push(w));
            let want: Vec<&str> = text.unicode_words().collect();
            assert_eq!(got, want, "{text:?}");
        }
        // Every ASCII string of a few characters from the interesting classes.
        let alphabet = b"a1_:,.'; -";
        let mut buf = [0u8; 4];
        for code in 0..alphabet.len().pow(4) {
            let mut k = code;
            for slot in buf.iter_mut() {
                *slot = alphabet[k % alphabet.len()];
                k /= alphabet.len();
            }
            let text = std::str::from_utf8(&buf).unwrap();
            let mut got = Vec::new();
            words(text, |w| got.push(w));
            let want: Vec<&str> = text.unicode_words().collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn long_words_keep_their_position() {
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        let mut got = Vec::new();
        for_each_term(&format!("a {long} b"), None, |t, p| got.push((t.to_string(), p)));
        assert_eq!(got, [("a".to_string(), 0), ("b".to_string(), 2)]);
    }

    #[test]
    fn languages() {
        assert!(stemmer("xx").is_err());
        for code in LANGUAGES {
            assert!(stemmer(code).is_ok());
        }
        let de = stemmer("de").unwrap().unwrap();
        assert_eq!(de.stem(&fold("Häuser")), de.stem(&fold("häuser")));
    }
}
