package filter

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

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

// BenchmarkHookLoop1M runs a guest loop of 1,000,000 iterations in one
// hook: each iteration passes one deadline check (and one tick every
// 16,384). BenchmarkHookLoop1MRaw runs the same module in wazero without
// the host's instrumentation; the difference over 1,000,000 is what one
// check costs.
func BenchmarkHookLoop1M(b *testing.B) { benchHook(b, pluginapi.HookDeliver, newTxn()) }

func BenchmarkHookLoop1MRaw(b *testing.B) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if err := instantiateHostModule(ctx, rt); err != nil {
		b.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, wasm(b, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	f := mod.ExportedFunction(pluginapi.ExportOnHook)
	var stack [1]uint64
	for b.Loop() {
		stack[0] = uint64(pluginapi.HookDeliver)
		if err := f.CallWithStack(ctx, stack[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBreaker is what the circuit breaker costs a call that
// succeeds: the check before it and the end of a probation after it.
func BenchmarkBreaker(b *testing.B) {
	br := &breaker{threshold: defaultBreakerFailures, cooldown: int64(defaultBreakerCooldown)}
	var now int64
	for b.Loop() {
		now++
		if ok, _ := br.allow(now); ok {
			br.succeeded()
		}
	}
}

// BenchmarkKVGet is a kv_get through the Env: with the call's deadline
// (a context that ends at it, as a hook has) and without (as the SDK's
// native test mode calls it).
func BenchmarkKVGet(b *testing.B) {
	kv := &fakeKV{m: map[string][]byte{"p/k": []byte("v")}}
	spec := &EnvSpec{Plugin: "p", Grants: []string{pluginapi.CapKV}, KV: kv}
	for _, tc := range []struct {
		name     string
		deadline time.Time
	}{{"deadline", time.Now().Add(time.Hour)}, {"none", time.Time{}}} {
		b.Run(tc.name, func(b *testing.B) {
			e := NewEnv(context.Background(), pluginapi.HookRcpt, newTxn(), spec)
			e.deadline = tc.deadline
			b.ReportAllocs()
			for b.Loop() {
				if _, st := e.KVGet("k"); st != pluginapi.StatusOK {
					b.Fatal(st)
				}
			}
		})
	}
}
