package dnsbl

import (
	"strings"
	"testing"
	"time"

	sluiceconf "github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/kvstore/redistest"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestTwoNodesOneCache: two nodes sharing a Redis ([kv] backend = "redis")
// share the plugin's cache of DNSBL answers: the list is asked once, by the
// node the client reached first, and the other node refuses the same
// client from the cached answer without asking again. The DNS answers have
// TTL 0, so no host-side DNS cache stands in for the plugin's.
func TestTwoNodesOneCache(t *testing.T) {
	rd := redistest.StartT(t)
	dns := dnstest.Start(t, dnstest.Zone("1.0.0.127.block.example. 0 IN A 127.0.0.4"))
	dns.SetNegativeTTL(0)
	toml, err := sdktest.PluginTOML(map[string]any{
		"skip_networks": []any{},
		"zones":         []any{map[string]any{"zone": "block.example", "score": 1.0, "codes": map[string]any{"127.0.0.4": "reject"}}},
	}, []string{"dns", "kv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wasm := sdktest.Build(t, ".")
	var nodes []string
	for range 2 {
		cfg := servertest.Config(t)
		cfg.TrustedNetworks = nil
		cfg.DNS.Servers = []string{dns.Addr}
		cfg.KV = sluiceconf.KV{Backend: sluiceconf.KVRedis, Redis: []string{rd.Addr}, Prefix: "dnsbl:",
			Timeout: sluiceconf.Duration(time.Second), OnError: sluiceconf.KVFailOpen}
		servertest.Install(t, cfg, "dnsbl", wasm, string(toml))
		nodes = append(nodes, servertest.Start(t, cfg).Addr)
	}
	dns.Reset()
	for i, node := range []int{0, 1, 1, 0} {
		msg := servertest.Message("x@sender.example", "alice@localhost", "dnsbl", "hi\r\n")
		_, err := servertest.Send(nodes[node], "x@sender.example", []string{"alice@localhost"}, msg)
		if servertest.Code(err) != 554 || !strings.Contains(err.Error(), "blocked using block.example") {
			t.Fatalf("message %d on node %d: %v, want 554 naming block.example", i+1, node, err)
		}
		if n := zoneQueries(dns, "block.example"); n != 1 {
			t.Fatalf("after message %d on node %d: %d queries to block.example (%v), want 1 for both nodes", i+1, node, n, dns.Log())
		}
	}
}
