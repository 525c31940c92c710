package mail

import (
	"bytes"
	"testing"
)

func TestParseHeaderRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		fields []string // names
		body   string
	}{
		{"simple", "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n", []string{"From", "Subject"}, "body\r\n"},
		{"folded", "Subject: a\r\n b\r\n\tc\r\nTo: x\r\n\r\n", []string{"Subject", "To"}, ""},
		{"no body", "From: a@b\r\n", []string{"From"}, ""},
		{"bare LF", "From: a@b\nSubject: x\n\nbody\n", []string{"From", "Subject"}, "body\n"},
		{"not a field", "From: a\r\nnonsense line\r\n\r\nb", []string{"From", ""}, "b"},
		{"space before colon", "Subject : x\r\n\r\n", []string{"Subject"}, ""},
		{"blanks before colon", "Subject \t \t: x\r\nX:y\r\n\r\n", []string{"Subject", "X"}, ""},
		{"only blanks before colon", " \t: x\r\n\r\n", []string{""}, ""},
		{"empty", "", nil, ""},
		{"only separator", "\r\nbody", nil, "body"},
		{"leading continuation", " cont\r\nA: b\r\n\r\n", []string{"", "A"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, body := ParseHeader([]byte(tt.msg))
			var names []string
			for _, f := range h.Fields {
				names = append(names, f.Name)
			}
			if len(names) != len(tt.fields) {
				t.Fatalf("fields %q, want %q", names, tt.fields)
			}
			for i := range names {
				if names[i] != tt.fields[i] {
					t.Fatalf("fields %q, want %q", names, tt.fields)
				}
			}
			if string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if got := h.Message(body); string(got) != tt.msg {
				t.Errorf("Message() = %q, want the input %q back", got, tt.msg)
			}
			if h.Edited() {
				t.Error("Edited() after parsing")
			}
		})
	}
}

func TestHeaderValues(t *testing.T) {
	h, _ := ParseHeader([]byte("Received: one\r\nSubject: a\r\n  folded \r\nreceived: two\r\n\r\n"))
	if got := h.Count("RECEIVED"); got != 2 {
		t.Errorf("Count = %d, want 2", got)
	}
	f, ok := h.Get("subject", 0)
	if !ok || f.Value() != " a\r\n  folded " || f.Unfolded() != "a  folded" {
		t.Errorf("Get(subject) = %q / %q, %v", f.Value(), f.Unfolded(), ok)
	}
	if f, ok := h.Get("received", 1); !ok || f.Unfolded() != "two" {
		t.Errorf("Get(received, 1) = %q, %v", f.Unfolded(), ok)
	}
	if _, ok := h.Get("received", 2); ok {
		t.Error("Get(received, 2) found a third field")
	}
	if v := h.Values("Received"); len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Errorf("Values = %q", v)
	}
}

func TestHeaderEdits(t *testing.T) {
	msg := []byte("Subject: a\r\nX-Tag: 1\r\nTo: b\r\nx-tag: 2\r\n\r\nbody")
	h, body := ParseHeader(msg)
	h.Add("X-First", "v")
	h.Set("X-Tag", "3")
	if n := h.Del("To"); n != 1 {
		t.Errorf("Del(To) = %d", n)
	}
	if n := h.Del("Absent"); n != 0 {
		t.Errorf("Del(Absent) = %d", n)
	}
	h.Set("X-New", "n")
	want := "X-New: n\r\nX-First: v\r\nSubject: a\r\nX-Tag: 3\r\n\r\nbody"
	if got := string(h.Message(body)); got != want {
		t.Errorf("after edits:\n%q\nwant\n%q", got, want)
	}
	if !h.Edited() {
		t.Error("Edited() false after edits")
	}
	// The original bytes were not written to.
	if string(msg) != "Subject: a\r\nX-Tag: 1\r\nTo: b\r\nx-tag: 2\r\n\r\nbody" {
		t.Errorf("input modified: %q", msg)
	}
	if got := string(h.Bytes()); got != "X-New: n\r\nX-First: v\r\nSubject: a\r\nX-Tag: 3\r\n" {
		t.Errorf("Bytes() = %q", got)
	}
}

func TestHeaderMessageAddsSeparator(t *testing.T) {
	var h Header
	h.Add("A", "b")
	if got := string(h.Message([]byte("body"))); got != "A: b\r\n\r\nbody" {
		t.Errorf("Message = %q", got)
	}
}

// FuzzParseHeader checks that parsing loses nothing: an unedited header
// gives the message back byte for byte, and every field's bytes are a
// line-aligned piece of the input.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n y\r\n\r\nbody"))
	f.Add([]byte("\n\n"))
	f.Add([]byte(" x\r\n:y\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, body := ParseHeader(msg)
		if got := h.Message(body); !bytes.Equal(got, msg) {
			t.Fatalf("round trip changed the message:\n%q\n%q", msg, got)
		}
		for _, fl := range h.Fields {
			if len(fl.Raw()) == 0 {
				t.Fatal("empty field")
			}
			_ = fl.Unfolded()
		}
		h.Add("X-Test", "1")
		h2, body2 := ParseHeader(h.Message(body))
		if h2.Count("X-Test") < 1 || !bytes.Equal(body2, body) {
			t.Fatalf("added field lost: %q", h.Message(body))
		}
	})
}
