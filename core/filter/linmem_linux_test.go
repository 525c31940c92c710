//go:build linux

package filter

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/sluice-mta/sluice/pluginapi"
)

// mapped reports whether the address p lies in one of the process's
// mappings (/proc/self/maps).
func mapped(t *testing.T, p uintptr) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(l, "%x-%x", &lo, &hi); err == nil && p >= lo && p < hi {
			return true
		}
	}
	return false
}

// TestMmapMemory: a linear memory grows in place (same address, contents
// kept, nothing copied) up to its maximum and no further, and Free
// unmaps it.
func TestMmapMemory(t *testing.T) {
	lm := mmapAllocator{}.Allocate(0, 256<<20)
	if _, ok := lm.(*mmapMemory); !ok {
		t.Fatalf("Allocate gave a %T, want the mapping", lm)
	}
	b := lm.Reallocate(pageSize)
	if len(b) != pageSize {
		t.Fatalf("len %d, want %d", len(b), pageSize)
	}
	copy(b, "guest data")
	base := uintptr(unsafe.Pointer(&b[0]))
	b = lm.Reallocate(128 << 20)
	if len(b) != 128<<20 || uintptr(unsafe.Pointer(&b[0])) != base {
		t.Fatalf("grown to %d bytes at %#x, want 128 MiB at %#x", len(b), uintptr(unsafe.Pointer(&b[0])), base)
	}
	if string(b[:10]) != "guest data" {
		t.Fatalf("contents lost by the grow: %q", b[:10])
	}
	b[len(b)-1] = 1 // the last page is writable
	if lm.Reallocate(256<<20+1) != nil {
		t.Error("grew beyond its maximum")
	}
	if !mapped(t, base) {
		t.Fatal("the memory is not in /proc/self/maps")
	}
	lm.Free()
	if mapped(t, base) {
		t.Error("the memory is still mapped after Free")
	}
}

// growHost loads grow.wat (it grows its memory by 4 MiB at every hook)
// with a pool of one instance and returns the plugin and a function
// running one hook.
func growHost(t *testing.T) (*plugin, func()) {
	t.Helper()
	dir := t.TempDir()
	install(t, dir, "grow", "grow", "memory_limit = \"512MiB\"\npool_min = 1\npool_max = 1\n")
	h, _ := newHost(t, dir, Options{})
	return h.chain.Load().plugins[0], func() {
		t.Helper()
		if r := h.Run(context.Background(), pluginapi.HookConnect, newTxn()); r.Verdict != pluginapi.Continue {
			t.Fatalf("Run = %+v", r)
		}
	}
}

// TestGuestMemoryOffHeap: what guests grow their memory by is not on the
// Go heap (grow.wat grows by 4 MiB at every hook: 64 MiB in all), and a
// discarded instance's memory is unmapped at once.
func TestGuestMemoryOffHeap(t *testing.T) {
	p, run := growHost(t)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for range 16 {
		run()
	}
	runtime.ReadMemStats(&m1)
	if d := int64(m1.HeapAlloc) - int64(m0.HeapAlloc); d > 16<<20 {
		t.Errorf("the Go heap grew by %d MiB while the guest grew its memory by 64 MiB", d>>20)
	}
	in, err := p.pool.get(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := in.mem.Read(0, 1)
	base := uintptr(unsafe.Pointer(&b[0]))
	if !mapped(t, base) {
		t.Fatal("the guest's memory is not a mapping of its own")
	}
	p.pool.discard(in)
	if mapped(t, base) {
		t.Error("a discarded instance's memory is still mapped")
	}
}

// TestGrownInstanceReleased: an instance whose memory grew by more than
// releaseGrowth since _initialize is closed when its call returns instead
// of going back to the pool, and the next call gets a fresh one.
func TestGrownInstanceReleased(t *testing.T) {
	p, run := growHost(t)
	size := func() uint32 {
		in, err := p.pool.get(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer p.pool.put(in)
		return in.mem.Size()
	}
	fresh := size()
	// grow.wat grows by 4 MiB a call: after two calls it is releaseGrowth
	// (8 MiB) larger and still pooled; after the third it is over.
	run()
	run()
	if got := size(); got != fresh+releaseGrowth {
		t.Fatalf("after two calls the pooled instance has %d bytes, want %d (kept)", got, fresh+releaseGrowth)
	}
	run()
	if got := size(); got != fresh {
		t.Errorf("after a third call the pooled instance has %d bytes, want a fresh one's %d", got, fresh)
	}
}
