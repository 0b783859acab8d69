//! Unit tests of `dkim.rs`: the RFC 6376 3.4.5 examples, the edge cases of the module
//! notes, and every split of a body fed to the streaming hasher. The byte-for-byte
//! comparison with the Python reference is in `tests/unit/test_canon_native.py`.

use super::*;

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn relaxed_body(body: &[u8]) -> Vec<u8> {
    canonical_body(body, true)
}

fn simple_body(body: &[u8]) -> Vec<u8> {
    canonical_body(body, false)
}

#[test]
fn rfc6376_example_headers() {
    // RFC 6376 3.4.5
    assert_eq!(relaxed_header(b"A: X\r\n"), b"a:X\r\n");
    assert_eq!(relaxed_header(b"B : Y\t\r\n\tZ  \r\n"), b"b:Y Z\r\n");
}

#[test]
fn rfc6376_example_bodies() {
    let body = b" C \r\nD \t E\r\n\r\n\r\n";
    assert_eq!(relaxed_body(body), b" C\r\nD E\r\n");
    assert_eq!(simple_body(body), b" C \r\nD \t E\r\n");
}

#[test]
fn empty_and_blank_bodies() {
    assert_eq!(simple_body(b""), b"\r\n");
    assert_eq!(relaxed_body(b""), b"");
    assert_eq!(simple_body(b"\r\n\r\n\r\n"), b"\r\n");
    assert_eq!(relaxed_body(b"\r\n \r\n\t\r\n"), b"");
    assert_eq!(simple_body(b"\r\n \r\n"), b"\r\n \r\n");
}

#[test]
fn line_ends_are_crlf_only() {
    // no final CRLF: one is added
    assert_eq!(simple_body(b"abc"), b"abc\r\n");
    assert_eq!(relaxed_body(b"abc  "), b"abc\r\n");
    // bare CR and bare LF are content; the SP before them stays
    assert_eq!(relaxed_body(b"a \rb"), b"a \rb\r\n");
    assert_eq!(relaxed_body(b"a \nb"), b"a \nb\r\n");
    assert_eq!(relaxed_body(b"a \r \r\n"), b"a \r\r\n");
    assert_eq!(simple_body(b"x\r\r\n"), b"x\r\r\n");
    assert_eq!(simple_body(b"\r"), b"\r\r\n");
    assert_eq!(relaxed_body(b"a\r\n \r"), b"a\r\n \r\r\n");
    assert_eq!(simple_body(b"x\n\r\n"), b"x\n\r\n");
}

#[test]
fn blank_lines_inside_are_kept() {
    assert_eq!(relaxed_body(b"a\r\n\r\n \r\nb\r\n\r\n"), b"a\r\n\r\n\r\nb\r\n");
    let many = [b"a".as_slice(), &b"\r\n".repeat(1000), b"b"].concat();
    assert_eq!(simple_body(&many), [many.as_slice(), b"\r\n"].concat());
}

#[test]
fn eight_bit_bytes_pass_through() {
    let body = b"caf\xc3\xa9 \xff\t\x80\r\n";
    assert_eq!(relaxed_body(body), b"caf\xc3\xa9 \xff \x80\r\n");
}

#[test]
fn length_limit() {
    let body = b"Hello  world\r\n\r\n";
    let canon = relaxed_body(body);
    for limit in [0u64, 1, 5, canon.len() as u64, canon.len() as u64 + 10, u64::MAX] {
        let (digest, len) = body_hash(body, true, Some(limit));
        assert_eq!(len, canon.len() as u64);
        let take = (limit as usize).min(canon.len());
        assert_eq!(digest, sha(&canon[..take]), "limit {limit}");
    }
    assert_eq!(body_hash(body, true, None), (sha(&canon), canon.len() as u64));
}

#[test]
fn every_split_streams_alike() {
    let bodies: [&[u8]; 5] = [
        b" C \r\nD \t E\r\n\r\n\r\n",
        b"a \r \r\n\r\n\tb\r\r\n \n\r\n \t",
        b"\r\n\r\n x \r",
        b"line  one\t\r\n\r\n\r\nline two \r\n",
        b"",
    ];
    for body in bodies {
        for relaxed in [false, true] {
            let whole = body_hash(body, relaxed, None);
            for cut in 0..=body.len() {
                for cut2 in cut..=body.len() {
                    let mut h = BodyHasher::new(relaxed, None);
                    h.update(&body[..cut]);
                    h.update(&body[cut..cut2]);
                    h.update(&body[cut2..]);
                    assert_eq!(h.finish(), whole, "{body:?} {cut} {cut2}");
                }
            }
            let mut h = BodyHasher::new(relaxed, None);
            for b in body.iter() {
                h.update(std::slice::from_ref(b));
            }
            assert_eq!(h.finish(), whole);
        }
    }
}

#[test]
fn relaxed_header_edges() {
    assert_eq!(relaxed_header(b"SUBJect \t:  a \t b  \r\n"), b"subject:a b\r\n");
    assert_eq!(relaxed_header(b"X:\r\n"), b"x:\r\n");
    assert_eq!(relaxed_header(b"X: a\r"), b"x:a\r\n");
    assert_eq!(relaxed_header(b"X: a\r\r\n"), b"x:a\r\n");
    assert_eq!(relaxed_header(b"X: a\r\r\n\n"), b"x:a\r\n\r\n");
    assert_eq!(relaxed_header(b"no colon\r\n"), b"no colon\r\n:\r\n");
    assert_eq!(relaxed_header(b"X: caf\xc3\xa9\t \xff"), b"x:caf\xc3\xa9 \xff\r\n");
}

#[test]
fn strip_b() {
    let f = |raw: &[u8]| strip_b_value(raw).map(|c| c.into_owned());
    assert_eq!(f(b"DKIM-Signature: a=x; b=abc; bh=q\r\n").unwrap(), b"DKIM-Signature: a=x; b=; bh=q\r\n");
    assert_eq!(f(b"DKIM-Signature: a=x; bh=q; b=ab\r\n\tcd\r\n").unwrap(), b"DKIM-Signature: a=x; bh=q; b=");
    assert_eq!(f(b"X:b=1;b=2").unwrap(), b"X:b=;b=2");
    assert_eq!(f(b"X:;b =1").unwrap(), b"X:;b =");
    assert_eq!(f(b"X: a=b=c; xb=1").unwrap(), b"X: a=b=c; xb=1");
    assert_eq!(f(b"X: B=1").unwrap(), b"X: B=1");
    assert_eq!(f(b"b=1:b=2").unwrap(), b"b=1:b=");
    assert_eq!(f(b"no colon"), None);
}

#[test]
fn split_fields_and_body() {
    let s = split(b"From: a\r\nSubject: x\r\n\ty\r\nnot a field\r\n Stray\r\n\r\nbody\r\n");
    let fields: Vec<(Vec<u8>, Vec<u8>)> =
        s.fields.iter().map(|f| (s.lname(f), s.raw(f).into_owned())).collect();
    assert_eq!(
        fields,
        vec![
            (b"from".to_vec(), b"From: a\r\n".to_vec()),
            (b"subject".to_vec(), b"Subject: x\r\n\ty\r\n".to_vec()),
        ]
    );
    assert_eq!(s.body(), b"body\r\n");
}

#[test]
fn split_normalizes_bare_lf_and_handles_no_body() {
    let s = split(b"A: 1\nB: 2\n\nx\ny");
    assert_eq!(s.fields.len(), 2);
    assert_eq!(s.raw(&s.fields[1]), b"B: 2\r\n".as_slice());
    assert_eq!(s.body(), b"x\r\ny");
    let s = split(b"A: 1");
    assert_eq!(s.raw(&s.fields[0]), b"A: 1\r\n".as_slice());
    assert_eq!(s.body(), b"");
    let s = split(b"\r\nbody");
    assert!(s.fields.is_empty());
    assert_eq!(s.body(), b"body");
    let s = split(b"");
    assert!(s.fields.is_empty());
    let s = split(b"Bad Name: 1\r\n: 2\r\nTab\t: 3\r\nO\rK: 4\r\nOk \t: 5\r\n\r\n");
    let names: Vec<Vec<u8>> = s.fields.iter().map(|f| s.lname(f)).collect();
    assert_eq!(names, vec![b"tab".to_vec(), b"ok".to_vec()]);
}

#[test]
fn header_data_joins_and_strips() {
    let fields: [&[u8]; 2] = [b"From: a\r\n", b"To:  b \r\n"];
    let sig = b"DKIM-Signature: v=1; b=xyz\r\n";
    assert_eq!(header_data(fields, true, sig).unwrap(), b"from:a\r\nto:b\r\ndkim-signature:v=1; b=");
    assert_eq!(
        header_data(fields, false, sig).unwrap(),
        b"From: a\r\nTo:  b \r\nDKIM-Signature: v=1; b="
    );
    assert_eq!(header_data(fields, true, b"nothing"), None);
}
