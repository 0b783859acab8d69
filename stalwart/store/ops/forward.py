"""Forwarding aliases: an address in a local domain whose mail goes to a list of target
addresses, local or remote (Postfix ``virtual_alias_maps`` to remote addresses, Stalwart
"lists" with external members).

Records live under ``keys.FORWARD`` (``0x06``, domain ``0x00`` local part, the layout of
``EMAIL_IDX`` so that one prefix scan lists a domain's forwards)::

    {"address": "info@example.org", "targets": ["alice@example.org", "bob@remote.example"],
     "created": epoch seconds, "updated": epoch seconds}

Rules (each refused with a ``StoreError`` that changes nothing):

- the address is normalized like an account address, lies in a local domain that is not an
  alias domain, and is neither an account's address nor another forward;
- 1 to ``MAX_TARGETS`` targets, each a valid address (no address literals, no routing),
  duplicates dropped, never the forward's own address; a target in one of our domains must
  resolve now (an account, through alias domains, sub-addressing or the catch-all, or
  another forward): a typo is an error, not silent loss;
- nesting (a target that is itself a forward) is allowed up to ``MAX_DEPTH`` levels and
  must not loop back: creation and update refuse a forward that would reach itself or
  nest deeper. Expansion (``expand``, used at RCPT time) applies the same bounds again,
  because accounts and forwards change after creation: an address met twice is expanded
  once, a level past ``MAX_DEPTH`` is not followed, and at most ``MAX_EXPANDED`` final
  targets come out;
- a domain with forwards cannot be deleted (``delete_domain`` says ``in_use``), an
  account cannot take an address that is a forward (``exists``). Deleting an account that
  a forward names leaves the target dangling: expansion skips it (``missing``).

Resolution order for an address of a local domain (``resolve``): the exact account
address, the exact forward, then the same two for the base of a sub-address
(``user+tag@`` -> ``user@``), then the domain's catch-all. A plain account address costs
what it cost before forwards existed (the domain record and one index read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .. import keys
from ..engine import OpCtx, _require, normalize_address, operation, pack, unpack
from ..errors import StoreError
from .directory import _check_domain_exists

MAX_TARGETS = 100            # targets of one forward
MAX_DEPTH = 4                # levels of forwards below the one addressed
MAX_EXPANDED = 1000          # final targets of one expansion

Getter = Callable[[bytes], "bytes | None"]


@dataclass
class Expansion:
    """The final targets of a forward: local accounts (one entry per account, with the
    address that reached it) and remote addresses, in the order first met."""

    address: str
    accounts: list[tuple[str, int]] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)      # local targets that resolve to nothing
    loops: list[str] = field(default_factory=list)        # targets met again (not expanded twice)
    too_deep: list[str] = field(default_factory=list)     # forwards past MAX_DEPTH
    truncated: bool = False                               # MAX_EXPANDED reached

    def as_target(self) -> dict:
        return {"forward": self.address, "accounts": [list(a) for a in self.accounts],
                "remote": list(self.remote)}


def _load(get: Getter, key: bytes) -> Any:
    raw = get(key)
    return None if raw is None else unpack(raw)


def resolve(get: Getter, address: str) -> tuple[str, Any] | None:
    """What a normalized address of any domain is here: ``("account", id)``,
    ``("forward", record)``, or None (not one of our domains, or nobody)."""
    local, _, dom = address.rpartition("@")
    record = _load(get, keys.domain(dom))
    if record is None:
        return None
    if record.get("alias_of"):
        dom = record["alias_of"]
        record = _load(get, keys.domain(dom))
        if record is None:
            return None
    candidates = [f"{local}@{dom}"]
    if "+" in local and not local.startswith("+"):
        candidates.append(f"{local.split('+', 1)[0]}@{dom}")
    for candidate in candidates:
        raw = get(keys.email_idx(candidate))
        if raw is not None:
            return "account", keys.read_u32(raw)
        raw = get(keys.forward(candidate))
        if raw is not None:
            return "forward", unpack(raw)
    catch_all = record.get("catch_all")
    return ("account", catch_all) if catch_all is not None else None


def expand(get: Getter, record: dict, *, max_depth: int = MAX_DEPTH,
           limit: int = MAX_EXPANDED) -> Expansion:
    """Expand a forward record into its final targets (see the module rules)."""
    out = Expansion(record["address"])
    seen = {record["address"]}
    seen_accounts: set[int] = set()
    # Depth-first in the order the targets are listed: (address, level of its forward).
    stack = [(t, 0) for t in reversed(record["targets"])]
    while stack:
        target, depth = stack.pop()
        if target in seen:
            out.loops.append(target)
            continue
        seen.add(target)
        if len(out.accounts) + len(out.remote) >= limit:
            out.truncated = True
            break
        found = resolve(get, target)
        if found is None:
            dom = target.rpartition("@")[2]
            if get(keys.domain(dom)) is None:
                out.remote.append(target)
            else:
                out.missing.append(target)
        elif found[0] == "account":
            if found[1] not in seen_accounts:
                seen_accounts.add(found[1])
                out.accounts.append((target, found[1]))
        else:
            nested = found[1]
            if nested["address"] != target:
                if nested["address"] in seen:         # reached through a sub-address
                    out.loops.append(target)
                    continue
                seen.add(nested["address"])
            if depth + 1 > max_depth:
                out.too_deep.append(target)
                continue
            stack.extend((t, depth + 1) for t in reversed(nested["targets"]))
    return out


def _targets(value: Any, address: str) -> list[str]:
    _require(isinstance(value, (list, tuple)), "targets must be a list of addresses")
    _require(len(value) >= 1, "a forward needs at least one target")
    _require(len(value) <= MAX_TARGETS, f"a forward has at most {MAX_TARGETS} targets")
    out: list[str] = []
    for index, item in enumerate(value):
        try:
            target = normalize_address(item)
        except StoreError as exc:
            raise StoreError("invalid", f"target {index + 1}: {exc.message}") from None
        _require(target != address, f"{address} cannot forward to itself")
        if target not in out:
            out.append(target)
    return out


def _check_targets(c: OpCtx, record: dict) -> None:
    """Local targets must exist; the forward must neither loop nor nest too deep."""
    for target in record["targets"]:
        dom = target.rpartition("@")[2]
        if c.txn.get(keys.domain(dom)) is not None and resolve(c.txn.get, target) is None:
            raise StoreError("not_found", f"target {target} is in a local domain but no "
                                          f"account or forward has that address")
    own_key = keys.forward(record["address"])

    def get(key: bytes) -> bytes | None:
        return pack(record) if key == own_key else c.txn.get(key)

    def walk(forward: dict, path: tuple[str, ...]) -> None:
        # Depth-first over forwards only; ``path`` holds the forwards above this one.
        if len(path) > MAX_DEPTH:
            raise StoreError("invalid", f"forwards nest more than {MAX_DEPTH} levels deep "
                                        f"({' -> '.join(path + (forward['address'],))})")
        for target in forward["targets"]:
            found = resolve(get, target)
            if found is None or found[0] != "forward":
                continue
            nested = found[1]
            if nested["address"] in path + (forward["address"],):
                chain = " -> ".join(path + (forward["address"], target))
                raise StoreError("invalid", f"forwarding loop: {chain}")
            walk(nested, path + (forward["address"],))

    walk(record, ())
    if expand(get, record).truncated:
        raise StoreError("invalid", f"the forward expands to more than {MAX_EXPANDED} targets")


@operation
def forward_create(c: OpCtx, address: Any, targets: Any) -> dict:
    address = normalize_address(address)
    _check_domain_exists(c, address)
    raw = c.txn.get(keys.email_idx(address))
    if raw is not None:
        owner = c.load(keys.principal(keys.read_u32(raw))) or {}
        raise StoreError("exists", f"{address} is an address of account "
                                   f"{owner.get('name', '?')!r}")
    if c.txn.get(keys.forward(address)) is not None:
        raise StoreError("exists", f"forward {address} already exists")
    record = {"address": address, "targets": _targets(targets, address),
              "created": c.now, "updated": c.now}
    _check_targets(c, record)
    c.store(keys.forward(address), record)
    return record


@operation
def forward_update(c: OpCtx, address: Any, targets: Any) -> dict:
    address = normalize_address(address)
    record = c.load(keys.forward(address))
    if record is None:
        raise StoreError("not_found", f"forward {address} does not exist")
    record["targets"] = _targets(targets, address)
    record["updated"] = c.now
    _check_targets(c, record)
    c.store(keys.forward(address), record)
    return record


@operation
def forward_delete(c: OpCtx, address: Any) -> None:
    address = normalize_address(address)
    if c.txn.get(keys.forward(address)) is None:
        raise StoreError("not_found", f"forward {address} does not exist")
    c.txn.delete(keys.forward(address))
