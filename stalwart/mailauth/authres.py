"""The Authentication-Results header field (RFC 8601), and the removal of forged ones.

    field = authentication_results("mx.example.net", spf=spf_result, dkim=dkim_results,
                                   dmarc=dmarc_result)
    message = strip_fields(message, lambda name, value:
                           name == "authentication-results"
                           and authserv_id(value) == "mx.example.net")

The field lists every check we ran, one ``method=result`` per resinfo, in the order
arc, dkim (one per signature, with ``header.d``, ``header.s``, ``header.a`` and the
verifier's prefix of ``b=`` as ``header.b``, at least eight characters (RFC 6008), so
several signatures of one domain can be told apart), spf (``smtp.mailfrom``; the HELO check as a second ``spf`` with
``smtp.helo``), dmarc (``header.from``, with the policy in a comment, as most MTAs write
it), bimi (draft-brand-indicators-for-message-identification 7.7). No check at all gives ``; none`` (RFC 8601 2.2).

RFC 8601 5: a border MTA must remove Authentication-Results fields that carry its own
authserv-id before it adds its own, so a sender cannot forge our verdicts. Fields of
other authserv-ids are left alone (they describe checks by other hosts).
Values that are not RFC 2045 tokens are quoted; comments and quoted strings never
carry control characters, so a hostile domain or reason cannot inject a header line.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence

__all__ = ["authentication_results", "authserv_id", "strip_fields", "header_fields",
           "field_values"]

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+\Z")
_LOCAL_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+\Z")


def _clean(text: Any, limit: int = 200) -> str:
    return "".join(ch for ch in str(text) if ch.isprintable())[:limit]


def _value(text: Any) -> str:
    text = _clean(text, 320)
    if _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox(text: Any) -> str:
    """A ``smtp.mailfrom`` value: addr-spec as is when it can be written bare."""
    text = _clean(text, 320)
    local, at, domain = text.rpartition("@")
    if at and _LOCAL_DOT_ATOM.match(local) and _TOKEN.match(domain):
        return text
    return _value(text)


def _comment(text: Any) -> str:
    text = _clean(text)
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _reason(text: Any) -> str:
    return f" reason={_value(text)}" if text else ""


def _dkim_b(result: Any) -> str:
    """``header.b``: the verifier's prefix of b= (at least 8 characters, longer when
    needed to tell two signatures apart, RFC 6008 2)."""
    value = getattr(result, "header_b", "") or ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return _clean(value, 64)


def authentication_results(authserv: str, *, spf: Any = None, spf_helo: Any = None,
                           dkim: Sequence[Any] | None = None, dmarc: Any = None,
                           arc: Any = None, iprev: Any = None, bimi: Any = None) -> str:
    """The field, folded, without the trailing CRLF. ``dkim=None``: not checked; an
    empty list: checked, no signature (``dkim=none``)."""
    parts: list[str] = []
    if iprev is not None:
        parts.append(f"iprev={iprev.result}{_reason(getattr(iprev, 'reason', ''))}"
                     f" policy.iprev={_value(getattr(iprev, 'ip', ''))}")
    if arc is not None:
        text = f"arc={_clean(getattr(arc, 'result', 'none'), 20)}"
        if getattr(arc, "result", "") == "pass" and getattr(arc, "oldest_pass", 0):
            text += f" header.oldest-pass={int(arc.oldest_pass)}"
        text += _reason(getattr(arc, "reason", ""))
        parts.append(text)
    if dkim is not None:
        if not dkim:
            parts.append("dkim=none")
        for sig in dkim:
            text = f"dkim={_clean(getattr(sig, 'result', 'neutral'), 20)}"
            text += _reason(getattr(sig, "reason", ""))
            if getattr(sig, "domain", ""):
                text += f" header.d={_value(sig.domain)}"
            if getattr(sig, "selector", ""):
                text += f" header.s={_value(sig.selector)}"
            if getattr(sig, "algorithm", ""):
                text += f" header.a={_value(sig.algorithm)}"
            b = _dkim_b(sig)
            if b:
                text += f" header.b={_value(b)}"
            parts.append(text)
    if spf is not None:
        text = f"spf={spf.result}"
        if spf.result in ("temperror", "permerror", "none") and getattr(spf, "reason", ""):
            text += f" {_comment(spf.reason)}"
        text += f" smtp.mailfrom={_mailbox(spf.sender)}"
        parts.append(text)
    if spf_helo is not None:
        parts.append(f"spf={spf_helo.result} smtp.helo={_value(spf_helo.domain)}")
    if dmarc is not None:
        text = f"dmarc={dmarc.result}"
        record = getattr(dmarc, "record", None)
        if record is not None:
            comment = f"p={record.p.upper()}"
            if record.sp:
                comment += f" sp={record.sp.upper()}"
            comment += f" dis={dmarc.disposition.upper()}"
            text += f" {_comment(comment)}"
        elif getattr(dmarc, "reason", "") and dmarc.result in ("temperror", "permerror"):
            text += _reason(dmarc.reason)
        if dmarc.header_from:
            text += f" header.from={_value(dmarc.header_from)}"
        parts.append(text)
    if bimi is not None:
        text = f"bimi={bimi.result}"
        if bimi.result == "pass":
            text += (f" header.d={_value(bimi.domain)} header.selector={_value(bimi.selector)}"
                     f" policy.authority=none"
                     f" policy.indicator-uri={_value(bimi.record.location)}")
            if getattr(bimi, "indicator_hash", ""):
                text += f" policy.indicator-hash={_value(bimi.indicator_hash)}"
        elif getattr(bimi, "reason", ""):
            text += f" {_comment(bimi.reason)}"
        parts.append(text)
    head = f"Authentication-Results: {_clean(authserv, 255)}"
    if not parts:
        return head + "; none"
    return head + ";\r\n\t" + ";\r\n\t".join(parts)


# ---------------------------------------------------------------------- parsing
def _skip_cfws(text: str, i: int) -> int:
    depth = 0
    while i < len(text):
        ch = text[i]
        if depth:
            if ch == "\\":
                i += 2
                continue
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            i += 1
        elif ch == "(":
            depth = 1
            i += 1
        elif ch in " \t\r\n":
            i += 1
        else:
            break
    return i


def authserv_id(value: str) -> str:
    """The authserv-id of an Authentication-Results value (lower case), "" if none."""
    i = _skip_cfws(value, 0)
    if i < len(value) and value[i] == '"':
        out, i = [], i + 1
        while i < len(value) and value[i] != '"':
            if value[i] == "\\":
                i += 1
            if i < len(value):
                out.append(value[i])
            i += 1
        return "".join(out).strip().lower()
    m = re.compile(r"[^\s;()\"]+").match(value, i)
    return m.group(0).lower() if m else ""


def header_fields(message: bytes) -> tuple[list[bytes], bytes]:
    """The header section split into raw fields (each with its folded lines and CRLF),
    and the rest of the message (the empty line and the body)."""
    if message.startswith(b"\r\n"):
        return [], message
    end = message.find(b"\r\n\r\n")
    if end < 0:
        head, rest = message, b""
        if not head.endswith(b"\r\n") and head:
            head += b"\r\n"
    else:
        head, rest = message[:end + 2], message[end + 2:]
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, rest


def _name_value(raw: bytes) -> tuple[str, str]:
    name, _, value = raw.partition(b":")
    return (name.strip().decode("ascii", "replace").lower(),
            value.decode("utf-8", "replace").replace("\r\n", ""))


def field_values(message: bytes, name: str) -> list[str]:
    """Unfolded values of every field called ``name`` in the header section."""
    name = name.lower()
    fields, _ = header_fields(message)
    return [value for n, value in map(_name_value, fields) if n == name]


def strip_fields(message: bytes, drop: Callable[[str, str], bool]) -> bytes:
    """The message without the header fields for which ``drop(name, value)`` is true
    (``name`` in lower case, ``value`` unfolded)."""
    fields, rest = header_fields(message)
    kept = [raw for raw in fields if not drop(*_name_value(raw))]
    if len(kept) == len(fields):
        return message
    return b"".join(kept) + rest


def strip_own_results(message: bytes, authserv: str,
                      also: Iterable[str] = ()) -> bytes:
    """Remove Authentication-Results fields claiming ``authserv`` (RFC 8601 5), and
    every field named in ``also`` (lower case)."""
    ours = authserv.strip().lower()
    extra = {n.lower() for n in also}

    def drop(name: str, value: str) -> bool:
        if name in extra:
            return True
        return name == "authentication-results" and authserv_id(value) == ours

    return strip_fields(message, drop)
