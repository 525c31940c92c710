package dns

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	mdns "github.com/miekg/dns"
)

// TLSA is one TLSA record (RFC 6698): how a server's certificate is to be
// matched.
type TLSA struct {
	// Usage is 0 to 3 (3: DANE-EE, 2: DANE-TA); Selector 0 (the whole
	// certificate) or 1 (its public key); MatchingType 0 (the data
	// itself), 1 (SHA-256) or 2 (SHA-512).
	Usage, Selector, MatchingType uint8
	// Data is the certificate association data.
	Data []byte
}

// String is the record's data in presentation form, "3 1 1 abcd…".
func (t TLSA) String() string {
	return fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, hex.EncodeToString(t.Data))
}

// LookupTLSA returns the TLSA records of the service at host and port over
// TCP (_port._tcp.host, RFC 7672 section 2.2.3), and whether the answer
// was DNSSEC-validated by a trusted server (Options.Trusted). A name
// without TLSA records, or that does not exist, returns none and no error;
// a record whose data is not hexadecimal is skipped.
func (r *Resolver) LookupTLSA(ctx context.Context, port int, host string) ([]TLSA, bool, error) {
	name := fmt.Sprintf("_%d._tcp.%s", port, strings.TrimSuffix(host, "."))
	rrs, secure, err := r.lookup(ctx, mdns.TypeTLSA, name)
	if errors.Is(err, ErrNotFound) {
		return nil, secure, nil
	}
	if err != nil {
		return nil, false, err
	}
	var out []TLSA
	for _, rr := range rrs {
		t, ok := rr.(*mdns.TLSA)
		if !ok {
			continue
		}
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return out, secure, nil
}
