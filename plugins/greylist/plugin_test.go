package greylist

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// attempt is one RCPT TO at a time after t0.
type attempt struct {
	at    time.Duration
	ip    string
	from  string
	rcpt  string
	user  string
	reply string // "" for accepted
}

const (
	day = 24 * time.Hour
	gl  = "451 4.7.1 Greylisted, please try again in "
)

func TestGreylist(t *testing.T) {
	tests := []struct {
		name     string
		config   map[string]any
		attempts []attempt
	}{
		{"delay, retry, whitelist", nil, []attempt{
			{at: 0, reply: gl + "300 seconds"},
			{at: 2 * time.Minute, reply: gl + "180 seconds"},
			{at: 2*time.Minute + 500*time.Millisecond, reply: gl + "180 seconds"},
			{at: 2 * time.Minute, rcpt: "other@example.com", reply: gl + "300 seconds"},
			{at: 5 * time.Minute},
			// the /24 is whitelisted: another address, sender and recipient
			{at: 6 * time.Minute, ip: "192.0.2.200", from: "z@else.example", rcpt: "y@example.com"},
			{at: 36 * day, ip: "192.0.2.201", from: "z@else.example", rcpt: "y@example.com"},
			// whitelisting ran out
			{at: 36*day + 6*time.Minute, ip: "192.0.2.202", from: "z@else.example", rcpt: "w@example.com", reply: gl + "300 seconds"},
			// another /24 was never whitelisted
			{at: 7 * time.Minute, ip: "192.0.3.1", reply: gl + "300 seconds"},
		}},
		{"expiry starts over", nil, []attempt{
			{at: 0, reply: gl + "300 seconds"},
			{at: 36*time.Hour + time.Second, reply: gl + "300 seconds"},
			{at: 36*time.Hour + 4*time.Minute, reply: gl + "61 seconds"},
			{at: 36*time.Hour + 5*time.Minute + time.Second},
		}},
		{"configured times, no whitelist", map[string]any{"delay": "1m", "expiry": "1h", "whitelist_after": "0s"}, []attempt{
			{at: 0, reply: gl + "60 seconds"},
			{at: time.Minute},
			// passed triplets are forgotten; nothing is whitelisted
			{at: 2 * time.Minute, reply: gl + "60 seconds"},
			{at: 2 * time.Minute, rcpt: "other@example.com", reply: gl + "60 seconds"},
		}},
		{"IPv6 /64", nil, []attempt{
			{at: 0, ip: "2001:db8:1:2::1", reply: gl + "300 seconds"},
			{at: 5 * time.Minute, ip: "2001:db8:1:2:ffff::9"},
			{at: 6 * time.Minute, ip: "2001:db8:1:3::1", reply: gl + "300 seconds"},
		}},
		{"case of addresses", nil, []attempt{
			{at: 0, from: "A@Sender.Example", rcpt: "B@Example.com", reply: gl + "300 seconds"},
			{at: 5 * time.Minute, from: "a@sender.example", rcpt: "b@example.com"},
		}},
		{"null sender", nil, []attempt{
			{at: 0, from: "<>", reply: gl + "300 seconds"},
			{at: 5 * time.Minute, from: "<>"},
		}},
		{"authenticated and skipped networks", map[string]any{"skip_networks": []any{"198.51.100.0/24"}}, []attempt{
			{at: 0, user: "alice"},
			{at: 0, ip: "198.51.100.7"},
			{at: 0, reply: gl + "300 seconds"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []string{"native", "wasm"} {
				clock := t0
				kv := sdktest.NewMemKV(func() time.Time { return clock })
				for i, a := range tc.attempts {
					clock = t0.Add(a.at)
					res := run(t, mode, tc.config, kv, clock, a)
					if res.Reply() != a.reply {
						t.Errorf("%s: attempt %d at +%v: %q, want %q", mode, i, a.at, res.Reply(), a.reply)
					}
				}
			}
		})
	}
}

// run tries one recipient with a fresh runner (as a new connection).
func run(t *testing.T, mode string, config map[string]any, kv *sdktest.MemKV, now time.Time, a attempt) sdktest.Result {
	t.Helper()
	tx := sdktest.Txn{ClientIP: a.ip, AuthUser: a.user, From: a.from, Config: config, Grants: []string{"kv"}, KV: kv, Now: now}
	if tx.ClientIP == "" {
		tx.ClientIP = "192.0.2.10"
	}
	switch tx.From {
	case "":
		tx.From = "a@sender.example"
	case "<>":
		tx.From = ""
	}
	rcpt := a.rcpt
	if rcpt == "" {
		rcpt = "b@example.com"
	}
	var r *sdktest.Runner
	if mode == "native" {
		r = sdktest.Native(t, tx)
	} else {
		r = sdktest.Wasm(t, ".", tx)
	}
	return r.RunRcpt(rcpt)
}

// TestSPFPassDomains: for a sender of spf_pass_domains the decision waits
// for data, where an SPF pass for the sender's domain lets the message
// through and anything else defers it.
func TestSPFPassDomains(t *testing.T) {
	cfg := map[string]any{"spf_pass_domains": []any{"Big.Example"}}
	tests := []struct {
		name, from, ar string
		rcpt, data     string
	}{
		{"pass", "a@big.example", "mx.test; spf=pass smtp.mailfrom=a@big.example; dkim=none", "", ""},
		{"fail", "a@big.example", "mx.test; spf=fail smtp.mailfrom=a@big.example", "", gl + "300 seconds"},
		{"no results", "a@big.example", "", "", gl + "300 seconds"},
		{"pass for another domain", "a@big.example", "mx.test; spf=pass smtp.mailfrom=a@small.example", "", gl + "300 seconds"},
		{"not a listed domain", "a@small.example", "mx.test; spf=pass smtp.mailfrom=a@small.example", gl + "300 seconds", ""},
	}
	for _, tc := range tests {
		for _, mode := range []string{"native", "wasm"} {
			tx := sdktest.Txn{ClientIP: "192.0.2.10", From: tc.from, Config: cfg, Grants: []string{"kv"},
				Message: []byte("Subject: x\n\nhi\n")}
			r := sdktest.Native(t, tx)
			if mode == "wasm" {
				r = sdktest.Wasm(t, ".", tx)
			}
			res := r.RunRcpt("b@example.com")
			if res.Reply() != tc.rcpt {
				t.Errorf("%s %s: rcpt %q, want %q", tc.name, mode, res.Reply(), tc.rcpt)
			}
			if tc.rcpt != "" {
				continue
			}
			r.Txn().Conn.AuthResults = tc.ar
			if res := r.Run(pluginapi.HookData); res.Reply() != tc.data {
				t.Errorf("%s %s: data %q, want %q", tc.name, mode, res.Reply(), tc.data)
			}
		}
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"unknown key", map[string]any{"dealy": "5m"}, `unknown field "dealy"`},
		{"bad delay", map[string]any{"delay": "five"}, `delay = "five" is not a duration`},
		{"bad days", map[string]any{"whitelist_after": "xd"}, `whitelist_after = "xd" is not a duration`},
		{"zero delay", map[string]any{"delay": "0s"}, "greylists nobody"},
		{"expiry before delay", map[string]any{"delay": "1h", "expiry": "30m"}, "must be longer than delay"},
		{"bad network", map[string]any{"skip_networks": []any{"nonsense"}}, `skip_networks: "nonsense" is not a network`},
		{"bad domain", map[string]any{"spf_pass_domains": []any{"user@gmail.com"}}, `"user@gmail.com" is not a domain`},
		{"defaults", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{Config: tc.config, Grants: []string{"kv"}}
			err := sdktest.Native(t, tx).Init()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("native: %v, want %q", err, tc.want)
			}
			if tc.name == "unknown key" || tc.name == "defaults" {
				got := sdktest.LoadError(t, ".", tx)
				if !strings.Contains(got, tc.want) || (tc.want == "") != (got == "") {
					t.Errorf("wasm: load error %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// TestExampleTOML: the shipped greylist.toml loads in the real host as it is.
func TestExampleTOML(t *testing.T) {
	if got := sdktest.ExampleLoadError(t, ".", "greylist.toml"); got != "" {
		t.Errorf("greylist.toml refused: %s", got)
	}
}
