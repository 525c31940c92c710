package senderpolicy

import (
	"path"
	"strings"
	"testing"
)

// FuzzStarMatch checks starMatch against path.Match for patterns whose
// only special character is '*'.
func FuzzStarMatch(f *testing.F) {
	for _, s := range [][2]string{{"*@spam.example", "loadgen@sluice-load.invalid"}, {"*@*.spam.example", "x@mx.spam.example"},
		{"abuse-trap@*", "abuse-trap@example.com"}, {"*a/*c", "a/Ya/Zc"}, {"*", "a/b"}, {"**@*", "@"}, {"a*b*c", "abc"},
		{"*@spam.example", "a/b@spam.example"}, {"x*", "x"}, {"*.*", "."}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		if strings.ContainsAny(pat, "?[\\") {
			return
		}
		want, err := path.Match(pat, name)
		if err != nil {
			t.Fatalf("path.Match(%q, %q): %v", pat, name, err)
		}
		if got := starMatch(pat, name); got != want {
			t.Fatalf("starMatch(%q, %q) = %v, path.Match says %v", pat, name, got, want)
		}
	})
}
