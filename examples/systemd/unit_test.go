// Package systemd holds no code: its test keeps the example unit in this
// folder valid for systemd and true to what `sluice serve` does.
package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestUnitVerifies runs `systemd-analyze verify` on sluice.service, with
// its ExecStart pointed at a freshly built sluice (verify refuses a unit
// whose binary does not exist). Any complaint fails the test: verify
// exits 0 on unknown keys and bad values, but prints them.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: run scripts/install-test-deps.sh (it installs Debian's systemd package)")
	}
	unit, err := os.ReadFile("sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	const installed = "/usr/local/bin/sluice"
	if !strings.Contains(string(unit), "ExecStart="+installed+" serve ") {
		t.Fatalf("sluice.service has no ExecStart=%s serve …", installed)
	}
	dir := t.TempDir()
	bin := sluiceBin
	path := filepath.Join(dir, "sluice.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), installed, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify sluice.service: %v\n%s", err, out)
	}
}

// TestUnitSettings: the unit runs sluice unprivileged with only the right
// to bind low ports, read-only but for the data directory, tells systemd
// when it is ready, restarts on failure and reloads with SIGHUP.
func TestUnitSettings(t *testing.T) {
	f, err := os.Open("sluice.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			got[k] = append(got[k], v)
		}
	}
	for _, want := range []struct{ key, value string }{
		{"Type", "notify"}, // sluice serve sends READY=1 to $NOTIFY_SOCKET
		{"User", "sluice"},
		{"AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
		{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ReadWritePaths", "/var/lib/sluice"},
		{"StateDirectory", "sluice"},
		{"Restart", "on-failure"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"WantedBy", "multi-user.target"},
	} {
		vals := got[want.key]
		if len(vals) != 1 || vals[0] != want.value {
			t.Errorf("%s=%v, want %s=%s", want.key, vals, want.key, want.value)
		}
	}
	if v := got["ExecStart"]; len(v) != 1 || !strings.Contains(v[0], " serve --config /etc/sluice/sluice.toml") {
		t.Errorf("ExecStart=%v, want sluice serve --config /etc/sluice/sluice.toml", v)
	}
	if _, ok := got["MemoryDenyWriteExecute"]; ok {
		t.Error("MemoryDenyWriteExecute would stop the plugin host from compiling WebAssembly")
	}
}

// sluiceBin is the real binary, built once by TestMain.
var sluiceBin string

func TestMain(m *testing.M) { os.Exit(servertest.RunWithBinary(m, &sluiceBin)) }
