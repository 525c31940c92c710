//go:build !linux

package filter

import "github.com/tetratelabs/wazero/experimental"

// newMmapMemory is Linux only: elsewhere guests' memory is on the Go heap.
func newMmapMemory(uint64) experimental.LinearMemory { return nil }
