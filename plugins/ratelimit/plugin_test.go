package ratelimit

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// t0 is the scenarios' clock: 5 s into a 10 s bucket of a one-minute
// window (buckets of window/6 start at multiples of their length).
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

var grants = []string{"kv", "metrics"}

// runners returns a native and a wasm runner for tx.
func runners(t *testing.T, tx sdktest.Txn) map[string]*sdktest.Runner {
	return map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)}
}

// session is one mode's store, so that transactions at different clock
// times share counters as sessions on one server do.
type session struct {
	t    *testing.T
	mode string
	kv   *sdktest.MemKV
	cfg  map[string]any
}

// run starts a transaction at now for tx (Config, Grants and KV filled in).
func (s session) run(now time.Time, tx sdktest.Txn) *sdktest.Runner {
	tx.Now, tx.KV, tx.Config, tx.Grants = now, s.kv, s.cfg, grants
	if tx.ClientIP == "" {
		tx.ClientIP = "192.0.2.1"
	}
	if s.mode == "native" {
		return sdktest.Native(s.t, tx)
	}
	return sdktest.Wasm(s.t, ".", tx)
}

// message runs mail, one rcpt and data and returns the first reply that
// is not a continue ("" when all continued).
func (s session) message(now time.Time, tx sdktest.Txn) string {
	r := s.run(now, tx)
	if res := r.Run(pluginapi.HookMail); res.Verdict != pluginapi.Continue {
		return res.Reply()
	}
	if res := r.RunRcpt("rcpt@example.com"); res.Verdict != pluginapi.Continue {
		return res.Reply()
	}
	if res := r.Run(pluginapi.HookData); res.Verdict != pluginapi.Continue {
		return res.Reply()
	}
	return ""
}

func forModes(t *testing.T, cfg map[string]any, fn func(t *testing.T, s session)) {
	for _, mode := range []string{"native", "wasm"} {
		t.Run(mode, func(t *testing.T) {
			fn(t, session{t: t, mode: mode, kv: sdktest.NewMemKV(func() time.Time { return t0 }), cfg: cfg})
		})
	}
}

func limitsConf(ls ...map[string]any) map[string]any {
	out := make([]any, len(ls))
	for i, l := range ls {
		out[i] = l
	}
	return map[string]any{"limits": out}
}

func TestMessagesLimitSlides(t *testing.T) {
	cfg := limitsConf(map[string]any{"key": "ip", "window": "1m", "messages": 3})
	forModes(t, cfg, func(t *testing.T, s session) {
		tx := sdktest.Txn{From: "a@example.org"}
		for i := range 3 {
			if got := s.message(t0.Add(time.Duration(i)*time.Second), tx); got != "" {
				t.Fatalf("message %d under the limit: %q", i+1, got)
			}
		}
		// All three sit in the bucket [03:04:00, 03:04:10), which leaves
		// the window at 03:05:00: 55 s after t0.
		r := s.run(t0, tx)
		res := r.Run(pluginapi.HookMail)
		if want := "451 4.7.1 Rate limit exceeded for ip, try again in 55 seconds"; res.Reply() != want {
			t.Errorf("fourth MAIL: %q, want %q", res.Reply(), want)
		}
		if res.Metrics[metricExceeded] != 1 {
			t.Errorf("metrics %v, want %s 1", res.Metrics, metricExceeded)
		}
		if !res.HasLog("WARN ratelimit: ip 192.0.2.1 at 3 of 3 messages per 1m; retry in 55s") {
			t.Errorf("logs %q", res.Logs)
		}
		if got := s.message(t0.Add(50*time.Second), tx); !strings.Contains(got, "try again in 5 seconds") {
			t.Errorf("50 s later: %q, want a refusal with 5 seconds left", got)
		}
		if got := s.message(t0.Add(55*time.Second), tx); got != "" {
			t.Errorf("after the window slid: %q, want accepted", got)
		}
		// Another client address is not counted with this one.
		if got := s.message(t0.Add(56*time.Second), sdktest.Txn{ClientIP: "192.0.2.2", From: "a@example.org"}); got != "" {
			t.Errorf("other IP: %q", got)
		}
	})
}

func TestUserIsolationAndUnauthenticated(t *testing.T) {
	cfg := limitsConf(map[string]any{"key": "user", "window": "1h", "messages": 2})
	forModes(t, cfg, func(t *testing.T, s session) {
		alice := sdktest.Txn{AuthUser: "alice", Listener: "submission", From: "alice@example.test"}
		for i := range 2 {
			if got := s.message(t0, alice); got != "" {
				t.Fatalf("alice message %d: %q", i+1, got)
			}
		}
		if got := s.message(t0, alice); !strings.HasPrefix(got, "451 4.7.1 Rate limit exceeded for user, try again in ") {
			t.Errorf("alice's third message: %q", got)
		}
		// A login differing in case is the same user.
		if got := s.message(t0, sdktest.Txn{AuthUser: "ALICE", From: "x@example.test"}); got == "" {
			t.Errorf("ALICE was not limited with alice")
		}
		if got := s.message(t0, sdktest.Txn{AuthUser: "bob", From: "bob@example.test"}); got != "" {
			t.Errorf("bob limited by alice's count: %q", got)
		}
		for i := range 3 {
			if got := s.message(t0, sdktest.Txn{From: "anon@example.net"}); got != "" {
				t.Errorf("unauthenticated message %d under a user limit: %q", i+1, got)
			}
		}
		if got := s.message(t0.Add(time.Hour), alice); got != "" {
			t.Errorf("an hour later: %q", got)
		}
	})
}

func TestRecipientsLimit(t *testing.T) {
	cfg := limitsConf(
		map[string]any{"key": "sender", "window": "10m", "recipients": 3},
		map[string]any{"key": "sender_domain", "window": "1d", "recipients": 5},
	)
	forModes(t, cfg, func(t *testing.T, s session) {
		r := s.run(t0, sdktest.Txn{From: "Bulk@Example.org"})
		if res := r.Run(pluginapi.HookMail); res.Verdict != pluginapi.Continue {
			t.Fatalf("MAIL: %s", res.Reply())
		}
		for i := range 3 {
			if res := r.RunRcpt("r" + string(rune('a'+i)) + "@example.com"); res.Verdict != pluginapi.Continue {
				t.Fatalf("recipient %d: %s", i+1, res.Reply())
			}
		}
		// Buckets of 100 s start at multiples of 100 s since the epoch; t0
		// is 45 s into one, which leaves the window 555 s from now.
		res := r.RunRcpt("rd@example.com")
		if want := "451 4.7.1 Rate limit exceeded for sender, try again in 555 seconds"; res.Reply() != want {
			t.Errorf("fourth recipient: %q, want %q", res.Reply(), want)
		}
		// The refused recipient was taken back: the domain has 3 of 5, so
		// another sender of the domain gets two more and no third.
		r2 := s.run(t0, sdktest.Txn{From: "other@example.org"})
		for i := range 2 {
			if res := r2.RunRcpt("s" + string(rune('a'+i)) + "@example.com"); res.Verdict != pluginapi.Continue {
				t.Fatalf("domain recipient %d: %s", i+4, res.Reply())
			}
		}
		if res := r2.RunRcpt("sc@example.com"); !strings.Contains(res.Reply(), "for sender_domain") {
			t.Errorf("sixth recipient of the domain: %q", res.Reply())
		}
		// With the recipients used up MAIL is refused early.
		if res := s.run(t0, sdktest.Txn{From: "bulk@example.org"}).Run(pluginapi.HookMail); res.Verdict != pluginapi.Tempfail {
			t.Errorf("MAIL with no recipients left: %v", res.Verdict)
		}
		// The null sender has no sender or domain to count.
		if got := s.message(t0, sdktest.Txn{From: ""}); got != "" {
			t.Errorf("null sender: %q", got)
		}
	})
}

func TestIPv6CountsBy64(t *testing.T) {
	cfg := limitsConf(map[string]any{"key": "ip", "window": "1m", "messages": 1})
	forModes(t, cfg, func(t *testing.T, s session) {
		if got := s.message(t0, sdktest.Txn{ClientIP: "2001:db8:1:2::1", From: "a@b.test"}); got != "" {
			t.Fatalf("first: %q", got)
		}
		if got := s.message(t0, sdktest.Txn{ClientIP: "2001:db8:1:2:ffff::9", From: "a@b.test"}); got == "" {
			t.Errorf("same /64 not limited")
		}
		if got := s.message(t0, sdktest.Txn{ClientIP: "2001:db8:1:3::1", From: "a@b.test"}); got != "" {
			t.Errorf("other /64: %q", got)
		}
	})
}

func TestConfigRefused(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		grants []string
		want   string
	}{
		{"no config", nil, grants, "missing key limits"},
		{"unknown top key", map[string]any{"limits": []any{}, "limit": 1}, grants, `unknown key "limit"`},
		{"empty", map[string]any{"limits": []any{}}, grants, "limits: empty"},
		{"not a list", map[string]any{"limits": "user"}, grants, "limits: must be an array"},
		{"bad key", limitsConf(map[string]any{"key": "usr", "window": "1h", "messages": 1}), grants, `limits[0]: key "usr": must be one of`},
		{"bad window", limitsConf(map[string]any{"key": "ip", "window": "1x", "messages": 1}), grants, `limits[0]: window "1x": not a duration`},
		{"short window", limitsConf(map[string]any{"key": "ip", "window": "10ms", "messages": 1}), grants, "shorter than the minimum"},
		{"bad days", limitsConf(map[string]any{"key": "ip", "window": "0d", "messages": 1}), grants, "days must be a whole number"},
		{"no counts", limitsConf(map[string]any{"key": "ip", "window": "1h"}), grants, "sets neither messages nor recipients"},
		{"negative", limitsConf(map[string]any{"key": "ip", "window": "1h", "messages": -1}), grants, "must not be negative"},
		{"typo field", limitsConf(map[string]any{"key": "ip", "window": "1h", "mesages": 1}), grants, `limits[0]: json: unknown field "mesages"`},
		{"no kv", limitsConf(map[string]any{"key": "ip", "window": "1h", "messages": 1}), []string{"metrics"}, "key-value store is not granted"},
		{"no metrics", limitsConf(map[string]any{"key": "ip", "window": "1h", "messages": 1}), []string{"kv"}, "metrics are not granted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{Config: tc.config, Grants: tc.grants}
			err := sdktest.Native(t, tx).Init()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("native: %v, want %q", err, tc.want)
			}
			if got := sdktest.LoadError(t, ".", tx); !strings.Contains(got, "refused to load") || !strings.Contains(got, tc.want) {
				t.Errorf("wasm load: %q, want a refusal with %q", got, tc.want)
			}
		})
	}
	good := sdktest.Txn{Config: limitsConf(map[string]any{"key": "user", "window": "7d", "recipients": 1}), Grants: grants}
	if err := sdktest.Native(t, good).Init(); err != nil {
		t.Errorf("good config refused natively: %v", err)
	}
	if got := sdktest.LoadError(t, ".", good); got != "" {
		t.Errorf("good config refused by the host: %s", got)
	}
}

// TestExampleTOML: the shipped ratelimit.toml loads in the real host as it is.
func TestExampleTOML(t *testing.T) {
	if got := sdktest.ExampleLoadError(t, ".", "ratelimit.toml"); got != "" {
		t.Errorf("ratelimit.toml refused: %s", got)
	}
}

// TestSessionsShareInstance: one instance serving sessions of two senders
// in turn (as a pool's instance does) counts each sender apart, though it
// keeps the last session's subjects and window state between calls.
func TestSessionsShareInstance(t *testing.T) {
	cfg := limitsConf(map[string]any{"key": "sender", "window": "1m", "messages": 2},
		map[string]any{"key": "ip", "window": "1m", "recipients": 100})
	forModes(t, cfg, func(t *testing.T, s session) {
		r := s.run(t0, sdktest.Txn{From: "a@example.org"})
		for i, from := range []string{"a@example.org", "B@example.org", "A@Example.org", "b@example.org", "a@example.org", "b@EXAMPLE.org"} {
			r.Reset()
			r.Txn().From = from
			got := ""
			for _, res := range []sdktest.Result{r.Run(pluginapi.HookMail), r.RunRcpt("rcpt@example.com"), r.Run(pluginapi.HookData)} {
				if res.Verdict != pluginapi.Continue {
					got = res.Reply()
					break
				}
			}
			if refused := strings.HasPrefix(got, "451 4.7.1 Rate limit exceeded for sender"); refused != (i >= 4) {
				t.Errorf("message %d from %s: %q", i+1, from, got)
			}
		}
	})
}
