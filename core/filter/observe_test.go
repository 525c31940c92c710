package filter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/metrics"
	"github.com/sluice-mta/sluice/pluginapi"
)

// metricsObserver hands out the metrics registry's recorders, as the
// server does.
type metricsObserver struct{ r *metrics.Registry }

func (o metricsObserver) Plugin(name string) PluginObserver { return o.r.Plugin(name) }

var _ Observer = metricsObserver{}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu     sync.Mutex
	events []string
	calls  atomic.Int64
}

// Plugin returns a recorder of plugin's events into r.
func (r *recorder) Plugin(name string) PluginObserver { return recorderOf{r, name} }

// recorderOf is one plugin's recorder in a recorder.
type recorderOf struct {
	r    *recorder
	name string
}

func (o recorderOf) Call(hook pluginapi.Hook, v pluginapi.Verdict, d time.Duration) {
	o.r.call(o.name, hook, v, d)
}

func (o recorderOf) Failure(hook pluginapi.Hook, kind string, d time.Duration) {
	o.r.failure(o.name, hook, kind, d)
}

func (r *recorder) call(plugin string, hook pluginapi.Hook, v pluginapi.Verdict, d time.Duration) {
	r.calls.Add(1)
	if d <= 0 {
		r.add(fmt.Sprintf("call %s %s %s: no time", plugin, hook, v))
		return
	}
	r.add(fmt.Sprintf("call %s %s %s", plugin, hook, v))
}

func (r *recorder) failure(plugin string, hook pluginapi.Hook, kind string, d time.Duration) {
	if hook != pluginapi.HookInit && d <= 0 {
		r.add(fmt.Sprintf("failure %s %s %s: no time", plugin, hook, kind))
		return
	}
	r.add(fmt.Sprintf("failure %s %s %s", plugin, hook, kind))
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// TestObserver: every call is reported with its plugin, hook and verdict
// (after Decide) and its time; a failed call with its kind: a trap, a
// deadline, a grow refused by memory_limit, a verdict out of range; a
// module that does not load as a load failure at HookInit.
func TestObserver(t *testing.T) {
	tests := []struct {
		guest, conf string
		want        []string
	}{
		{"verdict", "[config]\nv = 2\n", []string{"call p rcpt reject"}},
		{"verdict", "[config]\nv = 1\n", []string{"call p rcpt accept"}},
		{"trap", "", []string{"failure p rcpt trap"}},
		{"loop", `timeout = "20ms"`, []string{"failure p rcpt timeout"}},
		{"grow", `memory_limit = "1MiB"`, []string{"failure p rcpt memory"}},
		{"grow", `memory_limit = "64MiB"`, []string{"call p rcpt continue"}},
		{"badverdict", "", []string{"failure p rcpt trap"}},
		{"bigmemory", "", []string{"failure p init load"}},
		{"abi2", "", []string{"failure p init load"}},
	}
	for _, tt := range tests {
		t.Run(tt.guest+"/"+tt.conf, func(t *testing.T) {
			dir := t.TempDir()
			install(t, dir, "p", tt.guest, "pool_min = 1\npool_max = 1\n"+tt.conf+"\n")
			rec := &recorder{}
			h, logs := newHost(t, dir, Options{Observer: rec})
			h.Run(context.Background(), pluginapi.HookRcpt, newTxn())
			got := rec.list()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("observed %q, want %q\nlog:\n%s", got, tt.want, logs)
			}
		})
	}
}

// TestObserverNotRun: a call that gets no instance is a failure of kind
// timeout when none was free in time, load when none could start.
func TestObserverNotRun(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errWaitDeadline, pluginapi.FailTimeout},
		{context.DeadlineExceeded, pluginapi.FailTimeout},
		{fmt.Errorf("waiting: %w", context.Canceled), pluginapi.FailTimeout},
		{errors.New("cannot instantiate: out of memory"), pluginapi.FailLoad},
	} {
		if got := notRunKind(tt.err); got != tt.want {
			t.Errorf("notRunKind(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

// TestObserverNoAlloc: with an Observer, a hook call still allocates
// nothing.
func TestObserverNoAlloc(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "bench", "bench", "")
	rec := &recorder{}
	h, _ := newHost(t, dir, Options{Observer: quietObserver{&rec.calls}})
	txn := newTxn()
	ctx := context.Background()
	if a := testing.AllocsPerRun(200, func() { h.Run(ctx, pluginapi.HookConnect, txn) }); a != 0 {
		t.Errorf("a hook call with an Observer allocates %v times, want 0", a)
	}
	if rec.calls.Load() < 200 {
		t.Errorf("%d calls observed, want at least 200", rec.calls.Load())
	}
}

// quietObserver counts calls and keeps nothing.
type quietObserver struct{ n *atomic.Int64 }

func (o quietObserver) Plugin(string) PluginObserver { return o }
func (o quietObserver) Call(pluginapi.Hook, pluginapi.Verdict, time.Duration) {
	o.n.Add(1)
}
func (o quietObserver) Failure(pluginapi.Hook, string, time.Duration) {}

// BenchmarkHookEmptyMetrics is BenchmarkHookEmpty with the metrics registry
// as the Observer: the cost of recording a call.
func BenchmarkHookEmptyMetrics(b *testing.B) {
	dir := b.TempDir()
	install(b, dir, "bench", "bench", "")
	h, _ := newHost(b, dir, Options{Observer: metricsObserver{metrics.New(metrics.Options{})}})
	txn := newTxn()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := h.Run(ctx, pluginapi.HookConnect, txn); r.Verdict != pluginapi.Continue {
			b.Fatalf("Run = %+v", r)
		}
	}
}
