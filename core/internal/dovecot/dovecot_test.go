package dovecot

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"
)

// TestStart checks that the server answers LMTP and knows its users.
func TestStart(t *testing.T) {
	s := Start(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	read := func() string {
		t.Helper()
		var all []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v (so far %q)", err, all)
			}
			all = append(all, strings.TrimRight(line, "\r\n"))
			if len(line) < 4 || line[3] != '-' {
				return strings.Join(all, "\n")
			}
		}
	}
	send := func(cmd string) string {
		t.Helper()
		if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		return read()
	}
	if got := read(); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("greeting = %q, want 220", got)
	}
	if got := send("LHLO test.example"); !strings.HasPrefix(got, "250") {
		t.Fatalf("LHLO reply = %q, want 250", got)
	}
	if got := send("MAIL FROM:<sender@example.org>"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("MAIL reply = %q, want 250", got)
	}
	for _, u := range s.Users {
		if got := send("RCPT TO:<" + u + "@example.com>"); !strings.HasPrefix(got, "250 ") {
			t.Errorf("RCPT %s reply = %q, want 250", u, got)
		}
	}
	if got := send("RCPT TO:<nobody-here@example.com>"); !strings.HasPrefix(got, "550 5.1.1") {
		t.Errorf("RCPT unknown reply = %q, want 550 5.1.1", got)
	}
	send("QUIT")
	if s.Maildir("alice") == s.Maildir("bob") || !strings.HasPrefix(s.Maildir("alice"), s.MailRoot) {
		t.Errorf("Maildir paths %q, %q not distinct under %q", s.Maildir("alice"), s.Maildir("bob"), s.MailRoot)
	}
	if _, err := os.Stat(s.MailRoot); err != nil {
		t.Error(err)
	}
}
