package filter

import (
	"fmt"

	"github.com/sluice-mta/sluice/pluginapi"
)

// tickImport is the host function the instrumented check calls each time
// its fuel runs out, every fuelPeriod checks: the guest's own deadline
// check (see instance.tick), independent of the watchdog goroutine being
// scheduled. A guest may not import it itself: inspectBinary admits only
// pluginapi's functions.
const tickImport = "__tick"

// withTick rewrites secs so that the module imports tickImport from the
// host module as function tick, the first index after its imported
// functions: every defined function's index moves up by one. It renumbers
// the references outside the code (exports, start, element segments,
// global initializers, the name section); instrumentBody renumbers those
// in the code (call, return_call, ref.func) with shiftFunc.
func withTick(secs []section) (out []section, tick uint32, err error) {
	var types uint32
	haveTypes, haveImports := false, false
	for _, s := range secs {
		r := &reader{b: s.body}
		switch s.id {
		case 1:
			types, haveTypes = r.u32(), true
		case 2:
			haveImports = true
			tick, _, r.err = countImports(s.body)
		}
		if r.err != nil {
			return nil, 0, fmt.Errorf("section %d: %w", s.id, r.err)
		}
	}
	tickType := []byte{0x60, 0x00, 0x00} // () -> ()
	entry := append(nameBytes(pluginapi.HostModule), nameBytes(tickImport)...)
	entry = append(append(entry, 0x00), uleb(types)...)
	add := func(id byte, body []byte) {
		// Insert before the first section that must follow id.
		i := 0
		for i < len(out) && (out[i].id == 0 || sectionRank[out[i].id] < sectionRank[id]) {
			i++
		}
		out = append(out[:i], append([]section{{id, body}}, out[i:]...)...)
	}
	for _, s := range secs {
		r := &reader{b: s.body}
		body := s.body
		switch s.id {
		case 1:
			n := r.u32()
			body = append(append(uleb(n+1), s.body[r.pos:]...), tickType...)
		case 2:
			n := r.u32()
			body = append(append(uleb(n+1), s.body[r.pos:]...), entry...)
		case 6:
			body, err = shiftGlobals(r, tick)
		case 7:
			body, err = shiftExports(r, tick)
		case 8:
			body = uleb(shiftFunc(r.u32(), tick))
		case 9:
			body, err = shiftElements(r, tick)
		case 0:
			if r.name() == "name" {
				var ok bool
				if body, ok = shiftNames(s.body, r, tick); !ok {
					continue // malformed: dropped (wazero ignores it then too)
				}
			}
		}
		if err == nil {
			err = r.err
		}
		if err != nil {
			return nil, 0, fmt.Errorf("section %d: %w", s.id, err)
		}
		out = append(out, section{s.id, body})
	}
	if !haveTypes {
		add(1, append(uleb(1), tickType...))
	}
	if !haveImports {
		add(2, append(uleb(1), entry...))
	}
	return out, tick, nil
}

// shiftFunc is the index of function f once tickImport is function tick.
func shiftFunc(f, tick uint32) uint32 {
	if f >= tick {
		return f + 1
	}
	return f
}

func nameBytes(s string) []byte { return append(uleb(uint32(len(s))), s...) }

// shiftExpr copies a constant expression, renumbering ref.func.
func shiftExpr(r *reader, out []byte, tick uint32) ([]byte, error) {
	for r.err == nil {
		at := r.pos
		op := r.byte()
		if op == 0xd2 { // ref.func
			out = append(append(out, op), uleb(shiftFunc(r.u32(), tick))...)
			continue
		}
		if err := skipImmediates(r, op); err != nil {
			return nil, err
		}
		out = append(out, r.b[at:r.pos]...)
		if op == 0x0b {
			break
		}
	}
	return out, r.err
}

// shiftGlobals rewrites the global section's initializers.
func shiftGlobals(r *reader, tick uint32) ([]byte, error) {
	n := r.u32()
	out := uleb(n)
	var err error
	for ; n > 0 && r.err == nil && err == nil; n-- {
		out = append(out, r.byte(), r.byte()) // type, mutability
		out, err = shiftExpr(r, out, tick)
	}
	return out, err
}

// shiftExports rewrites the export section's function indices.
func shiftExports(r *reader, tick uint32) ([]byte, error) {
	n := r.u32()
	out := uleb(n)
	for ; n > 0 && r.err == nil; n-- {
		name := r.bytes(r.u32())
		kind := r.byte()
		idx := r.u32()
		if kind == 0 {
			idx = shiftFunc(idx, tick)
		}
		out = append(append(append(out, nameBytes(string(name))...), kind), uleb(idx)...)
	}
	return out, r.err
}

// shiftElements rewrites the element section's function indices and
// expressions (the eight segment forms of the binary format).
func shiftElements(r *reader, tick uint32) ([]byte, error) {
	n := r.u32()
	out := uleb(n)
	var err error
	for ; n > 0 && r.err == nil && err == nil; n-- {
		flags := r.u32()
		out = append(out, uleb(flags)...)
		if flags&2 != 0 && flags&1 == 0 {
			out = append(out, uleb(r.u32())...) // table index
		}
		if flags&1 == 0 {
			if out, err = shiftExpr(r, out, tick); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 {
			out = append(out, r.byte()) // element kind or reference type
		}
		m := r.u32()
		out = append(out, uleb(m)...)
		for ; m > 0 && r.err == nil && err == nil; m-- {
			if flags&4 != 0 {
				out, err = shiftExpr(r, out, tick)
			} else {
				out = append(out, uleb(shiftFunc(r.u32(), tick))...)
			}
		}
	}
	return out, err
}

// shiftNames rewrites the "name" custom section whose body is sec (r is
// past its name): the module name is kept, function and local names are
// renumbered, other subsections are dropped. ok is false when it is
// malformed.
func shiftNames(sec []byte, r *reader, tick uint32) (_ []byte, ok bool) {
	out := append([]byte(nil), sec[:r.pos]...)
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		sub := &reader{b: r.bytes(r.u32())}
		var body []byte
		switch id {
		case 0:
			body = sub.b
		case 1:
			n := sub.u32()
			body = uleb(n)
			for ; n > 0 && sub.err == nil; n-- {
				body = append(body, uleb(shiftFunc(sub.u32(), tick))...)
				body = append(body, nameBytes(sub.name())...)
			}
		case 2:
			n := sub.u32()
			body = uleb(n)
			for ; n > 0 && sub.err == nil; n-- {
				body = append(body, uleb(shiftFunc(sub.u32(), tick))...)
				m := sub.u32()
				body = append(body, uleb(m)...)
				for ; m > 0 && sub.err == nil; m-- {
					body = append(body, uleb(sub.u32())...)
					body = append(body, nameBytes(sub.name())...)
				}
			}
		default:
			continue
		}
		if sub.err != nil {
			return nil, false
		}
		out = append(append(append(out, id), uleb(uint32(len(body)))...), body...)
	}
	return out, r.err == nil
}

// countImports walks an import section's body and counts the imported
// functions and globals (the first indices of each space).
func countImports(body []byte) (funcs, globals uint32, err error) {
	r := &reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.name()
		r.name()
		switch r.byte() {
		case 0:
			r.u32()
			funcs++
		case 1:
			r.byte()
			r.limits()
		case 2:
			r.limits()
		case 3:
			r.byte()
			r.byte()
			globals++
		case 4:
			r.byte()
			r.u32()
		}
	}
	return funcs, globals, r.err
}
