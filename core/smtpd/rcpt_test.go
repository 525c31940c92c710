package smtpd

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/addressing/srs"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// newResolver writes the mailboxes and aliases files and returns a
// Resolver over them for local.test.
func newResolver(t *testing.T, mailboxes, aliases string) *addressing.Resolver {
	t.Helper()
	dir := t.TempDir()
	files := addressing.Files{Mailboxes: filepath.Join(dir, "mailboxes"), Aliases: filepath.Join(dir, "aliases")}
	for path, text := range map[string]string{files.Mailboxes: mailboxes, files.Aliases: aliases} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := addressing.New(addressing.Options{LocalDomains: []string{"local.test"}, Files: files, Delimiter: "+"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

const (
	testMailboxes = "alice@local.test\nbob@local.test\n"
	testAliases   = "team@local.test  alice@local.test, bob@local.test, friend@remote.example\n" +
		"loop1@local.test loop2@local.test\nloop2@local.test loop1@local.test\n" +
		"@aliased.test   @local.test\n"
)

// rcptsOf lists the queued recipients as "addr orcpt forward".
func rcptsOf(env mail.Envelope) []string {
	var out []string
	for _, r := range env.Rcpts {
		out = append(out, fmt.Sprintf("%s %s %v", r.Addr, r.ORCPT, r.Forward))
	}
	return out
}

// TestRcptResolved: unknown users are refused at RCPT with Postfix's words
// and the session goes on; an alias is queued as its targets (ORCPT naming
// what was given, the remote one marked Forward), a +detail as its
// mailbox, a loop refused; an address reached twice is queued once; and
// max_recipients counts the addresses given, not their targets.
func TestRcptResolved(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.Recipients = newResolver(t, testMailboxes, testAliases)
	opts.Listener.MaxRecipients = 4
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	rc.send("MAIL FROM:<s@example.org>\r\n")
	rc.expect(250)
	for _, c := range []struct {
		rcpt, reply string
	}{
		{"nobody@local.test", "550 5.1.1 <nobody@local.test>: Recipient address rejected: User unknown in virtual mailbox table"},
		{"Alice+tag@LOCAL.test", "250 2.0.0 I'll make sure <Alice+tag@LOCAL.test> gets this"},
		{"loop1@local.test", "550 5.4.6 <loop1@local.test>: Recipient address rejected: mail forwarding loop"},
		{"team@local.test", "250 2.0.0 I'll make sure <team@local.test> gets this"},
		{"bob@aliased.test", "250 2.0.0 I'll make sure <bob@aliased.test> gets this"},
		{"team@local.test", "250 2.0.0 I'll make sure <team@local.test> gets this"}, // a duplicate, not counted
		{"someone@remote.example", "554 5.7.1 Relay access denied"},
		{"bob@local.test", "250 2.0.0 I'll make sure <bob@local.test> gets this"},
		{"alice@local.test", "452 4.5.3 Too many recipients"}, // the fifth address given
	} {
		rc.send("RCPT TO:<" + c.rcpt + ">\r\n")
		code, text := rc.reply()
		if got := fmt.Sprintf("%d %s", code, text); got != c.reply {
			t.Errorf("RCPT %s: %q, want %q", c.rcpt, got, c.reply)
		}
	}
	rc.send("DATA\r\n")
	rc.expect(354)
	rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	rc.expect(250)
	envs, _ := q.got()
	if len(envs) != 1 {
		t.Fatalf("queued %d messages, want 1", len(envs))
	}
	want := []string{
		"Alice@local.test rfc822;Alice+tag@local.test false",
		"bob@local.test rfc822;team@local.test false",
		"friend@remote.example rfc822;team@local.test true",
	}
	if got := rcptsOf(envs[0]); !slices.Equal(got, want) {
		t.Errorf("queued recipients:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRcptResolvedPlugins: the rcpt-stage plugins see the address the
// client sent, with what it resolves to in a note that does not outlive
// the stage; a recipient a plugin rewrites is resolved again (its targets'
// ORCPT naming what the client sent), and refused when it is unknown.
func TestRcptResolvedPlugins(t *testing.T) {
	q := &fakeQueue{}
	var seen []string
	f := &scriptedFilters{act: func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		switch hook {
		case pluginapi.HookRcpt:
			seen = append(seen, txn.Rcpt+" = "+txn.Notes[noteResolved])
			switch txn.Rcpt {
			case "old@local.test":
				txn.Rcpt = "team@local.test"
			case "typo@local.test":
				txn.Rcpt = "nobody@local.test"
			}
		case pluginapi.HookData:
			if v, ok := txn.Notes[noteResolved]; ok {
				seen = append(seen, "data = "+v)
			}
		}
		return filter.Result{}
	}}
	opts := testOptions(q)
	opts.Filters = f
	opts.Recipients = newResolver(t, testMailboxes+"old@local.test\ntypo@local.test\n", testAliases)
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	rc.send("MAIL FROM:<s@example.org>\r\n")
	rc.expect(250)
	for _, c := range []struct {
		rcpt string
		code int
	}{{"nobody@local.test", 550}, {"old@local.test", 250}, {"typo@local.test", 550}, {"alice@local.test", 250}} {
		rc.send("RCPT TO:<" + c.rcpt + ">\r\n")
		rc.expect(c.code)
	}
	rc.send("DATA\r\n")
	rc.expect(354)
	rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	rc.expect(250)
	wantSeen := []string{
		"old@local.test = mailbox: old@local.test (maildir)",
		"typo@local.test = mailbox: typo@local.test (maildir)",
		"alice@local.test = mailbox: alice@local.test (maildir)",
	}
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("the plugins saw:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(wantSeen, "\n"))
	}
	envs, _ := q.got()
	if len(envs) != 1 {
		t.Fatalf("queued %d messages, want 1", len(envs))
	}
	want := []string{
		"alice@local.test rfc822;old@local.test false",
		"bob@local.test rfc822;old@local.test false",
		"friend@remote.example rfc822;old@local.test true",
	}
	if got := rcptsOf(envs[0]); !slices.Equal(got, want) {
		t.Errorf("queued recipients:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRcptSRSBounce: a bounce to an SRS address of ours is taken from the
// null sender even when the SRS hash holds a '/' or the original local
// part a '%' (which RCPT refuses elsewhere), and queued to the original
// sender, marked Forward; a forged one is refused, and '/' stays refused
// everywhere else.
func TestRcptSRSBounce(t *testing.T) {
	rw, err := srs.New(srs.Options{Domain: "fwd.test", Secrets: [][]byte{[]byte("a-secret-of-enough-length")}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := addressing.New(addressing.Options{LocalDomains: []string{"local.test"}, SRS: rw})
	if err != nil {
		t.Fatal(err)
	}
	var slash, slashFrom string
	for i := 0; slash == "" && i < 10000; i++ {
		from := fmt.Sprintf("s%d@orig.example", i)
		if a, _ := rw.Forward(from); strings.Contains(a, "/") {
			slash, slashFrom = a, from
		}
	}
	if slash == "" {
		t.Fatal("no SRS address with '/' in its hash")
	}
	percent, err := rw.Forward("us%er@orig.example")
	if err != nil {
		t.Fatal(err)
	}
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.Recipients = r
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	rc.send("MAIL FROM:<>\r\n")
	rc.expect(250)
	forged := strings.Replace(slash, "SRS0=", "SRS0=x", 1)
	for _, c := range []struct {
		rcpt string
		code int
	}{{slash, 250}, {percent, 250}, {forged, 550}, {"a/b@local.test", 553}, {"SRS0=a/b@local.test", 553}} {
		rc.send("RCPT TO:<" + c.rcpt + ">\r\n")
		if code, text := rc.reply(); code != c.code {
			t.Errorf("RCPT %s: %d %s, want %d", c.rcpt, code, text, c.code)
		}
	}
	rc.send("DATA\r\n")
	rc.expect(354)
	rc.send("Subject: bounce\r\n\r\nbody\r\n.\r\n")
	rc.expect(250)
	envs, _ := q.got()
	if len(envs) != 1 {
		t.Fatalf("queued %d messages, want 1", len(envs))
	}
	want := []string{slashFrom + " rfc822;" + slash + " true", "us%er@orig.example rfc822;" + percent + " true"}
	if got := rcptsOf(envs[0]); !slices.Equal(got, want) {
		t.Errorf("queued recipients:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
