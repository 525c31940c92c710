package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Report is the aggregate report of RFC 8460 §4, with its JSON names.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`

	domain string // the policy domain
}

// DateRange is the UTC day a report covers, its first and last second.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResult is one policy's sessions.
type PolicyResult struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// Policy names the policy that applied (RFC 8460 §4.3).
type Policy struct {
	Type   PolicyType `json:"policy-type"`
	String []string   `json:"policy-string,omitempty"`
	Domain string     `json:"policy-domain"`
	// MXHost lists an MTA-STS policy's mx patterns.
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary counts a policy's sessions.
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// FailureDetail is one kind of failed session (RFC 8460 §4.4).
type FailureDetail struct {
	ResultType          ResultType `json:"result-type"`
	SendingMTAIP        string     `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string     `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string     `json:"receiving-ip,omitempty"`
	FailedSessionCount  int64      `json:"failed-session-count"`
	FailureReasonCode   string     `json:"failure-reason-code,omitempty"`
}

// Sender says who a report comes from.
type Sender struct {
	// From is the report's From: and envelope sender.
	From string
	// Organization is organization-name; Contact is contact-info.
	Organization, Contact string
	// Hostname is this server's name: the right side of the report-id,
	// so that several nodes' reports differ.
	Hostname string
}

// NewReport builds the report of one policy domain's day.
func NewReport(c *DomainCounts, s Sender) (*Report, error) {
	start, err := time.Parse(DayLayout, c.Day)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: bad day %q: %w", c.Day, err)
	}
	r := &Report{
		OrganizationName: s.Organization,
		DateRange:        DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
		ContactInfo:      s.Contact,
		ReportID:         start.Format("20060102") + "." + c.Domain + "@" + s.Hostname,
		Policies:         []PolicyResult{},
		domain:           c.Domain,
	}
	for _, p := range c.Policies {
		pr := PolicyResult{
			Policy:  Policy{Type: p.Type, String: p.Strings, Domain: c.Domain},
			Summary: Summary{Successful: p.Successful, Failed: p.Failed},
		}
		if p.Type == PolicySTS {
			for _, l := range p.Strings {
				if mx, ok := strings.CutPrefix(l, "mx:"); ok {
					pr.Policy.MXHost = append(pr.Policy.MXHost, strings.TrimSpace(mx))
				}
			}
		}
		for _, f := range p.Failures {
			pr.FailureDetails = append(pr.FailureDetails, FailureDetail{
				ResultType: f.ResultType, SendingMTAIP: f.SendingIP, ReceivingMXHostname: f.MXHost,
				ReceivingIP: f.ReceivingIP, FailedSessionCount: f.Count, FailureReasonCode: f.Reason,
			})
		}
		r.Policies = append(r.Policies, pr)
	}
	return r, nil
}

// Filename is the attachment's name (RFC 8460 §5.3):
// submitter!policy-domain!begin!end.json.gz, the times in Unix seconds.
func (r *Report) Filename(submitter string) string {
	return fmt.Sprintf("%s!%s!%d!%d.json.gz", submitter, r.domain, r.DateRange.Start.Unix(), r.DateRange.End.Unix())
}

// Gzip returns the report as gzip-compressed JSON.
func (r *Report) Gzip() ([]byte, error) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	enc := json.NewEncoder(zw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Message renders the report as the mail RFC 8460 §5.3 describes, CRLF
// line endings, to be queued from s.From to the rcpts: multipart/report
// with report-type "tlsrpt", the TLS-Report-Domain and TLS-Report-Submitter
// fields (the submitter is From's domain), a short text and the gzip JSON
// as application/tlsrpt+gzip. now dates it. DKIM signing is the queue's
// outbound signer's job.
func (r *Report) Message(s Sender, rcpts []string, now time.Time) ([]byte, error) {
	gz, err := r.Gzip()
	if err != nil {
		return nil, err
	}
	domain := r.domain
	_, submitter, _ := strings.Cut(s.From, "@")
	token := make([]byte, 12)
	_, _ = rand.Read(token)
	boundary := "=_sluice_tlsrpt_" + hex.EncodeToString(token)

	var b bytes.Buffer
	field := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	field("From", "<"+s.From+">")
	to := make([]string, len(rcpts))
	for i, a := range rcpts {
		to[i] = "<" + a + ">"
	}
	field("To", strings.Join(to, ",\r\n "))
	field("Subject", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", domain, submitter, r.ReportID))
	field("Date", now.Format(time.RFC1123Z))
	field("Message-ID", "<tlsrpt."+hex.EncodeToString(token[:6])+"."+r.ReportID+">")
	field("TLS-Report-Domain", domain)
	field("TLS-Report-Submitter", submitter)
	// Deliver the report even where a TLS policy fails (RFC 8460 §3,
	// RFC 8689).
	field("TLS-Required", "No")
	field("Auto-Submitted", "auto-generated")
	field("MIME-Version", "1.0")
	field("Content-Type", `multipart/report; report-type="tlsrpt"; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-encapsulated message.\r\n\r\n--" + boundary + "\r\n")
	field("Content-Type", "text/plain; charset=us-ascii")
	field("Content-Transfer-Encoding", "7bit")
	fmt.Fprintf(&b, "\r\nThis is an aggregate TLS report (RFC 8460) from %s about mail\r\n"+
		"sent to %s on %s (UTC).\r\n\r\nReport-ID: %s\r\n\r\n--%s\r\n",
		submitter, domain, r.DateRange.Start.Format(DayLayout), r.ReportID, boundary)
	name := r.Filename(submitter)
	field("Content-Type", `application/tlsrpt+gzip; name="`+name+`"`)
	field("Content-Transfer-Encoding", "base64")
	field("Content-Disposition", `attachment; filename="`+name+`"`)
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}
