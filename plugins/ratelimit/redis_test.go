package ratelimit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/kvstore/redistest"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/testclock"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// redisNode starts one Sluice node with the plugin under toml and its
// shared state in the Redis at addr, under prefix.
func redisNode(t *testing.T, addr, prefix, onError, toml string, now *testclock.Clock) *servertest.Server {
	t.Helper()
	return kvNode(t, config.KV{Backend: config.KVRedis, Redis: []string{addr}, Prefix: prefix,
		Timeout: config.Duration(time.Second), OnError: onError}, toml, now)
}

// kvNode starts one Sluice node with the plugin under toml and [kv] kv.
func kvNode(t *testing.T, kv config.KV, toml string, now *testclock.Clock) *servertest.Server {
	t.Helper()
	cfg := servertest.Config(t)
	cfg.LocalDomains = []string{"localhost", "example.test"}
	cfg.Auth.SPF, cfg.Auth.DKIMVerify, cfg.Auth.DMARC = false, false, false
	cfg.KV = kv
	servertest.Install(t, cfg, "ratelimit", sdktest.Build(t, "."), toml)
	return servertest.Start(t, cfg, server.WithPluginClock(now.Now))
}

// senderLimit is the plugin's file: a generous timeout, so that a call
// slowed by the test's own load is not a plugin failure (which would let
// the message through uncounted under "continue").
const senderLimit = `grants = ["kv", "metrics"]
timeout = "5s"
failure_policy = "%s"
[config]
limits = [{key = "sender", window = "1m", messages = %d}]
`

// TestTwoNodesOneLimit: two nodes sharing a Redis enforce one limit of N
// messages a minute per sender: clients racing on both nodes at once get
// exactly N accepted in total, and the next is refused on either node.
func TestTwoNodesOneLimit(t *testing.T) {
	rd := redistest.StartT(t)
	twoNodesOneLimit(t, config.KV{Backend: config.KVRedis, Redis: []string{rd.Addr}, Prefix: "two:",
		Timeout: config.Duration(time.Second), OnError: config.KVFailOpen})
}

// TestTwoNodesOneLimitCluster: the same on a three-master Redis Cluster.
func TestTwoNodesOneLimitCluster(t *testing.T) {
	if testing.Short() || !redistest.Available() {
		t.Skip("needs redis-server; slow")
	}
	c, err := redistest.StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	twoNodesOneLimit(t, config.KV{Backend: config.KVRedis, Redis: c.Addrs, Cluster: true, Prefix: "two:",
		Timeout: config.Duration(time.Second), OnError: config.KVFailOpen})
}

func twoNodesOneLimit(t *testing.T, kv config.KV) {
	const n = 5
	now := testclock.New(t0)
	toml := fmt.Sprintf(senderLimit, "continue", n)
	nodes := []*servertest.Server{kvNode(t, kv, toml, now), kvNode(t, kv, toml, now)}
	if nodes[0].Addr == nodes[1].Addr {
		t.Fatal("both nodes on one address")
	}
	const tries = 16
	var mu sync.Mutex
	accepted, refused := 0, 0
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			err := sendAs(addr, "", "spammer@remote.test", []string{"alice@localhost"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case servertest.Code(err) == 451 && strings.Contains(err.Error(), "Rate limit exceeded for sender"):
				refused++
			default:
				t.Errorf("send: %v", err)
			}
		}(nodes[i%2].Addr)
	}
	wg.Wait()
	if accepted != n || refused != tries-n {
		t.Fatalf("accepted %d, refused %d across two nodes; want %d and %d", accepted, refused, n, tries-n)
	}
	for i, nd := range nodes {
		for _, l := range nd.Logs() {
			if strings.Contains(l, "plugin failed") || strings.Contains(l, "not limiting") {
				t.Errorf("node %d: %s", i, l)
			}
		}
		if err := sendAs(nd.Addr, "", "spammer@remote.test", []string{"alice@localhost"}); servertest.Code(err) != 451 {
			t.Errorf("node %d after the limit: %v; want 451", i, err)
		}
	}
	// Another sender has its own count, on either node.
	if err := sendAs(nodes[1].Addr, "", "someone@remote.test", []string{"alice@localhost"}); err != nil {
		t.Errorf("another sender: %v", err)
	}
}

// TestRedisOutage: with Redis killed mid-run, fail_open keeps accepting
// (the limit is not enforced; logged and counted) and fail_closed answers
// 451 (the client keeps the message); with Redis back, both enforce the
// limit again without a restart.
func TestRedisOutage(t *testing.T) {
	for _, tc := range []struct {
		onError, policy string
		// downCode is the answer while Redis is down: 0 accepted.
		downCode int
	}{
		{config.KVFailOpen, "continue", 0},
		{config.KVFailClosed, "tempfail", 451},
	} {
		t.Run(tc.onError, func(t *testing.T) {
			rd := redistest.StartT(t)
			now := testclock.New(t0)
			nd := redisNode(t, rd.Addr, "outage:", tc.onError, fmt.Sprintf(senderLimit, tc.policy, 2), now)
			send := func() error {
				return sendAs(nd.Addr, "", "bulk@remote.test", []string{"alice@localhost"})
			}
			for i := range 2 {
				if err := send(); err != nil {
					t.Fatalf("message %d: %v", i+1, err)
				}
			}
			if err := send(); servertest.Code(err) != 451 {
				t.Fatalf("third message: %v; want 451", err)
			}
			rd.Stop()
			for i := range 3 {
				err := send()
				if got := servertest.Code(err); got != tc.downCode {
					t.Fatalf("message %d with Redis down: %v; want code %d", i+1, err, tc.downCode)
				}
			}
			if line := metric(t, nd.Config.Admin.Socket, "sluice_kv_up"); !strings.HasSuffix(line, " 0") {
				t.Errorf("metric %q; want sluice_kv_up 0", line)
			}
			if line := metric(t, nd.Config.Admin.Socket, `sluice_kv_errors_total{op="get"}`); line == "" || strings.HasSuffix(line, " 0") {
				t.Errorf("metric %q; want get errors counted", line)
			}
			downLines := 0
			for _, l := range nd.Logs() {
				if strings.Contains(l, "kv: redis unreachable") {
					downLines++
				}
			}
			if downLines != 1 {
				t.Errorf("%d 'redis unreachable' lines for several failing calls; want 1", downLines)
			}
			// The plugin says it is not limiting at debug level only: the
			// outage is the host's to report, once, not every call's.
			for _, l := range nd.Logs() {
				if strings.Contains(l, "not limiting") && !strings.Contains(l, "level=DEBUG") {
					t.Errorf("a per-call line during the outage: %s", l)
				}
			}
			if err := rd.Start(); err != nil {
				t.Fatal(err)
			}
			// The restarted Redis kept nothing (no persistence): a fresh
			// window of two, then the limit again.
			for i := range 2 {
				if err := send(); err != nil {
					t.Fatalf("message %d after Redis came back: %v", i+1, err)
				}
			}
			if err := send(); servertest.Code(err) != 451 {
				t.Fatalf("over the limit after Redis came back: %v; want 451", err)
			}
			if line := metric(t, nd.Config.Admin.Socket, "sluice_kv_up"); !strings.HasSuffix(line, " 1") {
				t.Errorf("metric %q; want sluice_kv_up 1", line)
			}
		})
	}
}
