package filter

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/pluginapi"
)

// blackhole is a resolver that never answers: it waits for its context, or,
// when deaf, for release (a store or resolver that ignores cancellation).
type blackhole struct {
	deaf    bool
	release chan struct{}
}

func (b *blackhole) Lookup(ctx context.Context, _ uint16, _ string) ([]string, error) {
	if b.deaf {
		<-b.release
		return nil, context.DeadlineExceeded
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.release:
		return nil, context.Canceled
	case <-time.After(5 * time.Second): // as the resolver: 2 attempts of 2 s
		return nil, context.DeadlineExceeded
	}
}

// timed runs the hook and returns its result and how long it took.
func timed(h *Host, hook pluginapi.Hook) (Result, time.Duration) {
	t0 := time.Now()
	r := h.Run(context.Background(), hook, newTxn())
	return r, time.Since(t0)
}

// TestDNSUnderDeadline: a lookup against a resolver that never answers ends
// at the call's deadline (the issue: 4 s against 100 ms), and the guest
// sees a temporary failure.
func TestDNSUnderDeadline(t *testing.T) {
	bh := &blackhole{release: make(chan struct{})}
	defer close(bh.release)
	dir := t.TempDir()
	install(t, dir, "dns", "dnswait", "grants = [\"dns\"]\ntimeout = \"100ms\"\nfailure_policy = \"tempfail\"\n")
	h, logs := newHost(t, dir, Options{Resolver: bh})
	r, took := timed(h, pluginapi.HookData)
	// The lookup ends at the deadline with -5 (the guest then continues),
	// or the watchdog stops the call there first (the failure policy).
	if r.Verdict != pluginapi.Continue && (r.Verdict != pluginapi.Tempfail || r.Reply.Code != 451) {
		t.Errorf("result %+v, want continue or the tempfail failure policy", r)
	}
	if contains(logs.String(), "unreachable") {
		t.Errorf("the guest saw another status than -5:\n%s", logs)
	}
	// The deadline is 100 ms; the resolver would wait forever. Seconds
	// of margin keep a loaded machine from failing it.
	if took > 2*time.Second {
		t.Errorf("the hook took %v: the lookup did not end at the deadline", took)
	}
}

// TestPoolWaitUnderDeadline: with every instance stuck in a host call that
// ignores cancellation, another call waits for an instance no longer than
// its deadline, then its failure policy answers.
func TestPoolWaitUnderDeadline(t *testing.T) {
	bh := &blackhole{deaf: true, release: make(chan struct{})}
	dir := t.TempDir()
	install(t, dir, "dns", "dnswait", "grants = [\"dns\"]\ntimeout = \"100ms\"\npool_min = 1\npool_max = 1\nfailure_policy = \"tempfail\"\nbreaker_failures = 0\n")
	h, logs := newHost(t, dir, Options{Resolver: bh})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.Run(context.Background(), pluginapi.HookMail, newTxn()) // holds the only instance
	}()
	defer wg.Wait()
	defer close(bh.release)
	eventually(t, "the first call to hold the instance", func() bool {
		info, _ := pluginNamed(h, "dns")
		return info.Pool == 1 && h.chain.Load().plugins[0].pool.idleCount() == 0
	})
	done := make(chan Result, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, took := timed(h, pluginapi.HookMail)
		if took > 2*time.Second {
			t.Errorf("waited %v for the busy instance: the wait is not bounded by the deadline", took)
		}
		done <- r
	}()
	select {
	case r := <-done:
		if r.Verdict != pluginapi.Tempfail {
			t.Errorf("result %+v, want the tempfail failure policy", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second call still waits for the busy instance after 10s")
	}
	if !contains(logs.String(), "deadline exceeded waiting for an idle instance") {
		t.Errorf("log lacks the wait:\n%s", logs)
	}
}

// TestBreaker: a plugin whose calls keep failing is suspended (its failure
// policy answers without running it), logged, and resumes by itself on
// probation; failures that are a minority of its calls do not suspend it.
func TestBreaker(t *testing.T) {
	start := func() (*Host, *testlog.Buffer, func() PluginInfo) {
		dir := t.TempDir()
		install(t, dir, "flaky", "flaky", "failure_policy = \"tempfail\"\nbreaker_failures = 3\nbreaker_cooldown = \"300ms\"\n")
		h, logs := newHost(t, dir, Options{})
		return h, logs, func() PluginInfo { i, _ := pluginNamed(h, "flaky"); return i }
	}

	// A failure among three successes, four times: a minority.
	h, _, info := start()
	for i := 0; i < 4; i++ {
		h.Run(context.Background(), pluginapi.HookMail, newTxn())
		for j := 0; j < 3; j++ {
			if r := h.Run(context.Background(), pluginapi.HookRcpt, newTxn()); r.Verdict != pluginapi.Continue {
				t.Fatalf("rcpt: %+v", r)
			}
		}
	}
	if i := info(); i.Suspensions != 0 || i.Errors != 4 {
		t.Fatalf("suspended for failures that are a quarter of its calls: %+v", i)
	}

	// Three failures in a row suspend it.
	h, logs, info := start()
	for i := 0; i < 3; i++ {
		h.Run(context.Background(), pluginapi.HookMail, newTxn())
	}
	i := info()
	if !i.Suspended || i.Suspensions != 1 {
		t.Fatalf("not suspended after 3 failures in a row: %+v", i)
	}
	calls := i.Calls
	if r := h.Run(context.Background(), pluginapi.HookRcpt, newTxn()); r.Verdict != pluginapi.Tempfail || r.Plugin != "flaky" {
		t.Errorf("a suspended plugin's call: %+v, want its tempfail policy", r)
	}
	if i := info(); i.Calls != calls || i.Skipped != 1 {
		t.Errorf("a suspended plugin was run (calls %d → %d, skipped %d)", calls, i.Calls, i.Skipped)
	}
	if !contains(logs.String(), "plugin suspended") || !contains(logs.String(), "for=300ms") {
		t.Errorf("log lacks the suspension:\n%s", logs)
	}

	// It resumes by itself; on probation one failure suspends it again.
	eventually(t, "the plugin to resume", func() bool {
		return h.Run(context.Background(), pluginapi.HookRcpt, newTxn()).Verdict == pluginapi.Continue
	})
	if !contains(logs.String(), "plugin resumed") {
		t.Errorf("log lacks the resumption:\n%s", logs)
	}
	h.Run(context.Background(), pluginapi.HookMail, newTxn())
	if i := info(); i.Suspensions != 1 || i.Suspended {
		t.Errorf("a success ended the probation, yet one failure suspended it: %+v", i)
	}
	eventually(t, "a second suspension", func() bool {
		h.Run(context.Background(), pluginapi.HookMail, newTxn())
		return info().Suspensions == 2
	})
}

// TestContainmentObserved: the calls a suspended plugin's policy answers
// and the writes its quotas refuse reach the Observer (metrics).
func TestContainmentObserved(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "flaky", "flaky", "breaker_failures = 2\n")
	install(t, dir, "flood", "flood", "grants = [\"kv\"]\ntimeout = \"10s\"\n[limits]\nlog_lines = 1\nkv_bytes = 0\nkv_bytes_per_minute = 0\n")
	rec := &recorder{}
	h, _ := newHost(t, dir, Options{KV: &fakeKV{}, Observer: rec})
	for range 3 {
		h.Run(context.Background(), pluginapi.HookMail, newTxn())
	}
	counts := map[string]int{}
	for _, e := range rec.list() {
		counts[e]++
	}
	if counts["failure flaky mail trap"] != 2 || counts["failure flaky mail suspended"] != 1 {
		t.Errorf("breaker not observed: %v", counts)
	}
	// Each call logs 2,000 lines (log and stdout), one allowed: one
	// report a call.
	if n := counts["failure flood init quota"]; n != 3 {
		t.Errorf("%d calls with quota refusals observed, want 3: %v", n, counts)
	}
}
