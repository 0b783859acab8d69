"""``stalwart-cli dkim``: DKIM signing keys of the local domains (``/api/dkim``).

    stalwart-cli dkim create example.org [--algorithm rsa-sha256|ed25519-sha256 ...]
                                         [--selector S] [--rsa-bits N]
    stalwart-cli dkim list [example.org]
    stalwart-cli dkim dns example.org      # the TXT records to publish, zone file lines
    stalwart-cli dkim delete example.org SELECTOR

``create`` makes one key per algorithm (the server's ``auth.dkim.sign.algorithms`` by
default: RSA and Ed25519) and prints the records to publish; mail from the domain is
signed with them at once, so publish the records before sending, or create the keys
before the domain sends mail.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from . import output
from .client import EXIT_INVALID, ApiClient, CliError, segment

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")


def _bits(text: str) -> int:
    if not text.isdigit() or not 1024 <= int(text) <= 4096:
        raise argparse.ArgumentTypeError(f"{text!r} is not a key size from 1024 to 4096")
    return int(text)


def add_parser(sub: Any, leaf: Callable[..., argparse.ArgumentParser]) -> None:
    dkim = sub.add_parser("dkim", help="DKIM signing keys of the local domains").add_subparsers(
        dest="action", required=True)
    p = leaf(dkim, "create", "generate signing keys for a domain and print the DNS "
                             "records to publish")
    p.add_argument("domain")
    p.add_argument("--algorithm", action="append", choices=ALGORITHMS, default=None,
                   help="repeatable; default: the server's auth.dkim.sign.algorithms")
    p.add_argument("--selector", help="the selector (only with one --algorithm)")
    p.add_argument("--rsa-bits", type=_bits, help="RSA key size (default: the server's "
                                                  "auth.dkim.sign.rsa-bits)")
    p = leaf(dkim, "list", "list the signing keys (of one domain, or of all)")
    p.add_argument("domain", nargs="?")
    p = leaf(dkim, "dns", "print the DNS TXT records to publish for a domain's keys")
    p.add_argument("domain")
    p = leaf(dkim, "delete", "delete a signing key (mail is no longer signed with it)")
    p.add_argument("domain")
    p.add_argument("selector")


def _created(key: dict) -> str:
    when = key.get("created")
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(when)) if when else "-"


def _rows(keys: list[dict]) -> str:
    return output.table(("DOMAIN", "SELECTOR", "ALGORITHM", "CREATED"),
                        [(k["domain"], k["selector"], k["algorithm"], _created(k)) for k in keys])


def _zone(keys: list[dict]) -> str:
    if not keys:
        return "(no keys)"
    return "\n".join(f"; {k['algorithm']}, created {_created(k)}\n{k['dns']['zone']}"
                     for k in keys)


def run(client: ApiClient, args: argparse.Namespace) -> tuple[Any, str]:
    action = args.action
    if action == "create":
        body: dict[str, Any] = {}
        if args.algorithm:
            body["algorithms"] = list(dict.fromkeys(args.algorithm))
        if args.selector is not None:
            if not args.algorithm or len(set(args.algorithm)) != 1:
                raise CliError("--selector names one key: give exactly one --algorithm",
                               EXIT_INVALID)
            body["selector"] = args.selector
        if args.rsa_bits is not None:
            body["rsa_bits"] = args.rsa_bits
        data = client.request("POST", f"/api/dkim/{segment(args.domain)}", body)
        made = ", ".join(f"{k['selector']} ({k['algorithm']})" for k in data["keys"])
        return data, (f"created DKIM keys for {data['domain']}: {made}\n"
                      f"publish these records:\n{_zone(data['keys'])}")
    if action == "list":
        path = f"/api/dkim/{segment(args.domain)}" if args.domain else "/api/dkim"
        data = client.request("GET", path)
        return data, _rows(data["keys"])
    if action == "dns":
        data = client.request("GET", f"/api/dkim/{segment(args.domain)}")
        return data, _zone(data["keys"])
    if action == "delete":
        client.request("DELETE", f"/api/dkim/{segment(args.domain)}/{segment(args.selector)}")
        return {"deleted": args.selector, "domain": args.domain}, \
            f"deleted DKIM key {args.selector} of {args.domain}"
    raise CliError(f"unknown dkim action {action!r}", EXIT_INVALID)
