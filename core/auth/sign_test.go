package auth

import (
	"bytes"
	"context"
	"crypto"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/sluice-mta/sluice/core/auth/dkimkey"
)

// writeKey generates a key of type kt, writes it into dir and returns its
// path and the TXT value publishing it.
func writeKey(t *testing.T, dir, name string, kt dkimkey.Type) (string, string) {
	t.Helper()
	key, err := dkimkey.Generate(kt, 0)
	if err != nil {
		t.Fatal(err)
	}
	return saveKey(t, dir, name, key)
}

func saveKey(t *testing.T, dir, name string, key crypto.Signer) (string, string) {
	t.Helper()
	pemData, err := dkimkey.MarshalPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := dkimkey.TXTValue(key)
	if err != nil {
		t.Fatal(err)
	}
	return path, v
}

const outbound = "From: Alice <alice@sender.test>\n" +
	"To: bob@example.org\n" +
	"Cc: carol@example.org\n" +
	"Subject: Lunch\n" +
	"Date: Mon, 2 Jun 2025 10:00:00 +0000\n" +
	"Message-ID: <1@sender.test>\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: text/plain; charset=utf-8\n" +
	"X-Not-Signed: 1\n" +
	"\n" +
	"Noon at the usual place?\n" +
	".leading dot and trailing space \n"

func TestSignVerifies(t *testing.T) {
	dir := t.TempDir()
	rsaPath, rsaTXT := writeKey(t, dir, "rsa.pem", dkimkey.RSA)
	edPath, edTXT := writeKey(t, dir, "ed.pem", dkimkey.Ed25519)
	otherPath, otherTXT := writeKey(t, dir, "other.pem", dkimkey.Ed25519)
	srv, r := testDNS(t,
		txt("r1._domainkey.sender.test.", rsaTXT),
		txt("e1._domainkey.sender.test.", edTXT),
		txt("o1._domainkey.bounces.test.", otherTXT),
		txt("_dmarc.sender.test.", "v=DMARC1; p=reject"),
	)
	s, err := NewSigner([]KeyConfig{
		{Domain: "sender.test", Selector: "r1", PrivateKeyPath: rsaPath},
		{Domain: "Sender.Test.", Selector: "e1", PrivateKeyPath: edPath},
		{Domain: "bounces.test", Selector: "o1", PrivateKeyPath: otherPath},
	})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign(crlf(outbound), "bounces.test")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(signed, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d signatures, want 2 (rsa and ed25519 of sender.test):\n%s", n, signed)
	}
	if !bytes.HasSuffix(signed, crlf(outbound)) {
		t.Fatalf("signing changed the message")
	}

	// Our own verifier, and DMARC passes through the aligned signatures.
	c := newTestChecker(r)
	res, err := c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr("203.0.113.1"), Helo: "x.test", MailFrom: "alice@sender.test", Message: signed})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DKIM) != 2 || res.DKIM[0].Result != Pass || res.DKIM[1].Result != Pass || res.DMARC.Result != Pass {
		t.Fatalf("dkim %v %v dmarc %+v, want two passes", res.DKIM[0], res.DKIM[1], res.DMARC)
	}

	// The signed header fields, From oversigned.
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{LookupTXT: txtLookup(context.Background(), r)})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ToLower(strings.Join(verifs[0].HeaderKeys, ":"))
	if want := "from:from:to:cc:subject:date:message-id:mime-version:content-type"; got != want {
		t.Errorf("h=%s, want %s", got, want)
	}

	// An added From breaks the signatures (oversigning).
	forged := append([]byte("From: mallory@evil.test\r\n"), signed...)
	res, err = c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr("203.0.113.1"), Helo: "x.test", MailFrom: "alice@sender.test", Message: forged})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range res.DKIM {
		if d.Result == Pass {
			t.Errorf("signature %d still passes with a second From", i)
		}
	}

	// An independent verifier: python3-dkim, over the loopback DNS.
	pythonVerify(t, srv.Addr, signed, true)
	pythonVerify(t, srv.Addr, bytes.Replace(signed, []byte("Noon"), []byte("Nine"), 1), false)
}

// pythonVerify runs testdata/dkimverify.py on msg and checks its verdict.
func pythonVerify(t *testing.T, dnsAddr string, msg []byte, want bool) {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim, dns.resolver").Run(); err != nil {
		t.Fatalf("python3-dkim is missing (run scripts/install-test-deps.sh, as make test does): %v", err)
	}
	cmd := exec.Command(py, "testdata/dkimverify.py", dnsAddr)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if (err == nil) != want {
		t.Errorf("python3-dkim: verified=%v, want %v: %v\n%s\nmessage:\n%s", err == nil, want, err, out, msg)
	}
}

func TestSignKeyChoice(t *testing.T) {
	dir := t.TempDir()
	a, _ := writeKey(t, dir, "a.pem", dkimkey.Ed25519)
	b, _ := writeKey(t, dir, "b.pem", dkimkey.Ed25519)
	s, err := NewSigner([]KeyConfig{{Domain: "parent.test", Selector: "p", PrivateKeyPath: a}, {Domain: "env.test", Selector: "e", PrivateKeyPath: b}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, env, want string
	}{
		{"From: x@parent.test", "", "d=parent.test"},
		{"From: x@mail.parent.test", "other.test", "d=parent.test"},
		{"From: x@nokey.test", "env.test", "d=env.test"},
		{"From: x@nokey.test", "sub.env.test", "d=env.test"},
		{"From: x@nokey.test", "nokey.test", ""},
		{"From: x@test", "test", ""},
		{"Subject: no from", "env.test", "d=env.test"},
	} {
		msg := crlf(tc.from + "\n\nbody\n")
		out, err := s.Sign(msg, tc.env)
		if err != nil {
			t.Fatal(err)
		}
		sig, _, _ := bytes.Cut(out, []byte("\r\n\r\n"))
		switch {
		case tc.want == "" && !bytes.Equal(out, msg):
			t.Errorf("%s / %s: signed, want unchanged", tc.from, tc.env)
		case tc.want != "" && !bytes.Contains(sig, []byte(tc.want)):
			t.Errorf("%s / %s: header %q lacks %s", tc.from, tc.env, sig, tc.want)
		}
	}
}

func TestNewSignerErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	for _, k := range []KeyConfig{
		{Domain: "a.test", Selector: "s", PrivateKeyPath: filepath.Join(dir, "missing.pem")},
		{Domain: "a.test", Selector: "s", PrivateKeyPath: bad},
		{Domain: "", Selector: "s", PrivateKeyPath: bad},
	} {
		if _, err := NewSigner([]KeyConfig{k}); err == nil || !strings.Contains(err.Error(), k.PrivateKeyPath) {
			t.Errorf("NewSigner(%+v) = %v, want an error naming the file", k, err)
		}
	}
}
