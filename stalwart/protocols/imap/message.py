"""One message as IMAP sees it: ENVELOPE, BODYSTRUCTURE, BODY[section], BINARY, search text.

Built on the Rust MIME parser (``stalwart._native.parse_message``, see ``_native.pyi``):
every part knows its byte offsets in the raw message, so BODY[section] is a slice of the
octets as stored, never a re-serialisation.

Part numbering (RFC 9051 section 6.4.5): the parts of a multipart are numbered from 1; a
message that is not multipart has one part, "1", its body; a message/rfc822 part's own
parts are numbered below it, as those of the message it holds. HEADER, HEADER.FIELDS[.NOT]
and TEXT apply to the whole message or to a message/rfc822 part; MIME to any part.
A section that names no part answers the empty string (RFC 9051 leaves it to the server;
Dovecot and Cyrus do the same).

ENVELOPE (RFC 9051 section 7.5.2): the date, subject, message-id and in-reply-to are the
header values as written (unfolded); addresses are parsed; Sender and Reply-To default to
From; groups use the (NIL NIL "name" NIL) ... (NIL NIL NIL NIL) markers.
"""

from __future__ import annotations

import binascii
import re

from stalwart import _native

from . import encode
from .types import Section

_FOLD = re.compile(rb"\r?\n[ \t]")


class UnknownCTE(Exception):
    """BINARY of a part whose Content-Transfer-Encoding we cannot decode (RFC 3516)."""


def _unfold(value: bytes) -> bytes:
    return _FOLD.sub(b" ", value).strip()


class ImapMessage:
    """A parsed message with the views IMAP needs. Cheap to keep for a few recent mails."""

    __slots__ = ("raw", "msg")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.msg = _native.parse_message(raw)

    # ------------------------------------------------------------------ envelope
    def envelope(self, utf8: bool, msg=None) -> bytes:
        m = msg or self.msg

        def raw_header(name: str) -> bytes:
            value = m.header(name)
            if value is None:
                return b"NIL"
            return encode.string(_unfold(value), utf8)

        def addresses(field: str, fallback: str | None = None) -> bytes:
            try:
                groups = m.address_groups(field)
            except ValueError:
                groups = []
            if not any(boxes or name for name, boxes in groups) and fallback:
                return addresses(fallback)
            out: list[bytes] = []
            for group, boxes in groups:
                if group is not None:
                    out.append(b"(NIL NIL " + encode.text(group, utf8) + b" NIL)")
                for name, addr in boxes:
                    local, at, host = (addr or "").rpartition("@")
                    if not at:
                        local, host = addr or "", "MISSING_DOMAIN"
                    out.append(b"(" + encode.text(name, utf8) + b" NIL " +
                               encode.text(local, utf8) + b" " + encode.text(host, utf8) + b")")
                if group is not None:
                    out.append(b"(NIL NIL NIL NIL)")
            return b"(" + b"".join(out) + b")" if out else b"NIL"

        return b"(" + b" ".join([
            raw_header("Date"), raw_header("Subject"), addresses("from"),
            addresses("sender", "from"), addresses("reply-to", "from"), addresses("to"),
            addresses("cc"), addresses("bcc"), raw_header("In-Reply-To"),
            raw_header("Message-ID")]) + b")"

    # ------------------------------------------------------------------ bodystructure
    def bodystructure(self, extended: bool, utf8: bool) -> bytes:
        return self._structure(self.msg, 0, extended, utf8, 0)

    def _structure(self, m, index: int, extended: bool, utf8: bool, depth: int) -> bytes:
        p = m.part(index)
        if p.is_multipart:
            children = [self._structure(m, c, extended, utf8, depth) for c in p.children]
            if not children:  # an empty multipart still needs one body (RFC 9051 9)
                children = [b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)']
            out = b"(" + b"".join(children) + b" " + encode.string(p.subtype.upper(), utf8)
            if extended:
                out += b" " + encode.param_list(p.params, utf8) + b" " + \
                    self._disposition(p, utf8) + b" " + self._language(p, utf8) + b" " + \
                    encode.text(p.location, utf8)
            return out + b")"
        fields = [encode.string(p.content_type.upper(), utf8),
                  encode.string(p.subtype.upper(), utf8),
                  encode.param_list(p.params, utf8),
                  encode.text(p.content_id and f"<{p.content_id}>", utf8),
                  encode.text(p.description, utf8),
                  encode.string((p.encoding or "7bit").upper(), utf8),
                  str(p.size).encode()]
        nested = p.message if p.mime_type in ("message/rfc822", "message/global") else None
        if nested is not None and depth < 32:
            fields += [self.envelope(utf8, nested),
                       self._structure(nested, 0, extended, utf8, depth + 1),
                       str(p.lines).encode()]
        elif p.content_type == "text":
            fields.append(str(p.lines).encode())
        if extended:
            fields += [b"NIL", self._disposition(p, utf8), self._language(p, utf8),
                       encode.text(p.location, utf8)]
        return b"(" + b" ".join(fields) + b")"

    @staticmethod
    def _disposition(p, utf8: bool) -> bytes:
        if not p.disposition:
            return b"NIL"
        return b"(" + encode.string(p.disposition.upper(), utf8) + b" " + \
            encode.param_list(p.disposition_params, utf8) + b")"

    @staticmethod
    def _language(p, utf8: bool) -> bytes:
        langs = p.language
        if not langs:
            return b"NIL"
        return b"(" + b" ".join(encode.string(lang, utf8) for lang in langs) + b")"

    # ------------------------------------------------------------------ sections
    def _locate(self, path: tuple[int, ...]):
        """(message, part) addressed by ``path``; part None for the message itself;
        None when the path names no part."""
        m, part = self.msg, None
        for n in path:
            if part is None or (not part.is_multipart and part.message is not None):
                if part is not None:
                    m = part.message
                root = m.part(0)
                if root.is_multipart:
                    kids = root.children
                    if n > len(kids):
                        return None
                    part = m.part(kids[n - 1])
                elif n == 1:
                    part = root
                else:
                    return None
            elif part.is_multipart:
                kids = part.children
                if n > len(kids):
                    return None
                part = m.part(kids[n - 1])
            else:
                return None
        return m, part

    def section(self, section: Section) -> bytes:
        """The octets of BODY[section] (before any partial)."""
        found = self._locate(section.part)
        if found is None:
            return b""
        m, part = found
        raw = self.raw
        if section.text is None:
            if part is None:
                return raw
            return raw[part.body_start:part.body_end]
        if section.text == "MIME":
            return raw[part.header_start:part.body_start]
        if part is not None:
            if part.message is None or part.is_multipart:
                return b""
            m = part.message
        root = m.part(0)
        if section.text == "TEXT":
            return raw[root.body_start:m.end]
        if section.text == "HEADER":
            return raw[m.start:root.body_start]
        wanted = set(section.fields)
        keep = section.text == "HEADER.FIELDS"
        out = [raw[start:end] for name, start, _, end in m.headers
               if (name.upper() in wanted) == keep]
        return b"".join(out) + b"\r\n"

    def binary(self, path: tuple[int, ...]) -> bytes:
        """BINARY[path]: the part's content with its transfer encoding removed (RFC 3516).
        Raises UnknownCTE for an encoding we cannot undo."""
        found = self._locate(path)
        if found is None:
            return b""
        m, part = found
        if part is None:
            return self.raw
        body = self.raw[part.body_start:part.body_end]
        if part.is_multipart or part.message is not None and not path:
            return body
        cte = (part.encoding or "7bit").lower()
        if cte in ("7bit", "8bit", "binary"):
            return body
        if cte == "base64":
            try:
                return binascii.a2b_base64(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==")
            except binascii.Error:
                raise UnknownCTE("invalid base64 data") from None
        if cte == "quoted-printable":
            return binascii.a2b_qp(body)
        raise UnknownCTE(cte)

    # ------------------------------------------------------------------ search helpers
    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name``, unfolded, RFC 2047 decoded where possible."""
        from email.header import decode_header, make_header
        out = []
        upper = name.upper()
        for field, _, vstart, end in self.msg.headers:
            if field.upper() != upper:
                continue
            value = _unfold(self.raw[vstart:end]).decode("utf-8", "replace")
            try:
                value = str(make_header(decode_header(value)))
            except (ValueError, LookupError, UnicodeError):
                pass
            out.append(value)
        return out

    def address_text(self, field: str) -> str:
        """An address header as searchable text: names and addresses, decoded."""
        try:
            groups = self.msg.address_groups(field)
        except ValueError:
            return " ".join(self.header_values(field))
        parts = []
        for group, boxes in groups:
            if group:
                parts.append(group)
            for name, addr in boxes:
                parts.extend(x for x in (name, addr) if x)
        return " ".join(parts) or " ".join(self.header_values(field))

    def body_text(self) -> str:
        """The decoded text of every text part (RFC 9051 SEARCH BODY)."""
        out = []
        for index in range(len(self.msg)):
            p = self.msg.part(index)
            if p.is_text:
                value = self.msg.decoded_body(index)
                if isinstance(value, str):
                    out.append(value)
        return "\n".join(out)

    def header_text(self) -> str:
        return "\n".join(self.raw[s:e].decode("utf-8", "replace")
                         for _, s, _, e in self.msg.headers)

    @property
    def sent_date(self) -> int | None:
        return self.msg.date

    @property
    def preview(self) -> str:
        return self.msg.preview
