package ratelimit

import (
	"testing"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// loadBench is one message of make bench's load (core/loadgen's 10 KiB
// message, sluice-load's envelope) through the MAIL, RCPT and DATA hooks,
// with the limits of examples/anti-abuse raised to a billion as
// scripts/bench.sh raises them: the same keys and windows, so every
// message makes all its store operations, and nothing is refused.
var loadBench = sdktest.Load{Msg: loadgen.Message(loadgen.DefaultSize, sdktest.LoadFrom, sdktest.LoadRcpt, sdktest.LoadDate),
	Example: "../../examples/anti-abuse/plugins/ratelimit.toml",
	Hooks:   []pluginapi.Hook{pluginapi.HookMail, pluginapi.HookRcpt, pluginapi.HookData},
	Prime: func(b *testing.B, _ func(sdktest.Txn) *sdktest.Runner, tx sdktest.Txn) sdktest.Txn {
		ls, _ := tx.Config["limits"].([]any)
		for _, l := range ls {
			m, _ := l.(map[string]any)
			for _, k := range []string{"messages", "recipients"} {
				if _, ok := m[k]; ok {
					m[k] = int64(1_000_000_000)
				}
			}
		}
		if len(ls) == 0 {
			b.Fatal("the example configures no limits")
		}
		return tx
	},
}

// BenchmarkLoadWasm runs loadBench in the real filter host (wasm).
func BenchmarkLoadWasm(b *testing.B) { loadBench.Wasm(b) }

// BenchmarkLoadNative runs loadBench natively.
func BenchmarkLoadNative(b *testing.B) { loadBench.Native(b) }
