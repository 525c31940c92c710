package logbatch

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"
)

// recorder is an underlying writer that keeps every write it is given.
type recorder struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	if r.err != nil {
		return 0, r.err
	}
	return len(p), nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

// waitWrites waits until r has n writes and returns them.
func waitWrites(t *testing.T, r *recorder, n int) []string {
	t.Helper()
	var w []string
	testwait.Until(t, 5*time.Second, fmt.Sprintf("%d writes", n), func() bool {
		w = r.got()
		return len(w) >= n
	})
	return w
}

// TestLinesShareOneWrite: lines logged within the delay reach the
// underlying writer together, in order, in one write, after the delay.
func TestLinesShareOneWrite(t *testing.T) {
	const delay = 200 * time.Millisecond
	r := &recorder{}
	b := New(r, delay, 0)
	start := time.Now()
	for i := range 5 {
		if n, err := fmt.Fprintf(b, "line %d\n", i); err != nil || n != 7 {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	wrote := time.Since(start)
	if w := r.got(); len(w) != 0 && time.Since(start) < delay {
		t.Fatalf("written before the delay: %q", w)
	}
	w := waitWrites(t, r, 1)
	if took := time.Since(start); took < delay {
		t.Errorf("written after %v, before the %v delay", took, delay)
	}
	// (A machine too busy to log five lines within the delay may split them.)
	if want := "line 0\nline 1\nline 2\nline 3\nline 4\n"; wrote < delay && (len(w) != 1 || w[0] != want) {
		t.Fatalf("writes %q, want one write %q", w, want)
	}
	// The timer is armed again by the next line.
	fmt.Fprintf(b, "line 5\n")
	if w := waitWrites(t, r, 2); w[1] != "line 5\n" {
		t.Fatalf("second write %q", w[1])
	}
}

// TestFlushAndClose: Flush writes what is held at once; Close too, and
// later lines are written directly.
func TestFlushAndClose(t *testing.T) {
	r := &recorder{}
	b := New(r, time.Hour, 0)
	fmt.Fprintf(b, "a\n")
	fmt.Fprintf(b, "b\n")
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if w := r.got(); len(w) != 1 || w[0] != "a\nb\n" {
		t.Fatalf("after Flush: %q", w)
	}
	if err := b.Flush(); err != nil || len(r.got()) != 1 {
		t.Fatalf("Flush with nothing held wrote: %q, %v", r.got(), err)
	}
	fmt.Fprintf(b, "c\n")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(b, "d\n")
	if w := r.got(); strings.Join(w, "|") != "a\nb\n|c\n|d\n" {
		t.Fatalf("after Close: %q", w)
	}
}

// TestSizeWritesAtOnce: when the held bytes reach the size, the Write
// that reached it writes them.
func TestSizeWritesAtOnce(t *testing.T) {
	r := &recorder{}
	b := New(r, time.Hour, 16)
	fmt.Fprintf(b, "0123456\n")
	if len(r.got()) != 0 {
		t.Fatal("written below the size")
	}
	fmt.Fprintf(b, "789abcd\n")
	if w := r.got(); len(w) != 1 || w[0] != "0123456\n789abcd\n" {
		t.Fatalf("writes %q", w)
	}
}

// TestWriteErrorReported: a failed timed write is returned by the next
// Write, once.
func TestWriteErrorReported(t *testing.T) {
	boom := errors.New("disk gone")
	r := &recorder{err: boom}
	b := New(r, time.Millisecond, 0)
	fmt.Fprintf(b, "x\n")
	waitWrites(t, r, 1)
	testwait.Until(t, 5*time.Second, "the timed write's error kept", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.err != nil
	})
	if _, err := b.Write([]byte("y\n")); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed write = %v, want %v", err, boom)
	}
	r.mu.Lock()
	r.err = nil
	r.mu.Unlock()
	if _, err := b.Write([]byte("z\n")); err != nil {
		t.Fatalf("second Write = %v, want nil", err)
	}
}

// TestConcurrentLinesKeptWhole: lines from many goroutines all arrive,
// none torn or lost.
func TestConcurrentLinesKeptWhole(t *testing.T) {
	r := &recorder{}
	b := New(r, time.Millisecond, 512)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				fmt.Fprintf(b, "g%d line %03d\n", g, i)
			}
		}()
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(r.got(), "")
	lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for g := range 8 {
		last := -1
		for _, l := range lines {
			var lg, i int
			if _, err := fmt.Sscanf(l, "g%d line %d", &lg, &i); err != nil {
				t.Fatalf("torn line %q", l)
			}
			if lg == g {
				if i != last+1 {
					t.Fatalf("goroutine %d: line %d after %d", g, i, last)
				}
				last = i
			}
		}
	}
	if len(r.got()) >= 1600 {
		t.Errorf("%d writes for 1600 lines: nothing shared a write", len(r.got()))
	}
}
