package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-mta/sluice/core/tlsconf"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/kvstore"
	"github.com/sluice-mta/sluice/core/metrics"
)

// newKV opens the node's own Badger KV database (data_dir/kv), moving
// into it the records an earlier version kept in the queue's database,
// and the shared state's store as [kv] says: that database, or a Redis
// shared with other nodes. The plugins' KV and the AUTH throttle both use
// the shared store; the MTA-STS policy cache always uses the node's own.
func (s *Server) newKV(ctx context.Context) error {
	local, err := kvstore.Open(filepath.Join(s.cfg.DataDir, "kv"), s.log)
	if err != nil {
		return fmt.Errorf("[kv]: %w", err)
	}
	s.kvLocal = local
	n, err := kvstore.Migrate(ctx, s.queue.DB(), local)
	if err != nil {
		return fmt.Errorf("[kv]: moving the plugins' KV out of the queue's database: %w", err)
	}
	if n > 0 {
		s.log.Info("kv: moved the plugins' KV records from the queue's database to its own", "records", n, "dir", filepath.Join(s.cfg.DataDir, "kv"))
	}
	k := s.cfg.KV
	if k.Backend != config.KVRedis {
		s.kv = local
		return nil
	}
	opts := kvstore.RedisOptions{
		Addrs:    k.Redis,
		Cluster:  k.Cluster,
		Username: k.Username,
		Prefix:   k.Prefix,
		Timeout:  k.Timeout.D(),
		Logger:   s.log,
	}
	if k.PasswordFile != "" {
		data, err := os.ReadFile(s.cfg.Path(k.PasswordFile))
		if err != nil {
			return fmt.Errorf("kv.password_file: %w", err)
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		opts.Password = string(bytes.TrimRight(line, "\r"))
	}
	if k.TLS {
		host, _, _ := net.SplitHostPort(k.Redis[0])
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if k.TLSCAFile != "" {
			pool, err := tlsconf.CAPool(s.cfg.Path(k.TLSCAFile))
			if err != nil {
				return fmt.Errorf("kv.tls_ca_file: %w", err)
			}
			opts.TLS.RootCAs = pool
		}
	}
	if s.cfg.Metrics.Enabled && s.metrics != nil {
		opts.Observer = metrics.NewKVObserver(s.metrics)
	}
	r, err := kvstore.NewRedis(opts)
	if err != nil {
		return fmt.Errorf("[kv]: %w", err)
	}
	s.kvClose = r.Close
	s.kv = outage{r, filter.ErrKVUnavailable}
	if k.OnError == config.KVFailClosed {
		s.kv = outage{r, filter.ErrAbortHook}
	}
	// Say at start whether Redis answers; the store recovers by itself
	// when it comes later.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := r.Get(ctx, "\x00ping"); err != nil {
		s.log.Warn("kv: redis does not answer at start; shared state unavailable until it does", "redis", k.Redis, "on_error", k.OnError, "err", err)
	} else {
		s.log.Info("kv: shared state in redis", "redis", k.Redis, "cluster", k.Cluster, "on_error", k.OnError)
	}
	return nil
}

// outage is a store whose outage errors carry mark: filter.ErrAbortHook
// for on_error = "fail_closed" (the calling hook is aborted), or
// filter.ErrKVUnavailable for "fail_open" (callers go on without logging
// each call: the store logs the outage).
type outage struct {
	filter.KV
	mark error
}

func (o outage) wrap(err error) error {
	if errors.Is(err, kvstore.ErrUnavailable) {
		return fmt.Errorf("%w: %w", o.mark, err)
	}
	return err
}

func (o outage) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := o.KV.Get(ctx, key)
	return v, ok, o.wrap(err)
}

func (o outage) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	vs, err := o.KV.GetMany(ctx, keys)
	return vs, o.wrap(err)
}

func (o outage) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return o.wrap(o.KV.Set(ctx, key, value, ttl))
}

func (o outage) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	n, err := o.KV.Incr(ctx, key, delta, ttl)
	return n, o.wrap(err)
}

func (o outage) IncrMany(ctx context.Context, keys []string, deltas []int64, ttls []time.Duration) ([]int64, error) {
	ns, err := o.KV.IncrMany(ctx, keys, deltas, ttls)
	return ns, o.wrap(err)
}

func (o outage) Del(ctx context.Context, key string) error {
	return o.wrap(o.KV.Del(ctx, key))
}
