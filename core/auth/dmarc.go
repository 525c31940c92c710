package auth

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// The dispositions a DMARC policy can ask for (RFC 7489 section 6.3).
const (
	DispositionNone       = "none"
	DispositionQuarantine = "quarantine"
	DispositionReject     = "reject"
)

// DMARCResult is the outcome of evaluating the From domain's DMARC policy.
type DMARCResult struct {
	// Result is pass, fail, none (no From domain or no policy), temperror
	// or permerror (a broken record, or a From field naming several
	// domains).
	Result Result
	// From is the RFC 5322 From domain.
	From string
	// Policy is the policy that applies, "none", "quarantine" or "reject":
	// the sp= of the organisational domain's record for a subdomain without
	// its own record, p= otherwise; "" when there is no record.
	Policy string
	// Disposition is what the policy asks for this message: "none" unless
	// it failed, then Policy, softened for messages pct= leaves out.
	Disposition string
	// SPFAligned and DKIMAligned say which pass counted.
	SPFAligned, DKIMAligned bool
	// Reason explains a result other than pass, for people.
	Reason string
}

// checkDMARC evaluates DMARC (RFC 7489 section 6.6) for the message whose
// From fields have the values froms, from the SPF and DKIM results already
// in res.
func (c *Checker) checkDMARC(ctx context.Context, froms []string, res *Results) *DMARCResult {
	r := &DMARCResult{Result: None, Disposition: DispositionNone}
	from, err := fromDomain(froms)
	if err != nil {
		r.Result, r.Reason = PermError, err.Error()
		return r
	}
	if from == "" {
		r.Reason = "no From domain"
		return r
	}
	r.From = from
	opts := &dmarc.LookupOptions{LookupTXT: txtLookup(ctx, c.opts.Resolver)}
	rec, err := dmarc.LookupWithOptions(from, opts)
	sub := false
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := orgDomain(from); org != from {
			rec, err = dmarc.LookupWithOptions(org, opts)
			sub = true
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		r.Reason = "no DMARC policy"
		return r
	case dmarc.IsTempFail(err):
		r.Result, r.Reason = TempError, err.Error()
		return r
	case err != nil:
		r.Result, r.Reason = PermError, err.Error()
		return r
	}
	r.Policy = string(rec.Policy)
	if sub && rec.SubdomainPolicy != "" {
		r.Policy = string(rec.SubdomainPolicy)
	}
	if s := res.SPF; s != nil && s.Result == Pass {
		r.SPFAligned = aligned(s.Domain, from, rec.SPFAlignment)
	}
	for _, d := range res.DKIM {
		if d.Result == Pass && aligned(d.Domain, from, rec.DKIMAlignment) {
			r.DKIMAligned = true
		}
	}
	if r.SPFAligned || r.DKIMAligned {
		r.Result = Pass
		return r
	}
	r.Result, r.Reason = Fail, "no aligned SPF or DKIM pass"
	r.Disposition = r.Policy
	if rec.Percent != nil && *rec.Percent < 100 && rand.IntN(100) >= *rec.Percent {
		// RFC 7489 section 6.6.4: outside the sample, apply the next
		// policy down.
		switch r.Disposition {
		case DispositionReject:
			r.Disposition = DispositionQuarantine
		case DispositionQuarantine:
			r.Disposition = DispositionNone
		}
		r.Reason += "; policy softened by pct"
	}
	return r
}

// fromDomain returns the one domain of the From field(s), lower case, or ""
// when there is no From field. Several From fields, or addresses in several
// domains, are an error (RFC 7489 section 6.6.1).
func fromDomain(froms []string) (string, error) {
	if len(froms) == 0 {
		return "", nil
	}
	if len(froms) > 1 {
		return "", errors.New("several From fields")
	}
	var domains []string
	if list, err := mail.ParseAddressList(froms[0]); err == nil {
		for _, a := range list {
			domains = append(domains, domainOf(a.Address))
		}
	} else {
		// An unparseable From (an unknown charset in the display name,
		// say) still has its address at the end.
		v := froms[0]
		if i := strings.LastIndexByte(v, '<'); i >= 0 {
			v = v[i:]
		}
		domains = append(domains, domainOf(strings.TrimRight(v, "> \t")))
	}
	d := strings.ToLower(domains[0])
	for _, o := range domains[1:] {
		if !strings.EqualFold(o, d) {
			return "", errors.New("From names several domains")
		}
	}
	if d == "" {
		return "", errors.New("From has no domain")
	}
	return d, nil
}

// orgDomain returns the organisational domain of d (RFC 7489 section 3.2):
// one label below its public suffix, or d itself when it is a public suffix.
func orgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned reports whether the authenticated domain d aligns with the From
// domain from: equal under strict alignment, of the same organisational
// domain under relaxed.
func aligned(d, from string, mode dmarc.AlignmentMode) bool {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if d == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return d == from
	}
	return orgDomain(d) == orgDomain(from)
}
