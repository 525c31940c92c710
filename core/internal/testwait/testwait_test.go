package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestUntil: it returns once the condition holds, having asked again
// until then.
func TestUntil(t *testing.T) {
	var calls atomic.Int32
	Until(t, 5*time.Second, "the third call", func() bool { return calls.Add(1) == 3 })
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times; want 3", n)
	}
}

// fatalRecorder records Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = format
	panic(r)
}

// TestUntilGivesUp: a condition that never holds fails the test after the
// deadline, not before.
func TestUntilGivesUp(t *testing.T) {
	r := &fatalRecorder{TB: t}
	start := time.Now()
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("recovered %v; want the recorder's Fatalf", p)
			}
		}()
		Until(r, 50*time.Millisecond, "never", func() bool { return false })
	}()
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("gave up after %v; want at least the 50ms deadline", d)
	}
	if r.msg == "" {
		t.Error("no failure reported")
	}
}
