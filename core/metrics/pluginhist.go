package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mta/sluice/pluginapi"
)

// pluginCallBuckets are the upper bounds (seconds) of
// sluice_plugin_call_seconds.
var pluginCallBuckets = [...]float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

// nCallBuckets is the number of finite buckets.
const nCallBuckets = len(pluginCallBuckets)

// pluginCallBoundsNs are pluginCallBuckets in nanoseconds.
var pluginCallBoundsNs = func() (b [nCallBuckets]int64) {
	for i, s := range pluginCallBuckets {
		b[i] = int64(s*1e9 + 0.5)
	}
	return b
}()

// callHist is the sluice_plugin_call_seconds series of one plugin at one
// hook: a count per bucket (the last for +Inf) and the sum in
// nanoseconds, two atomic additions a call. A prometheus.Histogram takes
// four and a compare-and-swap loop on a float for its sum, on the path of
// every plugin hook call (BENCHMARKS.md, "The hook path: the host's
// share").
type callHist struct {
	counts [nCallBuckets + 1]atomic.Uint64
	sumNs  atomic.Int64
}

// observe records a call of d.
func (h *callHist) observe(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < nCallBuckets && ns > pluginCallBoundsNs[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(ns)
}

// pluginCallSeconds collects every callHist of the registry's plugins as
// sluice_plugin_call_seconds{plugin, hook}.
type pluginCallSeconds struct {
	r    *Registry
	desc *prometheus.Desc
}

var _ prometheus.Collector = (*pluginCallSeconds)(nil)

func newPluginCallSeconds(r *Registry) *pluginCallSeconds {
	return &pluginCallSeconds{r: r, desc: prometheus.NewDesc("sluice_plugin_call_seconds",
		"Time of plugin hook calls by plugin and hook.", []string{"plugin", "hook"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *pluginCallSeconds) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector: a series for each plugin and
// hook called so far.
func (c *pluginCallSeconds) Collect(ch chan<- prometheus.Metric) {
	for name, s := range *c.r.plugins.Load() {
		for hook := range pluginapi.NumHooks {
			h := s.seconds[hook].Load()
			if h == nil {
				continue
			}
			buckets := make(map[float64]uint64, nCallBuckets)
			var n uint64
			for i := range nCallBuckets {
				n += h.counts[i].Load()
				buckets[pluginCallBuckets[i]] = n
			}
			n += h.counts[nCallBuckets].Load()
			ch <- prometheus.MustNewConstHistogram(c.desc, n, time.Duration(h.sumNs.Load()).Seconds(), buckets,
				name, pluginapi.Hook(hook).String())
		}
	}
}
