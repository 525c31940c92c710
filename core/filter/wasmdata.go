package filter

import "slices"

// dataGap is the longest run of zeros mergeData writes between two
// segments to join them.
const dataGap = 64

// mergeData returns the body of a data section whose active segments are
// joined wherever fewer than dataGap bytes separate them, or ok false to
// keep the section as it is.
//
// Go's linker leaves out every run of zeros in the data it emits, so a Go
// plugin has about 40,000 segments of a few bytes for 1–1.2 MB of data.
// wazero keeps a struct and a constant expression for each segment of the
// compiled module (~3.8 MB a plugin, twice its data) and a slice header
// for each in every instance (~1 MB an instance); joined, the data take
// 1.7–2 MB once a plugin and 24 bytes an instance.
//
// The result is the same memory: segments are joined only when all are
// active, in memory 0, at an i32.const offset, none overlaps another (so
// their order does not matter) and the module has no data count section
// (memory.init and data.drop, which name segments by index, need one);
// the bytes between two joined segments were zero before and are written
// as zeros.
func mergeData(body []byte, hasDataCount bool) (_ []byte, ok bool) {
	if hasDataCount {
		return nil, false
	}
	type seg struct {
		off  uint32
		data []byte
	}
	r := &reader{b: body}
	n := r.u32()
	if n < 2 || uint64(n) > uint64(len(body)) {
		return nil, false
	}
	segs := make([]seg, 0, n)
	for ; n > 0 && r.err == nil; n-- {
		if r.u32() != 0 || r.byte() != 0x41 { // active, memory 0, i32.const
			return nil, false
		}
		off, good := r.i32()
		if !good || off < 0 || r.byte() != 0x0b {
			return nil, false
		}
		segs = append(segs, seg{uint32(off), r.bytes(r.u32())})
	}
	if r.err != nil || r.pos != len(body) {
		return nil, false
	}
	slices.SortStableFunc(segs, func(a, b seg) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return 0
	})
	var out []byte
	count := 0
	for i := 0; i < len(segs); {
		start, end := segs[i].off, uint64(segs[i].off)+uint64(len(segs[i].data))
		j := i + 1
		for ; j < len(segs); j++ {
			if uint64(segs[j].off) < end {
				return nil, false // overlaps the one before
			}
			if uint64(segs[j].off)-end > dataGap {
				break
			}
			end = uint64(segs[j].off) + uint64(len(segs[j].data))
		}
		if end > 1<<32 {
			return nil, false
		}
		out = append(out, 0x00, 0x41)
		out = append(out, sleb(int32(start))...)
		out = append(out, 0x0b)
		out = append(out, uleb(uint32(end-uint64(start)))...)
		for k := i; k < j; k++ {
			if k > i {
				out = append(out, make([]byte, int(segs[k].off-segs[k-1].off)-len(segs[k-1].data))...)
			}
			out = append(out, segs[k].data...)
		}
		count++
		i = j
	}
	return append(uleb(uint32(count)), out...), true
}

// i32 reads a signed LEB128 number of at most 32 bits.
func (r *reader) i32() (int32, bool) {
	var v int64
	shift := 0
	for {
		c := r.byte()
		if r.err != nil || shift >= 35 {
			return 0, false
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v -= 1 << shift
			}
			break
		}
	}
	if v < -1<<31 || v >= 1<<31 {
		return 0, false
	}
	return int32(v), true
}
