package main

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

// loadClients are the clients of the load benchmarks: sluice-load's own
// (loopback) and a remote MTA with confirmed reverse DNS.
var loadClients = []string{"127.0.0.1", "198.51.100.7"}

// loadHooks are the hooks of this plugin one message of sluice-load
// reaches.
var loadHooks = []pluginapi.Hook{pluginapi.HookRcpt, pluginapi.HookData}

// BenchmarkLoadWasm runs the plugin's hooks for one message of the load
// make bench sends (core/loadgen's 10 KiB message, sluice-load's envelope)
// as examples/anti-abuse configures the plugin, in the real filter host
// (wasm).
func BenchmarkLoadWasm(b *testing.B) {
	benchLoad(b, func(tx sdktest.Txn) *sdktest.Runner { return sdktest.Wasm(b, ".", tx) })
}

// BenchmarkLoadNative is BenchmarkLoadWasm compiled natively: the
// difference is what running as WebAssembly costs.
func BenchmarkLoadNative(b *testing.B) {
	benchLoad(b, func(tx sdktest.Txn) *sdktest.Runner { return sdktest.Native(b, tx) })
}

func benchLoad(b *testing.B, run func(sdktest.Txn) *sdktest.Runner) {
	for _, client := range loadClients {
		b.Run(client, func(b *testing.B) {
			tx := loadTxn(b, client)
			if tx.ClientIP != "127.0.0.1" {
				// The triplet's first attempt, ten minutes ago: every message
				// below is a retry that passes (the steady state of a known
				// sender).
				tx.KV = sdktest.NewMemKV(nil)
				first := tx
				first.Now = tx.Now.Add(-10 * time.Minute)
				if res := run(first).Run(pluginapi.HookRcpt); res.Verdict != pluginapi.Tempfail {
					b.Fatalf("first attempt: verdict %v", res.Verdict)
				}
			}
			r := run(tx)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset()
				for _, h := range loadHooks {
					if res := r.Run(h); res.Verdict != pluginapi.Continue {
						b.Fatalf("%s: verdict %v %s", h, res.Verdict, res.Reply())
					}
				}
			}
		})
	}
}

// loadTxn is one message of sluice-load from client, as the server hands
// it to the plugins (its Received field added), with the configuration of
// examples/anti-abuse.
func loadTxn(b *testing.B, client string) sdktest.Txn {
	const to = "user@sink.test"
	date := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	msg := append([]byte("Received: from localhost (localhost [127.0.0.1])\r\n\tby mx1.hosting.example (Sluice) with ESMTP id Q1;\r\n\t"+
		date.Format(time.RFC1123Z)+"\r\n"), loadgen.Message(loadgen.DefaultSize, loadgen.DefaultFrom, to, date)...)
	tx := sdktest.Txn{ClientIP: client, Helo: "localhost", LocalIP: "127.0.0.1", From: loadgen.DefaultFrom, Rcpt: to,
		Rcpts: []string{to}, QueueID: "Q1", Message: msg, Destination: "sink.test", Attempt: 1, Now: date}
	if client != "127.0.0.1" {
		tx.Helo, tx.RDNS, tx.RDNSStatus, tx.PTR, tx.LocalIP = "mail.client.test", "mail.client.test", "confirmed", "mail.client.test", "192.0.2.25"
	}
	return sdktest.WithExample(b, "../../examples/anti-abuse/plugins/greylist.toml", tx)
}
