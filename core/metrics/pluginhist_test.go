package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-mta/sluice/pluginapi"
)

// TestPluginCallSecondsLikeHistogram: sluice_plugin_call_seconds counts
// calls into the same buckets, with the same count and sum, as a
// prometheus.Histogram with its bounds given the same times — including
// times exactly on a bound (le is inclusive), zero and past the last.
func TestPluginCallSecondsLikeHistogram(t *testing.T) {
	r := New(Options{})
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Buckets: pluginCallBuckets[:]})
	times := []time.Duration{0, 1, 9999, 10 * time.Microsecond, 10*time.Microsecond + 1, 25 * time.Microsecond,
		70 * time.Microsecond, 999 * time.Microsecond, time.Millisecond, 3 * time.Millisecond,
		250 * time.Millisecond, time.Second, time.Second + 1, 5 * time.Second}
	for _, d := range times {
		r.PluginCall("p", pluginapi.HookRcpt, pluginapi.Continue, d)
		ref.Observe(d.Seconds())
	}
	var want dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 16)
	r.pluginSeconds.Collect(ch)
	close(ch)
	var got []*dto.Metric
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		got = append(got, &d)
	}
	if len(got) != 1 {
		t.Fatalf("%d series, want 1", len(got))
	}
	g, w := got[0].GetHistogram(), want.GetHistogram()
	if g.GetSampleCount() != w.GetSampleCount() || g.GetSampleCount() != uint64(len(times)) {
		t.Errorf("count %d, want %d", g.GetSampleCount(), w.GetSampleCount())
	}
	if diff := g.GetSampleSum() - w.GetSampleSum(); diff > 1e-9 || diff < -1e-9 {
		t.Errorf("sum %v, want %v", g.GetSampleSum(), w.GetSampleSum())
	}
	if len(g.GetBucket()) != len(w.GetBucket()) {
		t.Fatalf("%d buckets, want %d", len(g.GetBucket()), len(w.GetBucket()))
	}
	for i, b := range w.GetBucket() {
		if gb := g.GetBucket()[i]; gb.GetUpperBound() != b.GetUpperBound() || gb.GetCumulativeCount() != b.GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want le=%v: %d", gb.GetUpperBound(), gb.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
	labels := map[string]string{}
	for _, l := range got[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["plugin"] != "p" || labels["hook"] != "rcpt" || len(labels) != 2 {
		t.Errorf("labels %v, want plugin=p hook=rcpt", labels)
	}
}
