"""stalwart-cli: manage domains, accounts and the outbound queue of a running server.

    stalwart-cli domain create example.org
    stalwart-cli domain list
    stalwart-cli domain show example.org
    stalwart-cli domain delete example.org
    stalwart-cli domain catch-all example.org jane | --clear
    stalwart-cli domain alias example.net --to example.org
    stalwart-cli account create jane --password - --name "Jane Doe" --quota 1G \\
                                     --email jane@example.org --alias j@example.org
    stalwart-cli account list [--domain example.org]
    stalwart-cli account show jane
    stalwart-cli account update jane [--password P] [--name N] [--quota Q] [--email E]
                                     [--add-alias A] [--remove-alias A] [--rename NEW]
                                     [--enable | --disable] [--admin | --no-admin]
    stalwart-cli account delete jane
    stalwart-cli queue list [--limit N]   # outbound mail waiting for delivery
    stalwart-cli queue show ID
    stalwart-cli queue retry ID           # attempt delivery now
    stalwart-cli queue cancel ID          # remove it without notifying anyone
    stalwart-cli dkim create|list|dns|delete DOMAIN   # signing keys (stalwart.cli.dkim)
    stalwart-cli alias create info@example.org --to a@example.org --to b@remote.example
    stalwart-cli alias list [--domain D] | show A | update A --to T... | delete A
    stalwart-cli hash [PASSWORD]          # an argon2 hash for the config file

Where the server is (first that applies): ``--url https://host:port`` (TCP/TLS with
``--user``/``--password`` or STALWART_ADMIN_USER / STALWART_ADMIN_PASSWORD),
``--socket PATH``, ``--config FILE`` (its ``run_dir/admin.sock``), else
``./var/run/admin.sock`` (the embedded default's run directory). The admin socket needs
no password: the server trusts root and its own user.

``--password -`` reads the password from standard input (one line), so it does not show
in the process list. Output is a table or a block of fields; ``--json`` prints the API's
JSON. Exit codes are listed in ``stalwart.cli.client``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import alias as alias_cli
from . import dkim as dkim_cli
from . import output
from .client import (EXIT_ERROR, EXIT_INVALID, EXIT_OK, ApiClient, CliError, Target,
                     segment)

DEFAULT_SOCKET = Path("var") / "run" / "admin.sock"
MAX_PAGE = 1000                         # the API's largest page of queued messages


# --------------------------------------------------------------------------- arguments

def _size(text: str) -> int:
    try:
        return output.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def _common(parser: argparse.ArgumentParser, *, top: bool, admin_password: bool = True) -> None:
    """Options accepted before and after the sub-command.

    ``account create`` and ``account update`` use ``--password`` for the account's own
    password; there the admin password goes before the sub-command (or in the env).
    """
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("server")
    group.add_argument("--url", default=default,
                       help="the server's HTTP(S) address, e.g. https://mail.example.org:443")
    group.add_argument("--user", default=default,
                       help="admin user for --url (env STALWART_ADMIN_USER)")
    if admin_password:
        group.add_argument("--password", dest="admin_password", metavar="PASSWORD",
                           default=default,
                           help="admin password for --url (env STALWART_ADMIN_PASSWORD)")
    group.add_argument("--socket", type=Path, default=default,
                       help=f"the admin Unix socket (default: {DEFAULT_SOCKET})")
    group.add_argument("--config", type=Path, default=default,
                       help="the server's config file; its run directory holds admin.sock")
    group.add_argument("--insecure", action="store_true",
                       default=False if top else argparse.SUPPRESS,
                       help="do not verify the server's TLS certificate")
    group.add_argument("--ca-file", default=default,
                       help="CA certificates (PEM) to verify the server with")
    group.add_argument("--timeout", type=float, default=30.0 if top else argparse.SUPPRESS,
                       help="seconds to wait for the server (default 30)")
    group.add_argument("--json", action="store_true",
                       default=False if top else argparse.SUPPRESS,
                       help="print JSON instead of tables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stalwart-cli", description="Manage the domains, accounts and outbound queue "
                                         "of a running Stalwart server.")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="area", required=True, metavar="{domain,account,alias,queue,dkim,hash}")

    def leaf(parent, name: str, help_text: str, *,
             admin_password: bool = True) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        _common(p, top=False, admin_password=admin_password)
        return p

    domain = sub.add_parser("domain", help="local domains").add_subparsers(
        dest="action", required=True)
    p = leaf(domain, "create", "create a local domain")
    p.add_argument("name")
    leaf(domain, "list", "list the local domains")
    p = leaf(domain, "show", "show one domain")
    p.add_argument("name")
    p = leaf(domain, "delete", "delete a domain (no account may use it)")
    p.add_argument("name")
    p = leaf(domain, "catch-all", "set or clear the account that receives mail for unknown "
                                  "addresses of a domain")
    p.add_argument("domain")
    p.add_argument("account", nargs="?")
    p.add_argument("--clear", action="store_true", help="remove the catch-all")
    p = leaf(domain, "alias", "create a domain whose addresses map to another domain")
    p.add_argument("name")
    p.add_argument("--to", required=True, metavar="TARGET", help="the domain it stands for")

    account = sub.add_parser("account", help="accounts (mailboxes)").add_subparsers(
        dest="action", required=True)
    p = leaf(account, "create", "create an account", admin_password=False)
    p.add_argument("name")
    p.add_argument("--password", dest="account_password", metavar="PASSWORD",
                   help="its password ('-' reads it from standard input)")
    p.add_argument("--name", dest="display_name", help="full name, e.g. \"Jane Doe\"")
    p.add_argument("--quota", type=_size, help="storage quota: 1G, 500M, bytes, unlimited")
    p.add_argument("--email", help="primary address")
    p.add_argument("--alias", action="append", default=[], help="another address (repeatable)")
    p.add_argument("--admin", action="store_true", help="give it administrator rights")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p = leaf(account, "list", "list accounts")
    p.add_argument("--domain", help="only accounts with an address in this domain")
    p = leaf(account, "show", "show one account")
    p.add_argument("name", help="account name or one of its addresses")
    p = leaf(account, "update", "change an account", admin_password=False)
    p.add_argument("name", help="account name or one of its addresses")
    p.add_argument("--password", dest="account_password", metavar="PASSWORD",
                   help="new password ('-' reads it from standard input)")
    p.add_argument("--name", dest="display_name", help="new full name")
    p.add_argument("--quota", type=_size, help="new quota: 1G, 500M, bytes, unlimited")
    p.add_argument("--email", help="make this the primary address (added if new)")
    p.add_argument("--add-alias", action="append", default=[], metavar="ADDRESS")
    p.add_argument("--remove-alias", action="append", default=[], metavar="ADDRESS")
    p.add_argument("--rename", metavar="NEW_NAME", help="new account (login) name")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enable", action="store_true", help="allow it to log in again")
    state.add_argument("--disable", action="store_true", help="stop it from logging in")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--admin", action="store_true", help="give administrator rights")
    role.add_argument("--no-admin", action="store_true", help="take them away")
    p = leaf(account, "delete", "delete an account and all its mail")
    p.add_argument("name", help="account name or one of its addresses")

    queue = sub.add_parser("queue", help="outbound mail waiting for delivery").add_subparsers(
        dest="action", required=True)
    p = leaf(queue, "list", "list queued messages, oldest first")
    p.add_argument("--limit", type=_positive, default=None, metavar="N",
                   help="show at most N messages (default: all)")
    p = leaf(queue, "show", "show a queued message: recipients and delivery attempts")
    p.add_argument("id", type=_positive)
    p = leaf(queue, "retry", "attempt delivery of a queued message now")
    p.add_argument("id", type=_positive)
    p = leaf(queue, "cancel", "remove a message from the queue (no notification is sent)")
    p.add_argument("id", type=_positive)

    dkim_cli.add_parser(sub, leaf)
    alias_cli.add_parser(sub, leaf)

    p = sub.add_parser("hash", help="print an argon2 hash of a password for the config file")
    p.add_argument("password", nargs="?", help="the password (prompted for if omitted)")
    return parser


# --------------------------------------------------------------------------- transport

def _target(args: argparse.Namespace) -> Target:
    env = os.environ
    if args.url:
        user = args.user or env.get("STALWART_ADMIN_USER")
        password = args.admin_password if args.admin_password is not None \
            else env.get("STALWART_ADMIN_PASSWORD")
        if user and password is None and sys.stdin.isatty():
            password = getpass.getpass(f"Password for {user}: ")
        return Target(url=args.url, user=user, password=password,
                      verify_tls=not args.insecure, ca_file=args.ca_file,
                      timeout=args.timeout)
    if args.user or args.admin_password is not None:
        raise CliError("--user/--password go with --url; the admin socket needs no password",
                       EXIT_INVALID)
    if args.socket is not None:
        return Target(socket_path=args.socket, timeout=args.timeout)
    if args.config is not None:
        from stalwart.config import ConfigError, load

        try:
            config = load(args.config)
        except ConfigError as exc:
            raise CliError(f"cannot read the config: {exc}", EXIT_INVALID) from None
        except OSError as exc:
            raise CliError(f"cannot read {args.config}: {exc.strerror}", EXIT_INVALID) from None
        return Target(socket_path=Path(config.run_dir) / "admin.sock", timeout=args.timeout)
    return Target(socket_path=DEFAULT_SOCKET, timeout=args.timeout)


def _secret_argument(value: str | None) -> str | None:
    """A password argument; ``-`` means one line from standard input."""
    if value != "-":
        return value
    line = sys.stdin.readline()
    if not line:
        raise CliError("--password -: nothing on standard input", EXIT_INVALID)
    return line.rstrip("\r\n")


# --------------------------------------------------------------------------- commands

def _domain(client: ApiClient, args: argparse.Namespace) -> tuple[Any, str]:
    action = args.action
    if action == "create":
        d = client.request("POST", "/api/domains", {"name": args.name})
        return d, f"created domain {d['name']}"
    if action == "alias":
        d = client.request("POST", "/api/domains", {"name": args.name, "alias_of": args.to})
        return d, f"created {d['name']} as an alias of {d['alias_of']}"
    if action == "list":
        data = client.request("GET", "/api/domains")
        return data, output.domain_rows(data["domains"])
    if action == "show":
        d = client.request("GET", f"/api/domains/{segment(args.name)}")
        return d, output.domain_block(d)
    if action == "delete":
        client.request("DELETE", f"/api/domains/{segment(args.name)}")
        return {"deleted": args.name}, f"deleted domain {args.name}"
    if action == "catch-all":
        path = f"/api/domains/{segment(args.domain)}/catch-all"
        if args.clear == (args.account is not None):
            raise CliError("give either an ACCOUNT or --clear", EXIT_INVALID)
        if args.clear:
            d = client.request("DELETE", path)
            return d, f"{d['name']} has no catch-all now"
        d = client.request("PUT", path, {"account": args.account})
        return d, f"mail for unknown addresses of {d['name']} goes to {d['catch_all']}"
    raise CliError(f"unknown domain action {action!r}", EXIT_INVALID)


def _create_account_body(args: argparse.Namespace) -> dict:
    body: dict[str, Any] = {"name": args.name}
    password = _secret_argument(args.account_password)
    if password is not None:
        body["password"] = password
    if args.display_name is not None:
        body["display_name"] = args.display_name
    if args.quota is not None:
        body["quota"] = args.quota
    emails = ([args.email] if args.email else []) + list(args.alias)
    if emails:
        body["emails"] = emails
    if args.admin:
        body["type"] = "admin"
    if args.disabled:
        body["disabled"] = True
    return body


def _update_account_body(client: ApiClient, args: argparse.Namespace) -> dict:
    body: dict[str, Any] = {}
    password = _secret_argument(args.account_password)
    if password is not None:
        body["password"] = password
    if args.display_name is not None:
        body["display_name"] = args.display_name
    if args.quota is not None:
        body["quota"] = args.quota
    if args.rename is not None:
        body["name"] = args.rename
    if args.enable or args.disable:
        body["disabled"] = bool(args.disable)
    if args.admin or args.no_admin:
        body["type"] = "admin" if args.admin else "individual"
    if args.email is not None:
        # A new primary: rebuild the whole list from the current one.
        current = client.request("GET", f"/api/accounts/{segment(args.name)}")
        emails = [e for e in current["emails"] if e.lower() != args.email.lower()]
        removed = {a.lower() for a in args.remove_alias}
        emails = [args.email] + [e for e in emails if e.lower() not in removed]
        emails += [a for a in args.add_alias if a.lower() not in {e.lower() for e in emails}]
        body["emails"] = emails
    else:
        if args.add_alias:
            body["add_emails"] = list(args.add_alias)
        if args.remove_alias:
            body["remove_emails"] = list(args.remove_alias)
    if not body:
        raise CliError("nothing to change: give at least one option (see --help)",
                       EXIT_INVALID)
    return body


def _account(client: ApiClient, args: argparse.Namespace) -> tuple[Any, str]:
    action = args.action
    if action == "create":
        a = client.request("POST", "/api/accounts", _create_account_body(args))
        return a, f"created account {a['name']}\n{output.account_block(a)}"
    if action == "list":
        path = "/api/accounts"
        if args.domain:
            path += f"?domain={segment(args.domain)}"
        data = client.request("GET", path)
        return data, output.account_rows(data["accounts"])
    if action == "show":
        a = client.request("GET", f"/api/accounts/{segment(args.name)}")
        return a, output.account_block(a)
    if action == "update":
        body = _update_account_body(client, args)
        a = client.request("PATCH", f"/api/accounts/{segment(args.name)}", body)
        return a, f"updated account {a['name']}\n{output.account_block(a)}"
    if action == "delete":
        client.request("DELETE", f"/api/accounts/{segment(args.name)}")
        return {"deleted": args.name}, f"deleted account {args.name} and all its mail"
    raise CliError(f"unknown account action {action!r}", EXIT_INVALID)


def _queue(client: ApiClient, args: argparse.Namespace) -> tuple[Any, str]:
    action = args.action
    if action == "list":
        messages: list[dict] = []
        after = 0
        while args.limit is None or len(messages) < args.limit:
            page = MAX_PAGE if args.limit is None else min(MAX_PAGE, args.limit - len(messages))
            data = client.request("GET", f"/api/queue?limit={page}&after={after}")
            messages += data["messages"]
            if data.get("next") is None:
                break
            after = data["next"]
        return {"messages": messages}, output.queue_rows(messages)
    if action == "show":
        m = client.request("GET", f"/api/queue/{args.id}")
        return m, output.queue_block(m)
    if action == "retry":
        data = client.request("POST", f"/api/queue/{args.id}/retry")
        return data, f"message {args.id} is due now"
    if action == "cancel":
        client.request("DELETE", f"/api/queue/{args.id}")
        return {"cancelled": args.id}, f"removed message {args.id} from the queue"
    raise CliError(f"unknown queue action {action!r}", EXIT_INVALID)


def _hash(args: argparse.Namespace) -> tuple[Any, str]:
    from argon2 import PasswordHasher

    password = args.password
    if password is None:
        if not sys.stdin.isatty():
            password = _secret_argument("-")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Again: ") != password:
                raise CliError("the passwords differ", EXIT_INVALID)
    if not password:
        raise CliError("the password must not be empty", EXIT_INVALID)
    hashed = PasswordHasher().hash(password)
    return {"hash": hashed}, hashed


def run(args: argparse.Namespace) -> int:
    if args.area == "hash":
        data, text = _hash(args)
    else:
        client = ApiClient(_target(args))
        handler = {"domain": _domain, "account": _account, "queue": _queue,
                   "dkim": dkim_cli.run, "alias": alias_cli.run}[args.area]
        data, text = handler(client, args)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(text)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except CliError as exc:
        print(f"stalwart-cli: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stalwart-cli: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
