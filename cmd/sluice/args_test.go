package main

import (
	"slices"
	"strings"
	"testing"
)

// TestFlagsFirst: a command's flags move before its plain arguments,
// with their values; subcommand names, "--" and sendmail's own options
// stay where they are.
func TestFlagsFirst(t *testing.T) {
	cmds := newApp().Commands
	for _, tc := range []struct{ in, want string }{
		{"sluice user add alice --config c.toml", "sluice user add --config c.toml alice"},
		{"sluice user add alice --config=c.toml", "sluice user add --config=c.toml alice"},
		{"sluice user add alice -c c.toml", "sluice user add -c c.toml alice"},
		{"sluice user add --config c.toml alice", "sluice user add --config c.toml alice"},
		{"sluice queue show ID1 --socket s ID2", "sluice queue show --socket s ID1 ID2"},
		{"sluice queue rm ID --help", "sluice queue rm --help ID"},
		{"sluice user rm --config c.toml -- --odd", "sluice user rm --config c.toml -- --odd"},
		{"sluice user rm -- --odd --config c.toml", "sluice user rm -- --odd --config c.toml"},
		{"sluice plugin test x.wasm --rcpt a@b --rcpt c@d --eml m", "sluice plugin test --rcpt a@b --rcpt c@d --eml m x.wasm"},
		{"sluice config check --config c.toml", "sluice config check --config c.toml"},
		{"sluice serve --config c.toml", "sluice serve --config c.toml"},
		{"sluice sendmail alice@x -f bob@y", "sluice sendmail alice@x -f bob@y"},
		{"sluice user alice --config c", "sluice user alice --config c"}, // no such subcommand: cli reports it
		{"sluice nosuch a --b", "sluice nosuch a --b"},
		{"sluice", "sluice"},
	} {
		got := strings.Join(flagsFirst(cmds, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// The input is not modified.
	in := strings.Fields("sluice user add alice --config c.toml")
	keep := slices.Clone(in)
	flagsFirst(cmds, in)
	if !slices.Equal(in, keep) {
		t.Errorf("flagsFirst changed its input to %q", in)
	}
}
