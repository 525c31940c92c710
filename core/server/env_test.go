package server_test

import (
	"bufio"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
)

// sluiceBin is the sluice binary built once by TestMain for the tests that
// run it as a separate process (CLI, kill -9).
var sluiceBin string

func TestMain(m *testing.M) {
	os.Exit(servertest.RunWithBinary(m, &sluiceBin))
}

// running is a server started in this process, with the short names the
// tests here use.
type running struct {
	srv  *server.Server
	addr string
	stop func()
}

// start runs a server from cfg until the test ends (or stop is called).
func start(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	s := servertest.Start(t, cfg)
	return &running{srv: s.Server, addr: s.Addr, stop: s.Stop}
}

// rawSession is a hand-driven SMTP connection for malformed input.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawSession {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &rawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
	s.expect("220")
	return s
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (s *rawSession) reply() (string, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return line, err
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n"), nil
		}
	}
}

// expect reads one reply and fails unless it starts with prefix.
func (s *rawSession) expect(prefix string) string {
	s.t.Helper()
	line, err := s.reply()
	if err != nil {
		s.t.Fatalf("reading reply (want %s): %v", prefix, err)
	}
	if !strings.HasPrefix(line, prefix) {
		s.t.Fatalf("reply %q, want %s…", line, prefix)
	}
	return line
}

// cmd writes raw bytes.
func (s *rawSession) write(b string) {
	s.t.Helper()
	if _, err := io.WriteString(s.conn, b); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

// cmdExpect writes a command line (CRLF added) and checks the reply.
func (s *rawSession) cmdExpect(line, prefix string) string {
	s.t.Helper()
	s.write(line + "\r\n")
	return s.expect(prefix)
}

func cfgDuration(d time.Duration) config.Duration { return config.Duration(d) }

// dialRawNoGreeting connects without reading anything.
func dialRawNoGreeting(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }
