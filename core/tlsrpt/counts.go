package tlsrpt

import (
	"slices"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// Bounds on what one policy domain's day can grow to: a domain that keeps
// changing its policy, or failures with ever new addresses or texts, must
// not grow the store without end. Past them sessions are still counted in
// the totals and by result type, without the detail.
const (
	// MaxPolicies is how many distinct policies a domain's day keeps.
	MaxPolicies = 32
	// MaxFailureDetails is how many distinct failure details a policy
	// keeps before further failures are counted by result type only.
	MaxFailureDetails = 100
)

// DayLayout is how a UTC day is written in keys, the admin API and
// `sluice tls-report`.
const DayLayout = "2006-01-02"

// Day returns the UTC day of t, as DayLayout writes it.
func Day(t time.Time) string { return t.UTC().Format(DayLayout) }

// DomainCounts are one policy domain's sessions of one UTC day.
type DomainCounts struct {
	// Day is the UTC day, like "2026-11-27".
	Day string `json:"day"`
	// Domain is the policy domain, lower case.
	Domain string `json:"domain"`
	// Policies are the policies that applied, each with its counts.
	Policies []PolicyCounts `json:"policies"`
	// Dropped counts sessions of policies past MaxPolicies.
	Dropped int64 `json:"dropped,omitempty"`
}

// PolicyCounts are the sessions under one policy.
type PolicyCounts struct {
	Type PolicyType `json:"type"`
	// Strings is the policy as published (RFC 8460 policy-string).
	Strings []string `json:"strings,omitempty"`
	// Successful and Failed count sessions.
	Successful int64 `json:"successful"`
	Failed     int64 `json:"failed"`
	// Failures break Failed down: by result type and, up to
	// MaxFailureDetails, by the details RFC 8460 §4.4 reports.
	Failures []FailureCount `json:"failures,omitempty"`
}

// FailureCount is one failure detail (RFC 8460 §4.4) and how many sessions
// failed with it.
type FailureCount struct {
	ResultType  ResultType `json:"result_type"`
	SendingIP   string     `json:"sending_ip,omitempty"`
	MXHost      string     `json:"mx_host,omitempty"`
	ReceivingIP string     `json:"receiving_ip,omitempty"`
	// Reason is the failure-reason-code: the TLS error as text.
	Reason string `json:"reason,omitempty"`
	Count  int64  `json:"count"`
}

// ByResultType sums p's failures by result type, in the order they first
// appear.
func (p *PolicyCounts) ByResultType() []FailureCount {
	var out []FailureCount
	for _, f := range p.Failures {
		i := slices.IndexFunc(out, func(o FailureCount) bool { return o.ResultType == f.ResultType })
		if i < 0 {
			out = append(out, FailureCount{ResultType: f.ResultType})
			i = len(out) - 1
		}
		out[i].Count += f.Count
	}
	return out
}

// add counts one result.
func (d *DomainCounts) add(r *Result) {
	p := d.policy(r.PolicyType, r.PolicyStrings)
	if p == nil {
		d.Dropped++
		return
	}
	if r.Success {
		p.Successful++
		return
	}
	p.Failed++
	f := FailureCount{ResultType: r.Failure, MXHost: mail.NormDomain(r.MXHost), Reason: clipReason(r.Detail), Count: 1}
	if f.ResultType == "" {
		f.ResultType = ResultValidationFailure
	}
	if r.SendingIP.IsValid() {
		f.SendingIP = r.SendingIP.Unmap().String()
	}
	if r.ReceivingIP.IsValid() {
		f.ReceivingIP = r.ReceivingIP.Unmap().String()
	}
	p.addFailure(f)
}

// merge adds o's counts (of the same domain and day) to d.
func (d *DomainCounts) merge(o *DomainCounts) {
	d.Dropped += o.Dropped
	for i := range o.Policies {
		op := &o.Policies[i]
		p := d.policy(op.Type, op.Strings)
		if p == nil {
			d.Dropped += op.Successful + op.Failed
			continue
		}
		p.Successful += op.Successful
		p.Failed += op.Failed
		for _, f := range op.Failures {
			p.addFailure(f)
		}
	}
}

// policy returns d's counts of one policy, added when new; nil past
// MaxPolicies.
func (d *DomainCounts) policy(t PolicyType, strs []string) *PolicyCounts {
	if t == "" {
		t = PolicyNone
	}
	for i := range d.Policies {
		if p := &d.Policies[i]; p.Type == t && slices.Equal(p.Strings, strs) {
			return p
		}
	}
	if len(d.Policies) >= MaxPolicies {
		return nil
	}
	d.Policies = append(d.Policies, PolicyCounts{Type: t, Strings: slices.Clone(strs)})
	return &d.Policies[len(d.Policies)-1]
}

// addFailure adds f's count to the same detail, or appends it; past
// MaxFailureDetails it goes to the result type's detail-less entry.
func (p *PolicyCounts) addFailure(f FailureCount) {
	key := f
	for {
		for i := range p.Failures {
			g := &p.Failures[i]
			g2 := *g
			g2.Count = key.Count
			if g2 == key {
				g.Count += key.Count
				return
			}
		}
		if len(p.Failures) < MaxFailureDetails || key == (FailureCount{ResultType: f.ResultType, Count: f.Count}) {
			p.Failures = append(p.Failures, key)
			return
		}
		key = FailureCount{ResultType: f.ResultType, Count: f.Count}
	}
}

// clipReason bounds a failure's text: it is kept per distinct value.
func clipReason(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if s[i]&0xC0 != 0x80 { // a UTF-8 boundary
			return s[:i]
		}
	}
	return ""
}
