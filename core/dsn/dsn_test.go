package dsn

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/sluice-mta/sluice/core/mail"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const original = "Return-Path: <alice@example.org>\r\n" +
	"From: Alice <alice@example.org>\r\n" +
	"To: bob@example.com, carol@example.net\r\n" +
	"Subject: Lunch?\r\n" +
	"Message-ID: <lunch.1@example.org>\r\n" +
	"\r\n" +
	"Are you free at noon?\r\n" +
	"The usual place.\r\n" +
	"-- \r\n" +
	"Alice\r\n"

// report is the fixed report the golden files are built from.
func report() *Report {
	return &Report{
		ReportingMTA: "mx.example.org",
		From:         "MAILER-DAEMON@mx.example.org",
		To:           "alice@example.org",
		QueueID:      "0A1B2C3D4E",
		EnvID:        "lunch-42",
		Arrival:      time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC),
		Rcpts: []Rcpt{
			{Addr: "bob@example.com", ORCPT: "rfc822;bob@example.com", Action: "failed", Status: mail.MustEnhanced("5.1.1"),
				RemoteMTA: "mx1.example.com", Diagnostic: "smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table"},
			{Addr: "carol@example.net", Action: "failed", Status: mail.MustEnhanced("4.4.7"), Diagnostic: "delivery time expired after 5 days; last error: connection refused"},
		},
		Original: []byte(original),
		Now:      time.Date(2025, 3, 6, 9, 30, 5, 0, time.UTC),
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *Report)
	}{
		{"failed", func(r *Report) {}},
		{"delayed", func(r *Report) {
			for i := range r.Rcpts {
				r.Rcpts[i].Action, r.Rcpts[i].Status = "delayed", mail.MustEnhanced("4.7.1")
				r.Rcpts[i].Diagnostic = "smtp; 451 4.7.1 greylisted, try again later"
				r.Rcpts[i].WillRetryUntil = r.Now.Add(96 * time.Hour)
			}
		}},
		{"delivered", func(r *Report) {
			for i := range r.Rcpts {
				r.Rcpts[i].Action, r.Rcpts[i].Status = "delivered", mail.MustEnhanced("2.0.0")
				r.Rcpts[i].Diagnostic = "smtp; 250 2.0.0 ok"
			}
		}},
		{"hdrs", func(r *Report) { r.Ret = "HDRS" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report()
			tt.modify(r)
			got, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("report differs from %s:\n%s", golden, got)
			}
		})
	}
}

// part is one decoded part of a report.
type part struct {
	contentType string
	params      map[string]string
	body        []byte
}

// parse reads a report back with go-message and returns its top-level
// header and parts.
func parse(t *testing.T, msg []byte) (message.Header, []part) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("go-message cannot read the report: %v", err)
	}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("report is not multipart: %s", e.Header.Get("Content-Type"))
	}
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading part %d: %v", len(parts), err)
		}
		ct, params, err := p.Header.ContentType()
		if err != nil {
			t.Fatalf("part %d Content-Type: %v", len(parts), err)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, part{ct, params, body})
	}
	return e.Header, parts
}

// statusGroups splits a message/delivery-status body into its field groups.
func statusGroups(t *testing.T, body []byte) []textproto.Header {
	t.Helper()
	var groups []textproto.Header
	br := bufio.NewReader(bytes.NewReader(body))
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return groups
		}
		h, err := textproto.ReadHeader(br)
		if err != nil {
			t.Fatalf("delivery-status group %d: %v", len(groups), err)
		}
		groups = append(groups, h)
	}
}

func TestStructure(t *testing.T) {
	msg, err := Build(report())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("report has a bare LF")
	}
	for i, l := range strings.Split(string(msg), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line %d is %d bytes long", i+1, len(l))
		}
	}
	h, parts := parse(t, msg)
	ct, params, err := h.ContentType()
	if err != nil || ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Errorf("Content-Type = %q %v %v, want multipart/report; report-type=delivery-status", ct, params, err)
	}
	for k, want := range map[string]string{
		"Subject":        SubjectFailed,
		"Auto-Submitted": "auto-replied",
		"To":             "<alice@example.org>",
		"From":           "Mail Delivery System <MAILER-DAEMON@mx.example.org>",
		"Date":           "Thu, 06 Mar 2025 09:30:05 +0000",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@mx.example.org>") {
		t.Errorf("Message-ID = %q", id)
	}
	wantTypes := []string{"text/plain", "message/delivery-status", "message/rfc822"}
	if len(parts) != len(wantTypes) {
		t.Fatalf("%d parts, want %d", len(parts), len(wantTypes))
	}
	for i, want := range wantTypes {
		if parts[i].contentType != want {
			t.Errorf("part %d is %s, want %s", i, parts[i].contentType, want)
		}
	}
	for _, s := range []string{"<bob@example.com>: failed (5.1.1)", "User unknown", "<carol@example.net>: failed (4.4.7)", "mx1.example.com"} {
		if !bytes.Contains(parts[0].body, []byte(s)) {
			t.Errorf("human part lacks %q:\n%s", s, parts[0].body)
		}
	}

	groups := statusGroups(t, parts[1].body)
	if len(groups) != 3 {
		t.Fatalf("%d delivery-status groups, want 3 (message + 2 recipients)", len(groups))
	}
	checkFields(t, "per-message", groups[0], map[string]string{
		"Reporting-MTA":        "dns; mx.example.org",
		"Original-Envelope-Id": "lunch-42",
		"Arrival-Date":         "Sat, 01 Mar 2025 09:30:00 +0000",
	})
	checkFields(t, "bob", groups[1], map[string]string{
		"Original-Recipient": "rfc822; bob@example.com",
		"Final-Recipient":    "rfc822; bob@example.com",
		"Action":             "failed",
		"Status":             "5.1.1",
		"Remote-MTA":         "dns; mx1.example.com",
		"Diagnostic-Code":    "smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
	})
	checkFields(t, "carol", groups[2], map[string]string{
		"Final-Recipient": "rfc822; carol@example.net",
		"Status":          "4.4.7",
		"Diagnostic-Code": "X-Sluice; delivery time expired after 5 days; last error: connection refused",
	})
	if groups[2].Has("Remote-MTA") || groups[2].Has("Original-Recipient") {
		t.Error("carol's group has fields she has no value for")
	}
	if !bytes.Equal(parts[2].body, []byte(original)) {
		t.Errorf("returned message differs:\n got %q\nwant %q", parts[2].body, original)
	}
}

// checkFields compares header fields, unfolding folded values.
func checkFields(t *testing.T, name string, h textproto.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got := strings.Join(strings.Fields(h.Get(k)), " ")
		if got != v {
			t.Errorf("%s: %s = %q, want %q", name, k, got, v)
		}
	}
}

func TestRetHeaders(t *testing.T) {
	r := report()
	r.Ret = "HDRS"
	msg, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	_, parts := parse(t, msg)
	ret := parts[len(parts)-1]
	if ret.contentType != "text/rfc822-headers" {
		t.Errorf("returned part is %s, want text/rfc822-headers", ret.contentType)
	}
	if !bytes.Contains(ret.body, []byte("Subject: Lunch?\r\n")) {
		t.Errorf("returned headers lack Subject:\n%s", ret.body)
	}
	if bytes.Contains(msg, []byte("usual place")) {
		t.Error("RET=HDRS report contains the body")
	}
}

// TestNonFailureHeadersOnly: RET applies to failure reports; a delay
// warning or success notice returns the headers only, whatever RET says.
func TestNonFailureHeadersOnly(t *testing.T) {
	for _, action := range []string{"delayed", "delivered", "failed"} {
		t.Run(action, func(t *testing.T) {
			r := report()
			r.Ret = "FULL"
			r.Rcpts = r.Rcpts[:1]
			r.Rcpts[0].Action, r.Rcpts[0].Status = action, mail.MustEnhanced(map[string]string{"delayed": "4.4.1", "delivered": "2.0.0", "failed": "5.1.1"}[action])
			msg, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			_, parts := parse(t, msg)
			ret := parts[len(parts)-1]
			wantBody := action == "failed"
			if got := bytes.Contains(msg, []byte("usual place")); got != wantBody {
				t.Errorf("body returned: %v, want %v", got, wantBody)
			}
			if !bytes.Contains(ret.body, []byte("Subject: Lunch?\r\n")) {
				t.Errorf("returned part lacks the headers:\n%s", ret.body)
			}
		})
	}
}

func TestMaxReturn(t *testing.T) {
	body := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz\r\n", 100) // 38 bytes a line
	orig := "From: a@example.org\r\nSubject: big\r\n\r\n" + body
	tests := []struct {
		name      string
		max       int64
		wantBody  int
		truncated bool
	}{
		{"no limit", 0, len(body), false},
		{"above size", int64(len(body)), len(body), false},
		{"cut at line", 100, 76, true},
		{"smaller than one line", 10, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report()
			r.Original, r.MaxReturn = []byte(orig), tt.max
			msg, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			_, parts := parse(t, msg)
			ret := parts[2]
			if ret.contentType != "message/rfc822" {
				t.Errorf("returned part is %s", ret.contentType)
			}
			hdr, got, ok := bytes.Cut(ret.body, []byte("\r\n\r\n"))
			if !ok || string(hdr)+"\r\n\r\n" != orig[:strings.Index(orig, "\r\n\r\n")+4] {
				t.Fatalf("returned headers cut or changed:\n%q", ret.body)
			}
			if len(got) != tt.wantBody || !strings.HasPrefix(body, string(got)) {
				t.Errorf("returned body is %d bytes, want the first %d", len(got), tt.wantBody)
			}
			if note := bytes.Contains(parts[0].body, []byte("cut to the first")); note != tt.truncated {
				t.Errorf("human part mentions truncation = %v, want %v", note, tt.truncated)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		actions []string
		want    string
	}{
		{[]string{"failed"}, SubjectFailed},
		{[]string{"delayed", "delayed"}, SubjectDelayed},
		{[]string{"delayed", "failed"}, SubjectFailed},
		{[]string{"delivered", "relayed"}, SubjectDelivered},
		{[]string{"delivered", "delayed"}, SubjectFailed},
	}
	for _, tt := range tests {
		r := report()
		r.Rcpts = nil
		for _, a := range tt.actions {
			r.Rcpts = append(r.Rcpts, Rcpt{Addr: "x@example.com", Action: a, Status: mail.MustEnhanced("2.0.0")})
		}
		msg, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := parse(t, msg)
		if got := h.Get("Subject"); got != tt.want {
			t.Errorf("actions %v: Subject %q, want %q", tt.actions, got, tt.want)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *Report)
		want   string
	}{
		{"null sender", func(r *Report) { r.To = "" }, "null sender"},
		{"no hostname", func(r *Report) { r.ReportingMTA = "" }, "ReportingMTA"},
		{"no recipients", func(r *Report) { r.Rcpts = nil }, "at least one recipient"},
		{"bad action", func(r *Report) { r.Rcpts[0].Action = "bounced" }, `action "bounced"`},
		{"no status", func(r *Report) { r.Rcpts[1].Status = mail.EnhancedCode{} }, `status ""`},
		{"bad status", func(r *Report) { r.Rcpts[1].Status = mail.EnhancedCode{3, 0, 0} }, `status "3.0.0"`},
		{"no address", func(r *Report) { r.Rcpts[0].Addr = "" }, "no address"},
	}
	for _, tt := range tests {
		r := report()
		tt.modify(r)
		_, err := Build(r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// TestHostileInput checks that values from remote servers and the original
// message cannot add header fields or break the MIME structure.
func TestHostileInput(t *testing.T) {
	r := report()
	r.Rcpts[0].Diagnostic = "smtp; 550 no\r\nBcc: victim@example.com\r\n\r\nhi"
	r.Rcpts[0].Addr = "bob@example.com\nX-Injected: 1"
	r.Original = []byte("Subject: x\n\nbare LF body\n")
	first, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	// A message that contains the boundary of the first report makes the
	// next one choose another.
	fh := mustHeader(t, first)
	_, params, _ := fh.ContentType()
	r.Original = []byte("Subject: x\r\n\r\n--" + params["boundary"] + "\r\n")
	second, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range [][]byte{first, second} {
		if bytes.Contains(msg, []byte("\r\nBcc:")) || bytes.Contains(msg, []byte("\r\nX-Injected:")) {
			t.Errorf("injected field in report:\n%s", msg)
		}
		if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
			t.Error("report has a bare LF")
		}
		_, parts := parse(t, msg)
		if len(parts) != 3 {
			t.Errorf("%d parts, want 3", len(parts))
		}
	}
	_, parts := parse(t, second)
	if !bytes.Contains(parts[2].body, []byte("--"+params["boundary"])) {
		t.Error("returned message lost its line that looks like a boundary")
	}
}

func mustHeader(t *testing.T, msg []byte) message.Header {
	h, _ := parse(t, msg)
	return h
}

func TestDeterministic(t *testing.T) {
	a, err := Build(report())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(report())
	if !bytes.Equal(a, b) {
		t.Error("the same report built twice differs")
	}
	r := report()
	r.Now = r.Now.Add(time.Second)
	c, _ := Build(r)
	ha, hc := mustHeader(t, a), mustHeader(t, c)
	if ha.Get("Message-ID") == hc.Get("Message-ID") {
		t.Error("reports at different times share a Message-ID")
	}
}

func TestDiagnostic(t *testing.T) {
	tests := []struct{ in, want string }{
		{"smtp; 550 5.1.1 no such user", "smtp; 550 5.1.1 no such user"},
		{"smtp;550 x", "smtp; 550 x"},
		{"550 5.1.1 no such user", "smtp; 550 5.1.1 no such user"},
		{"X-Postfix; host not found", "X-Postfix; host not found"},
		{"connection refused; giving up", "X-Sluice; connection refused; giving up"},
		{"mailbox full", "X-Sluice; mailbox full"},
	}
	for _, tt := range tests {
		if got := diagnostic(tt.in); got != tt.want {
			t.Errorf("diagnostic(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzBuild checks that any original message and diagnostic give a report
// that parses back into its three parts with CRLF line endings.
func FuzzBuild(f *testing.F) {
	f.Add([]byte(original), "smtp; 550 5.1.1 no such user", int64(0))
	f.Add([]byte("no header section at all"), "421\r\nX: y", int64(5))
	f.Add([]byte("\r\n\r\nbody only\n--x\n"), "", int64(1))
	f.Fuzz(func(t *testing.T, orig []byte, diag string, max int64) {
		r := report()
		r.Original, r.Rcpts[0].Diagnostic, r.MaxReturn = orig, diag, max
		msg, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatal("report has a bare LF")
		}
		_, parts := parse(t, msg)
		if len(parts) != 3 {
			t.Fatalf("%d parts, want 3", len(parts))
		}
	})
}
