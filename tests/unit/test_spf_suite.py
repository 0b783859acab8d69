"""The RFC 7208 test suite (openspf.org, shipped in pyspf's sdist; see tests/data/spf/) run
through ``stalwart.mailauth.spf`` with the suite's own DNS data.

Each scenario's ``zonedata`` becomes a ``ZoneBackend`` behind a real ``Resolver`` (so name
canonicalisation and the cache are ours too). The zone conventions are the suite's (as its
reference driver reads them): ``SPF`` records are also served as ``TXT`` unless the name
has ``TXT`` records of its own (RFC 7208 dropped the SPF RR type, so we only ever ask for
TXT); ``TXT: NONE`` means no TXT; ``TIMEOUT`` makes every type with no record listed
before it time out; a ``CNAME`` is followed (as the answer's additional data would be);
names under ``error.`` that the zone lacks time out; other absent names do not exist.
A case passes when our result is one of the results the suite allows, and, where the
case names one, our explanation is the suite's (``DEFAULT`` is the default explanation the
driver sets).
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import dns.name
import pytest
import yaml

from stalwart.dns import MX, Answer, NoData, NxDomain, Resolver, TempFail, join_txt
from stalwart.mailauth import spf

SUITE = Path(__file__).resolve().parent.parent / "data" / "spf" / "rfc7208-tests.yml"


def _entries(records: list) -> list:
    """The suite driver's reading of one name's records: [(type, value) | "TIMEOUT"]."""
    out, generated, has_txt = [], [], False
    for item in records:
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


def _convert(rtype: str, value):
    if rtype in ("A", "AAAA"):
        return str(ipaddress.ip_address(value))
    if rtype == "MX":
        pref, host = value
        return MX(int(pref), str(host).rstrip(".").lower())
    if rtype == "TXT":
        return join_txt([s.encode("utf-8") for s in value])
    if rtype in ("PTR", "CNAME"):
        return str(value).rstrip(".").lower()
    raise ValueError(rtype)


class ZoneBackend:
    def __init__(self, zonedata: dict) -> None:
        self.zone = {name.rstrip(".").lower(): _entries(records or [])
                     for name, records in zonedata.items()}
        self.queries: list[tuple[str, str]] = []

    async def query(self, name: str, rdtype: str, _depth: int = 0) -> Answer:
        self.queries.append((name, rdtype))
        # The resolver hands us presentation form ("a\\032b"); the zone is written plain.
        name = ".".join(label.decode("latin-1")
                        for label in dns.name.from_text(name).labels if label)
        entries = self.zone.get(name)
        if entries is None:
            if name.startswith("error."):
                raise TempFail(name, rdtype, "timed out")
            raise NxDomain(name, rdtype)
        records = []
        seen_type = False
        for entry in entries:
            if entry == "TIMEOUT":
                if not seen_type:
                    raise TempFail(name, rdtype, "timed out")
                break
            rtype, value = entry
            if rtype == rdtype:
                seen_type = True
            if value == "TIMEOUT":
                if rtype == rdtype:
                    raise TempFail(name, rdtype, "timed out")
                continue
            if rtype == rdtype:
                records.append(_convert(rtype, value))
            elif rtype == "CNAME" and _depth == 0:
                target = _convert("CNAME", value)
                try:
                    answer = await self.query(target, rdtype, _depth + 1)
                except (NxDomain, NoData):
                    continue
                records.extend(answer.records)
        if not records:
            raise NoData(name, rdtype)
        return Answer(name, rdtype, tuple(records), 300)


def _cases():
    with SUITE.open("rb") as fh:
        for scenario in yaml.safe_load_all(fh):
            zone = scenario.get("zonedata") or {}
            for name, case in scenario["tests"].items():
                yield pytest.param(scenario["description"], zone, case, id=name)


CASES = list(_cases())


def test_suite_is_complete():
    # The 2014.04 release has 205 cases (grep -c "result:" of the file).
    assert len(CASES) == SUITE.read_text("utf-8").count("    result:")
    assert len(CASES) > 200


@pytest.mark.parametrize("scenario,zone,case", CASES)
def test_rfc7208_case(scenario, zone, case):
    resolver = Resolver(ZoneBackend(zone))
    result = asyncio.run(spf.check_mail_from(case["host"], case["mailfrom"], case["helo"],
                                             resolver, receiver="receiver.example",
                                             default_explanation="DEFAULT"))
    expected = case["result"]
    allowed = expected if isinstance(expected, list) else [expected]
    assert result.result in allowed, (scenario, case.get("description"), result)
    if "explanation" in case and result.result == "fail":
        assert result.explanation == case["explanation"], (scenario, result)
    # Whatever the result, the Received-SPF field is one well-formed header.
    header = result.received_spf("receiver.example")
    assert header.startswith(f"Received-SPF: {result.result} (")
    assert all(line.startswith("\t") for line in header.split("\r\n")[1:])

