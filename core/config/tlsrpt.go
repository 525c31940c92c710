package config

import (
	"strings"

	"github.com/sluice-mta/sluice/core/mail"
)

// TLSRPT configures SMTP TLS Reporting (RFC 8460): outbound sessions' TLS
// outcomes are always counted per policy domain and UTC day (`sluice
// tls-report`); these keys say whether and how the daily reports are sent.
type TLSRPT struct {
	// Enabled sends each day's report, after midnight UTC, to every
	// policy domain that publishes a TLSRPT record with a mailto: address.
	// It needs a [[dkim.key]] for From's domain (or a parent): receivers
	// discard reports without a valid signature.
	Enabled bool `toml:"enabled"`
	// From is the reports' From: and envelope sender; "" is
	// postmaster@hostname.
	From string `toml:"from"`
	// OrganizationName is the report's organization-name; "" is From's
	// domain.
	OrganizationName string `toml:"organization_name"`
	// ContactInfo is the report's contact-info; "" is From.
	ContactInfo string `toml:"contact_info"`
}

// ReportFrom is the address the reports come from: From, or
// postmaster@hostname.
func (c *Config) ReportFrom() string {
	if c.TLSRPT.From != "" {
		return c.TLSRPT.From
	}
	return "postmaster@" + strings.ToLower(strings.TrimSuffix(c.Hostname, "."))
}

// tlsrpt checks [tlsrpt].
func (ck *checker) tlsrpt(c *Config) {
	t := &c.TLSRPT
	if t.From != "" {
		if _, _, reply := mail.CheckAddress(t.From); reply != nil || strings.ContainsAny(t.From, " <>\"\r\n") {
			ck.bad("tlsrpt.from", "%q is not an address; write it like \"tlsrpt@example.com\"", t.From)
			return
		}
	}
	for _, k := range []struct{ key, v string }{{"tlsrpt.organization_name", t.OrganizationName}, {"tlsrpt.contact_info", t.ContactInfo}} {
		if strings.ContainsAny(k.v, "\r\n\"") {
			ck.bad(k.key, "must be one line without double quotes")
		}
	}
	if !t.Enabled {
		return
	}
	from := c.ReportFrom()
	domain := mail.Domain(from)
	key := "tlsrpt.from"
	if t.From == "" {
		key = "tlsrpt.enabled"
	}
	if !strings.Contains(domain, ".") || domain == "localhost" || strings.HasSuffix(domain, ".localhost") {
		ck.bad(key, "reports would come from %s, which no other domain can verify; set tlsrpt.from to an address at your domain, like \"tlsrpt@example.com\" (or set hostname)", from)
		return
	}
	for _, k := range c.DKIM.Keys {
		d := strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		if d == domain || strings.HasSuffix(domain, "."+d) && strings.Contains(d, ".") {
			return
		}
	}
	ck.bad(key, "reports would come from %s, but no [[dkim.key]] signs for %s or a parent domain, and receivers discard unsigned reports (RFC 8460 §3); add one (`sluice dkim keygen --domain %s --selector S`) or set enabled = false", from, domain, domain)
}
