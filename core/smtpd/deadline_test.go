package smtpd

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
)

// drip writes s one chunk of n bytes every interval until s is sent or a
// write fails (the server hung up); it returns when done.
func drip(rc *rawConn, s string, n int, interval time.Duration) {
	for len(s) > 0 {
		k := min(n, len(s))
		if _, err := rc.c.Write([]byte(s[:k])); err != nil {
			return
		}
		s = s[k:]
		time.Sleep(interval)
	}
}

// TestCommandDeadline: a command line must arrive whole within
// command_timeout; bytes dripping in do not extend it.
func TestCommandDeadline(t *testing.T) {
	obs := newCountObserver()
	opts := testOptions(&fakeQueue{})
	opts.Observer = obs
	opts.Listener.CommandTimeout = config.Duration(time.Second)
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	start := time.Now()
	// 20 bytes at 10 a second would take 2 s: twice the timeout.
	go drip(rc, "NOOP "+strings.Repeat("x", 15), 1, 100*time.Millisecond)
	out := rc.readToEOF()
	took := time.Since(start)
	if want := "421 4.4.2 " + testHost + " Timeout waiting for a command, closing connection\r\n"; out != want {
		t.Errorf("server said %q, want %q", out, want)
	}
	if took < 900*time.Millisecond || took > 1800*time.Millisecond {
		t.Errorf("closed after %v, want about the 1s command timeout", took)
	}
	obs.waitFor(t, "reject:smtp,command,limits", 1)
}

// TestMinDataRate: message data slower than min_data_rate after the grace
// period (the command timeout) gets 421 4.4.2, for DATA and for BDAT; a
// message at a normal speed taking longer than the grace is taken.
func TestMinDataRate(t *testing.T) {
	const rate = 200 // bytes a second
	for _, tc := range []struct {
		name     string
		cmd      string // after MAIL and RCPT
		chunk    int    // bytes sent every 100ms
		accepted bool
	}{
		// 50 bytes/s: the deadline is 1s + got/200, met at about 1.3s.
		{"DATA slow", "DATA\r\n", 5, false},
		{"BDAT slow", "BDAT 2000 LAST\r\n", 5, false},
		// 1000 bytes/s for 2s: well ahead of the minimum rate.
		{"DATA fast", "DATA\r\n", 100, true},
		{"BDAT fast", "BDAT 2000 LAST\r\n", 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{}
			opts := testOptions(q)
			opts.Listener.CommandTimeout = config.Duration(time.Second)
			opts.Listener.MinDataRate = rate
			opts.Listener.MaxMessageSize = 1 << 20
			rc := dialRaw(t, startServer(t, opts), "")
			rc.greet()
			rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\n")
			rc.expect(250)
			rc.expect(250)
			rc.send(tc.cmd)
			msg := "Subject: x\r\n\r\n" + strings.Repeat(strings.Repeat("y", 48)+"\r\n", 40)
			if strings.HasPrefix(tc.cmd, "DATA") {
				rc.expect(354)
				msg += ".\r\n"
			} else {
				msg = msg[:2000]
			}
			start := time.Now()
			go drip(rc, msg, tc.chunk, 100*time.Millisecond)
			code, text := rc.reply()
			took := time.Since(start)
			if tc.accepted {
				if code != 250 {
					t.Fatalf("after %v: %d %q, want 250", took, code, text)
				}
				if envs, _ := q.got(); len(envs) != 1 {
					t.Errorf("queued %d messages, want 1", len(envs))
				}
				return
			}
			if want := testHost + " Message data too slow, closing connection"; code != 421 || text != "4.4.2 "+want {
				t.Fatalf("after %v: %d %q, want 421 4.4.2 %q", took, code, text, want)
			}
			if took < time.Second || took > 2500*time.Millisecond {
				t.Errorf("refused after %v, want about 1.3s", took)
			}
			if rest := rc.readToEOF(); rest != "" {
				t.Errorf("after the 421: %q", rest)
			}
		})
	}
}
