package remote

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// startSmtpSink runs Postfix's smtp-sink (Debian's, a test dependency) on
// a free loopback port, dumping each message it takes into a file in the
// directory it returns; extra are more options ("-p": no PIPELINING). It
// skips the test when smtp-sink is not installed.
func startSmtpSink(t *testing.T, extra ...string) (addr, dumps string) {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/smtp-sink"); err != nil {
			t.Skip("smtp-sink is not installed (scripts/install-test-deps.sh)")
		}
	}
	// smtp-sink drops root for nobody, who must write the dumps.
	dumps, err = os.MkdirTemp("", "smtpsink")
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
	addr = ln.Addr().String()
	ln.Close()
	args := append([]string{"-d", filepath.Join(dumps, "msg.")}, extra...)
	if os.Getuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(bin, append(args, addr, "10")...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("smtp-sink's output: %s", stderr.String())
		}
	})
	waitFor(t, "smtp-sink to listen on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, dumps
}

// sinkDump is one message smtp-sink wrote down: the MAIL and RCPT
// arguments it received and the message as its lines (LF-ended).
type sinkDump struct {
	mail  string
	rcpts []string
	msg   string
}

// readDumps reads smtp-sink's dumps in dir, by the Subject of each.
func readDumps(t *testing.T, dir string) map[string]sinkDump {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "msg.*"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]sinkDump)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The sink's own header ends with its three-line Received:.
		head, msg, ok := strings.Cut(string(b), "\nReceived: ")
		if !ok {
			t.Fatalf("dump %s has no Received: line: %q", f, b)
		}
		lines := strings.SplitN(msg, "\n", 4)
		var d sinkDump
		d.msg = strings.TrimSuffix(lines[3], "\n") // the sink adds an empty line
		for _, l := range strings.Split(head, "\n") {
			if v, ok := strings.CutPrefix(l, "X-Mail-Args: "); ok {
				d.mail = v
			}
			if v, ok := strings.CutPrefix(l, "X-Rcpt-Args: "); ok {
				d.rcpts = append(d.rcpts, v)
			}
		}
		_, subject, _ := strings.Cut(d.msg, "Subject: ")
		subject, _, _ = strings.Cut(subject, "\n")
		out[subject] = d
	}
	return out
}

// TestPipelineSmtpSink: against Postfix's smtp-sink, which offers
// PIPELINING (and DSN, not CHUNKING), messages go pipelined, two writes a
// message on a reused connection, and arrive as DATA would send them
// (dot lines, a bare LF, an unfinished last line, an 8-bit body, 10 KiB,
// several recipients with DSN parameters), with the same MAIL and RCPT
// arguments as go-smtp's client sends to the same sink without PIPELINING
// (-p).
func TestPipelineSmtpSink(t *testing.T) {
	bodies := map[string]string{
		"dots":    "Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\nend\r\n",
		"bare-lf": "Subject: bare-lf\nX: y\n\nline\n.dot\n",
		"no-end":  "Subject: no-end\r\n\r\nlast line",
		"8bit":    "Subject: 8bit\r\n\r\ncaf\xc3\xa9\r\n",
		"10KiB":   "Subject: 10KiB\r\n" + string(benchBody(10<<10)),
	}
	var runs [2]map[string]sinkDump
	for i, extra := range [][]string{nil, {"-p"}} {
		addr, dir := startSmtpSink(t, extra...)
		e := newEnv(t, twoMX...)
		e.route("192.0.2.1:25", addr)
		var writes writeCounter
		d := e.deliverer(func(o *Options) { o.Dial = writes.dial(e.dial) })
		rcpts := []string{"a@example.test", "b@example.test"}
		first := true
		for name, body := range bodies {
			m := message(name, rcpts...)
			m.Body = []byte(body)
			m.Ret, m.EnvID = "FULL", "id-"+name
			m.Rcpts[0].Notify = []string{"FAILURE", "DELAY"}
			m.Rcpts[1].ORCPT = "rfc822;orig@example.test"
			before := writes.load()
			check(t, deliver(d, m), rcpts, want{status: mail.Sent})
			if n := writes.load() - before; extra == nil && !first && n != 2 {
				t.Errorf("message %s took %d writes to smtp-sink, want 2", name, n)
			}
			first = false
		}
		d.Close()
		// smtp-sink writes its dump after its reply: wait for all.
		waitFor(t, "smtp-sink's dumps", func() bool { return len(readDumps(t, dir)) == len(bodies) })
		runs[i] = readDumps(t, dir)
	}
	for name, body := range bodies {
		got := runs[0][name]
		// The lines as sent, each LF-ended in the dump.
		lines := strings.ReplaceAll(body, "\r\n", "\n")
		if !strings.HasSuffix(lines, "\n") {
			lines += "\n"
		}
		if got.msg != lines {
			t.Errorf("%s arrived as %q, want %q", name, got.msg, lines)
		}
		if old := runs[1][name]; got.mail != old.mail || fmt.Sprint(got.rcpts) != fmt.Sprint(old.rcpts) || got.msg != old.msg {
			t.Errorf("%s: pipelined MAIL %q RCPT %q, one at a time MAIL %q RCPT %q (messages equal: %v)",
				name, got.mail, got.rcpts, old.mail, old.rcpts, got.msg == old.msg)
		}
		if !strings.Contains(got.mail, "RET=FULL ENVID=id-") || len(got.rcpts) != 2 || !strings.Contains(got.rcpts[0], "NOTIFY=FAILURE,DELAY") {
			t.Errorf("%s: MAIL %q RCPT %q lack the DSN parameters", name, got.mail, got.rcpts)
		}
	}
}
