package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
)

// selfSignedLifetime is how long a generated certificate is valid; it is
// generated again when it has expired (or does not name the hostname).
const selfSignedLifetime = 5 * 365 * 24 * time.Hour

// selfSignedRSABits is the size of the generated RSA key.
const selfSignedRSABits = 2048

// ensureSelfSigned makes sure certFile and keyFile hold a usable
// self-signed certificate for hostname, generating one with gen when they
// are missing, expired or for another name. It reports whether it
// generated.
func ensureSelfSigned(certFile, keyFile, hostname string, now time.Time, gen func(string, time.Time) ([]byte, []byte, error)) (bool, error) {
	if cert, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		leaf := cert.Leaf
		if leaf != nil && now.Before(leaf.NotAfter) && leaf.VerifyHostname(hostname) == nil {
			return false, nil
		}
	}
	certPEM, keyPEM, err := gen(hostname, now)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return false, err
	}
	if err := renameio.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return false, err
	}
	if err := renameio.WriteFile(certFile, certPEM, 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// GenerateSelfSigned returns a PEM certificate and PKCS#8 key (ECDSA
// P-256) for hostname, valid from an hour before now.
func GenerateSelfSigned(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return selfSigned(hostname, now, key, x509.KeyUsageDigitalSignature)
}

// GenerateSelfSignedRSA is GenerateSelfSigned with an RSA key, for the
// clients that know only RSA-authenticated cipher suites (old TLS 1.0-1.2
// stacks of printers, scanners and web applications).
func GenerateSelfSignedRSA(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, selfSignedRSABits)
	if err != nil {
		return nil, nil, err
	}
	// KeyEncipherment: TLS 1.0-1.2 RSA key exchange, should a client use it.
	return selfSigned(hostname, now, key, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
}

// selfSigned makes the certificate for hostname with key.
func selfSigned(hostname string, now time.Time, key crypto.Signer, usage x509.KeyUsage) (certPEM, keyPEM []byte, err error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname, Organization: []string{"Sluice self-signed"}},
		DNSNames:              []string{hostname},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	return certPEM, keyPEM, nil
}
