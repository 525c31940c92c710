package remote

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/mail"
)

// dotted is a message whose lines DATA would have to dot-stuff: a line
// that is a lone dot, lines starting with one or two dots.
func dotted(id string, rcpts ...string) *mail.Message {
	m := message(id, rcpts...)
	m.Body = []byte("From: sender@origin.test\r\nSubject: " + id + "\r\n\r\n.\r\n..\r\n.hidden\r\nend\r\n")
	return m
}

// TestBDAT: to a server offering CHUNKING each message goes as one BDAT
// LAST chunk (no DATA), arrives byte for byte (its dot lines not stuffed,
// nothing added), and a reused connection still carries each message in
// MAIL, RCPT, BDAT alone; also over STARTTLS.
func TestBDAT(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "STARTTLS"}[tlsOn], func(t *testing.T) {
			e := newEnv(t, twoMX...)
			s := startSink(t, sinkOptions{tls: tlsOn})
			e.route("192.0.2.1:25", s.addr)
			d := e.deliverer(nil)
			rcpts := []string{"a@example.test"}
			var sent []string
			for _, id := range []string{"Q1", "Q2", "Q3"} {
				m := dotted(id, rcpts...)
				check(t, deliver(d, m), rcpts, want{status: mail.Sent})
				sent = append(sent, string(m.Body))
			}
			txns := s.transactions()
			if len(txns) != len(sent) {
				t.Fatalf("sink took %d messages, want %d", len(txns), len(sent))
			}
			for i, tx := range txns {
				if tx.data != sent[i] || tx.tls != tlsOn {
					t.Errorf("message %d arrived as %q (TLS %v), want %q (TLS %v)", i, tx.data, tx.tls, sent[i], tlsOn)
				}
			}
			if conns, _, _ := s.counts(); conns != 1 {
				t.Errorf("sink saw %d connections, want 1", conns)
			}
			if tlsOn {
				return // the commands after STARTTLS are not counted
			}
			if cmds := s.commands(); cmds["BDAT"] != 3 || cmds["DATA"] != 0 || cmds["MAIL"] != 3 || cmds["RCPT"] != 3 || cmds["EHLO"] != 1 || cmds["RSET"] != 0 {
				t.Errorf("sink saw commands %v, want 1 EHLO, then MAIL, RCPT, BDAT per message and no DATA or RSET", cmds)
			}
		})
	}
}

// TestBDATOrDATA: DATA carries the message to a server without CHUNKING,
// and a body BDAT could not send as it is (a bare LF, no final CRLF),
// which DATA's writer puts in CRLF form; both arrive as DATA would send
// them.
func TestBDATOrDATA(t *testing.T) {
	e := newEnv(t, twoMX...)
	noChunks := startSink(t, sinkOptions{noChunks: true})
	chunks := startSink(t, sinkOptions{})
	rcpts := []string{"a@example.test"}
	for _, tc := range []struct {
		name     string
		sink     *sink
		body     string
		wantBody string
	}{
		{"no CHUNKING", noChunks, string(dotted("Q1").Body), string(dotted("Q1").Body)},
		{"bare LF", chunks, "Subject: lf\nbody\r\n", "Subject: lf\r\nbody\r\n"},
		{"no final CRLF", chunks, "Subject: end\r\n\r\nlast line", "Subject: end\r\n\r\nlast line\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.route("192.0.2.1:25", tc.sink.addr)
			d := e.deliverer(nil)
			before := tc.sink.commands()
			m := message("Q", rcpts...)
			m.Body = []byte(tc.body)
			check(t, deliver(d, m), rcpts, want{status: mail.Sent})
			txns := tc.sink.transactions()
			if got := txns[len(txns)-1].data; got != tc.wantBody {
				t.Errorf("arrived as %q, want %q", got, tc.wantBody)
			}
			if cmds := tc.sink.commands(); cmds["DATA"] != before["DATA"]+1 || cmds["BDAT"] != before["BDAT"] {
				t.Errorf("sink saw commands %v (before %v), want one more DATA and no BDAT", cmds, before)
			}
		})
	}
}

// TestBDATRefused: a refusal of the BDAT chunk is the recipients' result
// (its enhanced code and text), and the next message on the connection
// comes after RSET, as after a refused DATA.
func TestBDATRefused(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{dataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "content refused"}})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(nil)
	rcpts := []string{"a@example.test", "b@example.test"}
	for _, id := range []string{"Q1", "Q2"} {
		check(t, deliver(d, message(id, rcpts...)), rcpts, want{status: mail.Bounced, dsn: "5.7.1", text: "554 5.7.1 content refused"})
	}
	if cmds := s.commands(); cmds["BDAT"] != 2 || cmds["MAIL"] != 2 || cmds["RSET"] != 2 || cmds["EHLO"] != 1 {
		t.Errorf("sink saw commands %v, want 2 BDAT, 2 MAIL, an RSET after each refused chunk and 1 EHLO", cmds)
	}
	if conns, _, _ := s.counts(); conns != 1 {
		t.Errorf("sink saw %d connections, want 1", conns)
	}
}

// TestCanonical: what may go in a BDAT chunk as it is.
func TestCanonical(t *testing.T) {
	for body, want := range map[string]bool{
		"":                               false,
		"\r\n":                           true,
		"a\r\nb\r\n":                     true,
		"a\r\nb":                         false,
		"a\nb\r\n":                       false,
		"\na\r\n":                        false,
		"a\r\r\n":                        true,
		"a\rb\r\n":                       true, // a bare CR: DATA's writer leaves it too
		strings.Repeat("line\r\n", 1000): true,
	} {
		if got := canonical([]byte(body)); got != want {
			t.Errorf("canonical(%.20q) = %v, want %v", body, got, want)
		}
	}
}

// startTalker is a server that answers every command with 250 (EHLO with
// CHUNKING) and a BDAT chunk with the 250 and a 421 after it in one
// write, speaking out of turn. It counts connections.
func startTalker(t *testing.T) (addr string, conns *atomic.Int32) {
	return startScripted(t, func(c net.Conn, r *bufio.Reader, verb, args string) {
		switch verb {
		case "EHLO":
			c.Write([]byte("250-talker.test\r\n250-8BITMIME\r\n250 CHUNKING\r\n"))
		case "BDAT":
			size, _, _ := strings.Cut(args, " ")
			n, _ := strconv.Atoi(size)
			io.CopyN(io.Discard, r, int64(n))
			c.Write([]byte("250 2.0.0 Ok: queued\r\n421 4.3.0 going away\r\n"))
		default:
			c.Write([]byte("250 2.0.0 Ok\r\n"))
		}
	})
}

// startScripted is a server on 127.0.0.1 that greets each connection with
// 220 and hands each command line's verb (in upper case) and arguments to
// answer, which writes the reply (and reads what follows the command, such
// as a BDAT chunk, from r). It counts connections.
func startScripted(t *testing.T, answer func(c net.Conn, r *bufio.Reader, verb, args string)) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				c.Write([]byte("220 scripted.test\r\n"))
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					verb, args, _ := strings.Cut(strings.TrimSpace(line), " ")
					answer(c, r, strings.ToUpper(verb), args)
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// TestBDATTrailingBytes: a server that says more than its reply to BDAT
// keeps its verdict (the message is sent, not retried) but not the
// connection: the next message opens a new one.
func TestBDATTrailingBytes(t *testing.T) {
	e := newEnv(t, twoMX...)
	addr, conns := startTalker(t)
	e.route("192.0.2.1:25", addr)
	d := e.deliverer(nil)
	rcpts := []string{"a@example.test"}
	for _, id := range []string{"Q1", "Q2"} {
		check(t, deliver(d, message(id, rcpts...)), rcpts, want{status: mail.Sent, text: "Ok: queued"})
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections for two messages, want 2 (the first closed after the talk out of turn)", n)
	}
}
