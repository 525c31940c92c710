package tlsconf

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadRoots reads a PEM file of CA certificates to verify peers against
// (relay_ca_file, ca_file); "" means the system's roots (nil).
func LoadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
