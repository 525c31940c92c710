package antiabuse

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/tlsconf"
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
	certPEM, keyPEM, err := tlsconf.GenerateSelfSigned("mx.partner.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mx := &daneMX{addr: ln.Addr().String()}
	_, port, _ := net.SplitHostPort(mx.addr)
	mx.tlsa = fmt.Sprintf("_%s._tcp.mx.partner.example. 300 IN TLSA 3 1 1 %x", port, sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo))
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mxSession{mx: mx, c: c}, nil }))
	srv.Domain = "mx.partner.example"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
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
