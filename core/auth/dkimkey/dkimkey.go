// Package dkimkey reads, writes and generates DKIM signing keys (RSA of at
// least 2048 bits, or Ed25519) as PEM files, and writes the DNS TXT record
// that publishes a key's public half (RFC 6376 section 3.6.1, RFC 8463).
package dkimkey

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinRSABits is the smallest RSA key accepted for signing (RFC 8301 asks
// for at least 1024; receivers increasingly want 2048).
const MinRSABits = 2048

// Type names a key algorithm as DKIM's k= tag writes it.
type Type string

// The key types Sluice signs with.
const (
	RSA     Type = "rsa"
	Ed25519 Type = "ed25519"
)

// Load reads and parses the PEM private key at path; see Parse.
func Load(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading DKIM key: %w", err)
	}
	k, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("DKIM key %s: %w", path, err)
	}
	return k, nil
}

// Parse reads a PEM private key: PKCS#8 ("PRIVATE KEY", RSA or Ed25519) or
// PKCS#1 ("RSA PRIVATE KEY"). RSA keys shorter than MinRSABits are refused.
func Parse(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New(`no PEM block found; the file should start with "-----BEGIN PRIVATE KEY-----" (make one with "sluice dkim keygen")`)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key; use a PKCS#8 \"PRIVATE KEY\" or \"RSA PRIVATE KEY\"", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the private key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits; DKIM keys need at least %d (make one with \"sluice dkim keygen\")", n, MinRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("key type %T cannot sign DKIM; use RSA (%d bits or more) or Ed25519", key, MinRSABits)
	}
}

// Generate makes a new key of type t; bits is the RSA size (0 means
// MinRSABits) and is ignored for Ed25519.
func Generate(t Type, bits int) (crypto.Signer, error) {
	switch t {
	case RSA:
		if bits == 0 {
			bits = MinRSABits
		}
		if bits < MinRSABits {
			return nil, fmt.Errorf("RSA keys need at least %d bits, not %d", MinRSABits, bits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	default:
		return nil, fmt.Errorf("unknown key type %q: use %q or %q", t, RSA, Ed25519)
	}
}

// MarshalPEM writes key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TXTValue returns the DKIM key record for key's public half, like
// "v=DKIM1; k=rsa; p=MIIB…". RSA keys are published as SubjectPublicKeyInfo
// (RFC 6376 section 3.6.1), Ed25519 keys as the raw 32 bytes (RFC 8463).
func TXTValue(key crypto.Signer) (string, error) {
	var t Type
	var p []byte
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		t, p = RSA, der
	case ed25519.PublicKey:
		t, p = Ed25519, pub
	default:
		return "", fmt.Errorf("key type %T cannot sign DKIM", pub)
	}
	return fmt.Sprintf("v=DKIM1; k=%s; p=%s", t, base64.StdEncoding.EncodeToString(p)), nil
}

// ZoneRecord returns the TXT record to publish for key in zone-file form:
// `S._domainkey.D. IN TXT "v=DKIM1; …"`, the value split into strings of at
// most 255 bytes as DNS requires.
func ZoneRecord(domain, selector string, key crypto.Signer) (string, error) {
	v, err := TXTValue(key)
	if err != nil {
		return "", err
	}
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	name := selector + "._domainkey." + strings.TrimSuffix(domain, ".") + "."
	return name + " IN TXT " + strings.Join(parts, " "), nil
}
