package sendmail

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    Invocation
		wantErr string
	}{
		{[]string{"-t", "-i"}, Invocation{FromHeaders: true, IgnoreDots: true}, ""},
		{[]string{"-f", "me@example.test", "a@x.test", "b@x.test"}, Invocation{From: "me@example.test", Rcpts: []string{"a@x.test", "b@x.test"}}, ""},
		{[]string{"-fme@example.test", "-FMe Myself", "-oi", "-odb", "--", "-odd@x.test"}, Invocation{From: "me@example.test", FullName: "Me Myself", IgnoreDots: true, Rcpts: []string{"-odd@x.test"}}, ""},
		{[]string{"-r", "bounce@example.test", "a@x.test"}, Invocation{From: "bounce@example.test", Rcpts: []string{"a@x.test"}}, ""},
		{[]string{"-f"}, Invocation{}, "needs a value"},
		{[]string{"-q"}, Invocation{}, `unknown option "-q"`},
	} {
		got, err := ParseArgs(c.args)
		if c.wantErr != "" {
			var e *Error
			if !errors.As(err, &e) || e.Code != ExUsage || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseArgs(%q) = %v, want an ExUsage error %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil || got.From != c.want.From || got.FullName != c.want.FullName || got.FromHeaders != c.want.FromHeaders ||
			got.IgnoreDots != c.want.IgnoreDots || !slices.Equal(got.Rcpts, c.want.Rcpts) {
			t.Errorf("ParseArgs(%q) = %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
}

func TestRead(t *testing.T) {
	const date = "Sun, 22 Nov 2026 19:00:00 +0000"
	in := "Subject: hi\nTo: Ann <ann@x.test>, bob@x.test\nBcc: secret@x.test\n  (folded)\n\nline one\n.\nafter the dot\n"

	inv := &Invocation{FromHeaders: true}
	m, err := inv.Read(strings.NewReader(in), Defaults{From: "www-data@host.test", Date: date, MessageID: "<id1@host.test>"})
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "www-data@host.test" || !slices.Equal(m.Rcpts, []string{"ann@x.test", "bob@x.test", "secret@x.test"}) {
		t.Errorf("envelope %q %q", m.From, m.Rcpts)
	}
	want := "From: <www-data@host.test>\r\nDate: " + date + "\r\nMessage-ID: <id1@host.test>\r\nSubject: hi\r\nTo: Ann <ann@x.test>, bob@x.test\r\n\r\nline one\r\n"
	if string(m.Data) != want {
		t.Errorf("message\n%q\nwant\n%q", m.Data, want)
	}

	// -i reads past a lone dot; a given From, Date and Message-ID are kept.
	inv = &Invocation{IgnoreDots: true, Rcpts: []string{"a@x.test"}, From: "me@x.test"}
	m, err = inv.Read(strings.NewReader("From: Me <me@x.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-Id: <own@x.test>\r\n\r\nx\n.\ny"), Defaults{Date: date, MessageID: "<new@host.test>"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "From: Me <me@x.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-Id: <own@x.test>\r\n\r\nx\r\n.\r\ny\r\n"; string(m.Data) != want {
		t.Errorf("-i message %q, want %q", m.Data, want)
	}

	_, err = (&Invocation{}).Read(strings.NewReader("Subject: x\n\nbody\n"), Defaults{From: "a@b.test", Date: date})
	var e *Error
	if !errors.As(err, &e) || e.Code != ExUsage || !strings.Contains(err.Error(), "no recipients") {
		t.Errorf("no recipients: %v, want an ExUsage error", err)
	}
	_, err = (&Invocation{FromHeaders: true}).Read(strings.NewReader("To: <unclosed@x.test\n\nbody\n"), Defaults{From: "a@b.test", Date: date})
	if !errors.As(err, &e) || e.Code != ExDataErr {
		t.Errorf("-t with a broken To: %v, want an ExDataErr error", err)
	}
}

// FuzzRead: any input gives a message with CRLF line endings only, or an
// error; never a panic.
func FuzzRead(f *testing.F) {
	f.Add([]byte("Subject: x\nTo: a@b.test\n\nbody\n.\n"), true)
	f.Add([]byte("To: \"weird, name\" <a@b.test>\r\nBcc: c@d.test\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, fromHeaders bool) {
		inv := &Invocation{FromHeaders: fromHeaders, Rcpts: []string{"x@y.test"}}
		m, err := inv.Read(bytes.NewReader(in), Defaults{From: "me@host.test", Date: "Sun, 22 Nov 2026 19:00:00 +0000", MessageID: NewMessageID("host.test")})
		if err != nil {
			return
		}
		d := m.Data
		for i := range d {
			if (d[i] == '\n' && (i == 0 || d[i-1] != '\r')) || (d[i] == '\r' && (i+1 == len(d) || d[i+1] != '\n')) {
				t.Fatalf("bare CR or LF at %d in %q", i, d)
			}
		}
	})
}

// TestNewMessageID: each ID is new, in angle brackets, with the host.
func TestNewMessageID(t *testing.T) {
	a, b := NewMessageID("mx.example.test"), NewMessageID("mx.example.test")
	if a == b {
		t.Errorf("two IDs are the same: %s", a)
	}
	if !strings.HasPrefix(a, "<") || !strings.HasSuffix(a, "@mx.example.test>") || strings.ContainsAny(a, " \r\n") {
		t.Errorf("Message-ID %q, want <…@mx.example.test>", a)
	}
}
