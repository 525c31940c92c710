#!/usr/bin/env python3
"""benchdns.py PORT: the DNS server of `make bench` (scripts/bench.sh).

It answers every query on 127.0.0.1:PORT (UDP) with NXDOMAIN and an SOA
record whose minimum TTL is an hour, so sluice's resolver caches the
answer (RFC 2308) and the client's reverse lookup and the sender's SPF
lookup cost one query a run, not a query a message to whatever resolver
the machine has: under load that one dropped a packet now and then, and a
session waited out its 2 s reverse-DNS budget. Postfix resolves 127.0.0.1
from /etc/hosts, so neither server waits for the network.
"""
import socket
import struct
import sys


def answer(q):
    if len(q) < 12:
        return None
    ident, flags = struct.unpack("!HH", q[:4])
    # The question: labels up to the zero byte, then type and class.
    i = 12
    while i < len(q) and q[i] != 0:
        i += q[i] + 1
    question = q[12:i + 5]
    rd = flags & 0x0100
    head = struct.pack("!HHHHHH", ident, 0x8000 | rd | 0x0080 | 3, 1, 0, 1, 0)
    # SOA for the root zone: mname ".", rname ".", serial, refresh, retry,
    # expire, minimum (the negative TTL).
    rdata = b"\x00\x00" + struct.pack("!IIIII", 1, 3600, 600, 86400, 3600)
    soa = b"\x00" + struct.pack("!HHIH", 6, 1, 3600, len(rdata)) + rdata
    return head + question + soa


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    while True:
        q, addr = s.recvfrom(4096)
        a = answer(q)
        if a:
            s.sendto(a, addr)


if __name__ == "__main__":
    main()
