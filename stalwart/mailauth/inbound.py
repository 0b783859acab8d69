"""The inbound authentication pipeline: what happens to a message from an
unauthenticated SMTP client between the end of DATA and the store.

    auth = InboundAuth(InboundSettings.from_config(config), resolver)
    verdict = await auth.check(ip, helo, mail_from, message)
    verdict.action       # "accept" | "junk" | "reject" | "tempfail"
    verdict.reply        # the SMTP reply for "reject"/"tempfail" (every recipient)
    verdict.message      # the message to store: our fields prepended, forged ones gone

Order (each step skipped when its setting is ``disabled``):
1. Remove ``Authentication-Results`` fields that claim our authserv-id (RFC 8601 5) and
   sender-supplied ``BIMI-Location``/``BIMI-Indicator``/``BIMI-Logo-Preference`` fields
   (they are ours to add).
2. SPF for the HELO name and for MAIL FROM (RFC 7208; a null sender is checked as
   ``postmaster@<HELO>``), DKIM verification of every signature
   (``stalwart.mailauth.dkim.verify``) and of the ARC chain (``stalwart.mailauth.arc``,
   reported only), concurrently, over the shared resolver.
3. DMARC (RFC 7489) for the From domain, from the MAIL FROM SPF result and the DKIM
   results.
4. The action, most severe first: DMARC ``reject`` (strict mode) -> ``550 5.7.1``;
   SPF ``fail`` in strict mode -> ``550 5.7.23`` (``451 4.7.24`` on temperror); DKIM in
   strict mode with signatures none of which passed -> ``550 5.7.20`` (``451 4.7.5``
   if only DNS trouble); DMARC ``quarantine`` (strict mode) -> the Junk mailbox;
   otherwise the inbox. Reply codes per RFC 7372 and RFC 7489 7.3.
5. BIMI (``stalwart.mailauth.bimi``) for a message that passed DMARC at an enforcing
   policy and is being delivered.
6. ``Received-SPF`` (RFC 7208 9.1), ``Authentication-Results`` (RFC 8601, our host
   name as authserv-id) and, for a BIMI pass, ``BIMI-Location`` (and ``BIMI-Indicator``
   when the indicator was fetched and checked) are prepended.

The verdict also carries the row for DMARC aggregate reports (``aggregate``) when the
From domain published a record with ``rua=``; the caller stores it. Nothing here raises
for a hostile message or DNS trouble: every failure is a result.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from stalwart.protocols.smtp import codes
from stalwart.protocols.smtp.codes import Reply

from . import authres, dmarc as dmarc_mod, spf as spf_mod

log = logging.getLogger("stalwart.mailauth")

__all__ = ["InboundSettings", "InboundAuth", "InboundVerdict", "DMARC_REJECT",
           "SPF_REJECT", "DKIM_REJECT"]

# RFC 7489 7.3 suggests 5.7.1 for DMARC rejections; RFC 7372 3.2 / 3.1 for SPF and DKIM.
DMARC_REJECT = codes.reply(550, "5.7.1", "Message rejected by the DMARC policy of the "
                                         "sender domain")
SPF_REJECT = codes.reply(550, "5.7.23", "SPF validation failed")
SPF_TEMP = codes.reply(451, "4.7.24", "SPF validation error, try again later")
DKIM_REJECT = codes.reply(550, "5.7.20", "No passing DKIM signature found")
DKIM_TEMP = codes.reply(451, "4.7.5", "DKIM key lookup failed, try again later")
CHECK_FAILED = codes.reply(451, "4.3.0", "Temporary failure checking the message, try again "
                                         "later")

STRIP = ("bimi-location", "bimi-indicator", "bimi-logo-preference")

DkimVerify = Callable[[bytes, Any], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class InboundSettings:
    hostname: str
    spf_helo: str = "relaxed"
    spf_mail_from: str = "relaxed"
    dkim: str = "relaxed"
    dmarc: str = "strict"
    aggregate: bool = True
    report_addresses: tuple[str, ...] = ()
    bimi: bool = True
    bimi_indicator: bool = True
    arc: str = "relaxed"

    @classmethod
    def from_config(cls, config: Any) -> "InboundSettings":
        return cls(hostname=config.get("server.hostname"),
                   spf_helo=config.get("auth.spf.verify.helo"),
                   spf_mail_from=config.get("auth.spf.verify.mail-from"),
                   dkim=config.get("auth.dkim.verify"),
                   dmarc=config.get("auth.dmarc.verify"),
                   aggregate=config.get("auth.dmarc.report.aggregate"),
                   report_addresses=tuple(a.lower() for a in
                                          config.get("auth.report.addresses") or ()),
                   bimi=config.get("auth.bimi.enable"),
                   bimi_indicator=config.get("auth.bimi.indicator"),
                   arc=config.get("auth.arc.verify"))


@dataclass
class InboundVerdict:
    action: str                                   # accept | junk | reject | tempfail
    message: bytes                                # what to deliver (fields prepended)
    reply: Reply | None = None
    spf_helo: Any = None
    spf_mail_from: Any = None
    dkim: list = field(default_factory=list)
    dmarc: Any = None
    aggregate: dict | None = None                 # a row for the DMARC aggregate report
    bimi: Any = None
    arc: Any = None                               # the ARC chain result (None: no chain)
    headers: bytes = b""                          # the fields we prepended


async def _default_dkim_verify(message: bytes, resolver: Any) -> Sequence[Any]:
    from . import dkim

    return await dkim.verify(message, resolver)


async def _default_arc_verify(message: bytes, resolver: Any) -> Any:
    from . import arc

    return await arc.verify(message, resolver)


class InboundAuth:
    def __init__(self, settings: InboundSettings, resolver: Any, *,
                 dkim_verify: DkimVerify | None = None, arc_verify: Any = None,
                 bimi_fetcher: Any = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.resolver = resolver
        self._dkim_verify = dkim_verify or _default_dkim_verify
        self._arc_verify = arc_verify or _default_arc_verify
        #: ``bimi.IndicatorFetcher`` (None: BIMI without fetching the indicator)
        self.bimi_fetcher = bimi_fetcher
        self._rng = rng
        self._clock = clock

    @classmethod
    def from_config(cls, config: Any, resolver: Any = None) -> "InboundAuth":
        if resolver is None:
            from stalwart.dns import Resolver

            resolver = Resolver.from_settings(config.get("resolver.nameservers") or (),
                                              timeout=config.get("resolver.timeout"),
                                              lifetime=config.get("resolver.lifetime"),
                                              cache_size=config.get("resolver.cache-size"))
        settings = InboundSettings.from_config(config)
        fetcher = None
        if settings.bimi and settings.bimi_indicator:
            from .bimi import IndicatorFetcher

            fetcher = IndicatorFetcher(resolver)
        return cls(settings, resolver, bimi_fetcher=fetcher)

    async def check(self, ip: str, helo: str, mail_from: str, message: bytes) -> InboundVerdict:
        """Run the pipeline for one message. ``mail_from`` is the reverse-path's
        address (``""`` for the null sender)."""
        s = self.settings
        host = s.hostname
        message = authres.strip_own_results(message, host, also=STRIP)

        async def nothing() -> None:
            return None

        async def dkim_results() -> list:
            try:
                return list(await self._dkim_verify(message, self.resolver))
            except Exception:                    # a verifier bug must not lose mail
                log.exception("DKIM verification failed unexpectedly")
                return []

        async def arc_result() -> Any:
            try:
                chain = await self._arc_verify(message, self.resolver)
            except Exception:                    # a verifier bug must not lose mail
                log.exception("ARC verification failed unexpectedly")
                return None
            return chain if getattr(chain, "result", "none") != "none" else None

        helo_task = (spf_mod.check_helo(ip, helo, self.resolver, receiver=host)
                     if s.spf_helo != "disabled" else nothing())
        mail_task = (spf_mod.check_mail_from(ip, mail_from, helo, self.resolver,
                                             receiver=host)
                     if s.spf_mail_from != "disabled" else nothing())
        dkim_task = dkim_results() if s.dkim != "disabled" else nothing()
        arc_task = arc_result() if s.arc != "disabled" else nothing()
        spf_helo, spf_mail, dkim, arc_chain = await asyncio.gather(helo_task, mail_task,
                                                                   dkim_task, arc_task)

        dmarc_result = None
        from_domain = dmarc_mod.header_from(authres.field_values(message, "from"))
        if s.dmarc != "disabled":
            if from_domain.domain:
                dmarc_result = await dmarc_mod.check(from_domain.domain, spf_mail, dkim or [],
                                                     self.resolver, rng=self._rng)
            elif from_domain.all_domains:
                # Several From fields or domains (RFC 7489 6.6.1): every domain is
                # evaluated and the strictest outcome applies, so a second address
                # cannot shield a forged one.
                dmarc_result = await dmarc_mod.check_all(from_domain.all_domains, spf_mail,
                                                         dkim or [], self.resolver,
                                                         rng=self._rng)
            else:
                dmarc_result = dmarc_mod.DmarcResult("permerror", "",
                                                     reason=from_domain.problem)

        action, reply = self._decide(spf_helo, spf_mail, dkim, dmarc_result)
        bimi_result = None
        if s.bimi and dmarc_result is not None and from_domain.domain \
                and action in ("accept", "junk"):           # one From domain only (7.1)
            from .bimi import lookup

            bimi_result = await lookup(dmarc_result, self.resolver, fetcher=self.bimi_fetcher)
        fields = []
        spf_for_header = spf_mail if spf_mail is not None else spf_helo
        if spf_for_header is not None:
            fields.append(spf_for_header.received_spf(host))
        fields.append(authres.authentication_results(
            host, spf=spf_mail, spf_helo=spf_helo,
            dkim=None if s.dkim == "disabled" else (dkim or []), dmarc=dmarc_result,
            bimi=bimi_result, arc=arc_chain))
        if bimi_result is not None:
            fields += [f for f in (bimi_result.location_header(),
                                   bimi_result.indicator_header()) if f]
        headers = "".join(f + "\r\n" for f in fields).encode("utf-8", "replace")
        verdict = InboundVerdict(action, headers + message, reply, spf_helo, spf_mail,
                                 list(dkim or []), dmarc_result, headers=headers,
                                 bimi=bimi_result, arc=arc_chain)
        if s.aggregate and dmarc_result is not None and dmarc_result.record is not None \
                and dmarc_result.record.rua:
            verdict.aggregate = self._aggregate_row(ip, helo, mail_from, spf_mail, dkim or [],
                                                    dmarc_result)
        return verdict

    def _decide(self, spf_helo, spf_mail, dkim, dmarc_result) -> tuple[str, Reply | None]:
        s = self.settings
        if s.dmarc == "strict" and dmarc_result is not None \
                and dmarc_result.result == "fail" and dmarc_result.disposition == "reject":
            return "reject", DMARC_REJECT
        if s.spf_helo == "strict" and spf_helo is not None and spf_helo.result == "fail":
            return "reject", SPF_REJECT
        if s.spf_mail_from == "strict" and spf_mail is not None:
            if spf_mail.result == "fail":
                return "reject", SPF_REJECT
            if spf_mail.result == "temperror":
                return "tempfail", SPF_TEMP
        if s.dkim == "strict" and dkim and not any(r.result == "pass" for r in dkim):
            if all(r.result == "temperror" for r in dkim):
                return "tempfail", DKIM_TEMP
            return "reject", DKIM_REJECT
        if s.dmarc == "strict" and dmarc_result is not None \
                and dmarc_result.result == "fail" and dmarc_result.disposition == "quarantine":
            return "junk", None
        return "accept", None

    def _aggregate_row(self, ip, helo, mail_from, spf_mail, dkim, d) -> dict:
        """One message's facts for the RFC 7489 aggregate report (Appendix C)."""
        record = d.record
        if spf_mail is not None:
            spf_domain = spf_mail.domain
            spf_scope = spf_mail.identity
            spf_result = spf_mail.result
        else:
            spf_domain, spf_scope, spf_result = "", "mfrom", "none"
        return {
            "time": int(self._clock()),
            "domain": d.record_domain,               # the policy domain (report per it)
            "rua": list(record.rua),
            "policy": {"domain": d.record_domain, "adkim": record.adkim,
                       "aspf": record.aspf, "p": record.p, "sp": record.sp or record.p,
                       "pct": record.pct},
            "source_ip": ip,
            "header_from": d.header_from,
            "envelope_from": mail_from.rpartition("@")[2].lower() if mail_from else "",
            "disposition": d.disposition,
            "dkim_aligned": "pass" if d.dkim_aligned else "fail",
            "spf_aligned": "pass" if d.spf_aligned else "fail",
            "sampled_out": d.sampled_out,
            "dkim": [{"domain": r.domain, "selector": getattr(r, "selector", ""),
                      "result": _dkim_report_result(r.result)} for r in dkim][:10],
            "spf": [{"domain": spf_domain,
                     "scope": "helo" if spf_scope == "helo" else "mfrom",
                     "result": spf_result}],
        }


def _dkim_report_result(result: str) -> str:
    # DKIMResultType of RFC 7489 Appendix C: none/pass/fail/policy/neutral/temperror/
    # permerror, the same names as our results.
    return result if result in ("none", "pass", "fail", "policy", "neutral", "temperror",
                                "permerror") else "neutral"


# ---------------------------------------------------------------------- SMTP glue
async def run_inbound(auth: InboundAuth, store: Any, event: Any) -> InboundVerdict:
    """The pipeline for one SMTP ``Deliver`` request (``LocalDelivery.deliver``): the
    client's IP, HELO and reverse-path from the session and envelope; the aggregate row
    stored when the store keeps them (``dmarc_record``). Storing the row is best effort:
    a store failure is logged and never turns into a failed delivery."""
    session, envelope = event.session, event.envelope
    address = envelope.mail_from.address
    mail_from = f"{address.local}@{address.domain_key}" if address is not None else ""
    try:
        verdict = await auth.check(session.remote_ip, session.helo, mail_from, event.message)
    except Exception:
        # A bug here must neither lose the message nor let it through unchecked: the
        # client keeps it and retries.
        log.exception("inbound authentication failed unexpectedly")
        return InboundVerdict("tempfail", event.message, CHECK_FAILED)
    d = verdict.dmarc
    log.info("inbound from %s helo=%s mail_from=%s: spf=%s dkim=%s dmarc=%s -> %s",
             session.remote_ip, session.helo, mail_from or "<>",
             verdict.spf_mail_from.result if verdict.spf_mail_from else "-",
             ",".join(r.result for r in verdict.dkim) or "none",
             f"{d.result}/{d.disposition}" if d is not None else "-", verdict.action)
    if auth.settings.report_addresses and verdict.reply is None:
        await _store_incoming_reports(auth.settings.report_addresses, store, envelope,
                                      event.message)
    record = getattr(store, "dmarc_record", None)
    if verdict.aggregate is not None and callable(record) and verdict.action != "tempfail":
        try:
            await record(verdict.aggregate)
        except Exception as exc:                 # StoreError, unavailable store
            log.warning("could not record the DMARC result for the aggregate report: %s",
                        exc)
    return verdict


def strip_forged(auth: InboundAuth, message: bytes) -> bytes:
    """The message without Authentication-Results fields claiming our authserv-id and
    without BIMI fields: applied to authenticated submissions, which are not checked."""
    return authres.strip_own_results(message, auth.settings.hostname, also=STRIP)


def junk_targets(store: Any, accounts: Sequence[int]) -> list[dict]:
    """Store ``deliver`` targets filing into each account's Junk mailbox (role
    ``junk``); an account without one gets the inbox with the ``$Junk`` keyword."""
    targets = []
    for account in accounts:
        junk = None
        try:
            for mailbox in store.list_mailboxes(account):
                if mailbox.get("role") == "junk":
                    junk = mailbox.get("id")
                    break
        except Exception as exc:
            log.warning("could not list the mailboxes of account %s: %s", account, exc)
        if isinstance(junk, int):
            targets.append({"account": account, "mailbox": junk, "keywords": ["$Junk"]})
        else:
            targets.append({"account": account, "keywords": ["$Junk"]})
    return targets


async def _store_incoming_reports(addresses: Sequence[str], store: Any, envelope: Any,
                                  message: bytes) -> int:
    """Mail to a report address: parse the DMARC/TLS reports in it and store them."""
    wanted = set(addresses)
    targets = [r.target.get("address", "") for r in envelope.recipients
               if isinstance(r.target, dict)]
    if not any(isinstance(t, str) and t.lower() in wanted for t in targets):
        return 0
    save = getattr(store, "report_store", None)
    if not callable(save):
        return 0
    from .reports import extract_reports

    stored = 0
    for report in await asyncio.to_thread(extract_reports, message):
        try:
            await save(report)
            stored += 1
        except Exception as exc:
            log.warning("could not store a received %s report: %s", report.get("kind"), exc)
    if stored:
        log.info("stored %d received report(s)", stored)
    return stored
