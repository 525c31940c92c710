package smtpd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/mail"
)

// fakeQueue records what the server enqueued.
type fakeQueue struct {
	mu     sync.Mutex
	envs   []mail.Envelope
	bodies [][]byte
	err    error // returned by Enqueue when set
	ids    int
	attrs  [][]slog.Attr // each Enqueue's log attributes (logctx), the queued line's
}

// NewID returns a unique ID like the real queue's.
func (q *fakeQueue) NewID() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids++
	return "FAKE" + strconv.Itoa(q.ids)
}

func (q *fakeQueue) Enqueue(ctx context.Context, env *mail.Envelope, body []byte) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	if env.ID == "" {
		return "", errors.New("fake queue: the server must set env.ID")
	}
	q.envs = append(q.envs, *env)
	q.bodies = append(q.bodies, append([]byte(nil), body...))
	q.attrs = append(q.attrs, logctx.Attrs(ctx))
	return env.ID, nil
}

// got returns copies of what was enqueued so far.
func (q *fakeQueue) got() ([]mail.Envelope, [][]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]mail.Envelope(nil), q.envs...), append([][]byte(nil), q.bodies...)
}

const testHost = "mx.test"

// testOptions are the options most tests start from: local.test is local,
// nothing is trusted.
func testOptions(q Enqueuer) Options {
	return Options{
		Name:         "smtp",
		Hostname:     testHost,
		LocalDomains: []string{"local.test", "Other.Test"},
		Queue:        q,
		Logger:       slog.New(slog.DiscardHandler),
		Listener: config.Listener{
			MaxMessageSize: 64 << 10,
			MaxRecipients:  5,
			MaxLineLength:  1000,
			CommandTimeout: config.Duration(time.Minute),
			DataTimeout:    config.Duration(time.Minute),
			SessionTimeout: config.Duration(time.Minute),
		},
	}
}

// startServer serves opts on a fresh 127.0.0.1 port and returns its address.
func startServer(t *testing.T, opts Options) string {
	t.Helper()
	return serveOn(t, opts, (*Server).Serve)
}

// serveOn runs serve (Serve or ServeTLS) for opts on a fresh 127.0.0.1
// port until the test ends, and returns the address.
func serveOn(t *testing.T, opts Options, serve func(*Server, net.Listener) error) string {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(s, l) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serving returned %v after Close", err)
		}
	})
	return l.Addr().String()
}

// rawConn is a hand-driven SMTP client for malformed input.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialRaw connects from 127.0.0.1 (or from local when given).
func dialRaw(t *testing.T, addr string, local string) *rawConn {
	t.Helper()
	d := net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one (possibly multi-line) reply and returns its code and the
// text of its last line; code 0 means the connection ended.
func (rc *rawConn) reply() (int, string) {
	rc.t.Helper()
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return 0, line
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			rc.t.Fatalf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			rc.t.Fatalf("bad reply line %q", line)
		}
		if line[3] == ' ' {
			return code, line[4:]
		}
	}
}

// expect reads a reply and fails unless its code is want; it returns the text.
func (rc *rawConn) expect(want int) string {
	rc.t.Helper()
	code, text := rc.reply()
	if code != want {
		rc.t.Fatalf("got reply %d %q, want %d", code, text, want)
	}
	return text
}

// greet reads the banner and says EHLO.
func (rc *rawConn) greet() {
	rc.t.Helper()
	rc.expect(220)
	rc.send("EHLO client.example\r\n")
	rc.expect(250)
}

// readToEOF reads until the server closes the connection and returns all
// it said; it fails if the connection stays open.
func (rc *rawConn) readToEOF() string {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(rc.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		rc.t.Fatalf("connection still open; server said %q", b)
	}
	return string(b)
}

// loopback is 127.0.0.0/8, the network every test client comes from.
func loopback() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }
