package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/internal/dovecot"
	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
)

// The tests of recipient addressing ([addressing]) through the real
// server over SMTP: unknown users refused at RCPT, aliases, catch-alls,
// +detail, loops, forwarding with SRS and its bounces, reloads under
// load, LMTP verification and per-domain LMTP transports against Dovecot.

// withMaps writes the mailboxes and aliases files (skipping an empty one)
// into cfg's data directory and names them in [addressing], verifying
// recipients by them (as a loaded configuration naming them would); it
// returns their paths.
func withMaps(t *testing.T, cfg *config.Config, mailboxes, aliases string) (string, string) {
	t.Helper()
	cfg.Addressing.Verify = "maps"
	var mb, al string
	if mailboxes != "" {
		mb = filepath.Join(cfg.DataDir, "mailboxes")
		writeByRename(t, mb, mailboxes)
		cfg.Addressing.Mailboxes = mb
	}
	if aliases != "" {
		al = filepath.Join(cfg.DataDir, "aliases")
		writeByRename(t, al, aliases)
		cfg.Addressing.Aliases = al
	}
	return mb, al
}

// writeByRename replaces path with text the way editors and tools do: a
// new file renamed over the old one.
func writeByRename(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// withSRS turns SRS on under domain with a fresh secret file.
func withSRS(t *testing.T, cfg *config.Config, domain string) {
	t.Helper()
	secret := filepath.Join(cfg.DataDir, "srs.secret")
	if err := os.WriteFile(secret, []byte("a-test-secret-of-enough-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Addressing.SRSDomain = domain
	cfg.Addressing.SRSSecretFile = secret
}

// startLogged is start with the server's log kept for the test.
func startLogged(t *testing.T, cfg *config.Config) (*running, *testlog.Buffer) {
	t.Helper()
	lb := testlog.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("server.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("server did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return &running{srv: srv, addr: srv.Services()[0].Addrs[0].String(), stop: stop}, lb
}

// rcptReplies opens a session from sender and sends one RCPT for each of
// rcpts, returning each reply line; when data is set it ends with DATA
// (expected to be taken when any recipient was).
func rcptReplies(t *testing.T, addr, sender string, rcpts []string, data string) []string {
	t.Helper()
	rs := dialRaw(t, addr)
	rs.cmdExpect("EHLO client.test", "250")
	rs.cmdExpect("MAIL FROM:<"+sender+">", "250")
	var out []string
	taken := false
	for _, r := range rcpts {
		rs.write("RCPT TO:<" + r + ">\r\n")
		line, err := rs.reply()
		if err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
		taken = taken || strings.HasPrefix(line, "250")
		out = append(out, line)
	}
	if data != "" && taken {
		rs.cmdExpect("DATA", "354")
		rs.write(data + ".\r\n")
		rs.expect("250")
	}
	rs.cmdExpect("QUIT", "221")
	return out
}

// checkReplies compares RCPT replies with what each must start with.
func checkReplies(t *testing.T, rcpts, got, want []string) {
	t.Helper()
	for i := range rcpts {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("RCPT %s: %q, want %q…", rcpts[i], got[i], want[i])
		}
	}
}

// waitMaildir waits until box holds n messages, then checks that no more
// arrive once the queue is empty, and returns them.
func waitMaildir(t *testing.T, s *running, box string, n int) [][]byte {
	t.Helper()
	servertest.WaitFiles(t, box, n, 15*time.Second)
	waitQueueEmpty(t, s)
	files := servertest.MaildirFiles(box)
	if len(files) != n {
		t.Fatalf("%s holds %d messages, want %d", box, len(files), n)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestUnknownRecipientRefused: with a mailboxes file, an unknown user at a
// local domain gets Postfix's 550 5.1.1 at RCPT, before DATA, and the
// session goes on to a known one; the known one is delivered, and nothing
// is created or bounced for the unknown one.
func TestUnknownRecipientRefused(t *testing.T) {
	cfg := servertest.Config(t)
	withMaps(t, cfg, "alice@localhost\n", "")
	s := start(t, cfg)
	rcpts := []string{"x@localhost", "alice@localhost"}
	got := rcptReplies(t, s.addr, "someone@example.org", rcpts,
		servertest.Message("someone@example.org", "alice@localhost", "known", "hello\r\n"))
	if got[0] != "550 5.1.1 <x@localhost>: Recipient address rejected: User unknown in virtual mailbox table" {
		t.Errorf("RCPT x@localhost: %q", got[0])
	}
	if !strings.HasPrefix(got[1], "250 ") {
		t.Errorf("RCPT alice@localhost after the refusal: %q", got[1])
	}
	waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", "alice"), 1)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "mail", "localhost", "x")); err == nil {
		t.Error("a Maildir was created for the unknown user")
	}
	entries, _ := os.ReadDir(filepath.Join(cfg.DataDir, "mail", "localhost"))
	if len(entries) != 1 {
		t.Errorf("mail/localhost holds %d Maildirs, want alice's only (nothing bounced to the sender)", len(entries))
	}
}

// TestDefaultAcceptsAnyUser: the default configuration (make run) takes
// mail for any user at localhost, as the README's demo does.
func TestDefaultAcceptsAnyUser(t *testing.T) {
	cfg := servertest.Config(t)
	s := start(t, cfg)
	servertest.MustSend(t, s.addr, "someone@example.org", []string{"anyone-at-all@localhost"},
		servertest.Message("someone@example.org", "anyone-at-all@localhost", "demo", "hi\r\n"))
	waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", "anyone-at-all"), 1)
}

// TestCatchAllAndDetail: a catch-all takes the unknown users of its domain
// but not the addresses more specific entries name; alice+tag is alice's;
// both land in the right Maildirs once each.
func TestCatchAllAndDetail(t *testing.T) {
	cfg := servertest.Config(t)
	withMaps(t, cfg, "alice@localhost\nbob@localhost\n",
		"info@catch.test   bob@localhost\n@catch.test       alice@localhost\n")
	s := start(t, cfg)
	rcpts := []string{"whoever@catch.test", "info@catch.test", "alice+lists@localhost", "bob+x@catch.test", "carol@localhost"}
	got := rcptReplies(t, s.addr, "someone@example.org", rcpts,
		servertest.Message("someone@example.org", "whoever@catch.test", "catch-all", "hello\r\n"))
	checkReplies(t, rcpts, got, []string{"250 ", "250 ", "250 ", "250 ", "550 5.1.1 <carol@localhost>"})
	// alice: whoever@catch.test, alice+lists and bob+x@catch.test (the
	// catch-all) are one recipient, alice@localhost: one copy.
	alice := waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", "alice"), 1)
	bob := waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", "bob"), 1)
	for name, msgs := range map[string][][]byte{"alice": alice, "bob": bob} {
		if !bytes.Contains(msgs[0], []byte("Subject: catch-all")) {
			t.Errorf("%s's copy:\n%s", name, msgs[0])
		}
	}
	for _, dir := range []string{"carol", "whoever", "alice+lists"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "mail", "localhost", dir)); err == nil {
			t.Errorf("a Maildir %s was created", dir)
		}
	}
}

// TestAliasLoopRefused: an alias loop is refused at RCPT with 550 5.4.6,
// and the log names the chain.
func TestAliasLoopRefused(t *testing.T) {
	cfg := servertest.Config(t)
	withMaps(t, cfg, "alice@localhost\n", "loop1@localhost loop2@localhost\nloop2@localhost loop1@localhost\n")
	s, log := startLogged(t, cfg)
	got := rcptReplies(t, s.addr, "someone@example.org", []string{"loop1@localhost", "alice@localhost"}, "")
	if got[0] != "550 5.4.6 <loop1@localhost>: Recipient address rejected: mail forwarding loop" {
		t.Errorf("RCPT loop1@localhost: %q", got[0])
	}
	if !strings.HasPrefix(got[1], "250 ") {
		t.Errorf("RCPT alice@localhost after the loop: %q", got[1])
	}
	log.WaitFor(t, "alias loop: loop1@localhost -> loop2@localhost -> loop1@localhost", 5*time.Second)
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, "alias loop:") && !strings.Contains(line, "reject") {
			t.Errorf("the loop is logged outside the reject line: %s", line)
		}
	}
}

// TestAliasForwardSRS: an alias to two local mailboxes and a remote
// address gives each Maildir one copy and relays one to the remote MX
// with the sender rewritten by SRS; a bounce the next hop sends to that
// SRS address is taken from anyone and delivered to the original sender;
// a forged SRS address is refused at RCPT.
func TestAliasForwardSRS(t *testing.T) {
	addr := reserveAddr(t)
	mx := startSink(t, addr, false, nil)
	// remote.test and orig.test (the original sender's domain) both have
	// the sink as their MX.
	cfg := outboundConfig(t, addr, "orig.test. 300 IN MX 10 mx.remote.test.")
	withMaps(t, cfg, "alice@localhost\nbob@localhost\n",
		"team@localhost   alice@localhost, bob@localhost, friend@remote.test\n")
	withSRS(t, cfg, "fwd.test")
	cfg.TrustedNetworks = nil // the test's client may not relay
	s := start(t, cfg)

	msg := servertest.Message("someone@orig.test", "team@localhost", "to the team", "hello team\r\n")
	servertest.MustSend(t, s.addr, "someone@orig.test", []string{"team@localhost"}, msg)
	for _, user := range []string{"alice", "bob"} {
		got := waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", user), 1)
		if !bytes.Contains(got[0], []byte("hello team")) {
			t.Errorf("%s's copy:\n%s", user, got[0])
		}
	}
	waitSink(t, mx, 1, 15*time.Second)
	env := mx.envelopes()[0]
	if len(env.Rcpts) != 1 || env.Rcpts[0] != "friend@remote.test" {
		t.Errorf("the MX got recipients %v, want friend@remote.test", env.Rcpts)
	}
	srsFrom := env.From
	if !strings.HasPrefix(srsFrom, "SRS0=") || !strings.HasSuffix(srsFrom, "=orig.test=someone@fwd.test") {
		t.Fatalf("forwarded with sender %q, want SRS0=…=orig.test=someone@fwd.test", srsFrom)
	}
	if !bytes.Contains(mx.all()[0], []byte("hello team")) {
		t.Errorf("the MX got:\n%s", mx.all()[0])
	}

	// The next hop bounces: to the SRS address, from the null sender, from
	// a client that may not relay. It goes back to someone@orig.test.
	bounce := servertest.Message("MAILER-DAEMON@remote.test", srsFrom, "Undelivered Mail Returned to Sender", "friend is gone\r\n")
	got := rcptReplies(t, s.addr, "", []string{srsFrom}, bounce)
	if !strings.HasPrefix(got[0], "250 ") {
		t.Fatalf("RCPT %s: %q", srsFrom, got[0])
	}
	waitSink(t, mx, 2, 15*time.Second)
	env = mx.envelopes()[1]
	if env.From != "" || len(env.Rcpts) != 1 || env.Rcpts[0] != "someone@orig.test" {
		t.Errorf("the bounce went out as %+v, want from <> to someone@orig.test", env)
	}
	if !bytes.Contains(mx.all()[1], []byte("friend is gone")) {
		t.Errorf("the original sender got:\n%s", mx.all()[1])
	}

	// Forged: a bad hash; and an SRS address of another forwarder's
	// domain is just not ours.
	forged := strings.Replace(srsFrom, "SRS0=", "SRS0=x", 1)
	rcpts := []string{forged, "SRS0=abcd=AB=orig.test=someone@elsewhere.test"}
	got = rcptReplies(t, s.addr, "", rcpts, "")
	checkReplies(t, rcpts, got, []string{"550 5.1.1 <" + forged + ">: Recipient address rejected: invalid SRS address", "554 5.7.1 Relay access denied"})
	waitQueueEmpty(t, s)
	if n := mx.count(); n != 2 {
		t.Errorf("the MX got %d messages, want 2", n)
	}
}

// TestAddressingReloadUnderLoad: clients keep sending RCPTs for a known
// mailbox while the mailboxes file is replaced again and again: none is
// refused, and each new mailbox is taken within 2 seconds of its file.
// A file with a mistake is logged as file:line and changes nothing.
func TestAddressingReloadUnderLoad(t *testing.T) {
	cfg := servertest.Config(t)
	var filler strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&filler, "user%d@localhost\n", i)
	}
	base := "alice@localhost\n" + filler.String()
	mb, _ := withMaps(t, cfg, base, "")
	s, log := startLogged(t, cfg)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refused []string
	rcpts := 0
	for range 4 {
		wg.Go(func() {
			c, err := smtp.Dial(s.addr)
			if err != nil {
				mu.Lock()
				refused = append(refused, err.Error())
				mu.Unlock()
				return
			}
			defer c.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := c.Mail("someone@example.org", nil)
				if err == nil {
					err = c.Rcpt("alice@localhost", nil)
				}
				mu.Lock()
				rcpts++
				if err != nil {
					refused = append(refused, err.Error())
				}
				mu.Unlock()
				if err := c.Reset(); err != nil {
					return
				}
			}
		})
	}

	probe := func(addr string) bool {
		c, err := smtp.Dial(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("someone@example.org", nil); err != nil {
			t.Fatal(err)
		}
		return c.Rcpt(addr, nil) == nil
	}
	var slowest time.Duration
	for i := range 5 {
		added := fmt.Sprintf("new%d@localhost", i)
		if probe(added) {
			t.Fatalf("%s taken before it was added", added)
		}
		base += added + "\n"
		writeByRename(t, mb, base)
		written := time.Now()
		for !probe(added) {
			if time.Since(written) > 2*time.Second {
				t.Fatalf("%s still refused 2s after the file named it", added)
			}
			time.Sleep(20 * time.Millisecond)
		}
		slowest = max(slowest, time.Since(written))
	}
	t.Logf("slowest reload seen: %v", slowest)

	// A mistake: logged with its line, the previous maps kept.
	writeByRename(t, mb, "alice@localhost\nbob\n")
	log.WaitFor(t, mb+`:2: \"bob\" is not an address`, 5*time.Second) // quotes escaped by the text log
	if !probe("new4@localhost") || probe("bob@localhost") {
		t.Error("a file with a mistake changed the maps")
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(refused) > 0 {
		t.Errorf("%d of %d RCPTs for alice refused during the reloads, first: %s", len(refused), rcpts, refused[0])
	}
	if rcpts < 100 {
		t.Errorf("only %d RCPTs sent during the reloads", rcpts)
	}
	t.Logf("%d RCPTs for alice during the reloads, none refused", rcpts)
}

// TestAddressingDovecot: a real Dovecot (passwd-file userdb) is asked at
// RCPT with verify = "lmtp" and holds the mailboxes of dove.test, its own
// transport ([[addressing.transport]]), while localhost stays in Maildirs
// decided by the maps: a user Dovecot knows is taken and delivered there,
// Dovecot's 550 for one it does not know becomes our reply, and a domain
// whose LMTP server is down gets 451 4.3.0, never a 250.
func TestAddressingDovecot(t *testing.T) {
	dc := dovecot.Start(t)
	cfg := servertest.Config(t)
	withMaps(t, cfg, "carol@localhost\n", "")
	cfg.Addressing.Verify = "lmtp"
	cfg.Addressing.Transports = []config.AddressingTransport{
		{Domain: "dove.test", LMTP: dc.Addr},
		{Domain: "down.test", LMTP: reserveAddr(t)},
	}
	s := start(t, cfg)

	rcpts := []string{"alice@dove.test", "bob+x@dove.test", "nosuch@dove.test", "x@down.test", "carol@localhost", "dave@localhost"}
	got := rcptReplies(t, s.addr, "someone@example.org", rcpts,
		servertest.Message("someone@example.org", "alice@dove.test", "to dovecot", "hello dovecot\r\n"))
	checkReplies(t, rcpts, got, []string{"250 ", "250 ", "550 5.1.1 ", "451 4.3.0 ", "250 ", "550 5.1.1 <dave@localhost>: Recipient address rejected: User unknown"})
	if !strings.Contains(got[2], "nosuch") || strings.Contains(got[2], "virtual mailbox table") {
		t.Errorf("nosuch@dove.test: %q is not Dovecot's own refusal", got[2])
	}
	t.Logf("Dovecot's refusal, as we gave it: %s", got[2])
	for _, user := range []string{"alice", "bob"} {
		files := servertest.WaitFiles(t, dc.Maildir(user), 1, 15*time.Second)
		b, _ := os.ReadFile(files[0])
		if !bytes.Contains(b, []byte("hello dovecot")) {
			t.Errorf("%s's message in Dovecot:\n%s", user, b)
		}
	}
	waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", "carol"), 1)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "mail", "dove.test")); err == nil {
		t.Error("dove.test's mail went to a Maildir of ours instead of Dovecot")
	}
}

// TestSendmailResolved: local submission (`sluice sendmail`) resolves its
// recipients as RCPT does: an alias reaches its mailboxes, an unknown
// user is an error and nothing is queued.
func TestSendmailResolved(t *testing.T) {
	cfg := servertest.Config(t)
	withMaps(t, cfg, "alice@localhost\nbob@localhost\n", "root@localhost  alice@localhost, bob@localhost\n")
	s := start(t, cfg)
	sendmail := func(rcpt string) (string, error) {
		cmd := exec.Command(sluiceBin, "sendmail", "-f", "cron@localhost", rcpt)
		cmd.Env = append(os.Environ(), "SLUICE_SOCKET="+cfg.Admin.Socket)
		cmd.Stdin = strings.NewReader("Subject: nightly\n\nreport\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sendmail("root@localhost"); err != nil {
		t.Fatalf("sendmail root@localhost: %v %s", err, out)
	}
	for _, u := range []string{"alice", "bob"} {
		waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", u), 1)
	}
	out, err := sendmail("nobody@localhost")
	if err == nil || !strings.Contains(out, "550 5.1.1 <nobody@localhost>: Recipient address rejected: User unknown") {
		t.Errorf("sendmail nobody@localhost: %v %q", err, out)
	}
	waitQueueEmpty(t, s)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "mail", "localhost", "nobody")); err == nil {
		t.Error("a Maildir was created for nobody")
	}
}

// TestAliasBounceNamesOriginal: when a target of an alias fails, the DSN
// to the sender names the address the sender wrote (Original-Recipient)
// beside the target that failed; the alias's other target is delivered.
func TestAliasBounceNamesOriginal(t *testing.T) {
	addr := reserveAddr(t)
	startSink(t, addr, false, func(s *sink) {
		s.refuse["gone@remote.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "gone"}
	})
	cfg := outboundConfig(t, addr)
	withMaps(t, cfg, "alice@localhost\nsender@localhost\n", "team@localhost  alice@localhost, gone@remote.test\n")
	s := start(t, cfg)
	servertest.MustSend(t, s.addr, "sender@localhost", []string{"team@localhost"},
		servertest.Message("sender@localhost", "team@localhost", "to the team", "hello\r\n"))
	waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", "alice"), 1)
	dsn := waitMaildir(t, s, filepath.Join(cfg.DataDir, "mail", "localhost", "sender"), 1)[0]
	for _, want := range []string{"Final-Recipient: rfc822; gone@remote.test", "Original-Recipient: rfc822; team@localhost", "5.1.1"} {
		if !bytes.Contains(dsn, []byte(want)) {
			t.Errorf("the DSN lacks %q:\n%s", want, dsn)
		}
	}
}
