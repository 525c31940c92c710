package server_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestSendmailMessageID: a message without Message-ID gets one with the
// configured hostname; one that has it keeps it.
func TestSendmailMessageID(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	cfgPath := procConfig(t, dir, addr, "", "")
	startServe(t, cfgPath, addr, nil)
	env := []string{"SLUICE_CONFIG=" + cfgPath}
	if r := runBin(t, "", nil, "Subject: no id\n\nbody\n", env, "sendmail", "alice@localhost"); r.code != 0 {
		t.Fatalf("sendmail: exit %d %q", r.code, r.stderr)
	}
	if r := runBin(t, "", nil, "Subject: own id\nMessage-ID: <mine@example.test>\n\nbody\n", env, "sendmail", "bob@localhost"); r.code != 0 {
		t.Fatalf("sendmail: exit %d %q", r.code, r.stderr)
	}
	box := func(u string) string {
		f := servertest.WaitFiles(t, filepath.Join(dir, "data", "mail", "localhost", u), 1, 10*time.Second)
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if a := box("alice"); !regexp.MustCompile(`\nMessage-ID: <[0-9]{14}\.[0-9a-f]{16}@proc\.test>\n`).MatchString(a) {
		t.Errorf("alice's message has no Message-ID with the hostname proc.test:\n%s", a)
	}
	b := box("bob")
	if n := strings.Count(strings.ToLower(b), "\nmessage-id:"); n != 1 || !strings.Contains(b, "Message-ID: <mine@example.test>") {
		t.Errorf("bob's message should keep its one Message-ID:\n%s", b)
	}
}

// TestSendmailExitCodes: sendmail exits as sendmail(1) callers expect, and
// says why on standard error.
func TestSendmailExitCodes(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	cfgPath := procConfig(t, dir, addr, "", "")
	env := []string{"SLUICE_CONFIG=" + cfgPath}
	broken := filepath.Join(dir, "broken.toml")
	if err := os.WriteFile(broken, []byte("log_level = \"loud\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg := "Subject: x\n\nbody\n"
	check := func(name string, want int, stderr, stdin string, env []string, args ...string) {
		t.Helper()
		r := runBin(t, "", nil, stdin, env, append([]string{"sendmail"}, args...)...)
		if r.code != want || !strings.Contains(r.stderr, stderr) {
			t.Errorf("%s: exit %d %q, want %d and %q", name, r.code, r.stderr, want, stderr)
		}
	}
	// The server is not running yet: EX_TEMPFAIL, nothing else to do.
	check("server down", 75, "not running", msg, env, "alice@localhost")
	check("unknown option", 64, `unknown option "-q"`, msg, env, "-q", "alice@localhost")
	check("no recipients", 64, "no recipients", msg, env)
	check("broken configuration", 78, "broken.toml:1", msg, []string{"SLUICE_CONFIG=" + broken}, "alice@localhost")

	startServe(t, cfgPath, addr, nil)
	check("unreadable To with -t", 65, "-t: header To", "To: <unclosed@localhost\n\nbody\n", env, "-t")
	check("refused by the server", 65, "refused", msg, env, "-f", "not an address", "alice@localhost")
	check("queued", 0, "", msg, env, "alice@localhost")
	servertest.WaitFiles(t, filepath.Join(dir, "data", "mail", "localhost", "alice"), 1, 10*time.Second)
}
