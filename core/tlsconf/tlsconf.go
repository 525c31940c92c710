// Package tlsconf holds the server's TLS certificate: it loads the PEM files
// named in [tls], reloads them on demand (SIGHUP) and when they change on
// disk, and, when none are configured, generates self-signed certificates
// for the hostname once (an ECDSA and an RSA one, each client getting one it
// supports) so that STARTTLS works out of the box.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Store.
type Options struct {
	// CertFile and KeyFile are PEM files; both empty means a self-signed
	// certificate in Dir.
	CertFile, KeyFile string
	// Dir holds the generated self-signed certificate (cert.pem, key.pem);
	// used only when CertFile and KeyFile are empty.
	Dir string
	// Extra are more certificates served beside CertFile (an RSA one
	// beside an ECDSA one, say): each client gets CertFile if it supports
	// it, else the first of Extra it does. Ignored with a self-signed
	// certificate, which has its RSA companion.
	Extra []KeyPair
	// Hostname is the name a generated certificate is made for.
	Hostname string
	// Logger receives reloads and reload failures; nil means slog.Default.
	Logger *slog.Logger
}

// KeyPair names a PEM certificate chain and its key.
type KeyPair struct{ CertFile, KeyFile string }

// Store is the current certificate. It is safe for concurrent use.
type Store struct {
	opts     Options
	log      *slog.Logger
	cur      atomic.Pointer[tls.Certificate]
	more     atomic.Pointer[[]*tls.Certificate] // Extra (or the self-signed RSA one)
	mu       sync.Mutex                         // serialises Reload and the stamps
	stamp    []fileStamp
	selfSign bool
}

// fileStamp identifies one version of a file.
type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// Self-signed file names inside Options.Dir.
const (
	SelfSignedCert = "cert.pem"
	SelfSignedKey  = "key.pem"
	// The RSA certificate served beside the ECDSA one.
	SelfSignedRSACert = "cert-rsa.pem"
	SelfSignedRSAKey  = "key-rsa.pem"
)

// New loads the configured certificate, or generates (or reuses) the
// self-signed one, and returns a Store serving it.
func New(opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{opts: opts, log: opts.Logger}
	switch {
	case opts.CertFile == "" && opts.KeyFile == "":
		if opts.Dir == "" || opts.Hostname == "" {
			return nil, errors.New("tlsconf: no certificate configured and no Dir/Hostname to generate one")
		}
		s.selfSign = true
		s.opts.CertFile = filepath.Join(opts.Dir, SelfSignedCert)
		s.opts.KeyFile = filepath.Join(opts.Dir, SelfSignedKey)
		generated, err := ensureSelfSigned(s.opts.CertFile, s.opts.KeyFile, opts.Hostname, time.Now(), GenerateSelfSigned)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: self-signed certificate in %s: %w", opts.Dir, err)
		}
		genRSA, err := ensureSelfSigned(filepath.Join(opts.Dir, SelfSignedRSACert), filepath.Join(opts.Dir, SelfSignedRSAKey), opts.Hostname, time.Now(), GenerateSelfSignedRSA)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: self-signed RSA certificate in %s: %w", opts.Dir, err)
		}
		generated = generated || genRSA
		s.opts.Extra = []KeyPair{{filepath.Join(opts.Dir, SelfSignedRSACert), filepath.Join(opts.Dir, SelfSignedRSAKey)}}
		if generated {
			s.log.Warn("tls: no [tls] cert configured; generated a self-signed certificate",
				"hostname", opts.Hostname, "cert", s.opts.CertFile)
		}
	case opts.CertFile == "" || opts.KeyFile == "":
		return nil, errors.New("tlsconf: [tls] cert and key must be set together (or both left empty for a self-signed certificate)")
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Files returns the certificate and key paths in use.
func (s *Store) Files() (cert, key string) { return s.opts.CertFile, s.opts.KeyFile }

// SelfSigned reports whether the Store serves a generated certificate.
func (s *Store) SelfSigned() bool { return s.selfSign }

// Reload reads the certificate and key again. On error the previous
// certificate stays in use and the error says which file is wrong.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

// pairs are every certificate and key file, CertFile's first.
func (s *Store) pairs() []KeyPair {
	return append([]KeyPair{{s.opts.CertFile, s.opts.KeyFile}}, s.opts.Extra...)
}

// stamps identifies the current version of every file.
func (s *Store) stamps() []fileStamp {
	var st []fileStamp
	for _, p := range s.pairs() {
		st = append(st, stampOf(p.CertFile), stampOf(p.KeyFile))
	}
	return st
}

func (s *Store) reloadLocked() error {
	s.stamp = s.stamps()
	var certs []*tls.Certificate
	for _, p := range s.pairs() {
		c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return fmt.Errorf("tlsconf: loading [tls] cert %s and key %s: %w; fix the files (the previous certificate stays in use)",
				p.CertFile, p.KeyFile, err)
		}
		certs = append(certs, &c)
	}
	cert, more := certs[0], certs[1:]
	s.more.Store(&more)
	old := s.cur.Swap(cert)
	if old != nil {
		s.log.Info("tls: certificate reloaded", "cert", s.opts.CertFile, "not_after", cert.Leaf.NotAfter)
	}
	return nil
}

// changed reports whether any file differs from the last load.
func (s *Store) changed() bool { return !slices.Equal(s.stamps(), s.stamp) }

// Watch polls the files every interval and reloads them when they change,
// until ctx is done. A failed reload is logged and retried at the next
// change.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.changed() {
			if err := s.reloadLocked(); err != nil {
				s.log.Error("tls: reload failed", "err", err)
			}
		}
		s.mu.Unlock()
	}
}

// Certificate returns the current certificate.
func (s *Store) Certificate() *tls.Certificate { return s.cur.Load() }

// GetCertificate is a tls.Config.GetCertificate returning the current
// certificate, or to a client that cannot use it (one offering only
// RSA-authenticated cipher suites, say) the first extra one it can.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cur := s.cur.Load()
	if more := s.more.Load(); more != nil && hello != nil && hello.SupportsCertificate(cur) != nil {
		for _, c := range *more {
			if hello.SupportsCertificate(c) == nil {
				return c, nil
			}
		}
	}
	return cur, nil
}

// Config returns a server tls.Config (TLS 1.2 minimum) that always serves
// the current certificate.
func (s *Store) Config() *tls.Config { return s.ConfigMin(tls.VersionTLS12) }

// ConfigMin is Config with min as the lowest protocol version. Below TLS
// 1.2 (a service opened to old clients) it also offers the suites with RSA
// key exchange that crypto/tls leaves out by default (LegacySuites): many
// TLS 1.0 stacks of printers and old platforms have nothing else.
func (s *Store) ConfigMin(min uint16) *tls.Config {
	c := &tls.Config{
		MinVersion:     min,
		GetCertificate: s.GetCertificate,
	}
	if min < tls.VersionTLS12 {
		c.CipherSuites = LegacySuites()
	}
	return c
}

// LegacySuites are the TLS 1.0-1.2 cipher suites of a service whose
// minimum version is below 1.2: those crypto/tls calls secure
// (tls.CipherSuites) plus AES with RSA key exchange, which it counts as
// insecure (no forward secrecy) but is better than the plain text such a
// client otherwise falls back to. RC4 and 3DES stay out. crypto/tls orders
// the suites itself, so a client that can do ECDHE still gets it.
func LegacySuites() []uint16 {
	var out []uint16
	for _, cs := range tls.CipherSuites() {
		out = append(out, cs.ID)
	}
	return append(out, rsaKeyExchange...)
}

// rsaKeyExchange are the AES suites with RSA key exchange.
var rsaKeyExchange = []uint16{
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// Versions are the names [tls] min_version takes.
var Versions = map[string]uint16{
	"1.0": tls.VersionTLS10,
	"1.1": tls.VersionTLS11,
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// ParseVersion returns the protocol version named v ("1.0" to "1.3"; ""
// is the default, 1.2).
func ParseVersion(v string) (uint16, error) {
	if v == "" {
		return tls.VersionTLS12, nil
	}
	if n, ok := Versions[v]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("TLS version %q: want \"1.0\", \"1.1\", \"1.2\" or \"1.3\"", v)
}

// CAPool reads a PEM file of CA certificates into a pool, for a
// configuration's CA-file key (a private CA that signs a peer's
// certificate instead of the system roots).
func CAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
