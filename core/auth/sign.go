package auth

import (
	"bytes"
	"crypto"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/sluice-mta/sluice/core/auth/dkimkey"
	"github.com/sluice-mta/sluice/core/mail"
)

// KeyConfig names one DKIM signing key: a [[dkim.key]] of the configuration.
type KeyConfig struct {
	// Domain is the signing domain (d=).
	Domain string
	// Selector is the selector (s=): the key is published at
	// Selector._domainkey.Domain.
	Selector string
	// PrivateKeyPath is the PEM file of the private key.
	PrivateKeyPath string
}

// signedHeaders are the fields signed when present, in this order. From is
// always signed, and signed once more than it occurs ("oversigned") so that
// no From can be added after signing (RFC 6376 section 8.15). A TLS report
// (RFC 8460 §5.3) has its TLS-Report-Domain and TLS-Report-Submitter signed.
var signedHeaders = []string{"To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References",
	"TLS-Report-Domain", "TLS-Report-Submitter"}

// Signer DKIM-signs outbound mail with the keys of the domains it has keys
// for; it is safe for concurrent use.
type Signer struct {
	keys map[string][]signingKey // by lower-case domain
}

// signingKey is one loaded key.
type signingKey struct {
	domain, selector string
	signer           crypto.Signer
}

// NewSigner loads keys. A key file that cannot be read or parsed, or an RSA
// key under 2048 bits, is an error naming the file.
func NewSigner(keys []KeyConfig) (*Signer, error) {
	s := &Signer{keys: map[string][]signingKey{}}
	for _, k := range keys {
		if k.Domain == "" || k.Selector == "" {
			return nil, fmt.Errorf("DKIM key %s: domain and selector must be set", k.PrivateKeyPath)
		}
		signer, err := dkimkey.Load(k.PrivateKeyPath)
		if err != nil {
			return nil, err
		}
		d := strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		s.keys[d] = append(s.keys[d], signingKey{domain: d, selector: k.Selector, signer: signer})
	}
	return s, nil
}

// Domains reports how many domains s has keys for.
func (s *Signer) Domains() int { return len(s.keys) }

// Sign returns msg with a DKIM-Signature prepended for each key of the
// signing domain: the domain of the From field, or failing that envDomain
// (the envelope sender's domain); for each, the domain itself or else its
// closest parent with a key, which still aligns under relaxed DMARC. With no
// key msg comes back unchanged.
func (s *Signer) Sign(msg []byte, envDomain string) ([]byte, error) {
	h, _ := mail.ParseHeader(msg)
	from, _ := fromDomain(h.Values("From"))
	keys := s.keysFor(from)
	if keys == nil {
		keys = s.keysFor(envDomain)
	}
	if keys == nil {
		return msg, nil
	}
	headers := s.headerKeys(h.Fields)
	var sigs bytes.Buffer
	for _, k := range keys {
		opts := &dkim.SignOptions{
			Domain:                 k.domain,
			Selector:               k.selector,
			Signer:                 k.signer,
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             headers,
		}
		signer, err := dkim.NewSigner(opts)
		if err != nil {
			return nil, fmt.Errorf("DKIM signing for %s: %w", k.domain, err)
		}
		if _, err := signer.Write(msg); err != nil {
			signer.Close()
			return nil, fmt.Errorf("DKIM signing for %s: %w", k.domain, err)
		}
		if err := signer.Close(); err != nil {
			return nil, fmt.Errorf("DKIM signing for %s: %w", k.domain, err)
		}
		sigs.WriteString(signer.Signature())
	}
	out := make([]byte, 0, sigs.Len()+len(msg))
	return append(append(out, sigs.Bytes()...), msg...), nil
}

// keysFor returns the keys of domain d or of its closest parent that has
// keys, nil if none.
func (s *Signer) keysFor(d string) []signingKey {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for d != "" {
		if k := s.keys[d]; k != nil {
			return k
		}
		_, parent, ok := strings.Cut(d, ".")
		if !ok || !strings.Contains(parent, ".") {
			return nil // never sign with a key of a top-level domain
		}
		d = parent
	}
	return nil
}

// headerKeys lists the fields to sign: From once more than it occurs, and
// each of signedHeaders as often as it occurs.
func (s *Signer) headerKeys(fields []mail.Field) []string {
	count := map[string]int{}
	for _, f := range fields {
		count[strings.ToLower(f.Name)]++
	}
	keys := []string{"From"}
	for range count["from"] {
		keys = append(keys, "From")
	}
	for _, h := range signedHeaders {
		for range count[strings.ToLower(h)] {
			keys = append(keys, h)
		}
	}
	return keys
}
