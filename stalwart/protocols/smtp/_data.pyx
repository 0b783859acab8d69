# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Receivers of SMTP message content: DATA (RFC 5321 4.5.2) and BDAT chunks (RFC 3030).

Theory of operation
-------------------
Sans-IO, like the rest of ``stalwart.protocols``: the session adapter feeds the bytes it
read, in whatever pieces the socket produced, and gets back either ``NEED_DATA`` or, once
the message is complete, the bytes that followed it (pipelined commands, RFC 2920), which
go back to the command line reader. Work is O(n) over the whole message: each input octet
is looked at once, whatever the chunking, and nothing is searched twice.

``DataReceiver(sink, *, max_size=None, bare_newline="reject")`` reads the content after
``354``. It starts at the beginning of a line (the DATA command's CRLF precedes it), so
``".\\r\\n"`` at once is an empty message.

- Transparency (RFC 5321 4.5.2): when the first octet of a line is ``"."`` and the line has
  more on it, that dot is removed (``..x`` -> ``.x``, and also ``.x`` -> ``x``).
- End of data: the line ``"."``, i.e. the sequence ``<CRLF>.<CRLF>``, and nothing else.
  The CRLF before the dot belongs to the message; the ``.<CRLF>`` does not.

``BdatReceiver(sink, *, max_size=None, bare_newline="reject")`` assembles the message of a
BDAT sequence: ``start_chunk(size, last)`` after each ``BDAT size [LAST]`` command, then
``feed`` until the chunk is complete. It takes exactly ``size`` octets (no dot-stuffing,
RFC 3030 2) and returns the rest. The policies below apply to the assembled message: a CR
at the end of one chunk and an LF at the start of the next are one CRLF.

SMTP smuggling (SEC Consult, December 2023; CVE-2023-51764/5/6)
---------------------------------------------------------------
Smuggling works when two servers disagree on where a message ends: the outbound server
passes ``<LF>.<LF>`` or ``<CR>.<CR>`` through as content, the inbound one takes it for the
end and runs the bytes after it as new commands with a forged sender. This receiver closes
it from both sides:

1. Only ``<CRLF>.<CRLF>`` ends the message. ``<LF>.<LF>``, ``<CR>.<CR>``, ``<LF>.<CRLF>``,
   ``<CRLF>.<LF>`` and every other mix are content: the bytes after them are never
   returned as commands.
2. A bare LF (not preceded by CR) or a bare CR (not followed by LF) is never stored as is
   under the defaults, so such a sequence cannot reach the next hop either. The
   ``bare_newline`` policy says what happens instead:

   ``"reject"`` (default, Postfix ``smtpd_forbid_bare_newline = yes`` since 3.9, Sendmail
       8.18, Exim 4.97 refuse likewise): the message is read to its real end and then refused;
       ``error`` is ``550 5.6.0``. Lines must end with CRLF (RFC 5321 2.3.8), and a client
       that sends bare newlines is either broken or probing. The stored bytes (which the
       server throws away) keep the octets as received.
   ``"normalize"``: each bare LF and each bare CR is stored as CRLF and the message is
       accepted; for sites that must take mail from broken clients. Normalising happens
       after framing: a bare newline never ends the message and does not begin a line for
       the transparency rule (a dot after a bare LF is kept), because only CRLF is a line
       break on the wire. A stored ``\\r\\n.\\r\\n`` made this way is dot-stuffed again by
       our SMTP client when relayed, so the next hop sees content, not an end.
   ``"allow"`` (``BdatReceiver`` only): octets are stored as received, for BODY=BINARYMIME
       (RFC 3030 3), where CR and LF are ordinary data. Refused by ``DataReceiver``: DATA
       cannot carry binary content, and storing bare newlines from DATA is what lets a
       message be smuggled to the next hop.

   Bare LF and bare CR octets are counted (``bare_lf_count``, ``bare_cr_count``) under
   every policy, and the counts can be read while the data is still arriving, so a server
   may hang up at once instead of reading to the end.

Size limit (RFC 1870 SIZE)
--------------------------
``size`` is the length of the message as it would be stored: after dot-unstuffing and
normalising, with CRLF line ends. It keeps counting past ``max_size``, but storage stops:
the sink receives exactly the first ``min(size, max_size)`` octets of the message. After
the end, ``size_exceeded`` tells the server to answer ``552 5.3.4`` (RFC 5321 4.5.3.1.10,
RFC 3463 5.3.4); reading to the end keeps the session in step with the client.

Output: the sink
----------------
The message is appended to ``sink``: a ``bytearray`` (the receiver writes into it in place,
no intermediate copies) or any object with ``write(bytes)`` that writes everything it is
given, such as an open blob file (``io.BufferedWriter``) so big messages stream to disk.
Each ``feed`` makes at most one ``write`` call, with a new ``bytes`` object the sink may
keep. If the sink raises, the exception propagates and the receiver refuses further use
(``LocalProtocolError``): part of the message is lost and the transaction must fail.

Reported facts (readable at any time, final once ``done``)
----------------------------------------------------------
``size``, ``size_exceeded``, ``header_size`` (octets up to and including the empty line
that ends the header section, RFC 5322 2.1; the whole message when there is no empty
line), ``body_size``, ``bare_lf_count``, ``bare_cr_count``, ``nul_count`` (RFC 5322 and
RFC 6152 forbid NUL outside BINARYMIME), ``eight_bit_count`` (octets >= 0x80: 8BITMIME or
SMTPUTF8 needed, RFC 6152), and ``error``: ``None`` or the ``RemoteProtocolError`` to
answer with (size first, then bare newlines). Policy about NUL and 8-bit octets belongs to
the session, which knows what MAIL FROM declared.

Invariants
----------
- ``feed`` never raises for any content: every octet sequence is a message. It raises
  ``TypeError`` for a non-buffer argument, ``LocalProtocolError`` when called after the end
  or after a sink failure, and whatever the sink raises.
- The result does not depend on how the input is split into ``feed`` calls.
- The stored message never contains a bare CR or bare LF unless the policy is ``"allow"``
  or ``"reject"`` (where the message is refused), or the size limit cut it (refused too).
- ``stalwart.protocols.smtp.data_ref`` implements the same contract in plain Python; the
  differential tests hold the two to identical output and facts.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Check, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from stalwart.protocols.base import NEED_DATA, LocalProtocolError, RemoteProtocolError

__all__ = ["DataReceiver", "BdatReceiver", "REPLY_SIZE_EXCEEDED", "REPLY_BARE_NEWLINE"]

#: RFC 1870 6.1 / RFC 5321 4.5.3.1.10 with RFC 3463 5.3.4 "message too big for system".
REPLY_SIZE_EXCEEDED = "552 5.3.4"
#: RFC 5321 2.3.8: lines end with CRLF only; a message with bare CR or LF is refused
#: (RFC 3463 5.6.0, "other or undefined media error"), as Postfix does since 3.9.
REPLY_BARE_NEWLINE = "550 5.6.0"

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef enum:
    CR = 13
    LF = 10
    DOT = 46

# Octet classes for the scanning loop: 0 ordinary, 1 CR or LF, 2 NUL, 3 >= 0x80.
cdef enum:
    K_PLAIN = 0
    K_NEWLINE = 1
    K_NUL = 2
    K_HIGH = 3

cdef unsigned char KIND[256]
cdef int _k
for _k in range(256):
    KIND[_k] = K_HIGH if _k >= 0x80 else K_PLAIN
KIND[CR] = K_NEWLINE
KIND[LF] = K_NEWLINE
KIND[0] = K_NUL

# DATA parser states. LINE_START: after a CRLF or at the start; DOT_HELD: a line began with
# "." (held back: removed unless the line is exactly "."); DOT_CR: "." then CR at a line
# start (LF next ends the message); CR_HELD: a CR held until we know whether LF follows;
# MID: anywhere else.
cdef enum:
    S_MID = 0
    S_LINE_START = 1
    S_CR_HELD = 2
    S_DOT_HELD = 3
    S_DOT_CR = 4
    S_DONE = 5

# Header-end search on the output: 0 nothing, 1 CR, 2 CRLF (or the start), 3 CRLF CR.
cdef enum:
    H_NONE = 0
    H_CR = 1
    H_CRLF = 2
    H_CRLFCR = 3

cdef enum:
    P_REJECT = 0
    P_NORMALIZE = 1
    P_ALLOW = 2

_POLICY = {"reject": P_REJECT, "normalize": P_NORMALIZE, "allow": P_ALLOW}

# The largest output one feed of n octets can produce: each octet at most 2 (a bare newline
# stored as CRLF), plus at most 2 octets held over from the previous feed (".", CR).
cdef inline Py_ssize_t _worst_case(Py_ssize_t n) noexcept:
    return 2 * n + 4


cdef struct Out:
    unsigned char* buf       # where this feed's stored octets go
    Py_ssize_t len           # octets written to buf during this feed
    Py_ssize_t size          # octets of the message so far, also past the limit
    Py_ssize_t stored        # octets handed to the sink (<= limit)
    Py_ssize_t limit         # max_size, or PY_SSIZE_T_MAX
    Py_ssize_t header_size   # -1 until the empty line has been seen
    int hstate
    bint normalize
    Py_ssize_t bare_lf
    Py_ssize_t bare_cr
    Py_ssize_t nul
    Py_ssize_t eight_bit


cdef inline void _store(Out* o, const unsigned char* s, Py_ssize_t k) noexcept:
    cdef Py_ssize_t room = o.limit - o.stored
    o.size += k
    if room <= 0:
        return
    if k > room:
        k = room
    memcpy(o.buf + o.len, s, k)
    o.len += k
    o.stored += k


cdef inline void _put_run(Out* o, const unsigned char* s, Py_ssize_t k) noexcept:
    """Octets that are neither CR nor LF (counted by the caller)."""
    if k <= 0:
        return
    if o.header_size < 0:
        o.hstate = H_NONE
    _store(o, s, k)


cdef inline void _put_byte(Out* o, unsigned char c) noexcept:
    """A CR or an LF (nothing else): stored, and fed to the header-end search."""
    cdef int h
    o.size += 1
    if o.header_size < 0:
        h = o.hstate
        if c == CR:
            o.hstate = H_CRLFCR if h == H_CRLF else H_CR
        else:
            if h == H_CRLFCR:
                o.header_size = o.size
            o.hstate = H_CRLF if h == H_CR else H_NONE
    if o.stored < o.limit:
        o.buf[o.len] = c
        o.len += 1
        o.stored += 1


cdef inline void _crlf(Out* o) noexcept:
    _put_byte(o, CR)
    _put_byte(o, LF)


cdef inline void _bare_lf(Out* o) noexcept:
    o.bare_lf += 1
    if o.normalize:
        _put_byte(o, CR)
    _put_byte(o, LF)


cdef inline void _bare_cr(Out* o) noexcept:
    o.bare_cr += 1
    _put_byte(o, CR)
    if o.normalize:
        _put_byte(o, LF)


# Word-at-a-time filter (the "has a zero byte" trick): a 64-bit word of ordinary octets
# (none of CR, LF, NUL or >= 0x80) is skipped with a few arithmetic operations instead of
# eight table look-ups. Any word that might hold one of them goes through the exact
# octet-by-octet loop, so the filter only has to be free of false negatives.
cdef extern from *:
    """
    #define STW_ONES  0x0101010101010101ULL
    #define STW_HIGHS 0x8080808080808080ULL
    #define STW_CRS   0x0D0D0D0D0D0D0D0DULL
    #define STW_LFS   0x0A0A0A0A0A0A0A0AULL
    """
    const uint64_t W_ONES "STW_ONES"
    const uint64_t W_HIGHS "STW_HIGHS"
    const uint64_t W_CRS "STW_CRS"
    const uint64_t W_LFS "STW_LFS"


cdef inline bint _word_is_plain(const unsigned char* p) noexcept:
    cdef uint64_t v = 0, c, l
    memcpy(&v, p, 8)
    c = v ^ W_CRS
    l = v ^ W_LFS
    return ((((v - W_ONES) & ~v) | ((c - W_ONES) & ~c) | ((l - W_ONES) & ~l) | v)
            & W_HIGHS) == 0


cdef inline Py_ssize_t _scan(Out* o, const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Index of the first CR or LF in p[i:n] (or n), counting NUL and 8-bit octets."""
    cdef unsigned char k
    cdef Py_ssize_t high = 0, nul = 0, stop
    while i < n:
        while i + 8 <= n and _word_is_plain(p + i):
            i += 8
        stop = i + 8 if i + 8 < n else n
        while i < stop:
            k = KIND[p[i]]
            if k == K_PLAIN:
                i += 1
            elif k == K_NEWLINE:
                o.eight_bit += high
                o.nul += nul
                return i
            elif k == K_HIGH:
                high += 1
                i += 1
            else:
                nul += 1
                i += 1
    o.eight_bit += high
    o.nul += nul
    return n


cdef class _Receiver:
    """Sink handling, size limit, counters and policy shared by DATA and BDAT."""

    cdef Out _o
    cdef object _sink
    cdef bint _sink_is_bytearray
    cdef Py_ssize_t _sink_base       # bytearray length before this feed's reservation
    cdef unsigned char* _scratch     # output buffer for write() sinks
    cdef Py_ssize_t _scratch_cap
    cdef int _policy
    cdef object _max_size
    cdef readonly bint done
    cdef bint _broken

    def __cinit__(self):
        self._scratch = NULL
        self._scratch_cap = 0

    def __dealloc__(self):
        PyMem_Free(self._scratch)

    cdef _setup(self, sink, max_size, str bare_newline, tuple allowed):
        if bare_newline not in allowed:
            raise ValueError(f"bare_newline must be one of {', '.join(allowed)}, "
                             f"not {bare_newline!r}")
        if max_size is not None and (
                isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            raise ValueError("max_size must be a non-negative int or None")
        if PyByteArray_Check(sink):
            self._sink_is_bytearray = True
        elif callable(getattr(sink, "write", None)):
            self._sink_is_bytearray = False
        else:
            raise TypeError("sink must be a bytearray or have a write(bytes) method")
        self._sink = sink
        self._policy = _POLICY[bare_newline]
        self._max_size = max_size
        self._o.buf = NULL
        self._o.len = 0
        self._o.size = 0
        self._o.stored = 0
        self._o.limit = PY_SSIZE_T_MAX if max_size is None or max_size > PY_SSIZE_T_MAX else max_size
        self._o.header_size = -1
        self._o.hstate = H_CRLF
        self._o.normalize = self._policy == P_NORMALIZE
        self._o.bare_lf = 0
        self._o.bare_cr = 0
        self._o.nul = 0
        self._o.eight_bit = 0
        self.done = False
        self._broken = False

    # ------------------------------------------------------------------ output
    cdef int _check_usable(self) except -1:
        if self._broken:
            raise LocalProtocolError("receiver is unusable after its sink failed")
        if self.done:
            raise LocalProtocolError(
                "the message is complete; feed the rest to the command reader")
        return 0

    cdef int _begin(self, Py_ssize_t n) except -1:
        """Reserve room for the output of n input octets (never more than the limit allows)."""
        cdef Py_ssize_t need = _worst_case(n)
        cdef Py_ssize_t room = self._o.limit - self._o.stored
        cdef void* grown
        if need > room:
            need = room
        self._o.len = 0
        if self._sink_is_bytearray:
            self._sink_base = PyByteArray_GET_SIZE(self._sink)
            if need > 0:
                PyByteArray_Resize(self._sink, self._sink_base + need)
            self._o.buf = <unsigned char*>PyByteArray_AS_STRING(self._sink) + self._sink_base
        else:
            if need > self._scratch_cap:
                grown = PyMem_Realloc(self._scratch, need)
                if grown == NULL:
                    raise MemoryError()
                self._scratch = <unsigned char*>grown
                self._scratch_cap = need
            self._o.buf = self._scratch
        return 0

    cdef int _end(self) except -1:
        """Hand this feed's output to the sink."""
        cdef Py_ssize_t produced = self._o.len
        self._o.buf = NULL
        try:
            if self._sink_is_bytearray:
                if PyByteArray_GET_SIZE(self._sink) != self._sink_base + produced:
                    PyByteArray_Resize(self._sink, self._sink_base + produced)
            elif produced > 0:
                self._sink.write(PyBytes_FromStringAndSize(<char*>self._scratch, produced))
        except BaseException:
            self._broken = True
            raise
        return 0

    # ------------------------------------------------------------------ facts
    @property
    def max_size(self):
        """The limit given at construction (``None``: no limit)."""
        return self._max_size

    @property
    def bare_newline(self):
        """The policy for bare CR and bare LF: ``"reject"``, ``"normalize"`` or ``"allow"``."""
        return ("reject", "normalize", "allow")[self._policy]

    @property
    def size(self):
        """Octets of the message as stored (CRLF ends, unstuffed), counted past the limit."""
        return self._o.size

    @property
    def size_exceeded(self):
        """True when the message is longer than ``max_size``: answer 552 5.3.4."""
        return self._o.size > self._o.limit

    @property
    def header_size(self):
        """Octets up to and including the empty line after the header section."""
        return self._o.header_size if self._o.header_size >= 0 else self._o.size

    @property
    def body_size(self):
        """Octets after the empty line that ends the header section."""
        return self._o.size - self.header_size

    @property
    def bare_lf_count(self):
        """LF octets not preceded by CR."""
        return self._o.bare_lf

    @property
    def bare_cr_count(self):
        """CR octets not followed by LF."""
        return self._o.bare_cr

    @property
    def nul_count(self):
        """NUL octets in the content."""
        return self._o.nul

    @property
    def eight_bit_count(self):
        """Octets >= 0x80 in the content."""
        return self._o.eight_bit

    @property
    def error(self):
        """``None``, or the ``RemoteProtocolError`` to answer with after the end of data."""
        if self._o.size > self._o.limit:
            return RemoteProtocolError(
                f"message exceeds the maximum size of {self._max_size} octets",
                REPLY_SIZE_EXCEEDED)
        if self._policy == P_REJECT and (self._o.bare_lf or self._o.bare_cr):
            return RemoteProtocolError(
                "message contains a bare CR or LF; lines must end with CRLF",
                REPLY_BARE_NEWLINE)
        return None


cdef class DataReceiver(_Receiver):
    """The message after DATA: dot-unstuffed, ended only by ``<CRLF>.<CRLF>``.

    ``feed(data)`` returns ``NEED_DATA`` until the end of data has been read, then the
    octets that followed it (``b""`` if none).
    """

    cdef int _state

    def __init__(self, sink, *, max_size=None, str bare_newline="reject"):
        self._setup(sink, max_size, bare_newline, ("reject", "normalize"))
        self._state = S_LINE_START

    def feed(self, data):
        """Take the next bytes from the peer; ``NEED_DATA`` or the bytes after the end."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t i = 0, j, n
        cdef int st
        cdef unsigned char c
        cdef Out* o = &self._o
        self._check_usable()
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            p = <const unsigned char*>view.buf
            n = view.len
            self._begin(n)
            st = self._state
            while i < n:
                if st == S_MID:
                    j = _scan(o, p, i, n)
                    _put_run(o, p + i, j - i)
                    if j == n:
                        i = n
                        break
                    if p[j] == CR:
                        st = S_CR_HELD
                    else:
                        _bare_lf(o)
                    i = j + 1
                    continue
                c = p[i]
                if st == S_LINE_START:
                    if c == DOT:
                        st = S_DOT_HELD
                    elif c == CR:
                        st = S_CR_HELD
                    elif c == LF:
                        _bare_lf(o)
                        st = S_MID
                    else:
                        st = S_MID
                        continue
                    i += 1
                elif st == S_CR_HELD:
                    if c == LF:
                        _crlf(o)
                        st = S_LINE_START
                        i += 1
                    elif c == CR:
                        _bare_cr(o)
                        i += 1
                    else:
                        _bare_cr(o)
                        st = S_MID
                elif st == S_DOT_HELD:
                    # RFC 5321 4.5.2: the leading dot of a line with more on it is removed.
                    if c == CR:
                        st = S_DOT_CR
                        i += 1
                    elif c == LF:
                        _bare_lf(o)
                        st = S_MID
                        i += 1
                    else:
                        st = S_MID
                else:  # S_DOT_CR: "<CRLF>.<CR>" so far
                    if c == LF:
                        i += 1
                        st = S_DONE
                        break
                    _bare_cr(o)
                    if c == CR:
                        st = S_CR_HELD
                        i += 1
                    else:
                        st = S_MID
            self._state = st
            if st == S_DONE:
                self.done = True
            self._end()
            if self.done:
                return PyBytes_FromStringAndSize(<const char*>p + i, n - i)
            return NEED_DATA
        finally:
            PyBuffer_Release(&view)


cdef class BdatReceiver(_Receiver):
    """The message of a BDAT sequence (RFC 3030): chunks of announced length.

    After each ``BDAT size [LAST]``: ``start_chunk(size, last)``, then ``feed(data)`` until
    it returns the octets beyond the chunk instead of ``NEED_DATA``. ``done`` is true once
    the LAST chunk is complete.
    """

    cdef Py_ssize_t _remaining
    cdef bint _in_chunk
    cdef bint _last
    cdef bint _cr_held
    cdef readonly Py_ssize_t chunks

    def __init__(self, sink, *, max_size=None, str bare_newline="reject"):
        self._setup(sink, max_size, bare_newline, ("reject", "normalize", "allow"))
        self._remaining = 0
        self._in_chunk = False
        self._last = False
        self._cr_held = False
        self.chunks = 0

    @property
    def in_chunk(self):
        """True between ``start_chunk`` and the chunk's last octet."""
        return self._in_chunk

    @property
    def chunk_remaining(self):
        """Octets of the open chunk not received yet."""
        return self._remaining

    def start_chunk(self, size, last=False):
        """Open the chunk announced by ``BDAT size [LAST]``."""
        if self._broken:
            raise LocalProtocolError("receiver is unusable after its sink failed")
        if self.done:
            raise LocalProtocolError("BDAT after the LAST chunk")
        if self._in_chunk:
            raise LocalProtocolError("BDAT chunk started while another is open")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("chunk size must be a non-negative int")
        if size > PY_SSIZE_T_MAX:
            raise ValueError("chunk size is too large")
        self._remaining = size
        self._last = bool(last)
        self._in_chunk = True
        self.chunks += 1

    def feed(self, data):
        """Take the next bytes from the peer; ``NEED_DATA`` or the bytes after the chunk."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t i = 0, j, n, take
        cdef bint cr
        cdef unsigned char c
        cdef Out* o = &self._o
        self._check_usable()
        if not self._in_chunk:
            raise LocalProtocolError("feed() without an open BDAT chunk")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            p = <const unsigned char*>view.buf
            n = view.len
            take = n if n < self._remaining else self._remaining
            self._begin(take)
            cr = self._cr_held
            while i < take:
                if cr:
                    cr = False
                    c = p[i]
                    if c == LF:
                        _crlf(o)
                        i += 1
                        continue
                    _bare_cr(o)
                    if c == CR:
                        cr = True
                        i += 1
                    continue
                j = _scan(o, p, i, take)
                _put_run(o, p + i, j - i)
                if j == take:
                    break
                if p[j] == CR:
                    cr = True
                else:
                    _bare_lf(o)
                i = j + 1
            self._remaining -= take
            if self._remaining == 0:
                self._in_chunk = False
                if self._last:
                    if cr:
                        _bare_cr(o)
                        cr = False
                    self.done = True
            self._cr_held = cr
            self._end()
            if self._in_chunk:
                return NEED_DATA
            return PyBytes_FromStringAndSize(<const char*>p + take, n - take)
        finally:
            PyBuffer_Release(&view)
