package filter

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// TestPoolDefaults: without pool_min and pool_max in NAME.toml a plugin
// keeps one instance ready and grows to the CPUs (at least 2), or to 2 × CPUs + 2 when
// it is granted dns (its calls hold an instance while they wait); a
// pool_min over that default is refused on its own line.
func TestPoolDefaults(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "10-plain", "bench", "")
	install(t, dir, "20-dns", "bench", "grants = [\"dns\"]\n")
	h, _ := newHost(t, dir, Options{})
	cpus := runtime.GOMAXPROCS(0)
	for name, want := range map[string]int{"10-plain": max(cpus, 2), "20-dns": 2*cpus + 2} {
		info, ok := pluginNamed(h, name)
		if !ok {
			t.Fatalf("%s not loaded", name)
		}
		if info.PoolMin != 1 || info.PoolMax != want {
			t.Errorf("%s: pool_min %d, pool_max %d; want 1 and %d", name, info.PoolMin, info.PoolMax, want)
		}
	}
	_, err := parseConf("p.toml", []byte("order = 1\npool_min = 1000\n"))
	if err == nil || !strings.Contains(err.Error(), "p.toml:2: pool_min: must be at most pool_max") {
		t.Errorf("pool_min over the default pool_max: %v", err)
	}
}

// TestPluginWithoutMemory: a module that declares no memory loads, runs
// and goes back to its pool (wazero gives such a module a nil memory the
// pool must not measure).
func TestPluginWithoutMemory(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "nomem", "nomemory", "")
	h, _ := newHost(t, dir, Options{})
	for range 3 {
		if r := h.Run(context.Background(), pluginapi.HookConnect, newTxn()); r.Verdict != pluginapi.Continue {
			t.Fatalf("Run = %+v", r)
		}
	}
	if info, ok := pluginNamed(h, "nomem"); !ok || info.Pool != 1 {
		t.Errorf("pool %+v, want one instance kept", info)
	}
}

// TestPoolHandOff: one instance shared by many sessions at once goes from
// call to call (through the pool's lock-free slot or its idle stack) with
// no call left waiting for it until its deadline, and after the last call
// it is idle, not lost or doubled.
func TestPoolHandOff(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "one", "bench", "pool_min = 1\npool_max = 1\ntimeout = \"20s\"\n")
	h, _ := newHost(t, dir, Options{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if r := h.Run(context.Background(), pluginapi.HookConnect, newTxn()); r.Verdict != pluginapi.Continue {
					t.Errorf("Run = %+v", r)
					return
				}
			}
		}()
	}
	wg.Wait()
	info, _ := pluginNamed(h, "one")
	if info.Calls != 1600 || info.Errors != 0 || info.Pool != 1 {
		t.Errorf("stats %+v, want 1600 calls, no error, one instance", info)
	}
	if n := h.chain.Load().plugins[0].pool.idleCount(); n != 1 {
		t.Errorf("%d idle instances after the calls, want 1", n)
	}
}
