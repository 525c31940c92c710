package senderpolicy

import (
	"testing"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// benchHook runs one hook of an authenticated transaction through the real
// filter host, with the scenarios' configuration parsed on every call.
func benchHook(b *testing.B, hook pluginapi.Hook) {
	r := sdktest.Wasm(b, ".", sdktest.Txn{ClientIP: "192.0.2.1", AuthUser: "alice", Listener: "submission",
		From: "alice@example.test", Rcpt: "x@example.com", Message: msg("Alice <alice@example.test>"), Config: conf})
	for b.Loop() {
		if res := r.Run(hook); res.Verdict != pluginapi.Continue {
			b.Fatalf("verdict %v %s", res.Verdict, res.Reply())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

func BenchmarkMailWasm(b *testing.B) { benchHook(b, pluginapi.HookMail) }
func BenchmarkRcptWasm(b *testing.B) { benchHook(b, pluginapi.HookRcpt) }
func BenchmarkDataWasm(b *testing.B) { benchHook(b, pluginapi.HookData) }

// loadBench is one message of make bench's load (core/loadgen's 10 KiB
// message, sluice-load's envelope) through the mail, rcpt, data hooks, as
// examples/anti-abuse configures the plugin.
var loadBench = sdktest.Load{Msg: loadgen.Message(loadgen.DefaultSize, sdktest.LoadFrom, sdktest.LoadRcpt, sdktest.LoadDate),
	Example: "../../examples/anti-abuse/plugins/sender-policy.toml", Hooks: []pluginapi.Hook{pluginapi.HookMail, pluginapi.HookRcpt, pluginapi.HookData},
}

// BenchmarkLoadWasm runs loadBench in the real filter host (wasm).
func BenchmarkLoadWasm(b *testing.B) { loadBench.Wasm(b) }

// BenchmarkLoadNative runs loadBench natively.
func BenchmarkLoadNative(b *testing.B) { loadBench.Native(b) }
