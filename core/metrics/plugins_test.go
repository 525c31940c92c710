package metrics

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-mta/sluice/pluginapi"
)

// TestPluginCalls: calls and failures land in the series of their plugin,
// hook and verdict, also when many goroutines make a series at once; a
// failure at load (pluginapi.HookInit) is no call; recording allocates
// nothing once the series exist.
func TestPluginCalls(t *testing.T) {
	r := New(Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				r.PluginCall("greylist", pluginapi.HookRcpt, pluginapi.Tempfail, 30*time.Microsecond)
				r.PluginCall("spf", pluginapi.HookMail, pluginapi.Continue, time.Millisecond)
			}
		}()
	}
	wg.Wait()
	r.PluginCall("greylist", pluginapi.HookData, pluginapi.Accept, time.Microsecond)
	r.PluginFailure("greylist", pluginapi.HookRcpt, pluginapi.FailTimeout, 2*time.Second)
	r.PluginFailure("greylist", pluginapi.HookInit, pluginapi.FailLoad, 0)
	r.PluginCall("greylist", pluginapi.Hook(99), pluginapi.Continue, time.Second) // no such hook: ignored

	tests := []struct {
		plugin, hook, verdict string
		want                  float64
	}{
		{"greylist", "rcpt", "tempfail", 800},
		{"spf", "mail", "continue", 800},
		{"greylist", "data", "accept", 1},
		{"greylist", "rcpt", "error", 1},
		{"greylist", "init", "error", 0},
	}
	for _, tt := range tests {
		if got := value(t, r.pluginCalls.WithLabelValues(tt.plugin, tt.hook, tt.verdict)); got != tt.want {
			t.Errorf("calls{%s,%s,%s} = %v, want %v", tt.plugin, tt.hook, tt.verdict, got, tt.want)
		}
	}
	for kind, want := range map[string]float64{pluginapi.FailTimeout: 1, pluginapi.FailLoad: 1, pluginapi.FailTrap: 0} {
		if got := value(t, r.pluginFailures.WithLabelValues("greylist", kind)); got != want {
			t.Errorf("failures{greylist,%s} = %v, want %v", kind, got, want)
		}
	}
	// Hooks: greylist rcpt (tempfail and error), data; spf mail. Calls:
	// those and the series read above.
	if n := count(r.pluginSeconds); n != 3 {
		t.Errorf("%d call-time series, want 3", n)
	}
	if a := testing.AllocsPerRun(100, func() {
		r.PluginCall("greylist", pluginapi.HookRcpt, pluginapi.Tempfail, 30*time.Microsecond)
	}); a != 0 {
		t.Errorf("PluginCall allocates %v times, want 0", a)
	}
}

// value reads a counter.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// count returns the number of series c has.
func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}
