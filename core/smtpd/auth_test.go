package smtpd

import (
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/pluginapi"
)

func loginClient(user, password string) sasl.Client { return sasl.NewLoginClient(user, password) }

// sendMail runs one transaction on c and fails the test on any error.
func sendMail(t *testing.T, c *smtp.Client, from, to string) {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		t.Fatalf("MAIL FROM:<%s>: %v", from, err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatalf("RCPT TO:<%s>: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: hi\r\n\r\nhello\r\n", from, to)
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
}

// codeOf returns the SMTP code of err, 0 when it is not an SMTP reply.
func codeOf(err error) int {
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code
	}
	return 0
}

func TestAuthOverSTARTTLS(t *testing.T) {
	q := &fakeQueue{}
	f := &scriptedFilters{}
	var seenUser, seenTLS string
	f.act = func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		if hook == pluginapi.HookData {
			seenUser, seenTLS = txn.Conn.AuthUser, txn.Conn.TLS
		}
		return filter.Result{}
	}
	opts := submissionOptions(t, q)
	opts.Filters = f
	addr := startServer(t, opts)
	for _, tc := range []struct {
		name string
		auth sasl.Client
	}{
		{"PLAIN", sasl.NewPlainClient("", "alice@local.test", "secret")},
		{"LOGIN", loginClient("alice@local.test", "secret")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := smtp.DialStartTLS(addr, clientTLS())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Auth(tc.auth); err != nil {
				t.Fatalf("AUTH %s: %v", tc.name, err)
			}
			sendMail(t, c, "alice@local.test", "someone@remote.example")
		})
	}
	envs, bodies := q.got()
	if len(envs) != 2 {
		t.Fatalf("queued %d messages, want 2", len(envs))
	}
	if !strings.Contains(string(bodies[0]), "with ESMTPSA id") {
		t.Errorf("Received header does not say ESMTPSA:\n%s", bodies[0])
	}
	if seenUser != "alice@local.test" || !strings.HasPrefix(seenTLS, "TLS1.") {
		t.Errorf("filters saw AuthUser %q TLS %q", seenUser, seenTLS)
	}
}

func TestAuthRefusedInPlainText(t *testing.T) {
	q := &fakeQueue{}
	addr := startServer(t, submissionOptions(t, q))
	rc := dialRaw(t, addr, "")
	rc.expect(220)
	for _, c := range rc.ehlo() {
		if strings.HasPrefix(c, "AUTH") {
			t.Errorf("AUTH offered before TLS: %q", c)
		}
	}
	rc.send("AUTH PLAIN " + plain("alice@local.test", "secret") + "\r\n")
	if code, text := rc.reply(); code != 538 && code != 502 {
		t.Errorf("AUTH in plain text got %d %q, want 538 or 502", code, text)
	}
	rc.send("MAIL FROM:<alice@local.test>\r\n")
	if text := rc.expect(530); !strings.HasPrefix(text, "5.7.0") {
		t.Errorf("MAIL without AUTH got 530 %q, want 5.7.0", text)
	}
}

func TestAllowInsecureAuth(t *testing.T) {
	q := &fakeQueue{}
	opts := submissionOptions(t, q)
	opts.AllowInsecureAuth = true
	addr := startServer(t, opts)
	rc := dialRaw(t, addr, "")
	rc.expect(220)
	if caps := rc.ehlo(); !strings.Contains(strings.Join(caps, "|"), "AUTH PLAIN LOGIN") {
		t.Errorf("AUTH not offered with allow_insecure_auth: %q", caps)
	}
	rc.send("AUTH PLAIN " + plain("bob", "hunter2") + "\r\n")
	rc.expect(235)
	rc.send("MAIL FROM:<bob@local.test>\r\n")
	rc.expect(250)
	rc.send("STARTTLS\r\n")
	rc.expect(503) // after AUTH the session may not start over
}

func TestAuthThrottle(t *testing.T) {
	q := &fakeQueue{}
	logs := &testlog.Buffer{}
	opts := submissionOptions(t, q)
	opts.Logger = logs.Logger(slog.LevelDebug)
	addr := startServer(t, opts)
	login := func() *rawConn {
		rc := dialRaw(t, addr, "")
		rc.greet()
		rc.startTLS()
		rc.ehlo()
		return rc
	}
	rc := login()
	rc.send("AUTH PLAIN " + plain("alice@local.test", "wrong") + "\r\n")
	if text := rc.expect(535); !strings.HasPrefix(text, "5.7.8") {
		t.Errorf("wrong password got 535 %q, want 5.7.8", text)
	}
	// The same credentials again by LOGIN (as smtplib retries) are the
	// same attempt: not counted.
	rc.send("AUTH LOGIN\r\n")
	rc.expect(334)
	rc.send(plainB64("alice@local.test") + "\r\n")
	rc.expect(334)
	rc.send(plainB64("wrong") + "\r\n")
	rc.expect(535)
	rc.send("AUTH LOGIN\r\n")
	rc.expect(334)
	rc.send(plainB64("nobody") + "\r\n")
	rc.expect(334)
	rc.send(plainB64("guess") + "\r\n")
	rc.expect(535)
	rc.send("AUTH PLAIN " + plain("alice@local.test", "again") + "\r\n")
	rc.expect(535)
	rc.send("AUTH PLAIN " + plain("alice@local.test", "third") + "\r\n")
	if got := rc.readToEOF(); !strings.HasPrefix(got, "421 4.7.0") {
		t.Fatalf("third failure of alice got %q, want 421 4.7.0 and close", got)
	}
	// Another user's right password from the same address is taken.
	rc = login()
	rc.send("AUTH PLAIN " + plain("bob", "hunter2") + "\r\n")
	rc.expect(235)
	rc.send("QUIT\r\n")
	// Alice from this address is refused even with the right password
	// until the window passes.
	rc = login()
	rc.send("AUTH PLAIN " + plain("alice@local.test", "secret") + "\r\n")
	if got := rc.readToEOF(); !strings.HasPrefix(got, "421 4.7.0") {
		t.Fatalf("AUTH of a blocked login got %q, want 421", got)
	}
	// One line per failure, each naming the IP and the user (fail2ban).
	var failed []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `msg="auth failed"`) && !strings.Contains(line, "repeat=true") {
			failed = append(failed, line)
		}
	}
	want := []string{"alice@local.test", "nobody", "alice@local.test", "alice@local.test"}
	for i, user := range want {
		if len(failed) != len(want) || !strings.Contains(failed[i], " ip=127.0.0.1 ") || !strings.Contains(failed[i], " user="+user+" ") {
			t.Errorf("auth failure %d: want a log line with ip=127.0.0.1 user=%s; got lines %q", i+1, user, failed)
		}
	}
}

func plainB64(s string) string { return strings.TrimSpace(b64(s)) }

func TestRelayNeedsAuth(t *testing.T) {
	q := &fakeQueue{}
	opts := submissionOptions(t, q)
	opts.Name = "smtp" // an MX that also takes logins: relaying is the question
	opts.AllowInsecureAuth = true
	addr := startServer(t, opts)
	rc := dialRaw(t, addr, "")
	rc.greet()
	rc.send("MAIL FROM:<alice@local.test>\r\nRCPT TO:<x@remote.example>\r\nRCPT TO:<y@local.test>\r\nRSET\r\n")
	rc.expect(250)
	rc.expect(554)
	rc.expect(250)
	rc.expect(250)
	rc.send("AUTH PLAIN " + plain("alice@local.test", "secret") + "\r\n")
	rc.expect(235)
	rc.send("MAIL FROM:<alice@local.test>\r\nRCPT TO:<x@remote.example>\r\n")
	rc.expect(250)
	rc.expect(250)
}

func TestRestrictSender(t *testing.T) {
	for _, tc := range []struct {
		user, pass, from string
		restrict         bool
		want             int
	}{
		{"alice@local.test", "secret", "alice@local.test", true, 250},
		{"alice@local.test", "secret", "ALICE@Local.Test", true, 250},
		{"alice@local.test", "secret", "other@local.test", true, 250},
		{"alice@local.test", "secret", "alice@remote.example", true, 553},
		{"alice@local.test", "secret", "", true, 250},
		{"bob", "hunter2", "bob@other.test", true, 250},
		{"bob", "hunter2", "bob@remote.example", true, 553},
		{"alice@local.test", "secret", "alice@remote.example", false, 250},
	} {
		t.Run(fmt.Sprintf("%s_%s_%v", tc.user, tc.from, tc.restrict), func(t *testing.T) {
			opts := submissionOptions(t, &fakeQueue{})
			opts.AllowInsecureAuth = true
			opts.RestrictSender = tc.restrict
			rc := dialRaw(t, startServer(t, opts), "")
			rc.greet()
			rc.send("AUTH PLAIN " + plain(tc.user, tc.pass) + "\r\n")
			rc.expect(235)
			rc.send("MAIL FROM:<" + tc.from + ">\r\n")
			text := rc.expect(tc.want)
			if tc.want == 553 && text != "5.7.1 Sender address not owned by user" {
				t.Errorf("got 553 %q", text)
			}
		})
	}
}

// TestSwaks submits with swaks over STARTTLS and implicit TLS.
func TestSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Fatal("swaks is missing (run scripts/install-test-deps.sh, as make test does)")
	}
	if exec.Command("perl", "-MNet::SSLeay", "-MIO::Socket::SSL", "-e1").Run() != nil {
		t.Fatal("swaks cannot do TLS without Net::SSLeay (run scripts/install-test-deps.sh, as make test does)")
	}
	q := &fakeQueue{}
	opts := submissionOptions(t, q)
	starttls := startServer(t, opts)
	implicit := startTLSListener(t, opts)
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"STARTTLS PLAIN", []string{"--server", starttls, "--tls", "--auth", "PLAIN", "--auth-password", "secret"}, true},
		{"STARTTLS LOGIN", []string{"--server", starttls, "--tls", "--auth", "LOGIN", "--auth-password", "secret"}, true},
		{"implicit TLS", []string{"--server", implicit, "--tlsc", "--auth", "PLAIN", "--auth-password", "secret"}, true},
		{"wrong password", []string{"--server", starttls, "--tls", "--auth", "PLAIN", "--auth-password", "nope"}, false},
		{"plain text", []string{"--server", starttls, "--auth", "PLAIN", "--auth-password", "secret"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--from", "alice@local.test", "--to", "dest@remote.example",
				"--auth-user", "alice@local.test", "--helo", "client.example", "--timeout", "20"}, tc.args...)
			out, err := exec.Command(swaks, args...).CombinedOutput()
			if (err == nil) != tc.ok {
				t.Errorf("swaks %v: err %v, want success %v\n%s", args, err, tc.ok, out)
			}
		})
	}
	if envs, _ := q.got(); len(envs) != 3 {
		t.Errorf("queued %d messages, want 3", len(envs))
	}
}
