package dnsbl

import (
	"testing"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkConnectWasm is the connect hook of the compiled plugin in the
// real filter host, two lists, the answers cached in the key-value store
// (the steady state for a returning client).
func BenchmarkConnectWasm(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "192.0.2.1", Config: testConfig(), Grants: []string{"dns", "kv"},
		Resolver: lists(), KV: sdktest.NewMemKV(nil)}
	r := sdktest.Wasm(b, ".", tx)
	r.Run(pluginapi.HookConnect)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := r.Run(pluginapi.HookConnect); res.Verdict != pluginapi.Continue {
			b.Fatalf("verdict %v", res.Verdict)
		}
	}
}

// BenchmarkConnectMailWasm is a whole connection's work: connect (cached
// answers) and MAIL FROM adding the scores.
func BenchmarkConnectMailWasm(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "192.0.2.1", From: "a@example.org", Config: testConfig(), Grants: []string{"dns", "kv"},
		Resolver: lists(), KV: sdktest.NewMemKV(nil)}
	r := sdktest.Wasm(b, ".", tx)
	r.Run(pluginapi.HookConnect)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Run(pluginapi.HookConnect)
		r.Run(pluginapi.HookMail)
	}
}

// loadBench is one message of make bench's load (core/loadgen's 10 KiB
// message, sluice-load's envelope) through the connect, mail hooks, as
// examples/anti-abuse configures the plugin.
var loadBench = sdktest.Load{Msg: loadgen.Message(loadgen.DefaultSize, sdktest.LoadFrom, sdktest.LoadRcpt, sdktest.LoadDate),
	Example: "../../examples/anti-abuse/plugins/dnsbl.toml", Hooks: []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookMail},
}

// BenchmarkLoadWasm runs loadBench in the real filter host (wasm).
func BenchmarkLoadWasm(b *testing.B) { loadBench.Wasm(b) }

// BenchmarkLoadNative runs loadBench natively.
func BenchmarkLoadNative(b *testing.B) { loadBench.Native(b) }
