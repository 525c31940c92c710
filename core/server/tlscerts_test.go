package server_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/servertest"
)

// opensslCert makes a self-signed certificate for mx.example.com with
// openssl (-newkey newkey…) and organization org: dir/name.crt and its key
// dir/name.key.
func opensslCert(t *testing.T, dir, name, org string, newkey ...string) {
	t.Helper()
	args := append([]string{"req", "-x509", "-nodes", "-days", "2", "-newkey"}, newkey...)
	args = append(args, "-subj", "/CN=mx.example.com/O="+org, "-addext", "subjectAltName=DNS:mx.example.com",
		"-keyout", filepath.Join(dir, name+".key"), "-out", filepath.Join(dir, name+".crt"))
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
}

// sClient runs openssl s_client with STARTTLS against addr and returns
// its output (the certificate's subject, the protocol and cipher).
func sClient(t *testing.T, addr string, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", append([]string{"s_client", "-starttls", "smtp", "-connect", addr}, args...)...)
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	out, _ := cmd.CombinedOutput() // a refused handshake exits 1; the output says what happened
	return string(out)
}

// TestConfiguredCertificateList: [tls] cert and key (ECDSA) with an
// [[tls.extra]] RSA certificate, files made by openssl and named with
// {data_dir} in a configuration file, serve each client one it can use: an
// OpenSSL client that accepts only RSA signatures (-sigalgs RSA+SHA256) or
// offers only RSA-authenticated suites gets the RSA certificate, one
// offering only ECDSA suites and a default TLS 1.3 client get the ECDSA one.
func TestConfiguredCertificateList(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "data", "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	opensslCert(t, certs, "ec", "Configured EC", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
	opensslCert(t, certs, "rsa", "Configured RSA", "rsa:2048")
	path := filepath.Join(dir, "sluice.toml")
	text := fmt.Sprintf(`hostname = "mx.example.com"
data_dir = %q
[smtp]
listen = ["127.0.0.1:0"]
[submission]
listen = []
tls_listen = []
[tls]
cert = "{data_dir}/certs/ec.crt"
key = "{data_dir}/certs/ec.key"
[[tls.extra]]
cert = "{data_dir}/certs/rsa.crt"
key = "{data_dir}/certs/rsa.key"
`, filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TLS.Extra) != 1 || cfg.TLS.Extra[0].Cert != filepath.Join(certs, "rsa.crt") {
		t.Fatalf("[[tls.extra]] loaded as %+v", cfg.TLS.Extra)
	}
	s := servertest.Start(t, cfg)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"RSA signatures only, TLS 1.2", []string{"-tls1_2", "-sigalgs", "RSA+SHA256"}, []string{"O = Configured RSA", "New, TLSv1.2, ", "Server public key is 2048 bit"}},
		{"RSA-authenticated suites only", []string{"-tls1_2", "-cipher", "aRSA"}, []string{"O = Configured RSA", "Cipher is ECDHE-RSA-"}},
		{"ECDSA suites only", []string{"-tls1_2", "-cipher", "aECDSA"}, []string{"O = Configured EC", "Cipher is ECDHE-ECDSA-"}},
		{"default TLS 1.3", nil, []string{"O = Configured EC", "New, TLSv1.3, "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := sClient(t, s.Addr, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("openssl s_client %s: output lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
				}
			}
		})
	}
}
