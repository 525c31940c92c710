package smtpd

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
)

func TestSizeLimits(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.Listener.MaxMessageSize = 1000
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()

	rc.send("MAIL FROM:<a@example.org> SIZE=1001\r\n")
	if text := rc.expect(552); !strings.HasPrefix(text, "5.3.4 ") {
		t.Errorf("SIZE above max: %q", text)
	}

	rc.send("MAIL FROM:<a@example.org> SIZE=10\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send(strings.Repeat("x", 70) + "\r\n" + strings.Repeat(strings.Repeat("y", 70)+"\r\n", 20) + ".\r\n")
	if text := rc.expect(552); !strings.HasPrefix(text, "5.3.4 ") {
		t.Errorf("DATA above max: %q", text)
	}

	rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\n")
	rc.expect(250)
	rc.expect(250)
	chunk := strings.Repeat("z", 1200)
	rc.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	if text := rc.expect(552); !strings.HasPrefix(text, "5.3.4 ") {
		t.Errorf("BDAT above max: %q", text)
	}
	rc.send("NOOP\r\n")
	rc.expect(250)
	if envs, _ := q.got(); len(envs) != 0 {
		t.Errorf("enqueued %d messages, want none", len(envs))
	}
}

func TestTooManyRecipients(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.Listener.MaxRecipients = 2
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	rc.send("MAIL FROM:<a@example.org>\r\n")
	rc.expect(250)
	for i := range 3 {
		rc.send(fmt.Sprintf("RCPT TO:<u%d@local.test>\r\n", i))
		if i < 2 {
			rc.expect(250)
			continue
		}
		if text := rc.expect(452); text != "4.5.3 Too many recipients" {
			t.Errorf("third RCPT: %q", text)
		}
	}
	rc.send("DATA\r\n")
	rc.expect(354)
	rc.send("\r\nx\r\n.\r\n")
	rc.expect(250)
	if envs, _ := q.got(); len(envs) != 1 || len(envs[0].Rcpts) != 2 {
		t.Errorf("enqueued %+v, want one message to two recipients", envs)
	}
}

func TestLongLines(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, line string
	}{
		{"command", "", "NOOP " + strings.Repeat("x", 5000) + "\r\n"},
		{"command just over", "", "NOOP " + strings.Repeat("x", 596) + "\r\n"},
		{"data", "MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n",
			"\r\n" + strings.Repeat("x", 601) + "\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{}
			opts := testOptions(q)
			opts.Listener.MaxLineLength = 600
			rc := dialRaw(t, startServer(t, opts), "")
			rc.greet()
			rc.send("NOOP " + strings.Repeat("x", 595) + "\r\n") // exactly 600
			rc.expect(250)
			if tc.prefix != "" {
				rc.send(tc.prefix)
				rc.expect(250)
				rc.expect(250)
				rc.expect(354)
			}
			rc.send(tc.line)
			if text := rc.expect(500); !strings.HasPrefix(text, "5.4.0 ") {
				t.Errorf("got %q", text)
			}
			rc.readToEOF()
			if envs, _ := q.got(); len(envs) != 0 {
				t.Errorf("enqueued %d messages", len(envs))
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     func(*config.Listener)
		goodbye string // what the server says before hanging up
	}{
		{"command", func(l *config.Listener) { l.CommandTimeout = config.Duration(50 * time.Millisecond) }, "421 4.4.2"},
		{"session", func(l *config.Listener) { l.SessionTimeout = config.Duration(50 * time.Millisecond) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(&fakeQueue{})
			tc.set(&opts.Listener)
			rc := dialRaw(t, startServer(t, opts), "")
			rc.expect(220)
			out := rc.readToEOF()
			if !strings.HasPrefix(out, tc.goodbye) {
				t.Errorf("server said %q, want %q", out, tc.goodbye)
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	for _, tc := range []struct {
		name     string
		total    int
		perIP    int
		sources  []string // one connection from each, in order
		refusedN int      // the index refused
	}{
		{"per IP", 0, 2, []string{"127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.1"}, 3},
		{"total", 2, 0, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(&fakeQueue{})
			opts.Listener.MaxConnections = tc.total
			opts.Listener.MaxConnectionsPerIP = tc.perIP
			if tc.total > 0 {
				// No stress mode, which could evict an idle session
				// for the newcomer instead (stress_test.go).
				opts.Listener.StressThreshold = tc.total + 1
			}
			addr := startServer(t, opts)
			var conns []*rawConn
			for i, src := range tc.sources {
				rc := dialRaw(t, addr, src)
				code, text := rc.reply()
				if i != tc.refusedN {
					if code != 220 {
						t.Fatalf("connection %d from %s: %d %q", i, src, code, text)
					}
					conns = append(conns, rc)
					continue
				}
				if want := "4.7.0 " + testHost + " Too many connections, try again later"; code != 421 || text != want {
					t.Fatalf("connection %d from %s: %d %q, want 421 %q", i, src, code, text, want)
				}
				if rest := rc.readToEOF(); rest != "" {
					t.Errorf("refused connection got %q", rest)
				}
			}
			// The admitted clients are still served.
			for _, rc := range conns {
				rc.send("EHLO client.example\r\n")
				rc.expect(250)
			}
		})
	}
}

func TestServeAfterClose(t *testing.T) {
	s, err := New(testOptions(&fakeQueue{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("listener still open after Serve returned")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"no queue":         func(o *Options) { o.Queue = nil },
		"no hostname":      func(o *Options) { o.Hostname = "" },
		"bad newline":      func(o *Options) { o.Listener.BareNewline = "fix" },
		"bad local domain": func(o *Options) { o.LocalDomains = []string{"not a domain"} },
	} {
		opts := testOptions(&fakeQueue{})
		mod(&opts)
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
