package addressing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
)

func watched(t *testing.T, mailboxes, aliases string) (*Resolver, Files, *testlog.Buffer) {
	t.Helper()
	dir := t.TempDir()
	files := Files{Mailboxes: filepath.Join(dir, "mailboxes"), Aliases: filepath.Join(dir, "aliases")}
	writeFile(t, files.Mailboxes, mailboxes)
	writeFile(t, files.Aliases, aliases)
	var log testlog.Buffer
	r := newResolver(t, Options{
		LocalDomains: []string{"example.com"},
		Files:        files,
		Poll:         50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&log, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, files, &log
}

// waitFor polls cond until it holds or 2 seconds (the promise of the
// README) have passed.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	return waitWithin(t, 2*time.Second, what, cond)
}

// waitWithin polls cond until it holds or limit has passed.
func waitWithin(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func known(r *Resolver, addr string) bool {
	_, err := r.Resolve(context.Background(), addr)
	return err == nil
}

// TestReloadEdit: an edited file takes effect within 2 seconds.
func TestReloadEdit(t *testing.T) {
	r, files, _ := watched(t, "alice@example.com\n", "team@example.com alice@example.com\n")
	if known(r, "bob@example.com") {
		t.Fatal("bob known before the edit")
	}
	writeFile(t, files.Mailboxes, "alice@example.com\nbob@example.com\n")
	took := waitFor(t, "new mailbox", func() bool { return known(r, "bob@example.com") })
	t.Logf("new mailbox visible after %v", took)

	// Aliases too, and removal.
	writeFile(t, files.Aliases, "crew@example.com bob@example.com\n")
	waitFor(t, "new alias", func() bool { return known(r, "crew@example.com") })
	if known(r, "team@example.com") {
		t.Error("removed alias still known")
	}
	// A file replaced by rename (how editors and configuration tools
	// write) is seen too.
	replaceFile(t, files.Aliases, "crew@example.com bob@example.com\nstaff@example.com alice@example.com\n")
	waitFor(t, "renamed file", func() bool { return known(r, "staff@example.com") })
	if r.Reloads() < 3 {
		t.Errorf("%d reloads, want at least 3", r.Reloads())
	}
}

// TestReloadBroken: a file with a mistake keeps the previous maps, whole,
// and logs file:line; the fixed file is then taken.
func TestReloadBroken(t *testing.T) {
	r, files, log := watched(t, "alice@example.com\n", "team@example.com alice@example.com\n")
	mistakes := func() int { return strings.Count(log.String(), "has no target") }
	replaceFile(t, files.Aliases, "team@example.com alice@example.com\nbroken@example.com\n")
	want := files.Aliases + `:2: \"broken@example.com\" has no target`
	waitFor(t, "logged mistake", func() bool { return strings.Contains(log.String(), want) })
	if !known(r, "team@example.com") || !known(r, "alice@example.com") {
		t.Error("the previous maps were not kept")
	}
	for range 4 { // four more polls: logged once until the files change
		r.poll()
	}
	if n := mistakes(); n != 1 {
		t.Errorf("the mistake was logged %d times, want once until the file changes", n)
	}
	// A new mailbox while the aliases file is broken: not applied
	// either, the maps are swapped whole or not at all.
	replaceFile(t, files.Mailboxes, "alice@example.com\nbob@example.com\n")
	waitFor(t, "second attempt", func() bool { return mistakes() == 2 })
	if known(r, "bob@example.com") {
		t.Error("the mailboxes change was applied although the aliases file is broken")
	}
	// Reload says why, too.
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), files.Aliases+":2:") {
		t.Errorf("Reload() = %v", err)
	}

	// Fixed: both changes arrive together.
	replaceFile(t, files.Aliases, "team@example.com alice@example.com, bob@example.com\n")
	waitFor(t, "fixed file", func() bool { return known(r, "bob@example.com") })
	res, _ := r.Resolve(context.Background(), "team@example.com")
	if len(res.Targets) != 2 {
		t.Errorf("team after the fix: %s", res.Summary())
	}

	// A file removed keeps the maps too.
	if err := os.Remove(files.Aliases); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "logged missing file", func() bool { return strings.Contains(log.String(), "no such file") })
	if !known(r, "team@example.com") {
		t.Error("the maps were dropped with the file")
	}
}

// TestReloadUnderLoad: while the files are rewritten again and again,
// lookups of addresses present in every version never come back unknown.
func TestReloadUnderLoad(t *testing.T) {
	const stable = 200
	var mb, al strings.Builder
	for i := range stable {
		fmt.Fprintf(&mb, "user%d@example.com\n", i)
		fmt.Fprintf(&al, "alias%d@example.com user%d@example.com\n", i, i)
	}
	r, files, _ := watched(t, mb.String(), al.String())

	ctx, cancel := context.WithCancel(context.Background())
	var lookups, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil; i++ {
				addr := fmt.Sprintf("user%d@example.com", i%stable)
				if i%2 == 1 {
					addr = fmt.Sprintf("alias%d@example.com", i%stable)
				}
				res, err := r.Resolve(context.Background(), addr)
				lookups.Add(1)
				if err != nil || len(res.Targets) != 1 {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s: %v", addr, err))
				}
			}
		}()
	}
	// Rewrite both files 20 times, each with a new entry, as editors and
	// configuration tools do: a new file renamed over the old one. (A
	// file rewritten in place is taken too, see TestReloadEdit, but a
	// writer stalled half-way for a whole poll can be read half-written:
	// the README asks for renames.)
	start := r.Reloads()
	for v := range 20 {
		replaceFile(t, files.Mailboxes, mb.String()+fmt.Sprintf("new%d@example.com\n", v))
		replaceFile(t, files.Aliases, al.String()+fmt.Sprintf("newalias%d@example.com new%d@example.com\n", v, v))
		want := fmt.Sprintf("newalias%d@example.com", v)
		// The lookups keep both CPUs busy: the 2s promise is
		// TestReloadEdit's; here the point is that nothing fails.
		waitWithin(t, 10*time.Second, want, func() bool { return known(r, want) })
	}
	cancel()
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Errorf("%d of %d lookups failed during reloads; first: %v", f, lookups.Load(), firstFailure.Load())
	}
	if n := r.Reloads() - start; n < 20 {
		t.Errorf("%d reloads, want at least 20", n)
	}
	t.Logf("%d lookups during %d reloads", lookups.Load(), r.Reloads()-start)
}

// TestNewMissingFile: at startup a missing or broken file is an error.
func TestNewMissingFile(t *testing.T) {
	_, err := New(Options{Files: Files{Aliases: "testdata/no-such-file"}})
	if err == nil || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("New with a missing file: %v", err)
	}
	_, err = New(Options{Files: Files{Aliases: "testdata/bad/aliases-no-target.aliases"}})
	if err == nil || !strings.Contains(err.Error(), "aliases-no-target.aliases:2:") {
		t.Errorf("New with a broken file: %v", err)
	}
}

// replaceFile writes text to a new file and renames it over path.
func replaceFile(t testing.TB, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, text)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
