package server_test

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/auth"
	"github.com/sluice-mta/sluice/core/auth/dkimkey"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/users"
)

// submissionAddr is the submission service's STARTTLS address.
func submissionAddr(t *testing.T, s *running) string {
	t.Helper()
	for _, svc := range s.srv.Services() {
		if svc.Name == "submission" {
			return svc.Addrs[0].String()
		}
	}
	t.Fatal("no submission service")
	return ""
}

// submit sends over STARTTLS with AUTH PLAIN (user "" for none).
func submit(addr, user, password, from string, rcpts []string, msg string) error {
	_, err := servertest.SendAs(addr, servertest.Login{User: user, Password: password, StartTLS: true}, from, rcpts, msg)
	return err
}

// TestSubmissionSignsOutbound: a user logs in over STARTTLS on the
// submission port, relays to another domain, and the message reaching the
// remote MX carries a DKIM signature that verifies against the key
// published in DNS. Without a login, relaying is refused.
func TestSubmissionSignsOutbound(t *testing.T) {
	key, err := dkimkey.Generate(dkimkey.RSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	record, err := dkimkey.ZoneRecord("example.test", "s1", key)
	if err != nil {
		t.Fatal(err)
	}
	mxAddr := reserveAddr(t)
	mx := startSink(t, mxAddr, false, nil)
	cfg := outboundConfig(t, mxAddr, record)
	cfg.TrustedNetworks = nil // only a login may relay
	cfg.Submission.Listen = []string{"127.0.0.1:0"}
	pem, _ := dkimkey.MarshalPEM(key)
	keyPath := filepath.Join(cfg.DataDir, "s1.key")
	if err := os.WriteFile(keyPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.DKIM.Keys = []config.DKIMKey{{Domain: "example.test", Selector: "s1", PrivateKey: keyPath}}
	if err := users.Set(cfg.Submission.UsersFile, "alice@example.test", "correct horse"); err != nil {
		t.Fatal(err)
	}
	s := start(t, cfg)
	sub := submissionAddr(t, s)
	msg := servertest.Message("alice@example.test", "bob@remote.test", "signed", "hello from a customer\r\n")

	if err := submit(sub, "", "", "alice@example.test", []string{"bob@remote.test"}, msg); servertest.Code(err) != 530 {
		t.Errorf("without AUTH: %v, want 530", err)
	}
	if err := submit(sub, "alice@example.test", "wrong", "alice@example.test", []string{"bob@remote.test"}, msg); servertest.Code(err) != 535 {
		t.Errorf("wrong password: %v, want 535", err)
	}
	if err := submit(sub, "alice@example.test", "correct horse", "alice@example.test", []string{"bob@remote.test"}, msg); err != nil {
		t.Fatalf("authenticated submission: %v", err)
	}
	got := waitSink(t, mx, 1, 15*time.Second)[0]
	if !bytes.Contains(got, []byte("DKIM-Signature:")) || !bytes.Contains(got, []byte("d=example.test")) {
		t.Fatalf("the remote MX got no signature:\n%s", got)
	}
	if !bytes.Contains(got, []byte("with ESMTPSA")) {
		t.Errorf("Received does not record an authenticated TLS submission:\n%s", got)
	}

	// Verify independently of the signer: our checker, with the key from DNS.
	res, err := dns.New(dns.Options{Servers: cfg.DNS.Servers})
	if err != nil {
		t.Fatal(err)
	}
	checker := auth.NewChecker(auth.CheckerOptions{Hostname: "verifier.test", Resolver: res, SkipSPF: true, SkipDMARC: true})
	r, err := checker.Check(context.Background(), auth.CheckInput{ClientIP: netip.MustParseAddr("127.0.0.1"), MailFrom: "alice@example.test", Message: got})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.DKIM) != 1 || r.DKIM[0].Result != auth.Pass || r.DKIM[0].Domain != "example.test" {
		t.Errorf("DKIM verification: %+v (%s)", r.DKIM, r.Header())
	}
}

// TestInboundAuthenticationResults: mail from the outside world gets one
// Authentication-Results header of ours (a forged one claiming our name is
// removed), and with dmarc_enforce a From domain whose policy is reject
// cannot be spoofed.
func TestInboundAuthenticationResults(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(
		`sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`spoof.test. 300 IN TXT "v=spf1 -all"`,
		`_dmarc.spoof.test. 300 IN TXT "v=DMARC1; p=reject"`,
	))
	cfg := servertest.Config(t)
	cfg.TrustedNetworks = nil
	cfg.DNS.Servers = []string{srv.Addr}
	cfg.Auth.DMARCEnforce = true
	s := start(t, cfg)

	forged := "Authentication-Results: " + cfg.Hostname + "; spf=pass smtp.mailfrom=spoof.test\r\n"
	msg := forged + servertest.Message("x@sender.test", "alice@localhost", "inbound-ar", "hi\r\n")
	servertest.MustSend(t, s.addr, "x@sender.test", []string{"alice@localhost"}, msg)
	files := servertest.WaitFiles(t, filepath.Join(cfg.DataDir, "mail", "localhost", "alice"), 1, 10*time.Second)
	b, _ := os.ReadFile(files[0])
	if n := strings.Count(string(b), "Authentication-Results: "+cfg.Hostname); n != 1 {
		t.Errorf("%d Authentication-Results headers naming us, want 1:\n%s", n, b)
	}
	if bytes.Contains(b, []byte("smtp.mailfrom=spoof.test")) || !bytes.Contains(b, []byte("spf=pass")) {
		t.Errorf("the forged result survived or ours is missing:\n%s", b)
	}

	_, err := servertest.Send(s.addr, "x@spoof.test", []string{"alice@localhost"}, servertest.Message("x@spoof.test", "alice@localhost", "spoofed", "x\r\n"))
	if servertest.Code(err) != 550 || !strings.Contains(err.Error(), "DMARC") {
		t.Errorf("spoofed From with p=reject: %v, want 550 naming DMARC", err)
	}
}
