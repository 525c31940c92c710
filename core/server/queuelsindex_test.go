package server_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"
	"github.com/sluice-mta/sluice/core/servertest"
)

// lsMessage is one message as `sluice queue ls` prints it.
type lsMessage struct {
	id, state, from string
	pending         []string
}

// parseLs reads `sluice queue ls` output: each message's ID, state, sender
// and pending recipients.
func parseLs(t *testing.T, out string) []lsMessage {
	t.Helper()
	var msgs []lsMessage
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 7 && len(f[0]) == 16 && f[0] != "ID":
			from := f[len(f)-1]
			if from == "(bounce)" {
				from = ""
			}
			msgs = append(msgs, lsMessage{id: f[0], state: strings.TrimSuffix(f[4], ",warned"), from: from})
		case len(f) >= 3 && f[0] == "->":
			if len(msgs) == 0 {
				t.Fatalf("a recipient line before any message:\n%s", out)
			}
			if f[2] == "pending" {
				msgs[len(msgs)-1].pending = append(msgs[len(msgs)-1].pending, f[1])
			}
		}
	}
	return msgs
}

// lsIDs runs `sluice queue ls` with args and returns the IDs listed.
func lsIDs(t *testing.T, args ...string) []string {
	t.Helper()
	var ids []string
	for _, m := range parseLs(t, mustCLI(t, append([]string{"queue", "ls"}, args...)...)) {
		ids = append(ids, m.id)
	}
	return ids
}

// checkLsFilters fails unless every filter of `sluice queue ls` lists
// exactly the messages of the unfiltered listing that pass it, whole and
// page by page with --limit and --after.
func checkLsFilters(t *testing.T, sock, when string) {
	t.Helper()
	all := parseLs(t, mustCLI(t, "queue", "ls", sock))
	lower := strings.ToLower
	domain := func(a string) string { return lower(a[strings.LastIndexByte(a, '@')+1:]) }
	type filter struct {
		args []string
		pass func(m lsMessage) bool
	}
	anyPending := func(ok func(string) bool) func(lsMessage) bool {
		return func(m lsMessage) bool { return slices.ContainsFunc(m.pending, ok) }
	}
	filters := []filter{
		{[]string{"--state", "deferred"}, func(m lsMessage) bool { return m.state == "deferred" }},
		{[]string{"--state", "held"}, func(m lsMessage) bool { return m.state == "held" }},
		{[]string{"--state", "queued"}, func(m lsMessage) bool { return m.state == "queued" }},
		{[]string{"--sender", "A@SRC.test"}, func(m lsMessage) bool { return lower(m.from) == "a@src.test" }},
		{[]string{"--sender", "<>"}, func(m lsMessage) bool { return m.from == "" }},
		{[]string{"--sender", "nobody@nowhere.test"}, func(lsMessage) bool { return false }},
		{[]string{"--rcpt", "u7@d2.test"}, anyPending(func(a string) bool { return lower(a) == "u7@d2.test" })},
		{[]string{"--rcpt", "a@src.test"}, anyPending(func(a string) bool { return lower(a) == "a@src.test" })},
		{[]string{"--domain", "D3.test."}, anyPending(func(a string) bool { return domain(a) == "d3.test" })},
		{[]string{"--domain", "nowhere.test"}, func(lsMessage) bool { return false }},
		{[]string{"--state", "held", "--domain", "d1.test"}, func(m lsMessage) bool {
			return m.state == "held" && slices.ContainsFunc(m.pending, func(a string) bool { return domain(a) == "d1.test" })
		}},
	}
	for _, f := range filters {
		var want []string
		for _, m := range all {
			if f.pass(m) {
				want = append(want, m.id)
			}
		}
		got := lsIDs(t, append(f.args, sock)...)
		if !slices.Equal(got, want) {
			t.Errorf("%s: queue ls %s listed %d messages %v…, want %d %v…", when, strings.Join(f.args, " "), len(got), got[:min(5, len(got))], len(want), want[:min(5, len(want))])
		}
		// Three at a time, each listing going on after the last.
		var paged []string
		for after := ""; ; {
			args := append(append([]string{"--limit", "3"}, f.args...), sock)
			if after != "" {
				args = append(args, "--after", after)
			}
			page := lsIDs(t, args...)
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(paged, want) {
			t.Errorf("%s: queue ls %s three at a time listed %d messages, want %d", when, strings.Join(f.args, " "), len(paged), len(want))
		}
	}
	t.Logf("%s: %d messages, %d filters agree", when, len(all), len(filters))
}

// TestQueueLsFilters: on a real server whose relay is down, `sluice queue
// ls` with each filter lists exactly the messages that pass it — after the
// first attempts, after hold, rm and bounce, and after kill -9 and a
// restart.
func TestQueueLsFilters(t *testing.T) {
	dir := t.TempDir()
	addr, dead := reserveAddr(t), reserveAddr(t)
	data := filepath.Join(dir, "data")
	cfgPath := procConfig(t, dir, addr, `trusted_networks = ["127.0.0.0/8"]`, fmt.Sprintf(`
[queue]
min_backoff = "1h"
max_backoff = "1h"

[delivery]
relay_host = %q

[admin]
socket = "{data_dir}/admin.sock"
`, dead))
	proc := startProcess(t, cfgPath, addr)
	sock := "--socket=" + filepath.Join(data, "admin.sock")

	senders := []string{"a@src.test", "A@Src.Test", "c@other.test", "b@src.test"}
	var ids []string
	for i := range 120 {
		rcpts := []string{fmt.Sprintf("u%d@d%d.test", i%10, i%5)}
		if i%3 == 0 {
			rcpts = append(rcpts, fmt.Sprintf("U%d@D%d.Test", i%10, (i+1)%5))
		}
		from := senders[i%len(senders)]
		ids = append(ids, servertest.MustSend(t, addr, from, rcpts, servertest.Message(from, rcpts[0], fmt.Sprintf("m%d", i), "hello\r\n")))
	}
	settled := func() bool {
		return len(lsIDs(t, "--state", "queued", sock)) == 0 &&
			!slices.ContainsFunc(parseLs(t, mustCLI(t, "queue", "ls", sock)), func(m lsMessage) bool { return m.state == "queued" })
	}
	testwait.Until(t, time.Minute, "every message attempted", settled)
	checkLsFilters(t, sock, "attempted")

	every := func(from, step int) []string {
		var out []string
		for i := from; i < len(ids); i += step {
			out = append(out, ids[i])
		}
		return out
	}
	mustCLI(t, append([]string{"queue", "hold", sock}, every(0, 12)...)...)
	mustCLI(t, append([]string{"queue", "rm", sock}, every(1, 20)...)...)
	mustCLI(t, append([]string{"queue", "bounce", sock}, every(2, 30)...)...) // DSNs from <> to the senders
	testwait.Until(t, time.Minute, "the bounces attempted", settled)
	checkLsFilters(t, sock, "after hold, rm and bounce")

	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	startProcess(t, cfgPath, addr)
	testwait.Until(t, time.Minute, "recovered messages attempted", settled)
	checkLsFilters(t, sock, "after kill -9 and restart")
}
