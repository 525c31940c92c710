package sdk

import (
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// entryHost names the plugin to run (PropPlugin), records the log and the
// reply; it has nothing else.
type entryHost struct {
	Host
	entry  string
	logged []string
}

func (h *entryHost) Prop(p pluginapi.Prop) (string, pluginapi.Status) {
	if p != pluginapi.PropPlugin || h.entry == "" {
		return "", pluginapi.StatusNotFound
	}
	return h.entry, pluginapi.StatusOK
}

func (h *entryHost) Log(level int32, msg string) { h.logged = append(h.logged, msg) }

func (h *entryHost) SetReply(int32, string, string) pluginapi.Status { return pluginapi.StatusOK }

// registrations swaps in empty registrations for one test.
func registrations(t *testing.T) {
	t.Helper()
	saved, savedNamed := unnamed, named
	unnamed, named, current = registry{}, nil, &unnamed
	t.Cleanup(func() { unnamed, named, current = saved, savedNamed, &unnamed })
}

// TestPluginBundle: a module holding two plugins runs the one the host
// names, asks for the entry feature, and refuses a name it does not hold
// with the names it holds.
func TestPluginBundle(t *testing.T) {
	registrations(t)
	var ran []string
	Plugin("alpha", func() {
		OnInit(func(*Ctx) error { ran = append(ran, "alpha init"); return nil })
		OnMail(func(*Ctx) Verdict { ran = append(ran, "alpha mail"); return Continue() })
	})
	Plugin("beta", func() {
		OnRcpt(func(*Ctx) Verdict { ran = append(ran, "beta rcpt"); return Reject(550, "5.7.1", "no") })
	})
	if got, want := Features(), pluginapi.FeatureEntry|pluginapi.FeatureInit; got != want {
		t.Errorf("Features() = %v, want %v", got, want)
	}
	if got, want := Hooks(), uint32(1<<pluginapi.HookMail|1<<pluginapi.HookRcpt); got != want {
		t.Errorf("Hooks() = %b, want %b (all the plugins')", got, want)
	}

	beta := &entryHost{entry: "beta"}
	if err := DispatchInit(beta); err != nil {
		t.Errorf("beta's init: %v, want none (beta has no init function)", err)
	}
	if v := Dispatch(pluginapi.HookMail, beta); v.Kind != pluginapi.Continue {
		t.Errorf("beta at mail: %v, want continue (beta has no mail handler)", v.Kind)
	}
	if v := Dispatch(pluginapi.HookRcpt, beta); v.Kind != pluginapi.Reject {
		t.Errorf("beta at rcpt: %v, want reject", v.Kind)
	}
	alpha := &entryHost{entry: "alpha"}
	if err := DispatchInit(alpha); err != nil {
		t.Errorf("alpha's init: %v", err)
	}
	Dispatch(pluginapi.HookMail, alpha)
	Dispatch(pluginapi.HookRcpt, alpha)
	if got, want := strings.Join(ran, ", "), "beta rcpt, alpha init, alpha mail"; got != want {
		t.Errorf("ran %q, want %q", got, want)
	}
	r, _ := pick(alpha)
	if got := r.hooks(); got != 1<<pluginapi.HookMail {
		t.Errorf("alpha's hooks %b, want mail only", got)
	}

	other := &entryHost{entry: "gamma"}
	err := DispatchInit(other)
	if err == nil || !strings.Contains(err.Error(), `holds the plugins alpha, beta, none named "gamma"`) ||
		!strings.Contains(err.Error(), `entry = "NAME"`) {
		t.Errorf("init as gamma: %v, want a refusal naming alpha and beta and the entry key", err)
	}
	if len(other.logged) == 0 || !strings.Contains(other.logged[0], "none named") {
		t.Errorf("the refusal was not logged (the wasm host's reason): %q", other.logged)
	}
	if err := DispatchInit(&entryHost{}); err == nil || !strings.Contains(err.Error(), `"entry" feature`) {
		t.Errorf("init on a host that names no plugin: %v, want a refusal naming the feature", err)
	}
}

// TestPluginSingle: a module with one named plugin runs it whatever the
// plugin is called, and requires no feature it does not use.
func TestPluginSingle(t *testing.T) {
	registrations(t)
	mail := 0
	Plugin("only", func() {
		OnMail(func(*Ctx) Verdict { mail++; return Continue() })
	})
	if got := Features(); got != 0 {
		t.Errorf("Features() = %v, want none", got)
	}
	if got := Hooks(); got != 1<<pluginapi.HookMail {
		t.Errorf("Hooks() = %b, want mail", got)
	}
	Dispatch(pluginapi.HookMail, &entryHost{entry: "renamed"})
	Dispatch(pluginapi.HookMail, &entryHost{})
	if mail != 2 {
		t.Errorf("the mail handler ran %d times, want 2", mail)
	}
}

// TestPluginMixed: handlers registered both inside and outside Plugin are
// refused at init rather than run as one plugin.
func TestPluginMixed(t *testing.T) {
	registrations(t)
	OnData(func(*Ctx) Verdict { return Continue() })
	Plugin("named", func() { OnMail(func(*Ctx) Verdict { return Continue() }) })
	if err := DispatchInit(&entryHost{entry: "named"}); err != errMixed {
		t.Errorf("init: %v, want %v", err, errMixed)
	}
}

// TestPluginRegistrationMistakes: a nameless, nested or repeated Plugin
// call panics at init, where the author sees it.
func TestPluginRegistrationMistakes(t *testing.T) {
	registrations(t)
	for name, f := range map[string]func(){
		"no name":  func() { Plugin("", func() {}) },
		"nested":   func() { Plugin("outer", func() { Plugin("inner", func() {}) }) },
		"repeated": func() { Plugin("twice", func() {}); Plugin("twice", func() {}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
				current = &unnamed
			}()
			f()
		}()
	}
}
