#!/usr/bin/env python3
"""smtpstages.py HOST:PORT N: smtp-source's exchange, timed step by step
from the client's side (BENCHMARKS.md, "One session, message by message").

N messages, one connection each, one after the other: connect and read the
banner, HELO, MAIL, RCPT, DATA, a 10 KiB body and its end, QUIT, and the
server closing the connection. Prints the median, p90 and mean of each
step and of the whole message, in milliseconds. The client's own time is
in every figure, the same for every server measured with it, so compare
servers in the same run (alternate them: the machine's load moves).
"""
import socket
import statistics
import sys
import time

STEPS = ["connect+220", "HELO", "MAIL", "RCPT", "DATA", "body+.", "QUIT", "close", "total"]


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        if line[3:4] != b"-":
            return line


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    body = b"From: <bench@client.test>\r\nTo: <user@sink.test>\r\nSubject: stages\r\n\r\n"
    while len(body) < 10240:
        body += b"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456\r\n"
    body += b".\r\n"
    cmds = (("HELO", b"HELO client.test\r\n"), ("MAIL", b"MAIL FROM:<bench@client.test>\r\n"),
            ("RCPT", b"RCPT TO:<user@sink.test>\r\n"), ("DATA", b"DATA\r\n"), ("body+.", body), ("QUIT", b"QUIT\r\n"))
    t = {s: [] for s in STEPS}
    for _ in range(n):
        t0 = time.perf_counter()
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        reply(f)
        t["connect+220"].append(time.perf_counter() - t0)
        for name, cmd in cmds:
            a = time.perf_counter()
            s.sendall(cmd)
            r = reply(f)
            t[name].append(time.perf_counter() - a)
            if r[:1] not in (b"2", b"3"):
                sys.exit("%s: %r" % (name, r))
        a = time.perf_counter()
        s.recv(1)
        s.close()
        b = time.perf_counter()
        t["close"].append(b - a)
        t["total"].append(b - t0)
    print("%-12s %8s %8s %8s" % ("step", "median", "p90", "mean"))
    for k in STEPS:
        v = sorted(t[k])
        print("%-12s %8.3f %8.3f %8.3f" % (k, v[len(v) // 2] * 1e3, v[int(len(v) * .9)] * 1e3, statistics.mean(v) * 1e3))


if __name__ == "__main__":
    main()
