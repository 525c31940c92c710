package smtpd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// What a session's TLS looks like in the log and the metrics: the "tls"
// line after each handshake (version, cipher, and the client's certificate
// when it presented one), the same on the session's "disconnect" line
// (sessionTLSAttrs), and a "tls handshake failed" line with a reason
// from a small fixed set (tlsFailureReasons) when the handshake fails.

// TLS handshake failure reasons, the values of the metric's reason label.
const (
	tlsFailVersion    = "version"              // no protocol version in common (a TLS 1.0 client at a 1.2 minimum)
	tlsFailCipher     = "cipher"               // no cipher suite or key exchange in common
	tlsFailRejected   = "certificate_rejected" // the client refused our certificate (see tlsFailureReason)
	tlsFailAlert      = "alert"                // the client sent another alert
	tlsFailClientCert = "client_certificate"   // the client's certificate could not be parsed or its signature was bad
	tlsFailNotTLS     = "not_tls"              // the first bytes were not a TLS handshake (plain SMTP on port 465)
	tlsFailTimeout    = "timeout"              // the handshake did not finish in time
	tlsFailClosed     = "closed"               // the client hung up during the handshake
	tlsFailOther      = "other"
)

// tlsFailureReasons are every reason tlsFailureReason returns.
var tlsFailureReasons = []string{tlsFailVersion, tlsFailCipher, tlsFailRejected, tlsFailAlert,
	tlsFailClientCert, tlsFailNotTLS, tlsFailTimeout, tlsFailClosed, tlsFailOther}

// tlsFailureReason classifies a failed server handshake. crypto/tls gives
// most failures only as text, so the text is read where no type says it.
func tlsFailureReason(err error) string {
	var rh tls.RecordHeaderError
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &rh):
		return tlsFailNotTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return tlsFailTimeout
	case errors.As(err, &op) && op.Op == "remote error":
		if strings.Contains(op.Err.Error(), "certificate") {
			return tlsFailRejected
		}
		return tlsFailAlert
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return tlsFailClosed
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version"):
		return tlsFailVersion
	case strings.Contains(msg, "no cipher suite"), strings.Contains(msg, "no key exchanges"),
		strings.Contains(msg, "incompatible point formats"):
		return tlsFailCipher
	case strings.Contains(msg, "client certificate"):
		return tlsFailClientCert
	case strings.Contains(msg, "bad record MAC"):
		// An OpenSSL client that refuses our certificate in TLS 1.3 sends
		// its alert unencrypted, which reads as a record that fails to
		// decrypt; Go's client sends it encrypted (a "remote error").
		return tlsFailRejected
	}
	return tlsFailOther
}

// certFieldMax bounds a certificate name in the log: the client writes it.
const certFieldMax = 256

// tlsAttrs are the "tls" line's fields for st: version, cipher and, when
// the client presented a certificate, its subject, issuer and SHA-256
// fingerprint (as `openssl x509 -fingerprint -sha256` prints it). The
// certificate is requested, not verified.
func tlsAttrs(st *tls.ConnectionState) []any {
	attrs := []any{"version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite)}
	if len(st.PeerCertificates) == 0 {
		return attrs
	}
	c := st.PeerCertificates[0]
	return append(attrs, "cert_subject", certName(c.Subject.String()), "cert_issuer", certName(c.Issuer.String()),
		"cert_sha256", fingerprint(c))
}

// sessionTLSAttrs are the TLS fields of the session's "disconnect" line,
// so that the one line of a session says how it was secured: tls (the
// version, or "none" when no handshake completed: st is nil), cipher and,
// when the client presented a certificate, cert_sha256.
func sessionTLSAttrs(st *tls.ConnectionState) []any {
	if st == nil {
		return []any{"tls", "none"}
	}
	attrs := []any{"tls", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite)}
	if len(st.PeerCertificates) > 0 {
		attrs = append(attrs, "cert_sha256", fingerprint(st.PeerCertificates[0]))
	}
	return attrs
}

// certName is a certificate's name cut to certFieldMax bytes.
func certName(s string) string {
	if len(s) > certFieldMax {
		return s[:certFieldMax] + "…"
	}
	return s
}

// fingerprint is the SHA-256 of c's DER as colon-separated upper-case hex.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.Grow(len(h) + len(h)/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
