#!/usr/bin/env python3
"""perfbuckets.py PERF.DATA N: a server's CPU by what it served, in ms a
message (N messages), from `perf record -g` (BENCHMARKS.md, "One session,
message by message"):

    perf record -F 2000 -g -o perf.data -p PID -- sleep 3 &
    smtp-source -s 1 -m 1000 -l 10240 -f bench@client.test -t user@sink.test 127.0.0.1:PORT
    scripts/perfbuckets.py perf.data 1000

Each sample goes to the first bucket whose pattern is in its call chain,
in the order below (a session's Badger write counts as the session's).
"""
import collections
import subprocess
import sys

RULES = [("session (go-smtp connection)", "go-smtp.(*Server).handleConn"),
         ("accept (listener, acceptLoop, feed, rDNS)", "acceptLoop"),
         ("accept (listener, acceptLoop, feed, rDNS)", "proxyListener"),
         ("accept (listener, acceptLoop, feed, rDNS)", "go-smtp.(*Server).Serve"),
         ("accept (listener, acceptLoop, feed, rDNS)", "startRDNS"),
         ("group commit (fdatasync)", "queue.(*groupSync)"), ("group commit (fdatasync)", "queue.fdatasync"),
         ("delivery (core/delivery/remote)", "delivery/remote"), ("queue (scheduler, workers)", "core/queue"),
         ("badger (write loop, watermarks)", "badger"), ("filter host", "core/filter"),
         ("go: GC", "gcBgMarkWorker"), ("go: sysmon", "runtime.sysmon"),
         ("go: scheduler (park, findRunnable, idle M)", "runtime.mcall"),
         ("go: scheduler (park, findRunnable, idle M)", "runtime.mstart"),
         ("go: scheduler (park, findRunnable, idle M)", "runtime.findRunnable")]


def main():
    data, n = sys.argv[1], int(sys.argv[2])
    out = subprocess.run(["perf", "script", "-i", data, "-F", "period,ip,sym"], capture_output=True, text=True,
                         check=True).stdout
    c, total = collections.Counter(), 0
    for s in out.split("\n\n"):
        lines = [x.strip() for x in s.strip().split("\n") if x.strip()]
        if not lines:
            continue
        try:
            period = int(lines[0].split()[0])
        except ValueError:
            continue
        chain = " | ".join(lines)
        c[next((b for b, p in RULES if p in chain), "other")] += period
        total += period
    for k, v in c.most_common():
        print("%-44s %5.1f%%  %.3f ms a message" % (k, 100 * v / total, v / 1e6 / n))
    print("%-44s         %.3f ms a message" % ("all samples", total / 1e6 / n))


if __name__ == "__main__":
    main()
