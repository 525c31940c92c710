package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"os/exec"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/servertest"
)

// rsaOnlySuites are the TLS 1.2 cipher suites authenticated by an RSA
// certificate, all an old RSA-only client offers.
var rsaOnlySuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// TestRSAOnlyClientSTARTTLS: a TLS 1.2 client offering only
// RSA-authenticated suites completes STARTTLS against the default
// (self-signed) certificates and is served the RSA one, as does OpenSSL
// accepting only RSA signatures; a modern client still gets the ECDSA one.
func TestRSAOnlyClientSTARTTLS(t *testing.T) {
	cfg := servertest.Config(t)
	s := start(t, cfg)
	for _, tc := range []struct {
		name   string
		tc     *tls.Config
		keyAlg x509.PublicKeyAlgorithm
	}{
		{"RSA-only TLS 1.2", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: rsaOnlySuites}, x509.RSA},
		{"modern", &tls.Config{InsecureSkipVerify: true}, x509.ECDSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := smtp.DialStartTLS(s.addr, tc.tc)
			if err != nil {
				t.Fatalf("STARTTLS: %v", err)
			}
			defer c.Close()
			// The handshake runs with the first command after STARTTLS.
			if err := c.Mail("a@example.org", nil); err != nil {
				t.Fatalf("MAIL over TLS: %v", err)
			}
			st, ok := c.TLSConnectionState()
			if !ok || len(st.PeerCertificates) == 0 {
				t.Fatal("no TLS after STARTTLS")
			}
			if alg := st.PeerCertificates[0].PublicKeyAlgorithm; alg != tc.keyAlg {
				t.Errorf("served a %v certificate, want %v", alg, tc.keyAlg)
			}
		})
	}
	t.Run("openssl s_client -tls1_2 -sigalgs RSA+SHA256", func(t *testing.T) {
		if _, err := exec.LookPath("openssl"); err != nil {
			t.Skip("openssl not installed")
		}
		out := sClient(t, s.addr, "-tls1_2", "-sigalgs", "RSA+SHA256")
		for _, want := range []string{"O = Sluice self-signed", "Server public key is 2048 bit", "New, TLSv1.2, ", "Cipher is ECDHE-RSA-"} {
			if !strings.Contains(out, want) {
				t.Errorf("openssl s_client output lacks %q:\n%s", want, out)
			}
		}
	})
}

// tls10Client is a Python client speaking only TLS 1.0 (OpenSSL 3 needs
// security level 0 for it): it says EHLO, STARTTLS and EHLO again and
// prints the protocol version and cipher, or the error. A second argument
// is its OpenSSL cipher list ("AES128-SHA": RSA key exchange only, as old
// printers have).
const tls10Client = `
import smtplib, ssl, sys, warnings
warnings.simplefilter("ignore")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1
ctx.maximum_version = ssl.TLSVersion.TLSv1
ctx.set_ciphers((sys.argv[2] if len(sys.argv) > 2 else "DEFAULT") + ":@SECLEVEL=0")
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port), timeout=20)
s.ehlo("client.test")
try:
    s.starttls(context=ctx)
    s.ehlo("client.test")
    print("ok", s.sock.version(), s.sock.cipher()[0])
except Exception as e:
    print("refused", e)
`

// TestTLS10Client: a TLS 1.0 client (Python's ssl with maximum_version
// TLSv1) gets through STARTTLS where the minimum is 1.0 and is refused
// where it is 1.2: [submission] tls_min_version = "1.0" beside [smtp] at
// the default, and [tls] min_version = "1.0" taken by [submission] while
// [smtp] tls_min_version = "1.2" overrides it. Where 1.0 is allowed, a
// client with RSA key exchange only (AES128-SHA) gets through too.
func TestTLS10Client(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	for _, conf := range []struct {
		name               string
		global, smtp, subm string
	}{
		{"submission tls_min_version", "", "", "1.0"},
		{"tls min_version", "1.0", "1.2", ""},
	} {
		t.Run(conf.name, func(t *testing.T) {
			cfg := servertest.Config(t)
			cfg.Submission.Listen = []string{"127.0.0.1:0"}
			cfg.TLS.MinVersion, cfg.SMTP.TLSMinVersion, cfg.Submission.TLSMinVersion = conf.global, conf.smtp, conf.subm
			s := start(t, cfg)
			for _, tc := range []struct {
				name, addr, ciphers, want string
			}{
				{"submission at 1.0", submissionAddr(t, s), "", "ok TLSv1 "},
				{"submission at 1.0, RSA key exchange only", submissionAddr(t, s), "AES128-SHA", "ok TLSv1 AES128-SHA"},
				{"smtp at 1.2", s.addr, "", "refused"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					args := []string{"-c", tls10Client, tc.addr}
					if tc.ciphers != "" {
						args = append(args, tc.ciphers)
					}
					out, err := exec.Command("python3", args...).CombinedOutput()
					if err != nil {
						t.Fatalf("python3: %v\n%s", err, out)
					}
					if !strings.HasPrefix(string(out), tc.want) {
						t.Errorf("TLS 1.0 client said %q, want %q", out, tc.want)
					}
				})
			}
		})
	}
}
