//! The full-text index (IMAP SEARCH BODY/TEXT/header keys, JMAP Email/query text filters):
//! tokenizing and stemming (`tokenize`), guessing a document's language (`language`), and
//! the posting lists the store keeps per
//! (account, term) (`postings`). The store and the query planner are Python
//! (`stalwart/fts.py`); everything that touches every word of every message is here.

pub mod language;
pub mod postings;
pub mod tokenize;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tokenize::Stemmer;

/// A fast non-cryptographic hasher (the "Fx" multiply-rotate scheme) for the per-document
/// maps of words, which hold no attacker-chosen sizes beyond one message's words: the
/// default SipHash cost more than the tokenizing.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes(c.try_into().expect("8 octets"));
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Terms of a document's parts, keyed `field + ":" + term`, with their positions.
///
/// Each part is `(field, text)`; parts of the same field continue one position sequence,
/// with a gap of one position between parts so a phrase never spans two parts.
pub fn index(parts: &[(String, String)], stemmer: Option<&Stemmer>) -> FxMap<String, Vec<u32>> {
    let mut out: FxMap<String, Vec<u32>> = FxMap::default();
    let mut next: HashMap<&str, u32> = HashMap::new();
    let mut key = String::new();
    for (field, text) in parts {
        let base = *next.get(field.as_str()).unwrap_or(&0);
        let used = tokenize::for_each_term(text, stemmer, |term, position| {
            key.clear();
            key.push_str(field);
            key.push(':');
            key.push_str(term);
            let p = base.saturating_add(position);
            match out.get_mut(key.as_str()) {
                Some(list) => list.push(p),
                None => {
                    out.insert(key.clone(), vec![p]);
                }
            }
        });
        next.insert(field.as_str(), base.saturating_add(used).saturating_add(1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_field_do_not_join() {
        let parts = vec![
            ("body".to_string(), "quick brown".to_string()),
            ("body".to_string(), "fox".to_string()),
            ("subject".to_string(), "Quick".to_string()),
        ];
        let idx = index(&parts, None);
        assert_eq!(idx["body:quick"], vec![0]);
        assert_eq!(idx["body:fox"], vec![3]);
        assert_eq!(idx["subject:quick"], vec![0]);
    }
}
