package greylist

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/testclock"
	"github.com/sluice-mta/sluice/core/users"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestServer greylists over real SMTP in the real server, with the plugin
// clock moved by the test: the client is 127.0.0.1, untrusted and not in
// skip_networks.
func TestServer(t *testing.T) {
	dns := dnstest.Start(t, dnstest.Zone(
		`big.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`forged.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
	))
	cfg := servertest.Config(t)
	cfg.TrustedNetworks = nil
	cfg.DNS.Servers = []string{dns.Addr}
	cfg.Submission.Listen = []string{"127.0.0.1:0"}
	cfg.Submission.AllowInsecureAuth = true
	if err := users.Set(cfg.Submission.UsersFile, "carol@localhost", "secret"); err != nil {
		t.Fatal(err)
	}
	toml, err := sdktest.PluginTOML(map[string]any{
		"delay": "5m", "expiry": "36h", "whitelist_after": "36d",
		"skip_networks": []any{}, "spf_pass_domains": []any{"big.example", "forged.example"},
	}, []string{"kv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	servertest.Install(t, cfg, "greylist", sdktest.Build(t, "."), string(toml))
	clk := testclock.New(time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC))
	s := servertest.Start(t, cfg, server.WithPluginClock(clk.Now))

	send := func(from, rcpt string) error {
		_, err := servertest.Send(s.Addr, from, []string{rcpt}, servertest.Message(from, rcpt, "greylist test", "hi\r\n"))
		return err
	}
	expect := func(step string, err error, reply string) {
		t.Helper()
		switch {
		case reply == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", step, err)
		case reply != "" && (!isGreylisted(err) || !strings.Contains(err.Error(), reply)):
			t.Errorf("%s: %v, want 451 4.7.1 %q", step, err, reply)
		}
	}

	expect("first attempt", send("x@sender.example", "alice@localhost"), "Greylisted, please try again in 300 seconds")
	clk.Add(4 * time.Minute)
	expect("retry before the delay", send("x@sender.example", "alice@localhost"), "Greylisted, please try again in 60 seconds")
	clk.Add(time.Minute)
	expect("retry after the delay", send("x@sender.example", "alice@localhost"), "")
	servertest.WaitFiles(t, s.Mailbox("alice", "localhost"), 1, 10*time.Second)
	expect("whitelisted network, new triplet", send("y@other.example", "bob@localhost"), "")

	// After the whitelisting runs out, a new triplet waits again, and one
	// that is not retried within the expiry starts over.
	clk.Add(37 * 24 * time.Hour)
	expect("after the whitelisting", send("z@third.example", "alice@localhost"), "try again in 300 seconds")
	clk.Add(36*time.Hour + time.Minute)
	expect("after the expiry", send("z@third.example", "alice@localhost"), "try again in 300 seconds")
	clk.Add(2 * time.Minute)
	expect("after the expiry, too early", send("z@third.example", "alice@localhost"), "try again in 180 seconds")

	// A big provider's sender passing SPF is not greylisted; one failing
	// SPF is deferred after DATA.
	expect("SPF pass", send("news@big.example", "alice@localhost"), "")
	if rcptErr, dataErr := sendStages(s.Addr, "news@forged.example", "alice@localhost"); rcptErr != nil ||
		!isGreylisted(dataErr) || !strings.Contains(dataErr.Error(), "Greylisted, please try again in 300 seconds") {
		t.Errorf("SPF fail: RCPT %v, DATA %v; want RCPT accepted and 451 greylisted after DATA", rcptErr, dataErr)
	}

	// An authenticated session is never greylisted.
	sub := s.Services()[1]
	if sub.Name != "submission" {
		t.Fatalf("second service is %q, want submission", sub.Name)
	}
	if err := submit(sub.Addrs[0].String(), "carol@localhost", "secret", "dave@localhost"); err != nil {
		t.Errorf("authenticated submission: %v", err)
	}
	servertest.WaitFiles(t, s.Mailbox("dave", "localhost"), 1, 10*time.Second)
}

// isGreylisted reports whether err is a 451 4.7.1 reply.
func isGreylisted(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 451 && se.EnhancedCode == smtp.EnhancedCode{4, 7, 1}
}

// sendStages sends one message and returns the error of RCPT TO and that
// of the end of DATA separately.
func sendStages(addr, from, rcpt string) (rcptErr, dataErr error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err, nil
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err, nil
	}
	if err := c.Mail(from, nil); err != nil {
		return err, nil
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err, nil
	}
	w, err := c.Data()
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, servertest.Message(from, rcpt, "stages", "hi\r\n")); err != nil {
		return nil, err
	}
	return nil, w.Close()
}

// submit sends a message after logging in with PLAIN (allow_insecure_auth).
func submit(addr, user, password, rcpt string) error {
	_, err := servertest.SendAs(addr, servertest.Login{User: user, Password: password}, user, []string{rcpt},
		servertest.Message(user, rcpt, "from carol", "hi\r\n"))
	return err
}
