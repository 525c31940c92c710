package queue

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// BenchmarkEnqueue measures durable enqueues of 10 KiB messages from many
// concurrent writers (SMTP sessions). "group" is the shipped configuration;
// "badger-sync" is Badger's own SyncWrites (one WAL sync per commit) and
// "group-inline" keeps bodies in the LSM tree instead of the value log, for
// comparison (see RATIONALE.md).
func BenchmarkEnqueue(b *testing.B) {
	for _, mode := range []string{"group", "group-inline", "badger-sync"} {
		for _, writers := range []int{1, 20, 100} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				opts := Options{Dir: b.TempDir(), Hostname: "bench.test"}
				switch mode {
				case "group-inline":
					opts.valueThreshold = 64 << 10
				case "badger-sync":
					opts.badgerSyncWrites = true
				}
				q, err := Open(context.Background(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer q.Close()
				body := bytes.Repeat([]byte("0123456789abcdef"), 10<<10/16)
				b.SetBytes(int64(len(body)))
				// RunParallel starts GOMAXPROCS×p goroutines.
				b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "x@dst.test"}}}
						if _, err := q.Enqueue(context.Background(), env, body); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
