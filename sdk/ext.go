package sdk

import (
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
)

// LookupA returns the IPv4 addresses of name; needs the "dns" grant. A name
// with no answers returns an empty list and no error.
func (c *Ctx) LookupA(name string) ([]string, error) { return c.lookup(pluginapi.DNSA, name) }

// LookupAAAA returns the IPv6 addresses of name; needs the "dns" grant.
func (c *Ctx) LookupAAAA(name string) ([]string, error) { return c.lookup(pluginapi.DNSAAAA, name) }

// LookupMX returns the MX records of name as "pref host"; needs the "dns" grant.
func (c *Ctx) LookupMX(name string) ([]string, error) { return c.lookup(pluginapi.DNSMX, name) }

// LookupTXT returns the TXT records of name, each record's strings joined;
// needs the "dns" grant.
func (c *Ctx) LookupTXT(name string) ([]string, error) { return c.lookup(pluginapi.DNSTXT, name) }

// LookupPTR returns the PTR names of an address (give the IP, e.g.
// "192.0.2.1", or the in-addr.arpa name); needs the "dns" grant.
func (c *Ctx) LookupPTR(name string) ([]string, error) { return c.lookup(pluginapi.DNSPTR, name) }

func (c *Ctx) lookup(qtype int32, name string) ([]string, error) {
	b, st := c.host.DNSLookup(qtype, name)
	switch st {
	case pluginapi.StatusOK:
		return lines(string(b)), nil
	case pluginapi.StatusNotFound:
		return nil, nil
	}
	return nil, st
}

// KVGet reads a key of the plugin's persistent store; needs the "kv" grant.
// ok is false when the key does not exist (or expired).
func (c *Ctx) KVGet(key string) (value []byte, ok bool, err error) {
	b, st := c.host.KVGet(key)
	switch st {
	case pluginapi.StatusOK:
		return append([]byte(nil), b...), true, nil
	case pluginapi.StatusNotFound:
		return nil, false, nil
	}
	return nil, false, st
}

// KVGetMany reads several keys of the plugin's store in one host call —
// one round trip to a shared store such as Redis, where a KVGet per key
// costs one each: the value of each key in order, nil for a missing or
// expired one. At most pluginapi.MaxKVGetMany keys, none containing a
// newline; needs "kv".
func (c *Ctx) KVGetMany(keys ...string) ([][]byte, error) {
	vs, st := c.host.KVGetMany(keys)
	if st != pluginapi.StatusOK {
		return nil, st
	}
	n := 0
	for _, v := range vs {
		n += len(v)
	}
	// One allocation for every value: the host's slices may alias a
	// buffer its next call reuses.
	all := make([]byte, 0, n)
	out := make([][]byte, len(vs))
	for i, v := range vs {
		if v != nil {
			all = append(all, v...)
			out[i] = all[len(all)-len(v) : len(all) : len(all)]
		}
	}
	return out, nil
}

// KVGetManyFunc reads keys as KVGetMany does and hands fn each key's
// value in order (nil for a missing or expired key) without copying it:
// v is valid only during fn's call. A plugin that parses the values at
// once (counters, say) saves KVGetMany's copies; needs "kv".
func (c *Ctx) KVGetManyFunc(keys []string, fn func(i int, v []byte)) error {
	vs, st := c.host.KVGetMany(keys)
	if st != pluginapi.StatusOK {
		return st
	}
	for i, v := range vs {
		fn(i, v)
	}
	return nil
}

// ttlMS is ttl in the ABI's milliseconds: a positive ttl under one
// millisecond is one, not 0, which would mean "never expires".
func ttlMS(ttl time.Duration) int64 {
	if ttl > 0 && ttl < time.Millisecond {
		return 1
	}
	return ttl.Milliseconds()
}

// KVSet writes a key that expires after ttl (0: never); needs "kv".
func (c *Ctx) KVSet(key string, value []byte, ttl time.Duration) error {
	return statusErr(c.host.KVSet(key, value, ttlMS(ttl)))
}

// KVIncr atomically adds delta to a counter (a missing key counts from 0)
// with time to live ttl (0: none) and returns the new value; needs "kv".
func (c *Ctx) KVIncr(key string, delta int64, ttl time.Duration) (int64, error) {
	n, st := c.host.KVIncr(key, delta, ttlMS(ttl))
	return n, statusErr(st)
}

// KVIncrOp is one counter of KVIncrMany: Delta is added to the counter
// Key (a missing key counts from 0 and takes TTL, 0: none; an existing one
// keeps its expiry), and N receives its new value.
type KVIncrOp struct {
	Key   string
	Delta int64
	TTL   time.Duration
	N     int64
}

// incrArgs is KVIncrMany's keys and arguments, kept from call to call in
// a wasm instance (InstanceCache), which runs one call at a time.
var incrArgs struct {
	keys []string
	args []int64
}

// KVIncrMany makes every increment of ops in one host call — one round
// trip to a shared store such as Redis, where a KVIncr per counter costs
// one each — and sets each op's N. Each increment is atomic as KVIncr's
// is. On an error no N is set, and some of the increments may have been
// made (as a KVIncr that times out may have been). At most
// pluginapi.MaxKVIncrMany ops, no key containing a newline; needs "kv".
func (c *Ctx) KVIncrMany(ops []KVIncrOp) error {
	var keys []string
	var args []int64
	if InstanceCache {
		keys, args = incrArgs.keys[:0], incrArgs.args[:0]
	}
	for i := range ops {
		keys = append(keys, ops[i].Key)
		args = append(args, ops[i].Delta, ttlMS(ops[i].TTL))
	}
	if InstanceCache {
		incrArgs.keys, incrArgs.args = keys, args
	}
	ns, st := c.host.KVIncrMany(keys, args)
	if InstanceCache {
		clear(incrArgs.keys) // no key kept alive past its call
	}
	if st != pluginapi.StatusOK {
		return st
	}
	for i := range ops {
		ops[i].N = ns[i]
	}
	return nil
}

// KVDel deletes a key; needs "kv".
func (c *Ctx) KVDel(key string) error { return statusErr(c.host.KVDel(key)) }
