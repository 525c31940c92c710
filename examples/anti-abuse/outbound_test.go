package antiabuse

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// daneMX plays another provider's mail exchanger, mx.partner.example: SMTP
// with STARTTLS and a self-signed certificate, which only its DANE TLSA
// record vouches for. It keeps the recipients of each message and
// whether the message came over TLS.
type daneMX struct {
	addr string
	// tlsa is the DANE-EE record of its certificate for the zone.
	tlsa string

	mu    sync.Mutex
	rcpts [][]string
	tls   []bool
}

// startDANEMX listens on 127.0.0.1 until the test ends.
func startDANEMX(t *testing.T) *daneMX {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.partner.example"},
		DNSNames: []string{"mx.partner.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mx := &daneMX{addr: ln.Addr().String()}
	_, port, _ := net.SplitHostPort(mx.addr)
	mx.tlsa = fmt.Sprintf("_%s._tcp.mx.partner.example. 300 IN TLSA 3 1 1 %x", port, sha256.Sum256(leaf.RawSubjectPublicKeyInfo))
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mxSession{mx: mx, c: c}, nil }))
	srv.Domain = "mx.partner.example"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return mx
}

// got returns the recipients of each message and whether it came over
// TLS.
func (mx *daneMX) got() ([][]string, []bool) {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return append([][]string(nil), mx.rcpts...), append([]bool(nil), mx.tls...)
}

type mxSession struct {
	mx    *daneMX
	c     *smtp.Conn
	rcpts []string
}

func (s *mxSession) Reset()                               { s.rcpts = nil }
func (*mxSession) Logout() error                          { return nil }
func (s *mxSession) Mail(string, *smtp.MailOptions) error { s.rcpts = nil; return nil }

func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *mxSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	_, isTLS := s.c.TLSConnectionState()
	s.mx.mu.Lock()
	s.mx.rcpts = append(s.mx.rcpts, s.rcpts)
	s.mx.tls = append(s.mx.tls, isTLS)
	s.mx.mu.Unlock()
	return nil
}
