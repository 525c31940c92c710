package headers

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/users"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

const pluginTOML = `order = 60
[config]
strip_received_for_auth = true
customer_ids = {"alice" = "C-1001"}
subject_tag = "[SPAM]"
subject_tag_score = 5.0
remove = ["X-Mailer"]
`

// TestSMTP runs headers after spamscore in the real server: an
// authenticated submission loses the client's address and gains its
// customer ID; a message spamscore scores over 5 arrives with a tagged
// Subject.
func TestSMTP(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.Submission.Listen = []string{"127.0.0.1:0"}
	cfg.Submission.AllowInsecureAuth = true
	if err := users.Set(cfg.Submission.UsersFile, "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	servertest.Install(t, cfg, "spamscore", sdktest.Build(t, "../spamscore"), "order = 50\n")
	servertest.Install(t, cfg, "headers", sdktest.Build(t, "."), pluginTOML)
	s := servertest.Start(t, cfg)
	sub := ""
	for _, svc := range s.Services() {
		if svc.Name == "submission" {
			sub = svc.Addrs[0].String()
		}
	}
	box := s.Mailbox("bob", "localhost")

	submitted := "X-Mailer: Outlook 16\r\nX-Originating-IP: [127.0.0.1]\r\nX-Customer-ID: forged\r\n" +
		servertest.Message("alice@localhost", "bob@localhost", "Invoice", "Attached.\r\n")
	if err := submit(sub, "alice", "correct horse", "alice@localhost", "bob@localhost", submitted); err != nil {
		t.Fatalf("authenticated submission: %v", err)
	}
	got := header(t, servertest.WaitFiles(t, box, 1, 20*time.Second)[0])
	if n := strings.Count(got, "Received:"); n != 1 {
		t.Errorf("%d Received fields, want 1:\n%s", n, got)
	}
	for _, bad := range []string{"127.0.0.1", "from client.test", "X-Mailer", "forged"} {
		if strings.Contains(got, bad) {
			t.Errorf("header still contains %q:\n%s", bad, got)
		}
	}
	for _, want := range []string{"Received: by localhost (Sluice) with ESMTPA id ", "X-Customer-ID: C-1001\n", "Subject: Invoice\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("header lacks %q:\n%s", want, got)
		}
	}

	// spamscore: MISSING_DATE 1 + MISSING_MESSAGE_ID 1 + SUBJECT_ALL_CAPS
	// 1.5 + URL_IP_HOST 2.5 = 6 ≥ subject_tag_score. A forged customer
	// ID and spam status are dropped.
	spammy := "From: <x@example.org>\r\nTo: <bob@localhost>\r\nSubject: CLAIM YOUR PRIZE\r\nX-Customer-ID: C-1001\r\n" +
		"X-Spam-Status: No, score=0\r\n\r\nClick http://198.51.100.7/win\r\n"
	servertest.MustSend(t, s.Addr, "x@example.org", []string{"bob@localhost"}, spammy)
	var tagged string
	for _, f := range servertest.WaitFiles(t, box, 2, 20*time.Second) {
		if h := header(t, f); strings.Contains(h, "PRIZE") {
			tagged = h
		}
	}
	for _, want := range []string{"Subject: [SPAM] CLAIM YOUR PRIZE\n", "X-Spam-Status: Yes, score=6.0"} {
		if !strings.Contains(tagged, want) {
			t.Errorf("header lacks %q:\n%s", want, tagged)
		}
	}
	for _, bad := range []string{"X-Customer-ID", "score=0"} {
		if strings.Contains(tagged, bad) {
			t.Errorf("header still contains %q:\n%s", bad, tagged)
		}
	}
	if n := strings.Count(tagged, "Received:"); n != 1 || !strings.Contains(tagged, "[127.0.0.1]") {
		t.Errorf("an unauthenticated message keeps its Received field:\n%s", tagged)
	}
}

// submit sends one message with AUTH PLAIN (allow_insecure_auth is on).
func submit(addr, user, password, from, rcpt, msg string) error {
	_, err := servertest.SendAs(addr, servertest.Login{User: user, Password: password}, from, []string{rcpt}, msg)
	return err
}

// header returns the header section of the message in file path.
func header(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := strings.Cut(string(b), "\n\n") // Maildir files have LF line endings.
	return h + "\n"
}
