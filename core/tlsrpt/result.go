// Package tlsrpt records how outbound TLS went, per policy domain, and
// sends the aggregate reports of SMTP TLS Reporting (RFC 8460) to the
// domains that ask for them.
package tlsrpt

import (
	"context"
	"net/netip"
)

// PolicyType is RFC 8460 §4.3's policy-type: which policy applied.
type PolicyType string

// The policy types of RFC 8460 §4.3.
const (
	PolicySTS  PolicyType = "sts"             // MTA-STS (RFC 8461)
	PolicyTLSA PolicyType = "tlsa"            // DANE (RFC 7672)
	PolicyNone PolicyType = "no-policy-found" // opportunistic TLS
)

// ResultType is RFC 8460 §4.3's result-type: why a session failed.
type ResultType string

// The result types of RFC 8460 §4.3.
const (
	ResultSTARTTLSNotSupported    ResultType = "starttls-not-supported"
	ResultCertificateHostMismatch ResultType = "certificate-host-mismatch"
	ResultCertificateExpired      ResultType = "certificate-expired"
	ResultCertificateNotTrusted   ResultType = "certificate-not-trusted"
	ResultValidationFailure       ResultType = "validation-failure"
	ResultTLSAInvalid             ResultType = "tlsa-invalid"
	ResultDNSSECInvalid           ResultType = "dnssec-invalid"
	ResultDANERequired            ResultType = "dane-required"
	ResultSTSPolicyFetchError     ResultType = "sts-policy-fetch-error"
	ResultSTSPolicyInvalid        ResultType = "sts-policy-invalid"
	ResultSTSWebPKIInvalid        ResultType = "sts-webpki-invalid"
)

// Result is the TLS outcome of one outbound session attempt.
type Result struct {
	// PolicyDomain is the recipient domain whose policy applied.
	PolicyDomain string
	// PolicyType says which policy applied.
	PolicyType PolicyType
	// PolicyStrings is the policy as published: the MTA-STS policy's
	// lines, or the TLSA records in presentation form; nil for
	// PolicyNone.
	PolicyStrings []string
	// MXHost is the mail exchanger (or relay) the session was with.
	MXHost string
	// SendingIP and ReceivingIP are the session's two ends, when known.
	SendingIP, ReceivingIP netip.Addr
	// Success is true when the session was secured as the policy asks.
	Success bool
	// Failure says why, when Success is false.
	Failure ResultType
	// Detail is free text about a failure; reports carry it as the
	// failure-reason-code (RFC 8460 §4.4: additional-information is a URI).
	Detail string
}

// Recorder takes results as delivery produces them. Record must not block
// delivery on slow storage or the network.
type Recorder interface {
	Record(ctx context.Context, r Result)
}
