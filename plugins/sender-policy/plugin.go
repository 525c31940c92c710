// Package senderpolicy is a Sluice plugin (sender-policy) that enforces who may send as
// whom: an authenticated user may use only the envelope senders it owns
// (owners), its header From must align with the envelope sender
// (from_alignment), it may address at most so many recipients per message
// (max_rcpts), and anyone's senders and recipients can be blocked by
// wildcard patterns (block_senders, block_rcpts). It needs no grants.
//
// It registers itself as the plugin sender-policy (sdk.Plugin); `make plugins`
// builds it into the first-party module, plugins/firstparty, with the
// others.
package senderpolicy

import (
	"fmt"
	"net/mail"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

func init() {
	sdk.Plugin("sender-policy", func() {
		sdk.OnInit(func(c *sdk.Ctx) error {
			_, err := loadPolicy(c)
			return err
		})
		sdk.OnMail(onMail)
		sdk.OnRcpt(onRcpt)
		sdk.OnData(onData)
	})
}

// onMail checks the envelope sender: the block list for everyone, the
// owners map for authenticated users.
func onMail(c *sdk.Ctx) sdk.Verdict {
	p, ok := load(c)
	if !ok {
		return sdk.Continue()
	}
	from := c.MailFrom()
	if from != "" {
		if pat := p.blockSenders.blocked(from); pat != "" {
			c.Info("sender-policy: sender <%s> blocked by %q", from, pat)
			return sdk.Reject(550, "5.7.1", "<"+from+">: sender blocked by policy")
		}
	}
	user := c.AuthUser()
	if user == "" || p.owners == nil {
		return sdk.Continue()
	}
	if from == "" {
		c.Info("sender-policy: user %s used the null sender", user)
		return sdk.Reject(550, "5.7.1", "The null sender <> is not allowed for authenticated users")
	}
	if !p.owns(user, from) {
		c.Info("sender-policy: user %s may not send as <%s>", user, from)
		return sdk.Reject(550, "5.7.1", fmt.Sprintf("<%s>: user %s may not send as this address", from, user))
	}
	return sdk.Continue()
}

// onRcpt checks the recipient block list (everyone) and the per-message
// recipient limit of an authenticated user (452: the client sends the
// rest in another message).
func onRcpt(c *sdk.Ctx) sdk.Verdict {
	p, ok := load(c)
	if !ok {
		return sdk.Continue()
	}
	rcpt := c.Rcpt()
	if pat := p.blockRcpts.blocked(rcpt); pat != "" {
		c.Info("sender-policy: recipient <%s> blocked by %q", rcpt, pat)
		return sdk.Reject(550, "5.7.1", "<"+rcpt+">: recipient blocked by policy")
	}
	user := c.AuthUser()
	if user == "" {
		return sdk.Continue()
	}
	if n := p.maxFor(user); n > 0 && len(c.Rcpts()) >= n {
		c.Info("sender-policy: user %s over %d recipients per message", user, n)
		return sdk.Tempfail(452, "4.5.3", fmt.Sprintf("Too many recipients: at most %d per message for %s", n, user))
	}
	return sdk.Continue()
}

// onData checks that an authenticated user's header From aligns with the
// envelope sender.
func onData(c *sdk.Ctx) sdk.Verdict {
	p, ok := load(c)
	if !ok {
		return sdk.Continue()
	}
	user := c.AuthUser()
	if user == "" || p.align == alignOff {
		return sdk.Continue()
	}
	env := c.MailFrom()
	if env == "" {
		return sdk.Continue()
	}
	fields := c.HeaderAll("From")
	if len(fields) != 1 {
		c.Info("sender-policy: user %s sent %d From fields", user, len(fields))
		return sdk.Reject(550, "5.7.1", fmt.Sprintf("The message must have exactly one From header field (it has %d)", len(fields)))
	}
	list, err := mail.ParseAddressList(fields[0])
	if err != nil || len(list) == 0 {
		c.Info("sender-policy: user %s sent an unreadable From %q: %v", user, fields[0], err)
		return sdk.Reject(550, "5.7.1", "The From header field is not a valid address list")
	}
	envDom := sdk.Domain(env)
	for _, a := range list {
		if !aligned(p.align, sdk.Domain(a.Address), envDom) {
			c.Info("sender-policy: user %s: From <%s> does not align with <%s>", user, a.Address, env)
			return sdk.Reject(550, "5.7.1", fmt.Sprintf("From <%s> does not match the envelope sender <%s>", sanitize(a.Address), env))
		}
	}
	return sdk.Continue()
}

// load reads the configuration; a bad one (which the init check keeps from
// loading) is logged and enforces nothing.
func load(c *sdk.Ctx) (*policy, bool) {
	p, err := cfgCache.Get(c)
	if err != nil {
		c.Error("sender-policy: bad configuration, not enforcing: %v", err)
		return nil, false
	}
	return p, true
}

// sanitize keeps printable ASCII of a header address for the SMTP reply.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// main is not called: the host calls the exported hooks.

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[*policy]{Load: loadPolicy}
