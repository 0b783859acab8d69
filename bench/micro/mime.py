"""MIME parsing: the native parser (stalwart.mime) against the stdlib ``email`` package.

    python -m bench.micro.mime [--rounds 5] [--corpus PATH] [--json]

Both sides parse every message of the SpamAssassin corpus (4,218 real messages from 2002,
``../shared/corpora/spamassassin-dev.tar.gz`` (beside the repository; ``STALWART_CORPUS`` overrides); the leading mbox ``From `` line of each
is stripped) to the same depth: the full part tree with each part's content type
(descending into message/rfc822), Subject, From addresses, Message-ID, and every text
part decoded to str. Each round times one pass over the whole corpus per side; the
report gives messages/s (median over rounds), the median of the per-round ratios, and
whether the two sides agreed (the agreement rate, message by message, computed with
:func:`compare`), plus the environment.

The extraction and comparison functions here are also what ``tests/unit/test_mime.py``
uses for its differential test, so the benchmark and the test agree on what "agree" means.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import platform
import re
import statistics
import sys
import tarfile
import time
from pathlib import Path

from stalwart import mime

CORPUS = Path(os.environ.get("STALWART_CORPUS", Path(__file__).resolve().parents[2].parent
                                / "shared" / "corpora" / "spamassassin-dev.tar.gz"))

FIELDS = ("types", "subject", "from", "message_id", "texts")


def load_corpus(path: Path = CORPUS) -> list[tuple[str, bytes]]:
    """(name, raw message) for every ``.eml`` of the tarball, mbox ``From `` line removed."""
    out = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".eml"):
                continue
            fh = tar.extractfile(member)
            if fh is None:
                continue
            raw = fh.read()
            if raw.startswith(b"From "):
                nl = raw.find(b"\n")
                raw = raw[nl + 1:] if nl >= 0 else b""
            out.append((member.name, raw))
    return out


# -- extraction: what each side yields, unnormalised (this is the timed work) ----------------


def ours(raw: bytes) -> dict:
    """Tree, envelope fields and decoded text bodies with stalwart.mime."""
    msg = mime.parse(raw)
    types: list[str] = []
    texts: list[str] = []
    stack = [(msg, 0)]
    while stack:
        m, index = stack.pop()
        part = m.part(index)
        types.append(part.mime_type)
        if part.content_type == "multipart":
            stack.extend((m, child) for child in reversed(part.children))
        elif part.message is not None:
            stack.append((part.message, 0))
        elif part.content_type == "text":
            body = part.decoded()
            texts.append(body if isinstance(body, str) else body.decode("utf-8", "replace"))
    return {
        "types": types,
        "subject": msg.subject,
        "from": [address for _, address in msg.from_],
        "message_id": msg.message_id,
        "texts": texts,
    }


def stdlib(raw: bytes) -> dict:
    """The same with ``email`` (policy.default: decoded headers, get_content())."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    types: list[str] = []
    texts: list[str] = []
    skip: set[int] = set()
    for part in msg.walk():
        if id(part) in skip:
            continue
        types.append(part.get_content_type())
        if part.get_content_type() == "message/delivery-status":
            # RFC 3464 status fields are not an encapsulated message: IMAP and we treat
            # the part as a leaf, the stdlib splits it into pseudo-parts. Skip those.
            skip.update(id(sub) for sub in part.walk() if sub is not part)
        elif part.get_content_maintype() == "text":
            try:
                texts.append(part.get_content())
            except (LookupError, ValueError, AssertionError, AttributeError, TypeError):
                payload = part.get_payload(decode=True) or b""
                texts.append(payload.decode("utf-8", "replace"))
    return {
        "types": types,
        "subject": _last_str(msg, "subject"),
        "from": _addresses(msg),
        "message_id": _last_str(msg, "message-id"),
        "texts": texts,
    }


def _last_str(msg, name: str) -> str | None:
    try:
        values = msg.get_all(name)
    except Exception:  # the header registry raises assorted errors on broken fields
        return None
    return str(values[-1]) if values else None


def _addresses(msg) -> list[str]:
    try:
        values = msg.get_all("from")
        if not values:
            return []
        return [a.addr_spec for a in values[-1].addresses]
    except Exception:
        return []


# -- comparison ------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def _norm_text(text: str | None) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _norm_id(value: str | None) -> str:
    value = (value or "").strip()
    match = re.search(r"<([^<>]*)>", value)
    return (match.group(1) if match else value).strip()


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _norm_body(text: str, charset_tolerant: bool = False) -> str:
    # Line endings and trailing white space are presentation, not content.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.rstrip().split("\n"))
    return _NON_ASCII.sub("?", text) if charset_tolerant else text


def compare(a: dict, b: dict, charset_tolerant: bool = False) -> list[str]:
    """Names of the fields on which two extractions disagree (empty: they agree).

    ``charset_tolerant`` compares text bodies with every run of non-ASCII characters
    reduced to "?": it separates charset choices (we read ISO-8859-1 as Windows-1252,
    as WHATWG and mail clients do, where the stdlib yields C1 controls or U+FFFD) from
    differences of structure or transfer decoding.
    """
    diff = []
    if a["types"] != b["types"]:
        diff.append("types")
    if _norm_text(a["subject"]) != _norm_text(b["subject"]):
        diff.append("subject")
    if [x.lower() for x in a["from"] if x] != [x.lower() for x in b["from"] if x]:
        diff.append("from")
    if _norm_id(a["message_id"]) != _norm_id(b["message_id"]):
        diff.append("message_id")
    if [_norm_body(t, charset_tolerant) for t in a["texts"]] != [
        _norm_body(t, charset_tolerant) for t in b["texts"]
    ]:
        diff.append("texts")
    return diff


def agreement(corpus: list[tuple[str, bytes]]) -> dict:
    """Agreement over a corpus: ``rate`` (share of messages agreeing on every field),
    ``tolerant_rate`` (the same with charset-tolerant text comparison), ``by_field``
    (strict disagreements per field) and ``disagreements`` ((name, fields) per message)."""
    by_field = dict.fromkeys(FIELDS, 0)
    bad = []
    tolerant_bad = 0
    for name, raw in corpus:
        a, b = ours(raw), stdlib(raw)
        diff = compare(a, b)
        for field in diff:
            by_field[field] += 1
        if diff:
            bad.append((name, diff))
            tolerant_bad += bool(compare(a, b, charset_tolerant=True))
    n = max(len(corpus), 1)
    return {
        "rate": 1 - len(bad) / n,
        "tolerant_rate": 1 - tolerant_bad / n,
        "by_field": by_field,
        "disagreements": bad,
    }


# -- timing ----------------------------------------------------------------------------------


def _time(fn, messages: list[bytes]) -> float:
    start = time.perf_counter()
    for raw in messages:
        fn(raw)
    return time.perf_counter() - start


def run(rounds: int, path: Path) -> dict:
    corpus = load_corpus(path)
    messages = [raw for _, raw in corpus]
    ours_s, stdlib_s = [], []
    for _ in range(rounds):
        ours_s.append(_time(ours, messages))
        stdlib_s.append(_time(stdlib, messages))
    agreed = agreement(corpus)
    n = len(messages)
    return {
        "benchmark": "mime",
        "messages": n,
        "megabytes": round(sum(map(len, messages)) / 1e6, 2),
        "rounds": rounds,
        "ours_msgs_per_s": round(n / statistics.median(ours_s)),
        "stdlib_msgs_per_s": round(n / statistics.median(stdlib_s)),
        "median_ratio": round(statistics.median(s / o for o, s in zip(ours_s, stdlib_s)), 2),
        "agreement": round(agreed["rate"], 4),
        "agreement_charset_tolerant": round(agreed["tolerant_rate"], 4),
        "disagreements_by_field": agreed["by_field"],
        "env": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "system": platform.system(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro.mime", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    result = run(max(args.rounds, 1), args.corpus)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    env = result["env"]
    print(f"corpus: {result['messages']} messages, {result['megabytes']} MB; {result['rounds']} rounds")
    print(f"env: Python {env['python']} ({env['implementation']}), {env['cpu_count']} CPUs, "
          f"{env['system']} {env['machine']}")
    print(f"stalwart.mime (native): {result['ours_msgs_per_s']:>8} messages/s")
    print(f"email (stdlib):         {result['stdlib_msgs_per_s']:>8} messages/s")
    print(f"median ratio: {result['median_ratio']}x")
    fields = ", ".join(f"{k} {v}" for k, v in result["disagreements_by_field"].items())
    print(f"results agreed on {result['agreement']:.2%} of messages "
          f"({result['agreement_charset_tolerant']:.2%} with charset-tolerant text comparison; "
          f"disagreements by field: {fields})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
