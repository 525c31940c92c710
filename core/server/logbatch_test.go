package server_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestServeLogLinesUnderLoad: `sluice serve` writes its log in batches;
// with 10 clients sending 4 messages each at once, every line of the log
// is still one whole key=value line, every session has its connect and
// then its disconnect line, and every message its queued, delivery
// (status=sent) and removed lines, in that order, under its queue ID.
func TestServeLogLinesUnderLoad(t *testing.T) {
	queuedAs := regexp.MustCompile(`queued as (\S+)`)
	dir := t.TempDir()
	addr := reserveAddr(t)
	p := startServe(t, procConfig(t, dir, addr, "", ""), addr, nil)
	const clients, each = 10, 4
	var wg sync.WaitGroup
	ids := make(chan string, clients*each)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range each {
				subj := fmt.Sprintf("c%d m%d", c, m)
				reply, err := servertest.Send(addr, "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", subj, "x\r\n"))
				if err != nil {
					t.Errorf("%s: %v", subj, err)
					return
				}
				m := queuedAs.FindStringSubmatch(reply)
				if m == nil {
					t.Errorf("%s: reply %q names no queue ID", subj, reply)
					return
				}
				ids <- m[1]
			}
		}()
	}
	wg.Wait()
	close(ids)
	p.waitLogN(t, `msg=removed id=\S+ reason=done`, clients*each)
	log := p.log()
	line := regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=("[^"]*"|\S+)( \S+=("[^"]*"|\S*))*$`)
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Errorf("not a whole log line: %q", l)
		}
	}
	sessions := map[string][]string{}
	sessionRe := regexp.MustCompile(`msg=(connect|disconnect) .*session=(\S+)`)
	for _, l := range lines {
		if m := sessionRe.FindStringSubmatch(l); m != nil {
			sessions[m[2]] = append(sessions[m[2]], m[1])
		}
	}
	if len(sessions) < clients*each {
		t.Errorf("%d sessions in the log, want at least %d", len(sessions), clients*each)
	}
	for s, got := range sessions {
		if strings.Join(got, " ") != "connect disconnect" {
			t.Errorf("session %s logged %v, want connect then disconnect", s, got)
		}
	}
	n := 0
	for id := range ids {
		n++
		var got []string
		for _, l := range lines {
			if strings.Contains(l, "id="+id+" ") {
				got = append(got, regexp.MustCompile(`msg=(\S+)`).FindStringSubmatch(l)[1])
				if strings.Contains(l, "msg=delivery") && !strings.Contains(l, "status=sent") {
					t.Errorf("%s: %s", id, l)
				}
			}
		}
		if strings.Join(got, " ") != "queued delivery removed" {
			t.Errorf("message %s logged %v, want queued, delivery, removed", id, got)
		}
	}
	if n != clients*each {
		t.Errorf("%d messages queued, want %d", n, clients*each)
	}
	p.stop(t)
}
