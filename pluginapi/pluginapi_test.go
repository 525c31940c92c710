package pluginapi_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

func TestFeaturesString(t *testing.T) {
	tests := []struct {
		f    pluginapi.Features
		want string
	}{
		{0, "none"},
		{pluginapi.FeatureInit, "init"},
		{1 << 30, "bit 30"},
		{pluginapi.FeatureInit | 1<<5 | 1<<31, "init, bit 5, bit 31"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("Features(%#x).String() = %q, want %q", uint32(tt.f), got, tt.want)
		}
	}
	// Every known feature has a name.
	for i := 0; i < 32; i++ {
		if f := pluginapi.Features(1) << i; pluginapi.KnownFeatures&f != 0 && strings.HasPrefix(f.String(), "bit ") {
			t.Errorf("known feature bit %d has no name", i)
		}
	}
}

// TestRestrictedFuncsReturnStatus: a function limited to some hooks or to a
// grant must return an i32, or the guest could not see the refusal.
func TestRestrictedFuncsReturnStatus(t *testing.T) {
	for _, f := range pluginapi.Funcs() {
		if (f.Cap != "" || f.Hooks != 0) && (len(f.Results) != 1 || f.Results[0] != pluginapi.I32) {
			t.Errorf("%s is restricted (grant %q, hooks %b) but does not return an i32 status", f.Name, f.Cap, f.Hooks)
		}
		if f.Hooks>>pluginapi.NumHooks != 0 {
			t.Errorf("%s: hooks %b name a hook that does not exist", f.Name, f.Hooks)
		}
	}
}

func TestAllowedAt(t *testing.T) {
	every := pluginapi.Func{Name: "every"}
	deliver := pluginapi.Func{Name: "deliver", Hooks: 1 << pluginapi.HookDeliver}
	tests := []struct {
		f    pluginapi.Func
		h    pluginapi.Hook
		want bool
	}{
		{every, pluginapi.HookInit, true},
		{every, pluginapi.HookConnect, true},
		{every, pluginapi.HookDeliver, true},
		{deliver, pluginapi.HookDeliver, true},
		{deliver, pluginapi.HookData, false},
		{deliver, pluginapi.HookInit, false},
		{deliver, pluginapi.NumHooks, false},
	}
	for _, tt := range tests {
		if got := tt.f.AllowedAt(tt.h); got != tt.want {
			t.Errorf("%s.AllowedAt(%v) = %v, want %v", tt.f.Name, tt.h, got, tt.want)
		}
	}
	if pluginapi.PropBodySize.AllowedAt(pluginapi.HookRcpt) || !pluginapi.PropBodySize.AllowedAt(pluginapi.HookData) ||
		!pluginapi.PropClientIP.AllowedAt(pluginapi.HookInit) {
		t.Errorf("Prop.AllowedAt disagrees with Prop.Hooks")
	}
}

// hookNames renders a hook bit set as ABI.md's tables do.
func hookNames(set uint32) string {
	if set == 0 {
		return "any"
	}
	var hs []string
	for h := pluginapi.Hook(0); h < pluginapi.NumHooks; h++ {
		if set&(1<<h) != 0 {
			hs = append(hs, h.String())
		}
	}
	return strings.Join(hs, ", ")
}

// TestABIDocProps checks the property table in ABI.md against Prop.Hooks.
func TestABIDocProps(t *testing.T) {
	doc := readFile(t, "ABI.md")
	rows := regexp.MustCompile(`(?m)^  \| [a-zA-Z ]+ \| ([0-9]+) \| ([a-z, ]+) \| .* \|$`).FindAllStringSubmatch(doc, -1)
	seen := map[pluginapi.Prop]bool{}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		p := pluginapi.Prop(n)
		seen[p] = true
		if want := hookNames(p.Hooks()); r[2] != want {
			t.Errorf("ABI.md: property %d hooks %q, pluginapi %q", n, r[2], want)
		}
	}
	for p := pluginapi.Prop(0); p < pluginapi.NumProps; p++ {
		if !seen[p] {
			t.Errorf("ABI.md has no row for property %d", p)
		}
	}
}

// TestABIDocFeatures checks the feature table in ABI.md against
// KnownFeatures, and that the exports table lists sluice_features.
func TestABIDocFeatures(t *testing.T) {
	doc := readFile(t, "ABI.md")
	for i := 0; i < 32; i++ {
		f := pluginapi.Features(1) << i
		if pluginapi.KnownFeatures&f == 0 {
			continue
		}
		row := "| `" + f.String() + "` | " + strconv.Itoa(i) + " | `" + strconv.FormatUint(uint64(f), 10) + "` |"
		if !strings.Contains(doc, row) {
			t.Errorf("ABI.md has no row %q", row)
		}
	}
	if !strings.Contains(doc, "| `"+pluginapi.ExportFeatures+"` | `(host_features i32) -> i32` |") {
		t.Errorf("ABI.md's exports table lacks %s", pluginapi.ExportFeatures)
	}
}
