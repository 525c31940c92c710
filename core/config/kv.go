package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/tlsconf"
)

// KV chooses where the shared state lives: the plugins' key-value store
// (rate-limit windows, greylist triplets, DNSBL answers) and the AUTH
// failure throttle. "badger" keeps it in this node's queue database;
// "redis" shares it between every node pointed at the same Redis, so that a
// limit holds across them.
type KV struct {
	// Backend is "badger" (the default: one node needs nothing else) or
	// "redis".
	Backend string `toml:"backend"`
	// Redis lists "host:port" addresses: one for a standalone server,
	// several (seeds) with Cluster for a Redis Cluster. A standalone
	// server on this host may be "unix:/path", its Unix domain socket.
	Redis []string `toml:"redis"`
	// Cluster talks the Redis Cluster protocol.
	Cluster bool `toml:"cluster"`
	// Username is the ACL user ("" for the default user).
	Username string `toml:"username"`
	// PasswordFile holds the password on its first line (path template
	// with {data_dir}; "" for none).
	PasswordFile string `toml:"password_file"`
	// TLS connects to Redis over TLS, checking its certificate against the
	// system roots.
	TLS bool `toml:"tls"`
	// TLSCAFile, with TLS, is a PEM file of the CAs that sign Redis's
	// certificate, instead of the system roots (path template with
	// {data_dir}; "" for the system roots).
	TLSCAFile string `toml:"tls_ca_file"`
	// Prefix comes before every key, then the plugin's namespace.
	Prefix string `toml:"prefix"`
	// Timeout bounds each operation; it also counts against the calling
	// hook's deadline, whichever ends first.
	Timeout Duration `toml:"timeout"`
	// OnError is what a Redis error does: "fail_open" (the call returns a
	// temporary-failure status and the plugin decides; first-party
	// plugins let mail through) or "fail_closed" (the hook fails as a
	// plugin failure, so its failure_policy applies).
	OnError string `toml:"on_error"`
}

// Redis backend choices.
const (
	KVBadger = "badger"
	KVRedis  = "redis"

	KVFailOpen   = "fail_open"
	KVFailClosed = "fail_closed"
)

// nodeID checks node_id: a short name of letters, digits, '.', '-', '_'.
func (ck *checker) nodeID(id string) {
	if len(id) > 64 {
		ck.bad("node_id", "is %d characters long; keep it to 64 or fewer, like \"mx2\"", len(id))
		return
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			ck.bad("node_id", "%q has %q; use letters, digits, '.', '-' and '_', like \"mx2\"", id, r)
			return
		}
	}
}

// kv checks [kv].
func (ck *checker) kv(c *Config) {
	ck.nodeID(c.NodeID)
	k := &c.KV
	switch k.Backend {
	case KVBadger:
		return
	case KVRedis:
	default:
		ck.bad("kv.backend", `%q: must be "badger" (this node's queue database) or "redis" (shared between nodes)`, k.Backend)
		return
	}
	switch {
	case len(k.Redis) == 0:
		ck.bad("kv.redis", `is empty but kv.backend is "redis"; list the server, like ["127.0.0.1:6379"]`)
	case len(k.Redis) > 1 && !k.Cluster:
		ck.bad("kv.redis", "lists %d addresses but kv.cluster is false; list one standalone server, or set cluster = true for a Redis Cluster", len(k.Redis))
	}
	for i, a := range k.Redis {
		key := fmt.Sprintf("kv.redis[%d]", i)
		if path, ok := strings.CutPrefix(a, "unix:"); ok {
			switch {
			case !strings.HasPrefix(path, "/"):
				ck.bad(key, `socket %q: the path must be absolute, like "unix:/run/redis/redis.sock"`, a)
			case k.Cluster:
				ck.bad(key, "%q is a Unix domain socket but kv.cluster is true; a Redis Cluster's nodes are reached over TCP: list them as host:port", a)
			case k.TLS:
				ck.bad(key, "%q is a Unix domain socket but kv.tls is true; Redis speaks TLS on TCP ports only: drop tls, or list its TLS port as host:port", a)
			}
			continue
		}
		if why := checkHostPort(a); why != "" {
			ck.bad(key, `bad address %q: %s; write it like "127.0.0.1:6379" or "unix:/run/redis/redis.sock"`, a, why)
		}
	}
	if k.PasswordFile != "" {
		if fi, err := os.Stat(c.Path(k.PasswordFile)); err != nil {
			ck.bad("kv.password_file", "%v", err)
		} else if fi.IsDir() {
			ck.bad("kv.password_file", "%q is a directory; name the file holding the password", k.PasswordFile)
		}
	}
	if k.TLSCAFile != "" {
		if !k.TLS {
			ck.bad("kv.tls_ca_file", "is set but kv.tls is false; set tls = true to connect to Redis over TLS")
		} else if _, err := tlsconf.CAPool(c.Path(k.TLSCAFile)); err != nil {
			ck.bad("kv.tls_ca_file", "%v", err)
		}
	}
	if strings.ContainsAny(k.Prefix, "{}") {
		ck.bad("kv.prefix", "%q has a brace: Sluice puts each key's hash tag in braces itself", k.Prefix)
	}
	ck.duration("kv.timeout", k.Timeout)
	if k.Timeout.D() > 10*time.Second {
		ck.bad("kv.timeout", "%v is longer than any hook should wait; a few tens of milliseconds, like \"50ms\", suit a Redis on the local network", k.Timeout.D())
	}
	switch k.OnError {
	case KVFailOpen, KVFailClosed:
	default:
		ck.bad("kv.on_error", `%q: must be "fail_open" (the plugin gets an error and decides) or "fail_closed" (the hook fails, its failure_policy applies)`, k.OnError)
	}
}
