package wasmtest

import (
	"net/textproto"
	"os"
	"testing"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestCDenyRcptInServer runs the C plugin in a real server and speaks
// SMTP to it: the recipient property is the address the client sent,
// without brackets or ESMTP parameters, its local part's case kept and
// its domain in lower case (pluginapi/ABI.md, "Forms"), so
// Blocked@Example.COM is refused and echoed as Blocked@example.com — as
// sdktest shows it too; an SMTPUTF8 recipient is refused with a reply
// that does not echo it (reply texts are ASCII); other recipients are
// accepted.
func TestCDenyRcptInServer(t *testing.T) {
	path := build(t)
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := servertest.Config(t)
	cfg.LocalDomains = []string{"example.com"}
	deny := []any{"blocked@example.com", "blocked@example.net", "jos\u00e9@example.com"}
	servertest.Install(t, cfg, "c-deny-rcpt", wasm, "[config]\ndeny = [\"blocked@example.com\", \"blocked@example.net\", \"jos\u00e9@example.com\"]\n")
	offline := sdktest.WasmFile(t, path, sdktest.Txn{From: "alice@example.org", Config: map[string]any{"deny": deny}})
	if got := offline.RunRcpt("Blocked@Example.COM").Reply(); got != "550 5.7.1 <Blocked@example.com>: recipient refused by policy" {
		t.Errorf("sdktest: %q, want the server's reply", got)
	}
	srv := servertest.Start(t, cfg)

	c, err := textproto.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := func(line string, code int, want string) {
		t.Helper()
		if line != "" {
			if err := c.PrintfLine("%s", line); err != nil {
				t.Fatal(err)
			}
		}
		got, msg, err := c.ReadResponse(code)
		if err != nil || msg != want {
			t.Errorf("%q: %d %q (%v), want %d %q", line, got, msg, err, code, want)
		}
	}
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	if err := c.PrintfLine("EHLO client.test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadResponse(250); err != nil {
		t.Fatal(err)
	}
	cmd("MAIL FROM:<alice@example.org> SIZE=100 SMTPUTF8", 250, "2.0.0 Roger, accepting mail from <alice@example.org>")
	cmd("RCPT TO:<Blocked@Example.COM> NOTIFY=NEVER", 550, "5.7.1 <Blocked@example.com>: recipient refused by policy")
	cmd("RCPT TO:<Blocked@Example.NET>", 550, "5.7.1 <Blocked@example.net>: recipient refused by policy")
	cmd("RCPT TO:<jos\u00e9@example.com>", 550, "5.7.1 recipient refused by policy")
	cmd("RCPT TO:<ok@example.com>", 250, "2.0.0 I'll make sure <ok@example.com> gets this")
}
