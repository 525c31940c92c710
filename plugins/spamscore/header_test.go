package spamscore

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
)

// fieldNames are the fields spamscore reads.
var fieldNames = []string{"Date", "Message-Id", "Message-ID", "Subject", "From", "Reply-To",
	"Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "Authentication-Results"}

// FuzzSimpleHeader checks the simple header reader against net/mail: a
// section it reads must parse with net/mail too, with the same value for
// every field name.
func FuzzSimpleHeader(f *testing.F) {
	f.Add([]byte("From: Load Generator <a@example.org>\r\nSubject: hi\r\n"), "subject")
	f.Add([]byte("Subject:   folded \r\n\t  twice  \r\n \r\nDate: x\r\nsubject: second\r\n"), "SUBJECT")
	f.Add([]byte("Received: from a\r\n\tby b;\r\n\tThu, 02 Jan 2025 03:04:05 +0000\r\nX-A:\r\nX-B:  \r\n"), "x-b")
	f.Add([]byte("Bad Name: x\r\n"), "Bad")
	f.Add([]byte(" leading: x\r\n"), "leading")
	f.Add([]byte("A: \xc3\xa9\r\n"), "a")
	f.Fuzz(func(t *testing.T, hdr []byte, name string) {
		h, ok := parseSimpleHeader(hdr)
		if !ok {
			return
		}
		msg, err := mail.ReadMessage(bytes.NewReader(append(bytes.Clone(hdr), '\r', '\n')))
		if err != nil {
			t.Fatalf("simple header %q does not parse with net/mail: %v", hdr, err)
		}
		names := fieldNames
		if name != "" && strings.IndexFunc(name, func(r rune) bool { return r > 0x7f || !isNameByte(byte(r)) }) < 0 {
			names = append(names, name)
		}
		for _, n := range names {
			if got, want := h.Get(n), msg.Header.Get(n); got != want {
				t.Fatalf("header %q, field %s: %q, net/mail says %q", hdr, n, got, want)
			}
		}
		for _, f := range h {
			if got, want := h.Get(string(f.name)), msg.Header.Get(string(f.name)); got != want {
				t.Fatalf("header %q, field %s: %q, net/mail says %q", hdr, f.name, got, want)
			}
		}
	})
}

// TestSimpleHeaderFallback: a section the simple reader leaves to net/mail
// still answers, and one net/mail refuses is an error.
func TestSimpleHeaderFallback(t *testing.T) {
	h, err := readHeader([]byte("Subject: caf\xc3\xa9\r\nFrom: <a@example.org>\r\n"))
	if err != nil || h.Get("Subject") != "caf\xc3\xa9" {
		t.Fatalf("UTF-8 subject: %q, %v", h.Get("Subject"), err)
	}
	if _, ok := h.(mail.Header); !ok {
		t.Errorf("a UTF-8 value was read by the simple reader (%T)", h)
	}
	if _, err := readHeader([]byte("no colon here\r\n")); err == nil {
		t.Error("a line without a colon parsed")
	}
}

// urlsBefore is how the URL scan found URLs before issue 17's rewrite:
// the whole text lower-cased, then "http" searched for (each URL scored
// by the same scan.url). FuzzURLs checks the rewrite against it.
func urlsBefore(s *scan, text []byte) {
	lower := bytes.ToLower(text)
	for i := 0; i < len(lower); {
		j := bytes.Index(lower[i:], []byte("http"))
		if j < 0 {
			return
		}
		start := i + j
		rest := lower[start:]
		i = start + 4
		var n int
		switch {
		case bytes.HasPrefix(rest, []byte("http://")):
			n = 7
		case bytes.HasPrefix(rest, []byte("https://")):
			n = 8
		default:
			continue
		}
		end := start + n
		for end < len(lower) && !isURLEnd(lower[end]) {
			end++
		}
		i = end
		s.url(lower[start:end])
	}
}

// FuzzURLs checks that the URL scan finds what the one before it did.
func FuzzURLs(f *testing.F) {
	f.Add([]byte("see HTTPS://BIT.LY/x and http://192.0.2.1/ or hthttp://t.co"))
	f.Add([]byte("https://lnK\u212ad.in/ http://www.t.co\"> http://0xc0a80001 httphttp://s.id"))
	f.Add([]byte("http:/x https:// http://\xff\xfe.example/ \u0130http://a.b"))
	f.Add([]byte("https://bit.ly"))
	r, err := newRules(settings{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		got, want := &scan{r: r, hits: new(hitSet)}, &scan{r: r, hits: new(hitSet)}
		got.urls(text)
		urlsBefore(want, text)
		if *got.hits != *want.hits {
			t.Fatalf("%q: hits %b, before %b", text, *got.hits, *want.hits)
		}
	})
}

// FuzzSimpleAddress checks the plain address forms against
// mail.ParseAddress.
func FuzzSimpleAddress(f *testing.F) {
	for _, s := range []string{"Load Generator <loadgen@sluice-load.invalid>", "<a@b>", "a.b+c@d-e.f", "A  B <x@y>",
		"Name<a@b>", " a <b@c>", "a@b <c@d>", "<a@@b>", "x <.a@b>", "x <a..b@c>", "<a@b> "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := simpleAddress(s)
		if !ok {
			return
		}
		want, err := mail.ParseAddress(s)
		if err != nil {
			t.Fatalf("%q: read as %+v, mail.ParseAddress: %v", s, got, err)
		}
		if got != *want {
			t.Fatalf("%q: %+v, mail.ParseAddress %+v", s, got, want)
		}
	})
}
