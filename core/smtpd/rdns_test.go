package smtpd

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/pluginapi"
)

// seenConn records what the plugins saw of the connection at each hook.
type seenConn struct {
	mu   sync.Mutex
	seen map[string]filter.Conn
}

func (s *seenConn) filters() *scriptedFilters {
	s.seen = map[string]filter.Conn{}
	return &scriptedFilters{act: func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		s.mu.Lock()
		s.seen[hook.String()] = *txn.Conn
		s.mu.Unlock()
		return filter.Result{}
	}}
}

func (s *seenConn) at(hook string) filter.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[hook]
}

// rdnsServer starts a server whose reverse DNS asks a dnstest server
// holding the zone of the loopback clients below, with the given budget,
// its resolver without a cache.
func rdnsServer(t *testing.T, budget time.Duration) (addr string, q *fakeQueue, seen *seenConn, srv *dnstest.Server) {
	t.Helper()
	return rdnsServerCache(t, budget, -1)
}

// rdnsServerCache is rdnsServer with a resolver cache of cacheSize
// answers (dns.Options.CacheSize).
func rdnsServerCache(t *testing.T, budget time.Duration, cacheSize int) (addr string, q *fakeQueue, seen *seenConn, srv *dnstest.Server) {
	t.Helper()
	srv = dnstest.Start(t, dnstest.Zone(
		// 127.0.0.1: confirmed.
		"1.0.0.127.in-addr.arpa. 300 IN PTR Client.Test.",
		"client.test. 300 IN A 127.0.0.1",
		// 127.0.0.2: no PTR. 127.0.0.3: a PTR that does not resolve back.
		"3.0.0.127.in-addr.arpa. 300 IN PTR forged.test.",
		"forged.test. 300 IN A 192.0.2.1",
		// 127.0.0.4: a PTR the server never answers (silence).
		"4.0.0.127.in-addr.arpa. 300 IN PTR slow.test.",
	))
	srv.SetDrop("4.0.0.127.in-addr.arpa.", true)
	r, err := dns.New(dns.Options{Servers: []string{srv.Addr}, Timeout: 10 * time.Second, CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	q = &fakeQueue{}
	seen = &seenConn{}
	opts := testOptions(q)
	opts.Filters = seen.filters()
	opts.Resolver = r
	opts.Listener.RDNSTimeout = config.Duration(budget)
	return startServer(t, opts), q, seen, srv
}

func TestReverseDNS(t *testing.T) {
	addr, q, seen, _ := rdnsServer(t, 2*time.Second)
	checkReverseDNS(t, addr, q, seen, 0)
}

// TestReverseDNSCached: with the resolver's cache, clients that connect
// again are answered from it at connect (no goroutine, no query) and
// named exactly as the first time.
func TestReverseDNSCached(t *testing.T) {
	addr, q, seen, srv := rdnsServerCache(t, 2*time.Second, 0)
	checkReverseDNS(t, addr, q, seen, 0)
	asked := srv.Queries()
	checkReverseDNS(t, addr, q, seen, 3)
	if n := srv.Queries() - asked; n != 0 {
		t.Errorf("%d DNS queries for clients whose answers are cached", n)
	}
}

// checkReverseDNS sends a message from each of three loopback clients and
// checks what the plugins, the Received header and the envelope say of
// its reverse DNS; queued is how many messages q held before.
func checkReverseDNS(t *testing.T, addr string, q *fakeQueue, seen *seenConn, queued int) {
	t.Helper()
	for i, tc := range []struct {
		client            string
		name, status, ptr string
		received          string
	}{
		{"127.0.0.1", "client.test", dns.ReverseConfirmed, "client.test", "(client.test [127.0.0.1])"},
		{"127.0.0.2", "", dns.ReverseNone, "", "(unknown [127.0.0.2])"},
		{"127.0.0.3", "", dns.ReverseUnconfirmed, "forged.test", "(unknown [127.0.0.3])"},
	} {
		rc := dialRaw(t, addr, tc.client)
		rc.greet()
		rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
		rc.expect(250)
		rc.expect(250)
		rc.expect(354)
		rc.send("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
		rc.expect(250)
		for _, hook := range []string{"connect", "helo", "mail", "rcpt", "data"} {
			c := seen.at(hook)
			if c.RDNS != tc.name || c.RDNSStatus != tc.status || c.PTR != tc.ptr {
				t.Errorf("%s at %s: plugins saw rdns %q, status %q, ptr %q; want %q, %q, %q",
					tc.client, hook, c.RDNS, c.RDNSStatus, c.PTR, tc.name, tc.status, tc.ptr)
			}
		}
		envs, bodies := q.got()
		i += queued
		if len(envs) != i+1 {
			t.Fatalf("%s: %d messages queued, want %d", tc.client, len(envs), i+1)
		}
		first, _, _ := strings.Cut(string(bodies[i]), "\r\n")
		if want := "Received: from client.example " + tc.received; first != want {
			t.Errorf("%s: first line %q, want %q", tc.client, first, want)
		}
		if envs[i].ClientRDNS != tc.name {
			t.Errorf("%s: envelope's ClientRDNS %q, want %q", tc.client, envs[i].ClientRDNS, tc.name)
		}
	}
}

// TestReverseDNSSlowResolver: a resolver that never answers delays
// neither the banner nor, past the budget, the session; the client is
// unknown.
func TestReverseDNSSlowResolver(t *testing.T) {
	const budget = 1500 * time.Millisecond
	addr, q, seen, srv := rdnsServer(t, budget)
	start := time.Now()
	rc := dialRaw(t, addr, "127.0.0.4")
	rc.expect(220)
	if d := time.Since(start); d > budget/3 {
		t.Errorf("banner after %v; the %v reverse DNS budget must not delay it", d, budget)
	}
	rc.send("EHLO client.example\r\n")
	rc.expect(250)
	if d := time.Since(start); d > budget+time.Second {
		t.Errorf("EHLO answered after %v; the reverse DNS budget is %v", d, budget)
	}
	rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	rc.expect(250)
	if c := seen.at("helo"); c.RDNS != "" || c.RDNSStatus != dns.ReverseTempFail || c.PTR != "" {
		t.Errorf("plugins saw rdns %q, status %q, ptr %q; want none, tempfail", c.RDNS, c.RDNSStatus, c.PTR)
	}
	_, bodies := q.got()
	if len(bodies) != 1 || !strings.HasPrefix(string(bodies[0]), "Received: from client.example (unknown [127.0.0.4])\r\n") {
		t.Errorf("queued %q", bodies)
	}
	if srv.Queries() == 0 {
		t.Error("the resolver was never asked")
	}
}
