// Package helo is a Sluice plugin that judges who a client says it is
// against who it is: it scores (or refuses) a client without reverse DNS,
// with reverse DNS that is not forward-confirmed, greeting with a HELO/EHLO
// name that is not a fully qualified domain name, claiming to be this
// server (one of our names or addresses), or giving an address literal
// that is not its own address. The server looks the reverse DNS up (the
// properties RDNS, RDNSStatus and PTR); the plugin needs no grants. See
// README.md for its configuration.
// It registers itself as the plugin helo (sdk.Plugin); `make plugins`
// builds it into the first-party module, plugins/firstparty, with the
// others.
// The rules run at MAIL FROM, like Postfix's smtpd_delay_reject: by then
// the host knows whether the client authenticated (an authenticated
// session is never judged), and the score belongs to the transaction
// (the host starts each transaction's score afresh at MAIL FROM).
package helo

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

// Reverse DNS outcomes, as the RDNSStatus property gives them.
const (
	statusNone        = "none"
	statusUnconfirmed = "unconfirmed"
	statusTempfail    = "tempfail"
)

func init() {
	sdk.Plugin("helo", func() {
		sdk.OnInit(func(c *sdk.Ctx) error {
			_, err := loadConfig(c)
			return err
		})
		sdk.OnMail(onMail)
	})
}

// main is not called: the host calls the exported hooks.

// client is what the rules look at.
type client struct {
	ip, local  netip.Addr
	helo       string
	rdnsStatus string
	ptr        string
}

// hit is one rule that fired, with what the reply and the log say.
type hit struct {
	rule   string
	detail string
}

// onMail judges the client and refuses it on the first rule configured to
// reject, or adds the scores of the rules that fired.
func onMail(c *sdk.Ctx) sdk.Verdict {
	if c.AuthUser() != "" {
		return sdk.Continue()
	}
	cfg, err := cfgCache.Get(c)
	if err != nil {
		c.Error("%v", err)
		return sdk.Continue()
	}
	ip := c.ClientIP().Unmap()
	if !ip.IsValid() || cfg.skip.Contains(ip) {
		return sdk.Continue()
	}
	cl := client{ip: ip, local: c.LocalIP().Unmap(), helo: c.Helo(), rdnsStatus: c.RDNSStatus(), ptr: c.PTR()}
	hits := judge(cfg, cl)
	for _, h := range hits {
		if cfg.reject[h.rule] {
			c.Info("helo: [%s] helo %q refused: %s (%s)", cl.ip, cl.helo, h.rule, h.detail)
			return refusal(h, cl)
		}
	}
	for _, h := range hits {
		score := cfg.scores[h.rule]
		if score == 0 {
			continue
		}
		c.Info("helo: [%s] helo %q: %s (%s), score %g", cl.ip, cl.helo, h.rule, h.detail, score)
		if err := c.AddScore(strings.ToUpper(h.rule), score); err != nil {
			c.Warn("helo: adding score %s: %v", h.rule, err)
		}
	}
	return sdk.Continue()
}

// judge returns the rules cl breaks, in the order of rules.
func judge(cfg *config, cl client) []hit {
	var hits []hit
	switch cl.rdnsStatus {
	case statusNone:
		hits = append(hits, hit{ruleNoPTR, "no reverse DNS"})
	case statusUnconfirmed:
		hits = append(hits, hit{rulePTRUnconfirmed, "reverse DNS " + cl.ptr + " does not resolve to the address"})
	case statusTempfail:
		hits = append(hits, hit{ruleRDNSTempfail, "reverse DNS lookup failed"})
	}
	helo := strings.TrimSuffix(strings.ToLower(cl.helo), ".")
	if a, literal, ok := addressLiteral(helo); literal {
		switch {
		case !ok:
			hits = append(hits, hit{ruleHeloNotFQDN, "not an address literal"})
		case a == cl.ip:
		case cfg.ourAddr(a, cl.local):
			hits = append(hits, hit{ruleHeloOurs, "claims our address"})
		case a != cl.ip:
			hits = append(hits, hit{ruleHeloIPMismatch, "not the client's address"})
		}
		return hits
	}
	switch {
	case cfg.ours(helo):
		hits = append(hits, hit{ruleHeloOurs, "claims our name"})
	case !fqdn(helo):
		hits = append(hits, hit{ruleHeloNotFQDN, "not a fully qualified domain name"})
	}
	return hits
}

// refusal is the reply for a rule configured to reject; Postfix's texts.
func refusal(h hit, cl client) sdk.Verdict {
	helo := cl.helo
	if len(helo) > 100 {
		helo = helo[:100] + "..."
	}
	switch h.rule {
	case ruleNoPTR:
		return sdk.Reject(550, "5.7.25", fmt.Sprintf("Client host rejected: cannot find your reverse hostname, [%s]", cl.ip))
	case rulePTRUnconfirmed:
		return sdk.Reject(550, "5.7.25", fmt.Sprintf("Client host rejected: cannot find your hostname, [%s]", cl.ip))
	case ruleRDNSTempfail:
		return sdk.Tempfail(450, "4.7.25", fmt.Sprintf("Client host rejected: cannot find your hostname, [%s]", cl.ip))
	case ruleHeloNotFQDN:
		return sdk.Reject(504, "5.5.2", fmt.Sprintf("<%s>: Helo command rejected: need fully-qualified hostname", helo))
	case ruleHeloOurs:
		return sdk.Reject(550, "5.7.1", fmt.Sprintf("<%s>: Helo command rejected: that is this server, not you", helo))
	default: // ruleHeloIPMismatch
		return sdk.Reject(550, "5.7.1", fmt.Sprintf("<%s>: Helo command rejected: not your address [%s]", helo, cl.ip))
	}
}

// addressLiteral reads a HELO (lower case) that names an address: an
// address literal ("[192.0.2.1]", "[ipv6:2001:db8::1]", RFC 5321 section
// 4.1.3) or a bare address. literal reports whether helo is one; ok that
// it holds a valid address.
func addressLiteral(helo string) (a netip.Addr, literal, ok bool) {
	if inner, found := strings.CutPrefix(helo, "["); found {
		inner, closed := strings.CutSuffix(inner, "]")
		if !closed {
			return netip.Addr{}, true, false
		}
		v6, isV6 := strings.CutPrefix(inner, "ipv6:")
		a, err := netip.ParseAddr(v6)
		if err != nil || a.Zone() != "" || isV6 != a.Is6() || a.Is4In6() {
			return netip.Addr{}, true, false
		}
		return a, true, true
	}
	if a, err := netip.ParseAddr(helo); err == nil {
		return a.Unmap(), true, a.Zone() == ""
	}
	return netip.Addr{}, false, false
}

// fqdn reports whether name (lower case, no final dot) is a fully
// qualified domain name: at least two labels of letters, digits, hyphens
// (not at a label's ends) and underscores (which Postfix tolerates too), at
// most 63 bytes a label and 253 in all, the last not all digits.
func fqdn(name string) bool {
	if len(name) > 253 || !strings.Contains(name, ".") {
		return false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[*config]{Load: loadConfig}
