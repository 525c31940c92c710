package main

import (
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

func TestDenyRcpt(t *testing.T) {
	deny := map[string]any{"deny": []any{"blocked@example.com", " Trap@Example.NET "}}
	tests := []struct {
		name   string
		config map[string]any
		rcpt   string
		reply  string // "" for continue
		log    string
	}{
		{"listed", deny, "blocked@example.com", "550 5.7.1 <blocked@example.com>: recipient refused by policy", "INFO deny-rcpt: refusing <blocked@example.com>"},
		{"case-insensitive", deny, "BLOCKED@example.COM", "550 5.7.1 <BLOCKED@example.com>: recipient refused by policy", ""},
		{"spaces and case in config", deny, "trap@example.net", "550 5.7.1 <trap@example.net>: recipient refused by policy", ""},
		{"not listed", deny, "ok@example.com", "", ""},
		{"prefix is not a match", deny, "blocked@example.com.evil", "", ""},
		{"no config", nil, "blocked@example.com", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{ClientIP: "192.0.2.1", From: "a@example.org", Config: tc.config}
			for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
				res := r.RunRcpt(tc.rcpt)
				want := pluginapi.Continue
				if tc.reply != "" {
					want = pluginapi.Reject
				}
				if res.Verdict != want || res.Reply() != tc.reply {
					t.Errorf("%s: got %v %q, want %v %q", mode, res.Verdict, res.Reply(), want, tc.reply)
				}
				if tc.log != "" && !res.HasLog(tc.log) {
					t.Errorf("%s: logs %q, want a line with %q", mode, res.Logs, tc.log)
				}
				if want == pluginapi.Continue && (len(res.Rcpts) != 1 || res.Rcpts[0] != tc.rcpt) {
					t.Errorf("%s: rcpts %q, want [%s]", mode, res.Rcpts, tc.rcpt)
				}
			}
		})
	}
}

// TestBadConfigRefusesLoad: a deny list that is not a list of addresses
// refuses the load, natively and in the real host, with the reason.
func TestBadConfigRefusesLoad(t *testing.T) {
	for _, bad := range []map[string]any{{"deny": "blocked@example.com"}, {"deny": []any{"not-an-address"}}} {
		tx := sdktest.Txn{Config: bad}
		err := sdktest.Native(t, tx).Init()
		if err == nil || !strings.Contains(err.Error(), "deny-rcpt: config key deny") {
			t.Errorf("native init with %v: %v", bad, err)
		}
		if msg := sdktest.LoadError(t, ".", tx); !strings.Contains(msg, "refused to load") || !strings.Contains(msg, "config key deny") {
			t.Errorf("wasm load with %v: %q", bad, msg)
		}
	}
	if err := sdktest.Native(t, sdktest.Txn{Config: map[string]any{"deny": []any{"a@b.test"}}}).Init(); err != nil {
		t.Errorf("good config refused: %v", err)
	}
	if msg := sdktest.LoadError(t, ".", sdktest.Txn{}); msg != "" {
		t.Errorf("no config refused: %s", msg)
	}
}
