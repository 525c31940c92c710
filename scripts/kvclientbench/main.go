// Command kvclientbench measures what one Redis operation costs in CPU,
// the client process's and redis-server's, with go-redis (the client
// core/kvstore uses) and with rueidis (auto-pipelining), at G goroutines
// issuing operations at once: core/kvstore's counter increment script
// (-op incr, EVALSHA) or a three-key MGET (-op mget). It is a module of
// its own, so that rueidis stays out of Sluice's. Start a redis-server on
// a free port, then:
//
//	go build && ./kvclientbench -addr 127.0.0.1:PORT -redis-pid PID -client goredis -g 20 -n 60000
//
// It prints ops/s and the client's, redis-server's and their total CPU in
// microseconds an operation (from getrusage and /proc/PID/stat, 10 ms
// ticks: use tens of thousands of operations). -addr may be a Unix domain
// socket's path (go-redis only). With -client goredis, -goredis-opt
// changes one setting from core/kvstore's: nocheck (no health check of a
// pooled connection), fifo (PoolFIFO), noctx (ContextTimeoutEnabled
// off), bufs (4 KiB read and write buffers).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// src is core/kvstore's incrScript, the operation measured, copied: a
// module of its own cannot import it (keep the two the same).
const src = `
local existed = redis.call('EXISTS', KEYS[1])
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
`

// plain hides its connection's SyscallConn, which turns off go-redis's
// health check of a connection taken from the pool (a recvfrom with
// MSG_PEEK each time).
type plain struct{ net.Conn }

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func procCPU(pid int) time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func main() {
	addr := flag.String("addr", "", "")
	rpid := flag.Int("redis-pid", 0, "")
	client := flag.String("client", "goredis", "")
	g := flag.Int("g", 1, "")
	ops := flag.Int("n", 100000, "")
	op := flag.String("op", "incr", "incr|mget")
	variant := flag.String("goredis-opt", "", "nocheck|fifo|noctx|bufs: one go-redis setting changed (see the package comment)")
	flag.Parse()
	ctx := context.Background()
	var do func(i int) error
	switch *client {
	case "goredis":
		o := &goredis.Options{Addr: *addr, MaxRetries: -1, DisableIdentity: true, ContextTimeoutEnabled: true, ReadTimeout: time.Second, WriteTimeout: time.Second}
		switch *variant {
		case "nocheck":
			o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return plain{c}, nil
			}
		case "fifo":
			o.PoolFIFO = true
		case "noctx":
			o.ContextTimeoutEnabled = false
		case "bufs": // the default is 32 KiB each
			o.ReadBufferSize, o.WriteBufferSize = 4096, 4096
		case "":
		default:
			fmt.Fprintf(os.Stderr, "kvclientbench: unknown -goredis-opt %q\n", *variant)
			os.Exit(2)
		}
		c := goredis.NewClient(o)
		sc := goredis.NewScript(src)
		do = func(i int) error {
			cx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if *op == "mget" {
				return c.MGet(cx, "sluice:{a"+strconv.Itoa(i%50)+"}", "sluice:{b}", "sluice:{c}").Err()
			}
			return sc.Run(cx, c, []string{"sluice:{k" + strconv.Itoa(i%50) + "}"}, "1", "60000").Err()
		}
	case "rueidis":
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{*addr}, DisableCache: true, DisableRetry: true})
		if err != nil {
			panic(err)
		}
		sc := rueidis.NewLuaScript(src)
		do = func(i int) error {
			cx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if *op == "mget" {
				err := c.Do(cx, c.B().Mget().Key("sluice:{a"+strconv.Itoa(i%50)+"}", "sluice:{b}", "sluice:{c}").Build()).Error()
				return err
			}
			return sc.Exec(cx, c, []string{"sluice:{k" + strconv.Itoa(i%50) + "}"}, []string{"1", "60000"}).Error()
		}
	}
	for i := 0; i < 2000; i++ { // warm up, loads the script
		if err := do(i); err != nil && !rueidis.IsRedisNil(err) {
			panic(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	c0, r0, t0 := selfCPU(), procCPU(*rpid), time.Now()
	for range *g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(*ops) {
					return
				}
				if err := do(int(i)); err != nil && !rueidis.IsRedisNil(err) {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	c1, r1 := selfCPU(), procCPU(*rpid)
	n := float64(*ops)
	fmt.Printf("%-8s %-4s g=%-3d ops/s=%7.0f client_us/op=%5.1f redis_us/op=%5.1f total_us/op=%5.1f\n", *client, *op, *g, n/el.Seconds(),
		float64((c1-c0).Microseconds())/n, float64((r1-r0).Microseconds())/n, float64((c1-c0+r1-r0).Microseconds())/n)
}
