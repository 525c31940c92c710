package sendmail

import (
	"bytes"
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
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseArgs(%q) = %v, want error %q", c.args, err, c.wantErr)
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
	m, err := inv.Read(strings.NewReader(in), "www-data@host.test", date)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "www-data@host.test" || !slices.Equal(m.Rcpts, []string{"ann@x.test", "bob@x.test", "secret@x.test"}) {
		t.Errorf("envelope %q %q", m.From, m.Rcpts)
	}
	want := "From: <www-data@host.test>\r\nDate: " + date + "\r\nSubject: hi\r\nTo: Ann <ann@x.test>, bob@x.test\r\n\r\nline one\r\n"
	if string(m.Data) != want {
		t.Errorf("message\n%q\nwant\n%q", m.Data, want)
	}

	// -i reads past a lone dot; a given From and Date are kept.
	inv = &Invocation{IgnoreDots: true, Rcpts: []string{"a@x.test"}, From: "me@x.test"}
	m, err = inv.Read(strings.NewReader("From: Me <me@x.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nx\n.\ny"), "", date)
	if err != nil {
		t.Fatal(err)
	}
	if want := "From: Me <me@x.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nx\r\n.\r\ny\r\n"; string(m.Data) != want {
		t.Errorf("-i message %q, want %q", m.Data, want)
	}

	if _, err := (&Invocation{}).Read(strings.NewReader("Subject: x\n\nbody\n"), "a@b.test", date); err == nil || !strings.Contains(err.Error(), "no recipients") {
		t.Errorf("no recipients: %v", err)
	}
}

// FuzzRead: any input gives a message with CRLF line endings only, or an
// error; never a panic.
func FuzzRead(f *testing.F) {
	f.Add([]byte("Subject: x\nTo: a@b.test\n\nbody\n.\n"), true)
	f.Add([]byte("To: \"weird, name\" <a@b.test>\r\nBcc: c@d.test\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, fromHeaders bool) {
		inv := &Invocation{FromHeaders: fromHeaders, Rcpts: []string{"x@y.test"}}
		m, err := inv.Read(bytes.NewReader(in), "me@host.test", "Sun, 22 Nov 2026 19:00:00 +0000")
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
