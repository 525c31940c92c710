// Command withinit is a plugin with an OnInit function, for the SDK's
// feature test.
package main

import "github.com/sluice-mta/sluice/sdk"

func init() {
	sdk.OnInit(func(c *sdk.Ctx) error { return nil })
	sdk.OnMail(func(c *sdk.Ctx) sdk.Verdict { return sdk.Continue() })
}

func main() {}
