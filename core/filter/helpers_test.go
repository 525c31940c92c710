package filter

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/pluginapi"
)

// wasm assembles testdata/NAME.wat with wat2wasm and returns the module.
func wasm(t testing.TB, name string) []byte {
	t.Helper()
	bin, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatalf("wat2wasm not found: the filter tests assemble their guests from testdata/*.wat with it; install Debian's wabt package (scripts/install-test-deps.sh does)")
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command(bin, filepath.Join("testdata", name+".wat"), "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm testdata/%s.wat: %v\n%s", name, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// install writes the guest NAME.wat as dir/file.wasm, with conf as its
// .toml when not empty. Files are written under a temporary name and
// renamed, as an operator's deploy would.
func install(t testing.TB, dir, file, name, conf string) {
	t.Helper()
	base := filepath.Join(dir, file)
	if conf != "" {
		writeAtomic(t, base+".toml", []byte(conf))
	}
	writeAtomic(t, base+".wasm", wasm(t, name))
}

func writeAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// newHost starts a Host on dir with a captured log; it is closed at the
// end of the test.
func newHost(t testing.TB, dir string, opts Options) (*Host, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	opts.Dir = dir
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.ReloadInterval == 0 {
		opts.ReloadInterval = 20 * time.Millisecond
	}
	h, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h, logs
}

// eventually waits (up to a generous bound, so a slow machine does not
// fail it) for cond; the requirement "within 2 s" is met by the reload
// period, not measured here.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newTxn() *Txn {
	return &Txn{Conn: &Conn{Helo: "client.example"}, From: "a@example.com", Rcpt: "b@example.org", Notes: map[string]string{}}
}

// noteI32 decodes a status note written by the probe guest.
func noteI32(t *testing.T, txn *Txn, key string) int32 {
	t.Helper()
	v, ok := txn.Notes[key]
	if !ok || len(v) != 4 {
		t.Fatalf("note %q = %q, want 4 bytes", key, v)
	}
	return int32(binary.LittleEndian.Uint32([]byte(v)))
}

func pluginNamed(h *Host, name string) (PluginInfo, bool) {
	for _, p := range h.Plugins() {
		if p.Name == name {
			return p, true
		}
	}
	return PluginInfo{}, false
}

// fakeKV is an in-memory KV.
type fakeKV struct {
	mu sync.Mutex
	m  map[string][]byte
	n  map[string]int64
}

func (k *fakeKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	return v, ok, nil
}

func (k *fakeKV) GetMany(_ context.Context, keys []string) ([][]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([][]byte, len(keys))
	for i, key := range keys {
		if v, ok := k.m[key]; ok {
			out[i] = append([]byte{}, v...)
		}
	}
	return out, nil
}

func (k *fakeKV) Set(_ context.Context, key string, v []byte, _ time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string][]byte{}
	}
	k.m[key] = v
	return nil
}

func (k *fakeKV) Incr(_ context.Context, key string, d int64, _ time.Duration) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n == nil {
		k.n = map[string]int64{}
	}
	k.n[key] += d
	return k.n[key], nil
}

func (k *fakeKV) IncrMany(ctx context.Context, keys []string, ds []int64, ttls []time.Duration) ([]int64, error) {
	out := make([]int64, len(keys))
	for i, key := range keys {
		out[i], _ = k.Incr(ctx, key, ds[i], ttls[i])
	}
	return out, nil
}

func (k *fakeKV) Del(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}

type fakeResolver map[string][]string

func (r fakeResolver) Lookup(_ context.Context, qtype uint16, name string) ([]string, error) {
	return r[name], nil
}

type fakeMetrics struct {
	mu sync.Mutex
	m  map[string]float64
}

func (f *fakeMetrics) Add(plugin, name string, d float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]float64{}
	}
	f.m[plugin+"/"+name] += d
}

func (f *fakeMetrics) get(key string) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[key]
}

// runAll runs every hook in order on txn and returns the results.
func runAll(h *Host, txn *Txn) []Result {
	var out []Result
	for hk := pluginapi.Hook(0); hk < pluginapi.NumHooks; hk++ {
		out = append(out, h.Run(context.Background(), hk, txn))
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
