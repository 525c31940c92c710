package server_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"

	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/internal/testca"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
)

// TestOutboundTLSProcess runs `sluice serve` against loopback peers and a
// loopback DNS server that treats dane.test as signed:
//   - dane.test's MX shows a self-signed certificate its DNSSEC-validated
//     TLSA record names: delivered, logged tls=TLSv1.3 verified=dane
//     tls_policy=dane;
//   - sts.test publishes an enforced MTA-STS policy (served over HTTPS
//     with a test-CA certificate the configuration trusts, the policy host
//     resolved through [dns]); its MX shows the same self-signed
//     certificate: deferred with 4.7.5, never sent, still queued. One
//     message goes to both, so `sluice queue ls` shows the one recipient
//     delivered with its TLS and the other waiting, each with its policy;
//   - relay.test goes through a relay with a test-CA certificate (the
//     route's relay_ca_file): it gets the password, logged verified=pkix;
//   - badrelay.test goes through a relay with a self-signed certificate:
//     it gets no AUTH at all, and the mail waits with 4.7.5.
func TestOutboundTLSProcess(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "Sluice test CA")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	// The MTA-STS policy host needs port 443: a loopback address of its
	// own, so that nothing else on the machine is in the way.
	stsIP := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(250), 1+rand.IntN(250))
	ln, err := net.Listen("tcp", stsIP+":443")
	if err != nil {
		t.Skipf("cannot listen on %s:443 for the MTA-STS policy server (needs root or CAP_NET_BIND_SERVICE): %v", stsIP, err)
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n")
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{ca.Chain(ca.Issue(t, []string{"mta-sts.sts.test"}, time.Time{}, time.Time{}))}},
	}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })

	mxAddr := reserveAddr(t)
	_, mxPort, _ := net.SplitHostPort(mxAddr)
	self := testca.SelfSigned(t, "mx.example")
	mx := startTLSSink(t, mxAddr, self, "", "")
	goodRelay := startTLSSink(t, reserveAddr(t), ca.Chain(ca.Issue(t, []string{"smarthost.test"}, time.Time{}, time.Time{})), "alice", "secret")
	badRelay := startTLSSink(t, reserveAddr(t), testca.SelfSigned(t, "selfsigned.test"), "alice", "secret")

	spki := sha256.Sum256(self.Leaf.RawSubjectPublicKeyInfo)
	dnsSrv := dnstest.Start(t, dnstest.Zone(
		"dane.test. 300 IN MX 10 mx.dane.test.",
		"mx.dane.test. 300 IN A 127.0.0.1",
		fmt.Sprintf("_%s._tcp.mx.dane.test. 300 IN TLSA 3 1 1 %x", mxPort, spki),
		"sts.test. 300 IN MX 10 mx.sts.test.",
		"mx.sts.test. 300 IN A 127.0.0.1",
		`_mta-sts.sts.test. 300 IN TXT "v=STSv1; id=1"`,
		"mta-sts.sts.test. 300 IN A "+stsIP,
		"smarthost.test. 300 IN A 127.0.0.1",
		"selfsigned.test. 300 IN A 127.0.0.1",
	))
	dnsSrv.SetSigned("dane.test", true)

	addr := reserveAddr(t)
	cfgPath := procConfig(t, dir, addr, "", fmt.Sprintf(`
[dns]
servers = [%[1]q]
trusted_servers = [%[1]q]
timeout = "1s"

[queue]
min_backoff = "1s"
max_backoff = "2s"

[delivery]
port = %[2]s
ca_file = %[3]q

[[delivery.route]]
domain = "relay.test"
relay = "smarthost.test:%[4]s"
relay_user = "alice"
relay_password = "secret"
relay_ca_file = %[3]q

[[delivery.route]]
domain = "badrelay.test"
relay = "selfsigned.test:%[5]s"
relay_user = "alice"
relay_password = "secret"
`, dnsSrv.Addr, mxPort, caFile, port(goodRelay.addr), port(badRelay.addr)))
	if r := runBin(t, "", nil, "", nil, "config", "check", "--config", cfgPath); r.code != 0 {
		t.Fatalf("sluice config check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	p := startServe(t, cfgPath, addr, nil)

	for _, rcpts := range [][]string{{"x@dane.test", "x@sts.test"}, {"x@relay.test"}, {"x@badrelay.test"}} {
		servertest.MustSend(t, addr, "sender@localhost", rcpts, servertest.Message("sender@localhost", rcpts[0], "tls "+rcpts[0], "hello\r\n"))
	}
	testwait.Until(t, 20*time.Second, "the deliveries to dane.test and relay.test", func() bool {
		return len(mx.messages()) == 1 && len(goodRelay.messages()) == 1
	})
	if got := mx.messages()[0].rcpts; len(got) != 1 || got[0] != "x@dane.test" {
		t.Errorf("the MX got %v; want only x@dane.test (sts.test's mail must not go to a certificate its policy rejects)", got)
	}
	if m := goodRelay.messages()[0]; m.user != "alice" || m.rcpts[0] != "x@relay.test" {
		t.Errorf("the verified relay got %+v; want x@relay.test as alice", m)
	}
	// Both others wait in the queue, each with a 4.7.5 naming the problem.
	var ls string
	testwait.Until(t, 20*time.Second, "4.7.5 deferrals in sluice queue ls", func() bool {
		ls = runBin(t, "", nil, "", nil, "queue", "ls", "--config", cfgPath).stdout
		return strings.Contains(ls, "x@sts.test") && strings.Contains(ls, "x@badrelay.test") &&
			strings.Count(ls, "4.7.5") >= 2
	})
	for _, re := range []string{
		`-> x@dane\.test\s+delivered\s.*relay=mx\.dane\.test\[127\.0\.0\.1\]:\d+ tls=TLSv1\.3 verified=dane tls_policy=dane\n`,
		`-> x@sts\.test\s+pending\s.* tls_policy=mta-sts\s+4\.7\.5 .*MTA-STS policy of sts\.test \(mode enforce\)`,
		`-> x@badrelay\.test\s+pending\s.* tls_policy=relay\s+4\.7\.5 .*self-signed certificate not trusted`,
	} {
		if !regexp.MustCompile(re).MatchString(ls) {
			t.Errorf("sluice queue ls does not match %s:\n%s", re, ls)
		}
	}
	if n := badRelay.authCount(); n != 0 || len(badRelay.messages()) != 0 {
		t.Errorf("the self-signed relay saw %d AUTH exchanges and %d messages; want none", n, len(badRelay.messages()))
	}
	// Each MX session's outcome reached the TLS-RPT counts.
	rep := runBin(t, "", nil, "", nil, "tls-report", "--config", cfgPath)
	for _, re := range []string{`dane\.test\s+tlsa\s+1\s+0\s`, `sts\.test\s+sts\s+\d+\s+[1-9]\d*\s+certificate-not-trusted=`} {
		if !regexp.MustCompile(re).MatchString(rep.stdout) {
			t.Errorf("sluice tls-report lacks %s:\n%s%s", re, rep.stdout, rep.stderr)
		}
	}
	// The log is written a few milliseconds behind (logbatch): wait for
	// the last of the lines below.
	var log string
	testwait.Until(t, 10*time.Second, "the delivery lines in the log", func() bool {
		log = p.log()
		return strings.Contains(log, "status=sent tls=TLSv1.3 verified=pkix tls_policy=relay") &&
			strings.Contains(log, "status=sent tls=TLSv1.3 verified=dane tls_policy=dane") &&
			strings.Contains(log, "status=deferred tls_policy=mta-sts")
	})
	for _, want := range []string{
		"to=x@dane.test relay=mx.dane.test[127.0.0.1]:" + mxPort,
		"status=sent tls=TLSv1.3 verified=dane tls_policy=dane",
		"status=sent tls=TLSv1.3 verified=pkix tls_policy=relay",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	if re := `to=x@sts\.test relay=mx\.sts\.test\[127\.0\.0\.1\]:\d+ delay=\S+ dsn=4\.7\.5 status=deferred tls_policy=mta-sts text=`; !regexp.MustCompile(re).MatchString(log) {
		t.Errorf("the log does not match %s:\n%s", re, log)
	}
	p.stop(t)
}

// port is the port of a "host:port".
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestMTASTSBounceAfterLifetime: mail an enforced MTA-STS policy keeps
// from an MX with a self-signed certificate waits (4.7.5), is never sent,
// and bounces after max_lifetime with the policy's reason; the TLS metric
// counts the failures. The policy server is an HTTPS server with a test-CA
// certificate trusted through delivery.ca_file.
func TestMTASTSBounceAfterLifetime(t *testing.T) {
	ca := testca.New(t, "Sluice test CA")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	policy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n")
	}))
	policy.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Chain(ca.Issue(t, []string{"mta-sts.sts.test"}, time.Time{}, time.Time{}))}}
	policy.StartTLS()
	t.Cleanup(policy.Close)

	mxAddr := reserveAddr(t)
	mx := startTLSSink(t, mxAddr, testca.SelfSigned(t, "mx.sts.test"), "", "")
	cfg := outboundConfig(t, mxAddr,
		"sts.test. 300 IN MX 10 mx.sts.test.",
		"mx.sts.test. 300 IN A 127.0.0.1",
		`_mta-sts.sts.test. 300 IN TXT "v=STSv1; id=1"`,
		"mta-sts.sts.test. 300 IN A 127.0.0.1")
	cfg.Delivery.CAFile = caFile
	cfg.Queue.MaxLifetime = cfgDuration(3 * time.Second)
	box := localBox(t, cfg, "sender")
	srv := servertest.Start(t, cfg, server.WithMTASTSPort(mustPort(t, policy.Listener.Addr().String())))
	servertest.MustSend(t, srv.Addr, "sender@localhost", []string{"x@sts.test"}, servertest.Message("sender@localhost", "x@sts.test", "to sts", "x\r\n"))
	bounces := servertest.WaitFiles(t, box, 1, 20*time.Second)
	b, _ := os.ReadFile(bounces[0])
	for _, want := range []string{"x@sts.test", "4.4.7", "delivery time expired", "MTA-STS policy of sts.test (mode enforce)", "self-signed certificate not trusted"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if n := len(mx.messages()); n != 0 {
		t.Errorf("the MX got %d messages; the policy forbids it", n)
	}
	got, text := scrape(t, cfg)
	if got[`sluice_delivery_tls_total{policy="mta-sts",result="certificate-not-trusted"}`] < 1 {
		t.Errorf("no mta-sts certificate-not-trusted failure counted:\n%s", text)
	}
}

// mustPort is the port of a "host:port" as a number.
func mustPort(t *testing.T, addr string) int {
	n, err := strconv.Atoi(port(addr))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
