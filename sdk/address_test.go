package sdk

import "testing"

func TestDomain(t *testing.T) {
	for in, want := range map[string]string{
		"alice@Example.COM.":   "example.com",
		`"a@b"@c.example`:      "c.example",
		"postmaster":           "",
		"":                     "",
		"user@":                "",
		"jösé@BÜCHER.example.": "bücher.example",
	} {
		if got := Domain(in); got != want {
			t.Errorf("Domain(%q) = %q, want %q", in, got, want)
		}
	}
}
