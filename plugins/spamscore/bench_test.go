package spamscore

import (
	"testing"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkData scores a multipart message with an HTML alternative, a
// URL and a PDF attachment in the real filter host (wasm).
func BenchmarkData(b *testing.B) {
	body := "--m\nContent-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/plain\n\nSee https://example.org/agenda and https://bit.ly/x\n" +
		"--a\nContent-Type: text/html\n\n<p>See <a href=\"https://example.org/agenda\">agenda</a></p>\n--a--\n" +
		"--m\nContent-Type: application/pdf; name=report.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--m--\n"
	tx := sdktest.Txn{ClientIP: "192.0.2.1", From: "alice@example.org", Rcpts: []string{"bob@example.com"},
		Message: msg([]string{"Content-Type: multipart/mixed; boundary=m"}, body),
		Config:  map[string]any{"local_domains": []any{"example.com"}}}
	r := sdktest.Wasm(b, ".", tx)
	r.Txn().Conn.AuthResults = "mx.test; spf=pass; dkim=pass; dmarc=pass"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Txn().Symbols, r.Txn().Score = nil, 0
		if res := r.Run(pluginapi.HookData); res.Verdict != pluginapi.Continue || len(res.Symbols) != 1 {
			b.Fatalf("verdict %v, symbols %v", res.Verdict, res.Symbols)
		}
	}
}

// loadBench is one message of make bench's load (core/loadgen's 10 KiB
// message, sluice-load's envelope) through the data hook, as
// examples/anti-abuse configures the plugin.
var loadBench = sdktest.Load{Msg: loadgen.Message(loadgen.DefaultSize, sdktest.LoadFrom, sdktest.LoadRcpt, sdktest.LoadDate),
	Example: "../../examples/anti-abuse/plugins/spamscore.toml", Hooks: []pluginapi.Hook{pluginapi.HookData},
}

// BenchmarkLoadWasm runs loadBench in the real filter host (wasm).
func BenchmarkLoadWasm(b *testing.B) { loadBench.Wasm(b) }

// BenchmarkLoadNative runs loadBench natively.
func BenchmarkLoadNative(b *testing.B) { loadBench.Native(b) }
