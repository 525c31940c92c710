package auth

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/sluice-mta/sluice/core/mail"
)

// Results are the outcomes of the checks of one message. A check that was
// turned off has a nil result.
type Results struct {
	// Hostname is the authserv-id of the header.
	Hostname string
	SPF      *SPFResult
	// DKIM has one result per signature verified: empty (not nil) for an
	// unsigned message, nil when the check is off.
	DKIM  []*DKIMResult
	DMARC *DMARCResult
}

// Disposition returns what the DMARC policy asks for the message: "none",
// "quarantine" or "reject". The caller enforces it or not.
func (r *Results) Disposition() string { return dispositionOf(r.DMARC) }

// Header returns the value of the Authentication-Results field (RFC 8601)
// for r, on one line, like
// "mx.example.com; spf=pass smtp.mailfrom=a.example; dkim=none; dmarc=pass header.from=a.example".
func (r *Results) Header() string {
	return r.Hostname + "; " + strings.Join(r.methods(), "; ")
}

// Apply edits the message's header h: it removes the
// Authentication-Results fields that claim r.Hostname (RFC 8601 section
// 5) and prepends r's own, folded one method a line. The other fields
// keep their bytes.
func (r *Results) Apply(h *mail.Header) {
	removeAuthResults(h, r.Hostname)
	h.Add("Authentication-Results", r.Hostname+";\r\n\t"+strings.Join(r.methods(), ";\r\n\t"))
}

// methods formats each result as "method=result props".
func (r *Results) methods() []string {
	var rs []authres.Result
	if s := r.SPF; s != nil {
		rs = append(rs, &authres.SPFResult{Value: authres.ResultValue(s.Result), Reason: clean(s.Reason),
			From: clean(s.MailFrom), Helo: clean(s.Helo)})
	}
	if r.DKIM != nil {
		if len(r.DKIM) == 0 {
			rs = append(rs, &authres.DKIMResult{Value: authres.ResultNone})
		}
		for _, d := range r.DKIM {
			rs = append(rs, &authres.DKIMResult{Value: authres.ResultValue(d.Result), Reason: clean(d.Reason),
				Domain: clean(d.Domain), Identifier: clean(d.Identifier)})
		}
	}
	if d := r.DMARC; d != nil {
		rs = append(rs, &authres.DMARCResult{Value: authres.ResultValue(d.Result), Reason: clean(d.Reason), From: clean(d.From)})
	}
	if len(rs) == 0 {
		return []string{"none"}
	}
	out := make([]string, len(rs))
	for i, res := range rs {
		s := authres.Format("", []authres.Result{res})
		out[i] = strings.TrimSpace(strings.TrimPrefix(s, "; "))
	}
	return out
}

// clean keeps a value that came from the message or the DNS printable and
// free of the characters that would break the header's syntax.
func clean(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\' || c == ';':
			b.WriteByte('\'')
		case c < ' ' || c > '~':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() > 200 {
		return b.String()[:200]
	}
	return b.String()
}

// spfValue, dkimSummary, dmarcValue and dispositionOf describe results for
// the log.
func spfValue(s *SPFResult) string {
	if s == nil {
		return "off"
	}
	return string(s.Result)
}

func dkimSummary(ds []*DKIMResult) string {
	if len(ds) == 0 {
		return "none"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = string(d.Result) + ":" + d.Domain
	}
	return strings.Join(parts, ",")
}

func dmarcValue(d *DMARCResult) string {
	if d == nil {
		return "off"
	}
	return string(d.Result)
}

func dispositionOf(d *DMARCResult) string {
	if d == nil || d.Disposition == "" {
		return DispositionNone
	}
	return d.Disposition
}
