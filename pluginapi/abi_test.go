package pluginapi_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

const watFile = "../examples/wat-minimal/wat-minimal.wat"

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestABIDocIncludesExample keeps the worked example in ABI.md identical to
// the file the tests assemble and run.
func TestABIDocIncludesExample(t *testing.T) {
	doc, wat := readFile(t, "ABI.md"), readFile(t, watFile)
	if !strings.Contains(doc, "```wat\n"+wat+"```\n") {
		t.Errorf("ABI.md does not include %s verbatim in a ```wat block; copy the file into it", watFile)
	}
}

// TestABIDocFuncs checks the host function table in ABI.md against Funcs:
// every function, its value types, its grant and its hooks.
func TestABIDocFuncs(t *testing.T) {
	doc := readFile(t, "ABI.md")
	types := regexp.MustCompile(`\b(i32|i64|f64)\b`)
	names := map[pluginapi.ValType]string{pluginapi.I32: "i32", pluginapi.I64: "i64", pluginapi.F64: "f64"}
	join := func(vs []pluginapi.ValType) string {
		var s []string
		for _, v := range vs {
			s = append(s, names[v])
		}
		return strings.Join(s, " ")
	}
	for _, f := range pluginapi.Funcs() {
		row := regexp.MustCompile("(?m)^\\| `" + f.Name + "` \\| `([^`]*)` \\| ([a-z]*) *\\| ([a-z, ]+) \\|$").FindStringSubmatch(doc)
		if row == nil {
			t.Errorf("ABI.md has no table row for %s", f.Name)
			continue
		}
		params, results, _ := strings.Cut(row[1], "->")
		if got := strings.Join(types.FindAllString(params, -1), " "); got != join(f.Params) {
			t.Errorf("%s: ABI.md params %q, pluginapi %q", f.Name, got, join(f.Params))
		}
		if got := strings.Join(types.FindAllString(results, -1), " "); got != join(f.Results) {
			t.Errorf("%s: ABI.md results %q, pluginapi %q", f.Name, got, join(f.Results))
		}
		if row[2] != f.Cap {
			t.Errorf("%s: ABI.md grant %q, pluginapi %q", f.Name, row[2], f.Cap)
		}
		hooks := "any"
		if f.Hooks != 0 {
			var hs []string
			for h := pluginapi.Hook(0); h < pluginapi.NumHooks; h++ {
				if f.Hooks&(1<<h) != 0 {
					hs = append(hs, h.String())
				}
			}
			hooks = strings.Join(hs, ", ")
		}
		if row[3] != hooks {
			t.Errorf("%s: ABI.md hooks %q, pluginapi %q", f.Name, row[3], hooks)
		}
	}
}

// TestWATExample assembles the example with wat2wasm and runs it in the
// real host: the ABI needs nothing Go-specific.
func TestWATExample(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not installed (Debian package wabt; scripts/install-test-deps.sh installs it)")
	}
	wasm := filepath.Join(t.TempDir(), "wat-minimal.wasm")
	if out, err := exec.Command(wat2wasm, watFile, "-o", wasm).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s", watFile, err, out)
	}
	tx := sdktest.Txn{ClientIP: "192.0.2.1", From: "a@example.org", Message: []byte("Subject: hi\n\nbody\n")}
	r := sdktest.WasmFile(t, wasm, tx)
	if res := r.Run(pluginapi.HookConnect); res.Verdict != pluginapi.Continue {
		t.Errorf("connect (not implemented): %v", res.Verdict)
	}
	if res := r.RunRcpt("ok@example.com"); res.Verdict != pluginapi.Continue {
		t.Errorf("rcpt ok@example.com: %v %s", res.Verdict, res.Reply())
	}
	res := r.RunRcpt("blocked@example.com")
	if res.Verdict != pluginapi.Reject || res.Reply() != "550 5.7.1 blocked by wat-minimal" {
		t.Errorf("rcpt blocked@example.com: %v %q, want reject 550 5.7.1 blocked by wat-minimal", res.Verdict, res.Reply())
	}
	if !res.HasLog("wat-minimal: refusing recipient") {
		t.Errorf("rcpt: log line missing: %q", res.Logs)
	}
	if res := r.RunRcpt("blocked@example.co"); res.Verdict != pluginapi.Continue {
		t.Errorf("rcpt blocked@example.co: %v", res.Verdict)
	}
	res = r.Run(pluginapi.HookData)
	if res.Verdict != pluginapi.Continue || !strings.HasPrefix(res.Header, "X-Wat: hello from wat\r\nSubject: hi\r\n") {
		t.Errorf("data: %v, header %q", res.Verdict, res.Header)
	}
	if strings.Join(res.Rcpts, ",") != "ok@example.com,blocked@example.co" {
		t.Errorf("rcpts %q", res.Rcpts)
	}
}

// TestCExample compiles the C plugin of ABI.md, as the block stands in
// the document, with the build line it gives (Debian's clang and lld) and
// runs it in the real host.
func TestCExample(t *testing.T) {
	for _, tool := range []string{"clang", "wasm-ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: ABI.md's C example is built with Debian's clang and lld (scripts/install-test-deps.sh installs them)", tool)
		}
	}
	doc := readFile(t, "ABI.md")
	_, sec, ok := strings.Cut(doc, "## A complete plugin in C\n")
	if !ok {
		t.Fatal("ABI.md has no section \"A complete plugin in C\"")
	}
	_, code, ok := strings.Cut(sec, "```c\n")
	code, _, ok2 := strings.Cut(code, "```\n")
	if !ok || !ok2 {
		t.Fatal("the C section has no ```c block")
	}
	dir := t.TempDir()
	src, wasm := filepath.Join(dir, "c-minimal.c"), filepath.Join(dir, "c-minimal.wasm")
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sec, "clang --target=wasm32 -O2 -nostdlib -ffreestanding -Wl,--no-entry \\\n\t-I sdk/c -o c-minimal.wasm c-minimal.c\n") {
		t.Error("ABI.md's C build line is not the one this test runs")
	}
	cmd := exec.Command("clang", "--target=wasm32", "-O2", "-nostdlib", "-ffreestanding", "-Wl,--no-entry", "-I", "../sdk/c", "-o", wasm, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	tx := sdktest.Txn{ClientIP: "192.0.2.1", From: "a@example.org", Message: []byte("Subject: hi\n\nbody\n")}
	r := sdktest.WasmFile(t, wasm, tx)
	if res := r.RunRcpt("ok@example.com"); res.Verdict != pluginapi.Continue {
		t.Errorf("rcpt ok@example.com: %v %s", res.Verdict, res.Reply())
	}
	res := r.RunRcpt("blocked@example.com")
	if res.Verdict != pluginapi.Reject || res.Reply() != "550 5.7.1 blocked by c-minimal" || !res.HasLog("c-minimal: refusing recipient") {
		t.Errorf("rcpt blocked@example.com: %v %q %q", res.Verdict, res.Reply(), res.Logs)
	}
	res = r.Run(pluginapi.HookData)
	if res.Verdict != pluginapi.Continue || !strings.HasPrefix(res.Header, "X-C: hello from c\r\nSubject: hi\r\n") {
		t.Errorf("data: %v, header %q", res.Verdict, res.Header)
	}
}

// TestABIDocCodes checks the value tables of ABI.md (hooks, verdicts,
// statuses, properties, features) against pluginapi.
func TestABIDocCodes(t *testing.T) {
	doc := readFile(t, "ABI.md")
	row := func(name string, v int64) {
		t.Helper()
		re := regexp.MustCompile("(?m)^\\| `?" + regexp.QuoteMeta(name) + "`? \\| (-?[0-9]+) \\|")
		m := re.FindStringSubmatch(doc)
		if m == nil {
			t.Errorf("ABI.md has no table row for %s", name)
			return
		}
		if m[1] != strconv.FormatInt(v, 10) {
			t.Errorf("ABI.md: %s is %s, pluginapi says %d", name, m[1], v)
		}
	}
	for h := pluginapi.Hook(0); h < pluginapi.NumHooks; h++ {
		row(h.String(), int64(h))
	}
	for v := pluginapi.Verdict(0); v.Valid(); v++ {
		row(v.String(), int64(v))
	}
	for name, st := range map[string]pluginapi.Status{"ok": pluginapi.StatusOK, "not found": pluginapi.StatusNotFound,
		"denied": pluginapi.StatusDenied, "bad argument": pluginapi.StatusBadArgument, "wrong stage": pluginapi.StatusWrongStage,
		"temporary failure": pluginapi.StatusTempFail, "too large": pluginapi.StatusTooLarge} {
		row(name, int64(st))
	}
	props := map[string]pluginapi.Prop{"client IP": pluginapi.PropClientIP, "client port": pluginapi.PropClientPort,
		"reverse DNS": pluginapi.PropClientRDNS, "helo": pluginapi.PropHelo, "TLS": pluginapi.PropTLS,
		"auth user": pluginapi.PropAuthUser, "mail from": pluginapi.PropMailFrom, "rcpt": pluginapi.PropRcpt,
		"rcpts": pluginapi.PropRcpts, "queue ID": pluginapi.PropQueueID, "hook": pluginapi.PropHook,
		"listener": pluginapi.PropListener, "body size": pluginapi.PropBodySize, "destination": pluginapi.PropDestination,
		"attempt": pluginapi.PropAttempt, "local IP": pluginapi.PropLocalIP, "auth results": pluginapi.PropAuthResults,
		"rDNS status": pluginapi.PropRDNSStatus, "client PTR": pluginapi.PropClientPTR, "plugin": pluginapi.PropPlugin}
	if len(props) != int(pluginapi.NumProps) {
		t.Errorf("pluginapi has %d properties, this test names %d: add the new one here and to ABI.md", pluginapi.NumProps, len(props))
	}
	for name, p := range props {
		m := regexp.MustCompile("(?m)^  \\| " + regexp.QuoteMeta(name) + " \\| ([0-9]+) \\|").FindStringSubmatch(doc)
		if m == nil || m[1] != strconv.Itoa(int(p)) {
			t.Errorf("ABI.md: property %s: row %v, pluginapi says %d", name, m, p)
		}
	}
	if m := regexp.MustCompile("(?m)^\\| `init` \\| 0 \\| `([0-9]+)` \\|").FindStringSubmatch(doc); m == nil || m[1] != strconv.Itoa(int(pluginapi.FeatureInit)) {
		t.Errorf("ABI.md: feature init row %v, pluginapi says %d", m, pluginapi.FeatureInit)
	}
}
