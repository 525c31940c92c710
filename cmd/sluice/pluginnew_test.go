package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// authorEnv is the environment a plugin author's commands run in: the
// sluice binary on PATH, the go command offline (the module cache that
// building Sluice filled serves the SDK's dependencies).
func authorEnv() []string {
	return append(os.Environ(), "PATH="+filepath.Dir(sluiceBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOPROXY=off", "GOFLAGS=-mod=mod", "SLUICE_CONFIG=")
}

// shell runs one command line as the author types it, in dir.
func shell(t *testing.T, dir, line string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir, cmd.Env = dir, authorEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pluginNew runs `sluice plugin new ARGS…` in dir and returns the module's
// directory and the commands it says to run next (PLUGINS_DIR replaced
// by plugins).
func pluginNew(t *testing.T, dir, plugins string, args ...string) (string, []string) {
	t.Helper()
	cmd := exec.Command(sluiceBin, append([]string{"plugin", "new"}, args...)...)
	cmd.Dir, cmd.Env = dir, authorEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice plugin new %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	_, next, ok := strings.Cut(string(out), "next:\n")
	if !ok {
		t.Fatalf("sluice plugin new printed no next steps:\n%s", out)
	}
	var mod string
	var cmds []string
	for _, l := range strings.Split(strings.TrimSpace(next), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "cd "):
			mod = filepath.Join(dir, strings.TrimPrefix(l, "cd "))
		case strings.HasPrefix(l, "("):
		default:
			cmds = append(cmds, strings.ReplaceAll(l, "PLUGINS_DIR", plugins))
		}
	}
	if mod == "" || len(cmds) != 5 {
		t.Fatalf("sluice plugin new: next steps %q (module %q), want cd and five commands", cmds, mod)
	}
	return mod, cmds
}

// TestPluginNewToServer is a plugin author's first minutes, with the
// real binary, in a directory outside the Sluice tree: `sluice plugin new`
// (--sdk naming the tree's sdk directory), then exactly the commands it
// prints — the tests pass, the build line builds, plugin check and
// plugin test say what the plugin does (a refused recipient, the
// X-Customer of an authenticated session, the score and what the
// server's [spam] thresholds make of it) — and the copy into a running
// server's plugins directory loads it, where it refuses and scores real
// SMTP mail as plugin test said. Then the C skeleton the same way, and
// the first mistakes: a build without -buildmode=c-shared, a native
// binary, a typo in the file given with --config.
func TestPluginNewToServer(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if strings.HasPrefix(work, root+string(filepath.Separator)) {
		t.Fatalf("%s is inside the Sluice tree", work)
	}
	data := filepath.Join(work, "data")
	plugins := filepath.Join(data, "plugins")
	if err := os.MkdirAll(plugins, 0o750); err != nil {
		t.Fatal(err)
	}
	smtpAddr := freeAddr(t)
	cfg := filepath.Join(work, "sluice.toml")
	conf := fmt.Sprintf(`hostname = "mx.test"
data_dir = %q
local_domains = ["example.com"]
[smtp]
listen = [%q]
[submission]
listen = []
tls_listen = []
[spam]
add_header = 2.0
`, data, smtpAddr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	mod, next := pluginNew(t, work, plugins, "myplug", "--sdk", filepath.Join(root, "sdk"))
	for i, want := range []string{"ok  \tmyplug", "", "myplug.wasm: ok", "rcpt blocked@example.com reject 550 5.7.1 recipient refused by policy (by myplug)"} {
		out, err := shell(t, mod, next[i])
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("%s: %v, want %q in:\n%s", next[i], err, want, out)
		}
		if i == 3 {
			for _, w := range []string{"    header + X-Customer: alice\n", "    score +3 MISSING_SUBJECT (myplug), total 3\n",
				"score 3, symbols MISSING_SUBJECT(3)\n", "spam  none: 3 is under add_header 5"} {
				if !strings.Contains(out, w) {
					t.Errorf("%s: output lacks %q:\n%s", next[i], w, out)
				}
			}
		}
	}
	gomod, _ := os.ReadFile(filepath.Join(mod, "go.mod"))
	if !strings.Contains(string(gomod), "replace github.com/sluice-mta/sluice => "+root+"\n") {
		t.Errorf("go.mod does not replace the SDK with the tree %s:\n%s", root, gomod)
	}

	// plugin test with the server's own [spam] table, as JSON for a CI:
	// it predicts the X-Spam-Status the server adds below.
	out, err := shell(t, mod, next[3]+" --server-config "+cfg+" --json")
	var js struct {
		Stages []struct {
			Stage      string
			HeaderDiff []string `json:"header_diff"`
		}
		Score float64
		Spam  struct{ Action, Config string }
	}
	if err != nil || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("plugin test --json: %v\n%s", err, out)
	}
	if js.Score != 3 || js.Spam.Action != "header" || js.Spam.Config != cfg || len(js.Stages) < 6 || js.Stages[5].Stage != "data" ||
		!strings.Contains(strings.Join(js.Stages[5].HeaderDiff, "\n"), "+ X-Spam-Status: Yes, score=3.0 symbols=MISSING_SUBJECT(3)") {
		t.Errorf("plugin test --server-config --json: %s", out)
	}

	// $SLUICE_CONFIG, as for serve, names the server's configuration too.
	out, err = shell(t, mod, "SLUICE_CONFIG="+cfg+" "+next[3])
	if want := "spam  header: 3 is at or over add_header 2: X-Spam-Status added, the message is queued ([spam] of " + cfg + ": add_header 2, quarantine 10, reject 15)\n"; err != nil || !strings.Contains(out, want) {
		t.Errorf("SLUICE_CONFIG=%s %s: %v, want %q in:\n%s", cfg, next[3], err, want, out)
	}

	// The server, started before the copy, loads the plugin when it lands.
	srv := servertest.ServeBinary(t, sluiceBin, cfg, "SLUICE_CONFIG=")
	srv.WaitLog(t, 60*time.Second, "smtp listening on")
	if out, err := shell(t, mod, next[4]); err != nil {
		t.Fatalf("%s: %v\n%s", next[4], err, out)
	}
	srv.WaitLog(t, 120*time.Second, `msg="plugin loaded" plugin=myplug `)
	_, err = servertest.Send(smtpAddr, "a@example.org", []string{"blocked@example.com"}, "Subject: x\r\n\r\nhi\r\n")
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "recipient refused by policy") {
		t.Errorf("mail to blocked@example.com: %v, want 550 5.7.1 recipient refused by policy", err)
	}
	id := servertest.MustSend(t, smtpAddr, "a@example.org", []string{"ok@example.com"}, "From: a@example.org\r\nTo: ok@example.com\r\n\r\nno subject\r\n")
	srv.WaitLog(t, 10*time.Second, "msg=scored ", "id="+id+" score=3 symbols=MISSING_SUBJECT(3)")
	files := servertest.WaitFiles(t, filepath.Join(data, "mail", "example.com", "ok"), 1, 10*time.Second)
	if msg, _ := os.ReadFile(files[0]); !bytes.Contains(msg, []byte("X-Spam-Status: Yes, score=3.0 symbols=MISSING_SUBJECT(3)\n")) {
		t.Errorf("the delivered message lacks the X-Spam-Status plugin test showed:\n%s", msg)
	}

	// The C skeleton: its commands, and the server loads it too.
	cmod, cnext := pluginNew(t, work, plugins, "cplug", "--lang", "c", "--sdk", root)
	for i, want := range []string{"ok  \tcplug/wasmtest", "", "cplug.wasm: ok", "    header + X-Customer: alice\n", ""} {
		out, err := shell(t, cmod, cnext[i])
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("%s: %v, want %q in:\n%s", cnext[i], err, want, out)
		}
	}
	srv.WaitLog(t, 60*time.Second, `msg="plugin loaded" plugin=cplug `)

	// The first mistakes get what to do.
	typo := filepath.Join(work, "typo.toml")
	if err := os.WriteFile(typo, []byte("timeout = \"100ms\"\nfailure_policy = \"contine\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ line, want string }{
		{"GOOS=wasip1 GOARCH=wasm go build -o cmd.wasm . && sluice plugin check cmd.wasm",
			"cmd.wasm: is a Go WASI command (it exports _start): it was built without -buildmode=c-shared; build it with: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o cmd.wasm ."},
		{"go build -o native.wasm . && sluice plugin test native.wasm --eml testdata/message.eml --rcpt ok@example.com",
			"it is a native executable; a Go plugin is built for WASI with: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o native.wasm ."},
		{"sluice plugin test myplug.wasm --config " + typo + " --eml testdata/message.eml --rcpt ok@example.com",
			typo + `:2: failure_policy: must be "continue" or "tempfail", not "contine"`},
	} {
		out, err := shell(t, mod, c.line)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: %v, want it to fail saying %q:\n%s", c.line, err, c.want, out)
		}
	}
}

// TestPluginTestSessionFlags: `sluice plugin test` with --auth-user,
// --tls and --listener after the module's name plays that session (the
// plugin reads them as its auth user, TLS and listener properties), and
// --json prints it for a CI to read.
func TestPluginTestSessionFlags(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "scorer.wasm")
	if err := os.WriteFile(wasm, sdktest.Build(t, "../../core/plugintool/testdata/scorer"), 0o644); err != nil {
		t.Fatal(err)
	}
	eml := filepath.Join(dir, "m.eml")
	if err := os.WriteFile(eml, []byte("From: a@example.org\n\nno subject\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{nil, `session auth="" tls="" listener="smtp"`},
		{[]string{"--auth-user", "alice", "--tls", "--listener", "submission"}, `session auth="alice" tls="TLS1.3 TLS_AES_128_GCM_SHA256" listener="submission"`},
	} {
		args := append([]string{"plugin", "test", wasm, "--eml", eml, "--from", "a@example.org", "--rcpt", "b@example.com"}, c.flags...)
		out, code := run(t, append(args, "--json")...)
		var js struct {
			Stages []struct {
				Stage string
				Logs  []string
			}
			Score float64
			Spam  struct{ Action, Why string }
		}
		if code != 0 || json.Unmarshal([]byte(out), &js) != nil || len(js.Stages) < 3 {
			t.Fatalf("%q: exit %d\n%s", args, code, out)
		}
		if logs := strings.Join(js.Stages[2].Logs, "\n"); js.Stages[2].Stage != "mail" || !strings.Contains(logs, c.want) {
			t.Errorf("%q: the mail stage logged %q, want %q", c.flags, logs, c.want)
		}
		if js.Score != 3 || js.Spam.Action != "none" || !strings.Contains(js.Spam.Why, "under add_header 5") {
			t.Errorf("%q: score %v, spam %+v", c.flags, js.Score, js.Spam)
		}
	}
}
