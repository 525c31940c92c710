package filter

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/metrics"
	"github.com/sluice-mta/sluice/pluginapi"
)

// BenchmarkHookGoGuest is the per-hook overhead with a guest built by the
// Go toolchain and the SDK (scripts/benchplugin, the quiet plugin of make
// bench) instead of a hand-written WAT guest: what an SDK plugin costs per
// hook, host and guest together. Each hook reads what the server's session
// would give it (connect parses the client's address); data adds a header
// (to a fresh header each time).
func BenchmarkHookGoGuest(b *testing.B) {
	bin := buildGoPlugin(b, "./scripts/benchplugin")
	dir := b.TempDir()
	writeAtomic(b, filepath.Join(dir, "quiet.wasm"), bin)
	h, logs := newHost(b, dir, Options{})
	if _, ok := pluginNamed(h, "quiet"); !ok {
		b.Fatalf("scripts/benchplugin did not load:\n%s", logs)
	}
	ctx := context.Background()
	for _, hook := range []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookRcpt, pluginapi.HookData} {
		b.Run(hook.String(), func(b *testing.B) {
			txn := benchTxn()
			hdr, body := mail.ParseHeader([]byte("Subject: x\r\n\r\nbody\r\n"))
			var hh mail.Header
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				hh = hdr // edits replace hh.Fields, never hdr's
				txn.Header, txn.Body = &hh, body
				if r := h.Run(ctx, hook, txn); r.Verdict != pluginapi.Continue {
					b.Fatalf("Run = %+v", r)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkMessageGoGuest6 is one message through six copies of
// scripts/benchplugin, the sluice-6quiet run of make bench in a test: a
// session's connect and helo, then mail, rcpt and data, and the deliver
// stage of the queued message, with the metrics registry as the Observer
// as in the server. Per message: 36 hook calls. /parallel sends messages
// from every P at once, as a loaded server does.
func BenchmarkMessageGoGuest6(b *testing.B) {
	h := sixQuiet(b)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			benchMessage(b, h)
		}
		reportCPU(b, cpu0)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				benchMessage(b, h)
			}
		})
		reportCPU(b, cpu0)
	})
}

// sixQuiet loads scripts/benchplugin six times, as 10-a … 60-f, with the
// metrics registry as the Observer.
func sixQuiet(b *testing.B) *Host {
	bin := buildGoPlugin(b, "./scripts/benchplugin")
	dir := b.TempDir()
	for _, n := range []string{"10-a", "20-b", "30-c", "40-d", "50-e", "60-f"} {
		writeAtomic(b, filepath.Join(dir, n+".wasm"), bin)
	}
	h, logs := newHost(b, dir, Options{Observer: metricsObserver{metrics.New(metrics.Options{})}})
	if len(h.Plugins()) != 6 {
		b.Fatalf("%d plugins loaded, want 6:\n%s", len(h.Plugins()), logs)
	}
	return h
}

var benchMsg = []byte("Subject: x\r\nFrom: a@example.com\r\n\r\nbody\r\n")

// benchMessage runs one message's stages through h as the server does,
// with a context like its sessions' (core/smtpd: the server's, cancellable,
// carrying the session ID for log lines).
func benchMessage(b *testing.B, h *Host) {
	srv, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := logctx.With(srv, slog.String("session", "bench"))
	conn := &Conn{Listener: "smtp", ClientIP: netip.MustParseAddr("192.0.2.1"), ClientPort: 40000,
		LocalIP: netip.MustParseAddr("192.0.2.2"), RDNSStatus: "none"}
	s := NewSession(h, conn, Spam{})
	s.Connect(ctx)
	s.Helo(ctx, "client.example")
	s.Mail(ctx, "a@example.com")
	got, _ := s.Rcpt(ctx, nil, mail.Recipient{Addr: "b@example.org"})
	env := &mail.Envelope{ID: "q1", From: "a@example.com", Rcpts: got}
	hdr, body := mail.ParseHeader(benchMsg)
	if o := s.Data(ctx, env, &hdr, body); o.Reply != nil || len(hdr.Fields) != 8 {
		b.Fatalf("data: %+v, %d fields", o, len(hdr.Fields))
	}
	queued := &mail.Message{Envelope: mail.Envelope{ID: "q1", From: "a@example.com", Helo: "client.example",
		ClientIP: "192.0.2.1", Rcpts: []mail.Recipient{{Addr: "b@example.org"}}}, Body: benchMsg}
	if out, o := Deliver(ctx, h, queued, "example.org", []string{"b@example.org"}); out == nil {
		b.Fatalf("deliver: %+v", o)
	}
}

// reportCPU adds the process's CPU time per operation since cpu0 to the
// benchmark's results (cpu-ns/op): on a machine shared with other work it
// moves less than the wall time.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu := processCPU() - cpu0; cpu > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}
}

// benchTxn is a transaction as the server's session fills it.
func benchTxn() *Txn {
	t := newTxn()
	t.Conn.ClientIP, t.Conn.ClientPort = netip.MustParseAddr("192.0.2.1"), 40000
	return t
}
