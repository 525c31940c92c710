package server_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/servertest"
)

// sluiceCLI runs the sluice binary and returns its combined output.
func sluiceCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sluiceBin, args...).CombinedOutput()
	return string(out), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := sluiceCLI(t, args...)
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// waitAttempted waits until the queue has tried id at least once.
func waitAttempted(t *testing.T, s *running, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := s.srv.Queue().Get(context.Background(), id)
		if err != nil {
			t.Fatalf("queue get %s: %v", id, err)
		}
		if m.Rcpts[0].Attempts > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not attempted within 10s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestQueueCLI drives `sluice queue ls|show|hold|release|rm|flush` against a
// running server whose mailbox server is down, then comes up.
func TestQueueCLI(t *testing.T) {
	cfg := servertest.Config(t)
	lmtpAddr := reserveAddr(t)
	cfg.Local.Transport = "lmtp"
	cfg.Local.LMTP = lmtpAddr
	cfg.Queue.MinBackoff = cfgDuration(time.Hour)
	cfg.Queue.MaxBackoff = cfgDuration(time.Hour)
	s := start(t, cfg)
	sock := "--socket=" + cfg.Admin.Socket

	id1 := servertest.MustSend(t, s.addr, "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", "first", "one\r\n"))
	id2 := servertest.MustSend(t, s.addr, "sender@localhost", []string{"bob@localhost"}, servertest.Message("sender@localhost", "bob@localhost", "second", "two\r\n"))
	waitAttempted(t, s, id1)
	waitAttempted(t, s, id2)

	ls := mustCLI(t, "queue", "ls", sock)
	for _, want := range []string{id1, id2, "alice@localhost", "bob@localhost", "pending", "4.4.1"} {
		if !strings.Contains(ls, want) {
			t.Errorf("queue ls lacks %q:\n%s", want, ls)
		}
	}
	show := mustCLI(t, "queue", "show", sock, id1)
	if !strings.Contains(show, "Subject: first") || !strings.Contains(show, "<sender@localhost>") {
		t.Errorf("queue show %s:\n%s", id1, show)
	}

	mustCLI(t, "queue", "hold", sock, id1)
	if ls := mustCLI(t, "queue", "ls", sock); !strings.Contains(ls, "held") {
		t.Errorf("after hold, queue ls shows no held message:\n%s", ls)
	}
	mustCLI(t, "queue", "rm", sock, id2)
	if _, err := s.srv.Queue().Get(context.Background(), id2); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("after rm, queue get %s: %v, want ErrNotFound", id2, err)
	}

	// The mailbox server comes up; flush does not deliver a held message…
	sink := startLMTPSink(t, lmtpAddr)
	mustCLI(t, "queue", "flush", sock)
	time.Sleep(time.Second)
	if n := sink.count(); n != 0 {
		t.Fatalf("a held message was delivered on flush (%d messages)", n)
	}
	// …release does.
	mustCLI(t, "queue", "release", sock, id1)
	deadline := time.Now().Add(10 * time.Second)
	for sink.count() < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if msgs := sink.all(); len(msgs) != 1 || !strings.Contains(string(msgs[0]), "Subject: first") {
		t.Fatalf("after release, the mailbox server got %d servertest.Message(s), want the first", len(msgs))
	}
	waitQueueEmpty(t, s)

	// Mistakes are reported, not crashed on.
	if out, err := sluiceCLI(t, "queue", "show", sock, "NOSUCHID"); err == nil || !strings.Contains(out, "NOSUCHID") {
		t.Errorf("queue show of an unknown ID: err=%v out=%q", err, out)
	}
	if out, err := sluiceCLI(t, "queue", "ls", "--socket=/nonexistent/admin.sock"); err == nil || !strings.Contains(out, "sluice serve") {
		t.Errorf("queue ls without a server: err=%v out=%q", err, out)
	}
}

// TestFlushAfterOutage: deferred mail goes out on `sluice queue flush` once
// the mailbox server is back, and a restart keeps what was queued.
func TestRestartDeliversQueue(t *testing.T) {
	cfg := servertest.Config(t)
	lmtpAddr := reserveAddr(t)
	cfg.Local.Transport = "lmtp"
	cfg.Local.LMTP = lmtpAddr
	cfg.Queue.MinBackoff = cfgDuration(time.Second)
	s := start(t, cfg)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, servertest.MustSend(t, s.addr, "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", "restart", "x\r\n")))
	}
	for _, id := range ids {
		waitAttempted(t, s, id)
	}
	s.stop()

	sink := startLMTPSink(t, lmtpAddr)
	s2 := start(t, cfg)
	deadline := time.Now().Add(20 * time.Second)
	for sink.count() < len(ids) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := sink.count(); n != len(ids) {
		t.Fatalf("after restart %d of %d queued messages were delivered", n, len(ids))
	}
	waitQueueEmpty(t, s2)
}

// TestSendmail: `sluice sendmail`, and the binary called as "sendmail",
// queue a message from standard input through the admin socket, as PHP's
// mail() and cron do; -t takes the recipients from the header and drops
// Bcc.
func TestSendmail(t *testing.T) {
	cfg := servertest.Config(t)
	s := start(t, cfg)
	link := filepath.Join(t.TempDir(), "sendmail")
	if err := os.Symlink(sluiceBin, link); err != nil {
		t.Fatal(err)
	}
	run := func(bin string, stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SLUICE_SOCKET="+cfg.Admin.Socket)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Fatalf("%s %v: %v %q", bin, args, err, out)
		}
	}
	run(sluiceBin, "Subject: from cron\n\nnightly report\n.\nnot this\n", "sendmail", "-f", "cron@localhost", "alice@localhost")
	run(link, "To: Bob <bob@localhost>\nBcc: carol@localhost\nSubject: from php\n\nhello\n", "-t", "-i")

	box := func(u string) string { return filepath.Join(cfg.DataDir, "mail", "localhost", u) }
	a, _ := os.ReadFile(servertest.WaitFiles(t, box("alice"), 1, 10*time.Second)[0])
	for _, want := range []string{"Received: by " + cfg.Hostname + " (Sluice, from local sendmail)", "From: <cron@localhost>\n", "Date: ", "\n\nnightly report\n"} {
		if !strings.Contains(string(a), want) {
			t.Errorf("alice's message lacks %q:\n%s", want, a)
		}
	}
	if strings.Contains(string(a), "not this") {
		t.Errorf("the lone dot did not end the message:\n%s", a)
	}
	for _, u := range []string{"bob", "carol"} {
		b, _ := os.ReadFile(servertest.WaitFiles(t, box(u), 1, 10*time.Second)[0])
		if !strings.Contains(string(b), "Subject: from php") || strings.Contains(string(b), "Bcc:") {
			t.Errorf("%s's copy:\n%s", u, b)
		}
	}
	waitQueueEmpty(t, s)

	// No recipients is an error with the fix, and nothing is queued.
	cmd := exec.Command(sluiceBin, "sendmail")
	cmd.Env = append(os.Environ(), "SLUICE_SOCKET="+cfg.Admin.Socket)
	cmd.Stdin = strings.NewReader("Subject: x\n\nbody\n")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no recipients") {
		t.Errorf("sendmail without recipients: %v %q", err, out)
	}
}
