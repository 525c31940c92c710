package local

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/internal/dovecot"
	"github.com/sluice-mta/sluice/core/mail"
)

// stored returns the single message in the Maildir dir's new/.
func stored(t *testing.T, dir string) []byte {
	t.Helper()
	files := mailFiles(t, dir, "new")
	if len(files) != 1 {
		t.Fatalf("%d messages in %s/new, want 1", len(files), dir)
	}
	for _, b := range files {
		return b
	}
	return nil
}

func TestLMTPDovecot(t *testing.T) {
	s := dovecot.Start(t)
	_, port, _ := net.SplitHostPort(s.Addr)
	l := NewLMTP(LMTPOptions{Addr: s.Addr, Hostname: "mx.test.example", Timeout: 10 * time.Second})
	body := readFixture(t, "message.eml")

	t.Run("delivers", func(t *testing.T) {
		rcpts := []string{"alice@example.com", "bob@example.com"}
		res := l.Deliver(context.Background(), newMessage(body), rcpts)
		if len(res) != 2 {
			t.Fatalf("got %d results, want 2: %+v", len(res), res)
		}
		for i, user := range []string{"alice", "bob"} {
			r := res[i]
			if r.Rcpt != rcpts[i] || r.Status != mail.Sent || r.Reply.Code != 250 || r.Reply.Enhanced[0] != 2 ||
				r.Relay != "lmtp[127.0.0.1]:"+port {
				t.Errorf("result %d = %+v, want sent via lmtp[127.0.0.1]:%s", i, r, port)
			}
			got := stored(t, s.Maildir(user))
			// Dovecot prepends its trace headers; everything after them
			// is our message, with the final CRLF the DATA end adds.
			want := append(bytes.Clone(body), "\r\n"...)
			i := bytes.Index(got, body[:bytes.IndexByte(body, '\n')])
			if i < 0 || !bytes.Equal(got[i:], want) {
				t.Errorf("%s's mailbox holds\n%q\nwant it to end with\n%q", user, got, want)
			}
			if !bytes.HasPrefix(got, []byte("Return-Path: <sender@example.org>\r\n")) {
				t.Errorf("%s's copy lacks the Return-Path from MAIL FROM:\n%q", user, got)
			}
		}
	})

	t.Run("per-recipient status", func(t *testing.T) {
		rcpts := []string{"nosuchuser@example.com", "postmaster@example.com"}
		res := l.Deliver(context.Background(), newMessage(body), rcpts)
		if len(res) != 2 {
			t.Fatalf("got %d results, want 2: %+v", len(res), res)
		}
		if r := res[0]; r.Rcpt != rcpts[0] || r.Status != mail.Bounced || r.Reply.Code != 550 || r.Reply.Enhanced.String() != "5.1.1" || r.Reply.Text == "" {
			t.Errorf("unknown user: %+v, want bounced 550 5.1.1 with the server's text", r)
		}
		if r := res[1]; r.Rcpt != rcpts[1] || r.Status != mail.Sent {
			t.Errorf("postmaster: %+v, want sent", r)
		}
		stored(t, s.Maildir("postmaster"))
		if _, err := os.Stat(s.Maildir("nosuchuser")); err == nil {
			t.Errorf("a Maildir was made for the unknown user")
		}
	})

	t.Run("only unknown users", func(t *testing.T) {
		res := l.Deliver(context.Background(), newMessage(body), []string{"ghost@example.com"})
		if len(res) != 1 || res[0].Status != mail.Bounced || res[0].Reply.Enhanced.String() != "5.1.1" {
			t.Errorf("results = %+v, want one bounce 5.1.1", res)
		}
	})
}

func TestLMTPConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sock := filepath.Join(t.TempDir(), "missing.sock")
	for _, a := range []string{addr, "unix:" + sock} {
		t.Run(a, func(t *testing.T) {
			l := NewLMTP(LMTPOptions{Addr: a, Timeout: 5 * time.Second})
			rcpts := []string{"alice@example.com", "bob@example.com"}
			res := l.Deliver(context.Background(), newMessage([]byte("\r\n")), rcpts)
			if len(res) != 2 {
				t.Fatalf("got %d results, want 2", len(res))
			}
			for i, r := range res {
				if r.Rcpt != rcpts[i] || r.Status != mail.Deferred || r.Reply.Enhanced.String() != "4.4.1" || !strings.Contains(r.Reply.Text, a) {
					t.Errorf("result %d = %+v, want deferred 4.4.1 naming %s", i, r, a)
				}
			}
		})
	}
}

// fakeLMTP serves one scripted LMTP session on a Unix socket: replies maps
// a command's first word (or "RCPT <addr>", or "." for the end of data) to
// the reply lines; a line "<close>" hangs up. It returns the socket
// address.
func fakeLMTP(t *testing.T, replies map[string][]string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		send := func(key string) bool {
			lines, ok := replies[key]
			if !ok {
				return false
			}
			for _, l := range lines {
				if l == "<close>" {
					return false
				}
				if _, err := c.Write([]byte(l + "\r\n")); err != nil {
					return false
				}
			}
			return len(lines) > 0
		}
		if !send("greeting") {
			return
		}
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			key := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
			switch {
			case inData && line != ".":
				continue
			case inData:
				inData = false
				key = "."
			case key == "RCPT":
				key = "RCPT " + line[strings.IndexByte(line, '<'):]
			case key == "DATA":
				inData = true
			}
			if !send(key) {
				return
			}
		}
	}()
	return "unix:" + sock
}

func TestLMTPReplies(t *testing.T) {
	base := map[string][]string{
		"greeting": {"220 fake LMTP"},
		"LHLO":     {"250-fake", "250 ENHANCEDSTATUSCODES"},
		"MAIL":     {"250 2.1.0 ok"},
		"DATA":     {"354 go ahead"},
		"QUIT":     {"221 bye"},
		"RSET":     {"250 ok"},
	}
	with := func(extra map[string][]string) map[string][]string {
		m := make(map[string][]string)
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	type want struct {
		status mail.Status
		code   int
		dsn    string
	}
	tests := []struct {
		name    string
		replies map[string][]string
		rcpts   []string
		want    []want
	}{
		{
			name: "per-recipient data replies",
			replies: with(map[string][]string{
				"RCPT <a@x>": {"250 2.1.5 ok"},
				"RCPT <b@x>": {"250 2.1.5 ok"},
				"RCPT <c@x>": {"250 2.1.5 ok"},
				".":          {"250 2.6.0 <a@x> saved", "452 4.2.2 <b@x> mailbox full", "552 5.2.2 <c@x> over quota"},
			}),
			rcpts: []string{"a@x", "b@x", "c@x"},
			want:  []want{{mail.Sent, 250, "2.6.0"}, {mail.Deferred, 452, "4.2.2"}, {mail.Bounced, 552, "5.2.2"}},
		},
		{
			name: "rcpt refused, duplicate address",
			replies: with(map[string][]string{
				"RCPT <a@x>": {"450 4.2.1 try later"},
				"RCPT <b@x>": {"250 2.1.5 ok"},
				".":          {"250 2.0.0 saved"},
			}),
			rcpts: []string{"a@x", "b@x", "b@x"},
			want:  []want{{mail.Deferred, 450, "4.2.1"}, {mail.Sent, 250, "2.0.0"}, {mail.Sent, 250, "2.0.0"}},
		},
		{
			name: "no enhanced code",
			replies: with(map[string][]string{
				"RCPT <a@x>": {"550 no"},
				"RCPT <b@x>": {"250 ok"},
				".":          {"250 ok"},
			}),
			rcpts: []string{"a@x", "b@x"},
			want:  []want{{mail.Bounced, 550, "5.0.0"}, {mail.Sent, 250, "2.0.0"}},
		},
		{
			name: "connection lost after the first data reply",
			replies: with(map[string][]string{
				"RCPT <a@x>": {"250 2.1.5 ok"},
				"RCPT <b@x>": {"250 2.1.5 ok"},
				".":          {"250 2.0.0 saved", "<close>"},
			}),
			rcpts: []string{"a@x", "b@x"},
			want:  []want{{mail.Sent, 250, "2.0.0"}, {mail.Deferred, 451, "4.4.2"}},
		},
		{
			name:    "5xx greeting defers",
			replies: with(map[string][]string{"greeting": {"554 go away"}}),
			rcpts:   []string{"a@x"},
			want:    []want{{mail.Deferred, 451, "4.4.2"}},
		},
		{
			name: "mail refused",
			replies: with(map[string][]string{
				"MAIL": {"451 4.3.0 temporary failure"},
			}),
			rcpts: []string{"a@x", "b@x"},
			want:  []want{{mail.Deferred, 451, "4.3.0"}, {mail.Deferred, 451, "4.3.0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLMTP(LMTPOptions{Addr: fakeLMTP(t, tt.replies), Timeout: 5 * time.Second})
			res := l.Deliver(context.Background(), newMessage([]byte("Subject: x\r\n\r\nhi\r\n")), tt.rcpts)
			if len(res) != len(tt.want) {
				t.Fatalf("got %d results, want %d: %+v", len(res), len(tt.want), res)
			}
			for i, w := range tt.want {
				r := res[i]
				if r.Rcpt != tt.rcpts[i] || r.Status != w.status || r.Reply.Code != w.code || r.Reply.Enhanced.String() != w.dsn {
					t.Errorf("result %d = %+v, want %v %d %s", i, r, w.status, w.code, w.dsn)
				}
				if !strings.HasPrefix(r.Relay, "lmtp[unix:") {
					t.Errorf("relay = %q, want lmtp[unix:…]", r.Relay)
				}
			}
		})
	}
}

func TestLMTPErrResult(t *testing.T) {
	l := NewLMTP(LMTPOptions{Addr: "127.0.0.1:24"})
	tests := []struct {
		err    *smtp.SMTPError
		status mail.Status
		dsn    string
	}{
		{&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, mail.Bounced, "5.1.1"},
		{&smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "full"}, mail.Deferred, "4.2.2"},
		{&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mismatch"}, mail.Bounced, "5.0.0"},
		{&smtp.SMTPError{Code: 421, EnhancedCode: smtp.NoEnhancedCode, Message: "closing"}, mail.Deferred, "4.0.0"},
	}
	for _, tt := range tests {
		r := l.errResult("a@x", tt.err, "")
		if r.Status != tt.status || r.Reply.Enhanced.String() != tt.dsn || r.Reply.Code != tt.err.Code || r.Reply.Text != tt.err.Message ||
			r.Relay != "lmtp[127.0.0.1]:24" {
			t.Errorf("errResult(%v) = %+v, want %v %s", tt.err, r, tt.status, tt.dsn)
		}
	}
}

func TestLMTPCancelDefers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // Never greets.
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	l := NewLMTP(LMTPOptions{Addr: ln.Addr().String(), Timeout: time.Hour})
	done := make(chan []mail.Result, 1)
	go func() { done <- l.Deliver(ctx, newMessage([]byte("\r\n")), []string{"alice@example.com"}) }()
	c := <-accepted
	defer c.Close()
	cancel()
	res := <-done
	if len(res) != 1 || res[0].Status != mail.Deferred || res[0].Reply.Enhanced[0] != 4 {
		t.Errorf("results = %+v, want one deferral", res)
	}
}
