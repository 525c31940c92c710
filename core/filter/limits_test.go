package filter

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// installWAT assembles the module text src and installs it as
// dir/file.wasm, with conf as its .toml when not empty.
func installWAT(t testing.TB, dir, file, src, conf string) {
	t.Helper()
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "m.wat"), filepath.Join(tmp, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("wat2wasm", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if conf != "" {
		writeAtomic(t, filepath.Join(dir, file+".toml"), []byte(conf))
	}
	writeAtomic(t, filepath.Join(dir, file+".wasm"), b)
}

// minimalWAT is a module that continues at every hook, with extra fields.
func minimalWAT(extra string) string {
	return `(module
  (memory (export "memory") 1)
  ` + extra + `
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_hooks") (result i32) (i32.const 63))
  (func (export "sluice_on_hook") (param i32) (result i32) (i32.const 0)))`
}

// TestTableGrow: a table is bounded at run time (the 50,000,000-element
// grow of the issue fails at once instead of taking seconds and 400 MB),
// and an instance whose table grew is never handed out again.
func TestTableGrow(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "tg", "tablegrow", "pool_min = 1\npool_max = 1\ntimeout = \"5s\"\n")
	h, _ := newHost(t, dir, Options{})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if got := h.Run(ctx, pluginapi.HookRcpt, newTxn()); got.Verdict != pluginapi.Continue {
			t.Fatalf("rcpt %d (grows by 1,000): %+v, want continue", i, got)
		}
		// With a pool of one, a grown instance kept would be handed out
		// here, and the guest rejects when it sees its table grown.
		if got := h.Run(ctx, pluginapi.HookMail, newTxn()); got.Verdict != pluginapi.Continue {
			t.Fatalf("mail after a grow: %+v: the grown instance was reused", got)
		}
	}
	if got := h.Run(ctx, pluginapi.HookData, newTxn()); got.Verdict != pluginapi.Tempfail {
		t.Fatalf("data (grows by 50,000,000): %+v, want the guest's tempfail for a failed table.grow", got)
	}
	info, _ := pluginNamed(h, "tg")
	if info.Errors != 0 {
		t.Errorf("%d errors: a grown instance is discarded, not failed", info.Errors)
	}
}

// TestLoadLimits: a module over one of its load-time limits is refused by
// the host and by Check with a message naming the [limits] key; the
// defaults refuse the absurd modules of the issue (5 M globals here 20 k).
func TestLoadLimits(t *testing.T) {
	manyGlobals := minimalWAT(strings.Repeat("(global i32 (i32.const 0))\n", defaultGlobals+1))
	tests := []struct {
		name, src, conf, want string
	}{
		{"module size", minimalWAT(""), "[limits]\nmodule_size = \"64B\"\n", "over the limit of 64 B; raise [limits] module_size"},
		{"functions", minimalWAT(""), "[limits]\nfunctions = 2\n", "declares 3 functions, over the limit of 2; raise [limits] functions"},
		{"globals", minimalWAT("(global i32 (i32.const 0))"), "[limits]\nglobals = 0\n", "declares 1 globals, over the limit of 0"},
		{"globals default", manyGlobals, "", fmt.Sprintf("declares %d globals, over the limit of %d", defaultGlobals+1, defaultGlobals)},
		{"data", minimalWAT(`(data (i32.const 0) "0123456789")`), "[limits]\ndata_size = \"9B\"\n", "has 10 B of data segments, over the limit of 9 B"},
		{"table", minimalWAT("(table 10 funcref)"), "[limits]\ntable_elements = 9\n", "table of at least 10 elements, over the limit of 9; raise [limits] table_elements"},
		{"bad limit", minimalWAT(""), "\n[limits]\nfunctions = 0\n", "bad.toml:2: limits.functions: must be between 1 and"},
		{"unknown limit", minimalWAT(""), "[limits]\nfunctons = 1\n", `unknown key "limits.functons"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			installWAT(t, dir, "bad", tt.src, tt.conf)
			if _, err := Check(context.Background(), filepath.Join(dir, "bad.wasm")); err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v, want %q", err, tt.want)
			}
			h, logs := newHost(t, dir, Options{})
			if _, ok := pluginNamed(h, "bad"); ok {
				t.Errorf("refused module was loaded")
			}
			if !contains(logs.String(), strings.ReplaceAll(tt.want, `"`, `\"`)) {
				t.Errorf("log lacks %q:\n%s", tt.want, logs)
			}
		})
	}
	// Raised in NAME.toml, the same module loads.
	dir := t.TempDir()
	installWAT(t, dir, "ok", manyGlobals, fmt.Sprintf("[limits]\nglobals = %d\n", defaultGlobals+1))
	if _, err := Check(context.Background(), filepath.Join(dir, "ok.wasm")); err != nil {
		t.Fatalf("Check with raised limit: %v", err)
	}
}

// TestMemoryBudget: plugins load in file-name order while their pools fit
// in the server's budget; the one that does not is refused and says why.
func TestMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	conf := "memory_limit = \"1MiB\"\npool_min = 1\npool_max = 2\n"
	installWAT(t, dir, "a", minimalWAT(""), conf)
	installWAT(t, dir, "b", minimalWAT("(table 1 funcref)"), conf+"[limits]\ntable_elements = 65536\n")
	installWAT(t, dir, "c", minimalWAT(""), conf)
	// a and c take 2 MiB each; b's table adds 2 × 512 KiB.
	h, logs := newHost(t, dir, Options{MemoryBudget: 5 << 20})
	var names []string
	for _, p := range h.Plugins() {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "a,b" {
		t.Errorf("loaded %s, want a,b", got)
	}
	want := "its pool may take 2048 KiB (pool_max 2 × 1024 KiB per instance: memory_limit and tables), over the 0 B left of the server's plugin memory budget"
	if l := logs.String(); !contains(l, want) || !contains(l, "c.wasm") || !contains(l, "raise [plugins] memory_budget") {
		t.Errorf("log lacks the refusal of c:\n%s", l)
	}
}

func TestMachineMemory(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	if m := MachineMemory(); m < 64<<20 || m > 1<<50 {
		t.Errorf("MachineMemory = %d, want the machine's memory", m)
	}
}
