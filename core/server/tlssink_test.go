package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// tlsSink is a remote SMTP server offering STARTTLS with a chosen
// certificate and, with a user set, requiring AUTH PLAIN: it records the
// messages, the login each came with and how many AUTH exchanges began.
type tlsSink struct {
	addr       string
	user, pass string

	mu    sync.Mutex
	msgs  []tlsSinkMsg
	auths int
}

type tlsSinkMsg struct {
	rcpts []string
	user  string
}

// startTLSSink listens on addr with cert until the test ends.
func startTLSSink(t *testing.T, addr string, cert tls.Certificate, user, pass string) *tlsSink {
	t.Helper()
	s := &tlsSink{addr: addr, user: user, pass: pass}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &tlsSinkSession{s: s}, nil }))
	srv.Domain = "tlssink.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *tlsSink) messages() []tlsSinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tlsSinkMsg(nil), s.msgs...)
}

func (s *tlsSink) authCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

type tlsSinkSession struct {
	s    *tlsSink
	user string
	cur  tlsSinkMsg
}

var _ smtp.AuthSession = (*tlsSinkSession)(nil)

func (ss *tlsSinkSession) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *tlsSinkSession) Auth(string) (sasl.Server, error) {
	ss.s.mu.Lock()
	ss.s.auths++
	ss.s.mu.Unlock()
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != ss.s.user || pass != ss.s.pass {
			return errors.New("bad credentials")
		}
		ss.user = user
		return nil
	}), nil
}

func (ss *tlsSinkSession) Mail(string, *smtp.MailOptions) error {
	if ss.s.user != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.cur = tlsSinkMsg{user: ss.user}
	return nil
}

func (ss *tlsSinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.cur.rcpts = append(ss.cur.rcpts, to)
	return nil
}

func (ss *tlsSinkSession) Data(r io.Reader) error {
	if _, err := io.ReadAll(r); err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func (ss *tlsSinkSession) Reset()        { ss.cur = tlsSinkMsg{user: ss.user} }
func (ss *tlsSinkSession) Logout() error { return nil }

// certMaker makes certificates for one test: issue signs with the test
// CA (whose PEM is caPEM), selfSigned signs itself.
type certMaker struct {
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
	caPEM []byte
}

func newCertMaker(t *testing.T) *certMaker {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &certMaker{ca: ca, key: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (m *certMaker) make(t *testing.T, self bool, names ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	parent, signer := m.ca, m.key
	if self {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
