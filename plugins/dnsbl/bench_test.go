package main

import (
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkConnectWasm is the connect hook of the compiled plugin in the
// real filter host, two lists, the answers cached in the key-value store
// (the steady state for a returning client).
func BenchmarkConnectWasm(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "192.0.2.1", Config: testConfig(), Grants: []string{"dns", "kv"},
		Resolver: lists(), KV: sdktest.NewMemKV(nil)}
	r := sdktest.Wasm(b, ".", tx)
	r.Run(pluginapi.HookConnect)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := r.Run(pluginapi.HookConnect); res.Verdict != pluginapi.Continue {
			b.Fatalf("verdict %v", res.Verdict)
		}
	}
}

// BenchmarkConnectMailWasm is a whole connection's work: connect (cached
// answers) and MAIL FROM adding the scores.
func BenchmarkConnectMailWasm(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "192.0.2.1", From: "a@example.org", Config: testConfig(), Grants: []string{"dns", "kv"},
		Resolver: lists(), KV: sdktest.NewMemKV(nil)}
	r := sdktest.Wasm(b, ".", tx)
	r.Run(pluginapi.HookConnect)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Run(pluginapi.HookConnect)
		r.Run(pluginapi.HookMail)
	}
}

// loadClients are the clients of the load benchmarks: sluice-load's own
// (loopback) and a remote MTA with confirmed reverse DNS.
var loadClients = []string{"127.0.0.1", "198.51.100.7"}

// loadHooks are the hooks of this plugin one message of sluice-load
// reaches (dnsbl's connect hook included, once per message as with one connection per message).
var loadHooks = []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookMail}

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
	return sdktest.WithExample(b, "../../examples/anti-abuse/plugins/dnsbl.toml", tx)
}
