// Command noinit is a plugin without an OnInit function, for the SDK's
// feature test.
package main

import "github.com/sluice-mta/sluice/sdk"

func init() {
	sdk.OnMail(func(c *sdk.Ctx) sdk.Verdict { return sdk.Continue() })
}

func main() {}
