package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestAddressing checks [addressing] as loaded: paths expanded, domains
// lowercased, the transports kept in order.
func TestAddressing(t *testing.T) {
	c, err := Load("testdata/good/addressing.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Addressing{
		Domains:            "testdata/addressing/domains",
		Mailboxes:          "testdata/addressing/mailboxes",
		Aliases:            "testdata/addressing/aliases",
		RecipientDelimiter: "+-",
		Verify:             "lmtp",
		SRSDomain:          "fwd.example.com",
		SRSSecretFile:      "testdata/addressing/srs.secret",
		Transports: []AddressingTransport{
			{Domain: "example.net", LMTP: "unix:/run/dovecot/lmtp"},
			{Domain: "example.org", LMTP: "127.0.0.1:2424"},
		},
	}
	if !reflect.DeepEqual(c.Addressing, want) {
		t.Errorf("addressing =\n%+v\nwant\n%+v", c.Addressing, want)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings for a verifying configuration: %q", w)
	}
}

// TestAddressingVerifyDefault: an empty verify is "maps" as soon as a
// mailboxes or aliases file is named, else "none" (and warned about).
func TestAddressingVerifyDefault(t *testing.T) {
	tests := []struct {
		toml, want string
		warn       bool
	}{
		{"", "none", true},
		{"[addressing]\nmailboxes = \"testdata/addressing/mailboxes\"\n", "maps", false},
		{"[addressing]\naliases = \"testdata/addressing/aliases\"\n", "maps", false},
		{"[addressing]\ndomains = \"testdata/addressing/domains\"\n", "none", true},
		{"[addressing]\naliases = \"testdata/addressing/aliases\"\nverify = \"none\"\n", "none", true},
	}
	for _, tt := range tests {
		c, err := Parse("x.toml", []byte(tt.toml))
		if err != nil {
			t.Fatalf("%q: %v", tt.toml, err)
		}
		if c.Addressing.Verify != tt.want {
			t.Errorf("%q: verify = %q, want %q", tt.toml, c.Addressing.Verify, tt.want)
		}
		w := c.Warnings()
		if got := len(w) > 0; got != tt.warn {
			t.Errorf("%q: warnings %q, want some: %v", tt.toml, w, tt.warn)
		}
		if tt.warn && (len(w) != 1 || !strings.Contains(w[0], `"localhost" accepts any local part`)) {
			t.Errorf("%q: warning %q does not name the domain", tt.toml, w)
		}
	}
}

// TestAddressingPathTemplate: the map paths take {data_dir}.
func TestAddressingPathTemplate(t *testing.T) {
	c, err := Parse("x.toml", []byte("data_dir = \"testdata\"\n[addressing]\naliases = \"{data_dir}/addressing/aliases\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addressing.Aliases != "testdata/addressing/aliases" {
		t.Errorf("aliases = %q", c.Addressing.Aliases)
	}
}
