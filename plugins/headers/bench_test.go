package main

import (
	"testing"
	"time"

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

// loadClients are the clients of the load benchmarks: sluice-load's own
// (loopback) and a remote MTA with confirmed reverse DNS.
var loadClients = []string{"127.0.0.1", "198.51.100.7"}

// loadHooks are the hooks of this plugin one message of sluice-load
// reaches.
var loadHooks = []pluginapi.Hook{pluginapi.HookData, pluginapi.HookDeliver}

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
	return sdktest.WithExample(b, "../../examples/anti-abuse/plugins/headers.toml", tx)
}
