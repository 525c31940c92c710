// Package spamscore is a Sluice plugin that scores a message at the data
// stage with named heuristics — missing Date or Message-ID, mismatched
// From/Reply-To/envelope, display names claiming a local domain, shouting
// or empty subjects, HTML-only bodies, URLs with IP hosts or shorteners,
// dangerous attachments, and failed SPF, DKIM or DMARC — and adds each
// symbol's weight to the message's spam score. The core applies the
// [spam] thresholds.
// It registers itself as the plugin spamscore (sdk.Plugin); `make plugins`
// builds it into the first-party module, plugins/firstparty, with the
// others.
package spamscore

import (
	"mime"
	"net/mail"
	"strings"
	"unicode"

	"github.com/sluice-mta/sluice/sdk"
)

func init() {
	sdk.Plugin("spamscore", func() {
		sdk.OnInit(func(c *sdk.Ctx) error {
			_, err := loadRules(c)
			return err
		})
		sdk.OnData(onData)
	})
}

// onData scores the message.
func onData(c *sdk.Ctx) sdk.Verdict {
	r, err := cfgCache.Get(c)
	if err != nil {
		c.Error("%v", err)
		return sdk.Continue()
	}
	if c.AuthUser() != "" && !r.scoreAuthenticated {
		return sdk.Continue()
	}
	hits := make(map[string]bool, 4)
	// The header section alone: the body is read at once, and only when
	// the MIME walk gets to it.
	body := &lazyBody{c: c, limit: r.maxScan}
	h, err := readHeader(c.Headers())
	if err != nil {
		c.Warn("spamscore: header section does not parse, scoring envelope only: %v", err)
		h = mail.Header{}
		body.loaded = true
	}
	checkHeaders(r, h, c.MailFrom(), hits)
	checkAuth(authResults(c, r), hits)
	if err := scanBody(r, h, body, hits); err != nil {
		c.Warn("spamscore: body scan stopped: %v", err)
	}
	body.release()
	for _, name := range sortedSymbols {
		if w := r.weights[name]; hits[name] && w != 0 {
			if err := c.AddScore(name, w); err != nil {
				c.Error("spamscore: adding %s: %v", name, err)
			}
		}
	}
	return sdk.Continue()
}

// authResults is the host's Authentication-Results value, or with
// trust_header the message's first Authentication-Results field.
func authResults(c *sdk.Ctx, r *rules) string {
	if ar := c.AuthResults(); ar != "" || !r.trustHeader {
		return ar
	}
	ar, _ := c.Header("Authentication-Results")
	return ar
}

// checkHeaders looks at the header fields and the envelope sender.
func checkHeaders(r *rules, h headerGetter, mailFrom string, hits map[string]bool) {
	if strings.TrimSpace(h.Get("Date")) == "" {
		hits[symMissingDate] = true
	}
	if strings.TrimSpace(h.Get("Message-Id")) == "" {
		hits[symMissingMsgID] = true
	}
	dec := new(mime.WordDecoder)
	subj, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		subj = h.Get("Subject")
	}
	if strings.TrimSpace(subj) == "" {
		hits[symSubjectEmpty] = true
	} else if allCaps(subj) {
		hits[symSubjectCaps] = true
	}
	from, err := parseAddress(h.Get("From"))
	if err != nil {
		hits[symMissingFrom] = true
		return
	}
	fromDom := sdk.Domain(from.Address)
	if rt, err := parseAddress(h.Get("Reply-To")); err == nil && !sameOrg(sdk.Domain(rt.Address), fromDom) {
		hits[symReplyToMismatch] = true
	}
	if mailFrom != "" && !sameOrg(sdk.Domain(mailFrom), fromDom) {
		hits[symEnvMismatch] = true
	}
	if spoofsLocal(r, from, fromDom) {
		hits[symDisplaySpoof] = true
	}
}

// spoofsLocal reports whether the display name names a local domain while
// the address is not in one.
func spoofsLocal(r *rules, from *mail.Address, fromDom string) bool {
	name := strings.ToLower(from.Name)
	if name == "" {
		return false
	}
	for _, d := range r.localDomains {
		if fromDom == d || strings.HasSuffix(fromDom, "."+d) {
			return false
		}
	}
	for _, d := range r.localDomains {
		if i := strings.Index(name, d); i >= 0 {
			before, after := i == 0 || !isDomainChar(name[i-1]), i+len(d) == len(name) || !isDomainChar(name[i+len(d)])
			if before && after {
				return true
			}
		}
	}
	return false
}

func isDomainChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-'
}

// allCaps reports a subject of at least six letters with no lower-case one.
func allCaps(s string) bool {
	letters := 0
	for _, r := range s {
		switch {
		case unicode.IsLower(r):
			return false
		case unicode.IsUpper(r):
			letters++
		}
	}
	return letters >= 6
}

// sameOrg reports whether a and b are equal or one is a subdomain of the
// other (without a public suffix list: news.example.com matches
// example.com).
func sameOrg(a, b string) bool {
	return a == b || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a)
}

// checkAuth reads an Authentication-Results value:
// "authserv-id; spf=fail smtp.mailfrom=…; dkim=pass …; dmarc=fail …".
func checkAuth(ar string, hits map[string]bool) {
	parts := strings.Split(ar, ";")
	for _, p := range parts[min(1, len(parts)):] {
		method, result, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		result, _, _ = strings.Cut(result, " ")
		method, result = strings.ToLower(strings.TrimSpace(method)), strings.ToLower(strings.TrimSpace(result))
		switch {
		case method == "spf" && result == "fail":
			hits[symSPFFail] = true
		case method == "spf" && result == "softfail":
			hits[symSPFSoftfail] = true
		case method == "dkim" && result == "fail":
			hits[symDKIMFail] = true
		case method == "dmarc" && result == "fail":
			hits[symDMARCFail] = true
		}
	}
}

// main is not called: the host calls the exported hooks.

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[*rules]{Load: loadRules}
