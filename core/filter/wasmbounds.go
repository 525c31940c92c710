package filter

import (
	"errors"
	"fmt"
)

// maxLocals bounds the locals one function declares (what browsers allow).
const maxLocals = 50000

// checkBounds refuses a module in which a vector declares more entries, or
// a name or byte string more bytes, than are left in its section, or a
// function more than maxLocals locals. wazero allocates what a length
// declares before it reads the entries, so without this check a module of
// a few dozen bytes makes the host allocate gigabytes (found by FuzzRewrite).
func checkBounds(secs []section) error {
	for _, s := range secs {
		r := &reader{b: s.body}
		vec, bytes, expr := r.vec, r.skipBytes, r.skipExpr
		switch s.id {
		case 0: // custom; wazero reads the name section
			name := string(r.bytes(vec()))
			if name == "name" {
				checkNameSection(r)
			}
		case 1: // types: 0x60, params, results (one byte each)
			for n := vec(); n > 0 && r.err == nil; n-- {
				r.byte()
				bytes()
				bytes()
			}
		case 7: // exports
			for n := vec(); n > 0 && r.err == nil; n-- {
				bytes()
				r.byte()
				r.u32()
			}
		case 9: // elements
			for n := vec(); n > 0 && r.err == nil; n-- {
				flags := r.u32()
				if flags&2 != 0 && flags&1 == 0 {
					r.u32() // table index
				}
				if flags&1 == 0 {
					expr() // offset
				}
				if flags&3 != 0 {
					r.byte() // element kind or reference type
				}
				for m := vec(); m > 0 && r.err == nil; m-- {
					if flags&4 != 0 {
						expr()
					} else {
						r.u32()
					}
				}
			}
		case 10: // code: locals
			for n := vec(); n > 0 && r.err == nil; n-- {
				body := &reader{b: r.bytes(vec())}
				var sum uint64
				for m := body.u32(); m > 0 && body.err == nil; m-- {
					sum += uint64(body.u32())
					body.byte()
				}
				if sum > maxLocals {
					r.fail(fmt.Errorf("a function declares %d locals, over the limit of %d", sum, maxLocals))
				}
			}
		case 11: // data
			for n := vec(); n > 0 && r.err == nil; n-- {
				switch flags := r.u32(); flags {
				case 0:
					expr()
				case 2:
					r.u32()
					expr()
				}
				bytes()
			}
		default: // every other section is one vector
			vec()
		}
		if r.err != nil {
			return fmt.Errorf("section %d: %w", s.id, r.err)
		}
	}
	return nil
}

// vec reads a vector's length and fails when fewer bytes are left.
func (r *reader) vec() uint32 {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b)-r.pos) {
		r.fail(fmt.Errorf("declares %d entries with %d bytes left", n, len(r.b)-r.pos))
	}
	return n
}

// skipBytes skips a length-prefixed byte string.
func (r *reader) skipBytes() { r.bytes(r.vec()) }

// skipExpr skips a constant expression up to its end.
func (r *reader) skipExpr() {
	for r.err == nil {
		op := r.byte()
		if op == 0x0b {
			return
		}
		if err := skipImmediates(r, op); err != nil {
			r.fail(err)
		}
	}
}

// checkNameSection bounds the name maps of the "name" custom section.
func checkNameSection(r *reader) {
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		sub := &reader{b: r.bytes(r.vec())}
		switch id {
		case 0:
			sub.skipBytes()
		case 1:
			for n := sub.vec(); n > 0 && sub.err == nil; n-- {
				sub.u32()
				sub.skipBytes()
			}
		case 2:
			for n := sub.vec(); n > 0 && sub.err == nil; n-- {
				sub.u32()
				for m := sub.vec(); m > 0 && sub.err == nil; m-- {
					sub.u32()
					sub.skipBytes()
				}
			}
		}
		if sub.err != nil {
			r.fail(sub.err)
		}
	}
}

// tableBound is the maximum size instrument gives a table: its declared
// maximum, but at most limit elements. wazero lets a table without a
// maximum grow to 2^32-1 elements in one uninterruptible table.grow.
func tableBound(hasMax bool, declared, limit uint32) uint32 {
	if hasMax && declared < limit {
		return declared
	}
	return limit
}

// boundTables rewrites the table section so that every table has a
// maximum of at most limit elements (tableBound). inspectBinary has
// refused a table whose minimum is over the limit.
func boundTables(sec []byte, limit uint32) ([]byte, error) {
	r := &reader{b: sec}
	n := r.u32()
	out := uleb(n)
	for ; n > 0 && r.err == nil; n-- {
		ref := r.byte()
		if ref == 0x40 {
			return nil, errors.New("table section: tables with an initializer expression are not supported")
		}
		flags := r.byte()
		tmin := r.u32()
		var tmax uint32
		if flags&1 != 0 {
			tmax = r.u32()
		}
		if tmin > limit {
			return nil, fmt.Errorf("declares a table of at least %d elements, over the limit of %d", tmin, limit)
		}
		out = append(out, ref, flags|1)
		out = append(out, uleb(tmin)...)
		out = append(out, uleb(tableBound(flags&1 != 0, tmax, limit))...)
	}
	if r.err != nil {
		return nil, fmt.Errorf("table section: %w", r.err)
	}
	return out, nil
}
