package main

import (
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

func TestTmpTiming(t *testing.T) {
	r := sdktest.Wasm(t, ".", loadTxn(&testing.B{}, "127.0.0.1"))
	var res sdktest.Result
	for range 1000 {
		r.Reset()
		res = r.Run(pluginapi.HookData)
	}
	t.Log(res.Logs)
}
