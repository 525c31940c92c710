// Command scorer is the plugintool tests' plugin: at mail it logs the
// session's auth user, TLS and listener; at data it adds the score of its
// config key "score" under MISSING_SUBJECT when the message has no
// Subject.
package main

import "github.com/sluice-mta/sluice/sdk"

func init() {
	sdk.OnMail(func(c *sdk.Ctx) sdk.Verdict {
		c.Info("session auth=%q tls=%q listener=%q", c.AuthUser(), c.TLS(), c.Listener())
		return sdk.Continue()
	})
	sdk.OnData(func(c *sdk.Ctx) sdk.Verdict {
		var score float64
		if err := c.Config("score", &score); err != nil {
			score = 3
		}
		if _, ok := c.Header("Subject"); !ok {
			c.AddScore("MISSING_SUBJECT", score)
		}
		return sdk.Continue()
	})
}

func main() {}
