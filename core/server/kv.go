package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/kvstore"
	"github.com/sluice-mta/sluice/core/metrics"
)

// newKV opens the shared state's store as [kv] says: the queue's Badger
// database, or a Redis shared with other nodes. The plugins' KV and the
// AUTH throttle both use it.
func (s *Server) newKV() error {
	k := s.cfg.KV
	if k.Backend != config.KVRedis {
		s.kv = kvstore.New(s.queue.DB())
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
	}
	if s.cfg.Metrics.Enabled && s.metrics != nil {
		opts.Observer = metrics.NewKVObserver(s.metrics)
	}
	r, err := kvstore.NewRedis(opts)
	if err != nil {
		return fmt.Errorf("[kv]: %w", err)
	}
	s.kvClose = r.Close
	s.kv = r
	if k.OnError == config.KVFailClosed {
		s.kv = failClosed{r}
	}
	// Say at start whether Redis answers; the store recovers by itself
	// when it comes later.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := r.Get(ctx, "\x00ping"); err != nil {
		s.log.Warn("kv: redis does not answer at start; shared state unavailable until it does", "redis", k.Redis, "on_error", k.OnError)
	} else {
		s.log.Info("kv: shared state in redis", "redis", k.Redis, "cluster", k.Cluster, "on_error", k.OnError)
	}
	return nil
}

// failClosed is a store whose outage errors abort the calling hook
// (filter.ErrAbortHook), for on_error = "fail_closed".
type failClosed struct{ filter.KV }

func abortOn(err error) error {
	if errors.Is(err, kvstore.ErrUnavailable) {
		return fmt.Errorf("%w: %w", filter.ErrAbortHook, err)
	}
	return err
}

func (f failClosed) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := f.KV.Get(ctx, key)
	return v, ok, abortOn(err)
}

func (f failClosed) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return abortOn(f.KV.Set(ctx, key, value, ttl))
}

func (f failClosed) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	n, err := f.KV.Incr(ctx, key, delta, ttl)
	return n, abortOn(err)
}

func (f failClosed) Del(ctx context.Context, key string) error {
	return abortOn(f.KV.Del(ctx, key))
}
