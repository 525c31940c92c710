package remote

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// TestPipelineOnePacket: to a server offering PIPELINING, MAIL, every
// RCPT and DATA (or BDAT with the message, with CHUNKING) arrive in one
// read, the client writes twice a message with DATA (the commands, then
// the body and its dot), each message arrives as sent, and the connection
// carries the next message with no RSET or EHLO between.
func TestPipelineOnePacket(t *testing.T) {
	for _, chunking := range []bool{false, true} {
		name := map[bool]string{false: "DATA", true: "BDAT"}[chunking]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, twoMX...)
			s := startSink(t, sinkOptions{noChunks: !chunking})
			e.route("192.0.2.1:25", s.addr)
			var writes writeCounter
			d := e.deliverer(func(o *Options) { o.Dial = writes.dial(e.dial) })
			rcpts := []string{"a@example.test", "b@example.test", "c@example.test"}
			var sent []string
			for i := range 3 {
				m := dotted(fmt.Sprint("Q", i), rcpts...)
				before := writes.load()
				check(t, deliver(d, m), rcpts, want{status: mail.Sent})
				// EHLO before the first message.
				if n, want := writes.load()-before, 2+max(0, 1-i); !chunking && n != want {
					t.Errorf("message %d took %d writes, want %d (commands, body)", i, n, want)
				}
				sent = append(sent, string(m.Body))
			}
			for i, tx := range s.transactions() {
				if tx.data != sent[i] || !slices.Equal(tx.rcpts, rcpts) {
					t.Errorf("message %d arrived as %q to %v, want %q to %v", i, tx.data, tx.rcpts, sent[i], rcpts)
				}
			}
			want := []string{"MAIL", "RCPT", "RCPT", "RCPT", name}
			_, batches := s.commandLines()
			var groups int
			for _, b := range batches {
				if slices.Contains(b, "MAIL") {
					groups++
					if !slices.Equal(b, want) {
						t.Errorf("a read brought %v, want %v", b, want)
					}
				}
			}
			if groups != 3 {
				t.Errorf("%d reads brought a MAIL, want 3: %v", groups, batches)
			}
			if cmds := s.commands(); cmds["EHLO"] != 1 || cmds["RSET"] != 0 {
				t.Errorf("sink saw commands %v, want 1 EHLO and no RSET", cmds)
			}
			if conns, _, _ := s.counts(); conns != 1 {
				t.Errorf("sink saw %d connections, want 1", conns)
			}
		})
	}
}

// TestPipelineCommandsAsGoSMTP: the pipelined MAIL and RCPT lines are the
// ones go-smtp's client writes itself to a server without PIPELINING, for
// every parameter sluice sends (SIZE, BODY=8BITMIME, SMTPUTF8, RET,
// ENVID, NOTIFY, ORCPT in both address types) and with DSN offered or not.
func TestPipelineCommandsAsGoSMTP(t *testing.T) {
	msg := func() *mail.Message {
		m := message("Q1", "a@example.test", "b@example.test", "δ@example.test")
		m.SMTPUTF8 = true
		m.Ret, m.EnvID = "hdrs", "env+id=1"
		m.Rcpts[0].Notify, m.Rcpts[0].ORCPT = []string{"success", "FAILURE"}, "rfc822;orig+1@example.test"
		m.Rcpts[1].Notify, m.Rcpts[1].ORCPT = []string{"NEVER"}, "utf-8;όνομα@example.test"
		m.Body = []byte("Subject: caf\xc3\xa9\r\n\r\nbody\r\n")
		return m
	}
	for _, dsn := range []bool{false, true} {
		t.Run(fmt.Sprint("DSN=", dsn), func(t *testing.T) {
			var got [2][]string
			for i, noPipe := range []bool{false, true} {
				e := newEnv(t, twoMX...)
				s := startSink(t, sinkOptions{noPipe: noPipe, dsn: dsn, smtputf8: true, maxSize: 1 << 20})
				e.route("192.0.2.1:25", s.addr)
				d := e.deliverer(nil)
				m := msg()
				check(t, deliver(d, m), []string{"a@example.test", "b@example.test", "δ@example.test"}, want{status: mail.Sent})
				lines, batches := s.commandLines()
				for _, l := range lines {
					if verb, _, _ := strings.Cut(l, " "); verb == "MAIL" || verb == "RCPT" {
						got[i] = append(got[i], l)
					}
				}
				if len(batches) != map[bool]int{false: 2, true: 6}[noPipe] {
					t.Errorf("PIPELINING offered %v: commands came in %d reads (%v)", !noPipe, len(batches), batches)
				}
			}
			if !slices.Equal(got[0], got[1]) || len(got[0]) != 4 {
				t.Errorf("pipelined:\n%s\ngo-smtp's client:\n%s", strings.Join(got[0], "\n"), strings.Join(got[1], "\n"))
			}
			if dsn && !strings.Contains(got[0][0], " RET=HDRS ENVID=env+2Bid+3D1") {
				t.Errorf("MAIL line %q lacks RET and ENVID", got[0][0])
			}
		})
	}
}

// writeCounter counts the writes on the connections its dialer makes.
type writeCounter struct {
	mu sync.Mutex
	n  int
}

func (w *writeCounter) load() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *writeCounter) dial(next func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countedWrites{Conn: c, w: w}, nil
	}
}

type countedWrites struct {
	net.Conn
	w *writeCounter
}

func (c *countedWrites) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	c.w.n++
	c.w.mu.Unlock()
	return c.Conn.Write(p)
}

// mxScript is what a scriptMX answers. A reply "drop" closes the
// connection instead.
type mxScript struct {
	noPipe   bool              // do not offer PIPELINING
	chunking bool              // offer CHUNKING
	mail     string            // the reply to MAIL; "" accepts
	rcpt     map[string]string // the reply to RCPT by address; none accepts
	data     string            // the reply to DATA (or BDAT's chunk) when a recipient was accepted; "" is 354 (250 for BDAT)
	end      string            // the reply to the end of the data; "" accepts
	// noRcptData is the reply to DATA or BDAT with no recipient
	// accepted; "" is 554, as RFC 2920 asks.
	noRcptData string
	// closeAfter, when set, closes the connection after that many
	// messages, while it idles in the client's pool.
	closeAfter int
}

// scriptMX is a pipelining SMTP server on 127.0.0.1 answering as its
// script says, tracking the transaction as a real server does (after a
// refused MAIL, RCPT and DATA get 503). It records the messages it takes,
// the command lines, and which commands came in one read.
type scriptMX struct {
	addr string
	sc   mxScript

	mu      sync.Mutex
	conns   int
	lines   []string
	batches [][]string
	msgs    []string
}

func startScriptMX(t *testing.T, sc mxScript) *scriptMX {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &scriptMX{addr: ln.Addr().String(), sc: sc}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

// readTagger numbers the reads beneath a bufio.Reader, so that a line
// can be traced to the read that completed it.
type readTagger struct {
	r     io.Reader
	reads int
}

func (r *readTagger) Read(p []byte) (int, error) {
	r.reads++
	return r.r.Read(p)
}

func (s *scriptMX) serve(c net.Conn) {
	defer c.Close()
	tag := &readTagger{r: c}
	br := bufio.NewReader(tag)
	say := func(reply string) bool {
		if reply == "drop" {
			return false
		}
		_, err := io.WriteString(c, reply+"\r\n")
		return err == nil
	}
	or := func(reply, def string) string { return map[bool]string{true: def, false: reply}[reply == ""] }
	say("220 script.test ESMTP")
	var mailOK bool
	var rcpts []string
	lastRead, msgs := -1, 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		s.lines = append(s.lines, line)
		if tag.reads != lastRead {
			s.batches = append(s.batches, nil)
			lastRead = tag.reads
		}
		s.batches[len(s.batches)-1] = append(s.batches[len(s.batches)-1], verb)
		s.mu.Unlock()
		var reply string
		switch verb {
		case "EHLO":
			reply = "250-script.test\r\n250-8BITMIME\r\n"
			if !s.sc.noPipe {
				reply += "250-PIPELINING\r\n"
			}
			if s.sc.chunking {
				reply += "250-CHUNKING\r\n"
			}
			reply += "250 ENHANCEDSTATUSCODES"
		case "MAIL":
			reply = or(s.sc.mail, "250 2.1.0 Ok")
			mailOK = reply[0] == '2'
			rcpts = nil
		case "RCPT":
			addr := strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">")
			switch reply = or(s.sc.rcpt[addr], "250 2.1.5 Ok"); {
			case !mailOK:
				reply = "503 5.5.1 Error: need MAIL command"
			case reply[0] == '2':
				rcpts = append(rcpts, addr)
			}
		case "DATA", "BDAT":
			var body []byte
			if verb == "BDAT" {
				size, _, _ := strings.Cut(arg, " ")
				n, _ := strconv.Atoi(size)
				body = make([]byte, n)
				if _, err := io.ReadFull(br, body); err != nil {
					return
				}
			}
			switch {
			case !mailOK:
				reply = "503 5.5.1 Error: need MAIL command"
			case len(rcpts) == 0:
				reply = or(s.sc.noRcptData, "554 5.5.1 Error: no valid recipients")
			default:
				reply = or(s.sc.data, map[string]string{"DATA": "354 End data with <CR><LF>.<CR><LF>", "BDAT": "250 2.0.0 Ok: queued"}[verb])
			}
			if verb == "DATA" && strings.HasPrefix(reply, "354") {
				if !say(reply) {
					return
				}
				var b strings.Builder
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
					b.WriteString(strings.TrimPrefix(l, "."))
				}
				body = []byte(b.String())
				reply = or(s.sc.end, "250 2.0.0 Ok: queued")
			}
			if reply[0] == '2' {
				s.mu.Lock()
				s.msgs = append(s.msgs, strings.Join(rcpts, ",")+"|"+string(body))
				s.mu.Unlock()
				msgs++
			}
			mailOK, rcpts = false, nil
		case "RSET":
			reply, mailOK, rcpts = "250 2.0.0 Ok", false, nil
		case "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			reply = "502 5.5.2 Error: command not recognized"
		}
		if !say(reply) || strings.HasPrefix(reply, "421") {
			return
		}
		if s.sc.closeAfter > 0 && msgs >= s.sc.closeAfter {
			return
		}
	}
}

// record returns the connections taken, the command lines and reads, and
// the messages taken ("rcpt,rcpt|body").
func (s *scriptMX) record() (conns int, lines []string, batches [][]string, msgs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, slices.Clone(s.lines), slices.Clone(s.batches), slices.Clone(s.msgs)
}

func verbs(lines []string) map[string]int {
	n := make(map[string]int)
	for _, l := range lines {
		verb, _, _ := strings.Cut(l, " ")
		n[strings.ToUpper(verb)]++
	}
	return n
}

// TestPipelineReplies: every reply to a pipelined transaction is applied
// as when the commands go one at a time (the same script without
// PIPELINING gives the same results): a refused or deferred MAIL (the
// replies to the RCPTs and DATA after it read and dropped, the connection
// kept), refused recipients, every recipient refused (DATA's refusal read,
// RSET before the next message), 421 at MAIL or at a RCPT, a connection
// dropped mid-pipeline or after the 354, DATA or the data refused, a 354
// to DATA with no recipient (the connection closed, nothing sent), the
// same with BDAT, and a pooled connection the server closed. Two messages
// each; the second shows what became of the connection, which go-smtp's
// client goes on using after a DATA written beneath it (the runs without
// PIPELINING).
func TestPipelineReplies(t *testing.T) {
	const a, b, c = "a@example.test", "b@example.test", "c@example.test"
	sent := want{status: mail.Sent, text: "Ok: queued"}
	lost := want{status: mail.Deferred, dsn: "4.4.2", text: "lost"}
	for _, tc := range []struct {
		name  string
		sc    mxScript
		want  []want // per recipient a, b, c
		conns int    // connections for the two messages
		rsets int
		taken string // recipients of each message taken
	}{
		{"all accepted", mxScript{}, []want{sent}, 1, 0, a + "," + b + "," + c},
		{"one recipient refused", mxScript{rcpt: map[string]string{b: "550 5.1.1 <b@example.test>: no such user"}},
			[]want{sent, {status: mail.Bounced, dsn: "5.1.1", text: "550 5.1.1 <b@example.test>: no such user"}, sent}, 1, 0, a + "," + c},
		{"every recipient refused", mxScript{rcpt: map[string]string{a: "550 5.1.1 no such user", b: "450 4.2.1 mailbox busy", c: "550 5.1.1 no such user"}},
			[]want{{status: mail.Bounced, dsn: "5.1.1"}, {status: mail.Deferred, dsn: "4.2.1", text: "mailbox busy"}, {status: mail.Bounced, dsn: "5.1.1"}}, 1, 2, ""},
		{"MAIL refused", mxScript{mail: "550 5.7.1 sender refused"}, []want{{status: mail.Bounced, dsn: "5.7.1", text: "550 5.7.1 sender refused"}}, 1, 0, ""},
		{"MAIL deferred", mxScript{mail: "451 4.3.0 try again later"}, []want{{status: mail.Deferred, dsn: "4.3.0", text: "try again later"}}, 1, 0, ""},
		{"421 to MAIL", mxScript{mail: "421 4.3.2 shutting down"}, []want{{status: mail.Deferred, dsn: "4.3.2", text: "shutting down"}}, 2, 0, ""},
		{"421 to a RCPT", mxScript{rcpt: map[string]string{b: "421 4.3.2 closing"}},
			[]want{lost, {status: mail.Deferred, dsn: "4.3.2", text: "closing"}, {status: mail.Deferred, dsn: "4.4.2", text: "421"}}, 2, 0, ""},
		{"dropped mid-pipeline", mxScript{rcpt: map[string]string{b: "drop"}}, []want{lost}, 2, 0, ""},
		{"DATA refused", mxScript{data: "554 5.7.1 not from you"}, []want{{status: mail.Bounced, dsn: "5.7.1", text: "not from you"}}, 1, 2, ""},
		{"dropped after 354", mxScript{end: "drop"}, []want{lost}, 2, 0, ""},
		{"data refused", mxScript{end: "552 5.3.4 message too big"}, []want{{status: mail.Bounced, dsn: "5.3.4", text: "too big"}}, 1, 0, ""},
		{"354 with no recipient", mxScript{rcpt: map[string]string{a: "550 5.1.1 no", b: "550 5.1.1 no", c: "550 5.1.1 no"}, noRcptData: "354 go ahead"},
			[]want{{status: mail.Bounced, dsn: "5.1.1"}}, 2, 0, ""},
		{"BDAT, one recipient refused", mxScript{chunking: true, rcpt: map[string]string{a: "550 5.1.1 no such user"}},
			[]want{{status: mail.Bounced, dsn: "5.1.1"}, sent, sent}, 1, 0, b + "," + c},
		{"BDAT, every recipient refused", mxScript{chunking: true, rcpt: map[string]string{a: "550 5.1.1 no", b: "550 5.1.1 no", c: "450 4.2.1 busy"}},
			[]want{{status: mail.Bounced, dsn: "5.1.1"}, {status: mail.Bounced, dsn: "5.1.1"}, {status: mail.Deferred, dsn: "4.2.1"}}, 1, 2, ""},
		{"BDAT refused", mxScript{chunking: true, data: "554 5.7.1 not from you"}, []want{{status: mail.Bounced, dsn: "5.7.1"}}, 1, 2, ""},
		{"BDAT dropped", mxScript{chunking: true, data: "drop"}, []want{lost}, 2, 0, ""},
		{"pooled connection closed by the server", mxScript{closeAfter: 1}, []want{sent}, 2, 0, a + "," + b + "," + c},
	} {
		for _, noPipe := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/PIPELINING=%v", tc.name, !noPipe), func(t *testing.T) {
				sc := tc.sc
				sc.noPipe = noPipe
				s := startScriptMX(t, sc)
				e := newEnv(t, twoMX...)
				e.route("192.0.2.1:25", s.addr)
				d := e.deliverer(nil)
				rcpts := []string{a, b, c}
				var bodies []string
				for _, id := range []string{"Q1", "Q2"} {
					m := dotted(id, rcpts...)
					check(t, deliver(d, m), rcpts, tc.want...)
					bodies = append(bodies, string(m.Body))
				}
				d.Close()
				conns, lines, batches, msgs := s.record()
				if noPipe && tc.sc.noRcptData != "" {
					return // DATA is never sent with no recipient: nothing to close
				}
				if conns != tc.conns {
					t.Errorf("%d connections, want %d", conns, tc.conns)
				}
				if n := verbs(lines)["RSET"]; n != tc.rsets {
					t.Errorf("%d RSET, want %d", n, tc.rsets)
				}
				var wantMsgs []string
				if tc.taken != "" {
					for _, body := range bodies {
						wantMsgs = append(wantMsgs, tc.taken+"|"+body)
					}
				}
				if !slices.Equal(msgs, wantMsgs) {
					t.Errorf("server took %q, want %q", msgs, wantMsgs)
				}
				if noPipe {
					return
				}
				// A server that hung up read no further; the rest came in
				// the read with MAIL.
				group := []string{"MAIL", "RCPT", "RCPT", "RCPT", map[bool]string{false: "DATA", true: "BDAT"}[sc.chunking]}
				for _, b := range batches {
					if i := slices.Index(b, "MAIL"); i >= 0 && (tc.conns == 1 && !slices.Equal(b[i:], group) || !slices.Equal(b[i:], group[:min(len(b)-i, len(group))])) {
						t.Errorf("a read brought %v, want MAIL, the RCPTs and DATA or BDAT together", b)
					}
				}
			})
		}
	}
}

// TestPipelineUnwritableCommand: a command go-smtp's client refuses to
// write (a sender with a line break, which only a damaged queue entry
// could hold) is not pipelined either: nothing of it reaches the server,
// and the recipients are deferred as without PIPELINING.
func TestPipelineUnwritableCommand(t *testing.T) {
	s := startScriptMX(t, mxScript{})
	e := newEnv(t, twoMX...)
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(nil)
	m := message("Q1", "a@example.test")
	m.From = "evil@origin.test>\r\nRCPT TO:<victim@example.test"
	check(t, deliver(d, m), []string{"a@example.test"}, want{status: mail.Deferred, dsn: "4.4.2", text: "CR or LF"})
	d.Close()
	if _, lines, _, _ := s.record(); slices.ContainsFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "EHLO") && !strings.HasPrefix(l, "QUIT") }) {
		t.Errorf("server received %q, want only EHLO (and QUIT)", lines)
	}
}
