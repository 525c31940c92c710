package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestBundleInServer loads this module, the one that holds every
// first-party plugin, three times in the real server: as spamscore (by its
// file name), as "policy" with entry = "sender-policy", and as "stamp" with
// entry = "headers". Each runs its own plugin with its own configuration
// (a recipient refused at RCPT, a spam score, a header), and a copy named after
// no plugin it holds is refused at load with the names it does hold.
func TestBundleInServer(t *testing.T) {
	bundle := sdktest.Build(t, ".")
	cfg := servertest.Config(t)
	servertest.Install(t, cfg, "spamscore", bundle, "order = 10\n")
	servertest.Install(t, cfg, "policy", bundle, "entry = \"sender-policy\"\norder = 20\n[config]\nblock_rcpts = [\"blocked@*\"]\n")
	servertest.Install(t, cfg, "stamp", bundle, "entry = \"headers\"\norder = 30\n[config]\nadd = [{name = \"X-Stamp\", value = \"bundle\"}]\n")
	servertest.Install(t, cfg, "nosuch", bundle, "")
	s := servertest.Start(t, cfg)

	_, err := servertest.Send(s.Addr, "x@example.org", []string{"blocked@localhost"}, servertest.Message("x@example.org", "blocked@localhost", "hi", "body\r\n"))
	if servertest.Code(err) != 550 {
		t.Errorf("RCPT TO:<blocked@localhost>: %v, want sender-policy's 550", err)
	}
	box := s.Mailbox("bob", "localhost")
	servertest.MustSend(t, s.Addr, "x@example.org", []string{"bob@localhost"}, "From: <x@example.org>\r\nTo: <bob@localhost>\r\n\r\nno subject, no date\r\n")
	got := string(readFile(t, servertest.WaitFiles(t, box, 1, 20*time.Second)[0]))
	if !strings.Contains(got, "X-Stamp: bundle\n") {
		t.Errorf("delivered message lacks stamp's X-Stamp:\n%s", got)
	}

	logs := strings.Join(s.Logs(), "\n")
	for _, want := range []string{"msg=scored", "SUBJECT_EMPTY(1)", `holds the plugins dnsbl, greylist, headers, helo, ratelimit, sender-policy, spamscore, none named \"nosuch\"`, `entry = \"NAME\"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q (spamscore's score, nosuch's refusal):\n%s", want, logs)
		}
	}
	for _, name := range []string{"spamscore", "policy", "stamp"} {
		if !strings.Contains(logs, `msg="plugin loaded" plugin=`+name+" ") {
			t.Errorf("no load line for %s:\n%s", name, logs)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
