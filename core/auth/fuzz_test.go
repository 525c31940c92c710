package auth

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzSplitHeader checks that splitting a header loses and invents no byte
// and that removing our Authentication-Results only ever removes whole
// fields of the header.
func FuzzSplitHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nAuthentication-Results: mx.test; none\r\n\r\nbody"))
	f.Add([]byte(" leading continuation\nA: b\n\tc\n\n"))
	f.Add([]byte("no header end\r\nX: y"))
	f.Add([]byte("Authentication-Results: \"mx.test\" ; x\r\n continued\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, rest := splitHeader(msg)
		var joined []byte
		for _, f := range fields {
			joined = append(joined, f.raw...)
		}
		joined = append(joined, rest...)
		if !bytes.Equal(joined, msg) {
			t.Fatalf("split/join changed %q into %q", msg, joined)
		}
		out := removeAuthResults(msg, "mx.test")
		if len(out) > len(msg) || !bytes.HasSuffix(out, rest) {
			t.Fatalf("removeAuthResults(%q) = %q", msg, out)
		}
		ofields, _ := splitHeader(out)
		for _, f := range ofields {
			if strings.EqualFold(f.name, "Authentication-Results") && strings.EqualFold(strings.TrimSuffix(authservID(f.value()), "."), "mx.test") {
				t.Fatalf("field %q survived in %q", f.raw, out)
			}
		}
	})
}

// FuzzAuthservID checks that the authserv-id never panics and is a part of
// its input without line breaks.
func FuzzAuthservID(f *testing.F) {
	f.Add("mx.test; spf=pass")
	f.Add(`(c) "q\"uoted"; x`)
	f.Add("((((")
	f.Fuzz(func(t *testing.T, v string) {
		id := authservID(v)
		if strings.ContainsAny(id, "\r\n") && !strings.Contains(v, `"`) {
			t.Fatalf("authservID(%q) = %q", v, id)
		}
	})
}
