// Command deny-rcpt is a Sluice plugin that refuses, with
// "550 5.7.1 <addr>: recipient refused by policy", every recipient listed in
// its configuration key "deny" (compared without regard to case). Build it
// with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o deny-rcpt.wasm .
package main

import (
	"errors"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

func init() {
	sdk.OnRcpt(func(c *sdk.Ctx) sdk.Verdict {
		var deny []string
		if err := c.Config("deny", &deny); err != nil {
			if !errors.Is(err, sdk.ErrNotFound) {
				c.Error("deny-rcpt: config key deny must be a list of addresses: %v", err)
			}
			return sdk.Continue()
		}
		rcpt := c.Rcpt()
		for _, d := range deny {
			if strings.EqualFold(strings.TrimSpace(d), rcpt) {
				c.Info("deny-rcpt: refusing <%s>", rcpt)
				return sdk.Reject(550, "5.7.1", "<"+rcpt+">: recipient refused by policy")
			}
		}
		return sdk.Continue()
	})
}

// main is not called: the host calls the exported hooks.
func main() {}
