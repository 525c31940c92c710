package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSelfSignedServesRSAAndECDSA: the self-signed default is a pair, and
// a TLS 1.2 client offering only RSA-authenticated suites completes the
// handshake with the RSA certificate while a modern one gets ECDSA.
func TestSelfSignedServesRSAAndECDSA(t *testing.T) {
	s, err := New(Options{Dir: filepath.Join(t.TempDir(), "tls"), Hostname: "mx.example.com", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want x509.PublicKeyAlgorithm
	}{
		{"RSA only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}}, x509.RSA},
		{"TLS 1.3", &tls.Config{}, x509.ECDSA},
		{"ECDSA suites", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, x509.ECDSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			defer cc.Close()
			defer sc.Close()
			srv := tls.Server(sc, s.Config())
			go srv.Handshake()
			tc.cfg.InsecureSkipVerify = true
			cl := tls.Client(cc, tc.cfg)
			if err := cl.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := cl.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm; got != tc.want {
				t.Errorf("served %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"", tls.VersionTLS12, true},
		{"1.0", tls.VersionTLS10, true},
		{"1.1", tls.VersionTLS11, true},
		{"1.2", tls.VersionTLS12, true},
		{"1.3", tls.VersionTLS13, true},
		{"TLS1.0", 0, false},
		{"1.4", 0, false},
	} {
		got, err := ParseVersion(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestConfiguredExtraCertificate: a configured ECDSA certificate with an
// RSA one in Extra serves each client one it supports, and a change to
// the extra file is noticed by Watch's check.
func TestConfiguredExtraCertificate(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, gen func(string, time.Time) ([]byte, []byte, error)) KeyPair {
		c, k, err := gen("mx.example.com", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p := KeyPair{filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")}
		if err := os.WriteFile(p.CertFile, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.KeyFile, k, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, rsa := write("ec", GenerateSelfSigned), write("rsa", GenerateSelfSignedRSA)
	s, err := New(Options{CertFile: ec.CertFile, KeyFile: ec.KeyFile, Extra: []KeyPair{rsa}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		suite uint16
		want  x509.PublicKeyAlgorithm
	}{
		{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, x509.RSA},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, x509.ECDSA},
	} {
		cc, sc := net.Pipe()
		go tls.Server(sc, s.Config()).Handshake()
		cl := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tc.suite}})
		if err := cl.Handshake(); err != nil {
			t.Fatalf("suite %s: %v", tls.CipherSuiteName(tc.suite), err)
		}
		if got := cl.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm; got != tc.want {
			t.Errorf("suite %s: served %v, want %v", tls.CipherSuiteName(tc.suite), got, tc.want)
		}
		cc.Close()
		sc.Close()
	}
	if s.changed() {
		t.Error("changed() right after loading")
	}
	write("rsa", GenerateSelfSignedRSA)
	os.Chtimes(rsa.CertFile, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if !s.changed() {
		t.Error("a new extra certificate file is not noticed")
	}
}

// TestLegacySuitesBelowTLS12: a client that knows only RSA key exchange
// (TLS_RSA_WITH_AES_128_CBC_SHA, as old TLS 1.0 stacks do) completes the
// handshake, with the RSA certificate, where the minimum is 1.0, and is
// refused at the default minimum, where only forward-secret suites are
// offered.
func TestLegacySuitesBelowTLS12(t *testing.T) {
	s, err := New(Options{Dir: filepath.Join(t.TempDir(), "tls"), Hostname: "mx.example.com", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		server *tls.Config
		client *tls.Config
		ok     bool
	}{
		{"TLS 1.0 minimum, TLS 1.0 client", s.ConfigMin(tls.VersionTLS10),
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}, true},
		{"TLS 1.0 minimum, TLS 1.2 client", s.ConfigMin(tls.VersionTLS10),
			&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}, true},
		{"default minimum", s.Config(),
			&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			defer cc.Close()
			defer sc.Close()
			srv := tls.Server(sc, tc.server)
			go func() { srv.Handshake(); sc.Close() }()
			tc.client.InsecureSkipVerify = true
			cl := tls.Client(cc, tc.client)
			err := cl.Handshake()
			if (err == nil) != tc.ok {
				t.Fatalf("handshake: %v, want success %v", err, tc.ok)
			}
			if err == nil && cl.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm != x509.RSA {
				t.Errorf("served %v, want the RSA certificate", cl.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm)
			}
		})
	}
	if cs := s.Config().CipherSuites; cs != nil {
		t.Errorf("the default minimum sets CipherSuites %v, want crypto/tls's defaults", cs)
	}
}

// TestExtraCertificateMissing: an extra certificate that cannot be read
// stops New with an error naming its files.
func TestExtraCertificateMissing(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, cert, key, "mx.example.com")
	missing := KeyPair{filepath.Join(dir, "rsa.crt"), filepath.Join(dir, "rsa.key")}
	_, err := New(Options{CertFile: cert, KeyFile: key, Extra: []KeyPair{missing}, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), missing.CertFile) || !strings.Contains(err.Error(), missing.KeyFile) {
		t.Errorf("New with a missing extra certificate: %v, want an error naming %s and %s", err, missing.CertFile, missing.KeyFile)
	}
}
