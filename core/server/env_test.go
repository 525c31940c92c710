package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/server"
)

// sluiceBin is the sluice binary built once by TestMain for the tests that
// run it as a separate process (CLI, kill -9).
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-o", sluiceBin, "github.com/sluice-mta/sluice/cmd/sluice")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testConfig is the embedded default moved into a temporary data directory,
// with SMTP on a free loopback port and no submission listener.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	cfg.Submission.Listen = nil
	cfg.Submission.TLSListen = nil
	cfg.Local.Maildir = filepath.Join(dir, "mail", "{domain}", "{user}")
	cfg.Admin.Socket = filepath.Join(dir, "admin.sock")
	cfg.Plugins.Dir = filepath.Join(dir, "plugins")
	cfg.Plugins.CacheDir = filepath.Join(dir, "plugin-cache")
	cfg.LogLevel = "debug"
	return cfg
}

// running is a server started in this process.
type running struct {
	srv  *server.Server
	addr string
	stop func()
}

// start runs a server from cfg until the test ends (or stop is called).
func start(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return &running{srv: srv, addr: srv.Services()[0].Addrs[0].String(), stop: stop}
}

// testWriter sends server logs to the test log, shown on failure or -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// send submits one message and returns the server's final reply text.
func send(addr, from string, rcpts []string, msg string) (string, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return "", err
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_ = c.Quit()
	return resp.StatusText, nil
}

// mustSend is send that fails the test on error and returns the queue ID.
func mustSend(t *testing.T, addr, from string, rcpts []string, msg string) string {
	t.Helper()
	text, err := send(addr, from, rcpts, msg)
	if err != nil {
		t.Fatalf("sending from %s to %v: %v", from, rcpts, err)
	}
	i := strings.LastIndex(text, "queued as ")
	if i < 0 {
		t.Fatalf("250 reply %q does not name the queue ID", text)
	}
	return strings.TrimSpace(text[i+len("queued as "):])
}

// smtpCode returns the reply code of an error from the go-smtp client.
func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// message is a small well-formed message with CRLF line endings.
func message(from, to, subject, body string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@client.test>\r\nDate: Sun, 22 Nov 2026 18:00:00 +0000\r\n\r\n" + body
}

// maildirFiles lists the messages in a Maildir's new/ folder.
func maildirFiles(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, "new"))
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Join(dir, "new", e.Name()))
	}
	return out
}

// waitFiles waits until dir's new/ holds at least n messages and returns them.
func waitFiles(t *testing.T, dir string, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		files := maildirFiles(dir)
		if len(files) >= n {
			return files
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/new holds %d message(s) after %v, want %d", dir, len(files), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
