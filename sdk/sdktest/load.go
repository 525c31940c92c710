package sdktest

import (
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
)

// The envelope of make bench's load (sluice-load's defaults, the
// recipient scripts/bench.sh relays to a sink) and the scenario's clock.
const (
	LoadFrom = "loadgen@sluice-load.invalid"
	LoadRcpt = "user@sink.test"
)

// LoadDate is the date of the load's message and the plugins' clock.
var LoadDate = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// LoadClients are the clients a load benchmark runs for: sluice-load's
// own (loopback, which the example configurations of dnsbl, helo and
// greylist skip) and a remote MTA with confirmed reverse DNS.
var LoadClients = []string{"127.0.0.1", "198.51.100.7"}

// LoadTxn is one message of make bench's load from client as the server
// hands it to the plugins: msg (core/loadgen's message, which the caller
// builds, since this package may not import the load generator) with the
// server's Received field added, sluice-load's envelope, and the [config]
// and grants of the NAME.toml at example (see WithExample).
func LoadTxn(t testing.TB, client string, msg []byte, example string) Txn {
	t.Helper()
	received := "Received: from localhost (localhost [127.0.0.1])\r\n\tby mx1.hosting.example (Sluice) with ESMTP id Q1;\r\n\t" +
		LoadDate.Format(time.RFC1123Z) + "\r\n"
	tx := Txn{ClientIP: client, Helo: "localhost", LocalIP: "127.0.0.1", From: LoadFrom, Rcpt: LoadRcpt,
		Rcpts: []string{LoadRcpt}, QueueID: "Q1", Message: append([]byte(received), msg...),
		Destination: "sink.test", Attempt: 1, Now: LoadDate}
	if client != "127.0.0.1" {
		tx.Helo, tx.RDNS, tx.RDNSStatus, tx.PTR, tx.LocalIP = "mail.client.test", "mail.client.test", "confirmed", "mail.client.test", "192.0.2.25"
	}
	return WithExample(t, example, tx)
}

// Load is a load benchmark: one message of make bench's load per
// iteration through a plugin's hooks, as sub-benchmarks per LoadClients.
type Load struct {
	// Msg is the load's message (core/loadgen.Message) and Example the
	// plugin's NAME.toml (see LoadTxn).
	Msg     []byte
	Example string
	// Hooks are the plugin's hooks a message reaches, in order; each must
	// continue.
	Hooks []pluginapi.Hook
	// Prime, when set, prepares a client's scenario before the runner is
	// made (a greylisting triplet's first attempt, say) and returns it.
	Prime func(b *testing.B, run func(Txn) *Runner, tx Txn) Txn
}

// Run runs the benchmark with the runners run makes (Wasm or Native): each
// iteration starts a fresh transaction (Runner.Reset) and runs the hooks.
func (l Load) Run(b *testing.B, run func(Txn) *Runner) {
	for _, client := range LoadClients {
		b.Run(client, func(b *testing.B) {
			tx := LoadTxn(b, client, l.Msg, l.Example)
			if l.Prime != nil {
				tx = l.Prime(b, run, tx)
			}
			r := run(tx)
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				r.Reset()
				for _, h := range l.Hooks {
					if res := r.Run(h); res.Verdict != pluginapi.Continue {
						b.Fatalf("%s: verdict %v %s", h, res.Verdict, res.Reply())
					}
				}
			}
			// The process's CPU time a message (host, guest, harness and
			// garbage collector): unlike ns/op, it does not grow while
			// the benchmark waits for a core other jobs hold.
			if cpu := processCPU() - cpu0; cpu > 0 && b.N > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// processCPU is the process's user and system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Wasm runs the benchmark on the plugin package in the working directory
// built for wasip1, in the real filter host.
func (l Load) Wasm(b *testing.B) { l.Run(b, func(tx Txn) *Runner { return Wasm(b, ".", tx) }) }

// Native runs the benchmark on the handlers of the package under test,
// natively: the difference from Wasm is what running as WebAssembly costs.
func (l Load) Native(b *testing.B) { l.Run(b, func(tx Txn) *Runner { return Native(b, tx) }) }
