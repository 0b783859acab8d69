"""SORT and UID SORT (RFC 5256 3) with SORT=DISPLAY (RFC 5957).

The search criteria select the messages exactly as SEARCH does (``search.evaluate``);
the matches are ordered by ``sorting.sort_items`` (keys and tie-breaking described
there) and answered as ``* SORT n n n`` (UIDs for UID SORT). An unknown charset is
``NO [BADCHARSET]`` (from the parser).
"""

from __future__ import annotations

from ..sorting import SortItem, sort_items
from .search import evaluate

_NEEDS_MESSAGE = frozenset({"CC", "DATE", "FROM", "SUBJECT", "TO", "DISPLAYFROM",
                            "DISPLAYTO"})


class _NoHeaders:
    """Stands in for the parsed message when only ARRIVAL/SIZE are sorted on."""
    date = None


def items_for(s, found, *, need_message: bool = True) -> list[SortItem]:
    view = s.selected
    return [SortItem(seq, uid, email["received"], email["size"],
                     s.message(view.eids[uid]).msg if need_message else _NoHeaders())
            for seq, uid, email in found]


async def run(s, cmd):
    args = cmd.args
    uid_cmd = cmd.name.startswith("UID ")
    found = evaluate(s, args.key)
    need = any(key in _NEEDS_MESSAGE for _, key in args.criteria)
    ordered = sort_items(items_for(s, found, need_message=need), args.criteria)
    numbers = [i.uid if uid_cmd else i.seq for i in ordered]
    s.untagged("SORT" + "".join(f" {n}" for n in numbers))
    return "SORT completed"
