package helo

import (
	"testing"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkMailWasm runs the mail hook, where every rule is checked, in the
// real filter host (the configuration parsed on every call, as in the
// server), for a client that breaks none: the runner keeps its
// transaction, so symbols added would pile up from call to call.
func BenchmarkMailWasm(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "198.51.100.7", LocalIP: "192.0.2.30", Helo: "mail.client.test",
		RDNS: "mail.client.test", RDNSStatus: "confirmed", PTR: "mail.client.test", From: "a@client.test", Config: conf}
	r := sdktest.Wasm(b, ".", tx)
	for b.Loop() {
		if res := r.Run(pluginapi.HookMail); res.Verdict != pluginapi.Continue || len(res.Symbols) != 0 {
			b.Fatalf("verdict %v %s, symbols %v", res.Verdict, res.Reply(), res.Symbols)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkJudge is the rules alone, natively.
func BenchmarkJudge(b *testing.B) {
	cfg, err := parseConfig([]byte(`{"our_names": ["mx.example.test", "example.test"], "our_addresses": ["192.0.2.25/32"]}`))
	if err != nil {
		b.Fatal(err)
	}
	cl := client{helo: "[203.0.113.1]", rdnsStatus: "none"}
	cl.ip, cl.local = mustAddr("198.51.100.7"), mustAddr("192.0.2.30")
	for b.Loop() {
		if hits := judge(cfg, cl); len(hits) != 2 {
			b.Fatalf("hits %v", hits)
		}
	}
}

// loadBench is one message of make bench's load (core/loadgen's 10 KiB
// message, sluice-load's envelope) through the mail hook, as
// examples/anti-abuse configures the plugin.
var loadBench = sdktest.Load{Msg: loadgen.Message(loadgen.DefaultSize, sdktest.LoadFrom, sdktest.LoadRcpt, sdktest.LoadDate),
	Example: "../../examples/anti-abuse/plugins/helo.toml", Hooks: []pluginapi.Hook{pluginapi.HookMail},
}

// BenchmarkLoadWasm runs loadBench in the real filter host (wasm).
func BenchmarkLoadWasm(b *testing.B) { loadBench.Wasm(b) }

// BenchmarkLoadNative runs loadBench natively.
func BenchmarkLoadNative(b *testing.B) { loadBench.Native(b) }
