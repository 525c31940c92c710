package ratelimit

import (
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkRcptWasm is one RCPT hook call through the real filter host:
// three limits, each one counter increment and six bucket reads.
func BenchmarkRcptWasm(b *testing.B) {
	benchRcpt(b, func(tx sdktest.Txn) *sdktest.Runner { return sdktest.Wasm(b, ".", tx) })
}

// benchRcpt runs the RCPT hook with three limits in the runner run makes.
func benchRcpt(b *testing.B, run func(sdktest.Txn) *sdktest.Runner) {
	cfg := limitsConf(
		map[string]any{"key": "user", "window": "1h", "messages": 100, "recipients": 1 << 40},
		map[string]any{"key": "ip", "window": "1m", "recipients": 1 << 40},
		map[string]any{"key": "sender_domain", "window": "1d", "recipients": 1 << 40},
	)
	r := run(sdktest.Txn{ClientIP: "192.0.2.1", AuthUser: "alice", From: "alice@example.test",
		Rcpt: "bob@example.com", Config: cfg, Grants: grants, Now: t0})
	b.ResetTimer()
	for b.Loop() {
		if res := r.Run(pluginapi.HookRcpt); res.Verdict != pluginapi.Continue {
			b.Fatalf("verdict %v %s", res.Verdict, res.Reply())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkMailWasm is one MAIL hook call (reads only).
func BenchmarkMailWasm(b *testing.B) {
	cfg := limitsConf(map[string]any{"key": "user", "window": "1h", "messages": 100, "recipients": 500})
	r := sdktest.Wasm(b, ".", sdktest.Txn{ClientIP: "192.0.2.1", AuthUser: "alice", From: "alice@example.test",
		Config: cfg, Grants: grants, Now: t0})
	for b.Loop() {
		if res := r.Run(pluginapi.HookMail); res.Verdict != pluginapi.Continue {
			b.Fatalf("verdict %v %s", res.Verdict, res.Reply())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkRcptNative is BenchmarkRcptWasm's call compiled natively: the
// difference is what running as WebAssembly costs.
func BenchmarkRcptNative(b *testing.B) {
	benchRcpt(b, func(tx sdktest.Txn) *sdktest.Runner { return sdktest.Native(b, tx) })
}
