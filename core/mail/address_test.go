package mail

import (
	"fmt"
	"reflect"
	"testing"
)

func TestSplitAndDomain(t *testing.T) {
	tests := []struct {
		addr, local, domain, norm string
		ok                        bool
	}{
		{"Alice@Example.COM.", "Alice", "Example.COM.", "example.com", true},
		{`"a@b"@c.example`, `"a@b"`, "c.example", "c.example", true},
		{"postmaster", "postmaster", "", "", false},
		{"", "", "", "", false},
		{"jösé@BÜCHER.example", "jösé", "BÜCHER.example", "bücher.example", true},
	}
	for _, tt := range tests {
		l, d, ok := Split(tt.addr)
		if l != tt.local || d != tt.domain || ok != tt.ok {
			t.Errorf("Split(%q) = %q, %q, %v", tt.addr, l, d, ok)
		}
		if got := Domain(tt.addr); got != tt.norm {
			t.Errorf("Domain(%q) = %q, want %q", tt.addr, got, tt.norm)
		}
	}
	if got := Normalize("Bob@EXAMPLE.org."); got != "Bob@example.org" {
		t.Errorf("Normalize = %q", got)
	}
	if !SameAddress("bob@example.org", "BOB@Example.Org.") || SameAddress("bob@a.example", "bob@b.example") {
		t.Error("SameAddress")
	}
}

func TestGroupByDomain(t *testing.T) {
	in := []string{"a@X.example", "b@y.example", "c@x.example.", "d@z.example", "e@Y.example"}
	want := []Group{
		{"x.example", []string{"a@X.example", "c@x.example."}},
		{"y.example", []string{"b@y.example", "e@Y.example"}},
		{"z.example", []string{"d@z.example"}},
	}
	if got := GroupByDomain(in); !reflect.DeepEqual(got, want) {
		t.Errorf("GroupByDomain = %v, want %v", got, want)
	}
	// Past the linear-scan size the index takes over, with the same result.
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("u%d@d%d.example", i, i%13))
	}
	g := GroupByDomain(many)
	if len(g) != 13 || g[0].Domain != "d0.example" || len(g[0].Rcpts) != 4 || g[12].Domain != "d12.example" {
		t.Errorf("GroupByDomain(40 over 13 domains) = %d groups, first %v", len(g), g[0])
	}
}

// TestKeyNoCopy: an address already in normal form is its own key and
// its own normal form, without an allocation.
func TestKeyNoCopy(t *testing.T) {
	tests := []struct{ addr, key, norm string }{
		{"alice@example.com", "alice@example.com", "alice@example.com"},
		{"alice@example.com.", "alice@example.com", "alice@example.com"},
		{"Alice@example.com", "alice@example.com", "Alice@example.com"},
		{"alice@EXAMPLE.com", "alice@example.com", "alice@example.com"},
		{"jösé@bücher.example", "jösé@bücher.example", "jösé@bücher.example"},
		{"JÖSÉ@BÜCHER.example", "jösé@bücher.example", "JÖSÉ@bücher.example"},
		{"postmaster", "postmaster", "postmaster"},
		{"Postmaster", "postmaster", "Postmaster"},
	}
	for _, tt := range tests {
		if got := Key(tt.addr); got != tt.key {
			t.Errorf("Key(%q) = %q, want %q", tt.addr, got, tt.key)
		}
		if got := Normalize(tt.addr); got != tt.norm {
			t.Errorf("Normalize(%q) = %q, want %q", tt.addr, got, tt.norm)
		}
	}
	addr := "alice@example.com"
	if n := testing.AllocsPerRun(100, func() { _ = Key(addr); _ = Normalize(addr) }); n != 0 {
		t.Errorf("Key and Normalize of a normal address allocate %v times", n)
	}
}

func TestASCII(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{{"", true}, {"jose@example.com\r\n\x7f", true}, {"jösé@example.com", false}, {"\x80", false}} {
		if got := ASCII(tc.s); got != tc.want {
			t.Errorf("ASCII(%q) = %v, want %v", tc.s, got, tc.want)
		}
		if got := ASCII([]byte(tc.s)); got != tc.want {
			t.Errorf("ASCII([]byte(%q)) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
