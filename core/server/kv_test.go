package server_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/internal/testca"
	"github.com/sluice-mta/sluice/core/kvstore/redistest"
	"github.com/sluice-mta/sluice/core/servertest"
)

// redisAuthNode runs a submission node like authThrottleServer's, its
// shared state in the Redis at redis.
func redisAuthNode(t *testing.T, redis, onError string, adjust ...func(*config.Config)) string {
	t.Helper()
	_, addr := redisAuthServer(t, redis, onError, adjust...)
	return addr
}

// redisAuthServer is redisAuthNode with the server too, for its log.
func redisAuthServer(t *testing.T, redis, onError string, adjust ...func(*config.Config)) (*servertest.Server, string) {
	t.Helper()
	shared := func(cfg *config.Config) {
		cfg.KV = config.KV{Backend: config.KVRedis, Redis: []string{redis}, Prefix: "auth2:",
			Timeout: config.Duration(time.Second), OnError: onError}
	}
	return authThrottleServer(t, append([]func(*config.Config){shared}, adjust...)...)
}

// TestAuthThrottleTwoNodes: a brute force against alice split across two
// nodes sharing a Redis is throttled as one: the per-login limit of 3 is
// reached with failures on both, blocks her on the other node too, and the
// per-user limit adds up failures from two addresses on two nodes.
func TestAuthThrottleTwoNodes(t *testing.T) {
	rd := redistest.StartT(t)
	nodes := []string{redisAuthNode(t, rd.Addr, config.KVFailOpen), redisAuthNode(t, rd.Addr, config.KVFailOpen)}
	steps := []struct {
		node                 int
		from, user, password string
		want                 int
	}{
		{0, "127.0.0.5", "alice@localhost", "guess1", 535},
		{1, "127.0.0.5", "alice@localhost", "guess2", 535},
		{0, "127.0.0.5", "alice@localhost", "guess3", 421}, // the third, over both nodes
		{1, "127.0.0.5", "alice@localhost", "alice-pw", 421},
		{1, "127.0.0.5", "bob@localhost", "bob-pw", 235},
		{1, "127.0.0.6", "alice@localhost", "guess4", 535},
		{0, "127.0.0.6", "alice@localhost", "guess5", 421}, // her fifth on any node
		{1, "127.0.0.7", "alice@localhost", "alice-pw", 421},
		{0, "127.0.0.7", "bob@localhost", "bob-pw", 235},
	}
	for i, st := range steps {
		if got := login(t, nodes[st.node], st.from, st.user, st.password); got != st.want {
			t.Fatalf("step %d: node %d, %s from %s with %q: %d, want %d", i+1, st.node, st.user, st.from, st.password, got, st.want)
		}
	}
}

// TestNodeID: a configured node_id is in the Received: header's comment,
// on the log lines and in sluice_node_info.
func TestNodeID(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.Auth = config.Auth{}
	cfg.NodeID = "mx2"
	s := servertest.Start(t, cfg)
	servertest.MustSend(t, s.Addr, "someone@example.net", []string{"alice@localhost"},
		servertest.Message("someone@example.net", "alice@localhost", "node", "hi\r\n"))
	files := servertest.WaitFiles(t, s.Mailbox("alice", "localhost"), 1, 10*time.Second)
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "by localhost (Sluice node mx2) with ESMTP id ") {
		t.Errorf("no node in the Received: header:\n%s", data)
	}
	if values, text := scrape(t, cfg); values[`sluice_node_info{node="mx2"}`] != 1 {
		t.Errorf("no sluice_node_info{node=\"mx2\"} 1 in:\n%s", text)
	}
	tagged := false
	for _, l := range s.Logs() {
		if strings.Contains(l, "msg=delivered") || strings.Contains(l, "msg=queued") {
			tagged = tagged || strings.Contains(l, " node=mx2")
		}
	}
	if !tagged {
		t.Errorf("no queued/delivered line with node=mx2 in:\n%s", strings.Join(s.Logs(), "\n"))
	}
}

// TestAuthThrottleRedisDown: with the throttle's Redis killed, fail_open
// lets a right password in (not throttled) and fail_closed answers 454;
// with Redis back, both log in again without a restart.
func TestAuthThrottleRedisDown(t *testing.T) {
	if !redistest.Available() {
		t.Skip("redis-server not installed (scripts/install-test-deps.sh)")
	}
	for _, tc := range []struct {
		onError  string
		downCode int
	}{
		{config.KVFailOpen, 235},
		{config.KVFailClosed, 454},
	} {
		t.Run(tc.onError, func(t *testing.T) {
			rd, err := redistest.Start(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rd.Stop)
			srv, addr := redisAuthServer(t, rd.Addr, tc.onError)
			if got := login(t, addr, "127.0.0.5", "alice@localhost", "alice-pw"); got != 235 {
				t.Fatalf("login with Redis up: %d, want 235", got)
			}
			rd.Stop()
			for range 3 {
				if got := login(t, addr, "127.0.0.5", "alice@localhost", "alice-pw"); got != tc.downCode {
					t.Fatalf("login with Redis down: %d, want %d", got, tc.downCode)
				}
			}
			if tc.onError == config.KVFailOpen {
				if got := login(t, addr, "127.0.0.5", "alice@localhost", "wrong"); got != 535 {
					t.Fatalf("a wrong password with Redis down: %d, want 535", got)
				}
				// The outage is logged once, by the store; the throttle's
				// calls that fail during it say so at debug level only.
				down := 0
				for _, l := range srv.Logs() {
					if strings.Contains(l, "kv: redis unreachable") {
						down++
					}
					if strings.Contains(l, "auth throttle: store failed") && !strings.Contains(l, "level=DEBUG") {
						t.Errorf("a per-login line during the outage: %s", l)
					}
				}
				if down != 1 {
					t.Errorf("%d 'kv: redis unreachable' lines; want 1", down)
				}
			}
			if err := rd.Start(); err != nil {
				t.Fatal(err)
			}
			// The first call may find a connection Redis's restart broke.
			deadline := time.Now().Add(5 * time.Second)
			for got := 0; got != 235; {
				if got = login(t, addr, "127.0.0.5", "alice@localhost", "alice-pw"); got != 235 && time.Now().After(deadline) {
					t.Fatalf("login with Redis back: %d, want 235", got)
				}
			}
		})
	}
}

// TestKVPasswordFile: [kv] username and password_file log in to a Redis
// with an ACL user; a wrong password is an unreachable store (fail_closed:
// 454).
func TestKVPasswordFile(t *testing.T) {
	rd := redistest.StartT(t, "--user", "default", "off", "--user", "sluice", "on", ">s3cret", "~*", "+@all")
	for _, tc := range []struct {
		password string
		want     int
	}{
		{"s3cret\n", 235},
		{"wrong\n", 454},
	} {
		pw := t.TempDir() + "/redis.pw"
		if err := os.WriteFile(pw, []byte(tc.password), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := redisAuthNode(t, rd.Addr, config.KVFailClosed, func(c *config.Config) {
			c.KV.Username, c.KV.PasswordFile = "sluice", pw
		})
		if got := login(t, addr, "127.0.0.5", "alice@localhost", "alice-pw"); got != tc.want {
			t.Errorf("password %q: login %d, want %d", tc.password, got, tc.want)
		}
	}
}

// TestKVOverTLS: with [kv] tls and tls_ca_file naming the private CA that
// signed Redis's certificate, two nodes share the AUTH throttle over TLS;
// a node trusting another CA does not talk to that Redis at all: it says
// so at start and, failing closed, answers logins 454.
func TestKVOverTLS(t *testing.T) {
	if !redistest.Available() {
		t.Skip("redis-server not installed (scripts/install-test-deps.sh)")
	}
	ca := testca.New(t, "redis test CA")
	dir := t.TempDir()
	cert, key := ca.Issue(t, []string{"127.0.0.1"}, time.Time{}, time.Time{}).WriteFiles(t, dir)
	rd, err := redistest.StartTLS(dir, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rd.Stop)
	trusting := func(caFile string) func(*config.Config) {
		return func(c *config.Config) { c.KV.TLS, c.KV.TLSCAFile = true, caFile }
	}
	caFile := ca.WriteCA(t, t.TempDir())
	nodes := []string{
		redisAuthNode(t, rd.Addr, config.KVFailClosed, trusting(caFile)),
		redisAuthNode(t, rd.Addr, config.KVFailClosed, trusting(caFile)),
	}
	throttledAcrossNodes(t, nodes)

	other := testca.New(t, "another CA").WriteCA(t, t.TempDir())
	srv, addr := redisAuthServer(t, rd.Addr, config.KVFailClosed, trusting(other))
	if got := login(t, addr, "127.0.0.6", "bob@localhost", "bob-pw"); got != 454 {
		t.Fatalf("login through a node that does not trust Redis's certificate: %d, want 454", got)
	}
	said := false
	for _, l := range srv.Logs() {
		said = said || strings.Contains(l, "kv: redis does not answer at start") && strings.Contains(l, "certificate signed by unknown authority")
	}
	if !said {
		t.Error("the node that does not trust Redis's certificate did not say so, with the reason, at start")
	}
}

// throttledAcrossNodes: alice's third failed login, the first and third
// on nodes[0] and the second on nodes[1], blocks her on both, her right
// password too.
func throttledAcrossNodes(t *testing.T, nodes []string) {
	t.Helper()
	for i, st := range []struct {
		node     int
		password string
		want     int
	}{
		{0, "guess1", 535},
		{1, "guess2", 535},
		{0, "guess3", 421}, // the third failure, counted over both nodes
		{1, "alice-pw", 421},
	} {
		if got := login(t, nodes[st.node], "127.0.0.5", "alice@localhost", st.password); got != st.want {
			t.Fatalf("step %d: node %d with %q: %d, want %d", i+1, st.node, st.password, got, st.want)
		}
	}
}

// TestKVUnixSocket: two nodes given [kv] redis = ["unix:/path"] share the
// AUTH throttle through the socket of a Redis that listens on no TCP port.
func TestKVUnixSocket(t *testing.T) {
	rd := redistest.StartUnixT(t, "--port", "0")
	nodes := []string{
		redisAuthNode(t, "unix:"+rd.Socket, config.KVFailClosed),
		redisAuthNode(t, "unix:"+rd.Socket, config.KVFailClosed),
	}
	throttledAcrossNodes(t, nodes)
}
