// Command gcpercent is a plugin that reports the GOGC its Go runtime runs
// with, in an X-GOGC header, for the SDK's test of GuestGCPercent.
package main

import (
	"runtime/debug"
	"strconv"

	"github.com/sluice-mta/sluice/sdk"
)

func init() {
	sdk.OnData(func(c *sdk.Ctx) sdk.Verdict {
		gc := debug.SetGCPercent(100) // returns the setting in force
		debug.SetGCPercent(gc)
		c.AddHeader("X-GOGC", strconv.Itoa(gc))
		return sdk.Continue()
	})
}

func main() {}
