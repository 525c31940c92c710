package metrics

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Plugin failure kinds.
const (
	FailTrap    = "trap"
	FailTimeout = "timeout"
	FailMemory  = "memory"
	FailLoad    = "load"
)

var failKinds = []string{FailTrap, FailTimeout, FailMemory, FailLoad}

// PluginCall records one hook call of plugin: its verdict ("continue",
// "reject"…, or "error" for a call that failed) and how long it ran.
func (r *Registry) PluginCall(plugin, hook, verdict string, d time.Duration) {
	r.pluginCalls.WithLabelValues(plugin, hook, verdict).Inc()
	r.pluginSeconds.WithLabelValues(plugin, hook).Observe(d.Seconds())
}

// PluginFailure counts a failure of plugin of kind trap, timeout, memory
// or load.
func (r *Registry) PluginFailure(plugin, kind string) {
	r.pluginFailures.WithLabelValues(plugin, oneOf(kind, failKinds, FailTrap)).Inc()
}

// Add adds delta to the counter name of plugin (the plugins' metric_add,
// the "metrics" grant). It is exported as
// sluice_plugin_metric_<name>_total{plugin="…"}, name reduced to
// [a-zA-Z0-9_]. Counters only go up: a negative, infinite or NaN delta is
// ignored.
func (r *Registry) Add(plugin, name string, delta float64) {
	r.counters.add(plugin, name, delta)
}

// PluginCounter returns a metric_add counter's value.
func (r *Registry) PluginCounter(plugin, name string) float64 {
	return r.counters.get(plugin, name)
}

// pluginCounters is the collector of the metric_add counters, whose names
// the plugins choose at run time.
type pluginCounters struct {
	mu sync.Mutex
	m  map[counterKey]float64
}

type counterKey struct{ plugin, name string }

func newPluginCounters() *pluginCounters { return &pluginCounters{m: map[counterKey]float64{}} }

func (c *pluginCounters) add(plugin, name string, delta float64) {
	if !(delta >= 0) || math.IsInf(delta, 1) {
		return
	}
	k := counterKey{plugin, counterName(name)}
	c.mu.Lock()
	c.m[k] += delta
	c.mu.Unlock()
}

func (c *pluginCounters) get(plugin, name string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[counterKey{plugin, counterName(name)}]
}

// Describe sends nothing: the counters' names are not known in advance,
// which makes this an unchecked collector.
func (c *pluginCounters) Describe(chan<- *prometheus.Desc) {}

// Collect sends every counter.
func (c *pluginCounters) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	keys := make([]counterKey, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = c.m[k]
	}
	c.mu.Unlock()
	descs := map[string]*prometheus.Desc{}
	for i, k := range keys {
		d := descs[k.name]
		if d == nil {
			d = prometheus.NewDesc("sluice_plugin_metric_"+k.name+"_total",
				"Counter "+k.name+" that plugins add to with metric_add.", []string{"plugin"}, nil)
			descs[k.name] = d
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, vals[i], k.plugin)
	}
}

// counterName reduces a plugin's counter name to [a-zA-Z0-9_] (anything
// else becomes '_') without a "_total" suffix, which the exported name
// adds.
func counterName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if out := strings.TrimSuffix(string(b), "_total"); out != "" {
		return out
	}
	return "_"
}
