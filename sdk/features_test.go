package sdk_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestFeaturesDeclared builds plugins with and without OnInit and has the
// real host read their sluice_features: the SDK requires init exactly when
// an init function is registered.
func TestFeaturesDeclared(t *testing.T) {
	tests := []struct {
		pkg  string
		want pluginapi.Features
	}{
		{"testdata/withinit", pluginapi.FeatureInit},
		{"testdata/noinit", 0},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.pkg), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), filepath.Base(tt.pkg)+".wasm")
			if err := os.WriteFile(path, sdktest.Build(t, tt.pkg), 0o644); err != nil {
				t.Fatal(err)
			}
			info, err := filter.Check(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Features != tt.want {
				t.Errorf("features %v, want %v", info.Features, tt.want)
			}
		})
	}
}
