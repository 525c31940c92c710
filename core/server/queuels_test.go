package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// msgLines returns the queue IDs of `sluice queue ls` output, in order.
func msgLines(out string) []string {
	var ids []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && regexp.MustCompile(`^[0-9A-Z]{16}$`).MatchString(f[0]) {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// TestQueueLsPagesAndStats drives `sluice queue ls` with its paging and
// filter flags and `sluice queue stats` against the real server over its
// admin socket, with mail deferred because the mailbox server is down.
func TestQueueLsPagesAndStats(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.LocalDomains = append(cfg.LocalDomains, "a.test", "b.test")
	cfg.Local.Transport = "lmtp"
	cfg.Local.LMTP = reserveAddr(t)
	cfg.Queue.MinBackoff = cfgDuration(time.Hour)
	cfg.Queue.MaxBackoff = cfgDuration(time.Hour)
	s := start(t, cfg)
	sock := "--socket=" + cfg.Admin.Socket
	send := func(from string, rcpts ...string) string {
		return servertest.MustSend(t, s.addr, from, rcpts, servertest.Message(from, rcpts[0], "hi", "body\r\n"))
	}
	a1 := send("s1@localhost", "alice@a.test")
	a2 := send("s1@localhost", "alice@a.test")
	b1 := send("S2@localhost", "bob@b.test")
	ab := send("s1@localhost", "carol@a.test", "bob@b.test")
	bounce := send("", "alice@a.test")
	held := send("s2@localhost", "dave@b.test")
	all := []string{a1, a2, b1, ab, bounce, held}
	for _, id := range all {
		waitAttempted(t, s, id)
	}
	mustCLI(t, "queue", "hold", sock, held)

	ls := func(args ...string) []string {
		t.Helper()
		return msgLines(mustCLI(t, append([]string{"queue", "ls", sock}, args...)...))
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, all},
		{[]string{"--limit", "2"}, all[:2]},
		{[]string{"--after", a2, "--limit", "2"}, []string{b1, ab}},
		{[]string{"--after", held}, nil},
		{[]string{"--state", "held"}, []string{held}},
		{[]string{"--state", "deferred"}, all[:5]},
		{[]string{"--state", "queued"}, nil},
		{[]string{"--sender", "s2@LOCALHOST"}, []string{b1, held}},
		{[]string{"--sender", "<>"}, []string{bounce}},
		{[]string{"--rcpt", "bob@b.test"}, []string{b1, ab}},
		{[]string{"--domain", "A.TEST"}, []string{a1, a2, ab, bounce}},
		{[]string{"--domain", "b.test", "--state", "deferred", "--limit", "1"}, []string{b1}},
	} {
		if got := ls(tc.args...); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("queue ls %s: %v, want %v", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	out := mustCLI(t, "queue", "ls", sock, "--limit", "1")
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "deferred") || !strings.Contains(out, "4.4.1") ||
		!strings.HasSuffix(out, "-- 1 message(s)\n") {
		t.Errorf("queue ls --limit 1:\n%s", out)
	}
	if out, err := sluiceCLI(t, "queue", "ls", sock, "--state", "active"); err == nil || !strings.Contains(out, `unknown state "active"`) {
		t.Errorf("queue ls --state active: err=%v\n%s", err, out)
	}

	// stats: five deferred, one held; pending recipients by domain, all
	// in the youngest age column.
	st := mustCLI(t, "queue", "stats", sock)
	for _, want := range []string{"queued:    0\n", "deferred:  5\n", "held:      1\n", "total:     6 messages", "oldest:    " + a1} {
		if !strings.Contains(st, want) {
			t.Errorf("queue stats lacks %q:\n%s", want, st)
		}
	}
	rows := map[string]string{}
	for _, l := range strings.Split(st, "\n") {
		if f := strings.Fields(l); len(f) == 13 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for domain, want := range map[string]string{
		"DOMAIN": "T 5 10 20 40 80 160 320 640 1280 1280+ DEFERRED",
		"TOTAL":  "6 6 0 0 0 0 0 0 0 0 0 6",
		"a.test": "4 4 0 0 0 0 0 0 0 0 0 4",
		"b.test": "2 2 0 0 0 0 0 0 0 0 0 2",
	} {
		if rows[domain] != want {
			t.Errorf("queue stats row %s: %q, want %q\n%s", domain, rows[domain], want, st)
		}
	}
	// --top shortens the list, not the TOTAL.
	st = mustCLI(t, "queue", "stats", sock, "--top", "1")
	if strings.Contains(st, "b.test") || !strings.Contains(st, "a.test") || !regexp.MustCompile(`TOTAL +6 +6 `).MatchString(st) {
		t.Errorf("queue stats --top 1: want a.test only and the TOTAL of both:\n%s", st)
	}
}

// TestAdminPprof: the admin socket serves Go's profiles.
func TestAdminPprof(t *testing.T) {
	cfg := servertest.Config(t)
	start(t, cfg)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", cfg.Admin.Socket)
	}}}
	for path, want := range map[string]string{
		"/debug/pprof/heap?debug=1":      "heap profile:",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/debug/pprof/":                  "Types of profiles available",
	} {
		resp, err := c.Get("http://sluice" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, want %q in\n%.300s", path, resp.Status, want, body)
		}
	}
	// The binary form, which go tool pprof reads, is gzip.
	resp, err := c.Get("http://sluice/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Errorf("heap profile is not gzip: % x", body[:min(len(body), 8)])
	}
}
