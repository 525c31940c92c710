package sdk_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestGuestGCPercent: a plugin built with the SDK runs its Go runtime with
// GOGC GuestGCPercent, not Go's default of 100, in the real host.
func TestGuestGCPercent(t *testing.T) {
	r := sdktest.Wasm(t, "testdata/gcpercent", sdktest.Txn{Message: []byte("Subject: x\r\n\r\nbody\r\n")})
	res := r.Run(pluginapi.HookData)
	want := "X-GOGC: " + strconv.Itoa(sdk.GuestGCPercent)
	if !strings.Contains(res.Header, want) {
		t.Errorf("header\n%s\nlacks %q", res.Header, want)
	}
}
