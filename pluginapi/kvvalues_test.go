package pluginapi_test

import (
	"bytes"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// FuzzAppendKVValues: a kv_get_many result built with AppendKVValue reads
// back as the values it was built from, appended after what dst held;
// any other input is refused or read without a panic, the same as
// ParseKVValues reads it.
func FuzzAppendKVValues(f *testing.F) {
	f.Add([]byte("a"), []byte(""), true, []byte{1, 0, 0, 0, 'x'}, uint8(1))
	f.Add([]byte("12"), []byte("7"), false, []byte{0xff, 0xff, 0xff, 0xff}, uint8(1))
	f.Add([]byte{}, []byte{}, true, []byte{9, 0, 0, 0, 'x'}, uint8(2))
	f.Fuzz(func(t *testing.T, v1, v2 []byte, missing bool, raw []byte, n uint8) {
		var vals [][]byte
		if missing {
			vals = [][]byte{v1, nil, v2}
		} else {
			vals = [][]byte{v1, v2}
		}
		var b []byte
		for _, v := range vals {
			b = pluginapi.AppendKVValue(b, v)
		}
		prev := []byte("kept")
		got, err := pluginapi.AppendKVValues([][]byte{prev}, b, len(vals))
		if err != nil || len(got) != len(vals)+1 || !bytes.Equal(got[0], prev) {
			t.Fatalf("%q: %q, %v", b, got, err)
		}
		for i, v := range vals {
			if g := got[i+1]; (g == nil) != (v == nil) || !bytes.Equal(g, v) {
				t.Fatalf("entry %d: %q, want %q", i, g, v)
			}
		}
		a, errA := pluginapi.AppendKVValues(nil, raw, int(n))
		p, errP := pluginapi.ParseKVValues(raw, int(n))
		if (errA == nil) != (errP == nil) || len(a) != len(p) {
			t.Fatalf("%q, %d: AppendKVValues %q, %v; ParseKVValues %q, %v", raw, n, a, errA, p, errP)
		}
		for i := range a {
			if (a[i] == nil) != (p[i] == nil) || !bytes.Equal(a[i], p[i]) {
				t.Fatalf("%q, %d: entry %d differs", raw, n, i)
			}
		}
	})
}
