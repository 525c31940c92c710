package servertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
)

// RunWithBinary is the body of a TestMain for tests that run the real
// sluice binary as a separate process (CLI commands, signals, kill -9,
// systemd-analyze): it builds cmd/sluice once, sets *bin to its path, runs
// the tests, removes the build and returns the exit code.
//
//	var sluiceBin string
//
//	func TestMain(m *testing.M) { os.Exit(servertest.RunWithBinary(m, &sluiceBin)) }
func RunWithBinary(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "sluice-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-o", *bin, "github.com/sluice-mta/sluice/cmd/sluice")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		return 1
	}
	return m.Run()
}

// Process is `sluice serve` running as a process of its own (ServeBinary).
type Process struct {
	log  *testlog.Buffer
	done chan error
	pid  int
}

// ServeBinary runs `bin serve --config cfgPath` with env added to the
// environment and keeps what it writes to standard output and error (Log)
// until the test ends: then it sends SIGTERM, fails the test if the
// process has not exited within 30 seconds, and on a failed test copies
// the log into the test's.
func ServeBinary(t testing.TB, bin, cfgPath string, env ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	p := &Process{log: &testlog.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("sluice serve did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("sluice serve's log:\n%s", p.Log())
		}
	})
	return p
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.pid }

// Log is what the process has written so far.
func (p *Process) Log() string { return p.log.String() }

// WaitLog waits until the log holds every one of subs, failing the test
// after within or when the process exits first.
func (p *Process) WaitLog(t testing.TB, within time.Duration, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var exited error
	for done := false; ; {
		log, all := p.Log(), true
		for _, s := range subs {
			all = all && strings.Contains(log, s)
		}
		switch {
		case all:
			return
		case done:
			t.Fatalf("sluice serve exited (%v) before logging %q", exited, subs)
		case time.Now().After(deadline):
			t.Fatalf("gave up after %v waiting for %q in the log of sluice serve", within, subs)
		}
		select {
		case exited = <-p.done:
			p.done <- exited // for the cleanup
			done = true      // look at the log once more
		case <-time.After(20 * time.Millisecond):
		}
	}
}
