"""The dnspython backend against a small DNS server on loopback (UDP and TCP, port 27053):
the AD bit becomes ``secure``, NXDOMAIN/NODATA with the SOA's negative TTL, a TXT set too
large for UDP arrives over TCP after TC, SERVFAIL and garbage become TempFail, and the
configured ``ip:port`` nameserver is the one asked."""

from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from stalwart.dns import DnspythonBackend, NoData, NxDomain, Resolver, TempFail

PORT = 27053
SOA = "ns.test. hostmaster.test. 1 3600 600 86400 120"
BIG_TXT = ['"' + ("k" * 250) + '"'] * 12          # ~3 KB in one record: over 1232 octets


class ZoneServer:
    """Answers from a table; records which transport each question came over."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def answer(self, wire: bytes, tcp: bool) -> bytes:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        self.seen.append((name, rdtype, "tcp" if tcp else "udp"))
        if name == "garbage.test":
            return wire[:2] + b"\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00junk"
        resp = dns.message.make_response(query)
        resp.flags &= ~dns.flags.AD
        if name == "servfail.test":
            resp.set_rcode(dns.rcode.SERVFAIL)
        elif name == "missing.test":
            resp.set_rcode(dns.rcode.NXDOMAIN)
            resp.authority.append(dns.rrset.from_text("test.", 900, "IN", "SOA", SOA))
        elif name == "signed.test" and rdtype == "MX":
            resp.answer.append(dns.rrset.from_text(q.name, 300, "IN", "MX",
                                                   "10 mx.signed.test."))
            if query.flags & dns.flags.AD:
                resp.flags |= dns.flags.AD
        elif name == "signed.test":
            resp.authority.append(dns.rrset.from_text("test.", 900, "IN", "SOA", SOA))
        elif name == "big.test" and rdtype == "TXT":
            resp.answer.append(dns.rrset.from_text(q.name, 300, "IN", "TXT", " ".join(BIG_TXT)))
        else:
            resp.set_rcode(dns.rcode.REFUSED)
        out = resp.to_wire(max_size=65535)
        if not tcp and len(out) > 1232:
            resp.answer.clear()
            resp.flags |= dns.flags.TC
            out = resp.to_wire()
        return out


class Udp(asyncio.DatagramProtocol):
    def __init__(self, server: ZoneServer) -> None:
        self.server = server

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        self.transport.sendto(self.server.answer(data, False), addr)


async def handle_tcp(server: ZoneServer, reader, writer) -> None:
    try:
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            out = server.answer(await reader.readexactly(length), True)
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def with_server(body):
    async def main():
        server = ZoneServer()
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(lambda: Udp(server),
                                                     local_addr=("127.0.0.1", PORT))
        tcp = await asyncio.start_server(lambda r, w: handle_tcp(server, r, w),
                                         "127.0.0.1", PORT)
        try:
            backend = DnspythonBackend([f"127.0.0.1:{PORT}"], timeout=1.0, lifetime=2.0)
            return await body(Resolver(backend), server)
        finally:
            udp.close()
            tcp.close()
            await tcp.wait_closed()
    return asyncio.run(main())


def test_ad_bit_becomes_secure_and_mx_parses():
    async def body(r, server):
        mx = await r.mx_hosts("signed.test")
        assert mx.secure and [h.host for h in mx.hosts] == ["mx.signed.test"]
        assert server.seen[0] == ("signed.test", "MX", "udp")
    with_server(body)


def test_nxdomain_and_nodata_carry_the_soa_negative_ttl():
    async def body(r, server):
        with pytest.raises(NxDomain) as nx:
            await r.a("missing.test")
        assert nx.value.ttl == 120               # min(SOA TTL 900, MINIMUM 120)
        with pytest.raises(NoData) as nodata:
            await r.txt("signed.test")
        assert nodata.value.ttl == 120
        # Both are cached: asking again sends nothing.
        before = len(server.seen)
        with pytest.raises(NxDomain):
            await r.a("missing.test")
        assert len(server.seen) == before
    with_server(body)


def test_truncated_udp_answer_is_asked_again_over_tcp():
    async def body(r, server):
        txt = await r.txt("big.test")
        assert txt.records == ("k" * 3000,)
        assert [s[2] for s in server.seen if s[0] == "big.test"] == ["udp", "tcp"]
    with_server(body)


def test_servfail_and_garbage_are_temporary():
    async def body(r, server):
        with pytest.raises(TempFail):
            await r.a("servfail.test")
        with pytest.raises(TempFail):
            await r.a("garbage.test")
        with pytest.raises(TempFail):         # REFUSED from the only server
            await r.a("unknown.test")
    with_server(body)


def test_unreachable_nameserver_is_a_timeout():
    async def main():
        r = Resolver(DnspythonBackend(["127.0.0.1:27054"], timeout=0.2, lifetime=0.5))
        with pytest.raises(TempFail):
            await r.a("anything.test")
    asyncio.run(main())
