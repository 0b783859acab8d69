"""``stalwart-cli alias``: forwarding aliases (``/api/aliases``).

    stalwart-cli alias create info@example.org --to alice@example.org --to bob@remote.example
    stalwart-cli alias list [--domain example.org]
    stalwart-cli alias show info@example.org      # targets and what they reach now
    stalwart-cli alias update info@example.org --to carol@example.org   # replaces the list
    stalwart-cli alias delete info@example.org

Mail to an alias reaches exactly its targets: a copy in the account of each local
target, and through the queue, ARC-sealed with the alias domain's DKIM key, to each remote
one (create the key with ``stalwart-cli dkim create``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from . import output
from .client import EXIT_INVALID, ApiClient, CliError, segment


def add_parser(sub: Any, leaf: Callable[..., argparse.ArgumentParser]) -> None:
    alias = sub.add_parser("alias", help="forwarding aliases (an address whose mail goes "
                                         "to other local or remote addresses)"
                           ).add_subparsers(dest="action", required=True)
    p = leaf(alias, "create", "create a forwarding alias")
    p.add_argument("address")
    p.add_argument("--to", action="append", required=True, metavar="TARGET",
                   help="a target address, local or remote (repeatable)")
    p = leaf(alias, "list", "list the forwarding aliases")
    p.add_argument("--domain", help="only the aliases of this domain")
    p = leaf(alias, "show", "show an alias and what its targets reach now")
    p.add_argument("address")
    p = leaf(alias, "update", "replace the targets of an alias")
    p.add_argument("address")
    p.add_argument("--to", action="append", required=True, metavar="TARGET",
                   help="a target address (repeatable); the list replaces the old one")
    p = leaf(alias, "delete", "delete a forwarding alias")
    p.add_argument("address")


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "-"


def _rows(aliases: list[dict]) -> str:
    return output.table(("ADDRESS", "TARGETS"),
                        [(a["address"], ", ".join(a["targets"])) for a in aliases])


def _block(alias: dict) -> str:
    pairs = [("Address", alias["address"]), ("Targets", ", ".join(alias["targets"])),
             ("Created", _when(alias.get("created"))), ("Updated", _when(alias.get("updated")))]
    expansion = alias.get("expansion")
    if expansion is not None:
        local = ", ".join(f"{a['address']} ({a['account']})" for a in expansion["accounts"])
        pairs += [("Local", local or "-"), ("Remote", ", ".join(expansion["remote"]) or "-")]
        if expansion["missing"]:
            pairs.append(("Reach nobody", ", ".join(expansion["missing"])))
    return output.fields(pairs)


def run(client: ApiClient, args: argparse.Namespace) -> tuple[Any, str]:
    action = args.action
    if action == "create":
        data = client.request("POST", "/api/aliases", {"address": args.address,
                                                       "targets": list(args.to)})
        return data, f"created alias {data['address']} -> {', '.join(data['targets'])}"
    if action == "list":
        path = "/api/aliases"
        if args.domain:
            path += f"?domain={segment(args.domain)}"
        data = client.request("GET", path)
        return data, _rows(data["aliases"])
    if action == "show":
        data = client.request("GET", f"/api/aliases/{segment(args.address)}")
        return data, _block(data)
    if action == "update":
        data = client.request("PUT", f"/api/aliases/{segment(args.address)}",
                              {"targets": list(args.to)})
        return data, f"alias {data['address']} now goes to {', '.join(data['targets'])}"
    if action == "delete":
        client.request("DELETE", f"/api/aliases/{segment(args.address)}")
        return {"deleted": args.address}, f"deleted alias {args.address}"
    raise CliError(f"unknown alias action {action!r}", EXIT_INVALID)
