"""THREAD and UID THREAD (RFC 5256 3): ORDEREDSUBJECT and REFERENCES.

The search criteria select the messages as SEARCH does; ``sorting`` builds the threads
(algorithms described there) and ``* THREAD (1 2)(3 (4)(5))`` answers them, with UIDs
for UID THREAD.
"""

from __future__ import annotations

from ..sorting import format_threads, thread_orderedsubject, thread_references
from .search import evaluate
from .sort import items_for


async def run(s, cmd):
    args = cmd.args
    uid_cmd = cmd.name.startswith("UID ")
    items = items_for(s, evaluate(s, args.key))
    roots = thread_references(items) if args.algorithm == "REFERENCES" \
        else thread_orderedsubject(items)
    data = format_threads(roots, (lambda i: i.uid) if uid_cmd else (lambda i: i.seq))
    s.untagged("THREAD" + (" " + data if data else ""))
    return "THREAD completed"
