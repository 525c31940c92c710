package server_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

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
