package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// sluiceBin is the real binary, built once by TestMain for the tests that
// run it as a user would.
var sluiceBin string

func TestMain(m *testing.M) {
	os.Exit(servertest.RunWithBinary(m, &sluiceBin))
}

// run runs the binary and returns its combined output and exit status.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runIn(t, "", args...)
}

// runIn is run in the working directory dir ("": the test's).
func runIn(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SLUICE_CONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("sluice %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// addressingConfig writes a configuration with map files into a
// temporary directory and returns its path.
func addressingConfig(t *testing.T, aliases string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("mailboxes", "alice@example.com\nbob@example.com\n")
	write("aliases", aliases)
	write("srs.secret", "a-long-enough-srs-secret-for-tests\n")
	return write("sluice.toml", fmt.Sprintf(`data_dir = %q
local_domains = ["example.com"]
[addressing]
mailboxes = "{data_dir}/mailboxes"
aliases = "{data_dir}/aliases"
srs_domain = "fwd.example.com"
srs_secret_file = "{data_dir}/srs.secret"
`, dir))
}

// TestAddressTest runs `sluice address test` on a mailbox, an alias to two
// mailboxes and a remote address, +detail, a catch-all, an unknown user
// and a loop.
func TestAddressTest(t *testing.T) {
	cfg := addressingConfig(t, `team@example.com  alice@example.com, bob@example.com, friend@remote.example
@catch.example    bob@example.com
loop1@example.com loop2@example.com
loop2@example.com loop1@example.com
`)
	tests := []struct {
		addr   string
		status int
		want   []string
	}{
		{"alice@example.com", 0, []string{"alice@example.com: mailbox", "mailbox  alice@example.com (maildir)"}},
		{"alice+news@example.com", 0, []string{"alice+news@example.com: detail dropped -> alice@example.com", "mailbox  alice@example.com (maildir)"}},
		{"team@example.com", 0, []string{
			"team@example.com: alias -> alice@example.com, bob@example.com, friend@remote.example",
			"mailbox  alice@example.com (maildir)", "mailbox  bob@example.com (maildir)", "forward  friend@remote.example (relay)",
		}},
		{"anyone@catch.example", 0, []string{"anyone@catch.example: catch-all @catch.example -> bob@example.com", "mailbox  bob@example.com (maildir)"}},
		{"someone@elsewhere.example", 0, []string{"someone@elsewhere.example: remote"}},
		{"nobody@example.com", 1, []string{"nobody@example.com: unknown", "refused  550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table"}},
		{"loop1@example.com", 1, []string{"refused  550 5.4.6", "alias loop: loop1@example.com -> loop2@example.com -> loop1@example.com"}},
		{"SRS0=xxxx=AB=orig.example=a@fwd.example.com", 1, []string{"refused  550 5.1.1", "invalid SRS address"}},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			args := []string{"address", "test", "--config", cfg, tt.addr}
			if tt.status != 0 {
				args = append(args, "loop2@example.com") // two addresses, both refused
			}
			out, status := run(t, args...)
			if status != tt.status {
				t.Errorf("exit status %d, want %d:\n%s", status, tt.status, out)
			}
			if tt.status != 0 {
				tt.want = append(tt.want, "sluice: 2 of 2 addresses refused")
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if out, status := run(t, "address", "test", "--config", cfg); status == 0 || !strings.Contains(out, "name at least one address") {
		t.Errorf("no address: status %d, %q", status, out)
	}
}

// TestConfigCheckAddressing: `sluice config check` warns about domains
// that accept any local part, counts the maps and reports a broken map
// file with its line.
func TestConfigCheckAddressing(t *testing.T) {
	out, status := run(t, "config", "check")
	if status != 0 || !strings.Contains(out, `warning: local domain "localhost" accepts any local part`) || !strings.Contains(out, "configuration ok") {
		t.Errorf("default configuration: status %d:\n%s", status, out)
	}

	cfg := addressingConfig(t, "team@example.com alice@example.com\n@catch.example bob@example.com\n")
	out, status = run(t, "config", "check", "--config", cfg)
	for _, w := range []string{`aliases:2: catch-all "@catch.example" accepts any local part at catch.example`, "addressing: 2 domains, 2 mailboxes, 1 aliases, 1 catch-alls", "configuration ok"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if status != 0 || strings.Contains(out, `"localhost"`) {
		t.Errorf("status %d, or a warning about localhost:\n%s", status, out)
	}

	cfg = addressingConfig(t, "team@example.com alice@example.com\nbroken@example.com\n")
	out, status = run(t, "config", "check", "--config", cfg)
	if status == 0 || !strings.Contains(out, `aliases:2: "broken@example.com" has no target`) || strings.Contains(out, "configuration ok") {
		t.Errorf("broken aliases: status %d:\n%s", status, out)
	}
}
