// Package srs implements the Sender Rewriting Scheme (SRS): a forwarder
// rewrites the envelope sender of mail it forwards to an address under its
// own domain, so that SPF passes at the next hop, and reverses that address
// when a bounce comes back.
//
// The format is the one of libsrs2 and postsrsd, so addresses are
// interchangeable with those of a Postfix+postsrsd forwarder using the same
// secret:
//
//	SRS0=HHHH=TT=orig.example=user@forwarder.example
//	SRS1=HHHH=first.example==HHHH=TT=orig.example=user@forwarder.example
//
// HHHH is the first four characters of the base64 HMAC-SHA1 of the
// lowercased fields under a secret, TT the day of the rewrite (days since
// the epoch modulo 1024, two base32 characters). A reversed SRS0 address
// must carry a valid hash and be at most MaxAge old; anything else is
// refused, so the forwarder is no open relay for forged bounces.
package srs

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

const (
	hashLen = 4
	// Time stamps count days modulo 1024 in two base32 characters.
	timePrecision = 24 * time.Hour
	timeSlots     = 1024
	base32Chars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	// DefaultMaxAge is how long an SRS0 address stays reversible (the
	// libsrs2 default).
	DefaultMaxAge = 21 * 24 * time.Hour
	// MinSecretLen is the shortest secret accepted, in bytes.
	MinSecretLen = 16
)

// Errors Reverse returns; all but ErrNotSRS mean a forged or damaged
// address, to be refused.
var (
	ErrNotSRS    = errors.New("srs: not an SRS address")
	ErrMalformed = errors.New("srs: malformed SRS address")
	ErrBadHash   = errors.New("srs: hash does not match (forged or from another secret)")
	ErrExpired   = errors.New("srs: time stamp out of date")
)

// Options configures a Rewriter.
type Options struct {
	// Domain is the forwarder's domain rewritten addresses are put under.
	Domain string
	// Secrets: the first signs new addresses; every one is accepted when
	// reversing, so a secret can be rotated without breaking bounces in
	// flight. Each must be at least MinSecretLen bytes.
	Secrets [][]byte
	// MaxAge bounds how old a reversed SRS0 address may be; zero means
	// DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Rewriter rewrites and reverses sender addresses. It is safe for
// concurrent use.
type Rewriter struct {
	domain  string
	secrets [][]byte
	maxAge  int // days
	now     func() time.Time
}

// New returns a Rewriter for o.
func New(o Options) (*Rewriter, error) {
	d := mail.NormDomain(o.Domain)
	if d == "" || strings.ContainsAny(d, "@ \t") {
		return nil, fmt.Errorf("srs: bad domain %q", o.Domain)
	}
	if len(o.Secrets) == 0 {
		return nil, errors.New("srs: no secret")
	}
	for i, s := range o.Secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("srs: secret %d is %d bytes; use at least %d random bytes", i+1, len(s), MinSecretLen)
		}
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	days := int(o.MaxAge / timePrecision)
	if days < 1 {
		days = 1
	}
	if days >= timeSlots {
		days = timeSlots - 1
	}
	return &Rewriter{domain: d, secrets: o.Secrets, maxAge: days, now: o.Now}, nil
}

// LoadSecrets reads a secret file: one secret a line, the first signing,
// blank lines and lines starting with '#' ignored (postsrsd's format).
func LoadSecrets(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) < MinSecretLen {
			return nil, fmt.Errorf("%s:%d: secret is %d bytes; use at least %d random characters (e.g. head -c 24 /dev/urandom | base64)", path, n, len(line), MinSecretLen)
		}
		out = append(out, bytes.Clone(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no secret in the file; write one line of at least %d random characters", path, MinSecretLen)
	}
	return out, nil
}

// Domain returns the forwarder domain.
func (r *Rewriter) Domain() string { return r.domain }

// Forward returns the address to use as envelope sender when forwarding
// mail from sender. The null sender and senders already at the forwarder's
// domain are returned unchanged; an SRS0 or SRS1 sender of another
// forwarder becomes SRS1, so the bounce path stays short.
func (r *Rewriter) Forward(sender string) (string, error) {
	if sender == "" {
		return "", nil
	}
	local, domain, ok := mail.Split(sender)
	if !ok || local == "" || domain == "" {
		return "", fmt.Errorf("srs: cannot rewrite %q: not user@domain", sender)
	}
	// The domain is compared normalised and written as given, as
	// postsrsd writes it (the hash is over lowercased fields anyway).
	if mail.NormDomain(domain) == r.domain {
		return sender, nil
	}
	domain = strings.TrimSuffix(domain, ".")
	tag, sep, rest := cutTag(local)
	switch tag {
	case "SRS0":
		// SRS1=HHHH=host==HHHH=TT=orig=user: "host" is the forwarder
		// that made the SRS0, rest keeps its separator.
		opaque := sep + rest
		return "SRS1=" + r.hash(0, domain, opaque) + "=" + domain + "=" + opaque + "@" + r.domain, nil
	case "SRS1":
		// Keep the first forwarder; only the outer hash is ours.
		h := strings.SplitN(rest, "=", 3)
		if len(h) < 3 || h[1] == "" {
			return "", fmt.Errorf("%w: %q", ErrMalformed, sender)
		}
		host, opaque := h[1], h[2]
		return "SRS1=" + r.hash(0, host, opaque) + "=" + host + "=" + opaque + "@" + r.domain, nil
	}
	ts := r.timestamp()
	return "SRS0=" + r.hash(0, ts, domain, local) + "=" + ts + "=" + domain + "=" + local + "@" + r.domain, nil
}

// Reverse returns the address an SRS address at the forwarder's domain
// stands for: the original sender for SRS0, the first forwarder's SRS0
// address for SRS1. It returns ErrNotSRS for an address that is not one
// (the caller resolves it normally), and ErrMalformed, ErrBadHash or
// ErrExpired for one to refuse.
func (r *Rewriter) Reverse(addr string) (string, error) {
	local, domain, ok := mail.Split(addr)
	if !ok || mail.NormDomain(domain) != r.domain {
		return "", ErrNotSRS
	}
	tag, _, rest := cutTag(local)
	switch tag {
	case "SRS0":
		f := strings.SplitN(rest, "=", 4)
		if len(f) < 4 || len(f[0]) != hashLen || f[2] == "" || f[3] == "" {
			return "", fmt.Errorf("%w: %q", ErrMalformed, addr)
		}
		hash, ts, host, user := f[0], f[1], f[2], f[3]
		if !r.checkHash(hash, ts, host, user) {
			return "", ErrBadHash
		}
		if err := r.checkTimestamp(ts); err != nil {
			return "", err
		}
		return user + "@" + host, nil
	case "SRS1":
		f := strings.SplitN(rest, "=", 3)
		if len(f) < 3 || len(f[0]) != hashLen || f[1] == "" || f[2] == "" {
			return "", fmt.Errorf("%w: %q", ErrMalformed, addr)
		}
		hash, host, opaque := f[0], f[1], f[2]
		if !r.checkHash(hash, host, opaque) {
			return "", ErrBadHash
		}
		// opaque starts with the SRS0 separator: "=HHHH=TT=…".
		return "SRS0" + opaque + "@" + host, nil
	}
	return "", ErrNotSRS
}

// IsSRS reports whether addr's local part has the form of an SRS address
// (SRS0 or SRS1 and a separator), whatever its domain.
func IsSRS(addr string) bool {
	local, _, _ := mail.Split(addr)
	tag, _, _ := cutTag(local)
	return tag != ""
}

// cutTag splits "SRS0=rest" (any case, separator '=', '+' or '-') into
// "SRS0", the separator and rest; tag is "" when local is not SRS.
func cutTag(local string) (tag, sep, rest string) {
	if len(local) < 5 {
		return "", "", ""
	}
	switch local[4] {
	case '=', '+', '-':
	default:
		return "", "", ""
	}
	switch t := strings.ToUpper(local[:4]); t {
	case "SRS0", "SRS1":
		return t, local[4:5], local[5:]
	}
	return "", "", ""
}

// hash is the HMAC-SHA1 of the lowercased parts under secret i, base64,
// cut to hashLen.
func (r *Rewriter) hash(i int, parts ...string) string {
	m := hmac.New(sha1.New, r.secrets[i])
	for _, p := range parts {
		m.Write([]byte(strings.ToLower(p)))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:hashLen]
}

// checkHash compares got with the hash under every secret, without regard
// to case (as libsrs2 does: some MTAs lowercase whole addresses).
func (r *Rewriter) checkHash(got string, parts ...string) bool {
	g := []byte(strings.ToLower(got))
	ok := 0
	for i := range r.secrets {
		ok |= subtle.ConstantTimeCompare(g, []byte(strings.ToLower(r.hash(i, parts...))))
	}
	return ok == 1
}

// day is the current day number modulo timeSlots.
func (r *Rewriter) day() int {
	return int(r.now().Unix()/int64(timePrecision/time.Second)) % timeSlots
}

// timestamp encodes today in two base32 characters.
func (r *Rewriter) timestamp() string {
	d := r.day()
	return string([]byte{base32Chars[(d>>5)&31], base32Chars[d&31]})
}

// checkTimestamp accepts a time stamp of the last maxAge days.
func (r *Rewriter) checkTimestamp(ts string) error {
	if len(ts) != 2 {
		return fmt.Errorf("%w: time stamp %q", ErrMalformed, ts)
	}
	then := 0
	for _, c := range []byte(strings.ToUpper(ts)) {
		i := strings.IndexByte(base32Chars, c)
		if i < 0 {
			return fmt.Errorf("%w: time stamp %q", ErrMalformed, ts)
		}
		then = then<<5 | i
	}
	now := r.day()
	if now < then {
		now += timeSlots
	}
	if now-then > r.maxAge {
		return ErrExpired
	}
	return nil
}
