package filter

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// dataModule is a module with one memory of a page and the given data
// section body (and a data count section when count is set).
func dataModule(data []byte, count bool) []byte {
	bin := []byte("\x00asm\x01\x00\x00\x00")
	bin = append(bin, 5, 3, 1, 0x00, 1) // memory section: one memory, min 1 page
	if count {
		bin = append(bin, 12, 1, 0) // data count: 0 (unused; only its presence matters)
	}
	bin = append(bin, 11)
	bin = append(bin, uleb(uint32(len(data)))...)
	return append(bin, data...)
}

// activeSeg is an active segment of memory 0 at off.
func activeSeg(off int32, b string) []byte {
	s := append([]byte{0x00, 0x41}, sleb(off)...)
	s = append(s, 0x0b)
	s = append(s, uleb(uint32(len(b)))...)
	return append(s, b...)
}

func dataBody(segs ...[]byte) []byte {
	out := uleb(uint32(len(segs)))
	for _, s := range segs {
		out = append(out, s...)
	}
	return out
}

// memoryAfter instantiates bin (no start functions) and returns its memory.
func memoryAfter(t testing.TB, bin []byte) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if err := instantiateHostModule(ctx, rt); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	mem := mod.Memory()
	b, _ := mem.Read(0, mem.Size())
	return bytes.Clone(b)
}

// TestMergeDataSameMemory joins segments (out of order, with short gaps
// between them) into fewer, and the memory an instance starts with is
// the same byte for byte; segments far apart stay apart.
func TestMergeDataSameMemory(t *testing.T) {
	body := dataBody(
		activeSeg(5000, "far"),
		activeSeg(100, "abc"),
		activeSeg(103, "def"),
		activeSeg(170, "gh"), // 64 bytes after "def": joined
		activeSeg(300, "ij"), // 128 bytes after "gh": a new segment
	)
	merged, ok := mergeData(body, false)
	if !ok {
		t.Fatal("mergeData refused segments that can be joined")
	}
	r := &reader{b: merged}
	if n := r.u32(); n != 3 {
		t.Errorf("%d segments after merging, want 3 (100–172, 300–302, 5000–5003)", n)
	}
	before, after := memoryAfter(t, dataModule(body, false)), memoryAfter(t, dataModule(merged, false))
	if !bytes.Equal(before, after) {
		t.Error("the merged data section gives another memory than the original")
	}
	if string(after[100:106]) != "abcdef" || string(after[170:172]) != "gh" || string(after[5000:5003]) != "far" {
		t.Errorf("memory lacks the data: %q %q %q", after[100:106], after[170:172], after[5000:5003])
	}
}

// TestMergeDataKeeps leaves alone what joining could change: overlapping
// segments (the later one wins), a passive segment, an offset that is not
// an i32.const, a module with a data count section (memory.init and
// data.drop name segments by index).
func TestMergeDataKeeps(t *testing.T) {
	global := []byte{0x00, 0x23, 0x00, 0x0b, 0x01, 'x'} // offset global.get 0
	for name, c := range map[string]struct {
		body  []byte
		count bool
	}{
		"overlap":    {dataBody(activeSeg(10, "aaaa"), activeSeg(12, "bb")), false},
		"passive":    {dataBody(activeSeg(10, "a"), []byte{0x01, 0x01, 'p'}), false},
		"global":     {dataBody(activeSeg(10, "a"), global), false},
		"data count": {dataBody(activeSeg(10, "a"), activeSeg(12, "b")), true},
		"truncated":  {dataBody(activeSeg(10, "a"), activeSeg(12, "b"))[:9], false},
	} {
		if _, ok := mergeData(c.body, c.count); ok {
			t.Errorf("%s: merged", name)
		}
	}
}

// TestMergeDataGoPlugin: a Go plugin's ~40,000 data segments become a
// handful, and an instance of the rewritten module starts with the same
// memory as one of the original.
func TestMergeDataGoPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	bin := buildGoPlugin(t, "./examples/hello")
	secs, err := sections(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secs {
		if s.id != 11 {
			continue
		}
		before := (&reader{b: s.body}).u32()
		merged, ok := mergeData(s.body, false)
		if !ok {
			t.Fatal("mergeData refused the Go plugin's data section")
		}
		after := (&reader{b: merged}).u32()
		t.Logf("data segments: %d before, %d after", before, after)
		if before < 1000 || after > 100 {
			t.Errorf("data segments: %d before, %d after; want thousands joined into tens at most", before, after)
		}
	}
	inst, err := instrument(secs, defaultTableElements)
	if err != nil {
		t.Fatal(err)
	}
	// The memories are compared right after instantiation, before Go's
	// runtime starts (_initialize is not run).
	if !bytes.Equal(memoryAfter(t, bin), memoryAfter(t, inst)) {
		t.Error("the rewritten Go plugin starts with another memory than the original")
	}
}
