package filter

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// The wasm binding layer: each host function reads its arguments from the
// stack and guest memory (bounds-checked: a bad pointer is
// StatusBadArgument, never a trap), calls the call's Env and writes the
// result back. The Env travels in the instance, which is the call's context.

// hostFunc is the binding of one pluginapi function.
type hostFunc func(in *instance, s []uint64)

// hostFuncs maps every pluginapi function name to its binding.
func hostFuncs() map[string]hostFunc {
	return map[string]hostFunc{
		pluginapi.FuncGetProp: func(in *instance, s []uint64) {
			v, st := in.env.Prop(pluginapi.Prop(int32(s[0])))
			s[0] = in.outString(v, st, s[1], s[2])
		},
		pluginapi.FuncGetHeader: func(in *instance, s []uint64) {
			name, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			v, st := in.env.Header(name, int(int32(s[2])))
			s[0] = in.outString(v, st, s[3], s[4])
		},
		pluginapi.FuncGetHeaders: func(in *instance, s []uint64) {
			h, st := in.env.headerSection()
			if st != pluginapi.StatusOK {
				s[0] = result(0, st)
				return
			}
			s[0] = in.outHeader(h, s[0], s[1])
		},
		pluginapi.FuncReadBody: func(in *instance, s []uint64) {
			buf, ok := in.read(uint32(s[1]), uint32(s[2]))
			if !ok {
				s[0] = bad
				return
			}
			n, st := in.env.ReadBody(int64(s[0]), buf)
			s[0] = result(int32(n), st)
		},
		pluginapi.FuncAddHeader: strStr(func(e *Env, a, b string) pluginapi.Status { return e.AddHeader(a, b) }),
		pluginapi.FuncSetHeader: strStr(func(e *Env, a, b string) pluginapi.Status { return e.SetHeader(a, b) }),
		pluginapi.FuncDelHeader: str1(func(e *Env, a string) pluginapi.Status { return e.DelHeader(a) }),
		pluginapi.FuncAddRcpt:   str1(func(e *Env, a string) pluginapi.Status { return e.AddRcpt(a) }),
		pluginapi.FuncDelRcpt:   str1(func(e *Env, a string) pluginapi.Status { return e.DelRcpt(a) }),
		pluginapi.FuncRewriteRcpt: strStr(func(e *Env, a, b string) pluginapi.Status {
			return e.RewriteRcpt(a, b)
		}),
		pluginapi.FuncGetNote: func(in *instance, s []uint64) {
			key, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			v, st := in.env.Note(key)
			s[0] = in.outString(v, st, s[2], s[3])
		},
		pluginapi.FuncSetNote: strStr(func(e *Env, a, b string) pluginapi.Status { return e.SetNote(a, b) }),
		pluginapi.FuncGetConfig: func(in *instance, s []uint64) {
			key, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			v, st := in.env.Config(key)
			s[0] = in.outBytes(v, st, s[2], s[3])
		},
		pluginapi.FuncLog: func(in *instance, s []uint64) {
			if msg, ok := in.str(s[1], s[2]); ok {
				in.env.Log(int32(s[0]), msg)
			}
		},
		pluginapi.FuncNow: func(in *instance, s []uint64) { s[0] = uint64(in.env.Now()) },
		pluginapi.FuncAddScore: func(in *instance, s []uint64) {
			sym, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			s[0] = result(0, in.env.AddScore(sym, math.Float64frombits(s[2])))
		},
		pluginapi.FuncSetReply: func(in *instance, s []uint64) {
			enh, ok1 := in.str(s[1], s[2])
			text, ok2 := in.str(s[3], s[4])
			if !ok1 || !ok2 {
				s[0] = bad
				return
			}
			s[0] = result(0, in.env.SetReply(int32(s[0]), enh, text))
		},
		pluginapi.FuncSetRoute: str1(func(e *Env, a string) pluginapi.Status { return e.SetRoute(a) }),
		pluginapi.FuncDNSLookup: func(in *instance, s []uint64) {
			name, ok := in.str(s[1], s[2])
			if !ok {
				s[0] = bad
				return
			}
			v, st := in.env.DNSLookup(int32(s[0]), name)
			s[0] = in.outBytes(v, st, s[3], s[4])
		},
		pluginapi.FuncKVGet: func(in *instance, s []uint64) {
			key, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			v, st := in.env.KVGet(key)
			s[0] = in.outBytes(v, st, s[2], s[3])
		},
		pluginapi.FuncKVGetMany: func(in *instance, s []uint64) {
			keys, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			vs, st := in.env.KVGetMany(strings.Split(keys, "\n"))
			var out []byte
			for _, v := range vs {
				out = pluginapi.AppendKVValue(out, v)
			}
			s[0] = in.outBytes(out, st, s[2], s[3])
		},
		pluginapi.FuncKVSet: func(in *instance, s []uint64) {
			key, ok1 := in.str(s[0], s[1])
			val, ok2 := in.read(uint32(s[2]), uint32(s[3]))
			if !ok1 || !ok2 {
				s[0] = bad
				return
			}
			s[0] = result(0, in.env.KVSet(key, append([]byte(nil), val...), int64(s[4])))
		},
		pluginapi.FuncKVIncr: func(in *instance, s []uint64) {
			key, ok := in.str(s[0], s[1])
			out := uint32(s[4])
			if _, okOut := in.read(out, 8); !ok || !okOut {
				s[0] = bad
				return
			}
			n, st := in.env.KVIncr(key, int64(s[2]), int64(s[3]))
			if st == pluginapi.StatusOK {
				in.mem.WriteUint64Le(out, uint64(n))
			}
			s[0] = result(0, st)
		},
		pluginapi.FuncKVIncrMany: func(in *instance, s []uint64) {
			keys, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			ks := strings.Split(keys, "\n")
			if len(ks) > pluginapi.MaxKVIncrMany {
				s[0] = bad
				return
			}
			argPtr, outPtr := uint32(s[2]), uint32(s[3])
			raw, okArgs := in.read(argPtr, uint32(16*len(ks)))
			if _, okOut := in.read(outPtr, uint32(8*len(ks))); !okArgs || !okOut {
				s[0] = bad
				return
			}
			args := make([]int64, 2*len(ks))
			for i := range args {
				args[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			vs, st := in.env.KVIncrMany(ks, args)
			if st == pluginapi.StatusOK {
				for i, v := range vs {
					in.mem.WriteUint64Le(outPtr+uint32(8*i), uint64(v))
				}
			}
			s[0] = result(0, st)
		},
		pluginapi.FuncKVDel: str1(func(e *Env, a string) pluginapi.Status { return e.KVDel(a) }),
		pluginapi.FuncMetricAdd: func(in *instance, s []uint64) {
			name, ok := in.str(s[0], s[1])
			if !ok {
				s[0] = bad
				return
			}
			s[0] = result(0, in.env.MetricAdd(name, math.Float64frombits(s[2])))
		},
	}
}

// bad is StatusBadArgument as a stack value.
var bad = result(0, pluginapi.StatusBadArgument)

// result encodes n (success) or st (failure) as an i32 result.
func result(n int32, st pluginapi.Status) uint64 {
	if st != pluginapi.StatusOK {
		return uint64(uint32(st))
	}
	return uint64(uint32(n))
}

// read returns a view of guest memory, false when out of bounds.
func (in *instance) read(ptr, n uint32) ([]byte, bool) {
	if in.mem == nil {
		return nil, n == 0 && ptr == 0
	}
	return in.mem.Read(ptr, n)
}

// str copies a (ptr, len) string out of guest memory.
func (in *instance) str(ptr, n uint64) (string, bool) {
	b, ok := in.read(uint32(ptr), uint32(n))
	if !ok {
		return "", false
	}
	return string(b), true
}

// outString writes v into the guest buffer (buf, cap) when it fits and
// returns its full length, or the failure status.
func (in *instance) outString(v string, st pluginapi.Status, buf, capacity uint64) uint64 {
	if st != pluginapi.StatusOK {
		return result(0, st)
	}
	if uint64(len(v)) > math.MaxInt32 {
		return result(0, pluginapi.StatusTooLarge)
	}
	if _, ok := in.read(uint32(buf), uint32(capacity)); !ok {
		return bad
	}
	if uint64(len(v)) <= uint64(uint32(capacity)) && len(v) > 0 {
		in.mem.WriteString(uint32(buf), v)
	}
	return uint64(uint32(len(v)))
}

func (in *instance) outBytes(v []byte, st pluginapi.Status, buf, capacity uint64) uint64 {
	if st != pluginapi.StatusOK {
		return result(0, st)
	}
	if uint64(len(v)) > math.MaxInt32 {
		return result(0, pluginapi.StatusTooLarge)
	}
	if _, ok := in.read(uint32(buf), uint32(capacity)); !ok {
		return bad
	}
	if uint64(len(v)) <= uint64(uint32(capacity)) && len(v) > 0 {
		in.mem.Write(uint32(buf), v)
	}
	return uint64(uint32(len(v)))
}

// outHeader is outBytes for the header section, written into the guest
// buffer (buf, cap) without a copy on the host first: one allocation and
// one copy of the section less a read.
func (in *instance) outHeader(h *mail.Header, buf, capacity uint64) uint64 {
	n := h.Len()
	if uint64(n) > math.MaxInt32 {
		return result(0, pluginapi.StatusTooLarge)
	}
	dst, ok := in.read(uint32(buf), uint32(capacity))
	if !ok {
		return bad
	}
	if n <= len(dst) && n > 0 {
		h.AppendTo(dst[:0:n]) // fills dst: Len is what AppendTo appends
	}
	return uint64(uint32(n))
}

func str1(f func(e *Env, a string) pluginapi.Status) hostFunc {
	return func(in *instance, s []uint64) {
		a, ok := in.str(s[0], s[1])
		if !ok {
			s[0] = bad
			return
		}
		s[0] = result(0, f(&in.env, a))
	}
}

func strStr(f func(e *Env, a, b string) pluginapi.Status) hostFunc {
	return func(in *instance, s []uint64) {
		a, ok1 := in.str(s[0], s[1])
		b, ok2 := in.str(s[2], s[3])
		if !ok1 || !ok2 {
			s[0] = bad
			return
		}
		s[0] = result(0, f(&in.env, a, b))
	}
}

// instanceOf finds the instance of the running call.
func instanceOf(ctx context.Context) *instance {
	if in, ok := ctx.(*instance); ok {
		return in
	}
	in, _ := ctx.Value(instKey{}).(*instance)
	return in
}

// instantiateHostModule registers module "sluice" in rt.
func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(pluginapi.HostModule)
	impl := hostFuncs()
	for _, f := range pluginapi.Funcs() {
		fn, ok := impl[f.Name]
		if !ok {
			return fmt.Errorf("host function %s has no binding", f.Name)
		}
		nres := len(f.Results)
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, s []uint64) {
			in := instanceOf(ctx)
			if in == nil || in.env.spec == nil {
				// Called outside a hook and init (from _initialize or
				// sluice_features): nothing to act on.
				if nres > 0 {
					s[0] = result(0, pluginapi.StatusWrongStage)
				}
				return
			}
			fn(in, s)
		}), valTypes(f.Params), valTypes(f.Results)).Export(f.Name)
	}
	// The guests' deadline check (instrument), not a pluginapi function.
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, _ []uint64) {
		if in := instanceOf(ctx); in != nil {
			in.tick()
		}
	}), nil, nil).Export(tickImport)
	_, err := b.Instantiate(ctx)
	return err
}

func valTypes(vs []pluginapi.ValType) []api.ValueType {
	out := make([]api.ValueType, len(vs))
	for i, v := range vs {
		out[i] = api.ValueType(v)
	}
	return out
}
