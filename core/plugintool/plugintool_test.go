package plugintool

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

const message = "From: alice@example.org\nSubject: hi\n\nHello.\n"

// plugins writes the example plugins into a directory as the server would
// find them and returns it.
func plugins(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		var data []byte
		if strings.HasSuffix(name, ".wasm") {
			data = sdktest.Build(t, src)
		} else {
			data = []byte(src)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(stages []Stage) []string {
	var n []string
	for _, s := range stages {
		n = append(n, s.Name)
	}
	return n
}

func TestTestOnePlugin(t *testing.T) {
	dir := plugins(t, map[string]string{"hello.wasm": "../../examples/hello"})
	stages, err := Test(context.Background(), TestOptions{
		Wasm: filepath.Join(dir, "hello.wasm"), Message: []byte(message),
		From: "alice@example.org", Rcpts: []string{"bob@example.com", "carol@example.net"},
		ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "client.example.org",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"connect", "helo", "mail", "rcpt bob@example.com", "rcpt carol@example.net", "data",
		"deliver example.com", "deliver example.net"}
	if !slices.Equal(names(stages), want) {
		t.Fatalf("stages %q, want %q", names(stages), want)
	}
	for _, s := range stages {
		if s.Result.Verdict != pluginapi.Continue {
			t.Errorf("%s: verdict %v", s.Name, s.Result.Verdict)
		}
		if len(s.Logs) == 0 || !strings.Contains(s.Logs[0], "INFO hello: ") {
			t.Errorf("%s: logs %q, want hello's line", s.Name, s.Logs)
		}
	}
	if d := stages[5].HeaderDiff; !slices.Equal(d, []string{"+ X-Hello: world"}) {
		t.Errorf("data header diff %q", d)
	}
	if d := stages[6].HeaderDiff; len(d) != 0 {
		t.Errorf("deliver header diff %q, want none", d)
	}
	var out bytes.Buffer
	if err := WriteStages(&out, stages); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"connect                  continue\n",
		"    log INFO hello: connect from 192.0.2.1 plugin=\"hello\"\n",
		"    header + X-Hello: world\n",
		"    rcpts bob@example.com, carol@example.net\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
}

func TestTestDirectory(t *testing.T) {
	dir := plugins(t, map[string]string{
		"10-hello.wasm":     "../../examples/hello",
		"20-deny-rcpt.wasm": "../../examples/deny-rcpt",
		"20-deny-rcpt.toml": "[config]\ndeny = [\"blocked@example.com\"]\n",
	})
	stages, err := Test(context.Background(), TestOptions{
		Dir: dir, Message: []byte(message), From: "alice@example.org",
		Rcpts: []string{"Blocked@Example.com", "ok@example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"connect", "helo", "mail", "rcpt Blocked@example.com", "rcpt ok@example.com", "data", "deliver example.com"}
	if !slices.Equal(names(stages), want) {
		t.Fatalf("stages %q, want %q", names(stages), want)
	}
	r := stages[3].Result
	if r.Verdict != pluginapi.Reject || r.Reply.Code != 550 || r.Reply.Enhanced.String() != "5.7.1" || r.Plugin != "20-deny-rcpt" {
		t.Errorf("blocked rcpt: %+v", r)
	}
	if got := stages[4].Rcpts; !slices.Equal(got, []string{"ok@example.com"}) {
		t.Errorf("rcpts after the rcpt stages: %q", got)
	}
	var out bytes.Buffer
	WriteStages(&out, stages)
	if !strings.Contains(out.String(), "rcpt Blocked@example.com reject 550 5.7.1 <Blocked@example.com>: recipient refused by policy (by 20-deny-rcpt)\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestTestErrors(t *testing.T) {
	dir := plugins(t, map[string]string{"broken.wasm": "../../examples/hello"})
	if err := os.WriteFile(filepath.Join(dir, "broken.wasm"), []byte("\x00asm junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]TestOptions{
		"both":       {Wasm: "a.wasm", Dir: dir},
		"neither":    {},
		"not wasm":   {Wasm: "a.txt"},
		"missing":    {Wasm: filepath.Join(dir, "nope.wasm")},
		"empty dir":  {Dir: t.TempDir()},
		"bad module": {Wasm: filepath.Join(dir, "broken.wasm")},
	} {
		if _, err := Test(context.Background(), opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := plugins(t, map[string]string{"deny-rcpt.wasm": "../../examples/deny-rcpt"})
	var out bytes.Buffer
	if err := Check(context.Background(), &out, filepath.Join(dir, "deny-rcpt.wasm"), CheckOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{": ok\n", "abi version 1\n", "hooks       rcpt\n", "sluice.get_config", "sluice.set_reply"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("check output lacks %q:\n%s", s, out.String())
		}
	}
	bad := filepath.Join(dir, "bad.wasm")
	os.WriteFile(bad, []byte("not wasm"), 0o644)
	if err := Check(context.Background(), &out, bad, CheckOptions{}); err == nil {
		t.Error("check accepted a file that is not wasm")
	}
}

// TestWriteStagesEffects: the printed stages say what the server does
// after a verdict when the reply alone does not.
func TestWriteStagesEffects(t *testing.T) {
	at := func(hook pluginapi.Hook, v pluginapi.Verdict) Stage {
		r, _ := filter.Decide(v, nil, "p")
		return Stage{Name: hook.String(), Hook: hook, Result: r, Outcome: filter.Apply(hook, r)}
	}
	deliver := at(pluginapi.HookDeliver, pluginapi.Reject)
	deliver.Results = deliver.Outcome.Fate([]string{"a@example.com"})
	held := at(pluginapi.HookDeliver, pluginapi.Quarantine)
	held.Results = held.Outcome.Fate([]string{"a@example.com"})
	noRcpts := Stage{Name: "data", Hook: pluginapi.HookData, Outcome: filter.Outcome{Discard: true}}
	for _, tc := range []struct {
		st   Stage
		want string
	}{
		{at(pluginapi.HookRcpt, pluginapi.Discard), "rcpt                     discard (by p): recipient dropped\n"},
		{at(pluginapi.HookRcpt, pluginapi.Quarantine), "rcpt                     quarantine (by p): message held\n"},
		{at(pluginapi.HookMail, pluginapi.Discard), "mail                     discard (by p): message discarded\n"},
		{at(pluginapi.HookMail, pluginapi.Disconnect), "mail                     disconnect 421 4.7.0 closing connection (by p): connection closed\n"},
		{at(pluginapi.HookMail, pluginapi.Reject), "mail                     reject 550 5.7.1 rejected by policy (by p)\n"},
		{deliver, "deliver                  reject 550 5.7.1 rejected by policy (by p): bounced\n"},
		{held, "deliver                  quarantine (by p): held 451 4.7.0 quarantined by plugin p\n"},
		{noRcpts, "data                     continue: message discarded\n"},
	} {
		var out bytes.Buffer
		if err := WriteStages(&out, []Stage{tc.st}); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := strings.Cut(out.String(), "\n"); got+"\n" != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
