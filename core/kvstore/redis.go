package kvstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable wraps every error of a Redis that could not be reached or
// did not answer in time (as opposed to a refusal of one operation, such as
// Incr on a value that is not a number).
var ErrUnavailable = errors.New("kvstore: redis unavailable")

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// Addrs is one "host:port" for a standalone server, or the seeds of a
	// Redis Cluster with Cluster set. A standalone server on the same host
	// may be "unix:/path" instead: its Unix domain socket (redis.conf's
	// unixsocket), which costs both sides less than loopback TCP.
	Addrs   []string
	Cluster bool
	// Username and Password log in (AUTH); "" for none.
	Username, Password string
	// TLS, when not nil, connects over TLS with it.
	TLS *tls.Config
	// Prefix comes before every key.
	Prefix string
	// Timeout bounds each operation (within the caller's deadline, which
	// still ends it sooner); 0 means 50ms.
	Timeout time.Duration
	// Logger receives one line each time Redis goes away and comes back;
	// nil logs nothing.
	Logger *slog.Logger
	// Observer, when not nil, is told of every operation that failed for
	// want of Redis, and of each change between reachable and not.
	Observer RedisObserver
}

// RedisObserver counts a Redis store's outages (core/metrics implements
// it).
type RedisObserver interface {
	// KVError counts one operation that failed because Redis could not be
	// reached in time.
	KVError(op string)
	// KVUp reports a change of state: up is false when Redis became
	// unreachable, true when it answered again.
	KVUp(up bool)
}

// Redis is a key-value store in Redis (standalone or Cluster) shared by
// every node pointed at it. Each operation is one atomic Redis command or
// Lua script on one key, so it stays on one slot in a cluster; TTLs are
// Redis's own (millisecond resolution). It is safe for concurrent use.
type Redis struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	obs     RedisObserver

	mu   sync.Mutex
	down bool
}

// incrScript adds ARGV[1] to KEYS[1] and, when the key did not exist
// before, gives it the TTL ARGV[2] milliseconds (0: none); an existing key
// keeps its expiry, as the Badger store's Incr does. One script is one
// atomic step in Redis: concurrent increments from any number of nodes
// never lose a count nor leave a counter without its TTL.
var incrScript = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
`)

// incrManyScript is incrScript for every key of KEYS in order, ARGV
// holding each key's delta and TTL in turn, in one atomic step; it returns
// the new values. A key that is not a counter stops it with Redis's error,
// the keys before it counted.
var incrManyScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  local ttl = tonumber(ARGV[2*i])
  local existed = redis.call('EXISTS', k)
  out[i] = redis.call('INCRBY', k, ARGV[2*i-1])
  if existed == 0 and ttl > 0 then
    redis.call('PEXPIRE', k, ttl)
  end
end
return out
`)

// UnixPrefix starts an address that is a Unix domain socket's path
// ("unix:/run/redis/redis.sock"), as [kv] redis and [local] lmtp write it.
const UnixPrefix = "unix:"

// NewRedis connects to Redis as opts says; it does not wait for the server
// to answer (a store that cannot reach it fails its operations, and
// recovers by itself when Redis is back).
func NewRedis(opts RedisOptions) (*Redis, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("kvstore: no Redis address")
	}
	if len(opts.Addrs) > 1 && !opts.Cluster {
		return nil, fmt.Errorf("kvstore: %d Redis addresses without cluster mode", len(opts.Addrs))
	}
	socket, unix := strings.CutPrefix(opts.Addrs[0], UnixPrefix)
	if opts.Cluster {
		for _, a := range opts.Addrs {
			if strings.HasPrefix(a, UnixPrefix) {
				return nil, fmt.Errorf("kvstore: Redis Cluster seed %q is a Unix domain socket; a cluster's nodes announce TCP addresses", a)
			}
		}
	}
	if unix && !strings.HasPrefix(socket, "/") {
		return nil, fmt.Errorf("kvstore: Redis socket %q: the path must be absolute", opts.Addrs[0])
	}
	t := opts.Timeout
	if t <= 0 {
		t = 50 * time.Millisecond
	}
	uo := &redis.UniversalOptions{
		Addrs:                 opts.Addrs,
		IsClusterMode:         opts.Cluster,
		Username:              opts.Username,
		Password:              opts.Password,
		TLSConfig:             opts.TLS,
		DialTimeout:           t,
		ReadTimeout:           t,
		WriteTimeout:          t,
		ContextTimeoutEnabled: true,
		// A retry could not finish within one operation's timeout.
		MaxRetries: -1,
		// Do not HELLO with a protocol and client name Redis 5 lacks.
		DisableIdentity: true,
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	var c redis.UniversalClient
	if unix {
		o := uo.Simple()
		o.Network, o.Addr = "unix", socket
		c = redis.NewClient(o)
	} else {
		c = redis.NewUniversalClient(uo)
	}
	return &Redis{
		c:       c,
		prefix:  opts.Prefix,
		timeout: t,
		log:     opts.Logger,
		obs:     opts.Observer,
	}, nil
}

// quiet drops go-redis's own log lines (one per failed dial while Redis is
// down); the store logs each change of state once instead.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

// Key is the Redis key of key: the prefix, then key in braces, its hash
// tag, so that a cluster places it by key alone.
func (r *Redis) Key(key string) string { return r.prefix + "{" + key + "}" }

// opCtx bounds one operation by the store's timeout within ctx. go-redis
// bounds its socket reads and writes by the context's deadline
// (ContextTimeoutEnabled), so a caller's deadline that comes first needs
// no context of the operation's own: ctx serves as it is. Otherwise the
// operation's context has the timeout's deadline but not ctx's
// cancellation (a caller canceled during an operation waits for it, at
// most the timeout): deriving a cancellation from a context of a type of
// its own, as the plugin host's call context is, costs the context
// package a goroutine per operation. A ctx canceled already serves as it
// is, so the operation fails at once.
func (r *Redis) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	end := time.Now().Add(r.timeout)
	if d, ok := ctx.Deadline(); (ok && !d.After(end)) || ctx.Err() != nil {
		return ctx, func() {}
	}
	return context.WithDeadline(context.WithoutCancel(ctx), end)
}

// done classifies the outcome of op: Redis's own error replies (a wrong
// type, an overflow) are the operation's failure; anything else, a network
// error or a timeout, is an outage, counted, and logged when the state
// changes. A success after an outage logs the recovery.
func (r *Redis) done(ctx context.Context, op, key string, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The caller gave up (its context was canceled): no news about
		// Redis.
		return fmt.Errorf("kvstore: %s %q: %w", op, key, err)
	}
	var rerr redis.Error
	if err == nil || errors.Is(err, redis.Nil) || (errors.As(err, &rerr) && !isOutageReply(rerr)) {
		r.setDown(false, nil)
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("kvstore: %s %q: %w", op, key, err)
		}
		return nil
	}
	if r.obs != nil {
		r.obs.KVError(op)
	}
	r.setDown(true, err)
	return fmt.Errorf("%w: %s %q: %w", ErrUnavailable, op, key, err)
}

// isOutageReply reports error replies that mean the server cannot serve
// this store now, rather than that the operation is wrong: it is loading,
// failing over or busy, or it refuses the store's login or its ACL
// forbids the commands (a configuration mistake, which must not pass for
// a working store).
func isOutageReply(err redis.Error) bool {
	msg := err.Error()
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY", "WRONGPASS", "NOAUTH", "NOPERM"} {
		if len(msg) >= len(p) && msg[:len(p)] == p {
			return true
		}
	}
	return false
}

// setDown records the state and logs and reports a change.
func (r *Redis) setDown(down bool, err error) {
	r.mu.Lock()
	changed := r.down != down
	r.down = down
	r.mu.Unlock()
	if !changed {
		return
	}
	if r.obs != nil {
		r.obs.KVUp(!down)
	}
	if r.log == nil {
		return
	}
	if down {
		r.log.Error("kv: redis unreachable; shared state unavailable until it answers", "err", err)
	} else {
		r.log.Info("kv: redis reachable again")
	}
}

// Down reports whether the last operation found Redis unreachable.
func (r *Redis) Down() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down
}

// Get returns the value of key and whether it exists.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	v, err := r.c.Get(ctx, r.Key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		r.setDown(false, nil)
		return nil, false, nil
	}
	if err := r.done(ctx, "get", key, err); err != nil {
		return nil, false, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// GetMany returns the values of keys in one round trip: nil for a
// missing key. On a standalone Redis it is one MGET; in a cluster, whose
// keys lie in different slots, one GET per key in a pipeline that sends
// each node its share at once. Each read is atomic on its own.
func (r *Redis) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = r.Key(k)
	}
	out := make([][]byte, len(keys))
	if _, cluster := r.c.(*redis.ClusterClient); !cluster {
		vals, err := r.c.MGet(ctx, rkeys...).Result()
		if err := r.done(ctx, "mget", keys[0], err); err != nil {
			return nil, err
		}
		for i, v := range vals {
			if s, ok := v.(string); ok {
				out[i] = append([]byte{}, s...)
			}
		}
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range rkeys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	if err := r.done(ctx, "mget", keys[0], err); err != nil {
		return nil, err
	}
	for i, c := range cmds {
		v, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err := r.done(ctx, "get", keys[i], err); err != nil {
			return nil, err
		}
		if v == nil {
			v = []byte{}
		}
		out[i] = v
	}
	return out, nil
}

// Set stores value under key with ttl (0: none), replacing any earlier
// value and TTL.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("kvstore: negative TTL %v; use 0 for a key that never expires", ttl)
	}
	if ttl > 0 && ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	return r.done(ctx, "set", key, r.c.Set(ctx, r.Key(key), value, ttl).Err())
}

// Incr adds delta to the counter under key and returns the new value; a
// missing key counts from 0 and takes ttl (0: none), an existing one keeps
// its expiry (see Store.Incr). It is one Lua script, atomic across every
// node sharing the Redis.
func (r *Redis) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	ms, err := ttlMS(ttl)
	if err != nil {
		return 0, err
	}
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	n, err := incrScript.Run(ctx, r.c, []string{r.Key(key)}, strconv.FormatInt(delta, 10), strconv.FormatInt(ms, 10)).Int64()
	if err := r.done(ctx, "incr", key, err); err != nil {
		return 0, err
	}
	return n, nil
}

// ttlMS is ttl in Redis's milliseconds, at least 1 for a positive ttl.
func ttlMS(ttl time.Duration) (int64, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("kvstore: negative TTL %v; use 0 for a key that never expires", ttl)
	}
	ms := ttl.Milliseconds()
	if ttl > 0 && ms == 0 {
		ms = 1
	}
	return ms, nil
}

// IncrMany adds deltas[i] to the counter under keys[i] (ttls[i] for one it
// creates) for every i, as Incr does each, in one round trip: on a
// standalone Redis one script, atomic as a whole; in a cluster, whose keys
// lie in different slots, one Incr script per key in a pipeline that sends
// each node its share at once, each atomic on its own. It returns the new
// values in order. On an error, some of the increments may have been made
// (those before a key that is not a counter, or those a node made before
// the connection failed), as an Incr that times out may have been.
func (r *Redis) IncrMany(ctx context.Context, keys []string, deltas []int64, ttls []time.Duration) ([]int64, error) {
	if len(deltas) != len(keys) || len(ttls) != len(keys) {
		return nil, fmt.Errorf("kvstore: incr of %d keys with %d deltas and %d TTLs", len(keys), len(deltas), len(ttls))
	}
	if len(keys) == 0 {
		return []int64{}, nil
	}
	rkeys := make([]string, len(keys))
	args := make([]any, 2*len(keys))
	for i, k := range keys {
		ms, err := ttlMS(ttls[i])
		if err != nil {
			return nil, err
		}
		rkeys[i] = r.Key(k)
		args[2*i], args[2*i+1] = strconv.FormatInt(deltas[i], 10), strconv.FormatInt(ms, 10)
	}
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	out := make([]int64, len(keys))
	if _, cluster := r.c.(*redis.ClusterClient); !cluster || len(keys) == 1 {
		var vals []int64
		var err error
		if len(keys) == 1 {
			var n int64
			n, err = incrScript.Run(ctx, r.c, rkeys, args...).Int64()
			vals = []int64{n}
		} else {
			vals, err = incrManyScript.Run(ctx, r.c, rkeys, args...).Int64Slice()
		}
		if err := r.done(ctx, "incr", keys[0], err); err != nil {
			return nil, err
		}
		if len(vals) != len(keys) {
			return nil, fmt.Errorf("kvstore: incr %q: %d values for %d keys", keys[0], len(vals), len(keys))
		}
		return vals, nil
	}
	// A cluster: one single-key script per key. EVALSHA in the pipeline; a
	// node that lacks the script (NOSCRIPT: restarted, or new) runs the
	// key again with Run, which loads it: a NOSCRIPT reply counted
	// nothing.
	cmds := make([]*redis.Cmd, len(keys))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range keys {
			cmds[i] = incrScript.EvalSha(ctx, p, rkeys[i:i+1], args[2*i:2*i+2]...)
		}
		return nil
	})
	if err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := r.done(ctx, "incr", keys[0], err); err != nil {
			return nil, err
		}
	}
	for i, c := range cmds {
		n, err := c.Int64()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			n, err = incrScript.Run(ctx, r.c, rkeys[i:i+1], args[2*i:2*i+2]...).Int64()
		}
		if err := r.done(ctx, "incr", keys[i], err); err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// Del removes key; removing a missing key is not an error.
func (r *Redis) Del(ctx context.Context, key string) error {
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	return r.done(ctx, "del", key, r.c.Del(ctx, r.Key(key)).Err())
}
