package queue

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
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

// countingDeliverer delivers every recipient and counts the messages; all
// is closed when want of them have been delivered.
type countingDeliverer struct {
	n    atomic.Int64
	want int64
	all  chan struct{}
	fate mail.Status
}

func (c *countingDeliverer) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	out := make([]mail.Result, 0, len(rcpts))
	for _, r := range rcpts {
		if c.fate == mail.Deferred {
			out = append(out, mail.DeferredResult(r, "127.0.0.1:9", mail.Reply{Code: 451, Enhanced: mail.EnhancedCode{4, 4, 1}, Text: "connection refused"}))
			continue
		}
		out = append(out, mail.Result{Rcpt: r, Status: mail.Sent, Reply: mail.Reply{Code: 250, Enhanced: mail.EnhancedCode{2, 0, 0}, Text: "ok"}, Relay: "127.0.0.1:25"})
	}
	if c.n.Add(1) == c.want {
		close(c.all)
	}
	return out
}

// BenchmarkRelayed is the queue's part of a message relayed (sent: enqueued,
// leased at enqueue, delivered, removed) or deferred (its attempt failed,
// rescheduled), 20 writers at a time, 1 KiB each; allocs/op is what core/queue and Badger
// allocate a message (BENCHMARKS.md).
func BenchmarkRelayed(b *testing.B) {
	for _, fate := range []mail.Status{mail.Sent, mail.Deferred} {
		b.Run(fate.String(), func(b *testing.B) {
			d := &countingDeliverer{fate: fate, want: int64(b.N), all: make(chan struct{})}
			q, err := Open(context.Background(), Options{Dir: b.TempDir(), Hostname: "bench.test", Deliverer: d, Workers: 8})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- q.Run(ctx) }()
			defer func() { cancel(); <-done }()
			for !handingOff(q) {
				runtime.Gosched()
			}
			body := bytes.Repeat([]byte("0123456789abcde\n"), 1<<10/16)
			b.SetParallelism(max(1, 20/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					env := &mail.Envelope{From: "load@src.test", Rcpts: []mail.Recipient{{Addr: "user@sink.test"}}}
					if _, err := q.Enqueue(context.Background(), env, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
			<-d.all
		})
	}
}
