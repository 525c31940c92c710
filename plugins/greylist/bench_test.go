package greylist

import (
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkRcptWasm is the rcpt hook of the compiled plugin in the real
// filter host for a client that is not whitelisted: one triplet read and
// written per call (each call is a first attempt or an early retry).
func BenchmarkRcptWasm(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "192.0.2.10", From: "a@sender.example", Grants: []string{"kv"}, KV: sdktest.NewMemKV(nil)}
	r := sdktest.Wasm(b, ".", tx)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := r.Run(pluginapi.HookRcpt); res.Verdict != pluginapi.Tempfail {
			b.Fatalf("verdict %v", res.Verdict)
		}
	}
}

// BenchmarkRcptWhitelistedWasm is the rcpt hook for a whitelisted
// network: one read.
func BenchmarkRcptWhitelistedWasm(b *testing.B) {
	kv := sdktest.NewMemKV(nil)
	tx := sdktest.Txn{ClientIP: "192.0.2.10", From: "a@sender.example", Grants: []string{"kv"}, KV: kv}
	if err := kv.Set(b.Context(), "greylist/w:192.0.2.0/24", []byte("99999999999"), 0); err != nil {
		b.Fatal(err)
	}
	r := sdktest.Wasm(b, ".", tx)
	if res := r.Run(pluginapi.HookRcpt); res.Verdict != pluginapi.Continue {
		b.Fatalf("whitelisted: verdict %v (key namespace?)", res.Verdict)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Run(pluginapi.HookRcpt)
	}
}

// loadBench is one message of make bench's load (core/loadgen's 10 KiB
// message, sluice-load's envelope) through the rcpt, data hooks, as
// examples/anti-abuse configures the plugin.
var loadBench = sdktest.Load{Msg: loadgen.Message(loadgen.DefaultSize, sdktest.LoadFrom, sdktest.LoadRcpt, sdktest.LoadDate),
	Example: "../../examples/anti-abuse/plugins/greylist.toml", Hooks: []pluginapi.Hook{pluginapi.HookRcpt, pluginapi.HookData},
	// A remote client's triplet was first tried ten minutes ago: every
	// message is a retry that passes (the steady state of a known sender).
	Prime: func(b *testing.B, run func(sdktest.Txn) *sdktest.Runner, tx sdktest.Txn) sdktest.Txn {
		if tx.ClientIP == "127.0.0.1" {
			return tx
		}
		tx.KV = sdktest.NewMemKV(nil)
		first := tx
		first.Now = tx.Now.Add(-10 * time.Minute)
		if res := run(first).Run(pluginapi.HookRcpt); res.Verdict != pluginapi.Tempfail {
			b.Fatalf("first attempt: verdict %v", res.Verdict)
		}
		return tx
	},
}

// BenchmarkLoadWasm runs loadBench in the real filter host (wasm).
func BenchmarkLoadWasm(b *testing.B) { loadBench.Wasm(b) }

// BenchmarkLoadNative runs loadBench natively.
func BenchmarkLoadNative(b *testing.B) { loadBench.Native(b) }
