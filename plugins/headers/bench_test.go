package headers

import (
	"testing"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkData runs the example configuration's data stage on an
// authenticated submission in the real filter host (wasm).
func BenchmarkData(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "203.0.113.9", AuthUser: "alice", From: "alice@example.com", Rcpts: []string{"bob@example.org"},
		Message: []byte(message), Config: map[string]any{"strip_received_for_auth": true, "customer_ids": map[string]any{"alice": "C-1001"},
			"subject_tag": "[SPAM]", "subject_tag_score": 5.0, "remove": []any{"X-Mailer"},
			"rewrite": []any{map[string]any{"name": "Subject", "match": `(?i)quarterly`, "replace": "Q3"}}}}
	r := sdktest.Wasm(b, ".", tx)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := r.Run(pluginapi.HookData); res.Verdict != pluginapi.Continue {
			b.Fatalf("verdict %v", res.Verdict)
		}
	}
}

// BenchmarkDeliver tags the subject of a scored message (wasm).
func BenchmarkDeliver(b *testing.B) {
	tx := sdktest.Txn{From: "a@example.org", Rcpts: []string{"b@example.com"}, Destination: "example.com", Attempt: 1,
		Message: []byte("X-Spam-Status: Yes, score=6.5 symbols=X(6.5)\nFrom: <a@example.org>\nSubject: Win\n\nbody\n"),
		Config:  map[string]any{"subject_tag": "[SPAM]", "subject_tag_score": 5.0}}
	r := sdktest.Wasm(b, ".", tx)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := r.Run(pluginapi.HookDeliver); res.Verdict != pluginapi.Continue {
			b.Fatalf("verdict %v", res.Verdict)
		}
	}
}

// loadBench is one message of make bench's load (core/loadgen's 10 KiB
// message, sluice-load's envelope) through the data, deliver hooks, as
// examples/anti-abuse configures the plugin.
var loadBench = sdktest.Load{Msg: loadgen.Message(loadgen.DefaultSize, sdktest.LoadFrom, sdktest.LoadRcpt, sdktest.LoadDate),
	Example: "../../examples/anti-abuse/plugins/headers.toml", Hooks: []pluginapi.Hook{pluginapi.HookData, pluginapi.HookDeliver},
}

// BenchmarkLoadWasm runs loadBench in the real filter host (wasm).
func BenchmarkLoadWasm(b *testing.B) { loadBench.Wasm(b) }

// BenchmarkLoadNative runs loadBench natively.
func BenchmarkLoadNative(b *testing.B) { loadBench.Native(b) }
