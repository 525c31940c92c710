// Package metricstest runs Prometheus's promtool on what the tests produce:
// metrics text (check metrics), rule files (check rules) and rule unit
// tests (test rules). promtool comes with Debian's prometheus package,
// which `make test-deps` installs; a missing promtool fails the test
// rather than skipping it, so that CI cannot pass without the check.
package metricstest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// Path returns promtool's path, failing t when it is not installed.
func Path(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): run `make test-deps` (Debian package prometheus)", err)
	}
	return p
}

// CheckMetrics runs `promtool check metrics` on text and fails t with its
// complaints.
func CheckMetrics(t testing.TB, text []byte) {
	t.Helper()
	cmd := exec.Command(Path(t), "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// Run runs promtool with args in dir and fails t unless it succeeds; it
// returns the output.
func Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Path(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
