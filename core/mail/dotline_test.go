package mail

import (
	"bytes"
	"testing"
)

// TestIndexLineDot: the search for a line-starting dot finds what
// bytes.Index finds, with dots inside lines, at the start, at the end.
func TestIndexLineDot(t *testing.T) {
	for _, s := range []string{"", ".", "\n", "\n.", ".\n.", "a.b.c\n", "a.b\n.c", "...\n\n..", "x\r\n", "a\nb.\n.", "\n\n\n"} {
		if got, want := IndexLineDot([]byte(s)), bytes.Index([]byte(s), []byte("\n.")); got != want {
			t.Errorf("IndexLineDot(%q) = %d, want %d", s, got, want)
		}
	}
}
