package sdk

import (
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// TestFeatures: OnInit makes the plugin require pluginapi.FeatureInit.
func TestFeatures(t *testing.T) {
	t.Cleanup(func() { unnamed.initFn = nil })
	if got := Features(); got != 0 {
		t.Errorf("without OnInit: %v, want none", got)
	}
	OnInit(func(*Ctx) error { return nil })
	if got := Features(); got != pluginapi.FeatureInit {
		t.Errorf("with OnInit: %v, want %v", got, pluginapi.FeatureInit)
	}
}
