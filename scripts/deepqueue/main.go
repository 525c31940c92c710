// Command deepqueue fills a queue directory with deferred messages for the
// deep-queue benchmark (scripts/bench-deepqueue.sh): it runs the real
// queue (core/queue) in this process, enqueues -n messages of -size bytes
// from -writers goroutines through Queue.Enqueue (one durable commit
// each, group-synced), and has every delivery attempt fail with a 4.4.1
// "connection refused", as a route to a dead port would. Each message
// thus goes the way a deferred message goes in the server: enqueue,
// lease, attempt, reschedule with backoff (-backoff, so that none is due
// again during the benchmark). Start sluice on the directory afterwards.
//
//	go run ./scripts/deepqueue -dir DATA_DIR/queue -n 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/queue"
)

// refuse defers every recipient, as a dead route does.
type refuse struct{ n atomic.Int64 }

func (r *refuse) Deliver(_ context.Context, _ *mail.Message, rcpts []string) []mail.Result {
	out := make([]mail.Result, 0, len(rcpts))
	for _, rc := range rcpts {
		out = append(out, mail.DeferredResult(rc, "127.0.0.1:9",
			mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.4.1"), Text: "connect to 127.0.0.1:9: connection refused"}))
	}
	r.n.Add(1)
	return out
}

func main() {
	dir := flag.String("dir", "", "queue directory (DATA_DIR/queue of the server to start on it)")
	n := flag.Int("n", 1000000, "messages to store")
	size := flag.Int("size", 1024, "message size in bytes")
	writers := flag.Int("writers", 100, "concurrent Enqueue calls")
	backoff := flag.Duration("backoff", 6*time.Hour, "retry delay after the failed attempt")
	domains := flag.Int("domains", 100, "recipients are spread over this many domains dead0.test …")
	flag.Parse()
	if *dir == "" || *n < 1 {
		fmt.Fprintln(os.Stderr, "deepqueue: give -dir and a positive -n")
		os.Exit(2)
	}
	ctx := context.Background()
	d := &refuse{}
	q, err := queue.Open(ctx, queue.Options{Dir: *dir, Hostname: "deepqueue.test", MinBackoff: *backoff, MaxBackoff: *backoff,
		MaxLifetime: 5 * 24 * time.Hour, Workers: 32, Deliverer: d})
	if err != nil {
		fmt.Fprintln(os.Stderr, "deepqueue:", err)
		os.Exit(1)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- q.Run(runCtx) }()

	hdr := "From: load@src.test\r\nTo: user@dead.test\r\nSubject: deep queue\r\n\r\n"
	body := []byte(hdr + strings.Repeat("x", max(*size-len(hdr)-2, 0)) + "\r\n")
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range *writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(*n) {
					return
				}
				env := &mail.Envelope{From: "load@src.test", Rcpts: []mail.Recipient{{Addr: fmt.Sprintf("user%d@dead%d.test", i, i%int64(*domains))}}}
				if _, err := q.Enqueue(ctx, env, body); err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "deepqueue: enqueue:", err)
					}
				}
			}
		})
	}
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for enqueued := false; !enqueued || d.n.Load() < int64(*n)-failed.Load(); {
		select {
		case <-done:
			enqueued = true
			done = nil
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "deepqueue: %d enqueued, %d attempted, %.0f s\n", min(next.Load(), int64(*n)), d.n.Load(), time.Since(t0).Seconds())
		case <-time.After(50 * time.Millisecond):
		}
	}
	took := time.Since(t0)
	stop()
	if err := <-ran; err != nil {
		fmt.Fprintln(os.Stderr, "deepqueue: run:", err)
	}
	if err := q.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "deepqueue:", err)
		os.Exit(1)
	}
	fmt.Printf("stored %d deferred messages of %d bytes in %s (%.0f/s), %d failed\n", int64(*n)-failed.Load(), len(body), took.Round(time.Second), float64(*n)/took.Seconds(), failed.Load())
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
