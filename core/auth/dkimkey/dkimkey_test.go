package dkimkey

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		typ  Type
		bits int
	}{{Ed25519, 0}, {RSA, 0}, {RSA, 3072}} {
		key, err := Generate(tc.typ, tc.bits)
		if err != nil {
			t.Fatal(err)
		}
		data, err := MarshalPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Errorf("%s: parsed key differs", tc.typ)
		}
		v, err := TXTValue(key)
		if err != nil {
			t.Fatal(err)
		}
		p := v[strings.Index(v, "p=")+2:]
		raw, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			t.Fatalf("p= is not base64: %v", err)
		}
		switch pub := key.Public().(type) {
		case ed25519.PublicKey:
			if !strings.HasPrefix(v, "v=DKIM1; k=ed25519; p=") || string(raw) != string(pub) {
				t.Errorf("ed25519 record %q", v)
			}
		case *rsa.PublicKey:
			parsed, err := x509.ParsePKIXPublicKey(raw)
			if err != nil || !pub.Equal(parsed) || !strings.HasPrefix(v, "v=DKIM1; k=rsa; p=") {
				t.Errorf("rsa record %q: %v", v, err)
			}
		}
	}
}

func TestZoneRecordSplitsLongValues(t *testing.T) {
	key, err := Generate(RSA, 4096)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ZoneRecord("example.com", "big", key)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := TXTValue(key)
	head := `big._domainkey.example.com. IN TXT "`
	if !strings.HasPrefix(rec, head) {
		t.Fatalf("record %q", rec)
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(rec, head), `"`), `" "`)
	if len(parts) < 3 || strings.Join(parts, "") != v {
		t.Fatalf("%d parts do not join to the value", len(parts))
	}
	for _, p := range parts {
		if len(p) > 255 {
			t.Errorf("string of %d bytes", len(p))
		}
	}
}

func TestParseRefuses(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := func(k *rsa.PrivateKey) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	}
	big, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(pkcs1(big))); err != nil {
		t.Errorf("PKCS#1 2048-bit key: %v", err)
	}
	for name, data := range map[string]string{
		"rsa 1024":    pkcs1(small),
		"empty":       "",
		"not pem":     "hello",
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})),
		"bad der":     string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})),
	} {
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
