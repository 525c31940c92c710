package smtpd

import (
	"strings"
	"testing"
)

// TestSMTPUTF8Required: a non-ASCII address at MAIL or RCPT is refused
// with 553 5.6.7 unless MAIL declared SMTPUTF8 (RFC 6531 section 3.4);
// with SMTPUTF8 the message is queued for the non-ASCII recipient.
func TestSMTPUTF8Required(t *testing.T) {
	for _, tc := range []struct {
		name, mail, rcpt string
		mailCode         int
		rcptCode         int
	}{
		{"sender without SMTPUTF8", "MAIL FROM:<jösé@example.org>", "", 553, 0},
		{"recipient without SMTPUTF8", "MAIL FROM:<a@example.org>", "RCPT TO:<jösé@local.test>", 250, 553},
		{"sender with SMTPUTF8", "MAIL FROM:<jösé@example.org> SMTPUTF8", "RCPT TO:<b@local.test>", 250, 250},
		{"recipient with SMTPUTF8", "MAIL FROM:<a@example.org> SMTPUTF8", "RCPT TO:<jösé@local.test>", 250, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{}
			rc := dialRaw(t, startServer(t, testOptions(q)), "")
			rc.greet()
			rc.send(tc.mail + "\r\n")
			text := rc.expect(tc.mailCode)
			if tc.mailCode == 553 {
				if !strings.HasPrefix(text, "5.6.7 ") || !strings.Contains(text, "SMTPUTF8") {
					t.Errorf("MAIL reply %q, want 5.6.7 naming SMTPUTF8", text)
				}
				return
			}
			rc.send(tc.rcpt + "\r\n")
			text = rc.expect(tc.rcptCode)
			if tc.rcptCode == 553 {
				if !strings.HasPrefix(text, "5.6.7 ") || !strings.Contains(text, "SMTPUTF8") {
					t.Errorf("RCPT reply %q, want 5.6.7 naming SMTPUTF8", text)
				}
				return
			}
			rc.send("DATA\r\n")
			rc.expect(354)
			rc.send("Subject: hi\r\n\r\nhello\r\n.\r\n")
			rc.expect(250)
			envs, _ := q.got()
			want := strings.TrimSuffix(strings.TrimPrefix(tc.rcpt, "RCPT TO:<"), ">")
			if len(envs) != 1 || !envs[0].SMTPUTF8 || len(envs[0].Rcpts) != 1 || envs[0].Rcpts[0].Addr != want {
				t.Errorf("queued %+v, want one SMTPUTF8 envelope to %s", envs, want)
			}
		})
	}
}
