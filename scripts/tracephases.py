#!/usr/bin/env python3
"""tracephases.py DUMP [--timeline N]: where one SMTP session's time goes,
from a Go execution trace of the server taken while smtp-source sent
messages one session at a time (BENCHMARKS.md, "One session, message by
message"). DUMP is the text of `go tool trace -d=parsed TRACE`; the trace
comes from the admin socket:

    curl --unix-socket DATA/admin.sock -o t.out 'http://sluice/debug/pprof/trace?seconds=4' &
    smtp-source -s 1 -m 300 -l 10240 -f bench@client.test -t user@sink.test 127.0.0.1:PORT
    go tool trace -d=parsed t.out > t.txt
    scripts/tracephases.py t.txt

It prints, as medians (p10, p90) over the sessions in the trace: accept4
returning to the banner written; the banner to the DATA body read and its
commit begun (the client's HELO, MAIL, RCPT, DATA and body included); the
commit to the 250 written (Badger's write, the group commit's fdatasyncs
and what is around them); the 250 to the connection closed (the client's
QUIT included); each fdatasync, and how long after the first of a commit's
two the second started (the wake of a second thread). Then the goroutine wake-ups a message, by
what the woken goroutine runs, and how long each session's goroutine was runnable but waited for a P
(another goroutine ran on the P it was queued on: the previous message's delivery, say). With --timeline N it prints every goroutine
state change from just before the Nth banner to the next one instead.
Trace times are the runtime's, so the tracer's own cost is in them (a few
per cent); compare runs taken the same way.
"""
import bisect
import collections
import re
import sys

RX = re.compile(r'M=(-?\d+) P=(-?\d+) G=(-?\d+) StateTransition Time=(\d+) (GoID|ProcID)=(-?\d+) (\S+) Reason="([^"]*)"')


def parse(path):
    """Events [time, M, P, id, transition, reason, transition stack, stack]."""
    ev, cur, mode = [], None, None
    with open(path) as f:
        for line in f:
            if line.startswith("M="):
                m = RX.match(line)
                mode = None
                cur = [int(m[4]), m[1], m[2], m[5] + m[6], m[7], m[8], [], []] if m else None
                if cur:
                    ev.append(cur)
            elif cur is not None:
                if line.startswith("TransitionStack="):
                    mode = 6
                elif line.startswith("Stack="):
                    mode = 7
                elif line.startswith("\t") and not line.startswith("\t\t") and mode:
                    cur[mode].append(line.strip().split(" @ ")[0])
    ev.sort(key=lambda e: e[0])
    return ev


def has(e, s):
    return any(s in x for x in e[6]) or any(s in x for x in e[7])


KINDS = [("session", "handleConn"), ("session", "smtpd.(*lineGuard)"), ("accept", "proxyListener"),
         ("accept", "acceptLoop"), ("accept", "connFeed"), ("accept", "startRDNS"),
         ("group commit", "groupSync"), ("group commit", "fdatasyncFile"),
         ("delivery", "delivery/remote"), ("delivery", "go-smtp.(*Client)"), ("queue", "core/queue"),
         ("badger", "badger"), ("filter", "core/filter")]
RANK = {k: i for i, (k, _) in enumerate(KINDS)}


def kinds(ev):
    kind = {}
    for e in ev:
        if not e[3].startswith("GoID"):
            continue
        for k, s in KINDS:
            if has(e, s):
                if e[3] not in kind or RANK[k] < RANK[kind[e[3]]]:
                    kind[e[3]] = k
                break
    return kind


def short(frames):
    boring = ("runtime.", "syscall.", "internal/", "sync.", "net.(*", "bufio.", "net/textproto", "golang.org/x/sys")
    for x in frames:
        if not x.startswith(boring):
            return (x.replace("github.com/sluice-mta/sluice/core/", "").replace("github.com/emersion/go-smtp.", "go-smtp.")
                    .replace("github.com/dgraph-io/badger/v4.", "badger."))
    return frames[0] if frames else ""


def stat(v):
    v = sorted(v)
    return "median %7.1f µs  p10 %7.1f  p90 %7.1f  (%d)" % (v[len(v) // 2] / 1e3, v[len(v) // 10] / 1e3,
                                                          v[len(v) * 9 // 10] / 1e3, len(v))


def main():
    ev = parse(sys.argv[1])
    greets = [e for e in ev if e[4] == "Running->Syscall" and has(e, "Conn).greet")]
    if len(greets) < 2:
        sys.exit("fewer than two SMTP banners in the trace")
    if len(sys.argv) > 3 and sys.argv[2] == "--timeline":
        n = int(sys.argv[3])
        t0, t1 = greets[n][0], greets[n + 1][0]
        print("µs from the banner write; P; goroutine; transition; reason; where")
        for e in ev:
            if t0 - 400000 <= e[0] <= t1:
                fr = e[6] or e[7]
                call = fr[0] if fr and e[4].endswith("Syscall") else ""
                print("%8.1f P%-2s %-10s %-22s %-10s %s %s" % ((e[0] - t0) / 1e3, e[2], e[3], e[4], e[5][:10], short(fr), call))
        return
    kind = kinds(ev)
    sess = collections.defaultdict(list)
    for e in ev:
        if kind.get(e[3]) == "session":
            sess[e[3]].append(e)
    ph = collections.defaultdict(list)
    for es in sess.values():
        t = {}
        for e in es:
            tr = e[4]
            if tr == "Running->Syscall" and has(e, "Conn).greet"):
                t.setdefault("greet", e[0])
            if tr == "Running->Waiting" and has(e, "(*request).Wait"):
                t.setdefault("commit", e[0])
            if tr == "Running->Syscall" and has(e, "writeReply") and "commit" in t and "r250" not in t:
                t["r250"] = e[0]
            if tr == "Running->Syscall" and has(e, "guardConn).Close"):
                t.setdefault("close", e[0])
        if len(t) == 4:
            ph["banner -> body read, commit begun"].append(t["commit"] - t["greet"])
            ph["commit begun -> 250 written"].append(t["r250"] - t["commit"])
            ph["250 written -> connection closed"].append(t["close"] - t["r250"])
            ph["banner -> connection closed"].append(t["close"] - t["greet"])
    gr = [e[0] for e in greets]
    for e in ev:
        if e[4] == "Running->Syscall" and has(e, "setNoDelay") and not has(e, "ial"):
            i = bisect.bisect(gr, e[0])
            if i < len(gr):
                ph["accept4 returned -> banner written"].append(gr[i] - e[0])
    last, spans = {}, []
    for e in ev:
        if not e[3].startswith("GoID"):
            continue
        if e[4] == "Running->Syscall" and has(e, "Fdatasync"):
            last[e[3]] = e[0]
        elif e[4].startswith("Syscall->") and e[3] in last:
            a = last.pop(e[3])
            ph["fdatasync, each"].append(e[0] - a)
            spans.append((a, e[0]))
    for es in sess.values():
        c = [e[0] for e in es if e[4] == "Running->Waiting" and has(e, "(*request).Wait")]
        r = [e[0] for e in es if e[4] == "Running->Syscall" and has(e, "writeReply") and c and e[0] > c[0]]
        if not c or not r:
            continue
        inside = [s for s in spans if s[0] >= c[0] and s[1] <= r[0]]
        if inside:
            span = max(s[1] for s in inside) - min(s[0] for s in inside)
            ph["  the fdatasyncs (first start to last end)"].append(span)
            ph["  the rest of commit -> 250"].append(r[0] - c[0] - span)
            starts = sorted(s[0] for s in inside)
            if len(starts) > 1:
                ph["  second fdatasync's start after the first's"].append(starts[1] - starts[0])
    order = ["accept4 returned -> banner written", "banner -> body read, commit begun", "commit begun -> 250 written",
             "  the fdatasyncs (first start to last end)", "  second fdatasync's start after the first's",
             "  the rest of commit -> 250", "250 written -> connection closed",
             "banner -> connection closed", "fdatasync, each"]
    for k in order:
        if ph[k]:
            print("%-44s %s" % (k, stat(ph[k])))
    n = len(ph["banner -> connection closed"]) or 1
    wk = collections.Counter(kind.get(e[3], "other") for e in ev if e[3].startswith("GoID") and e[4] == "Waiting->Runnable")
    print("goroutine wake-ups a message:", ", ".join("%s %.1f" % (k, v / n) for k, v in wk.most_common()),
          "; all %.1f" % (sum(wk.values()) / n))
    # How long a session's own goroutine (one whose stack, as it ran, held
    # go-smtp's handleConn) was runnable and waited for a P, a session.
    own = {e[3] for e in ev if e[3].startswith("GoID") and e[4].startswith("Running->") and any("handleConn" in x for x in e[7])}
    since, waited = {}, collections.defaultdict(int)
    for e in ev:
        if e[3] not in own:
            continue
        if e[4].endswith("->Runnable"):
            since[e[3]] = e[0]
        elif e[4] == "Runnable->Running" and e[3] in since:
            waited[e[3]] += e[0] - since.pop(e[3])
    if waited:
        w = list(waited.values())
        print("%-44s %s, mean %.1f" % ("a session runnable, waiting for a P", stat(w), sum(w) / len(w) / 1e3))


if __name__ == "__main__":
    main()
