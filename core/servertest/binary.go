package servertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
