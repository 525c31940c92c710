package senderpolicy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/users"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

const smtpPolicy = `
[config]
owners = {alice = ["alice@example.test", "@alice.example"], bob = ["bob@example.test"]}
max_rcpts = {alice = 2, "*" = 3}
block_senders = ["*@spam.test", "bad@*"]
block_rcpts = ["trap@*"]
`

// send runs one transaction on addr, logged in as user unless user is
// "", with header From hdrFrom, and returns the first refusal (nil when
// queued).
func send(addr, user, from, hdrFrom string, rcpts []string) error {
	_, err := servertest.SendAs(addr, servertest.Login{User: user, Password: "secret"}, from, rcpts,
		servertest.Message(hdrFrom, rcpts[0], "policy test", "hello\r\n"))
	return err
}

// TestSMTP runs every rule through the real server: authenticated users
// on the submission port, anonymous clients on port 25.
func TestSMTP(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.LocalDomains = []string{"localhost", "example.test"}
	cfg.Auth.SPF, cfg.Auth.DKIMVerify, cfg.Auth.DMARC = false, false, false
	cfg.Submission.Listen = []string{"127.0.0.1:0"}
	cfg.Submission.AllowInsecureAuth = true
	cfg.Submission.RestrictSender = false // the plugin decides
	for _, u := range []string{"alice", "bob", "mallory"} {
		if err := users.Set(cfg.Submission.UsersFile, u, "secret"); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Install(t, cfg, "sender-policy", sdktest.Build(t, "."), smtpPolicy)
	s := servertest.Start(t, cfg)
	var sub string
	for _, svc := range s.Services() {
		if svc.Name == "submission" {
			sub = svc.Addrs[0].String()
		}
	}
	if sub == "" {
		t.Fatal("no submission service")
	}
	two := []string{"carol@example.test", "dave@example.test"}
	tests := []struct {
		name, addr, user, from, hdrFrom string
		rcpts                           []string
		want                            string // "" for queued, else "code enhanced text" prefix
	}{
		{"owner", sub, "alice", "alice@example.test", "alice@example.test", two, ""},
		{"owned domain, aligned subdomain", sub, "alice", "news@alice.example", "news@mail.alice.example", two, ""},
		{"not owned", sub, "alice", "bob@example.test", "bob@example.test", two, "550 5.7.1 <bob@example.test>: user alice may not send as this address"},
		{"unlisted user", sub, "mallory", "mallory@example.test", "mallory@example.test", two, "550 5.7.1 <mallory@example.test>: user mallory may not send as"},
		{"null sender", sub, "bob", "", "bob@example.test", two, "550 5.7.1 The null sender <> is not allowed"},
		{"from not aligned", sub, "alice", "alice@example.test", "ceo@bank.example", two, "550 5.7.1 From <ceo@bank.example> does not match the envelope sender <alice@example.test>"},
		{"alice max rcpts", sub, "alice", "alice@example.test", "alice@example.test", []string{"a@example.test", "b@example.test", "c@example.test"}, "452 4.5.3 Too many recipients: at most 2 per message for alice"},
		{"default max rcpts", sub, "bob", "bob@example.test", "bob@example.test", []string{"a@example.test", "b@example.test", "c@example.test", "d@example.test"}, "452 4.5.3 Too many recipients: at most 3 per message for bob"},
		{"bob three rcpts", sub, "bob", "bob@example.test", "bob@example.test", []string{"a@example.test", "b@example.test", "c@example.test"}, ""},
		{"blocked sender authenticated", sub, "alice", "bad@alice.example", "bad@alice.example", two, "550 5.7.1 <bad@alice.example>: sender blocked by policy"},
		{"blocked rcpt authenticated", sub, "alice", "alice@example.test", "alice@example.test", []string{"trap@example.test"}, "550 5.7.1 <trap@example.test>: recipient blocked by policy"},
		{"anonymous any sender", s.Addr, "", "bob@example.test", "ceo@bank.example", []string{"a@example.test", "b@example.test", "c@example.test", "d@example.test"}, ""},
		{"anonymous null sender", s.Addr, "", "", "mailer-daemon@remote.test", two, ""},
		{"anonymous blocked sender", s.Addr, "", "Someone@Spam.Test", "x@spam.test", two, "550 5.7.1 <Someone@Spam.Test>: sender blocked by policy"},
		{"anonymous blocked rcpt", s.Addr, "", "x@remote.test", "x@remote.test", []string{"Trap@localhost"}, "550 5.7.1 <Trap@localhost>: recipient blocked by policy"},
	}
	delivered := 0
	for _, tc := range tests {
		err := send(tc.addr, tc.user, tc.from, tc.hdrFrom, tc.rcpts)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v, want queued", tc.name, err)
			}
			if tc.rcpts[0] == "carol@example.test" {
				delivered++
			}
			continue
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			continue
		}
		e := se.EnhancedCode
		got := fmt.Sprintf("%d %d.%d.%d %s", se.Code, e[0], e[1], e[2], se.Message)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// The accepted messages reached the mailbox; refused ones did not.
	// (Refused messages were never queued, so none can arrive later.)
	servertest.WaitFiles(t, s.Mailbox("carol", "example.test"), delivered, 10*time.Second)
	if n := len(servertest.MaildirFiles(s.Mailbox("carol", "example.test"))); n != delivered {
		t.Errorf("carol has %d messages, want %d", n, delivered)
	}
}
