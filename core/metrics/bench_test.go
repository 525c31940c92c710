package metrics

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
)

// BenchmarkMessagePath is what one message costs the metrics on its way
// through: the connection, the session gauge up and down, the message at
// the end of DATA, the durable commit and one recipient's delivery.
func BenchmarkMessagePath(b *testing.B) {
	r := New(Options{})
	d := Delivery{ID: "DN65HKZ3AE615A99", Rcpt: "user@bench.test", Result: Delivered, Relay: "local", Delay: time.Second}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.SMTPConnection("smtp", "accepted")
			r.SMTPSession("smtp", 1)
			r.SMTPMessage("smtp", "accepted")
			r.QueueCommit(2 * time.Millisecond)
			r.Delivery(d)
			r.SMTPSession("smtp", -1)
		}
	})
}

// BenchmarkPluginCall is the cost of recording one plugin hook call.
func BenchmarkPluginCall(b *testing.B) {
	r := New(Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.PluginCall("ratelimit", pluginapi.HookRcpt, pluginapi.Continue, 3*time.Microsecond)
		}
	})
}

// BenchmarkPluginRecorderCall is BenchmarkPluginCall through the
// plugin's recorder, as the filter host records: no lookup by name.
func BenchmarkPluginRecorderCall(b *testing.B) {
	r := New(Options{})
	p := r.Plugin("ratelimit")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Call(pluginapi.HookRcpt, pluginapi.Continue, 3*time.Microsecond)
		}
	})
}

// BenchmarkScrape renders a populated registry in the text format and
// reports its size (bytes/scrape).
func BenchmarkScrape(b *testing.B) {
	r, _ := populated(b)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := r.WritePrometheus(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/scrape")
}
