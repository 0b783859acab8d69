//! Posting lists of the full-text index: for one (account, term), the documents holding
//! the term and the positions of the term in each, encoded compactly.
//!
//! Encoding (version 1): one version octet `0x01`, then for each document in strictly
//! ascending id order: varint(doc - previous doc, the first against 0), varint(number of
//! positions, at least 1), then the positions, strictly ascending, as varint(first) and
//! varint(gap) for the others. Varints are LEB128 (7 bits per octet, low first), at most
//! 5 octets for a u32. A typical entry (small gap, one position) takes 3 octets.
//!
//! Invariants: `encode` refuses unsorted input, `decode` refuses anything `encode` cannot
//! produce (truncation, overflow, zero gaps, a bad version), so a corrupt value in the
//! store is an error, never a wrong answer. Every operation is linear in the list sizes.

pub const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub &'static str);

pub type Entry = (u32, Vec<u32>);

fn put(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(blob: &'a [u8]) -> Result<Self, Error> {
        match blob.first() {
            Some(&VERSION) => Ok(Reader { data: blob, pos: 1 }),
            Some(_) => Err(Error("unknown posting list version")),
            None => Err(Error("empty posting list")),
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn varint(&mut self) -> Result<u32, Error> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(Error("truncated posting list"));
            };
            self.pos += 1;
            value |= ((b & 0x7F) as u64) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| Error("varint overflows u32"));
            }
        }
        Err(Error("varint too long"))
    }

    /// The next (doc, positions) with `prev` the previous doc id.
    fn entry(&mut self, prev: Option<u32>, positions: Option<&mut Vec<u32>>) -> Result<u32, Error> {
        let delta = self.varint()?;
        let doc = match prev {
            None => delta,
            Some(_) if delta == 0 => return Err(Error("documents not strictly ascending")),
            Some(p) => p.checked_add(delta).ok_or(Error("document id overflows u32"))?,
        };
        let count = self.varint()?;
        if count == 0 {
            return Err(Error("document without positions"));
        }
        let mut sink = positions;
        let mut pos = 0u32;
        for i in 0..count {
            let gap = self.varint()?;
            if i > 0 && gap == 0 {
                return Err(Error("positions not strictly ascending"));
            }
            pos = if i == 0 { gap } else { pos.checked_add(gap).ok_or(Error("position overflows u32"))? };
            if let Some(out) = sink.as_deref_mut() {
                out.push(pos);
            }
        }
        Ok(doc)
    }
}

fn put_entry(out: &mut Vec<u8>, prev: Option<u32>, doc: u32, positions: &[u32]) {
    put(out, doc - prev.unwrap_or(0));
    put(out, positions.len() as u32);
    let mut last = 0;
    for (i, &p) in positions.iter().enumerate() {
        put(out, if i == 0 { p } else { p - last });
        last = p;
    }
}

fn check_positions(positions: &[u32]) -> Result<(), Error> {
    if positions.is_empty() {
        return Err(Error("document without positions"));
    }
    if positions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error("positions not strictly ascending"));
    }
    Ok(())
}

pub fn encode(entries: &[Entry]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(1 + entries.len() * 4);
    out.push(VERSION);
    let mut prev = None;
    for (doc, positions) in entries {
        if prev.is_some_and(|p| p >= *doc) {
            return Err(Error("documents not strictly ascending"));
        }
        check_positions(positions)?;
        put_entry(&mut out, prev, *doc, positions);
        prev = Some(*doc);
    }
    Ok(out)
}

pub fn decode(blob: &[u8]) -> Result<Vec<Entry>, Error> {
    let mut r = Reader::new(blob)?;
    let mut out = Vec::new();
    let mut prev = None;
    while !r.done() {
        let mut positions = Vec::new();
        let doc = r.entry(prev, Some(&mut positions))?;
        out.push((doc, positions));
        prev = Some(doc);
    }
    Ok(out)
}

/// The document ids of a list, ascending (positions skipped).
pub fn docs(blob: &[u8]) -> Result<Vec<u32>, Error> {
    let mut r = Reader::new(blob)?;
    let mut out = Vec::new();
    let mut prev = None;
    while !r.done() {
        let doc = r.entry(prev, None)?;
        out.push(doc);
        prev = Some(doc);
    }
    Ok(out)
}

/// `blob` (or an empty list) with document `doc` set to `positions` (added or replaced).
/// Appending a document above every other (new mail) copies the list once and encodes
/// one entry.
pub fn upsert(blob: Option<&[u8]>, doc: u32, positions: &[u32]) -> Result<Vec<u8>, Error> {
    check_positions(positions)?;
    let Some(blob) = blob else {
        let mut out = vec![VERSION];
        put_entry(&mut out, None, doc, positions);
        return Ok(out);
    };
    let last = docs(blob)?.last().copied();
    if last.is_none_or(|l| l < doc) {
        let mut out = Vec::with_capacity(blob.len() + 8);
        out.extend_from_slice(blob);
        put_entry(&mut out, last, doc, positions);
        return Ok(out);
    }
    let mut entries = decode(blob)?;
    match entries.binary_search_by_key(&doc, |e| e.0) {
        Ok(i) => entries[i].1 = positions.to_vec(),
        Err(i) => entries.insert(i, (doc, positions.to_vec())),
    }
    encode(&entries)
}

/// `blob` without the documents in `remove` (any order); None when nothing is left.
pub fn remove(blob: &[u8], remove: &[u32]) -> Result<Option<Vec<u8>>, Error> {
    let mut gone = remove.to_vec();
    gone.sort_unstable();
    let kept: Vec<Entry> = decode(blob)?
        .into_iter()
        .filter(|(doc, _)| gone.binary_search(doc).is_err())
        .collect();
    if kept.is_empty() {
        return Ok(None);
    }
    encode(&kept).map(Some)
}

/// Documents present in every list (AND of terms).
pub fn intersect(blobs: &[&[u8]]) -> Result<Vec<u32>, Error> {
    let mut lists = blobs.iter().map(|b| docs(b)).collect::<Result<Vec<_>, _>>()?;
    lists.sort_by_key(Vec::len);
    let Some((first, rest)) = lists.split_first() else { return Ok(Vec::new()) };
    Ok(first.iter().copied().filter(|d| rest.iter().all(|l| l.binary_search(d).is_ok())).collect())
}

/// Documents where the terms of `blobs` appear one after the other (term i at p + i).
pub fn phrase(blobs: &[&[u8]]) -> Result<Vec<u32>, Error> {
    let lists = blobs.iter().map(|b| decode(b)).collect::<Result<Vec<_>, _>>()?;
    let Some((first, rest)) = lists.split_first() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    'docs: for (doc, starts) in first {
        let mut candidates: Vec<u32> = starts.clone();
        for (offset, list) in rest.iter().enumerate() {
            let Ok(i) = list.binary_search_by_key(doc, |e| e.0) else { continue 'docs };
            let positions = &list[i].1;
            let shift = offset as u32 + 1;
            candidates.retain(|&p| p.checked_add(shift).is_some_and(|q| positions.binary_search(&q).is_ok()));
            if candidates.is_empty() {
                continue 'docs;
            }
        }
        out.push(*doc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let entries = vec![(0, vec![3]), (5, vec![0, 7, 300]), (1_000_000, vec![u32::MAX])];
        let blob = encode(&entries).unwrap();
        assert_eq!(decode(&blob).unwrap(), entries);
        assert_eq!(docs(&blob).unwrap(), vec![0, 5, 1_000_000]);
        // 1 version + (1+1+1) + (1+1+1+1+2) + (3+1+5)
        assert_eq!(blob.len(), 1 + 3 + 6 + 9);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(encode(&[(2, vec![1]), (2, vec![1])]).is_err());
        assert!(encode(&[(2, vec![1, 1])]).is_err());
        assert!(encode(&[(2, vec![])]).is_err());
        let blob = encode(&[(1, vec![1]), (9, vec![4, 5])]).unwrap();
        // A cut at an entry boundary leaves a shorter valid list; anywhere else is an error.
        assert_eq!(decode(&blob[..1]).unwrap(), vec![]);
        assert_eq!(decode(&blob[..4]).unwrap(), vec![(1, vec![1])]);
        for cut in (2..blob.len()).filter(|&c| c != 4) {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[2, 0, 1, 0]).is_err());
        assert!(decode(&[1, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 0]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn upsert_and_remove() {
        let a = upsert(None, 10, &[1]).unwrap();
        let a = upsert(Some(&a), 20, &[2, 3]).unwrap();
        let a = upsert(Some(&a), 15, &[4]).unwrap();
        let a = upsert(Some(&a), 10, &[9]).unwrap();
        assert_eq!(decode(&a).unwrap(), vec![(10, vec![9]), (15, vec![4]), (20, vec![2, 3])]);
        let b = remove(&a, &[20, 10]).unwrap().unwrap();
        assert_eq!(decode(&b).unwrap(), vec![(15, vec![4])]);
        assert_eq!(remove(&b, &[15]).unwrap(), None);
    }

    #[test]
    fn and_and_phrase() {
        let quick = encode(&[(1, vec![1]), (2, vec![5]), (3, vec![0, 8])]).unwrap();
        let fox = encode(&[(1, vec![2]), (2, vec![9]), (3, vec![9]), (4, vec![1])]).unwrap();
        assert_eq!(intersect(&[&quick, &fox]).unwrap(), vec![1, 2, 3]);
        assert_eq!(phrase(&[&quick, &fox]).unwrap(), vec![1, 3]);
        assert_eq!(phrase(&[&fox, &quick]).unwrap(), Vec::<u32>::new());
    }
}
