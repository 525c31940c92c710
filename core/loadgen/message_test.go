package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMessage(t *testing.T) {
	date := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	head := Message(0, "a@example.org", "b@bench.test", date)
	for _, size := range []int{0, 100, len(head), len(head) + 1, len(head) + 2, len(head) + 3,
		len(head) + 75, len(head) + 76, 1000, 10 * 1024, 10*1024 + 1, 64 * 1024, 1 << 20} {
		m := Message(size, "a@example.org", "b@bench.test", date)
		want := max(size, len(head))
		if len(m) != want {
			t.Errorf("size %d: got %d bytes, want %d", size, len(m), want)
		}
		if !bytes.Equal(m, Message(size, "a@example.org", "b@bench.test", date)) {
			t.Errorf("size %d: two calls gave different bytes", size)
		}
		if !bytes.HasSuffix(m, []byte("\r\n")) {
			t.Errorf("size %d: does not end in CRLF", size)
		}
		if n := bytes.Count(m, []byte("\n")); n != bytes.Count(m, []byte("\r")) || n != bytes.Count(m, []byte("\r\n")) {
			t.Errorf("size %d: bare CR or LF", size)
		}
		for i, l := range strings.Split(string(m), "\r\n") {
			if strings.HasPrefix(l, ".") {
				t.Errorf("size %d: line %d starts with a dot: %q", size, i+1, l)
			}
			if len(l) > 78 {
				t.Errorf("size %d: line %d is %d long", size, i+1, len(l))
			}
		}
		if !bytes.Contains(m, []byte("\r\n\r\n")) || !bytes.HasPrefix(m, []byte("From: ")) {
			t.Errorf("size %d: no header block", size)
		}
	}
}

func TestDataPayload(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\n", "a\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\r\n.b\r\n..\r\n", "a\r\n..b\r\n...\r\n.\r\n"},
	}
	for _, tt := range tests {
		if got := string(dataPayload([]byte(tt.in))); got != tt.want {
			t.Errorf("dataPayload(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
