package sdk

import (
	"bytes"
	"errors"
	"sync"
)

// ConfigCache decodes a plugin's configuration once per instance instead
// of on every hook call: decoding JSON is most of a typical hook's guest
// time. A plugin's configuration is fixed for the life of its instances (a
// changed NAME.toml loads new ones), but a native test process runs many
// configurations, so Get compares the configuration's JSON with the one it
// decoded and decodes again when it differs; in a wasm instance, where it
// cannot differ, Get makes no host call once it has decoded it. Declare one
// per plugin:
//
//	var cfgCache = sdk.ConfigCache[*config]{Load: func(c *sdk.Ctx) (*config, error) { return loadConfig(c, false) }}
//
// and call cfgCache.Get(c) in each hook.
type ConfigCache[T any] struct {
	// Load decodes and checks the configuration.
	Load func(c *Ctx) (T, error)

	mu  sync.Mutex
	raw []byte
	val T
	ok  bool
}

// Get returns the decoded configuration, calling Load only when there is
// none yet or the configuration's JSON changed. Load's errors are not kept:
// the next call tries again.
func (cc *ConfigCache[T]) Get(c *Ctx) (T, error) {
	if configFixed && cc.ok {
		// A wasm instance has one thread and a fixed configuration: no
		// lock (a lock and a deferred unlock are function calls that Go's
		// wasm port makes dear, some 2 % of a guest's time).
		return cc.val, nil
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if configFixed && cc.ok {
		return cc.val, nil
	}
	raw, err := c.ConfigJSON("")
	if err != nil && !errors.Is(err, ErrNotFound) {
		var zero T
		return zero, err
	}
	if cc.ok && bytes.Equal(raw, cc.raw) {
		return cc.val, nil
	}
	v, err := cc.Load(c)
	if err != nil {
		return v, err
	}
	// Load made host calls: raw may have been overwritten, so read it
	// again for the copy kept.
	raw, _ = c.ConfigJSON("")
	cc.raw, cc.val, cc.ok = append(cc.raw[:0], raw...), v, true
	return v, nil
}
