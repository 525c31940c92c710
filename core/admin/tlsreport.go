package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// TLSReport is the count of outbound TLS outcomes (`sluice tls-report`);
// *tlsrpt.Reporter implements it.
type TLSReport interface {
	// Today returns the UTC day and its counts so far, of every policy
	// domain or of the one named.
	Today(ctx context.Context, domain string) (string, []tlsrpt.DomainCounts, error)
}

var _ TLSReport = (*tlsrpt.Reporter)(nil)

// TLSReportToday is the answer of GET /tls-report.
type TLSReportToday struct {
	// Day is today, UTC ("2026-11-27").
	Day string `json:"day"`
	// Domains are the policy domains' counts, by domain.
	Domains []tlsrpt.DomainCounts `json:"domains"`
}

// tlsReport serves GET /tls-report[?domain=D]: today's counts.
func (s *Server) tlsReport(w http.ResponseWriter, r *http.Request) {
	if s.b.TLSReport == nil {
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "this server keeps no TLS report counts"})
		return
	}
	day, list, err := s.b.TLSReport.Today(r.Context(), r.URL.Query().Get("domain"))
	if err != nil {
		writeError(w, err)
		return
	}
	if list == nil {
		list = []tlsrpt.DomainCounts{}
	}
	writeJSON(w, http.StatusOK, TLSReportToday{Day: day, Domains: list})
}

// TLSReport returns today's counts of outbound TLS outcomes, of every
// policy domain or of domain.
func (c *Client) TLSReport(ctx context.Context, domain string) (*TLSReportToday, error) {
	var out TLSReportToday
	path := "/tls-report"
	if domain != "" {
		path += "?domain=" + url.QueryEscape(domain)
	}
	if err := c.do(ctx, http.MethodGet, path, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WriteTLSReport prints today's counts as `sluice tls-report` does: a line
// per policy domain and policy with its sessions and failures by result
// type, then the failure details.
func WriteTLSReport(w io.Writer, rep *TLSReportToday, domain string) error {
	if len(rep.Domains) == 0 {
		what := "no outbound TLS sessions"
		if domain != "" {
			what += " to " + domain
		}
		_, err := fmt.Fprintf(w, "%s counted today (%s UTC)\n", what, rep.Day)
		return err
	}
	fmt.Fprintf(w, "TLS sessions today (%s UTC, so far)\n", rep.Day)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tPOLICY\tSUCCESSFUL\tFAILED\tFAILURES")
	var details []string
	for _, d := range rep.Domains {
		for _, p := range d.Policies {
			var by []string
			for _, f := range p.ByResultType() {
				by = append(by, fmt.Sprintf("%s=%d", f.ResultType, f.Count))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", d.Domain, p.Type, p.Successful, p.Failed, dash(strings.Join(by, " ")))
			for _, f := range p.Failures {
				line := fmt.Sprintf("  %s %s: %s %s", d.Domain, p.Type, f.ResultType, dash(f.MXHost))
				if f.ReceivingIP != "" {
					line += " [" + f.ReceivingIP + "]"
				}
				if f.SendingIP != "" {
					line += " from " + f.SendingIP
				}
				line += fmt.Sprintf(" ×%d", f.Count)
				if f.Reason != "" {
					line += fmt.Sprintf(": %q", f.Reason)
				}
				details = append(details, line)
			}
		}
		if d.Dropped > 0 {
			details = append(details, fmt.Sprintf("  %s: %d sessions of further policies not broken down", d.Domain, d.Dropped))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(details) > 0 {
		fmt.Fprintln(w, "failures:")
		for _, l := range details {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}
