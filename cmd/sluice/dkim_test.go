package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/auth"
	"github.com/sluice-mta/sluice/core/auth/dkimkey"
	sdns "github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

// TestDKIMKeygen runs keygen, publishes the record it prints on a loopback
// DNS server, signs with the key file it wrote and verifies the signature.
func TestDKIMKeygen(t *testing.T) {
	for _, tc := range []struct {
		typ  dkimkey.Type
		bits int
	}{{dkimkey.Ed25519, 0}, {dkimkey.RSA, 2048}} {
		t.Run(string(tc.typ), func(t *testing.T) {
			dir := t.TempDir()
			var out bytes.Buffer
			if err := dkimKeygen(&out, "Example.COM.", "s1", tc.typ, tc.bits, dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "example.com.s1.key")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
			}
			var record string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "s1._domainkey.example.com. IN TXT \"v=DKIM1; k="+string(tc.typ)+"; p=") {
					record = l
				}
			}
			if record == "" {
				t.Fatalf("no TXT record in output:\n%s", out.String())
			}
			srv := dnstest.Start(t, dnstest.Zone(record))
			r, err := sdns.New(sdns.Options{Servers: []string{srv.Addr}, CacheSize: -1})
			if err != nil {
				t.Fatal(err)
			}
			s, err := auth.NewSigner([]auth.KeyConfig{{Domain: "example.com", Selector: "s1", PrivateKeyPath: path}})
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
			signed, err := s.Sign(msg, "")
			if err != nil {
				t.Fatal(err)
			}
			c := auth.NewChecker(auth.CheckerOptions{Hostname: "mx.test", Resolver: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			res, err := c.Check(context.Background(), auth.CheckInput{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "x", MailFrom: "a@example.com", Message: signed})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.DKIM) != 1 || res.DKIM[0].Result != auth.Pass || res.DKIM[0].Domain != "example.com" {
				t.Fatalf("DKIM results %+v, want one pass for example.com", res.DKIM)
			}
			// A second run does not overwrite the key.
			if err := dkimKeygen(io.Discard, "example.com", "s1", tc.typ, tc.bits, dir); err == nil {
				t.Error("keygen overwrote an existing key")
			}
		})
	}
}

// TestDKIMKeygenAbsolutePath: keygen run with a relative --out prints an
// absolute private_key, and that path loads the key from another working
// directory (where the server may run).
func TestDKIMKeygenAbsolutePath(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	var out bytes.Buffer
	if err := dkimKeygen(&out, "example.com", "s1", dkimkey.Ed25519, 0, "keys"); err != nil {
		t.Fatal(err)
	}
	var path string
	for _, l := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "private_key = "); ok {
			var err error
			if path, err = strconv.Unquote(v); err != nil {
				t.Fatalf("private_key line %q: %v", l, err)
			}
		}
	}
	if !filepath.IsAbs(path) {
		t.Fatalf("printed private_key %q is not absolute:\n%s", path, out.String())
	}
	t.Chdir(t.TempDir())
	if _, err := auth.NewSigner([]auth.KeyConfig{{Domain: "example.com", Selector: "s1", PrivateKeyPath: path}}); err != nil {
		t.Errorf("the printed path does not load from another directory: %v", err)
	}
}

func TestDKIMKeygenRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		domain, selector string
		typ              dkimkey.Type
		bits             int
	}{
		{"example.com", "s1", dkimkey.RSA, 1024},
		{"example.com", "s1", "dsa", 0},
		{"example.com", "a.b", dkimkey.Ed25519, 0},
		{"../etc", "s1", dkimkey.Ed25519, 0},
		{"", "s1", dkimkey.Ed25519, 0},
	} {
		if err := dkimKeygen(io.Discard, tc.domain, tc.selector, tc.typ, tc.bits, dir); err == nil {
			t.Errorf("keygen %+v succeeded", tc)
		}
	}
}

// TestDKIMKeygenBinaryFromAnotherDirectory runs the real binary as a user
// would: `sluice dkim keygen --out keys` in one directory, the
// [[dkim.key]] lines it prints pasted into a configuration, and `sluice
// config check` (which loads the key) run from another directory accepts
// it. The same lines with the key's path relative to the first directory
// are refused there, naming dkim.key's private_key.
func TestDKIMKeygenBinaryFromAnotherDirectory(t *testing.T) {
	genDir, otherDir, cfgDir := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(genDir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, code := runIn(t, genDir, "dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--type", "ed25519", "--out", "keys")
	if code != 0 {
		t.Fatalf("keygen exited %d:\n%s", code, out)
	}
	_, printed, ok := strings.Cut(out, "[[dkim.key]]\n")
	if !ok || !strings.Contains(printed, `private_key = "`+filepath.Join(genDir, "keys", "example.com.s1.key")+`"`) {
		t.Fatalf("keygen printed no [[dkim.key]] with the key's absolute path:\n%s", out)
	}
	check := func(dkim string) (string, int) {
		t.Helper()
		path := filepath.Join(cfgDir, "sluice.toml")
		text := fmt.Sprintf("data_dir = %q\n[smtp]\nlisten = []\n[submission]\nlisten = []\ntls_listen = []\n[[dkim.key]]\n%s", filepath.Join(cfgDir, "data"), dkim)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return runIn(t, otherDir, "config", "check", "--config", path)
	}
	if out, code := check(printed); code != 0 || !strings.Contains(out, "configuration ok") {
		t.Errorf("config check from another directory with keygen's lines exited %d:\n%s", code, out)
	}
	relative := strings.Replace(printed, filepath.Join(genDir, "keys"), "keys", 1)
	if out, code := check(relative); code == 0 || !strings.Contains(out, "private_key") {
		t.Errorf("config check with a path relative to keygen's directory exited %d, want a private_key error:\n%s", code, out)
	}
}
