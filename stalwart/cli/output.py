"""Human output of stalwart-cli: aligned tables, key/value blocks, sizes.

``--json`` bypasses all of this and prints the API's JSON unchanged, for scripts.
"""

from __future__ import annotations

import re
import time
from typing import Iterable, Sequence

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``1024``, ``500M``, ``1.5G``, ``2GiB``, ``1gb``; ``unlimited`` is 0.

    Units are binary (K = 1024), as mail quotas conventionally are.
    """
    if text.strip().lower() in ("unlimited", "none"):
        return 0
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 1G, 500M, 1048576, unlimited)")
    number, unit = match.groups()
    value = float(number) * _UNITS[unit.upper()]
    if value >= 2**63:
        raise ValueError(f"{text!r} is too large")
    return int(value)


def format_size(value: int | None) -> str:
    if not value:
        return "0"
    for unit in ("P", "T", "G", "M", "K"):
        size = _UNITS[unit]
        if value >= size:
            number = value / size
            text = f"{number:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; an empty table says so."""
    rows = [[str(cell) for cell in row] for row in rows]
    if not rows:
        return "(none)"
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def fields(pairs: Iterable[tuple[str, str]]) -> str:
    pairs = list(pairs)
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{(k + ':').ljust(width + 1)} {v}" for k, v in pairs)


def domain_rows(domains: list[dict]) -> str:
    return table(("DOMAIN", "ALIAS OF", "CATCH-ALL"),
                 ((d["name"], d.get("alias_of") or "-", d.get("catch_all") or "-")
                  for d in domains))


def domain_block(domain: dict) -> str:
    return fields([("Domain", domain["name"]),
                   ("Alias of", domain.get("alias_of") or "-"),
                   ("Catch-all", domain.get("catch_all") or "-")])


def _status(account: dict) -> str:
    status = "disabled" if account.get("disabled") else "active"
    return f"{status}, admin" if account.get("type") == "admin" else status


def account_rows(accounts: list[dict]) -> str:
    return table(("NAME", "EMAIL", "DISPLAY NAME", "QUOTA", "USED", "STATUS"),
                 ((a["name"], (a.get("emails") or ["-"])[0], a.get("display_name") or "-",
                   format_size(a.get("quota")) if a.get("quota") else "unlimited",
                   format_size(a.get("used")), _status(a)) for a in accounts))


def account_block(account: dict) -> str:
    emails = account.get("emails") or []
    quota = account.get("quota") or 0
    return fields([
        ("Name", account["name"]),
        ("Id", str(account.get("id", "-"))),
        ("Display name", account.get("display_name") or "-"),
        ("Email", emails[0] if emails else "-"),
        ("Aliases", ", ".join(emails[1:]) or "-"),
        ("Quota", f"{format_size(quota)} ({quota} bytes)" if quota else "unlimited"),
        ("Used", f"{format_size(account.get('used'))} ({account.get('used', 0)} bytes)"),
        ("Type", account.get("type", "individual")),
        ("Status", "disabled" if account.get("disabled") else "active"),
    ])


def format_time(ts: float | None, now: float | None = None) -> str:
    """UTC ``YYYY-MM-DD HH:MM:SS``, with ``(in 5m)`` / ``(3h ago)`` relative to now."""
    if not ts:
        return "-"
    now = time.time() if now is None else now
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))
    delta = ts - now
    span = round(abs(delta))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if span >= size or unit == "s":
            amount = f"{int(span // size)}{unit}"
            break
    return f"{text} ({'in ' + amount if delta > 0 else amount + ' ago'})"


def _pending(message: dict) -> str:
    rcpts = message.get("recipients") or []
    waiting = sum(1 for r in rcpts if r.get("status") == "pending")
    return f"{waiting}/{len(rcpts)}"


def queue_rows(messages: list[dict], now: float | None = None) -> str:
    return table(("ID", "FROM", "TO", "PENDING", "SIZE", "TRIES", "NEXT ATTEMPT"),
                 ((str(m["id"]), m.get("from") or "<>",
                   ", ".join(r["address"] for r in m.get("recipients") or [])[:60],
                   _pending(m), format_size(m.get("size")), str(m.get("attempts", 0)),
                   format_time(m.get("due"), now)) for m in messages))


def queue_block(message: dict, now: float | None = None) -> str:
    head = fields([
        ("Id", str(message["id"])),
        ("From", message.get("from") or "<> (a notification)"),
        ("Size", f"{format_size(message.get('size'))} ({message.get('size', 0)} bytes)"),
        ("Queued", format_time(message.get("created"), now)),
        ("Next attempt", format_time(message.get("due"), now)),
        ("Expires", format_time(message.get("expires"), now)),
        ("Attempts", str(message.get("attempts", 0))),
        ("REQUIRETLS", "yes" if message.get("requiretls") else "no"),
    ])
    rcpts = table(("RECIPIENT", "STATUS", "HOST", "LAST REPLY"),
                  ((r["address"], r["status"], r.get("host") or "-", r.get("reply") or "-")
                   for r in message.get("recipients") or []))
    history = table(("AT", "DOMAIN", "HOST", "IP", "REPLY"),
                    ((format_time(a["at"], now), a["domain"], a.get("host") or "-",
                      a.get("ip") or "-", a["reply"]) for a in message.get("history") or []))
    return f"{head}\n\nRecipients:\n{rcpts}\n\nAttempts:\n{history}"
