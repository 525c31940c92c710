package main

import (
	"testing"

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
