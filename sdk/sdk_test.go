package sdk

import (
	"errors"
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

// TestStatusErr: every failure status comes back as an error that is the
// status (errors.Is, and the value itself), StatusOK as nil, and the known
// ones without an allocation.
func TestStatusErr(t *testing.T) {
	if err := statusErr(pluginapi.StatusOK); err != nil {
		t.Fatalf("StatusOK: %v", err)
	}
	for _, st := range []pluginapi.Status{pluginapi.StatusNotFound, pluginapi.StatusDenied, pluginapi.StatusBadArgument,
		pluginapi.StatusWrongStage, pluginapi.StatusTempFail, pluginapi.StatusTooLarge, -7, -100} {
		err := statusErr(st)
		if got, ok := err.(pluginapi.Status); !ok || got != st || !errors.Is(err, st) {
			t.Errorf("status %d: error %#v", st, err)
		}
	}
	var err error
	if n := testing.AllocsPerRun(100, func() { err = statusErr(notFound) }); n != 0 || err != ErrNotFound {
		t.Errorf("statusErr(StatusNotFound) allocates %v times (%v)", n, err)
	}
}

// notFound is a status the compiler cannot see as a constant.
var notFound = pluginapi.StatusNotFound
