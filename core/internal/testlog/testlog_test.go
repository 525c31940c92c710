package testlog

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBuffer: concurrent writers all land, the logger writes text lines at
// its level, and WaitFor returns once a line arrives.
func TestBuffer(t *testing.T) {
	b := New(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { b.Write([]byte("x\n")) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "x\n"); n != 8 {
		t.Fatalf("%d writes kept; want 8", n)
	}
	log := b.Logger(slog.LevelInfo)
	log.Debug("hidden")
	go log.Info("ready", "k", "v")
	b.WaitFor(t, "msg=ready k=v", 5*time.Second)
	if strings.Contains(b.String(), "hidden") {
		t.Error("a debug line got past an info logger")
	}
}
