package smtpd

import (
	"bytes"
	"testing"
)

// hasBare is the obvious byte-by-byte definition bareScanner must match.
func hasBare(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// scanChunks runs a bareScanner over b cut every step bytes.
func scanChunks(b []byte, step int) bool {
	var sc bareScanner
	for len(b) > step {
		sc.scan(b[:step])
		b = b[step:]
	}
	sc.scan(b)
	return sc.end()
}

func TestBareScanner(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bare bool
	}{
		{"", false},
		{"a\r\nb\r\n", false},
		{"\r\n\r\n", false},
		{"no newline at all", false},
		{"a\nb", true},
		{"\n", true},
		{"a\rb", true},
		{"a\r", true},
		{"\r", true},
		{"a\r\r\n", true},
		{"a\r\n\n", true},
		{"x\r\n.\n", true},
		{"x\n.\r\n", true},
		{"x\r.\r", true},
	} {
		for step := 1; step <= len(tc.in)+1; step++ {
			if got := scanChunks([]byte(tc.in), step); got != tc.bare {
				t.Errorf("%q in chunks of %d: bare = %v, want %v", tc.in, step, got, tc.bare)
			}
		}
	}
}

func TestNormalizeNewlines(t *testing.T) {
	for in, want := range map[string]string{
		"":              "",
		"a\r\nb":        "a\r\nb",
		"a\nb":          "a\r\nb",
		"a\rb":          "a\r\nb",
		"a\r\r\nb":      "a\r\n\r\nb",
		"\n\n":          "\r\n\r\n",
		"\r":            "\r\n",
		"x\r\n.\r":      "x\r\n.\r\n",
		"a\n\rb\r\n\rc": "a\r\n\r\nb\r\n\r\nc",
	} {
		if got := string(normalizeNewlines([]byte("H:"), []byte(in))); got != "H:"+want {
			t.Errorf("normalizeNewlines(%q) = %q, want %q", in, got, "H:"+want)
		}
	}
}

func FuzzBareNewlines(f *testing.F) {
	for _, s := range []string{"a\r\nb\r\n", "a\nb", "\r", "x\r\n.\r\nMAIL", "\r\r\n\n"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		want := hasBare(b)
		if got := scanChunks(b, int(step)+1); got != want {
			t.Fatalf("scanner says bare = %v, want %v for %q", got, want, b)
		}
		n := normalizeNewlines(nil, b)
		if hasBare(n) {
			t.Fatalf("normalizeNewlines(%q) = %q still has a bare CR or LF", b, n)
		}
		if !want && !bytes.Equal(n, b) {
			t.Fatalf("normalizeNewlines changed clean input %q to %q", b, n)
		}
		strip := func(x []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(x, []byte("\r"), nil), []byte("\n"), nil)
		}
		if !bytes.Equal(strip(n), strip(b)) {
			t.Fatalf("normalizeNewlines changed more than line ends: %q -> %q", b, n)
		}
	})
}

func BenchmarkDataScan(b *testing.B) {
	msg := bytes.Repeat([]byte("Some ordinary text of a mail message, 72 characters or so, and a CRLF.\r\n"), 140)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		var sc bareScanner
		sc.scan(msg)
		if sc.end() {
			b.Fatal("bare")
		}
	}
}
