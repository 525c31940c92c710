package greylist

import (
	"strings"
	"testing"
	"time"

	sluiceconf "github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/kvstore/redistest"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/testclock"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestTwoNodesOneGreylist: two nodes sharing a Redis ([kv] backend =
// "redis") greylist as one: a triplet deferred on one node and retried
// after the delay on the other passes there, and one retried too early on
// the other is still deferred.
func TestTwoNodesOneGreylist(t *testing.T) {
	rd := redistest.StartT(t)
	toml, err := sdktest.PluginTOML(map[string]any{
		"delay": "5m", "expiry": "36h", "whitelist_after": "36d",
		"skip_networks": []any{}, "spf_pass_domains": []any{},
	}, []string{"kv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.New(time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC))
	wasm := sdktest.Build(t, ".")
	var nodes []string
	for range 2 {
		cfg := servertest.Config(t)
		cfg.TrustedNetworks = nil
		cfg.Auth.SPF, cfg.Auth.DKIMVerify, cfg.Auth.DMARC = false, false, false
		cfg.KV = sluiceconf.KV{Backend: sluiceconf.KVRedis, Redis: []string{rd.Addr}, Prefix: "grey:",
			Timeout: sluiceconf.Duration(time.Second), OnError: sluiceconf.KVFailOpen}
		servertest.Install(t, cfg, "greylist", wasm, string(toml))
		nodes = append(nodes, servertest.Start(t, cfg, server.WithPluginClock(clk.Now)).Addr)
	}
	send := func(node int, from string) error {
		_, err := servertest.Send(nodes[node], from, []string{"alice@localhost"}, servertest.Message(from, "alice@localhost", "greylist test", "hi\r\n"))
		return err
	}
	expect := func(step string, err error, reply string) {
		t.Helper()
		switch {
		case reply == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", step, err)
		case reply != "" && (!isGreylisted(err) || !strings.Contains(err.Error(), reply)):
			t.Errorf("%s: %v, want 451 4.7.1 %q", step, err, reply)
		}
	}
	expect("first attempt on node 0", send(0, "x@sender.example"), "try again in 300 seconds")
	clk.Add(4 * time.Minute)
	expect("early retry on node 1", send(1, "x@sender.example"), "try again in 60 seconds")
	expect("a new triplet on node 1", send(1, "y@other.example"), "try again in 300 seconds")
	clk.Add(time.Minute)
	expect("retry after the delay on node 1", send(1, "x@sender.example"), "")
}
