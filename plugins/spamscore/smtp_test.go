package spamscore

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestSMTP runs the plugin in the real server: the core applies the
// default [spam] thresholds (header 5, quarantine 10, reject 15) to its
// scores.
func TestSMTP(t *testing.T) {
	cfg := servertest.Config(t)
	toml, err := sdktest.PluginTOML(map[string]any{"local_domains": []any{"localhost"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	servertest.Install(t, cfg, "spamscore", sdktest.Build(t, "."), string(toml))
	s := servertest.Start(t, cfg)
	box := s.Mailbox("bob", "localhost")
	rcpt := []string{"bob@localhost"}

	clean := servertest.Message("alice@example.org", "bob@localhost", "Lunch tomorrow", "See you at noon.\r\n")
	servertest.MustSend(t, s.Addr, "alice@example.org", rcpt, clean)
	got := readMail(t, servertest.WaitFiles(t, box, 1, 20*time.Second)[0])
	if strings.Contains(got, "X-Spam-Status") {
		t.Errorf("clean message got a spam header:\n%s", got)
	}

	// MISSING_DATE 1 + MISSING_MESSAGE_ID 1 + SUBJECT_ALL_CAPS 1.5 +
	// URL_IP_HOST 2.5 = 6: over add_header, under quarantine.
	spammy := "From: <alice@example.org>\r\nTo: <bob@localhost>\r\nSubject: CLAIM YOUR PRIZE\r\n\r\nClick http://198.51.100.7/win\r\n"
	servertest.MustSend(t, s.Addr, "alice@example.org", rcpt, spammy)
	var marked string
	for _, f := range servertest.WaitFiles(t, box, 2, 20*time.Second) {
		if m := readMail(t, f); strings.Contains(m, "CLAIM YOUR PRIZE") {
			marked = m
		}
	}
	status := headerLine(marked, "X-Spam-Status")
	for _, want := range []string{"Yes, score=6.0", "MISSING_DATE(1)", "MISSING_MESSAGE_ID(1)", "SUBJECT_ALL_CAPS(1.5)", "URL_IP_HOST(2.5)"} {
		if !strings.Contains(status, want) {
			t.Errorf("X-Spam-Status %q lacks %q", status, want)
		}
	}

	// + DISPLAY_NAME_SPOOF 4 + ATTACH_EXECUTABLE 4 + ATTACH_DOUBLE_EXT 4 = 18.
	reject := "From: \"postmaster@localhost\" <x@evil.test>\r\nTo: <bob@localhost>\r\nSubject: INVOICE OVERDUE\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" +
		"Pay at http://198.51.100.7/pay\r\n--b\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
	_, err = servertest.Send(s.Addr, "x@evil.test", rcpt, reject)
	if servertest.Code(err) != 550 || !strings.Contains(err.Error(), "spam") {
		t.Errorf("message over the reject threshold: %v, want 550 rejected as spam", err)
	}
}

func readMail(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// headerLine returns the first "Name: value" line of msg's header section.
func headerLine(msg, name string) string {
	hdr, _, _ := strings.Cut(msg, "\n\n") // Maildir files have LF line endings.
	for _, l := range strings.Split(hdr, "\n") {
		if strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)+":") {
			return l
		}
	}
	return ""
}
