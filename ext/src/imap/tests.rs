//! Plain Rust tests of the IMAP parser: framing at every split, literals, limits and a few
//! commands. The exhaustive comparison with the reference grammar is the Python
//! differential test (tests/protocol/test_imap_grammar_native.py).

use super::*;

fn feed(data: &[u8], chunk: usize, limits: Limits) -> Vec<Result<Event, Stop>> {
    let mut p = Parser::new(limits, false);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        p.receive_data(piece);
        loop {
            match p.next_event(&mut PlainHost, &mut DefaultLimit) {
                Ok(Event::NeedData) => break,
                other => out.push(other),
            }
        }
    }
    out
}

fn all_splits(data: &[u8], limits: Limits) -> Vec<Result<Event, Stop>> {
    let whole = feed(data, data.len(), limits);
    for chunk in 1..8 {
        assert_eq!(feed(data, chunk, limits), whole, "chunk size {chunk}");
    }
    whole
}

fn command(tag: &str, name: &str, args: Args) -> Result<Event, Stop> {
    Ok(Event::Command(Command { tag: tag.into(), name: name.into(), args }))
}

fn seq(ranges: &[(Option<u32>, Option<u32>)]) -> SeqSet {
    SeqSet { ranges: ranges.to_vec(), saved: false }
}

#[test]
fn simple_commands_and_literals() {
    let events = all_splits(b"a1 noop\r\na2 LOGIN {5}\r\nalice {2+}\r\npw\r\n", Limits::default());
    assert_eq!(events, vec![
        command("a1", "NOOP", Args::None),
        Ok(Event::Continuation("a2".into(), "LOGIN".into(), 5)),
        command("a2", "LOGIN", Args::Login { username: "alice".into(), password: "pw".into() }),
    ]);
}

#[test]
fn append_literal8_is_moved_into_the_message() {
    let events = all_splits(b"a1 APPEND INBOX (\\Seen) ~{3+}\r\nB\x00C\r\n", Limits::default());
    let [Ok(Event::Command(c))] = &events[..] else { panic!("{events:?}") };
    let Args::Append { name, messages } = &c.args else { panic!() };
    assert_eq!(name, "INBOX");
    assert_eq!(messages[0].data, b"B\x00C");
    assert!(messages[0].binary);
    assert_eq!(messages[0].flags, vec!["\\Seen".to_string()]);
}

#[test]
fn huge_literal_is_refused_at_once() {
    let events = all_splits(b"a1 LOGIN {4294967295}\r\na2 NOOP\r\n", Limits::default());
    let Err(Stop::Imap(e)) = &events[0] else { panic!("{events:?}") };
    assert_eq!(e.message, "Literal of 4294967295 octets is over the limit of 1048576 octets");
    assert_eq!((e.tag.as_deref(), e.code, e.close), (Some("a1"), Some("TOOBIG"), false));
    assert_eq!(events[1], command("a2", "NOOP", Args::None));
}

#[test]
fn refused_nonsync_literal_is_dropped() {
    let limits = Limits { max_literal: 10, ..Limits::default() };
    let data = b"a1 LOGIN {22+}\r\na9 LOGOUT\r\na9 LOGOUT\r\n x\r\na2 NOOP\r\n";
    let events = all_splits(data, limits);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], command("a2", "NOOP", Args::None));
}

#[test]
fn over_long_line_is_reported_once_in_step() {
    let limits = Limits { max_line: 100, ..Limits::default() };
    let mut data = b"a1 LOGIN ".to_vec();
    data.extend(std::iter::repeat_n(b'x', 300));
    data.extend_from_slice(b"\r\na2 NOOP\r\n");
    let events = all_splits(&data, limits);
    let Err(Stop::Imap(e)) = &events[0] else { panic!() };
    assert_eq!(e.message, "Line too long (limit 100 octets)");
    assert_eq!(events[1], command("a2", "NOOP", Args::None));
}

#[test]
fn fetch_and_search() {
    let events = all_splits(
        b"a1 UID FETCH 1:*,7 (FLAGS BODY.PEEK[1.HEADER.FIELDS (from)]<0.5>)\r\n\
          a2 SEARCH OR UNSEEN NOT 3 SINCE 1-Feb-2024\r\n",
        Limits::default(),
    );
    let section = Section { part: vec![1], text: Some("HEADER.FIELDS"), fields: vec!["FROM".into()] };
    assert_eq!(events[0], command("a1", "UID FETCH", Args::Fetch {
        sequence: seq(&[(Some(1), None), (Some(7), Some(7))]),
        items: vec![FetchItem::plain("FLAGS"), FetchItem {
            name: "BODY[]", section: Some(section), partial: Some((0, 5)), peek: true, lazy: false,
        }],
        changed_since: None, vanished: false, macro_: false,
    }));
    let not_seen = SearchKey::Not(Box::new(SearchKey::Keyword("\\Seen".into())));
    let not3 = SearchKey::Not(Box::new(SearchKey::Seq(seq(&[(Some(3), Some(3))]))));
    assert_eq!(events[1], command("a2", "SEARCH", Args::Search {
        key: SearchKey::And(vec![
            SearchKey::Or(Box::new(not_seen), Box::new(not3)),
            SearchKey::Date("since", Date { year: 2024, month: 2, day: 1 }),
        ]),
        returns: None, charset: None,
    }));
}

#[test]
fn errors_name_the_problem() {
    let cases: &[(&[u8], &str)] = &[
        (b"a1 FETCH 1 FLAGS extra\r\n", "Expected '(' but found b'extra'"),
        (b"a1 FETCH 0 FLAGS\r\n", "Expected a non-zero number"),
        (b"a1 SELECT &Jjo\r\n",
         "Invalid mailbox name: modified UTF-7 shift sequence is not terminated by '-'"),
        (b"a1 SEARCH NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT ALL\r\n",
         "Search keys nested too deep (limit 10)"),
        (b"a1 APPEND x \"31-Feb-2024 10:00:00 +0000\" {1+}\r\nx\r\n", "Invalid date-time \"31-Feb-2024 10:00:00 +0000\""),
    ];
    let limits = Limits { max_depth: 10, ..Limits::default() };
    for (data, message) in cases {
        let events = all_splits(data, limits);
        let Err(Stop::Imap(e)) = &events[0] else { panic!("{events:?}") };
        assert_eq!(&e.message, message);
        assert_eq!(e.tag.as_deref(), Some("a1"));
    }
}

#[test]
fn deep_nesting_does_not_recurse_without_bound() {
    let mut data = b"a1 SEARCH ".to_vec();
    data.extend(std::iter::repeat_n(b'(', 50000));
    data.extend_from_slice(b"\r\n");
    let events = feed(&data, data.len(), Limits::default());
    let Err(Stop::Imap(e)) = &events[0] else { panic!() };
    assert_eq!(e.message, "Parentheses nested too deep (limit 32)");
}

#[test]
fn zero_length_literal_is_complete_at_once() {
    let events = all_splits(b"a1 LOGIN {0}\r\n {0+}\r\n\r\n", Limits::default());
    assert_eq!(events, vec![
        Ok(Event::Continuation("a1".into(), "LOGIN".into(), 0)),
        command("a1", "LOGIN", Args::Login { username: String::new(), password: String::new() }),
    ]);
}

#[test]
fn non_synchronizing_literal_asks_for_no_continuation() {
    let events = all_splits(b"a1 LOGIN {5+}\r\nalice {2+}\r\npw\r\n", Limits::default());
    assert_eq!(events, vec![command(
        "a1", "LOGIN", Args::Login { username: "alice".into(), password: "pw".into() })]);
}

#[test]
fn literal_octets_are_streamed_out_of_the_line_buffer() {
    let mut p = Parser::new(Limits::default(), false);
    p.receive_data(b"a1 APPEND INBOX {1000000+}\r\n");
    assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit), Ok(Event::NeedData));
    let chunk = vec![b'x'; 4096];
    let mut sent = 0;
    while sent < 1_000_000 {
        let n = chunk.len().min(1_000_000 - sent);
        p.receive_data(&chunk[..n]);
        sent += n;
        assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit), Ok(Event::NeedData));
        assert_eq!(p.buffered(), 0, "literal octets left in the line buffer");
    }
    p.receive_data(b"\r\n");
    let Ok(Event::Command(c)) = p.next_event(&mut PlainHost, &mut DefaultLimit) else { panic!() };
    let Args::Append { messages, .. } = c.args else { panic!() };
    assert_eq!(messages[0].data.len(), 1_000_000);
}

#[test]
fn huge_nonsync_literal_closes_without_reading() {
    let limits = Limits { max_discard: 1000, ..Limits::default() };
    let events = all_splits(b"a1 APPEND INBOX {4294967295+}\r\n", limits);
    let Err(Stop::Imap(e)) = &events[0] else { panic!("{events:?}") };
    assert_eq!(e.message, "Message of 4294967295 octets is over the limit of 52428800 octets");
    assert_eq!((e.reply, e.code, e.close), ("NO", Some("TOOBIG"), true));
}

#[test]
fn replace_is_a_message_command() {
    let limits = Limits { max_append: 10, ..Limits::default() };
    let events = all_splits(b"a1 UID REPLACE 4 Drafts {11}\r\na2 REPLACE 4 Drafts {3+}\r\nabc\r\n", limits);
    let Err(Stop::Imap(e)) = &events[0] else { panic!("{events:?}") };
    assert_eq!((e.reply, e.message.as_str()), ("NO", "Message of 11 octets is over the limit of 10 octets"));
    assert_eq!(events[1], command("a2", "REPLACE", Args::Replace {
        number: 4,
        name: "Drafts".into(),
        message: AppendMessage { flags: vec![], date: None, data: b"abc".to_vec(), binary: false },
    }));
}

#[test]
fn sort_thread_and_quota() {
    let events = all_splits(
        b"a1 UID SORT (REVERSE date SUBJECT) utf-8 ALL\r\n\
          a2 THREAD references US-ASCII SEEN\r\n\
          a3 SETQUOTA \"\" (storage 512)\r\n\
          a4 SORT (BOGUS) UTF-8 ALL\r\n\
          a5 THREAD REFERENCES X-NONE ALL\r\n",
        Limits::default(),
    );
    assert_eq!(events[0], command("a1", "UID SORT", Args::Sort {
        criteria: vec![(true, "DATE".into()), (false, "SUBJECT".into())],
        key: SearchKey::And(vec![SearchKey::All]),
        charset: "UTF-8".into(),
    }));
    assert_eq!(events[1], command("a2", "THREAD", Args::Thread {
        algorithm: "REFERENCES".into(),
        key: SearchKey::And(vec![SearchKey::Keyword("\\Seen".into())]),
        charset: "US-ASCII".into(),
    }));
    assert_eq!(events[2], command("a3", "SETQUOTA", Args::Quota {
        root: String::new(), limits: vec![("STORAGE".into(), 512)],
    }));
    let Err(Stop::Imap(e)) = &events[3] else { panic!() };
    assert_eq!(e.message, "Unknown sort key BOGUS");
    let Err(Stop::Imap(e)) = &events[4] else { panic!() };
    assert_eq!((e.reply, e.code), ("NO", Some("BADCHARSET (UTF-8 US-ASCII)")));
}

#[test]
fn argument_and_command_limits() {
    let limits = Limits { max_args: 5, max_command: 60, ..Limits::default() };
    let events = all_splits(
        b"a1 FETCH 1,2,3,4,5,6 FLAGS\r\na2 LOGIN {50}\r\na3 LOGIN {10+}\r\n0123456789 {30+}\r\n",
        limits,
    );
    let Err(Stop::Imap(e)) = &events[0] else { panic!() };
    assert_eq!(e.message, "Too many arguments (limit 5)");
    let Err(Stop::Imap(e)) = &events[1] else { panic!() };
    assert_eq!((e.tag.as_deref(), e.code), (Some("a2"), Some("TOOBIG")));
    let Err(Stop::Imap(e)) = &events[2] else { panic!("{events:?}") };
    assert_eq!((e.tag.as_deref(), e.code), (Some("a3"), Some("TOOBIG")));
}

#[test]
fn idle_and_sasl_modes() {
    let mut p = Parser::new(Limits::default(), false);
    p.receive_data(b"a1 IDLE\r\n");
    assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit), command("a1", "IDLE", Args::None));
    p.mode = Mode::Idle;
    p.receive_data(b"done\r\nAGFsaWNl\r\n");
    assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit), Ok(Event::IdleDone));
    p.mode = Mode::Sasl;
    assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit),
               Ok(Event::SaslResponse(b"AGFsaWNl".to_vec())));
}

#[test]
fn partial_is_number64() {
    let events = all_splits(b"a1 FETCH 1 BODY[]<4294967296.5000000000>\r\n", Limits::default());
    let Ok(Event::Command(c)) = &events[0] else { panic!("{events:?}") };
    let Args::Fetch { items, .. } = &c.args else { panic!() };
    assert_eq!(items[0].partial, Some((4_294_967_296, 5_000_000_000)));
}

#[test]
fn an_idle_reader_gives_back_the_memory_of_a_burst() {
    let mut p = Parser::new(Limits::default(), false);
    let mut burst = Vec::new();
    for i in 0..20_000 {
        burst.extend_from_slice(format!("t{i} NOOP\r\n").as_bytes());
    }
    burst.extend_from_slice(b"a1 APPEND INBOX {300000+}\r\n");
    burst.extend(std::iter::repeat_n(b'x', 300_000));
    burst.extend_from_slice(b"\r\n");
    p.receive_data(&burst);
    assert!(p.memory() >= burst.len());
    let mut commands = 0;
    loop {
        match p.next_event(&mut PlainHost, &mut DefaultLimit) {
            Ok(Event::NeedData) => break,
            Ok(Event::Command(_)) => commands += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(commands, 20_001);
    assert!(p.memory() <= 16 * 1024, "{} octets kept", p.memory());
}

#[test]
fn literal_memory_follows_the_octets_received() {
    let mut p = Parser::new(Limits::default(), false);
    p.receive_data(b"a1 APPEND INBOX {50000000+}\r\n");
    assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit), Ok(Event::NeedData));
    p.receive_data(&[b'x'; 1000]);
    assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit), Ok(Event::NeedData));
    assert!(p.memory() < 64 * 1024, "{} octets held for 1000 received", p.memory());
    let mut p = Parser::new(Limits::default(), false);
    p.receive_data(b"a1 APPEND INBOX {100001+}\r\n");
    for _ in 0..100 {
        p.receive_data(&[b'y'; 1000]);
        assert_eq!(p.next_event(&mut PlainHost, &mut DefaultLimit), Ok(Event::NeedData));
    }
    assert!(p.memory() <= 100_001 + 16 * 1024, "{} octets held", p.memory());
    p.receive_data(b"z\r\n");
    let Ok(Event::Command(c)) = p.next_event(&mut PlainHost, &mut DefaultLimit) else { panic!() };
    let Args::Append { messages, .. } = c.args else { panic!() };
    assert_eq!((messages[0].data.len(), messages[0].data.capacity()), (100_001, 100_001));
}

/// `wire` fed `chunk` octets at a time to a parser with `stream_append` on: the literal
/// chunks handed out (joined), how many were marked last, and the commands.
fn stream(wire: &[u8], chunk: usize) -> (Vec<u8>, usize, Vec<Command>) {
    let mut p = Parser::new(Limits::default(), false);
    p.stream_append = true;
    let (mut data, mut lasts, mut commands) = (Vec::new(), 0, Vec::new());
    for piece in wire.chunks(chunk) {
        p.receive_data(piece);
        loop {
            match p.next_event(&mut PlainHost, &mut DefaultLimit) {
                Ok(Event::NeedData) => break,
                Ok(Event::LiteralData(d, last)) => {
                    assert!(d.len() <= chunk, "a chunk is at most what was fed");
                    data.extend_from_slice(&d);
                    lasts += last as usize;
                }
                Ok(Event::Continuation(..)) => {}
                Ok(Event::Command(c)) => commands.push(c),
                other => panic!("{other:?}"),
            }
        }
        assert!(p.memory() < 64 * 1024);
    }
    (data, lasts, commands)
}

#[test]
fn stream_append_hands_out_literal_chunks_and_an_empty_literal() {
    let wire = b"a1 APPEND INBOX (\\Seen) {5}\r\nhello ~{3+}\r\nabc\r\na2 LOGIN {2+}\r\nme pw\r\n";
    for chunk in 1..9 {
        let (data, lasts, commands) = stream(wire, chunk);
        assert_eq!((data, lasts), (b"helloabc".to_vec(), 2), "chunk size {chunk}");
        let Args::Append { messages, .. } = &commands[0].args else { panic!() };
        assert_eq!(messages.len(), 2);
        assert!(messages.iter().all(|m| m.data.is_empty()));
        assert!(messages[1].binary);
        // Other commands' literals are still collected.
        let Args::Login { username, .. } = &commands[1].args else { panic!() };
        assert_eq!(username, "me");
    }
}

#[test]
fn replace_and_uid_replace_literals_are_streamed() {
    let wire = b"a1 REPLACE 1 Drafts (\\Draft) {5}\r\nhello\r\na2 UID REPLACE 7 Drafts ~{3+}\r\nabc\r\na3 LOGIN {2+}\r\nme pw\r\n";
    for chunk in 1..12 {
        let (data, lasts, commands) = stream(wire, chunk);
        assert_eq!((data, lasts), (b"helloabc".to_vec(), 2), "chunk size {chunk}");
        assert_eq!(commands.len(), 3);
        for (c, number, binary) in [(&commands[0], 1, false), (&commands[1], 7, true)] {
            let Args::Replace { number: n, name, message } = &c.args else { panic!() };
            assert_eq!((*n, name.as_str()), (number, "Drafts"));
            assert!(message.data.is_empty() && message.binary == binary);
        }
        let Args::Login { username, .. } = &commands[2].args else { panic!() };
        assert_eq!(username, "me", "other commands' literals are still collected");
    }
}

#[test]
fn replace_literal_collected_with_streaming_off() {
    let mut p = Parser::new(Limits::default(), false);
    p.receive_data(b"a1 REPLACE 1 Drafts {5+}\r\nhello\r\n");
    let Ok(Event::Command(c)) = p.next_event(&mut PlainHost, &mut DefaultLimit) else { panic!() };
    let Args::Replace { message, .. } = c.args else { panic!() };
    assert_eq!(message.data, b"hello");
}
