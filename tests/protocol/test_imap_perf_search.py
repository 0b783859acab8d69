"""SEARCH and FETCH answer from the selected mailbox's snapshot (selected.py, search.py):
flag, keyword, UID, sequence, MODSEQ, date and size keys and FETCH FLAGS read no email
record once the snapshot knows the mailbox, still see the changes other sessions made,
and give the same answers as the per-message evaluation of the records."""

from __future__ import annotations

import asyncio
import random

from stalwart.protocols.imap.commands import search
from stalwart.protocols.imap.grammar import Limits, Parser
from stalwart.protocols.imap.testing import MSG, Client
from stalwart.protocols.imap.types import Command

DAY = 86400
BASE = 1704067200   # 1-Jan-2024 00:00:00 UTC


def run(coro):
    return asyncio.run(coro)


async def _mailbox(n: int, seed: int = 7) -> Client:
    c = await Client.create()
    rng = random.Random(seed)
    inbox = c.store.find_mailbox(c.account, "INBOX")["id"]
    for i in range(n):
        kw = [k for k in ("$seen", "$flagged", "$answered", "work") if rng.random() < 0.4]
        raw = MSG + b"x" * rng.randrange(0, 400)
        await c.store.append(c.account, inbox, raw, keywords=kw,
                             received=BASE + rng.randrange(0, 60) * DAY + rng.randrange(DAY))
    return c


def _counting(store) -> list:
    reads = []
    get_email, read_message = store.get_email, store.read_message
    store.get_email = lambda *a: reads.append(("email", a)) or get_email(*a)
    store.read_message = lambda *a: reads.append(("message", a)) or read_message(*a)
    return reads


def _numbers(lines: list[bytes], prefix: bytes) -> list[int]:
    line = next(ln for ln in lines if ln.startswith(prefix))
    return [int(x) for x in line[len(prefix):].split()]


def test_search_and_fetch_flags_read_no_record():
    async def t():
        c = await _mailbox(60)
        await c.cmd("a1 SELECT INBOX", *(["*"] * 7), "a1 OK [READ-WRITE]*")
        await c.cmd("a2 UID SEARCH SINCE 1-Jan-2024", "* SEARCH *", "a2 OK*")  # sizes known
        reads = _counting(c.store)
        for key in ("FLAGGED", "UNSEEN", "KEYWORD work", "SINCE 15-Jan-2024",
                    "OR ANSWERED LARGER 200", "UID 3:20 NOT SEEN", "1:10,40:* DRAFT",
                    "MODSEQ 5", "BEFORE 1-Feb-2024 SMALLER 300", "ON 10-Jan-2024"):
            await c.cmd(f"s UID SEARCH {key}", "* SEARCH*", "s OK*")
        await c.cmd("f UID FETCH 1:60 (FLAGS UID RFC822.SIZE INTERNALDATE)",
                    *(["* *"] * 60), "f OK*")
        assert reads == []
        # A body key still reads messages: the text is not in the snapshot.
        await c.cmd("b UID SEARCH FLAGGED HEADER Message-ID m1", "* SEARCH*", "b OK*")
        assert any(kind == "message" for kind, _ in reads)
    run(t())


def test_search_sees_a_change_made_by_another_session_at_once():
    async def t():
        a = await _mailbox(20)
        b = await Client.create(a.store)
        await a.cmd("a1 SELECT INBOX", *(["*"] * 7), "a1 OK [READ-WRITE]*")
        await b.cmd("b1 SELECT INBOX", *(["*"] * 7), "b1 OK [READ-WRITE]*")
        before = _numbers(await b.raw("b2 UID SEARCH FLAGGED"), b"* SEARCH")
        target = next(u for u in range(1, 21) if u not in before)
        await a.cmd(f"a2 UID STORE {target} +FLAGS.SILENT (\\Flagged)", "a2 OK*")
        lines = await b.raw("b3 UID SEARCH FLAGGED")
        assert _numbers(lines, b"* SEARCH") == sorted(before + [target])
        # ... and the flag change is reported after the results, once.
        assert any(ln.startswith(b"* ") and b"FETCH" in ln and b"\\Flagged" in ln
                   for ln in lines[1:])
        lines = await b.raw("b4 UID SEARCH FLAGGED")
        assert not any(b"FETCH" in ln for ln in lines)
        # An expunge elsewhere, not reported yet: the message matches nothing meanwhile
        # (its record is gone) and numbering keeps it until the EXPUNGE may be sent.
        await a.cmd(f"a3 UID STORE {target} +FLAGS.SILENT (\\Deleted)", "a3 OK*")
        await a.cmd("a4 EXPUNGE", "* *", "a4 OK*")
        lines = await b.raw("b5 SEARCH FLAGGED")
        assert _numbers(lines, b"* SEARCH") == before   # UIDs 1..20: sequence = UID
        assert not any(b"EXPUNGE" in ln for ln in lines)
    run(t())


def _random_key(rng: random.Random, depth: int = 0) -> str:
    simple = ["ALL", "SEEN", "UNSEEN", "FLAGGED", "UNFLAGGED", "ANSWERED", "KEYWORD work",
              "UNKEYWORD work", "NEW", "OLD", "RECENT", "DELETED", "DRAFT",
              "LARGER 150", "SMALLER 250", "SINCE 20-Jan-2024", "BEFORE 10-Feb-2024",
              "ON 5-Jan-2024", "ON 1-Jan-2024", "MODSEQ 12", "OLDER 10", "YOUNGER 100",
              "UID 5:17", "UID 30:*", "3:9,21", "*", "UID *", "$", "SUBJECT Hello",
              "HEADER Message-ID m1", "SENTBEFORE 2-Jan-2024", "BODY alice"]
    r = rng.random()
    if depth < 3 and r < 0.2:
        return f"OR {_random_key(rng, depth + 1)} {_random_key(rng, depth + 1)}"
    if depth < 3 and r < 0.3:
        return f"NOT {_random_key(rng, depth + 1)}"
    if depth < 3 and r < 0.45:
        return "(" + " ".join(_random_key(rng, depth + 1)
                              for _ in range(rng.randrange(1, 4))) + ")"
    return rng.choice(simple)


def test_set_evaluation_equals_the_per_message_evaluation():
    """Random key trees: the set-based evaluation (from the snapshot) and the
    per-message one over the email records (``search._scan``) agree on every key."""
    async def t():
        c = await _mailbox(40, seed=3)
        await c.cmd("a1 SELECT INBOX", *(["*"] * 7), "a1 OK [READ-WRITE]*")
        await c.cmd("a2 SEARCH RETURN (SAVE) UNSEEN", "a2 OK*")
        await c.cmd("a3 STORE 4:8 +FLAGS (\\Draft)", *(["*"] * 5), "a3 OK*")
        rng = random.Random(11)
        parser = Parser(Limits())
        view = c.s.selected

        def compare(rounds: int) -> None:
            for i in range(rounds):
                key = _random_key(rng)
                parser.receive_data(f"x{i} SEARCH {key}\r\n".encode())
                cmd = parser.next_event()
                assert isinstance(cmd, Command), key
                fast = search._search(c.s, cmd.args.key)
                slow = search._scan(c.s, cmd.args.key, view.uids)
                assert [(q, u, m) for q, u, m in fast] == \
                    [(q, u, e["modseq"]) for q, u, e in slow], key

        compare(300)
        # Changes made elsewhere, not reported to this session yet: the snapshot's
        # indexes (keywords, received dates) follow them; removed messages keep their
        # numbers and match nothing.
        inbox = view.id
        eids = [view.eids[u] for u in view.uids]
        await c.store.set_keywords(c.account, eids[:12], add=["$flagged", "work"])
        await c.store.set_keywords(c.account, eids[10:20], remove=["$seen", "work"])
        await c.store.expunge(c.account, inbox, view.uids[25:30])
        for day in (3, 40):
            await c.store.append(c.account, inbox, MSG, keywords=["work"],
                                 received=BASE + day * DAY)
        compare(300)
        lines = await c.raw("a4 NOOP")   # now reported: the numbers change
        assert lines[-1].startswith(b"a4 OK") and lines.count(b"* 37 EXISTS") == 1
        assert len(view.uids) == 37
        compare(300)
    run(t())


def test_sort_and_thread_still_get_dates_and_sizes():
    async def t():
        c = await _mailbox(15, seed=5)
        await c.cmd("a1 SELECT INBOX", *(["*"] * 7), "a1 OK [READ-WRITE]*")
        rows = search.evaluate(c.s, ("all",))
        records = {u: c.store.get_email(c.account, c.s.selected.eids[u]) for _, u, _ in rows}
        assert [(u, r["received"], r["size"], r["modseq"]) for _, u, r in rows] == \
            [(u, records[u]["received"], records[u]["size"], records[u]["modseq"])
             for _, u, _ in rows]
        lines = await c.raw("a2 UID SORT (ARRIVAL) UTF-8 SINCE 1-Jan-2024")
        got = _numbers(lines, b"* SORT")
        assert got == sorted(records, key=lambda u: (records[u]["received"], u))
    run(t())
