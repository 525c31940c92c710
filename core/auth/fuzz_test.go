package auth

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// FuzzRemoveAuthResults checks that removing our Authentication-Results
// only ever removes whole fields of the header, every one claiming our
// name, and leaves the body alone.
func FuzzRemoveAuthResults(f *testing.F) {
	f.Add([]byte("From: a@b\r\nAuthentication-Results: mx.test; none\r\n\r\nbody"))
	f.Add([]byte(" leading continuation\nA: b\n\tc\n\n"))
	f.Add([]byte("no header end\r\nX: y"))
	f.Add([]byte("Authentication-Results: \"mx.test\" ; x\r\n continued\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, body := mail.ParseHeader(msg)
		before := h.Fields
		n := removeAuthResults(&h, "mx.test")
		if len(h.Fields)+n != len(before) {
			t.Fatalf("removed %d of %d fields, %d left", n, len(before), len(h.Fields))
		}
		out := h.Message(body)
		if len(out) > len(msg) || !bytes.HasSuffix(out, body) {
			t.Fatalf("removeAuthResults(%q) = %q", msg, out)
		}
		if n == 0 && !bytes.Equal(out, msg) {
			t.Fatalf("nothing removed but %q became %q", msg, out)
		}
		oh, _ := mail.ParseHeader(out)
		for _, f := range oh.Fields {
			if strings.EqualFold(f.Name, "Authentication-Results") && strings.EqualFold(strings.TrimSuffix(authservID(f.Unfolded()), "."), "mx.test") {
				t.Fatalf("field %q survived in %q", f.Raw(), out)
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
