package server_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"
	"github.com/sluice-mta/sluice/core/servertest"
)

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// exited waits for the process to exit within d and returns its status.
func (p *proc) exited(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		default:
			t.Fatalf("waiting for sluice serve: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("sluice serve still running after %v:\n%s", d, p.log())
	}
	return -1
}

// waitLog waits until the process's log matches re and returns the match.
func (p *proc) waitLog(t *testing.T, re string) []string {
	t.Helper()
	return p.waitLogN(t, re, 1)
}

// waitLogN waits until n log lines match re and returns the last match's
// submatches: a line logged before the event awaited cannot satisfy it.
func (p *proc) waitLogN(t *testing.T, re string, n int) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m [][]string
	defer func() {
		if len(m) < n {
			t.Logf("the server's log:\n%s", p.log())
		}
	}()
	testwait.Until(t, 15*time.Second, fmt.Sprintf("%d log lines matching %q", n, re), func() bool {
		m = rx.FindAllStringSubmatch(p.log(), -1)
		return len(m) >= n
	})
	return m[len(m)-1]
}

// inData opens a session and leaves it inside DATA, the header written.
func inData(t *testing.T, addr, subject string) *rawSession {
	t.Helper()
	s := dialRaw(t, addr)
	s.cmdExpect("EHLO client.test", "250")
	s.cmdExpect("MAIL FROM:<sender@localhost>", "250")
	s.cmdExpect("RCPT TO:<alice@localhost>", "250")
	s.cmdExpect("DATA", "354")
	s.write("Subject: " + subject + "\r\n\r\n")
	return s
}

// expectShutdown reads 421 4.3.2 and then the end of the connection.
func (s *rawSession) expectShutdown() {
	s.t.Helper()
	s.expect("421 4.3.2 ")
	if line, err := s.reply(); err == nil {
		s.t.Fatalf("after the 421: %q, want the connection closed", line)
	}
}

// refused reports whether addr refuses connections now.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func mailbox(dir, user string) string { return filepath.Join(dir, "data", "mail", "localhost", user) }

// TestStopDrains: on SIGTERM the listener closes, an idle session gets
// 421 4.3.2 at once, a session inside DATA finishes its message and gets
// 250 (then 421), the process exits 0 with one line saying what it
// drained, and the message taken during the drain is delivered after a
// restart.
func TestStopDrains(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	cfgPath := procConfig(t, dir, addr, "", "")
	p := startServe(t, cfgPath, addr, nil)
	busy := inData(t, addr, "drained")
	idle := dialRaw(t, addr)
	idle.cmdExpect("EHLO client.test", "250")

	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	idle.expectShutdown()
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("idle session closed %v after SIGTERM", el)
	}
	if !refused(addr) {
		t.Errorf("%s still accepts connections during the drain", addr)
	}
	busy.write("drained body\r\n.\r\n")
	busy.expect("250 ")
	busy.expectShutdown()
	if code := p.exited(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM:\n%s", code, p.log())
	}
	lines := regexp.MustCompile(`(?m)^.*msg=stopped .*$`).FindAllString(p.log(), -1)
	if len(lines) != 1 {
		t.Fatalf("%d \"stopped\" lines, want 1:\n%s", len(lines), p.log())
	}
	for _, want := range []string{"sessions_closed=2", "messages_finished=1", "sessions_cut=0"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("stopped line %q lacks %s", lines[0], want)
		}
	}
	if n := len(servertest.MaildirFiles(mailbox(dir, "alice"))); n != 0 {
		t.Errorf("%d messages delivered during the drain; the queue should stop leasing", n)
	}

	startServe(t, cfgPath, addr, nil)
	files := servertest.WaitFiles(t, mailbox(dir, "alice"), 1, 15*time.Second)
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "Subject: drained") {
		t.Errorf("delivered after restart:\n%s", b)
	}
}

// TestStopTimeout: a session still inside DATA when shutdown_timeout runs
// out gets 421 4.3.2; the process exits 0 and counts it cut.
func TestStopTimeout(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	p := startServe(t, procConfig(t, dir, addr, `shutdown_timeout = "1s"`, ""), addr, nil)
	busy := inData(t, addr, "cut")
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	busy.expectShutdown()
	if el := time.Since(start); el < time.Second {
		t.Errorf("cut %v after SIGTERM, before shutdown_timeout", el)
	}
	if code := p.exited(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d:\n%s", code, p.log())
	}
	p.waitLog(t, `msg=stopped .*sessions_cut=1`)
}

// TestStopSecondSignal: a second SIGTERM during the drain exits at once.
func TestStopSecondSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			addr := reserveAddr(t)
			p := startServe(t, procConfig(t, dir, addr, "", ""), addr, nil)
			inData(t, addr, "held")
			p.signal(t, syscall.SIGTERM)
			p.waitLog(t, `stopping on a signal`)
			start := time.Now()
			p.signal(t, sig)
			if code := p.exited(t, 5*time.Second); code != 1 {
				t.Errorf("exit status %d after a second signal, want 1", code)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("exited %v after the second signal", el)
			}
			p.waitLog(t, `second signal: exiting at once`)
		})
	}
}

// TestKill9DuringDrain: a message acknowledged during the drain survives
// a kill -9 and is delivered after a restart.
func TestKill9DuringDrain(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	cfgPath := procConfig(t, dir, addr, "", "")
	p := startServe(t, cfgPath, addr, nil)
	holder := inData(t, addr, "never finished") // keeps the drain going
	busy := inData(t, addr, "acked during the drain")
	p.signal(t, syscall.SIGTERM)
	p.waitLog(t, `stopping: draining`)
	busy.write("body\r\n.\r\n")
	busy.expect("250 ")
	p.signal(t, syscall.SIGKILL)
	p.exited(t, 5*time.Second)
	holder.conn.Close()

	startServe(t, cfgPath, addr, nil)
	files := servertest.WaitFiles(t, mailbox(dir, "alice"), 1, 15*time.Second)
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "Subject: acked during the drain") || len(files) != 1 {
		t.Errorf("%d delivered after restart, the first:\n%s", len(files), b)
	}
}

// TestStopReleasesDeliveries: a delivery still running at the end of
// shutdown_timeout is cancelled and released; it is delivered after a
// restart.
func TestStopReleasesDeliveries(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	stall, err := net.Listen("tcp", "127.0.0.1:0") // an LMTP server that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	dialed := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			dialed <- c
		}
	}()
	lmtp := "transport = \"lmtp\"\nlmtp = \"" + stall.Addr().String() + "\"\n"
	p := startServe(t, procConfig(t, dir, addr, `shutdown_timeout = "1s"`, lmtp), addr, nil)
	servertest.MustSend(t, addr, "sender@localhost", []string{"alice@localhost"},
		servertest.Message("sender@localhost", "alice@localhost", "released", "x\r\n"))
	select {
	case c := <-dialed:
		defer c.Close()
	case <-time.After(15 * time.Second):
		t.Fatalf("no delivery attempt:\n%s", p.log())
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.exited(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d:\n%s", code, p.log())
	}
	p.waitLog(t, `msg=stopped .*deliveries_finished=0 deliveries_released=1`)

	cfgPath := procConfig(t, dir, addr, "", "") // now to Maildir
	startServe(t, cfgPath, addr, nil)
	servertest.WaitFiles(t, mailbox(dir, "alice"), 1, 15*time.Second)
}
