package tlsrpt

import (
	"context"
	"net/netip"
	"testing"
)

// BenchmarkRecord is what delivery pays per session: Record from many
// goroutines, with Run aggregating and flushing to Badger behind it.
func BenchmarkRecord(b *testing.B) {
	db := openDB(b, b.TempDir())
	defer db.Close()
	r := New(Options{DB: db})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	res := Result{PolicyDomain: "example.com", PolicyType: PolicySTS, PolicyStrings: stsPolicy, MXHost: "mx1.example.com",
		SendingIP: ourIP, ReceivingIP: netip.MustParseAddr("192.0.2.25"), Success: true}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Record(ctx, res)
		}
	})
	b.StopTimer()
	elapsed := b.Elapsed()
	cancel()
	<-done
	// What the aggregator took (the rest was dropped: Record never waits).
	b.ReportMetric(float64(int64(b.N)-r.Dropped())/elapsed.Seconds(), "aggregated/s")
	b.ReportMetric(float64(r.Dropped())/float64(b.N), "dropped/op")
}
