package remote

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/sluice-mta/sluice/core/internal/testca"
)

// sinkOptions shape a sink's behaviour.
type sinkOptions struct {
	tls bool // offer STARTTLS with a self-signed certificate
	// cert, when set, is the certificate offered (STARTTLS, or implicit
	// TLS with implicit set) instead of a self-signed one.
	cert     *tls.Certificate
	implicit bool // TLS from the first byte (port 465 style)
	login    bool // offer AUTH LOGIN only, not PLAIN
	smtputf8 bool // offer SMTPUTF8
	no8bit   bool // do not offer 8BITMIME (go-smtp always does: it is cut from the reply)
	noChunks bool // do not offer CHUNKING (go-smtp always does: it is cut from the reply)
	noPipe   bool // do not offer PIPELINING (go-smtp always does: it is cut from the reply)
	dsn      bool // offer DSN
	// delay is waited before each reply is written, as a network round
	// trip would (benchmarks).
	delay   time.Duration
	maxSize int64 // announce SIZE
	// user and pass, when set, offer AUTH PLAIN and require it for MAIL.
	user, pass string
	// replies scripts RCPT replies per recipient, one per RCPT in turn; a
	// nil entry (or none left) accepts.
	replies map[string][]*smtp.SMTPError
	// dataErr, when set, is the reply to the end of the data.
	dataErr *smtp.SMTPError
	// hold, when set, keeps every DATA waiting until it is closed.
	hold chan struct{}
}

// txn is one transaction a sink accepted data for.
type txn struct {
	from  string
	rcpts []string
	data  string
	tls   bool
	user  string
	utf8  bool
}

// sink is a go-smtp server on 127.0.0.1 playing a remote MX: it records
// transactions and counts connections.
type sink struct {
	addr string
	o    sinkOptions

	mu      sync.Mutex
	txns    []txn
	conns   int // connections accepted
	open    int // connections open now
	maxOpen int
	inData  int // sessions inside DATA now
	// cmds counts the commands received by verb ("EHLO", "RSET", …).
	cmds map[string]int
	// auths counts AUTH exchanges begun: a password was sent, or about
	// to be.
	auths   int
	replies map[string][]*smtp.SMTPError
	// writes counts the sink's writes: one per reply line, so one per
	// round trip once EHLO's reply is past.
	writes int
	// lines are the command lines received (in plain text), in order;
	// batches the verbs of the commands each read brought, one entry
	// per read that brought any.
	lines   []string
	batches [][]string
}

func startSink(t testing.TB, o sinkOptions) *sink {
	t.Helper()
	s := &sink{o: o, replies: make(map[string][]*smtp.SMTPError), cmds: make(map[string]int)}
	for k, v := range o.replies {
		s.replies[k] = append([]*smtp.SMTPError(nil), v...)
	}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.EnableSMTPUTF8 = o.smtputf8
	srv.EnableDSN = o.dsn
	srv.MaxMessageBytes = o.maxSize
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = time.Minute
	if o.tls || o.cert != nil || o.implicit {
		cert := o.cert
		if cert == nil {
			c := selfSigned(t)
			cert = &c
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicit {
		ln = tls.NewListener(ln, srv.TLSConfig)
		srv.TLSConfig = nil
	}
	s.addr = ln.Addr().String()
	go srv.Serve(&countingListener{Listener: ln, s: s})
	t.Cleanup(func() { srv.Close() })
	return s
}

// Transactions returns the transactions so far.
func (s *sink) transactions() []txn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]txn(nil), s.txns...)
}

// counts returns connections accepted, open now and most open at once.
func (s *sink) counts() (conns, open, maxOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.open, s.maxOpen
}

// commandLines returns the command lines received and, for each read
// that brought commands, their verbs.
func (s *sink) commandLines() (lines []string, batches [][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...), append([][]string(nil), s.batches...)
}

// commands returns how many times each command verb was received.
func (s *sink) commands() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.cmds)
}

func (s *sink) dataSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inData
}

// countingListener counts the sink's connections.
type countingListener struct {
	net.Listener
	s *sink
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.conns++
	l.s.open++
	l.s.maxOpen = max(l.s.maxOpen, l.s.open)
	l.s.mu.Unlock()
	return &countedConn{Conn: c, s: l.s}, nil
}

// countedConn counts the commands it reads in plain text (the first word of
// each line outside DATA and BDAT chunks; nothing after STARTTLS) and hides
// 8BITMIME and CHUNKING when the sink is not to offer them.
type countedConn struct {
	net.Conn
	s     *sink
	once  sync.Once
	line  []byte // the partial line read so far
	data  bool   // inside DATA's content
	chunk int    // bytes of a BDAT chunk still to come
	tls   bool   // after STARTTLS: the bytes are ciphertext, not counted
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.tls {
		return n, err
	}
	c.line = append(c.line, p[:n]...)
	var batch []string
	defer func() {
		if batch != nil {
			c.s.mu.Lock()
			c.s.batches = append(c.s.batches, batch)
			c.s.mu.Unlock()
		}
	}()
	for !c.tls {
		if c.chunk > 0 {
			k := min(c.chunk, len(c.line))
			c.chunk -= k
			c.line = c.line[k:]
			if c.chunk > 0 {
				break
			}
		}
		i := bytes.IndexByte(c.line, '\n')
		if i < 0 {
			break
		}
		l := strings.TrimRight(string(c.line[:i]), "\r")
		c.line = c.line[i+1:]
		switch {
		case c.data:
			c.data = l != "."
		default:
			verb, args, _ := strings.Cut(l, " ")
			verb = strings.ToUpper(verb)
			c.data = verb == "DATA"
			if verb == "BDAT" {
				size, _, _ := strings.Cut(args, " ")
				c.chunk, _ = strconv.Atoi(size)
			}
			c.tls = verb == "STARTTLS"
			batch = append(batch, verb)
			c.s.mu.Lock()
			c.s.cmds[verb]++
			c.s.lines = append(c.s.lines, l)
			c.s.mu.Unlock()
		}
	}
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	if c.s.o.delay > 0 {
		time.Sleep(c.s.o.delay)
	}
	c.s.mu.Lock()
	c.s.writes++
	c.s.mu.Unlock()
	out := p
	for _, hide := range []struct {
		on  bool
		ext string
	}{{c.s.o.no8bit, "250-8BITMIME\r\n"}, {c.s.o.noChunks, "250-CHUNKING\r\n"}, {c.s.o.noPipe, "250-PIPELINING\r\n"}} {
		if hide.on {
			out = bytes.Replace(out, []byte(hide.ext), nil, 1)
		}
	}
	_, err := c.Conn.Write(out)
	return len(p), err
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.open--
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// NewSession implements smtp.Backend.
func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &sinkSession{s: s, c: c}, nil
}

type sinkSession struct {
	s    *sink
	c    *smtp.Conn
	user string
	cur  txn
}

var _ smtp.AuthSession = (*sinkSession)(nil)

func (ss *sinkSession) AuthMechanisms() []string {
	switch {
	case ss.s.o.user == "":
		return nil
	case ss.s.o.login:
		return []string{sasl.Login}
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	ss.s.mu.Lock()
	ss.s.auths++
	ss.s.mu.Unlock()
	check := func(user, pass string) error {
		if user != ss.s.o.user || pass != ss.s.o.pass {
			return errors.New("bad credentials")
		}
		ss.user = user
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{authenticate: check}, nil
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error { return check(user, pass) }), nil
}

// authCount returns how many AUTH exchanges the sink saw begin.
func (s *sink) authCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.o.user != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.cur = txn{from: from, tls: isTLS, user: ss.user, utf8: opts != nil && opts.UTF8}
	return nil
}

func (ss *sinkSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	var reply *smtp.SMTPError
	if list := ss.s.replies[to]; len(list) > 0 {
		reply = list[0]
		ss.s.replies[to] = list[1:]
	}
	ss.s.mu.Unlock()
	if reply != nil {
		return reply
	}
	ss.cur.rcpts = append(ss.cur.rcpts, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if h := ss.s.o.hold; h != nil {
		ss.s.mu.Lock()
		ss.s.inData++
		ss.s.mu.Unlock()
		<-h
		ss.s.mu.Lock()
		ss.s.inData--
		ss.s.mu.Unlock()
	}
	if ss.s.o.dataErr != nil {
		return ss.s.o.dataErr
	}
	ss.cur.data = string(b)
	ss.s.mu.Lock()
	ss.s.txns = append(ss.s.txns, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.cur = txn{} }
func (ss *sinkSession) Logout() error { return nil }

// refuser is a listener that greets every connection with 421 and hangs
// up, as a busy MX does.
func startRefuser(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("421 4.3.2 busy, try later\r\n"))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// selfSigned makes a certificate for the sink.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	return testca.SelfSigned(t, "sink.test")
}
