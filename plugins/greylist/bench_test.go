package main

import (
	"testing"

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
