package filter

import "github.com/tetratelabs/wazero/experimental"

// mmapAllocator backs every guest's linear memory with a private anonymous
// mapping of its own instead of a []byte on the Go heap (wazero's
// default). The address space of the memory's maximum (memory_limit) is
// reserved at instantiation without access, and a grow only makes the
// next pages writable, so:
//
//   - a grow copies nothing (wazero's default appends to a new slice and
//     copies the old one, leaving it as garbage);
//   - a closed instance's memory goes back to the kernel at once (munmap),
//     not at the next GC and the scavenger's pace;
//   - guests' memory does not count in the Go heap, so it does not raise
//     the host's GC target (with GOGC 100, every MiB of guest memory let
//     the heap grow another MiB of garbage before a collection).
//
// A page counts in the RSS only once the guest touches it. Elsewhere than
// on Linux the memory stays on the Go heap (heapMemory).
type mmapAllocator struct{}

var _ experimental.MemoryAllocator = mmapAllocator{}

// Allocate reserves max bytes (rounded up to a page) for one linear memory.
// When the kernel refuses the reservation the memory lives on the Go heap,
// as without this allocator.
func (mmapAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	if max == 0 {
		max = pageSize // a memory of at most 0 pages: keep a valid mapping
	}
	if m := newMmapMemory(max); m != nil {
		return m
	}
	return &heapMemory{max: max}
}

// roundPage rounds n up to a multiple of the wasm page size (64 KiB, a
// multiple of every kernel page size Go supports on Linux).
func roundPage(n uint64) uint64 { return (n + pageSize - 1) &^ (pageSize - 1) }

// heapMemory is a linear memory on the Go heap, grown by copying (what
// wazero does without an allocator): the fallback when a reservation fails.
type heapMemory struct {
	buf []byte
	max uint64
}

var _ experimental.LinearMemory = (*heapMemory)(nil)

// Reallocate grows the memory to size bytes; nil beyond its maximum.
func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if n := int(size); n > len(m.buf) {
		m.buf = append(m.buf, make([]byte, n-len(m.buf))...)
	}
	return m.buf[:size:size]
}

// Free drops the memory for the garbage collector.
func (m *heapMemory) Free() { m.buf = nil }
