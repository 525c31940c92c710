package kvstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
)

// BenchmarkKVLatency measures one operation's latency, one at a time, on
// the Badger store and on the local Redis TestMain started (over loopback
// TCP, and over its Unix domain socket: redis-unix), and reports
// the median and 99th percentile besides the mean, and the CPU an
// operation costs: this process's (getrusage: the client's, Badger's
// goroutines too) and, on Redis, redis-server's (/proc/PID/stat; 10 ms
// ticks, so use thousands of operations):
//
//	go test -run '^$' -bench KVLatency -benchtime 20000x ./core/kvstore
func BenchmarkKVLatency(b *testing.B) {
	stores := []struct {
		name string
		kv   func(b *testing.B) filter.KV
	}{
		{"badger", func(b *testing.B) filter.KV { return New(openDB(b)) }},
		{"redis", func(b *testing.B) filter.KV { return benchRedis(b, false) }},
		{"redis-unix", func(b *testing.B) filter.KV { return benchRedis(b, true) }},
	}
	ops := []struct {
		name string
		op   func(ctx context.Context, kv filter.KV, i int) error
	}{
		{"get", func(ctx context.Context, kv filter.KV, i int) error {
			_, _, err := kv.Get(ctx, "ratelimit/k"+strconv.Itoa(i%64))
			return err
		}},
		{"getmany6", func(ctx context.Context, kv filter.KV, i int) error {
			// A ratelimit window: six buckets in one operation.
			keys := make([]string, 6)
			for j := range keys {
				keys[j] = "ratelimit/k" + strconv.Itoa((i+j)%64)
			}
			_, err := kv.GetMany(ctx, keys)
			return err
		}},
		{"set", func(ctx context.Context, kv filter.KV, i int) error {
			return kv.Set(ctx, "greylist/k"+strconv.Itoa(i%1024), []byte("1700000000"), time.Hour)
		}},
		{"incr", func(ctx context.Context, kv filter.KV, i int) error {
			_, err := kv.Incr(ctx, "ratelimit/k"+strconv.Itoa(i%64), 1, time.Hour)
			return err
		}},
		{"incr3", func(ctx context.Context, kv filter.KV, i int) error {
			// Three ratelimit counters one at a time: incrmany3's baseline.
			for j := range 3 {
				if _, err := kv.Incr(ctx, "ratelimit/k"+strconv.Itoa((i+j)%64), 1, time.Hour); err != nil {
					return err
				}
			}
			return nil
		}},
		{"incrmany3", func(ctx context.Context, kv filter.KV, i int) error {
			// The same three in one operation, as ratelimit counts a hook.
			keys := []string{"ratelimit/k" + strconv.Itoa(i%64), "ratelimit/k" + strconv.Itoa((i+1)%64), "ratelimit/k" + strconv.Itoa((i+2)%64)}
			_, err := kv.IncrMany(ctx, keys, []int64{1, 1, 1}, []time.Duration{time.Hour, time.Hour, time.Hour})
			return err
		}},
	}
	for _, st := range stores {
		for _, op := range ops {
			b.Run(st.name+"/"+op.name, func(b *testing.B) {
				kv := st.kv(b)
				ctx := context.Background()
				for i := range 64 {
					if _, err := kv.Incr(ctx, "ratelimit/k"+strconv.Itoa(i), 1, time.Hour); err != nil {
						b.Fatal(err)
					}
				}
				lat := make([]time.Duration, 0, b.N)
				redisCPU := func() time.Duration { return 0 }
				if strings.HasPrefix(st.name, "redis") {
					redisCPU = func() time.Duration {
						d, err := redisSrv.CPU()
						if err != nil {
							b.Fatal(err)
						}
						return d
					}
				}
				cpu0, rcpu0 := cpuTime(b), redisCPU()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if err := op.op(ctx, kv, i); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				cpu, rcpu := cpuTime(b)-cpu0, redisCPU()-rcpu0
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
				if strings.HasPrefix(st.name, "redis") {
					b.ReportMetric(float64(rcpu.Microseconds())/float64(b.N), "redis-cpu-µs/op")
				}
			})
		}
	}
}

// benchRedis is a store on the package's Redis, over its socket when unix.
func benchRedis(b *testing.B, unix bool) filter.KV {
	if redisSrv == nil {
		b.Skip("redis-server not installed")
	}
	addr := redisSrv.Addr
	if unix {
		addr = UnixPrefix + redisSrv.Socket
	}
	r, err := NewRedis(RedisOptions{Addrs: []string{addr}, Prefix: "bench:", Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}
