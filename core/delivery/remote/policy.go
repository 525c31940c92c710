package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/mjl-/adns"
	moxdane "github.com/mjl-/mox/dane"
	moxdns "github.com/mjl-/mox/dns"

	"github.com/sluice-mta/sluice/core/delivery/mtasts"
	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// planMode is how a session is to use TLS.
type planMode int

const (
	// planPlain never says STARTTLS.
	planPlain planMode = iota
	// planOptional says STARTTLS when offered; a failed handshake is
	// followed by a session in plain text.
	planOptional
	// planRequired says STARTTLS; a peer without it, or a handshake or
	// verification that fails, ends the attempt at that host.
	planRequired
	// planImplicit speaks TLS from the first byte.
	planImplicit
)

// tlsPlan is how the sessions to one host are secured.
type tlsPlan struct {
	mode planMode
	// verify checks the peer's certificate; nil accepts any.
	verify func(cs tls.ConnectionState) error
	// verified is what a session verify passed says ("dane", "mta-sts",
	// "pkix"); metric is the policy's label for TLSObserver; name is the
	// policy that applied as the delivery line and `queue ls` say it
	// (mail.Result.TLSPolicy).
	verified, metric, name string
	// serverName is the SNI name.
	serverName string
	// why names what demands TLS, for the reasons of failures.
	why string
	// soft makes a failure only reported (MTA-STS testing): the session
	// goes on as opportunistic TLS.
	soft bool
	// auth sends the credentials; plainAuth allows it without TLS
	// (relay_tls = "none", loopback only).
	auth, plainAuth bool
	// report is the TLS-RPT record's policy part; nil reports nothing.
	report *tlsrpt.Result
	// key tells pooled connections secured differently apart.
	key string
}

// policyFailure is a deferral for a TLS policy that cannot be met: 4.7.5
// (RFC 3463: cryptographic failure), the text naming what demanded it.
func policyFailure(relay, format string, args ...any) *failure {
	return deferred("4.7.5", relay, format, args...)
}

// under is f with the name of the TLS policy it happened under.
func (f *failure) under(policy string) *failure {
	f.tlsPolicy = policy
	return f
}

// Names of the TLS policies that applied (tlsPlan.name), beyond the
// policies' own (TLSOpportunistic, TLSNone, TLSVerify, TLSDANEOnly).
const (
	nameDANE          = "dane"
	nameSTS           = "mta-sts"
	nameSTSTesting    = "mta-sts-testing"
	nameRelay         = "relay"
	nameTLSRequiredNo = "tls-required-no"
)

// plan decides how the sessions to t, a target of ds whose addresses were
// looked up securely or not, are secured; or fails when the policy cannot
// be met at t.
func (d *Deliverer) plan(ctx context.Context, ds *dest, t target, addrSecure bool) (*tlsPlan, *failure) {
	if ds.relay {
		return d.relayPlan(ds, t), nil
	}
	p := &tlsPlan{mode: planOptional, serverName: t.host, metric: "opportunistic", name: TLSOpportunistic, key: "opp",
		report: &tlsrpt.Result{PolicyDomain: ds.domain, PolicyType: tlsrpt.PolicyNone}}
	if isIP(t.host) {
		p.serverName = ""
	}
	if ds.policy == TLSNone {
		return &tlsPlan{mode: planPlain, metric: "none", name: TLSNone, key: "plain"}, nil
	}
	if d.opts.DANE || ds.policy == TLSDANEOnly {
		dp, f := d.danePlan(ctx, ds, t, addrSecure)
		switch {
		case ds.tlsOptional && ds.policy != TLSDANEOnly && dp != nil:
			dp.soft, dp.name = true, nameTLSRequiredNo // reported, then as opportunistic TLS
			return dp, nil
		case ds.tlsOptional && ds.policy != TLSDANEOnly && f != nil:
			// Reported (danePlan did); delivered as opportunistic.
			p.name = nameTLSRequiredNo
		case f != nil || dp != nil:
			return dp, f
		}
	}
	if ds.policy == TLSDANEOnly {
		why := fmt.Sprintf("%s publishes no DNSSEC-validated TLSA records (MX answer secure: %v, address answer secure: %v)", t.host, ds.mxSecure, addrSecure)
		d.record(ctx, &tlsrpt.Result{PolicyDomain: ds.domain, PolicyType: tlsrpt.PolicyNone}, peer{host: t.host}, "dane", false, tlsrpt.ResultDANERequired, why)
		return nil, policyFailure("none", "tls = %q for %s: %s; not sent", TLSDANEOnly, ds.domain, why).under(TLSDANEOnly)
	}
	if fe := (*mtasts.FetchError)(nil); errors.As(ds.stsErr, &fe) {
		// A published record without a policy: reported, then as if
		// there were none (RFC 8461 section 5).
		p.report = &tlsrpt.Result{PolicyDomain: ds.domain, PolicyType: tlsrpt.PolicySTS, Failure: tlsrpt.ResultSTSPolicyFetchError, Detail: fe.Error()}
		switch {
		case fe.Invalid:
			p.report.Failure = tlsrpt.ResultSTSPolicyInvalid
		case fe.WebPKI:
			p.report.Failure = tlsrpt.ResultSTSWebPKIInvalid
		}
	}
	if sts := ds.sts; sts != nil {
		why := fmt.Sprintf("the MTA-STS policy of %s (mode %s)", ds.domain, sts.Mode)
		rep := &tlsrpt.Result{PolicyDomain: ds.domain, PolicyType: tlsrpt.PolicySTS, PolicyStrings: sts.Strings()}
		// In testing mode (or for a message that says TLS-Required: No)
		// a failure is only reported, unless the domain's own policy is
		// verify.
		soft := (sts.Mode == mtasts.ModeTesting || ds.tlsOptional) && ds.policy != TLSVerify
		name := nameSTS
		switch {
		case sts.Mode == mtasts.ModeTesting && soft:
			name = nameSTSTesting
		case sts.Mode == mtasts.ModeTesting:
			name = TLSVerify // the domain's own tls = "verify" makes it strict
		case soft:
			name = nameTLSRequiredNo
		}
		if sts.Matches(t.host) {
			return &tlsPlan{mode: planRequired, verify: pkixVerify(d.opts.Roots, t.host), verified: "mta-sts", metric: "mta-sts", name: name,
				serverName: t.host, why: why, soft: soft, report: rep, key: "sts"}, nil
		}
		d.record(ctx, rep, peer{host: t.host}, "mta-sts", false, tlsrpt.ResultValidationFailure,
			fmt.Sprintf("MX host %s is not in the policy (mx: %s)", t.host, sts.MXList()))
		if sts.Mode == mtasts.ModeEnforce && !ds.tlsOptional {
			return nil, policyFailure("none", "%s does not list MX host %s (it lists %s); not sent there", why, t.host, sts.MXList()).under(nameSTS)
		}
		p.report = nil // reported; the session goes on as the domain's policy says
		p.name = name
	}
	if ds.policy == TLSVerify {
		p.mode, p.verify, p.verified, p.metric, p.name, p.key = planRequired, pkixVerify(d.opts.Roots, t.host), "pkix", "verify", TLSVerify, "verify"
		p.why = fmt.Sprintf("tls = %q for %s", TLSVerify, ds.domain)
	}
	return p, nil
}

// relayPlan is how a relay's sessions are secured: verified against
// RelayRoots for its host name unless its policy says otherwise.
func (d *Deliverer) relayPlan(ds *dest, t target) *tlsPlan {
	p := &tlsPlan{mode: planRequired, serverName: t.host, metric: "relay", name: nameRelay, auth: ds.user != "",
		why: "relay " + t.host, key: "relay/" + ds.user} // no fmt: a plan a message
	if ds.relayTLS == RelayImplicit {
		p.mode = planImplicit
	}
	if isIP(t.host) {
		p.serverName = ""
	}
	switch {
	case ds.relayTLS == RelayNone:
		p.mode, p.plainAuth = planPlain, true
	case ds.policy == TLSNone:
		p.mode = planPlain
	case ds.policy == TLSOpportunistic:
		if p.mode != planImplicit {
			p.mode = planOptional
		}
	default: // TLSVerify (New refuses TLSDANEOnly for a relay)
		roots := d.opts.RelayRoots
		if ds.roots != nil {
			// A route's own CAs: its sessions are pooled apart from the
			// ones verified against the others.
			roots, p.key = ds.roots, p.key+"/route-ca:"+ds.domain
		}
		p.verify, p.verified = pkixVerify(roots, t.host), "pkix"
	}
	p.key += "/" + p.verified + strconv.Itoa(int(p.mode))
	return p
}

// danePlan is the DANE plan for t (RFC 7672 section 2.2): when the MX
// answer, t's addresses and its TLSA records are DNSSEC-validated and
// there are TLSA records. nil, nil: DANE does not apply at t. A TLSA lookup
// that fails on a validated path ends the attempt at t.
func (d *Deliverer) danePlan(ctx context.Context, ds *dest, t target, addrSecure bool) (*tlsPlan, *failure) {
	if !ds.mxSecure || !addrSecure {
		return nil, nil
	}
	recs, secure, err := d.opts.Resolver.LookupTLSA(ctx, t.port, t.host)
	if err != nil {
		rep := &tlsrpt.Result{PolicyDomain: ds.domain, PolicyType: tlsrpt.PolicyTLSA}
		d.record(ctx, rep, peer{host: t.host}, "dane", false, tlsrpt.ResultTLSAInvalid, err.Error())
		return nil, policyFailure("none", "DANE: looking up the TLSA records of %s failed: %v; not sent there", t.host, err).under(nameDANE)
	}
	if !secure || len(recs) == 0 {
		return nil, nil
	}
	var strs []string
	for _, r := range recs {
		strs = append(strs, fmt.Sprintf("_%d._tcp.%s. IN TLSA %s", t.port, t.host, r))
	}
	p := &tlsPlan{mode: planRequired, serverName: t.host, metric: "dane", name: nameDANE, key: "dane/" + ds.domain,
		why:    fmt.Sprintf("the DANE TLSA records of %s", t.host),
		report: &tlsrpt.Result{PolicyDomain: ds.domain, PolicyType: tlsrpt.PolicyTLSA, PolicyStrings: strs}}
	usable := usableTLSA(recs)
	if len(usable) == 0 {
		// Records but none usable: TLS without authentication (RFC 7672
		// section 2.2).
		return p, nil
	}
	p.verify, p.verified = daneVerify(usable, t.host, ds.domain), "dane"
	return p, nil
}

// usableTLSA keeps the records DANE for SMTP uses: DANE-TA(2) and
// DANE-EE(3), with a known selector and matching type.
func usableTLSA(recs []dns.TLSA) []adns.TLSA {
	var out []adns.TLSA
	for _, r := range recs {
		if (r.Usage == 2 || r.Usage == 3) && r.Selector <= 1 && r.MatchingType <= 2 {
			out = append(out, adns.TLSA{Usage: adns.TLSAUsage(r.Usage), Selector: adns.TLSASelector(r.Selector),
				MatchType: adns.TLSAMatchType(r.MatchingType), CertAssoc: r.Data})
		}
	}
	return out
}

// daneVerify checks a certificate against TLSA records with mox's
// dane.Verify: DANE-EE matches the certificate or key alone; DANE-TA
// needs a chain to the matched anchor, valid for host (or the
// recipient domain, RFC 7672 section 3.2.3).
func daneVerify(recs []adns.TLSA, host, domain string) func(cs tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		h, err := moxdns.ParseDomain(host)
		if err != nil {
			return fmt.Errorf("DANE: host name %q: %v", host, err)
		}
		var more []moxdns.Domain
		if dd, err := moxdns.ParseDomain(domain); err == nil && dd != h {
			more = append(more, dd)
		}
		ok, _, err := moxdane.Verify(slog.New(slog.DiscardHandler), recs, cs, h, more, nil)
		switch {
		case ok:
			return nil
		case err != nil:
			return &verifyError{fmt.Errorf("no TLSA record matches the certificate: %w", err), tlsrpt.ResultValidationFailure, "no TLSA record matches the certificate"}
		}
		return &verifyError{errors.New("no TLSA record matches the certificate"), tlsrpt.ResultValidationFailure, ""}
	}
}

// verifyError is a certificate that did not verify, with its TLS-RPT
// result type and, when the error's text varies from session to session
// (a time), a steady detail for the report.
type verifyError struct {
	err    error
	rtype  tlsrpt.ResultType
	detail string
}

// reportDetail is what TLS-RPT is told of e.
func (e *verifyError) reportDetail() string {
	if e.detail != "" {
		return e.detail
	}
	return e.err.Error()
}

func (e *verifyError) Error() string { return e.err.Error() }
func (e *verifyError) Unwrap() error { return e.err }

// pkixVerify checks a certificate chain against roots (nil: the system's)
// for host, naming the problem: expired, for another name, not trusted
// (self-signed).
func pkixVerify(roots *x509.CertPool, host string) func(cs tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &verifyError{errors.New("no certificate"), tlsrpt.ResultValidationFailure, ""}
		}
		leaf := cs.PeerCertificates[0]
		// The chain first, then the name, so that a self-signed or expired
		// certificate is called that whatever name it has.
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := leaf.Verify(opts)
		if err == nil {
			err = leaf.VerifyHostname(host)
		}
		if err == nil {
			return nil
		}
		var (
			he x509.HostnameError
			ci x509.CertificateInvalidError
			ua x509.UnknownAuthorityError
		)
		switch {
		case errors.As(err, &he):
			return &verifyError{fmt.Errorf("certificate name mismatch: %w", err), tlsrpt.ResultCertificateHostMismatch, ""}
		case errors.As(err, &ci) && ci.Reason == x509.Expired:
			// The report's detail names the certificate's end, not the
			// time of each session, so that sessions add up.
			return &verifyError{fmt.Errorf("certificate expired: %w", err), tlsrpt.ResultCertificateExpired,
				"certificate expired on " + leaf.NotAfter.UTC().Format(time.RFC3339)}
		case errors.As(err, &ua):
			what := "certificate not trusted"
			if isSelfSigned(leaf) {
				what = "self-signed certificate not trusted"
			}
			return &verifyError{fmt.Errorf("%s: %w", what, err), tlsrpt.ResultCertificateNotTrusted, ""}
		}
		return &verifyError{fmt.Errorf("certificate not verified: %w", err), tlsrpt.ResultValidationFailure, ""}
	}
}

// isSelfSigned reports whether c signed itself.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// record reports one session attempt's TLS outcome to TLS-RPT (when rep is
// set) and the observer.
func (d *Deliverer) record(ctx context.Context, rep *tlsrpt.Result, at peer, metric string, ok bool, rtype tlsrpt.ResultType, detail string) {
	if d.opts.TLSObserver != nil {
		res := "success"
		if !ok {
			res = string(rtype)
		}
		d.opts.TLSObserver(metric, res)
	}
	if rep == nil || d.opts.TLSReport == nil {
		return
	}
	r := *rep
	r.MXHost, r.SendingIP, r.ReceivingIP, r.Success = at.host, at.local, at.remote, ok
	if !ok {
		r.Failure, r.Detail = rtype, detail
	} else if r.Failure != "" {
		// A policy that could not be fetched was a failure even when the
		// session went well.
		r.Success = false
	}
	d.opts.TLSReport.Record(ctx, r)
}
