package filter

import (
	"errors"
	"fmt"
	"slices"
)

// The host reads a module's binary itself before wazero compiles it, for
// two reasons: wazero's CompiledModule does not report tables (or memories
// that are not exported), so absurd declarations must be found here; and
// every function entry and loop header gets a deadline check ("fuse"), see
// instrument.

// fuseExport is the name of the mutable i32 global the host adds to every
// module. The watchdog sets it to 1 when a call is past its deadline; the
// next check then traps.
const fuseExport = "__sluice_fuse"

// fuelExport counts down the checks until the next exit to Go.
const fuelExport = "__sluice_fuel"

// grownExport is set to 1 by every table.grow the guest runs: an instance
// whose table grew is discarded after its call, never returned to the
// pool, so that what it took is given back at once.
const grownExport = "__sluice_grown"

// oomExport is set to 1 by every memory.grow or table.grow of the guest
// that fails (returns -1: the memory_limit or the table's bound is
// reached), for the host to tell a failure after it (pluginapi.FailMemory) from
// other traps. wazero does not report it otherwise.
const oomExport = "__sluice_oom"

// binInfo is what the host learned from a module's binary.
type binInfo struct {
	imports   []wasmImport
	memMin    uint32 // pages
	memMax    uint32 // pages; 0 with hasMemMax false = none declared
	hasMemMax bool
	memories  int
	tableMin  uint32 // the largest minimum of any table
	tables    int
	functions uint64 // imported and defined
	globals   uint64 // imported and defined
	dataBytes uint64 // the bytes of every data segment
}

// wasmImport is one entry of the import section.
type wasmImport struct {
	module, name string
	kind         byte // 0 func, 1 table, 2 memory, 3 global, 4 tag
}

var errTruncated = errors.New("truncated or malformed WebAssembly binary")

// reader decodes the binary format.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.pos = len(r.b)
}

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n uint32) []byte {
	if uint64(r.pos)+uint64(n) > uint64(len(r.b)) {
		r.fail(errTruncated)
		return nil
	}
	s := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s
}

// leb reads an unsigned or signed LEB128 number of at most maxBits bits and
// returns its low 32 bits unsigned (enough for every use here).
func (r *reader) leb(maxBits int) uint32 {
	var v uint64
	for shift := 0; ; shift += 7 {
		if shift >= maxBits+7 {
			r.fail(errTruncated)
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return uint32(v)
		}
	}
}

func (r *reader) u32() uint32 { return r.leb(32) }

func (r *reader) name() string { return string(r.bytes(r.u32())) }

// limits reads a table or memory type's limits.
func (r *reader) limits() (min, max uint32, hasMax bool) {
	flags := r.byte()
	min = r.u32()
	if flags&1 != 0 {
		max, hasMax = r.u32(), true
	}
	return min, max, hasMax
}

// section is one section of a module.
type section struct {
	id   byte
	body []byte
}

// sections splits a module into its sections.
func sections(bin []byte) ([]section, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, notWasm(bin)
	}
	if bin[4] != 1 || bin[5] != 0 || bin[6] != 0 || bin[7] != 0 {
		return nil, errors.New("unsupported WebAssembly binary version (want 1)")
	}
	r := &reader{b: bin, pos: 8}
	var out []section
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		body := r.bytes(r.u32())
		out = append(out, section{id, body})
	}
	return out, r.err
}

// inspect reads imports, memories and tables.
func inspect(secs []section) (*binInfo, error) {
	bi := &binInfo{}
	for _, s := range secs {
		r := &reader{b: s.body}
		switch s.id {
		case 2: // import
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				im := wasmImport{module: r.name(), name: r.name(), kind: r.byte()}
				switch im.kind {
				case 0:
					r.u32()
					bi.functions++
				case 1:
					r.byte()
					min, _, _ := r.limits()
					bi.tables++
					bi.tableMin = max(bi.tableMin, min)
				case 2:
					bi.memories++
					bi.memMin, bi.memMax, bi.hasMemMax = r.limits()
				case 3:
					r.byte()
					r.byte()
					bi.globals++
				case 4:
					r.byte()
					r.u32()
				default:
					r.fail(errTruncated)
				}
				bi.imports = append(bi.imports, im)
			}
		case 4: // table
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				r.byte() // reftype
				min, _, _ := r.limits()
				bi.tables++
				bi.tableMin = max(bi.tableMin, min)
			}
		case 5: // memory
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				bi.memories++
				bi.memMin, bi.memMax, bi.hasMemMax = r.limits()
			}
		case 3: // function
			bi.functions += uint64(r.u32())
		case 6: // global
			bi.globals += uint64(r.u32())
		case 11: // data (checkBounds has checked its lengths)
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				switch r.u32() {
				case 0:
					r.skipExpr()
				case 2:
					r.u32()
					r.skipExpr()
				}
				bi.dataBytes += uint64(len(r.bytes(r.u32())))
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, r.err)
		}
	}
	return bi, nil
}

// sectionRank orders known section ids as the binary format requires.
var sectionRank = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// fuelPeriod is how many checks run between two exits to Go.
const fuelPeriod = 1 << 14

// instrument returns a copy of the module with two mutable i32 globals,
// exported as fuseExport and fuelExport, and a check at the entry of every
// function and the head of every loop, the only ways to run for long
// (wazero would stop unbounded recursion only at a 400 MB stack):
//
//	fuel -= 1
//	if fuel <= 0 { fuel = fuelPeriod; sluice.__tick(); if fuse { unreachable } }
//
// The tick (a host function import added by withTick) exits to Go every
// fuelPeriod checks: there the guest checks its own deadline and, once it
// has run for a while, yields its thread (instance.tick), so that a call
// is stopped at its deadline and other goroutines run even when more
// guests loop than there are CPUs (the watchdog alone, a goroutine among
// them, fired up to 100 ms late with eight looping guests on two CPUs).
// Native code cannot be preempted, and a guest that never left it would
// also stall the Go runtime's stop-the-world. The watchdog still sets fuse
// and zeroes fuel, for a call past its deadline in a host function. This
// costs a few instructions per check, far less than wazero's
// WithCloseOnContextDone, which on v1.12 starts a goroutine for every call
// (see RATIONALE.md).
//
// Every table gets a maximum of at most tableLimit elements (tableBound),
// so that table.grow fails beyond it, and every table.grow first sets a
// third exported global, grownExport, for the host to discard the
// instance after the call. After every memory.grow and table.grow, a
// result of -1 sets a fourth, oomExport (through a fifth global, not
// exported, that holds the result), and zeroes the fuel, so that the next
// check ticks:
//
//	r = grow(…); fuel = 0; if r == -1 { oom = 1 }; r
func instrument(secs []section, tableLimit uint32) ([]byte, error) {
	secs, tick, err := withTick(secs)
	if err != nil {
		return nil, err
	}
	importedGlobals := uint32(0)
	for _, s := range secs {
		if s.id == 2 {
			_, importedGlobals, _ = countImports(s.body) // withTick checked the section
		}
	}
	var definedGlobals uint32
	for _, s := range secs {
		if s.id == 6 {
			r := &reader{b: s.body}
			definedGlobals = r.u32()
		}
	}
	first := importedGlobals + definedGlobals
	fuse, fuel, grown, oom, growResult := first, first+1, first+2, first+3, first+4
	const nGlobals, nExports = 5, 4
	newGlobals := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b} // fuse: i32 mut = 0
	newGlobals = append(append(append(newGlobals, 0x7f, 0x01, 0x41), sleb(fuelPeriod)...), 0x0b)
	newGlobals = append(newGlobals, 0x7f, 0x01, 0x41, 0x00, 0x0b) // grown: i32 mut = 0
	newGlobals = append(newGlobals, 0x7f, 0x01, 0x41, 0x00, 0x0b) // oom: i32 mut = 0
	newGlobals = append(newGlobals, 0x7f, 0x01, 0x41, 0x00, 0x0b) // growResult: i32 mut = 0
	newExports := append(exportEntry(fuseExport, fuse), exportEntry(fuelExport, fuel)...)
	newExports = append(newExports, exportEntry(grownExport, grown)...)
	newExports = append(newExports, exportEntry(oomExport, oom)...)
	gget := func(g uint32) []byte { return append([]byte{0x23}, uleb(g)...) }
	gset := func(g uint32) []byte { return append([]byte{0x24}, uleb(g)...) }
	setGrown := append([]byte{0x41, 0x01}, gset(grown)...) // i32.const 1, global.set grown
	var afterGrow []byte
	// A grow is work in Go (an allocation and a copy of the memory): the
	// next check ticks, so that a loop of grows meets its deadline.
	afterGrow = append(append(afterGrow, 0x41, 0x00), gset(fuel)...) // i32.const 0, global.set fuel
	afterGrow = append(afterGrow, gset(growResult)...)
	afterGrow = append(afterGrow, gget(growResult)...)
	afterGrow = append(afterGrow, 0x41, 0x7f, 0x46, 0x04, 0x40)     // i32.const -1, i32.eq, if
	afterGrow = append(append(afterGrow, 0x41, 0x01), gset(oom)...) // i32.const 1, global.set oom
	afterGrow = append(afterGrow, 0x0b)                             // end
	afterGrow = append(afterGrow, gget(growResult)...)
	var check []byte
	check = append(check, gget(fuel)...)
	check = append(check, 0x41, 0x01, 0x6b) // i32.const 1, i32.sub
	check = append(check, gset(fuel)...)
	check = append(check, gget(fuel)...)
	check = append(check, 0x41, 0x00, 0x4c, 0x04, 0x40) // i32.const 0, i32.le_s, if
	check = append(append(append(check, 0x41), sleb(fuelPeriod)...), gset(fuel)...)
	check = append(append(check, 0x10), uleb(tick)...) // call tick
	check = append(check, gget(fuse)...)
	check = append(check, 0x04, 0x40, 0x00, 0x0b, 0x0b) // if unreachable end, end

	out := []byte("\x00asm\x01\x00\x00\x00")
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = append(out, uleb(uint32(len(body)))...)
		out = append(out, body...)
	}
	haveGlobal, haveExport := false, false
	hasDataCount := slices.ContainsFunc(secs, func(s section) bool { return s.id == 12 })
	for _, s := range secs {
		if !haveGlobal && sectionRank[s.id] > sectionRank[6] {
			emit(6, append(uleb(nGlobals), newGlobals...))
			haveGlobal = true
		}
		if !haveExport && sectionRank[s.id] > sectionRank[7] {
			emit(7, append(uleb(nExports), newExports...))
			haveExport = true
		}
		switch s.id {
		case 4:
			body, err := boundTables(s.body, tableLimit)
			if err != nil {
				return nil, err
			}
			emit(4, body)
		case 6:
			r := &reader{b: s.body}
			n := r.u32()
			emit(6, append(append(uleb(n+nGlobals), s.body[r.pos:]...), newGlobals...))
			haveGlobal = true
		case 7:
			r := &reader{b: s.body}
			n := r.u32()
			emit(7, append(append(uleb(n+nExports), s.body[r.pos:]...), newExports...))
			haveExport = true
		case 10:
			body, err := instrumentCode(s.body, probes{check, setGrown, afterGrow, tick})
			if err != nil {
				return nil, err
			}
			emit(10, body)
		case 11:
			if body, ok := mergeData(s.body, hasDataCount); ok {
				emit(11, body)
			} else {
				emit(11, s.body)
			}
		default:
			emit(s.id, s.body)
		}
	}
	if !haveGlobal {
		emit(6, append(uleb(nGlobals), newGlobals...))
	}
	if !haveExport {
		emit(7, append(uleb(nExports), newExports...))
	}
	return out, nil
}

func sleb(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func exportEntry(name string, global uint32) []byte {
	e := append(uleb(uint32(len(name))), name...)
	e = append(e, 0x03)
	return append(e, uleb(global)...)
}

func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// probes are the code instrument inserts (see instrument).
type probes struct {
	// check goes at the entry of every function and after the block type
	// of every loop, setGrown before every table.grow, afterGrow after
	// every memory.grow and table.grow.
	check, setGrown, afterGrow []byte
	// tick is tickImport's index: function indices from it on move up
	// by one (withTick).
	tick uint32
}

// instrumentCode rewrites the code section, inserting pr's probes.
func instrumentCode(sec []byte, pr probes) ([]byte, error) {
	r := &reader{b: sec}
	n := r.u32()
	out := uleb(n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		body := r.bytes(r.u32())
		if r.err != nil {
			break
		}
		nb, err := instrumentBody(body, pr)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = append(out, uleb(uint32(len(nb)))...)
		out = append(out, nb...)
	}
	if r.err != nil {
		return nil, fmt.Errorf("code section: %w", r.err)
	}
	return out, nil
}

func instrumentBody(body []byte, pr probes) ([]byte, error) {
	r := &reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- { // locals
		r.u32()
		r.byte()
	}
	out := make([]byte, 0, len(body)+64)
	out = append(out, body[:r.pos]...)
	out = append(out, pr.check...) // function entry: stops unbounded recursion
	last := r.pos
	for r.pos < len(r.b) && r.err == nil {
		at := r.pos
		op := r.byte()
		if op == 0x10 || op == 0x12 || op == 0xd2 { // call, return_call, ref.func
			imm := r.pos
			f := r.u32()
			if nf := shiftFunc(f, pr.tick); nf != f && r.err == nil {
				out = append(out, body[last:imm]...)
				out = append(out, uleb(nf)...)
				last = r.pos
			}
			continue
		}
		grow := op == 0x40 // memory.grow
		if op == 0xfc && r.err == nil {
			if sub := (&reader{b: r.b, pos: r.pos}).u32(); sub == 15 { // table.grow
				out = append(out, body[last:at]...)
				out = append(out, pr.setGrown...)
				last = at
				grow = true
			}
		}
		if err := skipImmediates(r, op); err != nil {
			return nil, err
		}
		if r.err != nil {
			break
		}
		switch {
		case op == 0x03: // loop
			out = append(out, body[last:r.pos]...)
			out = append(out, pr.check...)
			last = r.pos
		case grow:
			out = append(out, body[last:r.pos]...)
			out = append(out, pr.afterGrow...)
			last = r.pos
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return append(out, body[last:]...), nil
}

// skipImmediates advances past the immediates of op.
func skipImmediates(r *reader, op byte) error {
	memarg := func() {
		if r.u32()&0x40 != 0 { // multi-memory: a memory index follows
			r.u32()
		}
		r.leb(64)
	}
	switch {
	case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b,
		op == 0x0a, op == 0x19, op == 0xd1, op >= 0x45 && op <= 0xc4:
	case op >= 0x02 && op <= 0x04, op == 0x06: // block, loop, if, try: block type
		blockType(r)
	case op == 0x1f: // try_table
		blockType(r)
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			switch r.byte() {
			case 0, 1:
				r.u32()
				r.u32()
			default:
				r.u32()
			}
		}
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10,
		op == 0x12, op == 0x14, op == 0x15, op == 0x18,
		op >= 0x20 && op <= 0x26, op == 0x3f, op == 0x40, op == 0xd2:
		r.u32()
	case op == 0x0e: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.byte()
		}
	case op >= 0x28 && op <= 0x3e:
		memarg()
	case op == 0x41:
		r.leb(32)
	case op == 0x42:
		r.leb(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0: // ref.null heaptype
		r.leb(33)
	case op == 0xfc:
		switch sub := r.u32(); {
		case sub <= 7:
		case sub == 8, sub == 10, sub == 12, sub == 14:
			r.u32()
			r.u32()
		case sub <= 17:
			r.u32()
		default:
			return fmt.Errorf("unsupported instruction 0xfc %d", sub)
		}
	case op == 0xfd: // SIMD
		switch sub := r.u32(); {
		case sub <= 11, sub == 92, sub == 93:
			memarg()
		case sub == 12, sub == 13:
			r.bytes(16)
		case sub >= 21 && sub <= 34:
			r.byte()
		case sub >= 84 && sub <= 91:
			memarg()
			r.byte()
		}
	case op == 0xfe: // threads
		if r.u32() == 3 {
			r.byte()
		} else {
			memarg()
		}
	default:
		return fmt.Errorf("unsupported instruction 0x%02x", op)
	}
	return r.err
}

func blockType(r *reader) {
	if r.pos >= len(r.b) {
		r.fail(errTruncated)
		return
	}
	switch c := r.b[r.pos]; {
	case c == 0x40, c >= 0x6f && c <= 0x7f:
		r.byte()
	default:
		r.leb(33)
	}
}
