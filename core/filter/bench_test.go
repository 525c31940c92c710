package filter

import (
	"bytes"
	"context"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// benchHost loads testdata/bench.wat as the only plugin.
func benchHost(b *testing.B) *Host {
	dir := b.TempDir()
	install(b, dir, "bench", "bench", "")
	h, _ := newHost(b, dir, Options{})
	return h
}

func benchHook(b *testing.B, hook pluginapi.Hook, txn *Txn) {
	h := benchHost(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := h.Run(ctx, hook, txn); r.Verdict != pluginapi.Continue {
			b.Fatalf("Run = %+v", r)
		}
	}
}

// BenchmarkHookEmpty is the whole per-hook overhead: chain, pool, deadline
// arming, the call into wasm and back.
func BenchmarkHookEmpty(b *testing.B) { benchHook(b, pluginapi.HookConnect, newTxn()) }

// BenchmarkHookRcpt adds one host call copying the recipient into the guest.
func BenchmarkHookRcpt(b *testing.B) {
	txn := newTxn()
	txn.Rcpt = "someone.with.a.long.name@sub.example.org"
	benchHook(b, pluginapi.HookRcpt, txn)
}

// BenchmarkHookBody64K has the guest read a 64 KiB body in 16 KiB chunks.
func BenchmarkHookBody64K(b *testing.B) {
	txn := newTxn()
	hdr, _ := mail.ParseHeader([]byte("Subject: x\r\n\r\n"))
	txn.Header = &hdr
	txn.Body = bytes.Repeat([]byte("0123456789abcdef"), 4096)
	b.SetBytes(int64(len(txn.Body)))
	benchHook(b, pluginapi.HookData, txn)
}

// BenchmarkHookEmptyParallel runs the empty hook from every P at once.
func BenchmarkHookEmptyParallel(b *testing.B) {
	h := benchHost(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		txn := newTxn()
		for pb.Next() {
			h.Run(context.Background(), pluginapi.HookConnect, txn)
		}
	})
}
