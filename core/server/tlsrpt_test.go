package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	moxtlsrpt "github.com/mjl-/mox/tlsrpt"

	"github.com/sluice-mta/sluice/core/auth/dkimkey"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/testclock"
	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// TestTLSReportEndToEnd: the server counts outbound TLS outcomes;
// `sluice tls-report` shows today's; after midnight UTC the report goes,
// through the queue, to the address remote.test publishes at
// _smtp._tls.remote.test, DKIM-signed (python3-dkim verifies it against
// the loopback DNS) and readable by mox's parser with the same counts. A
// domain without a TLSRPT record gets nothing.
func TestTLSReportEndToEnd(t *testing.T) {
	key, err := dkimkey.Generate(dkimkey.RSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	record, err := dkimkey.ZoneRecord("sender.test", "s1", key)
	if err != nil {
		t.Fatal(err)
	}
	mxAddr := reserveAddr(t)
	mx := startSink(t, mxAddr, false, nil)
	cfg := outboundConfig(t, mxAddr, record,
		"reports.test. 300 IN MX 10 mx.remote.test.",
		`_smtp._tls.remote.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,https://reports.test/tlsrpt"`)
	cfg.Hostname = "mx.sender.test"
	pem, _ := dkimkey.MarshalPEM(key)
	keyPath := filepath.Join(cfg.DataDir, "s1.key")
	if err := os.WriteFile(keyPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.DKIM.Keys = []config.DKIMKey{{Domain: "sender.test", Selector: "s1", PrivateKey: keyPath}}
	cfg.TLSRPT.Enabled = true
	cfg.TLSRPT.OrganizationName = "Sender Test Org"
	clock := testclock.New(time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC))
	s := servertest.Start(t, cfg, server.WithTLSReportClock(clock.Now, 20*time.Millisecond))

	// What outbound delivery records (core/delivery/remote calls Record).
	sts := []string{"version: STSv1", "mode: enforce", "mx: mx.remote.test", "max_age: 604800"}
	ctx := context.Background()
	for range 5 {
		s.TLSReport().Record(ctx, tlsrpt.Result{PolicyDomain: "remote.test", PolicyType: tlsrpt.PolicySTS, PolicyStrings: sts,
			MXHost: "mx.remote.test", Success: true})
	}
	for range 2 {
		s.TLSReport().Record(ctx, tlsrpt.Result{PolicyDomain: "remote.test", PolicyType: tlsrpt.PolicySTS, PolicyStrings: sts,
			MXHost: "mx.remote.test", SendingIP: netip.MustParseAddr("127.0.0.1"), ReceivingIP: netip.MustParseAddr("127.0.0.1"),
			Failure: tlsrpt.ResultCertificateExpired, Detail: "x509: certificate has expired or is not yet valid"})
	}
	s.TLSReport().Record(ctx, tlsrpt.Result{PolicyDomain: "norpt.test", PolicyType: tlsrpt.PolicyNone, MXHost: "mx.norpt.test", Success: true})

	tlsReport := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(sluiceBin, append([]string{"tls-report", "--socket", cfg.Admin.Socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("sluice tls-report %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := tlsReport("--domain", "remote.test")
	for _, re := range []string{`TLS sessions today \(2026-11-27 UTC`, `remote\.test\s+sts\s+5\s+2\s+certificate-expired=2\n`,
		`remote\.test sts: certificate-expired mx\.remote\.test \[127\.0\.0\.1\] from 127\.0\.0\.1 ×2: "x509: certificate has expired`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("sluice tls-report --domain remote.test lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "norpt.test") {
		t.Errorf("--domain remote.test shows another domain:\n%s", out)
	}
	if out := tlsReport(); !regexp.MustCompile(`norpt\.test\s+no-policy-found\s+1\s+0\s+-`).MatchString(out) {
		t.Errorf("sluice tls-report lacks norpt.test:\n%s", out)
	}

	// The next day, after the reports' delay: one report, through the queue.
	clock.Add(10 * time.Hour)
	msg := waitSink(t, mx, 1, 20*time.Second)[0]
	if env := mx.envelopes()[0]; env.From != "postmaster@mx.sender.test" || !slices.Equal(env.Rcpts, []string{"tlsrpt@reports.test"}) {
		t.Errorf("report envelope %+v", env)
	}
	pythonDKIMVerify(t, cfg.DNS.Servers[0], msg)
	sig := regexp.MustCompile(`(?s)DKIM-Signature:.*?\bh=([^;]*);`).FindSubmatch(msg)
	if sig == nil || !strings.Contains(strings.ToLower(string(sig[1])), "tls-report-domain:tls-report-submitter") {
		t.Errorf("the TLS-Report fields are not signed: %q", sig)
	}
	rep, err := moxtlsrpt.ParseMessage(slog.New(slog.DiscardHandler), bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("mox cannot read the report: %v\n%s", err, msg)
	}
	if rep.OrganizationName != "Sender Test Org" || rep.ContactInfo != "postmaster@mx.sender.test" || len(rep.Policies) != 1 ||
		!rep.DateRange.Start.Equal(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("report %+v", rep)
	}
	p := rep.Policies[0]
	if p.Policy.Domain != "remote.test" || p.Policy.Type != moxtlsrpt.STS || p.Summary.TotalSuccessfulSessionCount != 5 ||
		p.Summary.TotalFailureSessionCount != 2 || len(p.FailureDetails) != 1 ||
		p.FailureDetails[0].ResultType != moxtlsrpt.ResultCertificateExpired || p.FailureDetails[0].FailedSessionCount != 2 {
		t.Errorf("policy result %+v", p)
	}
	for _, want := range []string{"TLS-Report-Domain: remote.test\r\n", "TLS-Report-Submitter: mx.sender.test\r\n",
		`Content-Type: multipart/report; report-type="tlsrpt"`,
		`filename="mx.sender.test!remote.test!1795737600!1795823999.json.gz"`} {
		if !bytes.Contains(msg, []byte(want)) {
			t.Errorf("the report lacks %q:\n%s", want, msg)
		}
	}
	waitQueueEmpty(t, &running{srv: s.Server, addr: s.Addr})
	if n := mx.count(); n != 1 {
		t.Errorf("the MX got %d messages; norpt.test publishes no record and must get none", n)
	}
	logs := strings.Join(s.Logs(), "\n")
	for _, want := range []string{"tlsrpt: report queued", "rua=https://reports.test/tlsrpt", "https reports are not posted"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if out := tlsReport("--domain", "remote.test"); !strings.Contains(out, "no outbound TLS sessions to remote.test counted today (2026-11-28 UTC)") {
		t.Errorf("a new day:\n%s", out)
	}
}

// pythonDKIMVerify checks msg's DKIM signatures with Debian's python3-dkim
// (core/auth/testdata/dkimverify.py), asking the loopback DNS at dnsAddr.
func pythonDKIMVerify(t *testing.T, dnsAddr string, msg []byte) {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim, dns.resolver").Run(); err != nil {
		t.Fatalf("python3-dkim is missing (run scripts/install-test-deps.sh, as make test does): %v", err)
	}
	cmd := exec.Command(py, "../auth/testdata/dkimverify.py", dnsAddr)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("python3-dkim does not verify the report: %v\n%s\n%s", err, out, msg)
	}
}
