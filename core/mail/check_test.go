package mail

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		addr          string
		local, domain string
		code          int // 0 when accepted
	}{
		{"user@example.org", "user", "example.org", 0},
		{"First.Last+tag@EXAMPLE.Org", "First.Last+tag", "example.org", 0},
		{"u@[192.0.2.1]", "u", "[192.0.2.1]", 0},
		{"u@[IPv6:2001:db8::1]", "u", "[ipv6:2001:db8::1]", 0},
		{"jöran@bücher.example", "jöran", "bücher.example", 0},
		{"a-b_c=d@x-y.example", "a-b_c=d", "x-y.example", 0},
		// Routing tricks (5.7.1).
		{"user%remote.example@local.test", "", "", 554},
		{"remote.example!user@local.test", "", "", 554},
		{"user@remote.example@local.test", "", "", 554}, // from "user@remote.example"@local.test
		// Maildir escapes and control characters (5.1.3).
		{"../x@local.test", "", "", 553},
		{"a/b@local.test", "", "", 553},
		{`a\b@local.test`, "", "", 553},
		{".hidden@local.test", "", "", 553},
		{"trailing.@local.test", "", "", 553},
		{"a..b@local.test", "", "", 553},
		{"..@local.test", "", "", 553},
		{"a\x00b@local.test", "", "", 553},
		{"a\x1fb@local.test", "", "", 553},
		{"a\x7fb@local.test", "", "", 553},
		{"a\rb@local.test", "", "", 553},
		{"a b@local.test", "", "", 553},
		{`a"b@local.test`, "", "", 553},
		{"\xff@local.test", "", "", 553},
		{strings.Repeat("a", 65) + "@local.test", "", "", 553},
		// Syntax.
		{"", "", "", 553},
		{"user", "", "", 553},
		{"@local.test", "", "", 553},
		{"user@", "", "", 553},
		{"user@local.test.", "", "", 553},
		{"user@.local.test", "", "", 553},
		{"user@local..test", "", "", 553},
		{"user@-local.test", "", "", 553},
		{"user@local-.test", "", "", 553},
		{"user@local_test", "", "", 553},
		{"user@local.test:25", "", "", 553},
		{"user@[300.1.1.1]", "", "", 553},
		{"user@[2001:db8::1]", "", "", 553},
		{"user@[IPv6:1.2.3.4]", "", "", 553},
		{"user@" + strings.Repeat("a", 64) + ".test", "", "", 553},
	} {
		local, domain, err := CheckAddress(tc.addr)
		code := 0
		if err != nil {
			code = err.Code
		}
		if code != tc.code || local != tc.local || domain != tc.domain {
			t.Errorf("CheckAddress(%q) = %q, %q, %v; want %q, %q, code %d",
				tc.addr, local, domain, err, tc.local, tc.domain, tc.code)
		}
	}
}

func TestCheckSender(t *testing.T) {
	for addr, ok := range map[string]bool{
		"":                         true,
		"a@example.org":            true,
		"a%b@example.org":          true, // not routed to
		"bounce+x=y@example.org":   true,
		"a\x00@example.org":        false,
		"a@exa mple.org":           false,
		"noat":                     false,
		"a@example.org.":           false,
		"a@[127.0.0.1]":            true,
		"a b@example.org":          false,
		"a\tb@example.org":         false,
		"a@b\x00.example":          false,
		"a@b.example>":             false,
		"x@" + "\xff" + ".example": false,
	} {
		if got := CheckSender(addr) == nil; got != ok {
			t.Errorf("CheckSender(%q) ok = %v, want %v", addr, got, ok)
		}
	}
}

// FuzzCheckAddress checks the promise of CheckAddress: whatever it accepts
// is one local part and one valid domain, with nothing that routes or
// escapes a path.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{"user@example.org", "a%b@local.test", "a!b@local.test",
		"a@b@local.test", "../x@local.test", "u@[IPv6:::1]", "jöran@bücher.example", "a..b@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		local, domain, err := CheckAddress(addr)
		if err != nil {
			if err.Check() != nil || !err.Permanent() {
				t.Fatalf("refusal %v is not a valid 5xx reply", err)
			}
			return
		}
		if !strings.EqualFold(local+"@"+domain, addr) {
			t.Fatalf("%q split into %q and %q", addr, local, domain)
		}
		if strings.ContainsAny(local, "%!@/\\ \"") || strings.Contains(local, "..") ||
			local == "" || local[0] == '.' || local[len(local)-1] == '.' || len(local) > MaxLocalPart {
			t.Fatalf("accepted unsafe local part %q", local)
		}
		for _, r := range local + domain {
			if r < 0x20 || r == 0x7f || r == utf8.RuneError {
				t.Fatalf("accepted control or invalid character in %q", addr)
			}
		}
		if domain == "" || strings.ContainsAny(domain, "@:/\\ %!") && domain[0] != '[' ||
			strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
			t.Fatalf("accepted bad domain %q", domain)
		}
		if d2, err := CheckDomain(domain); err != nil || d2 != domain {
			t.Fatalf("domain %q not stable: %q, %v", domain, d2, err)
		}
	})
}

func TestCheckField(t *testing.T) {
	long := strings.Repeat("x", MaxLineLength-len("X-Long: "))
	for _, tc := range []struct {
		name, value string
		want        error
	}{
		{"X-Ok", "a value; with (comments) and \t tabs", nil},
		{"X-Utf8", "Grüße, 日本", nil},
		{"X-Fold", "a;\r\n\tb;\r\n c", nil},
		{"X-Empty", "", nil},
		{"X-Long", long, nil},
		{"X-Long", long + "x", ErrFieldLine},
		{"X-Fold-Long", "a\r\n " + strings.Repeat("y", MaxLineLength), ErrFieldLine},
		{"X-Fold-Long", "a\r\n " + strings.Repeat("y", MaxLineLength-1), nil},
		{"X-CR", "a\rb", ErrFieldControl},
		{"X-LF", "a\nb", ErrFieldControl},
		{"X-CRLF-field", "a\r\nX-Injected: 1", ErrFieldControl},
		{"X-End", "a\r\n", ErrFieldControl},
		{"X-Blank-fold", "a\r\n \r\n b", ErrFieldFold},
		{"X-Blank-end", "a\r\n  ", ErrFieldFold},
		{"X-VT", "a\vb", ErrFieldControl},
		{"X-ESC", "a\x1b[31mred", ErrFieldControl},
		{"X-DEL", "a\x7f", ErrFieldControl},
		{"X-NUL", "a\x00", ErrFieldControl},
		{"X-FF", "a\xff", ErrFieldControl},
		{"X-C1", "a\u0085b", ErrFieldControl},
		{"Bad:Name", "v", ErrFieldName},
		{"Bad Name", "v", ErrFieldName},
		{"", "v", ErrFieldName},
	} {
		if got := CheckField(tc.name, tc.value); got != tc.want {
			t.Errorf("CheckField(%q, %q) = %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}

// TestRcptForm: a recipient keeps its local part as sent and gets its
// domain in lower case, as the rcpt-stage plugins see it; an address the
// server refuses is left alone.
func TestRcptForm(t *testing.T) {
	for in, want := range map[string]string{
		"Bob@Example.COM":        "Bob@example.com",
		"bob@example.com":        "bob@example.com",
		"José@Bücher.EXAMPLE":    "José@bücher.example",
		"Bob@[192.0.2.1]":        "Bob@[192.0.2.1]",
		"Bob@[IPv6:2001:DB8::1]": "Bob@[ipv6:2001:db8::1]",
		"no-domain":              "no-domain",
		"a%b@Example.COM":        "a%b@Example.COM",
	} {
		if got := RcptForm(in); got != want {
			t.Errorf("RcptForm(%q) = %q, want %q", in, got, want)
		}
	}
}
