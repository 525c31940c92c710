package filter

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

func TestVerdicts(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want Result
	}{
		{"continue", `v = 0`, Result{}},
		{"accept", `v = 1`, Result{}},
		{"reject default", `v = 2`, Result{Verdict: pluginapi.Reject, Reply: *mail.NewReply(550, "5.7.1", "rejected by policy"), Plugin: "10-v"}},
		{"reject reply", "v = 2\ncode = 554\nenh = \"5.7.9\"", Result{Verdict: pluginapi.Reject, Reply: *mail.NewReply(554, "5.7.9", "go away"), Plugin: "10-v"}},
		{"reject with 4xx reply", "v = 2\ncode = 451\nenh = \"4.7.1\"", Result{Verdict: pluginapi.Reject, Reply: *mail.NewReply(550, "5.7.1", "rejected by policy"), Plugin: "10-v"}},
		{"tempfail reply", "v = 3\ncode = 452\nenh = \"4.2.2\"", Result{Verdict: pluginapi.Tempfail, Reply: *mail.NewReply(452, "4.2.2", "go away"), Plugin: "10-v"}},
		{"tempfail default", `v = 3`, Result{Verdict: pluginapi.Tempfail, Reply: *mail.NewReply(451, "4.7.1", "try again later"), Plugin: "10-v"}},
		{"discard", `v = 4`, Result{Verdict: pluginapi.Discard, Plugin: "10-v"}},
		{"quarantine", `v = 5`, Result{Verdict: pluginapi.Quarantine, Plugin: "10-v"}},
		{"disconnect reply", "v = 6\ncode = 421\nenh = \"4.4.2\"", Result{Verdict: pluginapi.Disconnect, Reply: *mail.NewReply(421, "4.4.2", "go away"), Plugin: "10-v"}},
		{"disconnect wrong code", "v = 6\ncode = 450\nenh = \"4.4.2\"", Result{Verdict: pluginapi.Disconnect, Reply: *mail.NewReply(421, "4.7.0", "closing connection"), Plugin: "10-v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			install(t, dir, "10-v", "verdict", "[config]\n"+tt.conf+"\n")
			// A second plugin counts whether the chain went on.
			install(t, dir, "20-count", "verdict", "[config]\nv = 0\n")
			h, _ := newHost(t, dir, Options{})
			txn := newTxn()
			got := h.Run(context.Background(), pluginapi.HookMail, txn)
			if got != tt.want {
				t.Errorf("Run = %+v, want %+v", got, tt.want)
			}
			// Both plugins share the "calls" note: two calls when the chain
			// went on (continue), one otherwise.
			wantCalls := "x"
			if tt.want.Verdict == pluginapi.Continue && !strings.Contains(tt.name, "accept") {
				wantCalls = "xx"
			}
			if txn.Notes["calls"] != wantCalls {
				t.Errorf("calls note = %q, want %q", txn.Notes["calls"], wantCalls)
			}
		})
	}
}

func TestProbeHostFunctions(t *testing.T) {
	dir := t.TempDir()
	kv := &fakeKV{}
	met := &fakeMetrics{}
	res := fakeResolver{"dnsbl.example": {"127.0.0.2"}}
	install(t, dir, "probe", "probe", `grants = ["dns", "kv", "metrics"]
[config]
greeting = "hi"
`)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	h, logs := newHost(t, dir, Options{KV: kv, Resolver: res, Metrics: met, Now: func() time.Time { return now }})
	txn := newTxn()
	txn.Rcpts = []mail.Recipient{{Addr: "old@example.org", Notify: []string{"SUCCESS"}}, {Addr: "gone@example.org"}}
	hdr, body := mail.ParseHeader([]byte("Subject: hello\r\nX-Remove: 1\r\nX-Remove: 2\r\n\r\n" + strings.Repeat("b", 10000)))
	txn.Header, txn.Body = &hdr, body
	txn.Destination = "example.org"
	for hk, r := range runAll(h, txn) {
		if r != (Result{}) {
			t.Errorf("hook %v: %+v", pluginapi.Hook(hk), r)
		}
	}
	ok := pluginapi.StatusOK
	str := map[string]string{
		"helo": "client.example", "from": "a@example.com", "b": "from-mail", "rcpt": "b@example.org",
		"dns": "127.0.0.2\n", "kvget": "v1", "config": `"hi"`, "config_all": `{"greeting":"hi"}`,
		"subject": "changed", "dest": "example.org",
	}
	for k, want := range str {
		if got := txn.Notes[k]; got != want {
			t.Errorf("note %s = %q, want %q", k, got, want)
		}
	}
	i32 := map[string]pluginapi.Status{
		"connect_addheader": pluginapi.StatusWrongStage, "kvset": ok, "kvincr": ok, "kvdel": ok, "metric": ok,
		"badptr": pluginapi.StatusBadArgument, "badkey": pluginapi.StatusBadArgument,
		"kvincrmany": ok, "kvincrmany_bad": pluginapi.StatusBadArgument,
		"route_mail": pluginapi.StatusWrongStage, "addrcpt": ok, "rewrite": ok, "delrcpt": ok, "score": ok,
		"addheader": ok, "setheader": ok, "delheader": ok, "badheader": pluginapi.StatusBadArgument, "route": ok,
	}
	for k, want := range i32 {
		if got := noteI32(t, txn, k); got != int32(want) {
			t.Errorf("status %s = %d, want %d", k, got, want)
		}
	}
	if got := noteI32(t, txn, "short"); got != int32(len("a@example.com")) {
		t.Errorf("get_prop into a short buffer returned %d, want the full length %d", got, len("a@example.com"))
	}
	if got := noteI32(t, txn, "bodylen"); got != 10000 {
		t.Errorf("body read in chunks: %d bytes, want 10000", got)
	}
	if got, want := noteI32(t, txn, "hdrlen"), int32(txn.Header.Len()); got != want {
		t.Errorf("get_headers length %d, want %d", got, want)
	}
	// The section as it stood when read: the subject set, X-Remove
	// deleted, X-Probe added before it.
	if got, want := txn.Notes["headers"], "X-Probe: yes\r\nSubject: changed\r\n"; got != want {
		t.Errorf("get_headers wrote %q, want %q", got, want)
	}
	if got := int64(binary.LittleEndian.Uint64([]byte(txn.Notes["now"]))); got != now.UnixNano() {
		t.Errorf("now = %d, want %d", got, now.UnixNano())
	}
	if got := binary.LittleEndian.Uint64([]byte(txn.Notes["kvincr_val"])); got != 5 {
		t.Errorf("kv_incr value %d, want 5", got)
	}
	// kv_incr_many: c (5 from kv_incr) +2, a new d +7, once: the call
	// whose out lies outside memory counted nothing.
	if v := []byte(txn.Notes["kvincrmany_val"]); len(v) != 16 || binary.LittleEndian.Uint64(v) != 7 || binary.LittleEndian.Uint64(v[8:]) != 7 {
		t.Errorf("kv_incr_many values %x, want 7 and 7", v)
	}
	if kv.n["probe/c"] != 7 || kv.n["probe/d"] != 7 {
		t.Errorf("counters after kv_incr_many: c %d, d %d; want 7, 7", kv.n["probe/c"], kv.n["probe/d"])
	}
	if txn.Score != 2.5 || len(txn.Symbols) != 1 || txn.Symbols[0] != (Symbol{Plugin: "probe", Name: "PROBE", Score: 2.5}) {
		t.Errorf("score %v symbols %+v", txn.Score, txn.Symbols)
	}
	// The rewritten recipient keeps its DSN parameters.
	if want := []mail.Recipient{{Addr: "new@example.org", Notify: []string{"SUCCESS"}}, {Addr: "added@example.org"}}; !reflect.DeepEqual(txn.Rcpts, want) {
		t.Errorf("rcpts = %+v, want %+v", txn.Rcpts, want)
	}
	if got := string(txn.Header.Bytes()); got != "X-Probe: yes\r\nSubject: changed\r\n" {
		t.Errorf("header = %q", got)
	}
	if txn.Route != "relay.example:25" {
		t.Errorf("route = %q", txn.Route)
	}
	if met.get("probe/m") != 1 {
		t.Errorf("metric not added")
	}
	if !contains(logs.String(), "hello from probe") || !contains(logs.String(), "plugin=probe") {
		t.Errorf("log line from the guest missing:\n%s", logs)
	}
}

func TestGrantsRefused(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "probe", "probe", "")
	// The services exist; the plugin just lacks the grants.
	h, _ := newHost(t, dir, Options{KV: &fakeKV{}, Resolver: fakeResolver{}, Metrics: &fakeMetrics{}})
	txn := newTxn()
	if r := h.Run(context.Background(), pluginapi.HookMail, txn); r != (Result{}) {
		t.Fatalf("Run = %+v", r)
	}
	for _, k := range []string{"dns_st", "kvset", "kvget_st", "kvincr", "kvdel", "metric"} {
		if got := noteI32(t, txn, k); got != int32(pluginapi.StatusDenied) {
			t.Errorf("%s = %d, want StatusDenied", k, got)
		}
	}
	// The host survives and answers again.
	if r := h.Run(context.Background(), pluginapi.HookMail, newTxn()); r != (Result{}) {
		t.Fatalf("second Run = %+v", r)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		guest, conf, reason string
	}{
		{"trap", "", "unreachable"},
		{"loop", `timeout = "20ms"`, "deadline"},
		{"recurse", "", "stack"},
		{"grow", `memory_limit = "1MiB"`, "unreachable"},
		{"badverdict", "", "invalid verdict 99"},
	}
	for _, tt := range tests {
		for _, policy := range []string{"continue", "tempfail"} {
			t.Run(tt.guest+"/"+policy, func(t *testing.T) {
				dir := t.TempDir()
				install(t, dir, "10-bad", tt.guest, fmt.Sprintf("failure_policy = %q\npool_min = 1\n%s\n", policy, tt.conf))
				install(t, dir, "20-reject", "verdict", "[config]\nv = 2\n")
				h, logs := newHost(t, dir, Options{})
				want := Result{Verdict: pluginapi.Reject, Reply: *mail.NewReply(550, "5.7.1", "rejected by policy"), Plugin: "20-reject"}
				if policy == "tempfail" {
					want = Result{Verdict: pluginapi.Tempfail, Reply: *mail.NewReply(451, "4.3.0", "filter failure, try again later"), Plugin: "10-bad"}
				}
				for i := 0; i < 3; i++ { // the pool replaces discarded instances
					if got := h.Run(context.Background(), pluginapi.HookRcpt, newTxn()); got != want {
						t.Fatalf("run %d: %+v, want %+v", i, got, want)
					}
				}
				info, _ := pluginNamed(h, "10-bad")
				if info.Errors != 3 || info.Calls != 3 {
					t.Errorf("calls %d errors %d, want 3 and 3", info.Calls, info.Errors)
				}
				if l := logs.String(); !contains(l, "plugin=10-bad") || !contains(l, tt.reason) {
					t.Errorf("log lacks plugin and reason %q:\n%s", tt.reason, l)
				}
			})
		}
	}
}

func TestRefusedModules(t *testing.T) {
	tests := []struct {
		guest, conf, want string
	}{
		{"bigtable", "", "table of at least 10000000 elements"},
		{"bigmemory", "", "memory of at least 40000 pages"},
		{"abi2", "", "built for plugin ABI version 2, but this host speaks version 1"},
		{"badimport", "", "imports env.system"},
		{"verdict", "order = 1\ntimeuot = \"1s\"\n", `bad.toml:2: unknown key "timeuot"`},
		{"verdict", "failure_policy = \"panic\"\n", `bad.toml:1: failure_policy: must be "continue" or "tempfail"`},
		{"verdict", "grants = [\"fs\"]\n", `unknown grant "fs"`},
		{"initloop", "init_timeout = \"50ms\"\n", "_initialize ran longer than 50ms (init_timeout)"},
		{"verdict", "init_timeout = \"0s\"\n", `bad.toml:1: init_timeout: must be more than 0 and at most 10m`},
		{"verdict", "order = 1\nentry = \"rate limit\"\n", `bad.toml:2: entry: must name one plugin of the module, in letters, digits, '-', '_' and '.', not "rate limit"`},
	}
	for _, tt := range tests {
		t.Run(tt.guest, func(t *testing.T) {
			dir := t.TempDir()
			install(t, dir, "bad", tt.guest, tt.conf)
			install(t, dir, "good", "verdict", "[config]\nv = 5\n")
			_, err := Check(context.Background(), filepath.Join(dir, "bad.wasm"))
			if err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v, want %q", err, tt.want)
			}
			h, logs := newHost(t, dir, Options{})
			if _, ok := pluginNamed(h, "bad"); ok {
				t.Errorf("refused module was loaded")
			}
			if got := h.Run(context.Background(), pluginapi.HookData, newTxn()); got.Verdict != pluginapi.Quarantine {
				t.Errorf("the good plugin did not answer: %+v", got)
			}
			if q := strconv.Quote(tt.want); !contains(logs.String(), q[1:len(q)-1]) {
				t.Errorf("log lacks %q:\n%s", tt.want, logs)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "probe", "probe", "")
	info, err := Check(context.Background(), filepath.Join(dir, "probe.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if info.ABIVersion != 1 || info.Hooks != 63 || info.MemoryMinPages != 4 || len(info.Imports) != 24 {
		t.Errorf("info = %+v", info)
	}
	if got := strings.Join(info.HookNames(), ","); got != "connect,helo,mail,rcpt,data,deliver" {
		t.Errorf("hook names %s", got)
	}
}

func TestStdoutToLog(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "hello", "stdout", "")
	h, logs := newHost(t, dir, Options{})
	h.Run(context.Background(), pluginapi.HookConnect, newTxn())
	if l := logs.String(); !contains(l, `msg="hello stdout" plugin=hello`) {
		t.Errorf("stdout not logged:\n%s", l)
	}
}

func TestHotReload(t *testing.T) {
	dir := t.TempDir()
	h, logs := newHost(t, dir, Options{})
	if h.Hooks() != 0 {
		t.Fatalf("hooks %b with no plugin", h.Hooks())
	}
	verdict := func() pluginapi.Verdict { return h.Run(context.Background(), pluginapi.HookRcpt, newTxn()).Verdict }

	install(t, dir, "p", "verdict", "[config]\nv = 2\n")
	eventually(t, "add", func() bool { return verdict() == pluginapi.Reject })

	// Replace: the same module with a new config, then a bad module that
	// must not displace the good one, then a good one.
	install(t, dir, "p", "verdict", "[config]\nv = 4\n")
	eventually(t, "replace", func() bool { return verdict() == pluginapi.Discard })
	install(t, dir, "p", "abi2", "")
	eventually(t, "failed replacement logged", func() bool { return contains(logs.String(), "previous version keeps running") })
	if v := verdict(); v != pluginapi.Discard {
		t.Fatalf("after a failed replacement: %v, want the old version's discard", v)
	}
	install(t, dir, "p", "trap", "failure_policy = \"tempfail\"\n")
	eventually(t, "good replacement", func() bool { return verdict() == pluginapi.Tempfail })

	if err := os.Remove(filepath.Join(dir, "p.wasm")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "remove", func() bool { return verdict() == pluginapi.Continue && h.Hooks() == 0 })
}

func TestInFlightCallsFinishOnOldVersion(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "p", "verdict", "[config]\nv = 5\n")
	h, _ := newHost(t, dir, Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := h.Run(context.Background(), pluginapi.HookData, newTxn())
				if r.Verdict != pluginapi.Quarantine && r.Verdict != pluginapi.Discard && r.Verdict != pluginapi.Continue {
					errs <- fmt.Sprintf("%+v", r)
					return
				}
			}
		}()
	}
	install(t, dir, "p", "verdict", "[config]\nv = 4\n")
	eventually(t, "replace", func() bool {
		return h.Run(context.Background(), pluginapi.HookData, newTxn()).Verdict == pluginapi.Discard
	})
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("unexpected result during replacement: %s", e)
	}
}

func TestConcurrentRun(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "probe", "probe", "pool_max = 4\n")
	install(t, dir, "v", "verdict", "[config]\nv = 0\n")
	h, _ := newHost(t, dir, Options{})
	var wg sync.WaitGroup
	fails := make(chan string, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				txn := newTxn()
				txn.Rcpt = fmt.Sprintf("u%d-%d@example.org", g, i)
				h.Run(context.Background(), pluginapi.HookRcpt, txn)
				if txn.Notes["rcpt"] != txn.Rcpt || txn.Notes["calls"] != "x" {
					fails <- fmt.Sprintf("goroutine %d: notes %q", g, txn.Notes)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(fails)
	for f := range fails {
		t.Error(f)
	}
	info, _ := pluginNamed(h, "probe")
	if info.Calls != 32*20 || info.Errors != 0 || info.Pool > 4 || info.P50 <= 0 || info.P99 < info.P50 {
		t.Errorf("stats %+v", info)
	}
}

func TestOrder(t *testing.T) {
	dir := t.TempDir()
	// b runs first by its order although its name sorts last.
	install(t, dir, "a", "verdict", "[config]\nv = 2\n")
	install(t, dir, "b", "verdict", "order = -1\n[config]\nv = 4\n")
	h, _ := newHost(t, dir, Options{})
	if got := h.Run(context.Background(), pluginapi.HookRcpt, newTxn()); got.Plugin != "b" || got.Verdict != pluginapi.Discard {
		t.Errorf("Run = %+v, want b's discard", got)
	}
	ps := h.Plugins()
	if len(ps) != 2 || ps[0].Name != "b" || ps[1].Name != "a" {
		t.Errorf("Plugins = %+v", ps)
	}
}

// TestLoopDoesNotStallGC: a guest spinning in native code must still let
// the Go runtime stop the world (and so the watchdog run); without the
// periodic exit to Go this test hangs.
func TestLoopDoesNotStallGC(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "loop", "loop", "timeout = \"300ms\"\npool_min = 1\n")
	h, _ := newHost(t, dir, Options{})
	done := make(chan Result)
	go func() { done <- h.Run(context.Background(), pluginapi.HookConnect, newTxn()) }()
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	if r := <-done; r != (Result{}) {
		t.Errorf("Run = %+v, want continue (the failure policy)", r)
	}
	if info, _ := pluginNamed(h, "loop"); info.Errors != 1 {
		t.Errorf("errors = %d, want 1", info.Errors)
	}
}

// TestWatchdogWakesForLaterPlugin: a host that started with no plugins has
// nothing to watch, so its watchdog sleeps (no 2 ms tick for nothing); a
// plugin loaded later by the directory reload must wake it: the watchdog
// is what tops a pool back up to pool_min after a call past its timeout
// has cost the pool its instance.
func TestWatchdogWakesForLaterPlugin(t *testing.T) {
	dir := t.TempDir()
	h, _ := newHost(t, dir, Options{})
	if r := h.Run(context.Background(), pluginapi.HookConnect, newTxn()); r != (Result{}) {
		t.Fatalf("Run with no plugins = %+v, want continue", r)
	}
	install(t, dir, "loop", "loop", "timeout = \"300ms\"\npool_min = 2\n")
	eventually(t, "the plugin added to the directory to load with 2 instances", func() bool {
		info, ok := pluginNamed(h, "loop")
		return ok && info.Pool == 2
	})
	if r := h.Run(context.Background(), pluginapi.HookConnect, newTxn()); r != (Result{}) {
		t.Errorf("Run = %+v, want continue (the failure policy)", r)
	}
	if info, _ := pluginNamed(h, "loop"); info.Errors != 1 {
		t.Errorf("errors = %d, want 1 (the timeout)", info.Errors)
	}
	eventually(t, "the watchdog to top the pool back up to pool_min = 2", func() bool {
		info, _ := pluginNamed(h, "loop")
		return info.Pool == 2
	})
}
