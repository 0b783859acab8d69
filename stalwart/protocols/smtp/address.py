"""Strict parser for SMTP paths and domains (RFC 5321 4.1.2, 4.1.3, 4.5.3.1; RFC 6531).

    parse_path("<user@example.com>")            -> Path(Address("user", "example.com"))
    parse_path("<>", reverse=True)              -> Path(None): the null reverse-path
    parse_path("<@relay:user@example.com>")     -> the source route is parsed and dropped
    parse_domain("example.com")                 -> "example.com"

Grammar enforced (RFC 5321 4.1.2, extended by RFC 6531 3.3 for UTF-8)::

    Path           = "<" [ A-d-l ":" ] Mailbox ">"
    A-d-l          = At-domain *( "," At-domain )        ; parsed, then ignored (4.1.1.3, C.)
    Mailbox        = Local-part "@" ( Domain / address-literal )
    Local-part     = Dot-string / Quoted-string
    Dot-string     = Atom *("."  Atom)                   ; no leading, trailing or double dot
    Quoted-string  = DQUOTE *( qtextSMTP / "\\" %d32-126 ) DQUOTE
    Domain         = sub-domain *("." sub-domain)        ; no trailing dot
    sub-domain     = Let-dig [Ldh-str] / U-label         ; U-label only with UTF-8 allowed

Invariants
- The parser either returns a value or raises ``SmtpSyntaxError`` carrying the reply to
  send (501 5.1.3 for a bad path, 553 5.6.7 for UTF-8 without SMTPUTF8); nothing else.
- Limits (RFC 5321 4.5.3.1): local part 64 octets, domain 255 octets, path 256 octets,
  counted in UTF-8 octets.
- A domain is compared in its canonical form (``Address.domain_key``): lower case,
  IDNA A-labels. A U-label that IDNA would *map* to something else (full-width letters,
  compatibility characters, upper case non-ASCII) is refused: such look-alikes never
  collapse onto a real domain.
- The local part is kept exactly as sent (case preserved, quoting removed); whether it is
  a known user is the policy's decision, never the parser's. Characters that older MTAs
  treat as routing (``%``, ``!``, an ``@`` inside quotes) are reported by
  ``Address.has_routing`` so the policy can refuse to treat them as anything but opaque.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from . import codes
from .codes import Reply

MAX_LOCAL = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_ATOM_ASCII = re.compile(rf"[{_ATEXT}]+")
# RFC 6531 3.3: atext is extended with UTF8-non-ascii.
_ATOM_UTF8 = re.compile(rf"[{_ATEXT}\u0080-\U0010ffff]+")
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_GENERAL_LITERAL = re.compile(r"([A-Za-z0-9-]*[A-Za-z0-9]):([\x21-\x5a\x5e-\x7e]+)")


class SmtpSyntaxError(Exception):
    """Bad input from the client; ``reply`` is what to answer."""

    def __init__(self, reply: Reply, detail: str = "") -> None:
        super().__init__(detail or reply.text)
        self.reply = reply if not detail else reply.with_text(detail)


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox ``local@domain`` as the client wrote it (quotes removed)."""

    local: str
    domain: str                 # the domain as written, or "[literal]" for address literals
    quoted: bool = False        # the local part was a Quoted-string
    literal: bool = False       # the domain is an address literal

    @property
    def domain_key(self) -> str:
        """Canonical domain: A-labels, lower case; literals canonicalised (RFC 5321 4.1.3)."""
        if self.literal:
            return self.domain.lower()
        return _to_ascii(self.domain)

    @property
    def is_utf8(self) -> bool:
        return not (self.local.isascii() and self.domain.isascii())

    @property
    def has_routing(self) -> bool:
        """True when the local part contains characters that legacy MTAs interpret as a
        route: the percent hack (``a%b``), UUCP bang paths (``b!a``), an ``@`` or a ``:``
        or ``,`` hidden inside quotes. Never followed; the policy treats it as opaque."""
        return any(ch in self.local for ch in "%!@:,") or (self.quoted and "\\" in self.local)

    def local_wire(self) -> str:
        """The local part in wire form: a Dot-string if possible, else a Quoted-string."""
        if not self.quoted or _is_dot_string(self.local, True):
            return self.local
        escaped = self.local.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'

    def __str__(self) -> str:
        return f"{self.local_wire()}@{self.domain}"

    def key(self) -> str:
        """Lower-cased ``local@domain_key`` (local part compared case-insensitively by our
        directory, as Stalwart does; RFC 5321 2.4 allows a server to choose that)."""
        return f"{self.local.lower()}@{self.domain_key}"


@dataclass(frozen=True, slots=True)
class Path:
    """A reverse- or forward-path; ``address`` None is the null path ``<>``."""

    address: Address | None
    postmaster: bool = False    # RFC 5321 4.1.1.3: bare <Postmaster> (no domain)

    @property
    def is_null(self) -> bool:
        return self.address is None and not self.postmaster

    def __str__(self) -> str:
        if self.postmaster:
            return "<Postmaster>"
        return f"<{self.address}>" if self.address is not None else "<>"


def _is_dot_string(local: str, utf8: bool) -> bool:
    atom = _ATOM_UTF8 if utf8 else _ATOM_ASCII
    return bool(local) and all(atom.fullmatch(part) for part in local.split("."))


def _to_ascii(domain: str) -> str:
    if domain.isascii():
        return domain.lower()
    labels = []
    for label in domain.split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            ascii_label = label.encode("idna").decode("ascii")
        except UnicodeError:
            raise SmtpSyntaxError(codes.BAD_PATH, f"Invalid internationalized domain {domain}")
        # Refuse labels that nameprep would *change* (width, compatibility forms, case of
        # non-ASCII letters): the written form must already be the canonical U-label.
        if ascii_label.encode("ascii").decode("idna") != label:
            raise SmtpSyntaxError(codes.BAD_PATH, f"Domain {domain} is not in canonical form")
        labels.append(ascii_label.lower())
    return ".".join(labels)


def parse_domain(text: str, *, utf8: bool = False) -> str:
    """Validate a Domain (no address literal); returns it unchanged, or raises."""
    if not text:
        raise SmtpSyntaxError(codes.BAD_PATH, "Empty domain")
    if len(text.encode("utf-8")) > MAX_DOMAIN:
        raise SmtpSyntaxError(codes.DOMAIN_TOO_LONG)
    if not text.isascii() and not utf8:
        raise SmtpSyntaxError(codes.NEED_SMTPUTF8)
    for label in text.split("."):
        if label.isascii():
            if len(label) > 63 or not _LDH_LABEL.fullmatch(label):
                raise SmtpSyntaxError(codes.BAD_PATH, f"Invalid domain {text}")
        elif not label or any(ch in label for ch in " \t@<>[]\\\",;:()"):
            raise SmtpSyntaxError(codes.BAD_PATH, f"Invalid domain {text}")
    ascii_form = _to_ascii(text)
    if len(ascii_form) > MAX_DOMAIN or any(len(lb) > 63 for lb in ascii_form.split(".")):
        raise SmtpSyntaxError(codes.DOMAIN_TOO_LONG)
    return text


def parse_address_literal(text: str) -> str:
    """``[1.2.3.4]``, ``[IPv6:...]`` or a General-address-literal; returns the canonical
    bracketed form (IPv6 compressed, lower case)."""
    if len(text) < 3 or text[0] != "[" or text[-1] != "]":
        raise SmtpSyntaxError(codes.BAD_PATH, "Bad address literal")
    inner = text[1:-1]
    if inner[:5].upper() == "IPV6:":
        try:
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:]).compressed}]"
        except ValueError:
            raise SmtpSyntaxError(codes.BAD_PATH, "Bad IPv6 address literal")
    if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", inner):
        try:
            return f"[{ipaddress.IPv4Address(inner)}]"
        except ValueError:
            raise SmtpSyntaxError(codes.BAD_PATH, "Bad IPv4 address literal")
    if _GENERAL_LITERAL.fullmatch(inner):
        return text
    raise SmtpSyntaxError(codes.BAD_PATH, "Bad address literal")


def literal_ip(domain: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of an address literal domain, or None."""
    inner = domain[1:-1]
    try:
        if inner[:5].upper() == "IPV6:":
            return ipaddress.IPv6Address(inner[5:])
        return ipaddress.IPv4Address(inner)
    except ValueError:
        return None


def _parse_local(text: str, utf8: bool) -> tuple[str, bool, int]:
    """Parse a Local-part at the start of ``text``; return (value, quoted, consumed)."""
    if text.startswith('"'):
        out = []
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == '"':
                return "".join(out), True, i + 1
            if ch == "\\":
                if i + 1 >= len(text):
                    break
                nxt = text[i + 1]
                if not (" " <= nxt <= "~") and not (utf8 and ord(nxt) > 0x7F):
                    raise SmtpSyntaxError(codes.BAD_PATH, "Bad quoted-pair in local part")
                out.append(nxt)
                i += 2
                continue
            code = ord(ch)
            if not (32 <= code <= 126 or (utf8 and code > 0x7F)):
                if code > 0x7F:
                    raise SmtpSyntaxError(codes.NEED_SMTPUTF8)
                raise SmtpSyntaxError(codes.BAD_PATH, "Bad character in quoted local part")
            out.append(ch)
            i += 1
        raise SmtpSyntaxError(codes.BAD_PATH, "Unterminated quoted local part")
    end = text.rfind("@")
    if end <= 0:
        raise SmtpSyntaxError(codes.BAD_PATH, "Address needs local-part@domain")
    local = text[:end]
    if not local.isascii() and not utf8:
        raise SmtpSyntaxError(codes.NEED_SMTPUTF8)
    if not _is_dot_string(local, utf8):
        raise SmtpSyntaxError(codes.BAD_PATH, "Bad local part")
    return local, False, end


def parse_mailbox(text: str, *, utf8: bool = False) -> Address:
    """Parse ``Mailbox = Local-part "@" ( Domain / address-literal )``."""
    local, quoted, used = _parse_local(text, utf8)
    rest = text[used:]
    if not rest.startswith("@"):
        raise SmtpSyntaxError(codes.BAD_PATH, "Address needs local-part@domain")
    domain = rest[1:]
    if len(local.encode("utf-8")) > MAX_LOCAL:
        raise SmtpSyntaxError(codes.LOCAL_TOO_LONG)
    if not local:
        raise SmtpSyntaxError(codes.BAD_PATH, "Empty local part")
    if domain.startswith("["):
        return Address(local, parse_address_literal(domain), quoted, True)
    return Address(local, parse_domain(domain, utf8=utf8), quoted, False)


def parse_path(text: str, *, reverse: bool = False, utf8: bool = False) -> Path:
    """Parse a Path in angle brackets. ``reverse`` allows ``<>``; a forward path allows the
    bare ``<Postmaster>`` of RFC 5321 4.1.1.3. ``utf8``: the client announced SMTPUTF8."""
    if len(text.encode("utf-8")) > MAX_PATH:
        raise SmtpSyntaxError(codes.PATH_TOO_LONG)
    if len(text) < 2 or text[0] != "<" or text[-1] != ">":
        raise SmtpSyntaxError(codes.BAD_PATH, "Address must be in angle brackets")
    inner = text[1:-1]
    if not inner:
        if reverse:
            return Path(None)
        raise SmtpSyntaxError(codes.BAD_PATH, "Null forward path")
    if not reverse and inner.lower() == "postmaster":
        return Path(None, postmaster=True)
    if inner.startswith("@"):
        # RFC 5321 4.1.1.3 and appendix C: source routes MUST be accepted, SHOULD NOT be
        # generated, and the route may be ignored. We parse it strictly and drop it.
        colon = inner.find(":")
        if colon < 0:
            raise SmtpSyntaxError(codes.BAD_PATH, "Bad source route")
        for hop in inner[:colon].split(","):
            if not hop.startswith("@"):
                raise SmtpSyntaxError(codes.BAD_PATH, "Bad source route")
            hop_domain = hop[1:]
            if hop_domain.startswith("["):
                parse_address_literal(hop_domain)
            else:
                parse_domain(hop_domain, utf8=utf8)
        inner = inner[colon + 1:]
    return Path(parse_mailbox(inner, utf8=utf8))


def split_path_params(text: str) -> tuple[str, list[str]]:
    """Split ``<path> SP params`` (the part after ``FROM:``/``TO:``) into the path text and
    the parameter words. A ``>`` inside a quoted local part does not end the path. One
    run of spaces before the path is tolerated (many clients send ``FROM: <a@b>``)."""
    text = text.lstrip(" ")
    if not text.startswith("<"):
        raise SmtpSyntaxError(codes.BAD_PATH, "Address must be in angle brackets")
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            path, rest = text[:i + 1], text[i + 1:]
            if rest and not rest.startswith(" "):
                raise SmtpSyntaxError(codes.BAD_PATH, "Garbage after the address")
            words = rest.split(" ")
            return path, [w for w in words if w]
    raise SmtpSyntaxError(codes.BAD_PATH, "Address must be in angle brackets")
