// Command hello is the smallest Sluice plugin written with the Go SDK: it
// logs each stage of a message's life and adds the header "X-Hello: world"
// at data. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
package main

import "github.com/sluice-mta/sluice/sdk"

func init() {
	sdk.OnConnect(func(c *sdk.Ctx) sdk.Verdict {
		c.Info("hello: connect from %s", c.ClientIP())
		return sdk.Continue()
	})
	sdk.OnHelo(func(c *sdk.Ctx) sdk.Verdict {
		c.Info("hello: helo %s", c.Helo())
		return sdk.Continue()
	})
	sdk.OnMail(func(c *sdk.Ctx) sdk.Verdict {
		c.Info("hello: mail from <%s>", c.MailFrom())
		return sdk.Continue()
	})
	sdk.OnRcpt(func(c *sdk.Ctx) sdk.Verdict {
		c.Info("hello: rcpt to <%s>", c.Rcpt())
		return sdk.Continue()
	})
	sdk.OnData(func(c *sdk.Ctx) sdk.Verdict {
		subject, _ := c.Header("Subject")
		c.Info("hello: data, %d bytes, subject %q", c.BodySize(), subject)
		if err := c.AddHeader("X-Hello", "world"); err != nil {
			c.Error("hello: adding X-Hello: %v", err)
		}
		return sdk.Continue()
	})
	sdk.OnDeliver(func(c *sdk.Ctx) sdk.Verdict {
		c.Info("hello: deliver to %s, attempt %d", c.Destination(), c.Attempt())
		return sdk.Continue()
	})
}

// main is not called: the host calls the exported hooks.
func main() {}
