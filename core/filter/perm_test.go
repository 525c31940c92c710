package filter

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-mta/sluice/pluginapi"
)

// memModule is a module of one exported page of memory and nothing else.
var memModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: one memory, min 1 page
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export "memory"
}

// permHarness calls host function bindings directly, as a guest would,
// with all-zero arguments: empty strings and buffers at offset 0 of a real
// guest memory, so every argument is in bounds.
type permHarness struct {
	t    *testing.T
	in   *instance
	impl map[string]hostFunc
	caps []string // every grant the table names
}

func newPermHarness(t *testing.T) *permHarness {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { _ = rt.Close(ctx) })
	mod, err := rt.Instantiate(ctx, memModule)
	if err != nil {
		t.Fatal(err)
	}
	ph := &permHarness{t: t, in: &instance{mem: mod.Memory()}, impl: hostFuncs()}
	seen := map[string]bool{}
	for _, f := range pluginapi.Funcs() {
		if f.Cap != "" && !seen[f.Cap] {
			seen[f.Cap] = true
			ph.caps = append(ph.caps, f.Cap)
		}
	}
	return ph
}

// call runs f at hook with grants (every service present) and returns its
// i32 result; args go first on the stack, the rest are zero.
func (ph *permHarness) call(f pluginapi.Func, hook pluginapi.Hook, grants []string, args ...uint64) int32 {
	ph.t.Helper()
	bind, ok := ph.impl[f.Name]
	if !ok {
		ph.t.Fatalf("%s has no binding", f.Name)
	}
	spec := &EnvSpec{Plugin: "perm", Grants: grants, KV: &fakeKV{}, Resolver: fakeResolver{}, Metrics: &fakeMetrics{}}
	ph.in.env = Env{ctx: context.Background(), hook: hook, txn: newTxn(), spec: spec}
	defer func() { ph.in.env = Env{} }()
	stack := make([]uint64, max(len(f.Params), len(f.Results), 1))
	copy(stack, args)
	bind(ph.in, stack)
	return int32(uint32(stack[0]))
}

// without returns caps less c.
func without(caps []string, c string) []string {
	var out []string
	for _, x := range caps {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

// allHooks are the stages a call can happen at, init included.
func allHooks() []pluginapi.Hook {
	hs := []pluginapi.Hook{pluginapi.HookInit}
	for h := pluginapi.Hook(0); h < pluginapi.NumHooks; h++ {
		hs = append(hs, h)
	}
	return hs
}

// TestFuncPermissionsFromTable drives every host function of
// pluginapi.Funcs through its binding at every hook, with and without its
// grant: outside the row's hooks it returns StatusWrongStage, without the
// row's grant (all the others given) StatusDenied, and otherwise neither. A
// function added to the table is covered without touching this test.
func TestFuncPermissionsFromTable(t *testing.T) {
	ph := newPermHarness(t)
	wrong, denied := int32(pluginapi.StatusWrongStage), int32(pluginapi.StatusDenied)
	for _, f := range pluginapi.Funcs() {
		if len(f.Results) != 1 || f.Results[0] != pluginapi.I32 {
			continue // cannot report a refusal; pluginapi's tests keep it unrestricted
		}
		for _, h := range allHooks() {
			got := ph.call(f, h, ph.caps)
			switch {
			case !f.AllowedAt(h) && got != wrong:
				t.Errorf("%s at %v (hooks %q): %d, want StatusWrongStage", f.Name, h, hookList(f.Hooks), got)
			case f.AllowedAt(h) && (got == wrong || got == denied):
				t.Errorf("%s at %v, granted: %v, want it allowed", f.Name, h, pluginapi.Status(got))
			}
			if f.Cap == "" || !f.AllowedAt(h) {
				continue
			}
			if got := ph.call(f, h, without(ph.caps, f.Cap)); got != denied {
				t.Errorf("%s at %v without grant %q: %d, want StatusDenied", f.Name, h, f.Cap, got)
			}
		}
	}
}

// TestPropPermissionsFromTable: get_prop answers each property only at the
// hooks pluginapi's Prop.Hooks gives it.
func TestPropPermissionsFromTable(t *testing.T) {
	ph := newPermHarness(t)
	var getProp pluginapi.Func
	for _, f := range pluginapi.Funcs() {
		if f.Name == pluginapi.FuncGetProp {
			getProp = f
		}
	}
	for p := pluginapi.Prop(0); p < pluginapi.NumProps; p++ {
		for _, h := range allHooks() {
			got := ph.call(getProp, h, nil, uint64(p))
			switch {
			case !p.AllowedAt(h) && got != int32(pluginapi.StatusWrongStage):
				t.Errorf("property %d at %v: %d, want StatusWrongStage", p, h, got)
			case p.AllowedAt(h) && got < 0:
				t.Errorf("property %d at %v: %v, want a value", p, h, pluginapi.Status(got))
			}
		}
	}
}
