package tlsconf

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/renameio/v2"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func leafOf(t *testing.T, s *Store) *x509.Certificate {
	t.Helper()
	c := s.Certificate()
	if c == nil || c.Leaf == nil {
		t.Fatal("no certificate")
	}
	return c.Leaf
}

func TestSelfSignedGeneratedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	s1, err := New(Options{Dir: dir, Hostname: "mx.example.com", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, s1)
	if err := leaf.VerifyHostname("mx.example.com"); err != nil {
		t.Errorf("generated certificate: %v", err)
	}
	if !s1.SelfSigned() {
		t.Error("SelfSigned() = false")
	}
	if fi, err := os.Stat(filepath.Join(dir, SelfSignedKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	s2, err := New(Options{Dir: dir, Hostname: "mx.example.com", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if leafOf(t, s2).SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("a second start generated a new certificate instead of reusing the first")
	}
	s3, err := New(Options{Dir: dir, Hostname: "other.example.com", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := leafOf(t, s3).VerifyHostname("other.example.com"); err != nil {
		t.Errorf("after a hostname change: %v", err)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, o := range []Options{
		{CertFile: "/x.pem"},
		{KeyFile: "/x.pem"},
		{Hostname: "mx.example.com"},
		{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"},
	} {
		o.Logger = quiet()
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// writePair writes a fresh certificate for host to cert and key.
func writePair(t *testing.T, cert, key, host string) {
	t.Helper()
	c, k, err := GenerateSelfSigned(host, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := renameio.WriteFile(key, k, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := renameio.WriteFile(cert, c, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReloadKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, cert, key, "a.example")
	s, err := New(Options{CertFile: cert, KeyFile: key, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("Reload of a broken key: %v, want an error naming %s", err, key)
	}
	if leafOf(t, s).VerifyHostname("a.example") != nil {
		t.Error("the old certificate was dropped after a failed reload")
	}
	cfg := s.Config()
	if cfg.MinVersion < 0x0303 {
		t.Errorf("MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
}

func TestWatchReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, cert, key, "a.example")
	s, err := New(Options{CertFile: cert, KeyFile: key, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx, 5*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	writePair(t, cert, key, "b.example")
	deadline := time.Now().Add(20 * time.Second)
	for leafOf(t, s).VerifyHostname("b.example") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never loaded the new certificate")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cert2, err := s.GetCertificate(nil)
	if err != nil || cert2.Leaf.VerifyHostname("b.example") != nil {
		t.Errorf("GetCertificate does not return the new certificate: %v", err)
	}
}
