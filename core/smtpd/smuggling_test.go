package smtpd

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/internal/testlog"
)

// smugglingForms are fake end-of-data markers that some servers accept.
// always marks the one refused even with bare_newline = "normalize":
// go-smtp drops its ".\r", so there is nothing left to repair.
var smugglingForms = []struct {
	name, marker string
	always       bool
}{
	{"LF.LF", "\n.\n", false},
	{"CR.CR", "\r.\r", false},
	{"CRLF.LF", "\r\n.\n", false},
	{"LF.CRLF", "\n.\r\n", false},
	{"CR.CRLF", "\r.\r\n", false},
	{"CRLF.CR", "\r\n.\r", true},
}

// hidden is a second transaction a smuggler hides after a fake marker.
const hidden = "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@local.test>\r\nDATA\r\n" +
	"Subject: smuggled\r\n\r\nevil\r\n"

func TestSmugglingData(t *testing.T) {
	for _, mode := range []string{"reject", "normalize"} {
		for _, form := range smugglingForms {
			t.Run(mode+"/"+form.name, func(t *testing.T) {
				q := &fakeQueue{}
				opts := testOptions(q)
				opts.Listener.BareNewline = mode
				rc := dialRaw(t, startServer(t, opts), "")
				rc.greet()
				rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<user@local.test>\r\nDATA\r\n")
				rc.expect(250)
				rc.expect(250)
				rc.expect(354)
				rc.send("Subject: one\r\n\r\nhello" + form.marker + hidden + ".\r\n")
				code, text := rc.reply()
				rc.send("QUIT\r\n")
				rc.expect(221)
				envs, bodies := q.got()
				if mode == "reject" || form.always {
					if code != 550 || text != "5.5.2 Message contains bare CR or LF, refused" {
						t.Errorf("got %d %q, want 550 5.5.2", code, text)
					}
					if len(envs) != 0 {
						t.Errorf("enqueued %d messages, want none", len(envs))
					}
					return
				}
				if code != 250 {
					t.Fatalf("got %d %q, want 250", code, text)
				}
				if len(envs) != 1 || len(envs[0].Rcpts) != 1 || envs[0].Rcpts[0].Addr != "user@local.test" {
					t.Fatalf("enqueued %+v, want exactly the first message", envs)
				}
				// The hidden transaction is only text inside message one,
				// with every line ending in CRLF.
				if !bytes.Contains(bodies[0], []byte("\r\nMAIL FROM:<evil@example.org>\r\n")) {
					t.Errorf("hidden commands missing from the body: %q", bodies[0])
				}
				var sc bareScanner
				if sc.scan(bodies[0]); sc.end() {
					t.Errorf("normalized body still has a bare CR or LF: %q", bodies[0])
				}
			})
		}
	}
}

func TestSmugglingBDAT(t *testing.T) {
	for _, mode := range []string{"reject", "normalize"} {
		t.Run(mode, func(t *testing.T) {
			q := &fakeQueue{}
			opts := testOptions(q)
			opts.Listener.BareNewline = mode
			rc := dialRaw(t, startServer(t, opts), "")
			rc.greet()
			rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<user@local.test>\r\n")
			rc.expect(250)
			rc.expect(250)
			chunk1 := "Subject: one\r\n\r\nhello\n.\n" + hidden
			chunk2 := "end\r"
			rc.send(fmt.Sprintf("BDAT %d\r\n%s", len(chunk1), chunk1))
			code, text := rc.reply()
			if mode == "reject" {
				// go-smtp reports the refusal at this chunk or, when the
				// chunk was already taken in, at the next one.
				rc.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk2), chunk2))
				code2, text2 := rc.reply()
				if !(code == 550 && code2 == 502 || code == 250 && code2 == 550) {
					t.Fatalf("got %d %q then %d %q, want one 550", code, text, code2, text2)
				}
				rc.send("NOOP\r\n")
				rc.expect(250)
				if envs, _ := q.got(); len(envs) != 0 {
					t.Errorf("enqueued %d messages, want none", len(envs))
				}
				return
			}
			if code != 250 {
				t.Fatalf("got %d %q, want 250", code, text)
			}
			rc.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk2), chunk2))
			rc.expect(250)
			envs, bodies := q.got()
			if len(envs) != 1 {
				t.Fatalf("enqueued %d messages, want 1", len(envs))
			}
			if !bytes.HasSuffix(bodies[0], []byte("\r\n\r\nhello\r\n.\r\nMAIL FROM:<evil@example.org>\r\n"+
				"RCPT TO:<victim@local.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\nend\r\n")) {
				t.Errorf("body not normalized: %q", bodies[0])
			}
		})
	}
}

// TestBareLFCommandLines shows that a command line ending in a bare LF (or
// holding a bare CR) ends the connection before go-smtp acts on it, even
// when pipelined right after a message.
func TestBareLFCommandLines(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"bare LF", "MAIL FROM:<x@example.org>\n"},
		{"bare CR inside", "MAIL FROM:<x@example.org>\rRCPT TO:<y@local.test>\r\n"},
		{"LF only EHLO", "EHLO a\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{}
			rc := dialRaw(t, startServer(t, testOptions(q)), "")
			rc.greet()
			rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<user@local.test>\r\nDATA\r\n")
			rc.expect(250)
			rc.expect(250)
			rc.expect(354)
			rc.send("\r\none\r\n.\r\n" + tc.line + "RCPT TO:<v@local.test>\r\nDATA\r\n\r\ntwo\r\n.\r\n")
			rc.expect(250)
			if text := rc.expect(500); !strings.HasPrefix(text, "5.5.2 ") {
				t.Errorf("got %q, want 5.5.2", text)
			}
			if rest := rc.readToEOF(); rest != "" {
				t.Errorf("server said more after refusing: %q", rest)
			}
			if envs, _ := q.got(); len(envs) != 1 {
				t.Errorf("enqueued %d messages, want 1", len(envs))
			}
		})
	}
}

// TestStalledData: a client stalls inside DATA (or a BDAT chunk) past the
// data timeout. Everything it sent before the stall is read and handled: a
// whole message first, pipelined, is queued; the stalled one's bytes are
// read up to the last. Then the server answers 421 4.4.2 no sooner than
// the data timeout after the last byte, hangs up, and what the client sends
// afterwards is never read as commands.
func TestStalledData(t *testing.T) {
	const timeout = 100 * time.Millisecond
	const first = "Subject: first\r\n\r\nhello\r\n"
	for _, bdat := range []bool{false, true} {
		t.Run(fmt.Sprintf("bdat=%v", bdat), func(t *testing.T) {
			q := &fakeQueue{}
			logs := &testlog.Buffer{}
			opts := testOptions(q)
			opts.Listener.DataTimeout = config.Duration(timeout)
			opts.Logger = logs.Logger(slog.LevelDebug)
			rc := dialRaw(t, startServer(t, opts), "")
			rc.greet()
			txn := "MAIL FROM:<a@example.org>\r\nRCPT TO:<user@local.test>\r\n"
			var partial string
			if bdat {
				partial = "Subject: stalled\r\n\r\npartial"
				rc.send(txn + fmt.Sprintf("BDAT %d LAST\r\n%s", len(first), first) +
					txn + "BDAT 9\r\nSubject: ")
				for _, code := range []int{250, 250, 250, 250, 250, 250} { // the last: 9 bytes read
					rc.expect(code)
				}
				rc.send("BDAT 1000 LAST\r\n" + partial)
			} else {
				partial = "Subject: stalled\r\n\r\npartial"
				rc.send(txn + "DATA\r\n" + first + ".\r\n" + txn + "DATA\r\n")
				for _, code := range []int{250, 250, 354, 250, 250, 250, 354} {
					rc.expect(code)
				}
				rc.send(partial)
			}
			sent := time.Now()
			rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			code, text := rc.reply()
			waited := time.Since(sent)
			if code != 421 || !strings.HasPrefix(text, "4.4.2 ") {
				t.Fatalf("after the stall got %d %q, want 421 4.4.2", code, text)
			}
			if waited < timeout {
				t.Errorf("421 after %v, before the data timeout of %v", waited, timeout)
			}
			// The server hung up: nothing sent later can be read as commands.
			if rest := rc.readToEOF(); rest != "" {
				t.Errorf("server said more after 421: %q", rest)
			}
			envs, bodies := q.got()
			if len(envs) != 1 || !bytes.HasSuffix(bodies[0], []byte(first)) {
				t.Fatalf("queued %d messages %q, want only the first", len(envs), bodies)
			}
			want := fmt.Sprintf("bytes=%d ", len(partial))
			if !strings.Contains(logs.String(), "message data timed out") || !strings.Contains(logs.String(), want) {
				t.Errorf("no log line for the stall with %s; logs:\n%s", want, logs)
			}
		})
	}
}
