package filter

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// TestSharedRuntime: plugins loaded from the same module bytes with the
// same memory ceiling share one runtime and compiled module, each with its
// own configuration and pool; a different ceiling gets a runtime of its
// own; a runtime is closed with the last plugin that holds it, and a
// reload of one holder leaves the others running.
func TestSharedRuntime(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "10-a", "verdict", "[config]\nv = 0\n")
	install(t, dir, "20-b", "verdict", "[config]\nv = 0\n")
	install(t, dir, "30-c", "verdict", "memory_limit = \"2MiB\"\n[config]\nv = 2\n")
	h, _ := newHost(t, dir, Options{})
	txn := newTxn()
	if got := h.Run(context.Background(), pluginapi.HookMail, txn); got.Verdict != pluginapi.Reject || got.Plugin != "30-c" {
		t.Fatalf("Run = %+v, want 30-c's reject after a and b continued", got)
	}
	if txn.Notes["calls"] != "xxx" {
		t.Errorf("calls note %q, want three calls", txn.Notes["calls"])
	}
	if n := h.runtimes.len(); n != 2 {
		t.Errorf("%d runtimes for a, b (same module and ceiling) and c (another ceiling), want 2", n)
	}
	ch := h.chain.Load()
	byName := map[string]*plugin{}
	for _, p := range ch.plugins {
		byName[p.name] = p
	}
	if a, b := byName["10-a"], byName["20-b"]; a == nil || b == nil || a.compiled != b.compiled || a.pool == b.pool {
		t.Fatalf("a and b: want one compiled module and a pool each")
	}
	if byName["30-c"].compiled == byName["10-a"].compiled {
		t.Errorf("c shares a's compiled module despite its own memory ceiling")
	}

	// b's new configuration reloads it on the same runtime; removing a
	// then leaves b running.
	install(t, dir, "20-b", "verdict", "[config]\nv = 4\n")
	eventually(t, "b reloaded", func() bool {
		return h.Run(context.Background(), pluginapi.HookMail, newTxn()).Verdict == pluginapi.Discard
	})
	if err := os.Remove(filepath.Join(dir, "10-a.wasm")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a removed", func() bool { return len(h.chain.Load().plugins) == 2 })
	if got := h.Run(context.Background(), pluginapi.HookMail, newTxn()); got.Verdict != pluginapi.Discard || got.Plugin != "20-b" {
		t.Errorf("after a's removal: %+v, want b's discard", got)
	}
	eventually(t, "a's and b's old pools drained", func() bool { return h.runtimes.len() == 2 })
	for _, f := range []string{"20-b.wasm", "30-c.wasm"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every runtime closed", func() bool { return h.runtimes.len() == 0 })
}
