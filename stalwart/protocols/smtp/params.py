"""MAIL FROM / RCPT TO parameters (RFC 5321 4.1.2 esmtp-param) and their extensions.

    parse_mail_params(["SIZE=1000", "BODY=8BITMIME"], ext) -> MailParams(size=1000, ...)
    parse_rcpt_params(["NOTIFY=SUCCESS,FAILURE"], ext)   -> RcptParams(notify=(...))

Extensions understood (each only when advertised; ``Extensions`` says which are):

- SIZE (RFC 1870 6): ``SIZE=<1*20DIGIT>``; above the limit is 552 5.3.4 at MAIL time.
- BODY (RFC 6152 3): ``BODY=7BIT`` or ``BODY=8BITMIME``. BINARYMIME is not offered.
- SMTPUTF8 (RFC 6531 3.4): no value.
- DSN (RFC 3461 4): ``RET=FULL|HDRS`` and ``ENVID=xtext`` (100 octets) on MAIL;
  ``NOTIFY=NEVER|{SUCCESS,FAILURE,DELAY}`` and ``ORCPT=addr-type;xtext`` (500 octets) on RCPT.
  RFC 6533 3 lets ``ORCPT=utf-8;...`` carry a UTF-8 address (with unitext escapes).
- AUTH (RFC 4954 5): ``AUTH=<xtext mailbox>`` or ``AUTH=<>``; kept only for a trusted
  (authenticated) client, otherwise parsed and dropped as the RFC says.
- REQUIRETLS (RFC 8689 4.1): no value, only on a TLS session.

Invariants
- Keywords are case-insensitive; a keyword given twice is a 501 syntax error.
- An unknown keyword or a known one whose extension is not advertised is 555 5.5.4
  (RFC 5321 4.1.1.11); a bad value is 501 5.5.4.
- esmtp-value is ``1*(%d33-60 / %d62-126)`` (plus UTF-8 with SMTPUTF8): no "=", space
  or controls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import codes
from .address import SmtpSyntaxError

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_VALUE_UTF8 = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")

MAX_ENVID = 100
MAX_ORCPT = 500


@dataclass(frozen=True, slots=True)
class Extensions:
    """Which parameter-carrying extensions this session advertised."""

    size: bool = True
    eight_bit: bool = True
    smtputf8: bool = True
    dsn: bool = True
    auth: bool = True
    requiretls: bool = False        # only true on a TLS session (RFC 8689 4)


@dataclass(frozen=True, slots=True)
class MailParams:
    size: int | None = None
    body: str = "7BIT"                   # "7BIT" or "8BITMIME"
    smtputf8: bool = False
    ret: str | None = None               # "FULL" | "HDRS"
    envid: str | None = None             # decoded xtext
    auth: str | None = None              # decoded xtext, "<>" for the null identity
    requiretls: bool = False


@dataclass(frozen=True, slots=True)
class RcptParams:
    notify: tuple[str, ...] | None = None     # ("NEVER",) or a subset of SUCCESS/FAILURE/DELAY
    orcpt: tuple[str, str] | None = None      # (addr-type, decoded address)


def xtext_decode(value: str) -> str:
    """RFC 3461 4: ``"+" HEXCHAR HEXCHAR`` escapes; everything else literal."""
    if not _XTEXT.fullmatch(value):
        raise SmtpSyntaxError(codes.BAD_DSN, "Bad xtext value")
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def _unitext_decode(value: str) -> str:
    """RFC 6533 3: utf-8-addr-xtext, ``\\x{HEX}`` escapes for characters, UTF-8 as is."""
    def repl(m: re.Match) -> str:
        code = int(m.group(1), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise SmtpSyntaxError(codes.BAD_DSN, "Bad unitext escape")
        return chr(code)
    return re.sub(r"\\x\{([0-9A-Fa-f]{1,6})\}", repl, value)


def split_params(words: list[str], *, utf8: bool) -> dict[str, str | None]:
    """``["KEY=value", "FLAG"]`` -> ``{"KEY": "value", "FLAG": None}`` (keys upper case)."""
    value_re = _VALUE_UTF8 if utf8 else _VALUE
    out: dict[str, str | None] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not _KEYWORD.fullmatch(key):
            raise SmtpSyntaxError(codes.SYNTAX, f"Bad parameter {word[:40]!r}")
        if eq and not value_re.fullmatch(value):
            raise SmtpSyntaxError(codes.SYNTAX, f"Bad value for parameter {key.upper()}")
        key = key.upper()
        if key in out:
            raise SmtpSyntaxError(codes.SYNTAX, f"Duplicate parameter {key}")
        out[key] = value if eq else None
    return out


def _need(value: str | None, key: str) -> str:
    if value is None:
        raise SmtpSyntaxError(codes.SYNTAX, f"{key} needs a value")
    return value


def _flag(value: str | None, key: str) -> None:
    if value is not None:
        raise SmtpSyntaxError(codes.SYNTAX, f"{key} takes no value")


def parse_mail_params(words: list[str], ext: Extensions) -> MailParams:
    # SMTPUTF8 decides whether the other values may hold UTF-8: look for it first.
    utf8 = ext.smtputf8 and any(w.upper() == "SMTPUTF8" for w in words)
    params = split_params(words, utf8=utf8)
    size = None
    body = "7BIT"
    ret = envid = auth = None
    smtputf8 = requiretls = False
    for key, value in params.items():
        if key == "SIZE" and ext.size:
            value = _need(value, key)
            if not value.isdigit() or len(value) > 20:
                raise SmtpSyntaxError(codes.SYNTAX, "SIZE must be a number")
            size = int(value)
        elif key == "BODY" and ext.eight_bit:
            value = _need(value, key).upper()
            if value not in ("7BIT", "8BITMIME"):
                raise SmtpSyntaxError(codes.PARAM_NOT_IMPLEMENTED if value == "BINARYMIME"
                                      else codes.SYNTAX, f"Unsupported BODY={value}")
            body = value
        elif key == "SMTPUTF8" and ext.smtputf8:
            _flag(value, key)
            smtputf8 = True
        elif key == "RET" and ext.dsn:
            value = _need(value, key).upper()
            if value not in ("FULL", "HDRS"):
                raise SmtpSyntaxError(codes.BAD_DSN, "RET must be FULL or HDRS")
            ret = value
        elif key == "ENVID" and ext.dsn:
            value = _need(value, key)
            if len(value) > MAX_ENVID:
                raise SmtpSyntaxError(codes.BAD_DSN, "ENVID too long")
            envid = xtext_decode(value)
        elif key == "AUTH" and ext.auth:
            value = _need(value, key)
            auth = "<>" if value == "<>" else xtext_decode(value)
        elif key == "REQUIRETLS" and ext.requiretls:
            _flag(value, key)
            requiretls = True
        else:
            raise SmtpSyntaxError(codes.UNKNOWN_PARAM, f"Parameter {key} not supported")
    return MailParams(size, body, smtputf8, ret, envid, auth, requiretls)


def parse_rcpt_params(words: list[str], ext: Extensions, *, utf8: bool) -> RcptParams:
    params = split_params(words, utf8=utf8)
    notify = orcpt = None
    for key, value in params.items():
        if key == "NOTIFY" and ext.dsn:
            items = tuple(v.upper() for v in _need(value, key).split(","))
            if items == ("NEVER",):
                notify = items
            elif items and all(v in ("SUCCESS", "FAILURE", "DELAY") for v in items) \
                    and len(set(items)) == len(items):
                notify = items
            else:
                raise SmtpSyntaxError(codes.BAD_DSN, "NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY")
        elif key == "ORCPT" and ext.dsn:
            value = _need(value, key)
            if len(value) > MAX_ORCPT:
                raise SmtpSyntaxError(codes.BAD_DSN, "ORCPT too long")
            addr_type, semi, addr = value.partition(";")
            if not semi or not _ADDR_TYPE.fullmatch(addr_type) or not addr:
                raise SmtpSyntaxError(codes.BAD_DSN, "ORCPT must be addr-type;address")
            if addr_type.lower() == "utf-8":
                decoded = _unitext_decode(addr)
            else:
                decoded = xtext_decode(addr)
            orcpt = (addr_type.lower(), decoded)
        else:
            raise SmtpSyntaxError(codes.UNKNOWN_PARAM, f"Parameter {key} not supported")
    return RcptParams(notify, orcpt)
