//go:build linux

package filter

import (
	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// newMmapMemory reserves max bytes (rounded up to a page) without access;
// nil when the kernel refuses.
func newMmapMemory(max uint64) experimental.LinearMemory {
	b, err := unix.Mmap(-1, 0, int(roundPage(max)), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &mmapMemory{buf: b}
}

// mmapMemory is one reserved linear memory; committed bytes from its start
// are readable and writable.
type mmapMemory struct {
	buf       []byte
	committed int
}

var _ experimental.LinearMemory = (*mmapMemory)(nil)

// Reallocate makes the first size bytes accessible and returns them; nil
// when size is beyond the reservation or the kernel refuses the memory, which
// wazero reports to the guest as a failed memory.grow.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if n := int(roundPage(size)); n > m.committed {
		if err := unix.Mprotect(m.buf[m.committed:n], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = n
	}
	return m.buf[:size:size]
}

// Free returns the memory to the kernel; wazero calls it when the instance
// is closed, after its last call.
func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = unix.Munmap(m.buf)
		m.buf, m.committed = nil, 0
	}
}
