package main

import (
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/loadgen"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// BenchmarkMailWasm runs the mail hook, where every rule is checked, in the
// real filter host (the configuration parsed on every call, as in the
// server), for a client that breaks none: the runner keeps its
// transaction, so symbols added would pile up from call to call.
func BenchmarkMailWasm(b *testing.B) {
	tx := sdktest.Txn{ClientIP: "198.51.100.7", LocalIP: "192.0.2.30", Helo: "mail.client.test",
		RDNS: "mail.client.test", RDNSStatus: "confirmed", PTR: "mail.client.test", From: "a@client.test", Config: conf}
	r := sdktest.Wasm(b, ".", tx)
	for b.Loop() {
		if res := r.Run(pluginapi.HookMail); res.Verdict != pluginapi.Continue || len(res.Symbols) != 0 {
			b.Fatalf("verdict %v %s, symbols %v", res.Verdict, res.Reply(), res.Symbols)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkJudge is the rules alone, natively.
func BenchmarkJudge(b *testing.B) {
	cfg, err := parseConfig([]byte(`{"our_names": ["mx.example.test", "example.test"], "our_addresses": ["192.0.2.25/32"]}`))
	if err != nil {
		b.Fatal(err)
	}
	cl := client{helo: "[203.0.113.1]", rdnsStatus: "none"}
	cl.ip, cl.local = mustAddr("198.51.100.7"), mustAddr("192.0.2.30")
	for b.Loop() {
		if hits := judge(cfg, cl); len(hits) != 2 {
			b.Fatalf("hits %v", hits)
		}
	}
}

// loadClients are the clients of the load benchmarks: sluice-load's own
// (loopback) and a remote MTA with confirmed reverse DNS.
var loadClients = []string{"127.0.0.1", "198.51.100.7"}

// loadHooks are the hooks of this plugin one message of sluice-load
// reaches.
var loadHooks = []pluginapi.Hook{pluginapi.HookMail}

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
	return sdktest.WithExample(b, "../../examples/anti-abuse/plugins/helo.toml", tx)
}
