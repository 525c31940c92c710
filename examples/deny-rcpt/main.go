// Command deny-rcpt is a Sluice plugin that refuses, with
// "550 5.7.1 <addr>: recipient refused by policy", every recipient listed in
// its configuration key "deny" (compared without regard to case). Build it
// with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o deny-rcpt.wasm .
package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

// denyList reads the config key "deny": absent is an empty list.
func denyList(c *sdk.Ctx) ([]string, error) {
	var deny []string
	if err := c.Config("deny", &deny); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("deny-rcpt: config key deny must be a list of addresses: %v", err)
	}
	for _, d := range deny {
		if !strings.Contains(d, "@") {
			return nil, fmt.Errorf("deny-rcpt: config key deny: %q is not an address", d)
		}
	}
	return deny, nil
}

func init() {
	// A bad list refuses the load: better no plugin than a silent one.
	sdk.OnInit(func(c *sdk.Ctx) error {
		_, err := denyList(c)
		return err
	})
	sdk.OnRcpt(func(c *sdk.Ctx) sdk.Verdict {
		deny, err := denyList(c)
		if err != nil {
			c.Error("%v", err)
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
