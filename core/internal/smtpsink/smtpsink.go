// Package smtpsink runs Postfix's smtp-sink for tests: a real MTA's SMTP
// server on a free loopback port that takes every message, writes each
// into a file of its dump directory and, run with -v, logs every command
// it reads. It offers PIPELINING, 8BITMIME and DSN (options such as -8 or
// -p take them away) and neither SMTPUTF8 nor CHUNKING. smtp-sink is a
// test dependency (scripts/install-test-deps.sh); a test without it is
// skipped.
package smtpsink

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/internal/testwait"
)

// Sink is a running smtp-sink.
type Sink struct {
	// Addr is its loopback host:port.
	Addr string
	// Dumps is the directory it writes each message into (msg.*).
	Dumps string
	out   *testlog.Buffer
}

// Start runs smtp-sink -v with the options opts (e.g. "-8": no 8BITMIME,
// "-p": no PIPELINING) until the test ends, and waits until it accepts
// connections. Its output goes to the test log when the test failed.
func Start(t testing.TB, opts ...string) *Sink {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/smtp-sink"); err != nil {
			t.Skip("smtp-sink is not installed (scripts/install-test-deps.sh)")
		}
	}
	// smtp-sink drops root for nobody, who must write the dumps.
	dumps, err := os.MkdirTemp("", "smtpsink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dumps) })
	if err := os.Chmod(dumps, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: ln.Addr().String(), Dumps: dumps, out: &testlog.Buffer{}}
	ln.Close()
	args := append([]string{"-v", "-d", filepath.Join(dumps, "msg.")}, opts...)
	if os.Getuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(bin, append(args, s.Addr, "10")...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("smtp-sink's output:\n%s", s.out)
		}
	})
	testwait.Until(t, 10*time.Second, "smtp-sink to listen on "+s.Addr, func() bool {
		c, err := net.Dial("tcp", s.Addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// Output is what smtp-sink has written so far.
func (s *Sink) Output() string { return s.out.String() }

// Lines returns smtp-sink's log lines that start with prefix (after the
// program's name), such as the "MAIL FROM:<…> BODY=8BITMIME" it read.
func (s *Sink) Lines(prefix string) []string {
	var out []string
	for _, l := range strings.Split(s.Output(), "\n") {
		if _, rest, ok := strings.Cut(l, "smtp-sink: "); ok && strings.HasPrefix(rest, prefix) {
			out = append(out, rest)
		}
	}
	return out
}

// Commands counts the SMTP commands smtp-sink logged by verb ("EHLO",
// "MAIL", "RSET", …), "." for each end of data, and "connect" for each
// connection (Start's readiness probe included).
func (s *Sink) Commands() map[string]int {
	n := map[string]int{}
	for _, l := range s.Lines("") {
		word, _, _ := strings.Cut(l, " ")
		switch verb := strings.ToUpper(word); {
		case smtpVerbs[verb]:
			n[verb]++
		case word == "connect":
			n[word]++
		}
	}
	return n
}

// smtpVerbs are the commands Commands counts.
var smtpVerbs = map[string]bool{"EHLO": true, "HELO": true, "STARTTLS": true, "MAIL": true, "RCPT": true,
	"DATA": true, ".": true, "BDAT": true, "RSET": true, "NOOP": true, "QUIT": true}
