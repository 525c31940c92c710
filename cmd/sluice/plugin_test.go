package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginFlags: the offline tools' flags are read and checked.
func TestPluginFlags(t *testing.T) {
	dir := t.TempDir()
	eml := filepath.Join(dir, "m.eml")
	if err := os.WriteFile(eml, []byte("Subject: x\n\nbody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plugin", "check", "--config", "c.toml", "a.wasm", "b.wasm"}, "--config names the NAME.toml of one FILE.wasm"},
		{[]string{"plugin", "check", "--config", filepath.Join(dir, "none.toml"), filepath.Join(dir, "a.wasm")}, "1 of 1 plugins failed"},
		{[]string{"plugin", "test", "x.wasm", "--rcpt", "a@b.test", "--eml", eml, "--now", "yesterday"}, "--now \"yesterday\" is not an RFC 3339 time"},
		{[]string{"plugin", "test", "x.wasm", "--rcpt", "a@b.test", "--eml", eml, "--dns", "[::1"}, "--dns [::1"},
		{[]string{"plugin", "new"}, "plugin new: give the plugin's NAME"},
		{[]string{"plugin", "new", "Bad_Name", "--dir", filepath.Join(dir, "x")}, "lowercase letters"},
		{[]string{"plugin", "new", "ok", "--lang", "cobol", "--dir", filepath.Join(dir, "y")}, `--lang "cobol": give go or c`},
		{[]string{"plugin", "test", "x.wasm", "--rcpt", "a@b.test", "--eml", eml, "--listener", "lmtp"}, "--listener \"lmtp\": give smtp or submission"},
		{[]string{"plugin", "test", "x.wasm", "--rcpt", "a@b.test", "--eml", eml, "--server-config", filepath.Join(dir, "none.toml")}, "--server-config"},
	} {
		err := newApp().Run(append([]string{"sluice"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}
