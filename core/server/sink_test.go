package server_test

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// sink is an in-test SMTP or LMTP server that records what it receives. It
// can be started late on an address reserved earlier, to play a server
// that was down, refuse chosen recipients, or hold DATA until released.
type sink struct {
	mu   sync.Mutex
	msgs [][]byte
	// envs are the envelopes of msgs, in the same order.
	envs []sinkEnvelope
	srv  *smtp.Server
	// refuse maps a recipient to the reply that refuses it.
	refuse map[string]*smtp.SMTPError
	// smtputf8 offers SMTPUTF8.
	smtputf8 bool
	// hold, when set, blocks the first DATA until it is closed and then
	// refuses it with 451 (its client is gone by then); entered gets a value
	// when that DATA starts waiting. Later DATAs go through.
	hold    chan struct{}
	held    bool
	entered chan struct{}
}

// reserveAddr returns a loopback address nothing listens on (yet).
func reserveAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startLMTPSink listens on addr as an LMTP server until the test ends.
func startLMTPSink(t *testing.T, addr string) *sink { return startSink(t, addr, true, nil) }

// startSink listens on addr until the test ends; configure runs before it
// accepts anything.
func startSink(t *testing.T, addr string, lmtp bool, configure func(*sink)) *sink {
	t.Helper()
	s := &sink{refuse: map[string]*smtp.SMTPError{}, entered: make(chan struct{}, 16)}
	if configure != nil {
		configure(s)
	}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: s}, nil }))
	s.srv.LMTP = lmtp
	s.srv.EnableSMTPUTF8 = s.smtputf8
	s.srv.Domain = "sink.test"
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// count returns how many messages arrived.
func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// all returns a copy of the messages received.
func (s *sink) all() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.msgs...)
}

// sinkEnvelope is the MAIL FROM (and whether it said SMTPUTF8) and the
// accepted RCPT TOs of a message.
type sinkEnvelope struct {
	From  string
	UTF8  bool
	Rcpts []string
}

// envelopes returns a copy of the envelopes received.
func (s *sink) envelopes() []sinkEnvelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkEnvelope(nil), s.envs...)
}

type sinkSession struct {
	sink *sink
	env  sinkEnvelope
}

func (ss *sinkSession) Reset()     { ss.env = sinkEnvelope{} }
func (*sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.env = sinkEnvelope{From: from, UTF8: opts != nil && opts.UTF8}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := ss.sink.refuse[to]; e != nil {
		return e
	}
	ss.env.Rcpts = append(ss.env.Rcpts, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	first := ss.sink.hold != nil && !ss.sink.held
	ss.sink.held = ss.sink.held || first
	ss.sink.mu.Unlock()
	if first {
		ss.sink.entered <- struct{}{}
		<-ss.sink.hold
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "held, not taken"}
	}
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, b)
	ss.sink.envs = append(ss.sink.envs, ss.env)
	ss.sink.mu.Unlock()
	return nil
}
