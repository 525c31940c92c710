// Package servertest starts a real Sluice server on 127.0.0.1 for tests,
// and speaks SMTP to it: the integration tests of the server and of every
// plugin use it, as net/http/httptest serves HTTP tests.
package servertest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/server"
)

// Config is the embedded default moved into a temporary data directory,
// with SMTP on a free loopback port and no submission listeners.
func Config(t testing.TB) *config.Config {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	cfg.Submission.Listen = nil
	cfg.Submission.TLSListen = nil
	cfg.Submission.UsersFile = filepath.Join(dir, "users")
	cfg.Local.Maildir = filepath.Join(dir, "mail", "{domain}", "{user}")
	cfg.Admin.Socket = filepath.Join(dir, "admin.sock")
	cfg.Plugins.Dir = filepath.Join(dir, "plugins")
	cfg.Plugins.CacheDir = filepath.Join(dir, "plugin-cache")
	cfg.LogLevel = "debug"
	return cfg
}

// Server is a server started in this process.
type Server struct {
	*server.Server
	// Addr is the first SMTP address, host:port.
	Addr string
	// Config is what it runs with.
	Config *config.Config

	t    testing.TB
	stop func()
	logs *testlog.Buffer
}

// Start runs a server from cfg until the test ends (or Stop is called);
// its log, at debug level, goes to the test log and is kept for Logs: as
// JSON lines when cfg.LogFormat is "json", else as key=value lines.
func Start(t testing.TB, cfg *config.Config, opts ...server.Option) *Server {
	t.Helper()
	logs := testlog.New(t) // shown in the test log on failure or -v
	hopts := &slog.HandlerOptions{Level: slog.LevelDebug}
	var log *slog.Logger
	if cfg.LogFormat == "json" {
		log = slog.New(slog.NewJSONHandler(logs, hopts))
	} else {
		log = slog.New(slog.NewTextHandler(logs, hopts))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log, opts...)
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
	return &Server{Server: srv, Addr: srv.Services()[0].Addrs[0].String(), Config: cfg, t: t, stop: stop, logs: logs}
}

// Logs returns the lines the server has logged so far, one record each.
func (s *Server) Logs() []string {
	all := s.logs.String()
	if all == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(all, "\n"), "\n")
}

// Stop shuts the server down (Start arranges it at the end of the test).
func (s *Server) Stop() { s.stop() }

// Mailbox is the path of a local user's Maildir.
func (s *Server) Mailbox(user, domain string) string {
	return filepath.Join(s.Config.DataDir, "mail", domain, user)
}

// Send submits one message with go-smtp's client and returns the final
// reply text; an SMTP refusal is an *smtp.SMTPError (see Code).
func Send(addr, from string, rcpts []string, msg string) (string, error) {
	return SendAs(addr, Login{}, from, rcpts, msg)
}

// Login says how SendAs connects: StartTLS first (any certificate is
// accepted), then AUTH PLAIN when User is set.
type Login struct {
	User, Password string
	StartTLS       bool
}

// SendAs is Send on a submission service: with STARTTLS and a login.
func SendAs(addr string, login Login, from string, rcpts []string, msg string) (string, error) {
	var c *smtp.Client
	var err error
	if login.StartTLS {
		c, err = smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return "", err
	}
	if login.User != "" {
		if err := c.Auth(sasl.NewPlainClient("", login.User, login.Password)); err != nil {
			return "", err
		}
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

// MustSend is Send that fails the test on error and returns the queue ID.
func MustSend(t testing.TB, addr, from string, rcpts []string, msg string) string {
	t.Helper()
	text, err := Send(addr, from, rcpts, msg)
	if err != nil {
		t.Fatalf("sending from %s to %v: %v", from, rcpts, err)
	}
	i := strings.LastIndex(text, "queued as ")
	if i < 0 {
		t.Fatalf("250 reply %q does not name the queue ID", text)
	}
	return strings.TrimSpace(text[i+len("queued as "):])
}

// Code returns the reply code of an error from Send, 0 if it has none.
func Code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// Message is a small well-formed message with CRLF line endings.
func Message(from, to, subject, body string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@client.test>\r\nDate: Sun, 22 Nov 2026 18:00:00 +0000\r\n\r\n" + body
}

// MaildirFiles lists the messages in a Maildir's new/ folder.
func MaildirFiles(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, "new"))
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Join(dir, "new", e.Name()))
	}
	return out
}

// WaitFiles waits until dir's new/ holds at least n messages and returns them.
func WaitFiles(t testing.TB, dir string, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		files := MaildirFiles(dir)
		if len(files) >= n {
			return files
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/new holds %d message(s) after %v, want %d", dir, len(files), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Install puts a plugin and its NAME.toml into the plugins directory,
// writing the module under a temporary name and renaming it, as a deploy
// would, so the host never sees half a file.
func Install(t testing.TB, cfg *config.Config, name string, wasm []byte, toml string) {
	t.Helper()
	if err := os.MkdirAll(cfg.Plugins.Dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if toml != "" {
		if err := os.WriteFile(filepath.Join(cfg.Plugins.Dir, name+".toml"), []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(cfg.Plugins.Dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(cfg.Plugins.Dir, name+".wasm")); err != nil {
		t.Fatal(err)
	}
}
