package filter

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// BenchmarkHookGoGuest is the per-hook overhead with a guest built by the
// Go toolchain and the SDK (scripts/benchplugin, the quiet plugin of make
// bench) instead of a hand-written WAT guest: what an SDK plugin costs per
// hook, host and guest together. connect reads one property; data adds a
// header (to a fresh header each time).
func BenchmarkHookGoGuest(b *testing.B) {
	bin := buildGoPlugin(b, "./scripts/benchplugin")
	dir := b.TempDir()
	writeAtomic(b, filepath.Join(dir, "quiet.wasm"), bin)
	h, logs := newHost(b, dir, Options{})
	if _, ok := pluginNamed(h, "quiet"); !ok {
		b.Fatalf("scripts/benchplugin did not load:\n%s", logs)
	}
	ctx := context.Background()
	for _, hook := range []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookData} {
		b.Run(hook.String(), func(b *testing.B) {
			txn := newTxn()
			hdr, body := mail.ParseHeader([]byte("Subject: x\r\n\r\nbody\r\n"))
			var hh mail.Header
			b.ReportAllocs()
			for b.Loop() {
				hh = hdr // edits replace hh.Fields, never hdr's
				txn.Header, txn.Body = &hh, body
				if r := h.Run(ctx, hook, txn); r.Verdict != pluginapi.Continue {
					b.Fatalf("Run = %+v", r)
				}
			}
		})
	}
}
