// Command benchplugin is the quiet plugin of `make bench`: it implements
// every hook, reads one property at each (the client IP, HELO name,
// sender, recipient, destination) and adds the header "X-Bench: 1" at
// data, and it logs nothing, so the benchmark measures the filter host
// rather than log output. scripts/bench.sh builds it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o benchplugin.wasm ./scripts/benchplugin
package main

import "github.com/sluice-mta/sluice/sdk"

func init() {
	sdk.OnConnect(func(c *sdk.Ctx) sdk.Verdict {
		_ = c.ClientIP()
		return sdk.Continue()
	})
	sdk.OnHelo(func(c *sdk.Ctx) sdk.Verdict {
		_ = c.Helo()
		return sdk.Continue()
	})
	sdk.OnMail(func(c *sdk.Ctx) sdk.Verdict {
		_ = c.MailFrom()
		return sdk.Continue()
	})
	sdk.OnRcpt(func(c *sdk.Ctx) sdk.Verdict {
		_ = c.Rcpt()
		return sdk.Continue()
	})
	sdk.OnData(func(c *sdk.Ctx) sdk.Verdict {
		_ = c.AddHeader("X-Bench", "1")
		return sdk.Continue()
	})
	sdk.OnDeliver(func(c *sdk.Ctx) sdk.Verdict {
		_ = c.Destination()
		return sdk.Continue()
	})
}

// main is not called: the host calls the exported hooks.
func main() {}
