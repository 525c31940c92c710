package smtpd

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
)

// stressOptions: at most max connections, stress mode from thr, with the
// stress timeout given; the command timeout stays a minute.
func stressOptions(obs Observer, maxConns, thr int, stress time.Duration) Options {
	opts := testOptions(&fakeQueue{})
	opts.Observer = obs
	opts.Listener.MaxConnections = maxConns
	opts.Listener.MaxConnectionsPerIP = maxConns
	opts.Listener.StressThreshold = thr
	opts.Listener.StressTimeout = config.Duration(stress)
	return opts
}

// TestStressTimeouts: entering stress mode shortens the command timeout of
// the sessions already open as well as new ones; the service leaves it
// when the connections are down by a tenth of max_connections (at least
// one) below the threshold, and both are reported.
func TestStressTimeouts(t *testing.T) {
	obs := newCountObserver()
	addr := startServer(t, stressOptions(obs, 10, 3, 400*time.Millisecond))
	var idle []*rawConn
	for i := range 2 {
		rc := dialRaw(t, addr, "127.0.0."+string(rune('2'+i)))
		rc.greet()
		idle = append(idle, rc)
	}
	// Below the threshold the one-minute timeout holds.
	time.Sleep(600 * time.Millisecond)
	if n := obs.get("stress:smtp,true"); n != 0 {
		t.Fatalf("in stress mode with 2 of 3 connections")
	}
	third := dialRaw(t, addr, "127.0.0.5")
	start := time.Now()
	third.expect(220)
	obs.waitFor(t, "stress:smtp,true", 1)
	// The two idle sessions waited longer than the stress timeout already.
	for i, rc := range idle {
		if out := rc.readToEOF(); !strings.HasPrefix(out, "421 4.4.2 ") {
			t.Errorf("idle session %d: %q, want 421 4.4.2", i, out)
		}
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("idle sessions closed %v after stress mode began", took)
	}
	// The new one gets the stress timeout.
	if out := third.readToEOF(); !strings.HasPrefix(out, "421 4.4.2 ") {
		t.Errorf("third session: %q, want 421 4.4.2", out)
	}
	if took := time.Since(start); took < 350*time.Millisecond || took > 2*time.Second {
		t.Errorf("third session closed after %v, want the 400ms stress timeout", took)
	}
	obs.waitFor(t, "stress:smtp,false", 1)
	obs.waitFor(t, "reject:smtp,command,limits", 3)
}

// TestStressFairShare: in stress mode an address holding more than its
// share of max_connections (divided among the addresses connected) is
// refused, while a new address is let in.
func TestStressFairShare(t *testing.T) {
	obs := newCountObserver()
	addr := startServer(t, stressOptions(obs, 6, 2, time.Minute))
	for _, src := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		dialRaw(t, addr, src).expect(220)
	}
	obs.waitFor(t, "stress:smtp,true", 1)
	// Three addresses: a share of 2, and 127.0.0.2 holds 3.
	rc := dialRaw(t, addr, "127.0.0.2")
	if code, text := rc.reply(); code != 421 || !strings.HasPrefix(text, "4.7.0 ") {
		t.Errorf("127.0.0.2 over its share: %d %q, want 421 4.7.0", code, text)
	}
	// A fourth address has a share of 1, and holds none.
	dialRaw(t, addr, "127.0.0.5").greet()
}

// TestStressEvict: when a service in stress mode is full, a newcomer takes
// the slot of the session idle longest (421 4.4.2) — never of one sending
// at a normal pace — and is refused when no session is behind by
// evictMinLag.
func TestStressEvict(t *testing.T) {
	obs := newCountObserver()
	addr := startServer(t, stressOptions(obs, 4, 2, time.Minute))
	// An active session: a command every 200ms throughout.
	active := dialRaw(t, addr, "127.0.0.2")
	active.greet()
	stop := make(chan struct{})
	activeDone := make(chan string)
	go func() {
		defer close(activeDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := active.c.Write([]byte("NOOP\r\n")); err != nil {
				activeDone <- err.Error()
				return
			}
			if code, text := active.reply(); code != 250 {
				activeDone <- text
				return
			}
		}
	}()
	var idle []*rawConn
	for _, src := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		rc := dialRaw(t, addr, src)
		rc.greet()
		idle = append(idle, rc)
		// Apart, so that their waits for a command (which start once the
		// server has written the reply) come in this order.
		time.Sleep(300 * time.Millisecond)
	}
	obs.waitFor(t, "stress:smtp,true", 1)
	// Full, and nobody idle long enough yet: refused.
	if code, _ := dialRaw(t, addr, "127.0.0.9").reply(); code != 421 {
		t.Fatalf("newcomer with nobody to evict: %d, want 421", code)
	}
	time.Sleep(evictMinLag) // the idle sessions' lag, 2.3 s for the last
	for i, src := range []string{"127.0.0.10", "127.0.0.11"} {
		rc := dialRaw(t, addr, src)
		rc.greet()
		rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
		rc.expect(250)
		rc.expect(250)
		rc.expect(354)
		rc.send("Subject: x\r\n\r\nhi\r\n.\r\n")
		rc.expect(250)
		// The one idle longest went: the first, then the second.
		want := "421 4.4.2 " + testHost + " Server busy and this session too slow, closing connection\r\n"
		if out := idle[i].readToEOF(); out != want {
			t.Errorf("idle session %d: %q, want %q", i, out, want)
		}
	}
	close(stop)
	if err, ok := <-activeDone; ok {
		t.Errorf("the active session was cut: %s", err)
	}
	obs.waitFor(t, "conn:smtp,evicted", 2)
}

// TestStressDataTimeout: a session quiet inside DATA when stress mode
// begins gets the stress timeout (and a grace period as short) at once.
func TestStressDataTimeout(t *testing.T) {
	obs := newCountObserver()
	addr := startServer(t, stressOptions(obs, 10, 2, 500*time.Millisecond))
	rc := dialRaw(t, addr, "127.0.0.2")
	rc.greet()
	rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: x\r\n") // then nothing: the one-minute data timeout
	time.Sleep(700 * time.Millisecond)
	dialRaw(t, addr, "127.0.0.3").expect(220)
	start := time.Now()
	obs.waitFor(t, "stress:smtp,true", 1)
	out := rc.readToEOF()
	if !strings.HasPrefix(out, "421 4.4.2 ") {
		t.Errorf("quiet DATA session: %q, want 421 4.4.2", out)
	}
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Errorf("closed %v after stress mode began, want at once", took)
	}
	obs.waitFor(t, "reject:smtp,data,limits", 1)
}
