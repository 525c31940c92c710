package tlsrpt

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/mail"
)

// Version is the v= tag that starts a TLSRPT record (RFC 8460 §3).
const Version = "v=TLSRPTv1"

// Record is a parsed TLSRPT policy: the TXT record at
// _smtp._tls.<policy domain>, like "v=TLSRPTv1; rua=mailto:tlsrpt@example.com".
type Record struct {
	// RUA lists the aggregate report URIs in order, as published (the
	// encoded ",", "!" and ";" still encoded): mailto: and https: URIs.
	RUA []string
	// Extensions are the other fields, name=value, in order.
	Extensions [][2]string
}

// String writes r in record form; ParseRecord reads it back.
func (r *Record) String() string {
	var b strings.Builder
	b.WriteString(Version)
	if len(r.RUA) > 0 {
		b.WriteString("; rua=" + strings.Join(r.RUA, ","))
	}
	for _, e := range r.Extensions {
		b.WriteString("; " + e[0] + "=" + e[1])
	}
	return b.String()
}

// Mailto returns the addresses of r's mailto: URIs (a URI may name several,
// with an encoded comma), and the URIs it cannot send to: https: ones,
// which Sluice does not post to, other schemes, and mailto: URIs without a
// valid address.
func (r *Record) Mailto() (addrs, ignored []string) {
	seen := map[string]bool{}
	for _, rua := range r.RUA {
		u, err := url.Parse(rua)
		if err != nil || !strings.EqualFold(u.Scheme, "mailto") || u.Opaque == "" {
			ignored = append(ignored, rua)
			continue
		}
		to, _, _ := strings.Cut(u.Opaque, "?")
		to, err = url.PathUnescape(to)
		if err != nil {
			ignored = append(ignored, rua)
			continue
		}
		for _, a := range strings.Split(to, ",") {
			a = strings.TrimSpace(a)
			if _, _, reply := mail.CheckAddress(a); reply != nil || a == "" || strings.ContainsAny(a, " <>\r\n") {
				ignored = append(ignored, rua)
				continue
			}
			if k := mail.Key(a); !seen[k] {
				seen[k] = true
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, ignored
}

// ErrNoRecord means the domain publishes no usable TLSRPT record: no TXT
// record starting with v=TLSRPTv1, more than one (RFC 8460 §3: then the
// domain does not take part), or one that does not parse.
var ErrNoRecord = errors.New("no TLSRPT record")

// TXTResolver looks up TXT records; *dns.Resolver is one. A name that does
// not exist is an error wrapping dns.ErrNotFound; one that exists without
// TXT records is no error and no records.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

var _ TXTResolver = (*dns.Resolver)(nil)

// Lookup finds the TLSRPT record of a policy domain at
// _smtp._tls.<domain>. A domain without a usable one is an error wrapping
// ErrNoRecord (with the reason); a DNS failure is the resolver's error
// (a *dns.TempError when trying later may help).
func Lookup(ctx context.Context, r TXTResolver, domain string) (*Record, error) {
	txts, err := r.LookupTXT(ctx, "_smtp._tls."+domain)
	if errors.Is(err, dns.ErrNotFound) {
		return nil, fmt.Errorf("%w: _smtp._tls.%s does not exist", ErrNoRecord, domain)
	}
	if err != nil {
		return nil, err
	}
	var found []string
	for _, t := range txts {
		if isTLSRPT(t) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: _smtp._tls.%s has no TXT record starting with %s", ErrNoRecord, domain, Version)
	case 1:
	default:
		return nil, fmt.Errorf("%w: _smtp._tls.%s has %d TLSRPT records; RFC 8460 asks for exactly one", ErrNoRecord, domain, len(found))
	}
	rec, err := ParseRecord(found[0])
	if err != nil {
		return nil, fmt.Errorf("%w: _smtp._tls.%s: %v", ErrNoRecord, domain, err)
	}
	return rec, nil
}

// isTLSRPT reports whether a TXT record is meant as a TLSRPT record: it
// starts with the version field, ended by a delimiter or the record's end.
func isTLSRPT(txt string) bool {
	rest, ok := strings.CutPrefix(txt, Version)
	if !ok {
		return false
	}
	rest = strings.TrimLeft(rest, " \t")
	return rest == "" || rest[0] == ';'
}

// ParseRecord parses a TLSRPT record (RFC 8460 §3):
//
//	tlsrpt-record = "v=TLSRPTv1" 1*(field-delim tlsrpt-field) [field-delim]
//	field-delim   = *WSP ";" *WSP
//	tlsrpt-field  = "rua=" uri *(*WSP "," *WSP uri) / ext-name "=" ext-value
//
// A record without a rua field is an error. The text is what the DNS
// published, from a stranger: every mistake is an error, never a panic.
func ParseRecord(txt string) (*Record, error) {
	rest, ok := strings.CutPrefix(txt, Version)
	if !ok {
		return nil, fmt.Errorf("does not start with %q", Version)
	}
	rec := &Record{}
	for {
		var delim bool
		if rest, delim = cutDelim(rest); !delim {
			if rest != "" {
				return nil, fmt.Errorf("expected %q before %q", ";", clip(rest))
			}
			break
		}
		if rest == "" {
			if len(rec.RUA) == 0 && len(rec.Extensions) == 0 {
				return nil, errors.New("no field after the version")
			}
			break
		}
		name, value, err := cutField(rest)
		if err != nil {
			return nil, err
		}
		rest = rest[len(name)+1+len(value):]
		if name == "rua" {
			uris, err := parseRUA(value)
			if err != nil {
				return nil, err
			}
			rec.RUA = append(rec.RUA, uris...)
			continue
		}
		rec.Extensions = append(rec.Extensions, [2]string{name, value})
	}
	if len(rec.RUA) == 0 {
		return nil, errors.New("no rua= field: the record names nowhere to send reports")
	}
	return rec, nil
}

// cutDelim removes one field delimiter from the start of s.
func cutDelim(s string) (string, bool) {
	t := strings.TrimLeft(s, " \t")
	if t == "" || t[0] != ';' {
		return s, false
	}
	return strings.TrimLeft(t[1:], " \t"), true
}

// cutField splits the field at the start of s into its name and its
// value (which runs to the next delimiter, white space before it
// excluded) and checks the name and, for an extension, the value.
func cutField(s string) (name, value string, err error) {
	eq := strings.IndexByte(s, '=')
	if eq < 0 {
		return "", "", fmt.Errorf("field %q has no '='", clip(s))
	}
	name = s[:eq]
	if !validName(name) {
		return "", "", fmt.Errorf("bad field name %q: letters, digits, '_', '-' and '.', starting with a letter or digit, at most 32", clip(name))
	}
	v := s[eq+1:]
	end := len(v)
	if name == "rua" {
		// A rua list may hold white space around its commas.
		if i := strings.IndexByte(v, ';'); i >= 0 {
			end = i
		}
		end = len(strings.TrimRight(v[:end], " \t"))
	} else {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f || c == '=' || c == ';' {
				end = i
				break
			}
		}
		if end == 0 {
			return "", "", fmt.Errorf("field %s has an empty value", name)
		}
	}
	return name, v[:end], nil
}

// validName is RFC 8460's tlsrpt-ext-name (rua is one too).
func validName(n string) bool {
	if n == "" || len(n) > 32 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

// parseRUA splits a rua value into its URIs, each with a scheme.
func parseRUA(v string) ([]string, error) {
	if strings.HasPrefix(v, " ") || strings.HasPrefix(v, "\t") {
		return nil, fmt.Errorf("rua=%q starts with white space", clip(v))
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		u := strings.Trim(part, " \t")
		if u == "" {
			return nil, fmt.Errorf("rua=%q has an empty URI", clip(v))
		}
		for i := 0; i < len(u); i++ {
			if c := u[i]; c <= ' ' || c >= 0x7f || c == '!' {
				return nil, fmt.Errorf("rua URI %q has %q, which must be encoded", clip(u), c)
			}
		}
		p, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("rua URI %q: %v", clip(u), err)
		}
		if p.Scheme == "" {
			return nil, fmt.Errorf("rua URI %q has no scheme (mailto: or https:)", clip(u))
		}
		out = append(out, u)
	}
	return out, nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
