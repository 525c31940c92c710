package metrics

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mta/sluice/pluginapi"
)

var failKinds = pluginapi.FailureKinds()

// verdictError is the verdict label of a call that failed.
const verdictError = "error"

// verdictSlots is the number of verdict labels a plugin's calls at one
// hook can have: every pluginapi verdict and verdictError (the last).
const verdictSlots = int(pluginapi.Disconnect) + 2

// PluginRecorder records one plugin's calls and failures: its series,
// cached, so that recording a call is two atomic loads and the updates,
// with neither a lookup by name, a label hash nor a lock. Registry.Plugin
// returns it; the filter host keeps it for each plugin it loads.
type PluginRecorder struct {
	r       *Registry
	name    string
	calls   [pluginapi.NumHooks][verdictSlots]atomic.Pointer[prometheus.Counter]
	seconds [pluginapi.NumHooks]atomic.Pointer[callHist]
}

// pluginSet maps plugin names to their series; it is replaced, never
// changed, when a plugin is first seen (plugins are few and change rarely).
type pluginSet map[string]*PluginRecorder

// Plugin returns the recorder of plugin's calls and failures, the same
// one for the same name, making it on the first call.
func (r *Registry) Plugin(plugin string) *PluginRecorder {
	if s := (*r.plugins.Load())[plugin]; s != nil {
		return s
	}
	r.pluginsMu.Lock()
	defer r.pluginsMu.Unlock()
	cur := *r.plugins.Load()
	if s := cur[plugin]; s != nil {
		return s
	}
	next := make(pluginSet, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	s := &PluginRecorder{r: r, name: plugin}
	next[plugin] = s
	r.plugins.Store(&next)
	return s
}

// PluginCall records a call of plugin at hook that ran to verdict in d:
// Plugin(plugin).Call.
func (r *Registry) PluginCall(plugin string, hook pluginapi.Hook, verdict pluginapi.Verdict, d time.Duration) {
	r.Plugin(plugin).Call(hook, verdict, d)
}

// PluginFailure records a failure of plugin: Plugin(plugin).Failure.
func (r *Registry) PluginFailure(plugin string, hook pluginapi.Hook, kind string, d time.Duration) {
	r.Plugin(plugin).Failure(hook, kind, d)
}

// Call records a call at hook that ran to verdict (the verdict label is
// its name, pluginapi.Verdict.String) in d. It does not allocate once the
// series exist.
func (s *PluginRecorder) Call(hook pluginapi.Hook, verdict pluginapi.Verdict, d time.Duration) {
	v := int(verdict)
	if !verdict.Valid() {
		v = verdictSlots - 1
	}
	s.call(hook, v, d)
}

// Failure records a failure of kind trap, timeout, memory, load,
// suspended or quota (anything else counts as trap). A failed call (a
// hook other than pluginapi.HookInit) also counts as a call with the
// verdict "error" and its time d.
func (s *PluginRecorder) Failure(hook pluginapi.Hook, kind string, d time.Duration) {
	s.r.pluginFailures.WithLabelValues(s.name, oneOf(kind, failKinds, pluginapi.FailTrap)).Inc()
	s.call(hook, verdictSlots-1, d)
}

// call counts a call with verdict slot v and observes its time. A hook
// outside the hooks (pluginapi.HookInit) is no call.
func (s *PluginRecorder) call(hook pluginapi.Hook, v int, d time.Duration) {
	if hook < 0 || hook >= pluginapi.NumHooks {
		return
	}
	c := s.calls[hook][v].Load()
	if c == nil {
		name := verdictError
		if v < verdictSlots-1 {
			name = pluginapi.Verdict(v).String()
		}
		cc := s.r.pluginCalls.WithLabelValues(s.name, hook.String(), name)
		s.calls[hook][v].CompareAndSwap(nil, &cc)
		c = s.calls[hook][v].Load()
	}
	o := s.seconds[hook].Load()
	if o == nil {
		s.seconds[hook].CompareAndSwap(nil, &callHist{})
		o = s.seconds[hook].Load()
	}
	(*c).Inc()
	o.observe(d)
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
