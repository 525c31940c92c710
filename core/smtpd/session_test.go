package smtpd

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
)

func TestExtensions(t *testing.T) {
	addr := startServer(t, testOptions(&fakeQueue{}))
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO does not announce %s", ext)
		}
	}
	if _, param := c.Extension("SIZE"); param != "65536" {
		t.Errorf("SIZE %q, want 65536", param)
	}
}

func TestAcceptMessage(t *testing.T) {
	q := &fakeQueue{}
	addr := startServer(t, testOptions(q))
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.org", &smtp.MailOptions{
		Body: smtp.Body8BitMIME, UTF8: true, Return: smtp.DSNReturnHeaders, EnvelopeID: "env-42",
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("User@LOCAL.test", &smtp.RcptOptions{
		Notify:                []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure},
		OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "orig@example.net",
	}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	const msg = "Subject: hi\r\n\r\nhello\r\n.dot line\r\n"
	fmt.Fprint(w, msg)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	envs, bodies := q.got()
	if len(envs) != 1 {
		t.Fatalf("enqueued %d messages, want 1", len(envs))
	}
	env, body := envs[0], string(bodies[0])
	if want := "2.0.0 Ok: queued as " + env.ID; resp.StatusText != want {
		t.Errorf("reply %q, want %q", resp.StatusText, want)
	}
	want := mail.Envelope{
		ID: env.ID, From: "sender@example.org",
		Rcpts: []mail.Recipient{{Addr: "User@local.test", Notify: []string{"SUCCESS", "FAILURE"},
			ORCPT: "RFC822;orig@example.net"}},
		Ret: "HDRS", EnvID: "env-42", SMTPUTF8: true, Body8Bit: true,
		ClientIP: "127.0.0.1", Helo: "client.example",
		Received: env.Received, Size: int64(len(body)),
	}
	if fmt.Sprint(env) != fmt.Sprint(want) {
		t.Errorf("envelope\n got %+v\nwant %+v", env, want)
	}
	re := regexp.MustCompile(`^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)\r\n` +
		`\tby mx\.test \(Sluice\) with UTF8SMTP id ` + env.ID + `\r\n` +
		`\tfor <User@local\.test>; [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n`)
	loc := re.FindStringIndex(body)
	if loc == nil {
		t.Fatalf("no Received header at the top of\n%q", body)
	}
	if rest := body[loc[1]:]; rest != msg {
		t.Errorf("message after Received = %q, want %q", rest, msg)
	}
}

func TestRelayControl(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted bool
		rcpt    string
		code    int
	}{
		{"local from anyone", false, "<user@local.test>", 250},
		{"local case-insensitive", false, "<user@OTHER.test>", 250},
		{"remote from untrusted", false, "<user@remote.example>", 554},
		{"remote from trusted", true, "<user@remote.example>", 250},
		{"address literal from untrusted", false, "<user@[127.0.0.1]>", 554},
		{"subdomain of local is remote", false, "<user@sub.local.test>", 554},
		{"source route stripped, local", false, "<@relay.example:user@local.test>", 250},
		{"source route stripped, remote", false, "<@local.test:user@remote.example>", 554},
		{"source route list", false, "<@a.example,@local.test:user@remote.example>", 554},
		{"percent hack", false, "<user%remote.example@local.test>", 554},
		{"percent hack trusted", true, "<user%remote.example@local.test>", 554},
		{"bang path", false, "<remote.example!user@local.test>", 554},
		{"bang path trusted", true, "<remote.example!user@local.test>", 554},
		{"quoted at", false, `<"user@remote.example"@local.test>`, 554},
		{"quoted at trusted", true, `<"user@remote.example"@local.test>`, 554},
		{"double at", false, "<user@remote.example@local.test>", 554},
		{"slash", false, "<../etc@local.test>", 553},
		{"backslash", false, `<"a\\b"@local.test>`, 553},
		{"leading dot", false, `<".hidden"@local.test>`, 553},
		{"double dot", false, "<a..b@local.test>", 553},
		{"quoted space", false, `<"a b"@local.test>`, 553},
		{"control char", false, "<\"a\x01b\"@local.test>", 553},
		{"trailing dot domain", true, "<user@local.test.>", 553},
		{"postmaster bare", false, "<postmaster>", 250},
		{"postmaster bare mixed case", false, "<PostMaster>", 250},
		{"no domain", false, "<user>", 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{}
			opts := testOptions(q)
			if tc.trusted {
				opts.TrustedNetworks = loopback()
			}
			rc := dialRaw(t, startServer(t, opts), "")
			rc.greet()
			rc.send("MAIL FROM:<s@example.org>\r\n")
			rc.expect(250)
			rc.send("RCPT TO:" + tc.rcpt + "\r\n")
			code, text := rc.reply()
			if code != tc.code {
				t.Fatalf("RCPT TO:%s: got %d %q, want %d", tc.rcpt, code, text, tc.code)
			}
			if code == 554 && !strings.HasPrefix(text, "5.7.1 ") {
				t.Errorf("got %q, want enhanced code 5.7.1", text)
			}
			if code == 553 && !strings.HasPrefix(text, "5.1.3 ") {
				t.Errorf("got %q, want enhanced code 5.1.3", text)
			}
			if code != 250 {
				return
			}
			rc.send("DATA\r\n")
			rc.expect(354)
			rc.send("Subject: x\r\n\r\nx\r\n.\r\n")
			rc.expect(250)
			envs, _ := q.got()
			if len(envs) != 1 || len(envs[0].Rcpts) != 1 {
				t.Fatalf("enqueued %+v", envs)
			}
			got := envs[0].Rcpts[0].Addr
			if _, d, err := checkAddress(got); err != nil || !slices.Contains([]string{"local.test", "other.test", "remote.example"}, d) {
				t.Errorf("queued recipient %q (domain %q, err %v)", got, d, err)
			}
			if strings.Contains(tc.rcpt, "postmaster") && !strings.EqualFold(got, "postmaster@local.test") {
				t.Errorf("bare postmaster queued as %q, want postmaster@local.test", got)
			}
		})
	}
}

func TestNullSenderAndDuplicates(t *testing.T) {
	q := &fakeQueue{}
	rc := dialRaw(t, startServer(t, testOptions(q)), "")
	rc.greet()
	rc.send("MAIL FROM:<>\r\nRCPT TO:<a@local.test>\r\nRCPT TO:<a@LOCAL.TEST>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("\r\nbounce\r\n.\r\n")
	rc.expect(250)
	rc.send("MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n")
	rc.expect(250)
	rc.expect(503)
	envs, _ := q.got()
	if len(envs) != 1 || envs[0].From != "" || len(envs[0].Rcpts) != 1 {
		t.Fatalf("enqueued %+v, want one bounce to a@local.test", envs)
	}
}

func TestEnqueueFailure(t *testing.T) {
	q := &fakeQueue{err: errors.New("disk full")}
	rc := dialRaw(t, startServer(t, testOptions(q)), "")
	rc.greet()
	rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("\r\nbody\r\n.\r\n")
	if text := rc.expect(451); text != "4.3.0 Temporary queue failure, try again" {
		t.Errorf("got %q", text)
	}
	// The session goes on.
	rc.send("NOOP\r\n")
	rc.expect(250)
}

// TestQueuedLoggedByQueueOnly: the session does not log "queued"; the
// queue logs the message it took (it was logged twice, with different
// keys).
func TestQueuedLoggedByQueueOnly(t *testing.T) {
	logs := &filter.LogLines{WithValues: true}
	opts := testOptions(&fakeQueue{})
	opts.Logger = slog.New(logs)
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	if text := rc.expect(250); !strings.HasPrefix(text, "2.0.0 Ok: queued as FAKE") {
		t.Errorf("reply %q", text)
	}
	for _, l := range logs.Since(0) {
		if strings.HasPrefix(l, "INFO queued") {
			t.Errorf("the session logged %q", l)
		}
	}
}
