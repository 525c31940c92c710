package ratelimit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/testclock"
	"github.com/sluice-mta/sluice/core/users"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// startServer runs a server with the plugin installed under toml, SMTP
// and submission (users alice and bob, password "secret") on loopback.
func startServer(t *testing.T, toml string, now *testclock.Clock) (smtpAddr, subAddr string, cfg *config.Config) {
	t.Helper()
	cfg = servertest.Config(t)
	cfg.LocalDomains = []string{"localhost", "example.test"}
	cfg.Auth.SPF, cfg.Auth.DKIMVerify, cfg.Auth.DMARC = false, false, false
	cfg.Submission.Listen = []string{"127.0.0.1:0"}
	cfg.Submission.AllowInsecureAuth = true
	cfg.Submission.RestrictSender = false
	for _, u := range []string{"alice", "bob"} {
		if err := users.Set(cfg.Submission.UsersFile, u, "secret"); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Install(t, cfg, "ratelimit", sdktest.Build(t, "."), toml)
	s := servertest.Start(t, cfg, server.WithPluginClock(now.Now))
	for _, svc := range s.Services() {
		if svc.Name == "submission" {
			subAddr = svc.Addrs[0].String()
		}
	}
	if subAddr == "" {
		t.Fatal("no submission service")
	}
	return s.Addr, subAddr, cfg
}

// sendAs submits a message to addr, logged in as user when user is not
// empty, and returns the first refusal (nil when queued).
func sendAs(addr, user, from string, rcpts []string) error {
	_, err := servertest.SendAs(addr, servertest.Login{User: user, Password: "secret"}, from, rcpts,
		servertest.Message(from, rcpts[0], "rate test", "hello\r\n"))
	return err
}

// metric reads one counter from the admin socket's /metrics.
func metric(t *testing.T, socket, name string) string {
	t.Helper()
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := hc.Get("http://sluice/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, name) && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	return ""
}

const userLimits = `grants = ["kv", "metrics"]
[config]
limits = [
  {key = "user", window = "1h", messages = 2, recipients = 4},
]
`

// TestSMTPUserLimits: an authenticated user over its hourly limit is
// refused at MAIL with a retry hint, other users and later hours are not.
func TestSMTPUserLimits(t *testing.T) {
	now := testclock.New(t0)
	_, sub, cfg := startServer(t, userLimits, now)
	for i := range 2 {
		if err := sendAs(sub, "alice", "alice@example.test", []string{"bob@example.test"}); err != nil {
			t.Fatalf("alice's message %d: %v", i+1, err)
		}
	}
	err := sendAs(sub, "alice", "alice@example.test", []string{"bob@example.test"})
	var se *smtp.SMTPError
	if servertest.Code(err) != 451 || !strings.Contains(err.Error(), "Rate limit exceeded for user, try again in ") {
		t.Fatalf("alice's third message: %v, want 451 with a retry hint", err)
	}
	if errors.As(err, &se) && se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) {
		t.Errorf("enhanced code %v, want 4.7.1", se.EnhancedCode)
	}
	if line := metric(t, cfg.Admin.Socket, metricExceeded); !strings.HasSuffix(line, " 1") {
		t.Errorf("metric line %q, want %s 1", line, metricExceeded)
	}
	// bob has his own count; his fourth recipient in the hour is over.
	if err := sendAs(sub, "bob", "bob@example.test", []string{"alice@example.test", "carol@example.test"}); err != nil {
		t.Errorf("bob: %v", err)
	}
	err = sendAs(sub, "bob", "bob@example.test", []string{"dave@example.test", "erin@example.test", "frank@example.test"})
	if servertest.Code(err) != 451 || !strings.Contains(err.Error(), "Rate limit exceeded for user") {
		t.Errorf("bob's fifth recipient: %v, want 451", err)
	}
	now.Add(time.Hour)
	if err := sendAs(sub, "alice", "alice@example.test", []string{"bob@example.test"}); err != nil {
		t.Errorf("alice an hour later: %v", err)
	}
}

// TestSMTPIPLimit: unauthenticated clients are limited by address on the
// inbound port; the window slides with the plugin clock.
func TestSMTPIPLimit(t *testing.T) {
	now := testclock.New(t0)
	mx, _, _ := startServer(t, `grants = ["kv", "metrics"]
[config]
limits = [{key = "ip", window = "1m", messages = 3}, {key = "sender_domain", window = "1d", recipients = 100}]
`, now)
	for i := range 3 {
		if err := sendAs(mx, "", "someone@remote.test", []string{"alice@localhost"}); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	err := sendAs(mx, "", "other@elsewhere.test", []string{"alice@localhost"})
	if servertest.Code(err) != 451 || !strings.Contains(err.Error(), "Rate limit exceeded for ip, try again in 55 seconds") {
		t.Fatalf("fourth message: %v, want 451 ... try again in 55 seconds", err)
	}
	now.Add(55 * time.Second)
	if err := sendAs(mx, "", "someone@remote.test", []string{"alice@localhost"}); err != nil {
		t.Errorf("after the window slid: %v", err)
	}
}
