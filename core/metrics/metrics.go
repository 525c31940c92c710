// Package metrics keeps the counters plugins add to (the "metrics" grant)
// and writes them in the Prometheus text format for the admin socket.
package metrics

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Counters is a set of float counters keyed by plugin and name. It is safe
// for concurrent use.
type Counters struct {
	mu sync.Mutex
	m  map[key]float64
}

type key struct{ plugin, name string }

// New returns an empty set of counters.
func New() *Counters { return &Counters{m: make(map[key]float64)} }

// Add adds delta to the plugin's counter name.
func (c *Counters) Add(plugin, name string, delta float64) {
	c.mu.Lock()
	c.m[key{plugin, name}] += delta
	c.mu.Unlock()
}

// Get returns a counter's value.
func (c *Counters) Get(plugin, name string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key{plugin, name}]
}

// WritePrometheus writes every counter as
// sluice_plugin_<name>{plugin="…"} <value>, sorted.
func (c *Counters) WritePrometheus(w io.Writer) error {
	c.mu.Lock()
	keys := make([]key, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	vals := make(map[key]float64, len(c.m))
	for k, v := range c.m {
		vals[k] = v
	}
	c.mu.Unlock()
	slices.SortFunc(keys, func(a, b key) int {
		if n := strings.Compare(a.name, b.name); n != 0 {
			return n
		}
		return strings.Compare(a.plugin, b.plugin)
	})
	for _, k := range keys {
		_, err := fmt.Fprintf(w, "sluice_plugin_%s{plugin=%s} %s\n", metricName(k.name), strconv.Quote(k.plugin),
			strconv.FormatFloat(vals[k], 'g', -1, 64))
		if err != nil {
			return err
		}
	}
	return nil
}

// metricName keeps [a-zA-Z0-9_] and turns everything else into '_'.
func metricName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
