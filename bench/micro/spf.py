"""SPF checks per second over the RFC 7208 test suite: ours against pyspf.

    python -m bench.micro.spf [--rounds 5] [--json]

Every case of ``tests/data/spf/rfc7208-tests.yml`` (the openspf.org suite shipped in
pyspf's sdist) is checked by both sides against the suite's own zone data, so DNS costs
the same (a dict lookup) on both: ours through a zone backend behind the real
``stalwart.dns.Resolver`` (a fresh resolver, so a cold cache, per case), pyspf through its
``DNSLookup`` hook, as its own test driver does. The figure is cases per second (median
of ``--rounds``); the ratio is ours / pyspf. ``correct`` says whether every one of our
results is one the suite allows; ``agree`` counts the cases where both sides gave the
same result. Needs ``pip install pyspf`` (the reference; not a dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import yaml

from stalwart.dns import MX, Answer, NoData, NxDomain, Resolver, TempFail, join_txt
from stalwart.mailauth import spf as ours

SUITE = Path(__file__).resolve().parents[2] / "tests" / "data" / "spf" / "rfc7208-tests.yml"


def _entries(records):
    out, generated, has_txt = [], [], False
    for item in records or []:
        if not isinstance(item, dict):
            out.append(item)
            continue
        for rtype, value in item.items():
            if rtype in ("TXT", "SPF") and isinstance(value, str):
                value = (value,)
            if rtype == "TXT":
                has_txt = True
            elif rtype == "SPF":
                generated.append(("TXT", value))
            if value != ("NONE",):
                out.append((rtype, value))
    if not has_txt:
        out.extend(generated)
    return out


def load():
    cases = []
    with SUITE.open("rb") as fh:
        for scenario in yaml.safe_load_all(fh):
            zone = {n.rstrip(".").lower(): _entries(r)
                    for n, r in (scenario.get("zonedata") or {}).items()}
            for name, case in scenario["tests"].items():
                cases.append((name, zone, case))
    return cases


class ZoneBackend:
    def __init__(self, zone):
        self.zone = zone

    async def query(self, name, rdtype, depth=0):
        if "\\" in name:                  # presentation-form escapes ("a\\032b")
            import dns.name

            name = ".".join(label.decode("latin-1")
                            for label in dns.name.from_text(name).labels if label)
        entries = self.zone.get(name)
        if entries is None:
            if name.startswith("error."):
                raise TempFail(name, rdtype)
            raise NxDomain(name, rdtype)
        records, seen = [], False
        for entry in entries:
            if entry == "TIMEOUT":
                if not seen:
                    raise TempFail(name, rdtype)
                break
            rtype, value = entry
            seen = seen or rtype == rdtype
            if value == "TIMEOUT":
                if rtype == rdtype:
                    raise TempFail(name, rdtype)
                continue
            if rtype == rdtype:
                if rtype in ("A", "AAAA"):
                    records.append(str(ipaddress.ip_address(value)))
                elif rtype == "MX":
                    records.append(MX(int(value[0]), str(value[1]).rstrip(".").lower()))
                elif rtype == "TXT":
                    records.append(join_txt([s.encode() for s in value]))
                else:
                    records.append(str(value).rstrip(".").lower())
            elif rtype == "CNAME" and depth == 0:
                try:
                    answer = await self.query(str(value).rstrip("."), rdtype, 1)
                except (NxDomain, NoData):
                    continue
                records.extend(answer.records)
        if not records:
            raise NoData(name, rdtype)
        return Answer(name, rdtype, tuple(records), 300)


def run_ours(cases):
    async def go():
        results = []
        for _, zone, case in cases:
            r = await ours.check_mail_from(case["host"], case["mailfrom"], case["helo"],
                                           Resolver(ZoneBackend(zone)))
            results.append(r.result)
        return results
    return asyncio.run(go())


def run_pyspf(cases):
    import socket

    import spf as pyspf

    current = {}

    def lookup(name, qtype, strict=True, timeout=None, level=0):
        labels = [label for label in name.split(".") if label]
        if any(len(label) > 63 for label in labels):
            raise pyspf.TempError("DNS label too long")
        name = ".".join(labels)
        entries = current["zone"].get(name.lower())
        if entries is None:
            if name.startswith("error."):
                raise pyspf.TempError("DNS timeout")
            return
        timeout_flag = True
        for entry in entries:
            if entry == "TIMEOUT":
                if timeout_flag:
                    raise pyspf.TempError("DNS timeout")
                return
            rtype, value = entry
            if rtype == qtype:
                timeout_flag = False
            if value == "TIMEOUT":
                if rtype == qtype:
                    raise pyspf.TempError("DNS timeout")
                continue
            if rtype == "AAAA":
                value = bytes(socket.inet_pton(socket.AF_INET6, value))
            elif rtype in ("TXT", "SPF"):
                value = tuple(s.encode("utf-8") for s in value)
            yield ((name, rtype), value)
            if not level and rtype == "CNAME":
                yield from lookup(value, qtype, strict, timeout, 1)

    pyspf.DNSLookup = lookup
    results = []
    for _, zone, case in cases:
        current["zone"] = zone
        q = pyspf.query(i=case["host"], s=case["mailfrom"], h=case["helo"], strict=True)
        res = q.check()[0]
        results.append({"unknown": "permerror", "error": "temperror"}.get(res, res))
    return results


def timed(fn, cases, rounds):
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn(cases)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv):
    parser = argparse.ArgumentParser(prog="bench.micro.spf")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cases = load()
    t_ours, r_ours = timed(run_ours, cases, args.rounds)
    try:
        t_ref, r_ref = timed(run_pyspf, cases, args.rounds)
    except ImportError:
        t_ref, r_ref = None, None
    allowed = [c["result"] if isinstance(c["result"], list) else [c["result"]]
               for _, _, c in cases]
    correct = all(r in a for r, a in zip(r_ours, allowed))
    out = {
        "cases": len(cases),
        "ours_per_s": round(len(cases) / t_ours, 1),
        "pyspf_per_s": round(len(cases) / t_ref, 1) if t_ref else None,
        "ratio": round(t_ref / t_ours, 2) if t_ref else None,
        "correct": correct,
        "pyspf_correct": sum(r in a for r, a in zip(r_ref, allowed)) if r_ref else None,
        "agree": sum(a == b for a, b in zip(r_ours, r_ref)) if r_ref else None,
        "python": platform.python_version(), "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"SPF over the RFC 7208 suite ({out['cases']} cases, median of {args.rounds})")
        print(f"  ours   {out['ours_per_s']:>9} checks/s")
        if t_ref:
            print(f"  pyspf  {out['pyspf_per_s']:>9} checks/s")
            print(f"  ratio ours/pyspf: {out['ratio']}x")
            print(f"  pyspf results allowed by the suite: {out['pyspf_correct']}/{len(cases)};"
                  f" same result as ours: {out['agree']}/{len(cases)}")
        else:
            print("  pyspf not installed: no reference figure")
        print(f"correct: {'yes' if correct else 'NO'} (every result of ours is one the suite "
              f"allows)")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
