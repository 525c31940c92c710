package filter

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// TestFeaturesNegotiated: a module declaring sluice_features gets the host's
// features on every instance and loads when it requires only known ones.
func TestFeaturesNegotiated(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "feat", "features", "pool_min = 2\npool_max = 2\n")
	info, err := Check(context.Background(), filepath.Join(dir, "feat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Features != pluginapi.FeatureInit {
		t.Errorf("Check: features %v, want %v", info.Features, pluginapi.FeatureInit)
	}
	h, _ := newHost(t, dir, Options{})
	// Both instances of the pool answer in turn; each was told.
	for i := 0; i < 4; i++ {
		txn := newTxn()
		if r := h.Run(context.Background(), pluginapi.HookMail, txn); r.Verdict != pluginapi.Continue {
			t.Fatalf("Run = %+v", r)
		}
		v := txn.Notes["host_features"]
		if len(v) != 4 {
			t.Fatalf("note host_features = %q", v)
		}
		if got := pluginapi.Features(binary.LittleEndian.Uint32([]byte(v))); got != pluginapi.KnownFeatures {
			t.Errorf("run %d: the guest was told features %v, want %v", i, got, pluginapi.KnownFeatures)
		}
	}
}

// TestFeaturesRefused: a module requiring a feature the host does not
// support, or init without sluice_init, is refused at load with a message
// that names the feature and what the host supports; the others load.
func TestFeaturesRefused(t *testing.T) {
	tests := []struct{ guest, want string }{
		{"needfeature", "plugin bad requires ABI feature bit 30, which this host does not support (this host supports: init, entry)"},
		{"initmissing", "plugin bad requires ABI feature init but does not export sluice_init"},
	}
	for _, tt := range tests {
		t.Run(tt.guest, func(t *testing.T) {
			dir := t.TempDir()
			install(t, dir, "bad", tt.guest, "")
			install(t, dir, "good", "verdict", "[config]\nv = 5\n")
			_, err := Check(context.Background(), filepath.Join(dir, "bad.wasm"))
			if err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v, want %q", err, tt.want)
			}
			h, logs := newHost(t, dir, Options{})
			if _, ok := pluginNamed(h, "bad"); ok {
				t.Errorf("refused module was loaded")
			}
			if got := h.Run(context.Background(), pluginapi.HookData, newTxn()); got.Verdict != pluginapi.Quarantine {
				t.Errorf("the good plugin did not answer: %+v", got)
			}
			if q := strconv.Quote(tt.want); !contains(logs.String(), q[1:len(q)-1]) {
				t.Errorf("log lacks %q:\n%s", tt.want, logs)
			}
		})
	}
}
