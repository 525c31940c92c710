package server_test

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"
)

// postfixSink is Postfix's smtp-sink on a loopback address, a real MTA's
// SMTP server that takes every message and, with -v, logs each command it
// reads. It offers PIPELINING, 8BITMIME and DSN but neither SMTPUTF8 nor
// CHUNKING.
type postfixSink struct {
	addr string
	out  *logBuffer // smtp-sink -v's lines, in the test log too
}

// startPostfixSink runs smtp-sink -v (and opts, e.g. -8 not to offer
// 8BITMIME) on a free loopback port until the test ends, and waits until
// it accepts connections. It skips the test when smtp-sink is not
// installed.
func startPostfixSink(t *testing.T, opts ...string) *postfixSink {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/smtp-sink"); err != nil {
			t.Skip("smtp-sink (Postfix) not installed")
		}
	}
	s := &postfixSink{addr: reserveAddr(t), out: &logBuffer{t: t}}
	args := append([]string{"-v"}, opts...)
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(bin, append(args, s.addr, "10")...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testwait.Until(t, 10*time.Second, "smtp-sink listening", func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// commands counts the SMTP commands smtp-sink logged by verb ("EHLO",
// "MAIL", "RSET", …), "." for each end of data, and "connect" for each
// connection (the readiness probe's included).
func (s *postfixSink) commands() map[string]int {
	n := map[string]int{}
	for _, l := range strings.Split(s.out.String(), "\n") {
		_, rest, ok := strings.Cut(l, "smtp-sink: ") // after the program's name, as it was run
		if !ok {
			continue
		}
		word, _, _ := strings.Cut(rest, " ")
		switch verb := strings.ToUpper(word); {
		case smtpVerbs[verb]:
			n[verb]++
		case word == "connect":
			n[word]++
		}
	}
	return n
}

// lines returns smtp-sink's log lines that start with prefix (after the
// program's name).
func (s *postfixSink) lines(prefix string) []string {
	var out []string
	for _, l := range strings.Split(s.out.String(), "\n") {
		if _, rest, ok := strings.Cut(l, "smtp-sink: "); ok && strings.HasPrefix(rest, prefix) {
			out = append(out, rest)
		}
	}
	return out
}

// smtpVerbs are the commands smtp-sink's log is searched for.
var smtpVerbs = map[string]bool{"EHLO": true, "HELO": true, "STARTTLS": true, "MAIL": true, "RCPT": true,
	"DATA": true, ".": true, "BDAT": true, "RSET": true, "NOOP": true, "QUIT": true}
