package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestSysmonEnv: the setting is added to GODEBUG (kept: the settings
// already there), or GODEBUG is created; a GODEBUG that names schedtrace
// is left alone, 0 included.
func TestSysmonEnv(t *testing.T) {
	for _, c := range []struct {
		env, want []string
		changed   bool
	}{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + sysmonSetting}, true},
		{[]string{"GODEBUG=http2client=0", "PATH=/bin"}, []string{"GODEBUG=http2client=0," + sysmonSetting, "PATH=/bin"}, true},
		{[]string{"GODEBUG="}, []string{"GODEBUG=" + sysmonSetting}, true},
		{[]string{"GODEBUG=schedtrace=0"}, []string{"GODEBUG=schedtrace=0"}, false},
		{[]string{"GODEBUG=gctrace=1,schedtrace=1000"}, []string{"GODEBUG=gctrace=1,schedtrace=1000"}, false},
		// The runtime reads the first GODEBUG; so does sysmonEnv.
		{[]string{"GODEBUG=gctrace=0", "GODEBUG=schedtrace=0"}, []string{"GODEBUG=gctrace=0," + sysmonSetting, "GODEBUG=schedtrace=0"}, true},
	} {
		in := slices.Clone(c.env)
		got, changed := sysmonEnv(c.env)
		if !slices.Equal(got, c.want) || changed != c.changed {
			t.Errorf("sysmonEnv(%q) = %q, %v; want %q, %v", in, got, changed, c.want, c.changed)
		}
		if !slices.Equal(c.env, in) {
			t.Errorf("sysmonEnv changed its argument: %q, was %q", c.env, in)
		}
	}
}

// TestServeKeepsSysmonAwake runs `sluice serve` as a user would and reads
// the running server's environment (/proc/PID/environ, what the runtime
// read at start): GODEBUG carries the setting after the user's own, in
// the process the user started (exec keeps its ID), and the server takes
// mail. A user's schedtrace (0: off) is kept as it is.
func TestServeKeepsSysmonAwake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the server execs itself through /proc/self/exe on Linux only")
	}
	for _, c := range []struct{ env, want string }{
		{"GODEBUG=http2client=0", "GODEBUG=http2client=0," + sysmonSetting},
		{"GODEBUG=schedtrace=0", "GODEBUG=schedtrace=0"},
	} {
		t.Run(c.env, func(t *testing.T) {
			dir := t.TempDir()
			addr := freeAddr(t)
			cfg := filepath.Join(dir, "sluice.toml")
			conf := fmt.Sprintf("hostname = \"mx.test\"\ndata_dir = %q\nlocal_domains = [\"example.com\"]\n[smtp]\nlisten = [%q]\n[submission]\nlisten = []\ntls_listen = []\n", filepath.Join(dir, "data"), addr)
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := servertest.ServeBinary(t, sluiceBin, cfg, "SLUICE_CONFIG=", c.env)
			srv.WaitLog(t, 60*time.Second, "smtp listening on")
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", srv.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			var godebug []string
			for kv := range strings.SplitSeq(string(environ), "\x00") {
				if strings.HasPrefix(kv, "GODEBUG=") {
					godebug = append(godebug, kv)
				}
			}
			if len(godebug) != 1 || godebug[0] != c.want {
				t.Errorf("the server's environment has %q, want %q", godebug, c.want)
			}
			servertest.MustSend(t, addr, "a@example.org", []string{"ok@example.com"}, servertest.Message("a@example.org", "ok@example.com", "sysmon", "hi"))
			// The trace line is due only once the host's monotonic clock
			// (its uptime) passes 2147483647 ms.
			if up, err := os.ReadFile("/proc/uptime"); err == nil && strings.Contains(c.want, sysmonSetting) {
				var secs float64
				if _, err := fmt.Sscan(string(up), &secs); err == nil && secs < 2147483 && strings.Contains(srv.Log(), "SCHED ") {
					t.Errorf("the server printed a scheduler trace:\n%s", srv.Log())
				}
			}
		})
	}
}
