package queue

import (
	"bytes"
	"testing"
)

// FuzzParseIxKey: any key read from the database parses without a panic,
// and what ixKey makes parses back to its parts, within the prefix of its
// field and nowhere else.
func FuzzParseIxKey(f *testing.F) {
	f.Add(byte(ixState), "deferred", "D84WVHER12ABNX31", []byte("x/s\x08deferredD84WVHER12ABNX31"))
	f.Add(byte(ixSender), "", "D84WVHER12ABNX31", []byte("x/f\x00D84WVHER12ABNX31"))
	f.Add(byte(ixDomain), "dead7.test", "", []byte("x/d\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01a"))
	f.Add(byte(ixRcpt), "user500000@dead0.test", "D84WVHER12ABNX31", []byte("x/r\x15user500000@dead0.testD84WVHER12ABNX31"))
	f.Add(byte(ixRcpt), "Ünï@例え.テスト", "", []byte("x/r\x16Ünï@例え.テスト"))
	f.Add(byte('v'), "a/b", "c", []byte("x/v"))
	f.Fuzz(func(t *testing.T, kind byte, field, id string, raw []byte) {
		if k, fl, i, ok := parseIxKey(raw); ok && !bytes.Equal(ixKey(k, fl, i), raw) {
			t.Errorf("parseIxKey(%q) = %c %q %q, which ixKey makes %q", raw, k, fl, i, ixKey(k, fl, i))
		}
		key := ixKey(kind, field, id)
		k, fl, i, ok := parseIxKey(key)
		switch kind {
		case ixState, ixSender, ixDomain, ixRcpt:
			if !ok || k != kind || fl != field || i != id {
				t.Errorf("parseIxKey(ixKey(%c, %q, %q)) = %c %q %q %v", kind, field, id, k, fl, i, ok)
			}
		default:
			if ok {
				t.Errorf("parseIxKey(%q) of unknown kind %q: ok", key, kind)
			}
		}
		// A field's prefix holds its own entries only.
		if other := ixKey(kind, field+"x", id); bytes.HasPrefix(other, ixKey(kind, field, "")) {
			t.Errorf("the entries of %q lie in the range of %q", field+"x", field)
		}
	})
}
