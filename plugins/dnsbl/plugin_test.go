package dnsbl

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// countingResolver answers from a MemResolver and counts the lookups.
type countingResolver struct {
	sdktest.MemResolver
	mu    sync.Mutex
	names []string
	fail  bool
}

func (r *countingResolver) Lookup(ctx context.Context, qtype uint16, name string) ([]string, error) {
	r.mu.Lock()
	r.names = append(r.names, name)
	fail := r.fail
	r.mu.Unlock()
	if fail {
		return nil, errors.New("timeout")
	}
	return r.MemResolver.Lookup(ctx, qtype, name)
}

func (r *countingResolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.names)
}

// lists answers for 192.0.2.1 (listed by both lists), 192.0.2.2 (code
// 127.0.0.4 on bl), 192.0.2.3 (an error code) and 2001:db8::1.
func lists() sdktest.MemResolver {
	return sdktest.MemResolver{
		"A 1.2.0.192.zen.example": {"127.0.0.2", "127.0.0.3"},
		"A 1.2.0.192.bl.example":  {"127.0.0.9"},
		"A 2.2.0.192.bl.example":  {"127.0.0.4"},
		"A 3.2.0.192.zen.example": {"127.255.255.254"},
		"A 4.2.0.192.zen.example": {"10.0.0.1"},
		"A 5.2.0.192.zen.example": {"127.0.0.3"},
		"A 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example": {"127.0.0.2"},
	}
}

func testConfig() map[string]any {
	return map[string]any{
		"zones": []any{
			map[string]any{"zone": "zen.example", "score": 3.0, "codes": map[string]any{"127.0.0.2": 7.0}},
			map[string]any{"zone": "bl.example", "score": 1.5, "codes": map[string]any{"127.0.0.4": "reject"}},
		},
	}
}

func runners(t *testing.T, tx sdktest.Txn) map[string]*sdktest.Runner {
	return map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)}
}

func TestDNSBL(t *testing.T) {
	delayOff := testConfig()
	delayOff["delay_reject"] = false
	tests := []struct {
		name     string
		ip       string
		user     string
		config   map[string]any
		connect  string // reply at connect, "" for none
		mail     string // reply at mail
		symbols  string // "NAME=score ..."
		note     string
		lookups  int
		resolver sdktest.MemResolver
	}{
		{name: "unlisted", ip: "192.0.2.99", note: "none", lookups: 2},
		{name: "listed by both, code score and default score", ip: "192.0.2.1", symbols: "DNSBL_ZEN_EXAMPLE=7 DNSBL_BL_EXAMPLE=1.5", note: "zen.example=7 bl.example=1.5", lookups: 2},
		{name: "default score only", ip: "192.0.2.5", symbols: "DNSBL_ZEN_EXAMPLE=3", note: "zen.example=3", lookups: 2},
		{name: "reject code delayed to mail", ip: "192.0.2.2", mail: "554 5.7.1 Service unavailable; client [192.0.2.2] blocked using bl.example", note: "bl.example=reject", lookups: 2},
		{name: "reject code at connect", ip: "192.0.2.2", config: delayOff, connect: "554 5.7.1 Service unavailable; client [192.0.2.2] blocked using bl.example", mail: "554 5.7.1 Service unavailable; client [192.0.2.2] blocked using bl.example", note: "bl.example=reject", lookups: 2},
		{name: "error code ignored", ip: "192.0.2.3", note: "none", lookups: 2},
		{name: "answer outside 127/8 ignored", ip: "192.0.2.4", note: "none", lookups: 2},
		{name: "IPv6 nibbles", ip: "2001:db8::1", symbols: "DNSBL_ZEN_EXAMPLE=7", note: "zen.example=7", lookups: 2},
		{name: "authenticated: looked up, not applied", ip: "192.0.2.1", user: "alice", note: "zen.example=7 bl.example=1.5", lookups: 2},
		{name: "loopback skipped by default", ip: "127.0.0.1", lookups: 0},
		{name: "skip_networks", ip: "192.0.2.1", lookups: 0, config: map[string]any{
			"skip_networks": []any{"192.0.2.0/24"},
			"zones":         []any{map[string]any{"zone": "zen.example", "score": 1.0}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.config == nil {
				tc.config = testConfig()
			}
			for _, mode := range []string{"native", "wasm"} {
				res := &countingResolver{MemResolver: lists()}
				tx := sdktest.Txn{ClientIP: tc.ip, AuthUser: tc.user, From: "a@example.org", Config: tc.config,
					Grants: []string{"dns", "kv"}, Resolver: res}
				r := runners(t, tx)[mode]
				c := r.Run(pluginapi.HookConnect)
				if c.Reply() != tc.connect {
					t.Errorf("%s: connect reply %q, want %q", mode, c.Reply(), tc.connect)
				}
				if c.Notes[noteKey] != tc.note {
					t.Errorf("%s: note %q, want %q", mode, c.Notes[noteKey], tc.note)
				}
				m := r.Run(pluginapi.HookMail)
				if m.Reply() != tc.mail {
					t.Errorf("%s: mail reply %q, want %q", mode, m.Reply(), tc.mail)
				}
				var syms []string
				for _, s := range m.Symbols {
					syms = append(syms, s.Name+"="+formatScore(s.Score))
				}
				if got := strings.Join(syms, " "); got != tc.symbols {
					t.Errorf("%s: symbols %q, want %q", mode, got, tc.symbols)
				}
				if res.count() != tc.lookups {
					t.Errorf("%s: %d lookups (%q), want %d", mode, res.count(), res.names, tc.lookups)
				}
			}
		})
	}
}

// TestCache checks that a second connection from the same address within
// cache_ttl asks no list, and that one after it asks again.
func TestCache(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := t0
	kv := sdktest.NewMemKV(func() time.Time { return clock })
	res := &countingResolver{MemResolver: lists()}
	cfg := testConfig()
	cfg["cache_ttl"] = "10m"
	steps := []struct {
		after   time.Duration
		lookups int
	}{{0, 2}, {time.Minute, 2}, {9 * time.Minute, 2}, {10 * time.Minute, 4}, {11 * time.Minute, 4}}
	for _, mode := range []string{"native", "wasm"} {
		for _, st := range steps {
			clock = t0.Add(st.after)
			tx := sdktest.Txn{ClientIP: "192.0.2.1", Config: cfg, Grants: []string{"dns", "kv"}, Resolver: res, KV: kv, Now: clock}
			r := runners(t, tx)[mode]
			if got := r.Run(pluginapi.HookConnect).Notes[noteKey]; got != "zen.example=7 bl.example=1.5" {
				t.Errorf("%s after %v: note %q", mode, st.after, got)
			}
			if res.count() != st.lookups {
				t.Errorf("%s after %v: %d lookups in all, want %d", mode, st.after, res.count(), st.lookups)
			}
		}
		t0 = t0.Add(time.Hour)
		res.names = nil
	}
}

// TestLookupFailure: a list that does not answer is skipped and its
// failure is not cached.
func TestLookupFailure(t *testing.T) {
	for _, mode := range []string{"native", "wasm"} {
		res := &countingResolver{MemResolver: lists(), fail: true}
		kv := sdktest.NewMemKV(nil)
		tx := sdktest.Txn{ClientIP: "192.0.2.1", Config: testConfig(), Grants: []string{"dns", "kv"}, Resolver: res, KV: kv}
		c := runners(t, tx)[mode].Run(pluginapi.HookConnect)
		if c.Verdict != pluginapi.Continue || c.Notes[noteKey] != "none" || !c.HasLog("skipping the list this time") {
			t.Errorf("%s: %v note %q logs %q", mode, c.Verdict, c.Notes[noteKey], c.Logs)
		}
		res.fail = false
		tx.Resolver = res
		c = runners(t, tx)[mode].Run(pluginapi.HookConnect)
		if c.Notes[noteKey] != "zen.example=7 bl.example=1.5" {
			t.Errorf("%s: after the failure, note %q", mode, c.Notes[noteKey])
		}
	}
}

func TestQueryName(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"192.0.2.1", "1.2.0.192.zen.example"},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example"},
		{"2001:db8:1234:5678:9abc:def0:fedc:ba98", "8.9.a.b.c.d.e.f.0.f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.8.b.d.0.1.0.0.2.zen.example"},
	}
	for _, tc := range tests {
		if got := queryName(mustAddr(t, tc.ip), "zen.example"); got != tc.want {
			t.Errorf("queryName(%s) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"none", nil, "zones is empty"},
		{"no zones", map[string]any{"cache_ttl": "5m"}, "zones is empty"},
		{"unknown key", map[string]any{"zone": "x.example", "zones": []any{map[string]any{"zone": "zen.example", "score": 1.0}}}, `unknown field "zone"`},
		{"bad zone", map[string]any{"zones": []any{map[string]any{"zone": "not a zone", "score": 1.0}}}, `zones[0]: zone = "not a zone" is not a DNS name`},
		{"does nothing", map[string]any{"zones": []any{map[string]any{"zone": "zen.example"}}}, "the list does nothing"},
		{"bad code", map[string]any{"zones": []any{map[string]any{"zone": "zen.example", "codes": map[string]any{"10.0.0.1": 1.0}}}}, `codes: "10.0.0.1" is not a return code`},
		{"bad code action", map[string]any{"zones": []any{map[string]any{"zone": "zen.example", "codes": map[string]any{"127.0.0.2": "block"}}}}, `use a score (a number), "reject" or "ignore"`},
		{"bad ttl", map[string]any{"cache_ttl": "5 minutes", "zones": []any{map[string]any{"zone": "zen.example", "score": 1.0}}}, `cache_ttl = "5 minutes" is not a duration`},
		{"bad network", map[string]any{"skip_networks": []any{"10.0.0.0/33"}, "zones": []any{map[string]any{"zone": "zen.example", "score": 1.0}}}, `skip_networks: "10.0.0.0/33" is not a network`},
		{"twice", map[string]any{"zones": []any{map[string]any{"zone": "zen.example", "score": 1.0}, map[string]any{"zone": "ZEN.example.", "score": 1.0}}}, "listed twice"},
		{"good", testConfig(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{Config: tc.config, Grants: []string{"dns", "kv"}}
			err := sdktest.Native(t, tx).Init()
			if tc.want == "" {
				if err != nil {
					t.Errorf("native: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("native: %v, want %q", err, tc.want)
			}
			if tc.name != "none" && tc.name != "good" && tc.name != "bad code" {
				return // one wasm load per kind is enough
			}
			got := sdktest.LoadError(t, ".", tx)
			if !strings.Contains(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("wasm: load error %q, want %q", got, tc.want)
			}
		})
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestExampleTOML: the shipped dnsbl.toml loads in the real host as it is.
func TestExampleTOML(t *testing.T) {
	if got := sdktest.ExampleLoadError(t, ".", "dnsbl.toml"); got != "" {
		t.Errorf("dnsbl.toml refused: %s", got)
	}
}
