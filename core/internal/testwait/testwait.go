// Package testwait waits in tests for a condition to hold, with a
// deadline, instead of a fixed sleep standing in for it. It imports only
// the standard library, so any package's tests may use it.
package testwait

import (
	"testing"
	"time"
)

// interval is how often Until looks again.
const interval = 10 * time.Millisecond

// Until calls cond until it returns true and fails the test, naming what
// it waited for, when within has passed first.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", within, what)
		}
		time.Sleep(interval)
	}
}
