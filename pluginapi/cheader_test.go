package pluginapi_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

const cHeader = "../sdk/c/sluice.h"

// cDefines reads the header's "#define SLUICE_NAME value" integer constants.
func cDefines(t *testing.T, src string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^#define (SLUICE_[A-Z0-9_]+) \(?(-?[0-9]+)\)?$`).FindAllStringSubmatch(src, -1) {
		v, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[1]] = v
	}
	return out
}

// wantCConstants is every constant of pluginapi under the name sluice.h
// gives it.
func wantCConstants() map[string]int64 {
	want := map[string]int64{
		"SLUICE_ABI_VERSION":   int64(pluginapi.Version),
		"SLUICE_FEATURE_INIT":  int64(pluginapi.FeatureInit),
		"SLUICE_FEATURE_ENTRY": int64(pluginapi.FeatureEntry),
		"SLUICE_HOOK_INIT":     int64(pluginapi.HookInit),
		"SLUICE_OK":            int64(pluginapi.StatusOK), "SLUICE_NOT_FOUND": int64(pluginapi.StatusNotFound),
		"SLUICE_DENIED": int64(pluginapi.StatusDenied), "SLUICE_BAD_ARGUMENT": int64(pluginapi.StatusBadArgument),
		"SLUICE_WRONG_STAGE": int64(pluginapi.StatusWrongStage), "SLUICE_TEMP_FAIL": int64(pluginapi.StatusTempFail),
		"SLUICE_TOO_LARGE": int64(pluginapi.StatusTooLarge), "SLUICE_MAX_KV_GET_MANY": pluginapi.MaxKVGetMany,
		"SLUICE_MAX_KV_INCR_MANY": pluginapi.MaxKVIncrMany,
		"SLUICE_DNS_A":            int64(pluginapi.DNSA), "SLUICE_DNS_AAAA": int64(pluginapi.DNSAAAA), "SLUICE_DNS_MX": int64(pluginapi.DNSMX),
		"SLUICE_DNS_TXT": int64(pluginapi.DNSTXT), "SLUICE_DNS_PTR": int64(pluginapi.DNSPTR),
		"SLUICE_LOG_DEBUG": int64(pluginapi.LogDebug), "SLUICE_LOG_INFO": int64(pluginapi.LogInfo),
		"SLUICE_LOG_WARN": int64(pluginapi.LogWarn), "SLUICE_LOG_ERROR": int64(pluginapi.LogError),
	}
	for h := pluginapi.Hook(0); h < pluginapi.NumHooks; h++ {
		want["SLUICE_HOOK_"+strings.ToUpper(h.String())] = int64(h)
	}
	for v := pluginapi.Verdict(0); v.Valid(); v++ {
		want["SLUICE_"+strings.ToUpper(v.String())] = int64(v)
	}
	props := []string{"CLIENT_IP", "CLIENT_PORT", "CLIENT_RDNS", "HELO", "TLS", "AUTH_USER", "MAIL_FROM", "RCPT", "RCPTS",
		"QUEUE_ID", "HOOK", "LISTENER", "BODY_SIZE", "DESTINATION", "ATTEMPT", "LOCAL_IP", "AUTH_RESULTS", "RDNS_STATUS", "CLIENT_PTR", "PLUGIN"}
	for i, p := range props {
		want["SLUICE_PROP_"+p] = int64(i)
	}
	// A property added to pluginapi without a name here fails the test.
	for p := pluginapi.Prop(len(props)); p < pluginapi.NumProps; p++ {
		want[fmt.Sprintf("SLUICE_PROP_%d (add it to sluice.h and this test)", p)] = int64(p)
	}
	return want
}

// TestCHeader keeps sdk/c/sluice.h in step with pluginapi: every constant
// has pluginapi's value, every host function is imported from
// pluginapi.HostModule under its name with its value types, and nothing
// else is.
func TestCHeader(t *testing.T) {
	src := readFile(t, cHeader)
	got := cDefines(t, src)
	for name, v := range wantCConstants() {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("sluice.h does not define %s (%d)", name, v)
		case g != v:
			t.Errorf("sluice.h: %s is %d, pluginapi says %d", name, g, v)
		}
	}
	if !strings.Contains(src, `#define SLUICE_IMPORT(name) __attribute__((import_module("`+pluginapi.HostModule+`"), import_name(name)))`) {
		t.Errorf("sluice.h: SLUICE_IMPORT does not import from module %q", pluginapi.HostModule)
	}
	decl := regexp.MustCompile(`(?m)^SLUICE_IMPORT\("([a-z_]+)"\) (void|int32_t|int64_t|double) sluice_([a-z_]+)\(([^)]*)\);$`)
	seen := map[string]bool{}
	for _, m := range decl.FindAllStringSubmatch(src, -1) {
		name, ret, cname, params := m[1], m[2], m[3], m[4]
		if cname != name {
			t.Errorf("sluice.h: import %q is declared as sluice_%s; name it sluice_%s", name, cname, name)
		}
		seen[name] = true
		f, ok := funcByName(name)
		if !ok {
			t.Errorf("sluice.h imports %q, which pluginapi does not define", name)
			continue
		}
		var ps []string
		if params != "void" {
			for _, p := range strings.Split(params, ",") {
				ps = append(ps, cValType(p))
			}
		}
		if got, want := strings.Join(ps, " "), valTypes(f.Params); got != want {
			t.Errorf("sluice.h: %s params %q, pluginapi %q", name, got, want)
		}
		if got, want := cValType(ret+" r"), valTypes(f.Results); got != want {
			t.Errorf("sluice.h: %s result %q, pluginapi %q", name, got, want)
		}
	}
	for _, f := range pluginapi.Funcs() {
		if !seen[f.Name] {
			t.Errorf("sluice.h does not import %s", f.Name)
		}
	}
	for _, e := range []string{pluginapi.ExportABIVersion, pluginapi.ExportHooks, pluginapi.ExportOnHook, pluginapi.ExportInit, pluginapi.ExportFeatures} {
		if !strings.Contains(src, `SLUICE_EXPORT("`+e+`")`) {
			t.Errorf("sluice.h does not show how to export %s", e)
		}
	}
}

func funcByName(name string) (pluginapi.Func, bool) {
	for _, f := range pluginapi.Funcs() {
		if f.Name == name {
			return f, true
		}
	}
	return pluginapi.Func{}, false
}

// cValType maps a C parameter declaration to its wasm32 value type:
// pointers and int32_t are i32, int64_t i64, double f64, void none.
func cValType(p string) string {
	p = strings.TrimSpace(p)
	switch {
	case strings.Contains(p, "*"), strings.HasPrefix(p, "int32_t "):
		return "i32"
	case strings.HasPrefix(p, "int64_t "):
		return "i64"
	case strings.HasPrefix(p, "double "):
		return "f64"
	case strings.HasPrefix(p, "void "):
		return ""
	}
	return "unknown type " + p
}

func valTypes(vs []pluginapi.ValType) string {
	names := map[pluginapi.ValType]string{pluginapi.I32: "i32", pluginapi.I64: "i64", pluginapi.F64: "f64"}
	var s []string
	for _, v := range vs {
		s = append(s, names[v])
	}
	return strings.Join(s, " ")
}
