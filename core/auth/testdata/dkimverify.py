"""Verify the DKIM signatures of the message on standard input with Debian's
python3-dkim, asking the loopback test DNS server HOST:PORT given as the only
argument. Exit status 0: every signature verified; 1: one did not."""

import sys

import dkim
import dns.resolver


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [host]
    res.port = int(port)
    # python3-dkim asks dns.resolver.query, which uses the default resolver.
    dns.resolver.default_resolver = res
    msg = sys.stdin.buffer.read()
    d = dkim.DKIM(msg)
    n = msg.count(b"\nDKIM-Signature:") + msg.startswith(b"DKIM-Signature:")
    ok = n > 0
    for i in range(n):
        if not d.verify(idx=i):
            print("signature", i, "did not verify", file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


main()
