package server_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/internal/testwait"

	"github.com/sluice-mta/sluice/core/servertest"
)

// tlsClient is a Python client that says EHLO, STARTTLS (presenting the
// certificate and key given as the second and third arguments, if any) and
// EHLO again, and prints the protocol version and cipher.
const tlsClient = `
import smtplib, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if len(sys.argv) > 3:
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port), timeout=20)
s.ehlo("client.test")
s.starttls(context=ctx)
s.ehlo("client.test")
print(s.sock.version(), s.sock.cipher()[0])
s.quit()
`

// clientCert makes a client certificate with openssl and returns its
// files and its SHA-256 fingerprint as openssl prints it.
func clientCert(t *testing.T) (cert, key, fingerprint string) {
	t.Helper()
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/O=Client Org/CN=mx.client.example", "-keyout", key, "-out", cert).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	out, err := exec.Command("openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert).Output()
	if err != nil {
		t.Fatalf("openssl x509: %v", err)
	}
	_, fp, ok := strings.Cut(strings.TrimSpace(string(out)), "=")
	if !ok {
		t.Fatalf("openssl x509 -fingerprint printed %q", out)
	}
	return cert, key, fp
}

// logLines returns the log lines with msg="want" (or msg=want).
func logLines(log, msg string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, " msg="+msg+" ") || strings.Contains(l, ` msg="`+msg+`" `) {
			out = append(out, l)
		}
	}
	return out
}

// TestTLSLogAndMetrics: a Python client presenting a certificate and one
// presenting none each get a "tls" line with the session's version and
// cipher, the first also the certificate's subject, issuer and
// fingerprint (as openssl prints it), and are counted by version, cipher
// and client_cert. A TLS 1.0 client at [smtp] (TLS 1.2 minimum) gets a
// structured "tls handshake failed" line (service, client, session,
// reason=version) and is counted in sluice_smtp_tls_failures_total;
// go-smtp's unstructured "error handling" warning is gone. Each session's
// disconnect line carries its tls version, cipher and certificate
// fingerprint too (tls=none for the failed one).
func TestTLSLogAndMetrics(t *testing.T) {
	for _, tool := range []string{"python3", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not installed")
		}
	}
	cfg := servertest.Config(t)
	if !cfg.SMTP.TLSAskClientCert {
		t.Fatal("[smtp] tls_ask_client_cert is not on by default")
	}
	s, logs := startLogged(t, cfg)
	cert, key, fp := clientCert(t)

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("python3", append([]string{"-c", tlsClient, s.addr}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("python3: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	withCert := run(cert, key)
	logs.WaitFor(t, "cert_sha256="+fp, 10*time.Second)
	without := run()
	testwait.Until(t, 10*time.Second, "the second session's tls line", func() bool { return len(logLines(logs.String(), "tls")) >= 2 })
	lines := logLines(logs.String(), "tls")
	if len(lines) != 2 {
		t.Fatalf("%d tls lines, want 2:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, tc := range []struct {
		client   string // the Python client's "TLSv1.3 TLS_AES_256_GCM_SHA384"
		withCert bool
	}{{withCert, true}, {without, false}} {
		version, cipher, _ := strings.Cut(tc.client, " ")
		l := lines[i]
		for _, want := range []string{"service=smtp", "client=127.0.0.1", "session=", `version="TLS ` + strings.TrimPrefix(version, "TLSv") + `"`, "cipher=" + cipher} {
			if !strings.Contains(l, want) {
				t.Errorf("tls line %q lacks %s (the client saw %s)", l, want, tc.client)
			}
		}
		certFields := []string{`cert_subject="CN=mx.client.example,O=Client Org"`, `cert_issuer="CN=mx.client.example,O=Client Org"`, "cert_sha256=" + fp}
		for _, f := range certFields {
			if strings.Contains(l, f) != tc.withCert {
				t.Errorf("tls line %q: has %s = %v, want %v", l, f, !tc.withCert, tc.withCert)
			}
		}
	}

	// Each session's disconnect line says the same: the one line of a
	// session tells how it was secured.
	testwait.Until(t, 10*time.Second, "the two sessions' disconnect lines", func() bool { return len(logLines(logs.String(), "disconnect")) >= 2 })
	for i, tc := range []string{withCert, without} {
		version, cipher, _ := strings.Cut(tc, " ")
		session := regexp.MustCompile(`session=([0-9a-z]+)`).FindStringSubmatch(lines[i])[1]
		var disc string
		for _, l := range logLines(logs.String(), "disconnect") {
			if strings.Contains(l, "session="+session+" ") {
				disc = l
			}
		}
		want := `tls="TLS ` + strings.TrimPrefix(version, "TLSv") + `" cipher=` + cipher
		if i == 0 {
			want += " cert_sha256=" + fp
		}
		if !strings.Contains(disc, want) || (i == 1 && strings.Contains(disc, "cert_sha256")) {
			t.Errorf("disconnect line of session %s = %q, want %s", session, disc, want)
		}
	}

	// A TLS 1.0 client where 1.2 is the minimum.
	out, err := exec.Command("python3", "-c", tls10Client, s.addr).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "refused") {
		t.Fatalf("TLS 1.0 client: %v, said %q; want refused", err, out)
	}
	logs.WaitFor(t, `msg="tls handshake failed"`, 10*time.Second)
	failed := logLines(logs.String(), "tls handshake failed")
	if len(failed) != 1 || !regexp.MustCompile(`service=smtp session=[0-9a-z]{12} client=127\.0\.0\.1 reason=version err=".*unsupported versions`).MatchString(failed[0]) {
		t.Errorf("handshake failure logged as %q, want one line with service, session, client, reason=version, err", failed)
	} else {
		session := regexp.MustCompile(`session=([0-9a-z]+)`).FindStringSubmatch(failed[0])[1]
		testwait.Until(t, 10*time.Second, "the failed session's disconnect line", func() bool {
			return strings.Contains(logs.String(), "msg=disconnect service=smtp session="+session)
		})
		for _, l := range logLines(logs.String(), "disconnect") {
			if strings.Contains(l, "session="+session+" ") && !strings.HasSuffix(l, " tls=none") {
				t.Errorf("disconnect line of the failed handshake %q, want tls=none", l)
			}
		}
	}

	samples, text := scrape(t, cfg)
	for series, want := range map[string]float64{
		`sluice_smtp_tls_total{cipher="` + cipherOf(withCert) + `",client_cert="presented",service="smtp",version="tls1.3"}`: 1,
		`sluice_smtp_tls_total{cipher="` + cipherOf(without) + `",client_cert="none",service="smtp",version="tls1.3"}`:       1,
		`sluice_smtp_tls_failures_total{reason="version",service="smtp"}`:                                                    1,
	} {
		if samples[series] != want {
			t.Errorf("%s = %v, want %v", series, samples[series], want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
	stopAndCheck(t, s, logs)
}

// cipherOf is the cipher of the Python client's "VERSION CIPHER" line.
func cipherOf(line string) string {
	_, c, _ := strings.Cut(line, " ")
	return c
}

// stopAndCheck stops the server and checks that go-smtp logged no
// "error handling" warning (a failed handshake is the guard's line only).
func stopAndCheck(t *testing.T, s *running, logs *testlog.Buffer) {
	t.Helper()
	s.stop()
	if strings.Contains(logs.String(), "error handling") {
		t.Errorf("go-smtp's unstructured warning is still logged:\n%s", logs.String())
	}
}
