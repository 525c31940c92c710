package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/auth/dkimkey"
)

func TestTLSRPTConfig(t *testing.T) {
	key, err := dkimkey.Generate(dkimkey.Ed25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := dkimkey.MarshalPEM(key)
	keyFile := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	dkim := "[[dkim.key]]\ndomain = \"example.com\"\nselector = \"s1\"\nprivate_key = \"" + keyFile + "\"\n"
	tests := []struct {
		name, text string
		// want is a substring of the error ("" for none).
		want string
	}{
		{"default: off", "", ""},
		{"on, key for the hostname's parent", "hostname = \"mx.example.com\"\n[tlsrpt]\nenabled = true\n" + dkim, ""},
		{"on, from with a key", "hostname = \"mx.other.test\"\n[tlsrpt]\nenabled = true\nfrom = \"tlsrpt@example.com\"\norganization_name = \"Example Inc\"\n" + dkim, ""},
		{"on at localhost", "[tlsrpt]\nenabled = true\n", "cfg.toml:2: tlsrpt.enabled: reports would come from postmaster@localhost, which no other domain can verify"},
		{"on without a key", "hostname = \"mx.nokey.test\"\n[tlsrpt]\nenabled = true\n" + dkim, "cfg.toml:3: tlsrpt.enabled: reports would come from postmaster@mx.nokey.test, but no [[dkim.key]] signs for mx.nokey.test"},
		{"from without a key", "hostname = \"mx.example.com\"\n[tlsrpt]\nenabled = true\nfrom = \"r@notexample.com\"\n" + dkim, "cfg.toml:4: tlsrpt.from: reports would come from r@notexample.com, but no [[dkim.key]]"},
		{"bad from", "[tlsrpt]\nfrom = \"Reports <r@example.com>\"\n", "cfg.toml:2: tlsrpt.from: \"Reports <r@example.com>\" is not an address"},
		{"two-line contact", "[tlsrpt]\ncontact_info = \"a\\nb\"\n", "cfg.toml:2: tlsrpt.contact_info: must be one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("cfg.toml", []byte(tt.text))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error %v; want it to contain %q", err, tt.want)
			}
		})
	}
}
