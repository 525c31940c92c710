package tlsrpt

import (
	"slices"
	"testing"

	moxtlsrpt "github.com/mjl-/mox/tlsrpt"
)

// FuzzParseRecord feeds ParseRecord what a stranger's DNS may publish. It
// must never panic; a record it accepts must survive String and a second
// parse unchanged, name only URIs with a scheme, and be accepted by mox's
// parser (an independent implementation) with the same rua list.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
		"v=TLSRPTv1;rua=mailto:a@example.com,https://r.example.com/x;ext=1;",
		"v=TLSRPTv1 ; rua=mailto:a@example.net%2Cb@example.net ; rua=https://x.test",
		"v=TLSRPTv1; rua=mailto:a@b!1m",
		"v=TLSRPTv1;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := ParseRecord(s)
		if err != nil {
			return
		}
		again, err := ParseRecord(rec.String())
		if err != nil || !slices.Equal(again.RUA, rec.RUA) || !slices.Equal(again.Extensions, rec.Extensions) {
			t.Fatalf("%q parsed as %+v, written as %q, read back as %+v, %v", s, rec, rec.String(), again, err)
		}
		m, ok, err := moxtlsrpt.ParseRecord(s)
		if err != nil || !ok {
			t.Fatalf("%q: we accept %+v, mox refuses: %v", s, rec, err)
		}
		var moxRUA []string
		for _, l := range m.RUAs {
			for _, u := range l {
				moxRUA = append(moxRUA, string(u))
			}
		}
		if !slices.Equal(moxRUA, rec.RUA) {
			t.Fatalf("%q: rua %q, mox reads %q", s, rec.RUA, moxRUA)
		}
		rec.Mailto() // never panics either
	})
}
