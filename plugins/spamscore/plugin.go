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
	var hits hitSet
	// The header section alone: the body is read at once, and only when
	// the MIME walk gets to it.
	body := newLazyBody(c, r.maxScan)
	hdrBuf = c.AppendHeaders(hdrBuf[:0])
	h, err := readHeader(hdrBuf)
	if err != nil {
		c.Warn("spamscore: header section does not parse, scoring envelope only: %v", err)
		h = mail.Header{}
		body.loaded = true
	}
	checkHeaders(r, h, c.MailFrom(), &hits)
	checkAuth(authResults(c, r), &hits)
	if err := scanBody(r, h, body, &hits); err != nil {
		c.Warn("spamscore: body scan stopped: %v", err)
	}
	body.release()
	if cap(hdrBuf) > keepBody {
		hdrBuf, keptHeader = nil, nil
	}
	for i := 0; hits != 0 && i < len(sortedSymbols); i++ {
		s := sortedSymbols[i]
		if !hits.has(s) {
			continue
		}
		if w := r.weights[s]; w != 0 {
			if err := c.AddScore(s.String(), w); err != nil {
				c.Error("spamscore: adding %s: %v", s, err)
			}
		}
	}
	return sdk.Continue()
}

// hdrBuf is the header section buffer, kept from call to call (an
// instance runs one call at a time), as bodyBuf is.
var hdrBuf []byte

// authResults is the host's Authentication-Results value, or with
// trust_header the message's first Authentication-Results field.
func authResults(c *sdk.Ctx, r *rules) string {
	if ar := c.AuthResults(); ar != "" || !r.trustHeader {
		return ar
	}
	ar, _ := c.Header("Authentication-Results")
	return ar
}

// wordDecoder decodes RFC 2047 words in the Subject; it keeps no state.
var wordDecoder mime.WordDecoder

// checkHeaders looks at the header fields and the envelope sender.
func checkHeaders(r *rules, h headerGetter, mailFrom string, hits *hitSet) {
	if strings.TrimSpace(h.Get("Date")) == "" {
		hits.set(symMissingDate)
	}
	if strings.TrimSpace(h.Get("Message-Id")) == "" {
		hits.set(symMissingMsgID)
	}
	raw := h.Get("Subject")
	subj, err := wordDecoder.DecodeHeader(raw)
	if err != nil {
		subj = raw
	}
	if strings.TrimSpace(subj) == "" {
		hits.set(symSubjectEmpty)
	} else if allCaps(subj) {
		hits.set(symSubjectCaps)
	}
	from, err := parseAddress(h.Get("From"))
	if err != nil {
		hits.set(symMissingFrom)
		return
	}
	fromDom := sdk.Domain(from.Address)
	// No Reply-To (nearly all mail) cannot parse: net/mail need not say so.
	if v := h.Get("Reply-To"); v != "" {
		if rt, err := parseAddress(v); err == nil && !sameOrg(sdk.Domain(rt.Address), fromDom) {
			hits.set(symReplyToMismatch)
		}
	}
	if mailFrom != "" && !sameOrg(sdk.Domain(mailFrom), fromDom) {
		hits.set(symEnvMismatch)
	}
	if spoofsLocal(r, &from, fromDom) {
		hits.set(symDisplaySpoof)
	}
}

// spoofsLocal reports whether the display name names a local domain while
// the address is not in one.
func spoofsLocal(r *rules, from *mail.Address, fromDom string) bool {
	if from.Name == "" || len(r.localDomains) == 0 {
		return false
	}
	for _, d := range r.localDomains {
		if fromDom == d || subdomain(fromDom, d) {
			return false
		}
	}
	return namesLocal(r.localDomains, from.Name)
}

// namesLocal reports whether the display name contains one of the local
// domains (lower case) as a word of its own, compared in lower case at
// the domain's first occurrence. An ASCII name is compared without
// lower-casing a copy; FuzzNamesLocal checks the two ways agree.
func namesLocal(domains []string, name string) bool {
	if !isASCII(name) {
		return namesLocalLower(domains, strings.ToLower(name))
	}
	for _, d := range domains {
		if i := indexFoldASCII(name, d); i >= 0 {
			before, after := i == 0 || !isDomainChar(lowerASCII(name[i-1])), i+len(d) == len(name) || !isDomainChar(lowerASCII(name[i+len(d)]))
			if before && after {
				return true
			}
		}
	}
	return false
}

// namesLocalLower is namesLocal for a name already in lower case.
func namesLocalLower(domains []string, name string) bool {
	for _, d := range domains {
		if i := strings.Index(name, d); i >= 0 {
			before, after := i == 0 || !isDomainChar(name[i-1]), i+len(d) == len(name) || !isDomainChar(name[i+len(d)])
			if before && after {
				return true
			}
		}
	}
	return false
}

// isASCII reports whether s is ASCII only.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases an ASCII letter.
func lowerASCII(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// indexFoldASCII is strings.Index(strings.ToLower(s), sub) for an ASCII s.
func indexFoldASCII(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) && lowerASCII(s[i+j]) == sub[j] {
			j++
		}
		if j == len(sub) {
			return i
		}
	}
	return -1
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
	return a == b || subdomain(a, b) || subdomain(b, a)
}

// subdomain reports whether a ends in "."+b, without building that string.
func subdomain(a, b string) bool {
	return len(a) > len(b) && a[len(a)-len(b)-1] == '.' && a[len(a)-len(b):] == b
}

// checkAuth reads an Authentication-Results value:
// "authserv-id; spf=fail smtp.mailfrom=…; dkim=pass …; dmarc=fail …".
func checkAuth(ar string, hits *hitSet) {
	// The authserv-id first, then "method=result …" parts: cut one at a
	// time (strings.Split would allocate the list).
	_, rest, more := strings.Cut(ar, ";")
	for more {
		var p string
		p, rest, more = strings.Cut(rest, ";")
		method, result, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		result, _, _ = strings.Cut(result, " ")
		method, result = strings.ToLower(strings.TrimSpace(method)), strings.ToLower(strings.TrimSpace(result))
		switch {
		case method == "spf" && result == "fail":
			hits.set(symSPFFail)
		case method == "spf" && result == "softfail":
			hits.set(symSPFSoftfail)
		case method == "dkim" && result == "fail":
			hits.set(symDKIMFail)
		case method == "dmarc" && result == "fail":
			hits.set(symDMARCFail)
		}
	}
}

// main is not called: the host calls the exported hooks.

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[*rules]{Load: loadRules}
