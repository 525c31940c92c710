package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/testclock"
)

var (
	secret  = []byte("0123456789abcdef-secret")
	secret2 = []byte("another-secret-of-enough-bytes")
)

func newRewriter(t *testing.T, clock *testclock.Clock, secrets ...[]byte) *Rewriter {
	t.Helper()
	if len(secrets) == 0 {
		secrets = [][]byte{secret}
	}
	r, err := New(Options{Domain: "Fwd.Example.", Secrets: secrets, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// day2000 is a fixed day: 2024-01-01.
var day2000 = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

// TestForwardFormat checks the SRS0 address against a hash computed here
// from the definition (HMAC-SHA1 of timestamp, domain, local lowercased).
func TestForwardFormat(t *testing.T) {
	clock := testclock.New(day2000)
	r := newRewriter(t, clock)
	got, err := r.Forward("Alice@Orig.Example")
	if err != nil {
		t.Fatal(err)
	}
	day := int(day2000.Unix()/86400) % 1024
	ts := string([]byte{base32Chars[day>>5], base32Chars[day&31]})
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(strings.ToLower(ts) + "orig.example" + "alice"))
	hash := base64.StdEncoding.EncodeToString(m.Sum(nil))[:4]
	// The domain is written as given, as postsrsd writes it.
	want := "SRS0=" + hash + "=" + ts + "=Orig.Example=Alice@fwd.example"
	if got != want {
		t.Errorf("Forward = %q, want %q", got, want)
	}
}

func TestForwardUnchanged(t *testing.T) {
	r := newRewriter(t, testclock.New(day2000))
	for _, in := range []string{"", "bob@fwd.example", "bob@FWD.example."} {
		got, err := r.Forward(in)
		if err != nil || got != in {
			t.Errorf("Forward(%q) = %q, %v; want it unchanged", in, got, err)
		}
	}
	for _, in := range []string{"nodomain", "@orig.example", "user@"} {
		if got, err := r.Forward(in); err == nil {
			t.Errorf("Forward(%q) = %q, want an error", in, got)
		}
	}
}

// TestRoundTrip forwards and reverses, through SRS0, SRS1 of another
// forwarder's SRS0, and SRS1 of an SRS1.
func TestRoundTrip(t *testing.T) {
	clock := testclock.New(day2000)
	r := newRewriter(t, clock)
	other, err := New(Options{Domain: "other.example", Secrets: [][]byte{secret2}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	third, err := New(Options{Domain: "third.example", Secrets: [][]byte{[]byte("third-forwarder-secret")}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ sender string }{
		{"alice@orig.example"},
		{"first.last+tag@sub.orig.example"},
		{"with=equals@orig.example"},
		{"\"quoted local\"@orig.example"},
	}
	for _, tt := range tests {
		fwd, err := r.Forward(tt.sender)
		if err != nil {
			t.Fatal(err)
		}
		if !IsSRS(fwd) || !strings.HasSuffix(fwd, "@fwd.example") || !strings.HasPrefix(fwd, "SRS0=") {
			t.Errorf("Forward(%q) = %q", tt.sender, fwd)
		}
		back, err := r.Reverse(fwd)
		if err != nil || back != tt.sender {
			t.Errorf("Reverse(%q) = %q, %v; want %q", fwd, back, err, tt.sender)
		}
		// Case-smashed by a later hop: still reversible (the original
		// local part's case is lost, as with libsrs2).
		if back, err := r.Reverse(strings.ToLower(fwd)); err != nil || !strings.EqualFold(back, tt.sender) {
			t.Errorf("Reverse(lowercased %q) = %q, %v", fwd, back, err)
		}

		// Another forwarder forwards our SRS0: SRS1 naming us; it
		// reverses to our SRS0, which we reverse to the sender.
		srs1, err := other.Forward(fwd)
		if err != nil || !strings.HasPrefix(srs1, "SRS1=") || !strings.Contains(srs1, "=fwd.example==") {
			t.Fatalf("other.Forward(%q) = %q, %v", fwd, srs1, err)
		}
		// A third forwarder keeps the first host.
		srs1b, err := third.Forward(srs1)
		if err != nil || !strings.HasPrefix(srs1b, "SRS1=") || !strings.Contains(srs1b, "=fwd.example==") || !strings.HasSuffix(srs1b, "@third.example") {
			t.Fatalf("third.Forward(%q) = %q, %v", srs1, srs1b, err)
		}
		if back, err := third.Reverse(srs1b); err != nil || back != fwd {
			t.Errorf("third.Reverse(%q) = %q, %v; want %q", srs1b, back, err, fwd)
		}
		if back, err := other.Reverse(srs1); err != nil || back != fwd {
			t.Errorf("other.Reverse(%q) = %q, %v; want %q", srs1, back, err, fwd)
		}
	}
}

// TestForged refuses addresses with a bad hash, from another secret, out
// of date or malformed.
func TestForged(t *testing.T) {
	clock := testclock.New(day2000)
	r := newRewriter(t, clock)
	good, err := r.Forward("alice@orig.example")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := New(Options{Domain: "fwd.example", Secrets: [][]byte{secret2}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	fromStranger, _ := stranger.Forward("alice@orig.example")
	// Swap the user: the hash no longer matches.
	tampered := strings.Replace(good, "=alice@", "=mallory@", 1)
	flip := []byte(good)
	if flip[5] == 'A' {
		flip[5] = 'B'
	} else {
		flip[5] = 'A'
	}
	tests := []struct {
		name, addr string
		want       error
	}{
		{"other user", tampered, ErrBadHash},
		{"hash changed", string(flip), ErrBadHash},
		{"other secret", fromStranger, ErrBadHash},
		{"no hash", "SRS0==AB=orig.example=alice@fwd.example", ErrMalformed},
		{"missing field", "SRS0=abcd=AB=alice@fwd.example", ErrMalformed},
		{"bad time stamp", "SRS0=abcd=A!=orig.example=alice@fwd.example", ErrBadHash},
		{"srs1 forged", "SRS1=abcd=orig.example==xxxx=AB=orig.example=alice@fwd.example", ErrBadHash},
		{"not srs", "alice@fwd.example", ErrNotSRS},
		{"other domain", strings.Replace(good, "@fwd.example", "@elsewhere.example", 1), ErrNotSRS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Reverse(tt.addr)
			if !errors.Is(err, tt.want) {
				t.Errorf("Reverse(%q) = %q, %v; want %v", tt.addr, got, err, tt.want)
			}
		})
	}

	// Expiry: valid for MaxAge (21 days), refused after.
	clock.Add(21 * 24 * time.Hour)
	if _, err := r.Reverse(good); err != nil {
		t.Errorf("after 21 days: %v, want still valid", err)
	}
	clock.Add(24 * time.Hour)
	if _, err := r.Reverse(good); !errors.Is(err, ErrExpired) {
		t.Errorf("after 22 days: %v, want ErrExpired", err)
	}
	// A time stamp from the future (beyond the wrap) is out of date too.
	clock.Add(-30 * 24 * time.Hour)
	if _, err := r.Reverse(good); !errors.Is(err, ErrExpired) {
		t.Errorf("8 days before it was made: %v, want ErrExpired", err)
	}
}

// TestWrap: the day counter wraps every 1024 days; an address made just
// before the wrap is valid just after it.
func TestWrap(t *testing.T) {
	base := time.Unix(1023*86400, 0) // day 1023 mod 1024
	for base.Unix()/86400%1024 != 1023 {
		base = base.Add(24 * time.Hour)
	}
	clock := testclock.New(base)
	r := newRewriter(t, clock)
	a, _ := r.Forward("alice@orig.example")
	clock.Add(3 * 24 * time.Hour)
	if got, err := r.Reverse(a); err != nil || got != "alice@orig.example" {
		t.Errorf("after the wrap: %q, %v", got, err)
	}
}

// TestRotation: an address signed with the old secret still reverses once
// a new secret signs.
func TestRotation(t *testing.T) {
	clock := testclock.New(day2000)
	old := newRewriter(t, clock, secret)
	addr, _ := old.Forward("alice@orig.example")
	rotated := newRewriter(t, clock, secret2, secret)
	if got, err := rotated.Reverse(addr); err != nil || got != "alice@orig.example" {
		t.Errorf("rotated.Reverse = %q, %v", got, err)
	}
	dropped := newRewriter(t, clock, secret2)
	if _, err := dropped.Reverse(addr); !errors.Is(err, ErrBadHash) {
		t.Errorf("without the old secret: %v, want ErrBadHash", err)
	}
}

func TestNew(t *testing.T) {
	for name, o := range map[string]Options{
		"no domain":    {Secrets: [][]byte{secret}},
		"no secret":    {Domain: "fwd.example"},
		"short secret": {Domain: "fwd.example", Secrets: [][]byte{[]byte("short")}},
		"bad domain":   {Domain: "a b", Secrets: [][]byte{secret}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestLoadSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadSecrets(write("ok", "# comment\n\n"+string(secret)+"\n  "+string(secret2)+"  \n"))
	if err != nil || len(got) != 2 || string(got[0]) != string(secret) || string(got[1]) != string(secret2) {
		t.Errorf("LoadSecrets = %q, %v", got, err)
	}
	for name, text := range map[string]string{"empty": "# nothing\n", "short": "# x\nshort\n"} {
		p := write(name, text)
		_, err := LoadSecrets(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v should name the file", name, err)
		}
	}
	if _, err := LoadSecrets(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file loaded")
	}
	// The short one names its line.
	if _, err := LoadSecrets(filepath.Join(dir, "short")); err == nil || !strings.Contains(err.Error(), "short:2:") {
		t.Errorf("short secret error %v should name line 2", err)
	}
}

func FuzzReverse(f *testing.F) {
	clock := testclock.New(day2000)
	r, _ := New(Options{Domain: "fwd.example", Secrets: [][]byte{secret}, Now: clock.Now})
	good, _ := r.Forward("alice@orig.example")
	f.Add(good)
	f.Add("SRS1=abcd=orig.example==xxxx=AB=orig.example=alice@fwd.example")
	f.Add("SRS0+x@fwd.example")
	f.Fuzz(func(t *testing.T, addr string) {
		back, err := r.Reverse(addr)
		if err != nil {
			return
		}
		// Whatever reverses was made with our secret: forwarding it
		// again gives an address that reverses too.
		if back == "" {
			t.Errorf("Reverse(%q) = empty address", addr)
		}
	})
}
