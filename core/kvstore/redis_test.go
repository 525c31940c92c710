package kvstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/internal/testwait"
	"github.com/sluice-mta/sluice/core/kvstore/redistest"
)

var _ filter.KV = (*Redis)(nil)

// redisSrv is the redis-server TestMain starts for the package, on a
// loopback port and a Unix domain socket (nil when redis-server is not
// installed).
var redisSrv *redistest.Server

func TestMain(m *testing.M) {
	code := func() int {
		if redistest.Available() {
			dir, err := os.MkdirTemp("", "kvstore-redis")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			redisSrv, err = redistest.StartUnix(dir)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer redisSrv.Stop()
		}
		return m.Run()
	}()
	os.Exit(code)
}

// counter is a RedisObserver recording what it was told.
type counter struct {
	errs atomic.Int64
	mu   sync.Mutex
	ups  []bool
}

func (c *counter) KVError(string) { c.errs.Add(1) }
func (c *counter) KVUp(up bool) {
	c.mu.Lock()
	c.ups = append(c.ups, up)
	c.mu.Unlock()
}

// newRedis returns a store on the package's server under a prefix of the
// test's own.
func newRedis(t *testing.T, obs RedisObserver) *Redis {
	t.Helper()
	if redisSrv == nil {
		t.Skip("redis-server not installed (scripts/install-test-deps.sh)")
	}
	r, err := NewRedis(RedisOptions{Addrs: []string{redisSrv.Addr}, Prefix: "test:" + t.Name() + ":", Timeout: time.Second, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// testOps runs every operation's contract against kv.
func testOps(t *testing.T, kv filter.KV) {
	ctx := context.Background()
	if v, ok, err := kv.Get(ctx, "a"); err != nil || ok || v != nil {
		t.Fatalf("Get missing = %q, %v, %v; want nil, false, nil", v, ok, err)
	}
	if err := kv.Set(ctx, "a", []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := kv.Set(ctx, "a", []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := kv.Get(ctx, "a"); err != nil || !ok || string(v) != "two" {
		t.Fatalf("Get = %q, %v, %v; want two, true, nil", v, ok, err)
	}
	if err := kv.Set(ctx, "empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := kv.Get(ctx, "empty"); err != nil || !ok || len(v) != 0 {
		t.Fatalf("Get empty = %q, %v, %v; want \"\", true, nil", v, ok, err)
	}
	if err := kv.Del(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := kv.Get(ctx, "a"); err != nil || ok {
		t.Fatalf("Get after Del = %v, %v; want false, nil", ok, err)
	}
	if err := kv.Del(ctx, "never-set"); err != nil {
		t.Fatalf("Del missing: %v", err)
	}
	if err := kv.Set(ctx, "a", []byte("x"), -time.Second); err == nil {
		t.Error("Set with negative TTL: no error")
	}
	for i, want := range []int64{5, 8, 6} {
		n, err := kv.Incr(ctx, "n", []int64{5, 3, -2}[i], 0)
		if err != nil || n != want {
			t.Fatalf("Incr #%d = %d, %v; want %d", i, n, err, want)
		}
	}
	if v, _, _ := kv.Get(ctx, "n"); string(v) != "6" {
		t.Errorf("Get counter = %q; want 6", v)
	}
	if err := kv.Set(ctx, "text", []byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Incr(ctx, "text", 1, 0); err == nil {
		t.Error("Incr on text: no error")
	}
	// GetMany: every key in order, nil for a missing one, an empty value
	// present but empty; in a cluster the keys lie in different slots.
	if err := kv.Set(ctx, "empty", []byte{}, 0); err != nil {
		t.Fatal(err)
	}
	vs, err := kv.GetMany(ctx, []string{"n", "never-set", "text", "empty", "n"})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(vs) != 5 || string(vs[0]) != "6" || vs[1] != nil || string(vs[2]) != "abc" || vs[3] == nil || len(vs[3]) != 0 || string(vs[4]) != "6" {
		t.Errorf("GetMany = %q (nil at 1: %v, empty at 3: %v); want [6 <nil> abc \"\" 6]", vs, vs[1] == nil, vs[3] != nil)
	}
	// IncrMany: every counter in order, a key listed twice counted twice,
	// a new counter with its TTL, an old one keeping its value's course; in
	// a cluster the keys lie in different slots.
	ns, err := kv.IncrMany(ctx, []string{"n", "m1", "m2", "n"}, []int64{1, 7, -3, 10}, []time.Duration{0, time.Hour, time.Minute, 0})
	if err != nil || len(ns) != 4 || ns[0] != 7 || ns[1] != 7 || ns[2] != -3 || ns[3] != 17 {
		t.Fatalf("IncrMany = %v, %v; want [7 7 -3 17]", ns, err)
	}
	if vs, err := kv.GetMany(ctx, []string{"n", "m1", "m2"}); err != nil || string(vs[0]) != "17" || string(vs[1]) != "7" || string(vs[2]) != "-3" {
		t.Errorf("after IncrMany: GetMany = %q, %v; want [17 7 -3]", vs, err)
	}
	if ns, err := kv.IncrMany(ctx, []string{"m1"}, []int64{1}, []time.Duration{time.Hour}); err != nil || len(ns) != 1 || ns[0] != 8 {
		t.Errorf("IncrMany of one key = %v, %v; want [8]", ns, err)
	}
	if _, err := kv.IncrMany(ctx, []string{"m1", "text"}, []int64{1, 1}, []time.Duration{0, 0}); err == nil {
		t.Error("IncrMany over a text value: no error")
	}
	if _, err := kv.IncrMany(ctx, []string{"m1"}, []int64{1}, []time.Duration{-time.Second}); err == nil {
		t.Error("IncrMany with a negative TTL: no error")
	}
	if _, err := kv.IncrMany(ctx, []string{"m1", "m2"}, []int64{1}, []time.Duration{0, 0}); err == nil {
		t.Error("IncrMany with fewer deltas than keys: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := kv.Get(cctx, "n"); err == nil {
		t.Error("Get on a canceled context: no error")
	}
}

func TestRedisOps(t *testing.T) {
	obs := &counter{}
	r := newRedis(t, obs)
	testOps(t, r)
	if r.Down() {
		t.Error("a canceled context marked Redis down")
	}
}

// TestRedisUnixSocket: a store given "unix:/path" keeps the whole
// contract over the socket of a redis-server that listens on no TCP port
// at all, and rides out that server's restart as it does over TCP.
func TestRedisUnixSocket(t *testing.T) {
	srv := redistest.StartUnixT(t, "--port", "0")
	obs := &counter{}
	r, err := NewRedis(RedisOptions{Addrs: []string{UnixPrefix + srv.Socket}, Prefix: "unix:", Timeout: time.Second, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	testOps(t, r)
	ctx := context.Background()
	srv.Stop()
	if _, err := r.Incr(ctx, "k", 1, time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Incr with the socket's server down: %v; want ErrUnavailable", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var n int64
	testwait.Until(t, 5*time.Second, "the store to recover after Redis came back on its socket", func() bool {
		var err error
		n, err = r.Incr(ctx, "k", 1, time.Minute)
		return err == nil
	})
	if n != 1 {
		t.Errorf("first count after a restart without persistence: %d, want 1", n)
	}
	if r.Down() {
		t.Error("the store still reports Redis down")
	}
}

// TestRedisUnixSocketOptions: a socket is standalone only, and its path
// absolute.
func TestRedisUnixSocketOptions(t *testing.T) {
	for _, o := range []RedisOptions{
		{Addrs: []string{"unix:/run/redis.sock", "127.0.0.1:7000"}, Cluster: true},
		{Addrs: []string{"unix:redis.sock"}},
	} {
		if r, err := NewRedis(o); err == nil {
			r.Close()
			t.Errorf("NewRedis(%v): no error", o.Addrs)
		}
	}
}

// TestBadgerOps holds the Badger store to the same contract.
func TestBadgerOps(t *testing.T) { testOps(t, New(openDB(t))) }

func TestRedisTTL(t *testing.T) {
	ctx := context.Background()
	r := newRedis(t, nil)
	if err := r.Set(ctx, "short", []byte("v"), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Incr(ctx, "win", 1, 300*time.Millisecond); err != nil || n != 1 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if err := r.Set(ctx, "forever", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Incr(ctx, "forever-n", 1, 0); err != nil {
		t.Fatal(err)
	}
	// Redis's own TTLs: the set key has its PX, the counter got its
	// PEXPIRE on creation, and a later Incr keeps it (a fixed window).
	for _, k := range []string{"short", "win"} {
		pttl, err := r.c.PTTL(ctx, r.Key(k)).Result()
		if err != nil || pttl <= 0 || pttl > 300*time.Millisecond {
			t.Errorf("PTTL %s = %v, %v; want within (0, 300ms]", k, pttl, err)
		}
	}
	before, _ := r.c.PTTL(ctx, r.Key("win")).Result()
	if n, err := r.Incr(ctx, "win", 1, time.Hour); err != nil || n != 2 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if after, _ := r.c.PTTL(ctx, r.Key("win")).Result(); after > before || after <= 0 {
		t.Errorf("Incr on an existing counter moved its TTL from %v to %v", before, after)
	}
	for _, k := range []string{"forever", "forever-n"} {
		if pttl, err := r.c.PTTL(ctx, r.Key(k)).Result(); err != nil || pttl != -1 {
			t.Errorf("PTTL %s = %v, %v; want -1 (no expiry)", k, pttl, err)
		}
	}
	for _, k := range []string{"short", "win"} {
		testwait.Until(t, 5*time.Second, k+" to expire at its TTL", func() bool {
			_, ok, err := r.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			return !ok
		})
	}
	if n, err := r.Incr(ctx, "win", 1, time.Minute); err != nil || n != 1 {
		t.Errorf("Incr after expiry = %d, %v; want a new window from 1", n, err)
	}
}

// TestRedisConcurrentIncr: many goroutines on several clients (as several
// nodes would be) never lose a count, and the counter keeps its TTL.
func TestRedisConcurrentIncr(t *testing.T) {
	ctx := context.Background()
	const clients, workers, each = 4, 16, 50
	var stores []*Redis
	for i := 0; i < clients; i++ {
		stores = append(stores, newRedis(t, nil))
	}
	var wg sync.WaitGroup
	var maxSeen atomic.Int64
	seen := make([]atomic.Bool, clients*workers*each+1)
	for w := 0; w < clients*workers; w++ {
		wg.Add(1)
		go func(s *Redis) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Every other count goes with another counter's in one
				// IncrMany script, which is as atomic.
				var n int64
				var err error
				if i%2 == 0 {
					n, err = s.Incr(ctx, "hot", 1, time.Minute)
				} else {
					var ns []int64
					ns, err = s.IncrMany(ctx, []string{"other", "hot"}, []int64{1, 1}, []time.Duration{time.Minute, time.Minute})
					if err == nil {
						n = ns[1]
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
				if n < 1 || int(n) >= len(seen) || seen[n].Swap(true) {
					t.Errorf("Incr returned %d twice or out of range", n)
				}
				for m := maxSeen.Load(); n > m && !maxSeen.CompareAndSwap(m, n); m = maxSeen.Load() {
				}
			}
		}(stores[w%clients])
	}
	wg.Wait()
	v, ok, err := stores[0].Get(ctx, "hot")
	if want := strconv.Itoa(clients * workers * each); err != nil || !ok || string(v) != want {
		t.Fatalf("counter = %q, %v, %v; want %s", v, ok, err, want)
	}
	v, _, err = stores[0].Get(ctx, "other")
	if want := strconv.Itoa(clients * workers * each / 2); err != nil || string(v) != want {
		t.Fatalf("counter other = %q, %v; want %s", v, err, want)
	}
	if pttl, _ := stores[0].c.PTTL(ctx, stores[0].Key("other")).Result(); pttl <= 0 {
		t.Errorf("IncrMany's counter has no TTL: PTTL %v", pttl)
	}
	if pttl, _ := stores[0].c.PTTL(ctx, stores[0].Key("hot")).Result(); pttl <= 0 {
		t.Errorf("counter lost its TTL: PTTL %v", pttl)
	}
}

// TestRedisOutage: with Redis killed, calls fail with ErrUnavailable within
// the timeout, the outage is reported once, not per call, and the store
// works again when Redis is back, without a new client.
func TestRedisOutage(t *testing.T) {
	obs := &counter{}
	if redisSrv == nil {
		t.Skip("redis-server not installed")
	}
	r, err := NewRedis(RedisOptions{Addrs: []string{redisSrv.Addr}, Prefix: "test:outage:", Timeout: 100 * time.Millisecond, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if _, err := r.Incr(ctx, "k", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	redisSrv.Stop()
	restarted := false
	defer func() {
		if !restarted {
			_ = redisSrv.Start()
		}
	}()
	for i := 0; i < 5; i++ {
		start := time.Now()
		_, err := r.Incr(ctx, "k", 1, time.Minute)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Incr with Redis down: %v; want ErrUnavailable", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Incr with Redis down took %v; the timeout is 100ms", d)
		}
	}
	// A short hook deadline ends a call sooner than the store's timeout.
	if _, err := r.GetMany(ctx, []string{"k", "j"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("GetMany with Redis down: %v; want ErrUnavailable", err)
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	_, _, err = r.Get(hctx, "k")
	cancel()
	if err == nil {
		t.Error("Get with Redis down: no error")
	}
	if !r.Down() || obs.errs.Load() < 5 {
		t.Errorf("Down = %v, errors counted %d; want true, >= 5", r.Down(), obs.errs.Load())
	}
	if err := redisSrv.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	testwait.Until(t, 5*time.Second, "the store to recover after Redis came back", func() bool {
		_, err := r.Incr(ctx, "k", 1, time.Minute)
		return err == nil
	})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.ups) != 2 || obs.ups[0] || !obs.ups[1] {
		t.Errorf("state changes reported %v; want [false true] (once each, not per call)", obs.ups)
	}
}

// TestRedisCluster: the operations on a three-master Redis Cluster, keys
// spread over the masters, each op on its key's slot.
func TestRedisCluster(t *testing.T) {
	if testing.Short() || redisSrv == nil {
		t.Skip("needs redis-server; slow")
	}
	c, err := redistest.StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	r, err := NewRedis(RedisOptions{Addrs: c.Addrs, Cluster: true, Prefix: "sluice:", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	testOps(t, r)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(k string) {
				defer wg.Done()
				for j := 0; j < 25; j++ {
					if _, err := r.Incr(ctx, k, 1, time.Minute); err != nil {
						t.Error(err)
						return
					}
				}
			}("ratelimit/sender-" + strconv.Itoa(i))
		}
	}
	wg.Wait()
	for i := 0; i < 30; i++ {
		k := "ratelimit/sender-" + strconv.Itoa(i)
		v, ok, err := r.Get(ctx, k)
		if err != nil || !ok || string(v) != "100" {
			t.Fatalf("%s = %q, %v, %v; want 100", k, v, ok, err)
		}
	}
	holding := 0
	for _, n := range c.Nodes {
		nc := redis.NewClient(&redis.Options{Addr: n.Addr})
		size, err := nc.DBSize(ctx).Result()
		nc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Errorf("the keys sit on %d of 3 masters; want them spread by their hash tags", holding)
	}
}

// TestRedisAuth: a server with an ACL user answers only a store that logs
// in as it.
func TestRedisAuth(t *testing.T) {
	if redisSrv == nil {
		t.Skip("redis-server not installed")
	}
	srv, err := redistest.Start(t.TempDir(), "--user", "default", "off", "--user", "sluice", "on", ">s3cret", "~*", "+@all")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	for _, tc := range []struct {
		user, password string
		ok             bool
	}{
		{"sluice", "s3cret", true},
		{"sluice", "wrong", false},
		{"", "", false},
	} {
		r, err := NewRedis(RedisOptions{Addrs: []string{srv.Addr}, Username: tc.user, Password: tc.password, Prefix: "auth:", Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Incr(ctx, "n", 1, time.Minute)
		r.Close()
		if (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, ErrUnavailable)) {
			t.Errorf("user %q password %q: Incr error %v; want ok=%v (a refused login: ErrUnavailable)", tc.user, tc.password, err, tc.ok)
		}
	}
}
