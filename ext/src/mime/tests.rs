//! Tests of the part tree and its offsets: every expected offset is computed from the
//! message text itself, so the tests state what IMAP `BODY[...]` slices must return.

use super::*;

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

fn slice<'a>(raw: &'a [u8], start: usize, end: usize) -> &'a str {
    std::str::from_utf8(&raw[start..end]).unwrap()
}

const MIXED: &str = "From: Ann <ann@example.com>\n\
Subject: test\n\
Content-Type: multipart/mixed; boundary=\"outer\"\n\
\n\
preamble\n\
--outer\n\
Content-Type: multipart/alternative; boundary=inner\n\
\n\
--inner\n\
Content-Type: text/plain; charset=utf-8\n\
\n\
plain line 1\n\
plain line 2\n\
--inner\n\
Content-Type: text/html\n\
\n\
<p>html</p>\n\
--inner--\n\
--outer\n\
Content-Type: application/octet-stream; name=a.bin\n\
Content-Disposition: attachment; filename=\"a.bin\"\n\
Content-Transfer-Encoding: base64\n\
\n\
AAEC\n\
--outer--\n\
epilogue\n";

#[test]
fn tree_and_offsets_lf_and_crlf() {
    for raw in [MIXED.as_bytes().to_vec(), crlf(MIXED)] {
        let nl = if raw.contains(&b'\r') { "\r\n" } else { "\n" };
        let m = parse(&raw);
        let kinds: Vec<String> =
            m.parts.iter().map(|p| format!("{}/{}", p.content_type, p.subtype)).collect();
        assert_eq!(
            kinds,
            ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/octet-stream"]
        );
        assert_eq!(m.parts[0].children, vec![1, 4]);
        assert_eq!(m.parts[1].children, vec![2, 3]);
        assert_eq!(m.text_body, vec![2]);
        assert_eq!(m.html_body, vec![3]);
        assert_eq!(m.attachments, vec![4]);

        let root = &m.parts[0];
        assert_eq!(root.header_start, 0);
        assert!(slice(&raw, 0, root.body_start).ends_with(&format!("boundary=\"outer\"{nl}{nl}")));
        assert_eq!(root.body_end, raw.len());

        let plain = &m.parts[2];
        assert_eq!(
            slice(&raw, plain.header_start, plain.body_start),
            format!("Content-Type: text/plain; charset=utf-8{nl}{nl}")
        );
        assert_eq!(
            slice(&raw, plain.body_start, plain.body_end),
            format!("plain line 1{nl}plain line 2")
        );
        assert_eq!(plain.lines, 2);
        assert_eq!(plain.text.as_deref(), Some(format!("plain line 1{nl}plain line 2").as_str()));
        assert_eq!(slice(&raw, m.parts[3].body_start, m.parts[3].body_end), "<p>html</p>");

        let bin = &m.parts[4];
        assert_eq!(slice(&raw, bin.body_start, bin.body_end), "AAEC");
        assert_eq!(bin.encoding.as_deref(), Some("base64"));
        assert_eq!(bin.disposition.as_deref(), Some("attachment"));
        assert_eq!(bin.disposition_params, vec![("filename".to_string(), "a.bin".to_string())]);
        assert_eq!(decode(&raw, bin), Decoded::Bytes(Cow::Owned(vec![0, 1, 2])));

        // Header fields: name as written and offsets of the full field.
        let h = &m.parts[0].headers[1];
        assert_eq!(h.name, "Subject");
        assert_eq!(slice(&raw, h.field_start, h.end), format!("Subject: test{nl}"));
        assert_eq!(slice(&raw, h.value_start, h.end), format!(" test{nl}"));
    }
}

#[test]
fn nested_message_has_envelope_and_absolute_offsets() {
    let raw = crlf(
        "From: outer@example.com\n\
Subject: outer\n\
Content-Type: multipart/mixed; boundary=b\n\
\n\
--b\n\
Content-Type: text/plain\n\
\n\
see attached\n\
--b\n\
Content-Type: message/rfc822\n\
\n\
From: \"Inner, Bob\" <bob@example.org>\n\
Subject: =?iso-8859-1?q?caf=E9?=\n\
Date: Tue, 1 Jul 2003 10:52:37 +0200\n\
Message-ID: <inner@id>\n\
\n\
inner body\n\
--b--\n",
    );
    let m = parse(&raw);
    assert_eq!(m.parts.len(), 3);
    let part = &m.parts[2];
    assert_eq!((part.content_type.as_str(), part.subtype.as_str()), ("message", "rfc822"));
    assert_eq!(m.attachments, vec![2]);
    let inner = part.message.as_ref().expect("nested message");
    assert_eq!((inner.start, inner.end), (part.body_start, part.body_end));
    assert_eq!(inner.subject.as_deref(), Some("café"));
    assert_eq!(inner.from[0].addresses[0].name.as_deref(), Some("Inner, Bob"));
    assert_eq!(inner.from[0].addresses[0].address.as_deref(), Some("bob@example.org"));
    assert_eq!(inner.date, Some(1057049557));
    assert_eq!(inner.date_raw.as_deref(), Some("Tue, 1 Jul 2003 10:52:37 +0200"));
    assert_eq!(inner.message_id.as_deref(), Some("inner@id"));
    let root = &inner.parts[0];
    assert_eq!(root.header_start, part.body_start);
    assert!(slice(&raw, root.header_start, root.body_start).starts_with("From: \"Inner, Bob\""));
    assert_eq!(slice(&raw, root.body_start, root.body_end), "inner body");
    assert_eq!(part.lines, 6);
    assert_eq!(inner.preview, "inner body");
}

#[test]
fn broken_input_never_fails() {
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"no header at all".to_vec(),
        b"Subject: only a header".to_vec(),
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nunterminated"
            .to_vec(),
        b"Content-Type: multipart/mixed; boundary=missing\n\nbody without boundary\n".to_vec(),
        b"Content-Transfer-Encoding: base64\n\n!!!not base64!!!\n".to_vec(),
        b"Subject: \xff\xfe\x00garbage\n\n\x00\x01\x02".to_vec(),
        vec![0xff; 1000],
    ];
    for raw in cases {
        let m = parse(&raw);
        assert!(!m.parts.is_empty());
        for p in &m.parts {
            assert!(p.header_start <= p.body_start && p.body_start <= p.body_end);
            assert!(p.body_end <= raw.len());
        }
    }
    let m = parse(b"no header at all");
    assert_eq!(m.parts[0].text.as_deref(), Some("no header at all"));
    let m = parse(b"Subject: only a header");
    assert_eq!(m.subject.as_deref(), Some("only a header"));
    assert_eq!(m.parts[0].body_start, m.parts[0].body_end);
}

#[test]
fn depth_is_limited_and_deep_input_does_not_overflow() {
    // 5,000 nested message/rfc822 parts and 5,000 nested multiparts.
    let mut raw = Vec::new();
    for _ in 0..5000 {
        raw.extend_from_slice(b"Content-Type: message/rfc822\n\n");
    }
    raw.extend_from_slice(b"Subject: deep\n\nbody\n");
    let m = parse(&raw);
    let mut depth = 0;
    let mut cur = &m;
    while let Some(inner) = cur.parts[0].message.as_ref() {
        depth += 1;
        cur = inner;
    }
    assert_eq!(depth, MAX_DEPTH);

    let mut raw = Vec::new();
    for i in 0..5000 {
        raw.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes());
    }
    raw.extend_from_slice(b"Content-Type: text/plain\n\nleaf\n");
    let m = parse(&raw);
    let mut depth = 0;
    let mut id = 0;
    while let Some(&child) = m.parts[id].children.first() {
        depth += 1;
        id = child;
    }
    assert_eq!(depth, MAX_DEPTH);
    assert!(m.parts.len() <= MAX_DEPTH + 1);
}

#[test]
fn quoted_printable_and_charsets() {
    let raw = b"Subject: =?utf-8?B?w6lsw6h2ZQ==?= =?iso-2022-jp?B?GyRCJEgkaiQiJCgkOhsoQg==?=\n\
Content-Type: text/plain; charset=iso-8859-1\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
caf=E9 au lait=\n\x20soft\n";
    let m = parse(raw);
    assert_eq!(m.subject.as_deref(), Some("élèveとりあえず"));
    let p = &m.parts[0];
    assert_eq!(decode(raw, p), Decoded::Text(Cow::Borrowed("café au lait soft\n")));
    assert_eq!(p.lines, 2);
}

#[test]
fn groups_and_ids() {
    let raw = b"To: Friends: a@x.org, \"B\" <b@x.org>;, c@y.org\n\
In-Reply-To: <one@x>\n\
References: <zero@x> <one@x>\n\
\n";
    let m = parse(raw);
    assert_eq!(m.to.len(), 2);
    assert_eq!(m.to[0].name.as_deref(), Some("Friends"));
    assert_eq!(m.to[0].addresses.len(), 2);
    assert_eq!(m.to[1].name, None);
    assert_eq!(m.to[1].addresses[0].address.as_deref(), Some("c@y.org"));
    assert_eq!(m.in_reply_to, vec!["one@x"]);
    assert_eq!(m.references, vec!["zero@x", "one@x"]);
}

#[test]
fn line_counts() {
    assert_eq!(count_lines(b""), 0);
    assert_eq!(count_lines(b"a"), 1);
    assert_eq!(count_lines(b"a\r\n"), 1);
    assert_eq!(count_lines(b"a\r\nb"), 2);
    assert_eq!(count_lines(b"\n\n"), 2);
}

#[test]
fn preview_collapses_space_and_converts_html() {
    let raw = b"Content-Type: text/html\n\n<html><body><p>Hello</p>\n\n<p>  world &amp; co</p></body></html>\n";
    let m = parse(raw);
    assert_eq!(m.preview, "Hello world & co");
    let long = format!("Subject: x\n\n{}\n", "word ".repeat(200));
    let m = parse(long.as_bytes());
    assert_eq!(m.preview.chars().count(), PREVIEW_CHARS);
}

#[test]
fn lenient_quoted_printable_keeps_stray_equals() {
    assert_eq!(lenient_quoted_printable(b"a=3Db==c=\r\nd  \r\ne"), b"a=b==cd\r\ne".to_vec());
    assert_eq!(lenient_quoted_printable(b"x=4"), b"x=4".to_vec());
}

#[test]
fn encoded_body_without_closing_boundary_is_still_decoded() {
    let raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\
Content-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: base64\n\n\
w6lsw6h2ZQ==\n";
    let m = parse(raw);
    let p = &m.parts[1];
    assert!(!p.encoding_problem);
    assert_eq!(p.text.as_deref(), Some("élève"));
    let raw = b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n==== caf=C3=A9\n";
    let m = parse(raw);
    assert_eq!(m.parts[0].text.as_deref(), Some("==== café\n"));
}

#[test]
fn malformed_dates_do_not_swallow_the_next_field() {
    let raw = b"Date: Sat, 14 Sep 2002 06:00:48 UT\nFrom: a@b.example\nMessage-Id: <x@y>\n\n\nbody\n";
    let m = parse(raw);
    assert_eq!(m.from[0].addresses[0].address.as_deref(), Some("a@b.example"));
    assert_eq!(m.message_id.as_deref(), Some("x@y"));
    assert_eq!(&raw[m.parts[0].body_start..m.parts[0].body_end], b"\nbody\n");
    assert_eq!(m.date_raw.as_deref(), Some("Sat, 14 Sep 2002 06:00:48 UT"));
}

#[test]
fn lenient_base64_skips_garbage_and_stops_at_padding() {
    assert_eq!(lenient_base64(b"aGVs\r\nbG8=\r\nfooter text"), b"hello".to_vec());
    assert_eq!(lenient_base64(b"aGVs*bG8h"), b"hello!".to_vec());
}
