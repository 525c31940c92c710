package filter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"
	"github.com/sluice-mta/sluice/pluginapi"
)

// inFlight reports whether a call of h's plugins is running in the guest.
func inFlight(h *Host) bool {
	for _, p := range h.chain.Load().plugins {
		if list := p.pool.all.Load(); list != nil {
			for _, in := range *list {
				if in.start.Load() > 0 {
					return true
				}
			}
		}
	}
	return false
}

// TestCloseLoopingGuest: Close with a guest looping in a hook (its deadline
// a minute away) returns, and the looping call is killed: within
// closeGrace without a deadline on Close, at once when Close's context has
// ended. Before the fix Close stopped the watchdog first and then waited
// for the call forever.
func TestCloseLoopingGuest(t *testing.T) {
	// bound is far beyond closeGrace: reaching it means Close hangs.
	const bound = 20 * time.Second
	tests := []struct {
		name    string
		ctx     func() context.Context
		wantErr error
	}{
		{"no deadline", context.Background, nil},
		{"context ended", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			install(t, dir, "loop", "loop", "timeout = \"1m\"\npool_min = 1\n")
			h, err := New(context.Background(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			ran := make(chan Result, 1)
			go func() { ran <- h.Run(context.Background(), pluginapi.HookConnect, newTxn()) }()
			eventually(t, "the guest to enter its loop", func() bool { return inFlight(h) })

			closed := make(chan error, 1)
			go func() { closed <- h.Close(tt.ctx()) }()
			select {
			case err := <-closed:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Close = %v, want %v", err, tt.wantErr)
				}
			case <-time.After(bound):
				t.Fatalf("Close still waiting after %v for a guest looping in a hook", bound)
			}
			select {
			case r := <-ran:
				if r.Verdict != pluginapi.Continue {
					t.Errorf("the killed call: %+v, want continue (the failure policy)", r)
				}
			case <-time.After(bound):
				t.Fatalf("the looping call still runs %v after Close returned", bound)
			}
			if err := h.Close(context.Background()); !errors.Is(err, tt.wantErr) {
				t.Errorf("second Close = %v, want the first one's %v", err, tt.wantErr)
			}
		})
	}
}

// TestWatchdogParks: with no call in flight the watchdog parks (an idle
// server does not wake 500 times a second), and a call that starts then
// wakes it at once: a call stuck in a host function past its deadline is
// still stopped by the watchdog's fuse.
func TestWatchdogParks(t *testing.T) {
	bh := &blackhole{deaf: true, release: make(chan struct{})}
	dir := t.TempDir()
	install(t, dir, "dns", "dnswait", "grants = [\"dns\"]\ntimeout = \"100ms\"\nfailure_policy = \"tempfail\"\n")
	h, _ := newHost(t, dir, Options{Resolver: bh})
	testwait.Until(t, 5*time.Second, "the idle watchdog to park", h.wdParked.Load)
	woken := h.wdWoken.Load()
	// The guest waits in dns_lookup on a resolver that ignores its
	// context: only the watchdog's fuse ends the call, past the deadline.
	done := make(chan Result, 1)
	go func() { r, _ := timed(h, pluginapi.HookData); done <- r }()
	// Woken by the call, not by its maintenance timer.
	testwait.Until(t, 5*time.Second, "the call to wake the watchdog", func() bool { return h.wdWoken.Load() > woken })
	testwait.Until(t, 5*time.Second, "the watchdog to fire the call's fuse", func() bool { return fired(h) })
	close(bh.release) // the lookup returns into a guest whose fuse fired
	if r := <-done; r.Verdict != pluginapi.Tempfail || r.Reply.Code != 451 {
		t.Errorf("result %+v, want the tempfail failure policy (the watchdog stopped the call)", r)
	}
	testwait.Until(t, 5*time.Second, "the watchdog to park again", h.wdParked.Load)
}

// fired reports whether the watchdog fired the fuse of a call still in
// flight.
func fired(h *Host) bool {
	for _, pl := range h.livePools(nil) {
		if list := pl.all.Load(); list != nil {
			for _, in := range *list {
				if in.start.Load() == -1 {
					return true
				}
			}
		}
	}
	return false
}
