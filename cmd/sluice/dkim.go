package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sluice-mta/sluice/core/auth/dkimkey"
)

// dkimCommand is `sluice dkim …`: DKIM key management.
func dkimCommand() *cli.Command {
	return &cli.Command{
		Name:  "dkim",
		Usage: "manage DKIM signing keys",
		Subcommands: []*cli.Command{
			{
				Name:  "keygen",
				Usage: "make a signing key, write it as PEM and print the DNS TXT record to publish",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "domain", Usage: "the signing `DOMAIN` (d=)", Required: true},
					&cli.StringFlag{Name: "selector", Usage: "the `SELECTOR` (s=): the key is published at SELECTOR._domainkey.DOMAIN", Required: true},
					&cli.StringFlag{Name: "type", Usage: "the key `TYPE`: rsa or ed25519", Value: "rsa"},
					&cli.IntFlag{Name: "bits", Usage: "the RSA key size in `BITS` (2048 or more)", Value: dkimkey.MinRSABits},
					&cli.StringFlag{Name: "out", Usage: "the `DIR` to write DOMAIN.SELECTOR.key into", Value: "."},
				},
				Action: func(c *cli.Context) error {
					return dkimKeygen(c.App.Writer, c.String("domain"), c.String("selector"),
						dkimkey.Type(c.String("type")), c.Int("bits"), c.String("out"))
				},
			},
		},
	}
}

// dkimKeygen makes a key, writes it to dir/DOMAIN.SELECTOR.key (mode 0600,
// never over an existing file) and prints the TXT record and the
// configuration lines that use it. The printed private_key is absolute:
// the server resolves a relative path against its own working directory,
// which is seldom the one keygen ran in.
func dkimKeygen(w io.Writer, domain, selector string, t dkimkey.Type, bits int, dir string) error {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" || strings.ContainsAny(domain, "/ \t") || strings.ContainsAny(selector, "/ \t.") || selector == "" {
		return errors.New("dkim keygen: --domain must be a domain name and --selector a single DNS label, like --domain example.com --selector s2025")
	}
	key, err := dkimkey.Generate(t, bits)
	if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	pemData, err := dkimkey.MarshalPEM(key)
	if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	rec, err := dkimkey.ZoneRecord(domain, selector, key)
	if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("dkim keygen: --out: %w", err)
	}
	path := filepath.Join(dir, domain+"."+selector+".key")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("dkim keygen: writing the key: %w (remove the old key or choose another --selector or --out)", err)
	}
	if _, err := f.Write(pemData); err != nil {
		f.Close()
		return fmt.Errorf("dkim keygen: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dkim keygen: writing %s: %w", path, err)
	}
	fmt.Fprintf(w, "; private key written to %s\n", path)
	fmt.Fprintf(w, "; publish this record in the DNS of %s:\n%s\n", domain, rec)
	fmt.Fprintf(w, "; then add to the configuration:\n[[dkim.key]]\ndomain = %q\nselector = %q\nprivate_key = %q\n", domain, selector, path)
	return nil
}
