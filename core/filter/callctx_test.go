package filter

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCallContext: the context of blocking host calls ends at the call's
// deadline, or with its parent, whether Done or Err is asked first.
func TestCallContext(t *testing.T) {
	wait := func(c *callContext) error {
		select {
		case <-c.Done():
			return c.Err()
		case <-time.After(10 * time.Second):
			return errors.New("Done did not close")
		}
	}
	t.Run("deadline", func(t *testing.T) {
		c := &callContext{Context: context.Background(), deadline: time.Now().Add(20 * time.Millisecond)}
		defer c.release()
		if c.Err() != nil {
			t.Fatal("done before its deadline")
		}
		if dl, ok := c.Deadline(); !ok || !dl.Equal(c.deadline) {
			t.Errorf("Deadline = %v, %v", dl, ok)
		}
		if err := wait(c); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Err = %v", err)
		}
	})
	t.Run("past deadline", func(t *testing.T) {
		c := &callContext{Context: context.Background(), deadline: time.Now().Add(-time.Second)}
		defer c.release()
		if err := wait(c); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Err = %v", err)
		}
	})
	t.Run("Err first", func(t *testing.T) {
		c := &callContext{Context: context.Background(), deadline: time.Now().Add(-time.Second)}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatal("not done after its deadline")
		}
		if err := wait(c); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Done after Err: %v", err)
		}
	})
	t.Run("parent", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := &callContext{Context: parent, deadline: time.Now().Add(time.Hour)}
		defer c.release()
		done := c.Done()
		cancel()
		<-done
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("Err = %v", c.Err())
		}
	})
}
