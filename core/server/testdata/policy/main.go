// Command policy is a test plugin for the server's integration tests: its
// config holds rules, each naming a hook, a substring to look for in what
// that hook is about, and what to do when it matches.
package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk"
)

// rule is one entry of the config key "rules".
type rule struct {
	Hook    string  `json:"hook"`
	Match   string  `json:"match"`
	Verdict string  `json:"verdict"`
	Code    int     `json:"code"`
	Enh     string  `json:"enh"`
	Text    string  `json:"text"`
	Score   float64 `json:"score"`
	Symbol  string  `json:"symbol"`
	Header  string  `json:"header"`
	Rewrite string  `json:"rewrite"`
	Add     string  `json:"add"`
	Note    string  `json:"note"`
	KV      bool    `json:"kv"`
	Route   string  `json:"route"`
	Log     string  `json:"log"`
}

// subject is what a rule's match is looked for in, per hook.
func subject(c *sdk.Ctx) string {
	switch c.Hook() {
	case pluginapi.HookConnect:
		return c.ClientIP().String()
	case pluginapi.HookHelo:
		return c.Helo()
	case pluginapi.HookMail:
		return c.MailFrom()
	case pluginapi.HookRcpt:
		return c.Rcpt()
	case pluginapi.HookData:
		s, _ := c.Header("Subject")
		return s
	case pluginapi.HookDeliver:
		return c.Destination()
	}
	return ""
}

func run(c *sdk.Ctx) sdk.Verdict {
	var rules []rule
	if err := c.Config("rules", &rules); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		c.Error("policy: bad rules: %v", err)
		return sdk.Tempfail(451, "4.3.0", "policy plugin misconfigured")
	}
	for _, r := range rules {
		if r.Hook != c.Hook().String() || !strings.Contains(subject(c), r.Match) {
			continue
		}
		if r.Log != "" {
			c.Info("%s", r.Log)
		}
		if r.Note != "" {
			if old, ok := c.Note("trail"); ok {
				_ = c.SetNote("trail", old+","+r.Note)
			} else {
				_ = c.SetNote("trail", r.Note)
			}
		}
		if r.Score != 0 {
			_ = c.AddScore(r.Symbol, r.Score)
		}
		if r.Header != "" {
			trail, _ := c.Note("trail")
			_ = c.AddHeader(r.Header, "trail="+trail)
		}
		if r.KV {
			n, err := c.KVIncr("count", 1, time.Hour)
			v := fmt.Sprint(n)
			if errors.Is(err, sdk.ErrDenied) {
				v = "denied"
			} else if err != nil {
				v = err.Error()
			}
			_ = c.AddHeader("X-KV", v)
		}
		if r.Rewrite != "" {
			_ = c.RewriteRcpt(c.Rcpt(), r.Rewrite)
		}
		if r.Add != "" {
			_ = c.AddRcpt(r.Add)
		}
		if r.Route != "" {
			_ = c.SetRoute(r.Route)
		}
		switch r.Verdict {
		case "reject":
			return sdk.Reject(r.Code, r.Enh, r.Text)
		case "tempfail":
			return sdk.Tempfail(r.Code, r.Enh, r.Text)
		case "discard":
			return sdk.Discard()
		case "quarantine":
			return sdk.Quarantine()
		case "disconnect":
			return sdk.Disconnect(r.Text)
		case "accept":
			return sdk.Accept()
		}
	}
	return sdk.Continue()
}

func init() {
	sdk.OnConnect(run)
	sdk.OnHelo(run)
	sdk.OnMail(run)
	sdk.OnRcpt(run)
	sdk.OnData(run)
	sdk.OnDeliver(run)
}

func main() {}
