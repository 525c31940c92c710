package smtpd

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
)

// AuthLimits throttle failed logins fairly: failures are counted per login
// (client address and user name), per user name across addresses and per
// client address across user names, so that an attacker failing for one
// user behind a shared address (a webmail host, an office NAT) does not
// lock out the other users there. Zero values take the defaults below.
type AuthLimits struct {
	// Delay is waited before the 535 reply to a failure: the n-th failure
	// of one login waits Delay × 2^(n−1), up to MaxDelay.
	Delay, MaxDelay time.Duration
	// MaxFailures of one login (address and user) within Window get 421
	// 4.7.0 and the connection closed; that user is then refused from that
	// address until the window has passed.
	MaxFailures int
	// MaxUserFailures of one user from any addresses within Window block
	// that user from every address (a distributed guess of one password).
	MaxUserFailures int
	// MaxAddressFailures from one address for any users within Window
	// block every login from it (one address guessing many users); larger
	// than MaxFailures so that one user's mistakes do not block the others.
	MaxAddressFailures int
	Window             time.Duration
	// LimitTrusted throttles logins from trusted networks too; by default
	// they are exempt.
	LimitTrusted bool
}

// Defaults for zero values in AuthLimits.
const (
	DefaultAuthDelay              = time.Second
	DefaultAuthMaxDelay           = 5 * time.Second
	DefaultAuthMaxFailures        = 5
	DefaultAuthMaxUserFailures    = 15
	DefaultAuthMaxAddressFailures = 30
	DefaultAuthWindow             = 15 * time.Minute
)

// authKeyPrefix starts every key the throttle writes to the KV store. A
// plugin's keys start with its name and a slash, and no file name holds a
// NUL, so no plugin can read or forge these.
const authKeyPrefix = "\x00sluice/auth/"

// maxIndexed bounds the records listed per window (see AuthThrottle.Status).
const maxIndexed = 10000

// Kinds of AuthRecord.
const (
	AuthKindLogin   = "login"   // one user from one address
	AuthKindUser    = "user"    // one user from any address
	AuthKindAddress = "address" // any user from one address
)

// AuthRecord is one failure counter of the throttle.
type AuthRecord struct {
	// Kind is AuthKindLogin, AuthKindUser or AuthKindAddress.
	Kind string `json:"kind"`
	// Address is the client address ("" for a user record).
	Address string `json:"address,omitempty"`
	// User is the user name ("" for an address record).
	User string `json:"user,omitempty"`
	// Failures counted in the current window, and the limit that blocks.
	Failures int64 `json:"failures"`
	Limit    int   `json:"limit"`
	// Blocked is Failures ≥ Limit: logins it covers get 421 4.7.0.
	Blocked bool `json:"blocked"`
}

// AuthThrottle counts failed logins in a KV store (the plugins' store,
// which several nodes may share), so that every service, the admin socket
// and other nodes see the same counts. It is safe for concurrent use.
type AuthThrottle struct {
	kv      filter.KV
	lim     AuthLimits
	trusted []netip.Prefix
	now     func() time.Time
}

// NewAuthThrottle returns a throttle over kv (nil: an in-memory store of
// this process) with limits l; logins from trusted are exempt unless
// l.LimitTrusted.
func NewAuthThrottle(kv filter.KV, l AuthLimits, trusted []netip.Prefix) *AuthThrottle {
	if kv == nil {
		kv = filter.NewMemKV(nil)
	}
	if l.Delay == 0 {
		l.Delay = DefaultAuthDelay
	}
	if l.MaxDelay == 0 {
		l.MaxDelay = DefaultAuthMaxDelay
	}
	if l.MaxFailures == 0 {
		l.MaxFailures = DefaultAuthMaxFailures
	}
	if l.MaxUserFailures == 0 {
		l.MaxUserFailures = DefaultAuthMaxUserFailures
	}
	if l.MaxAddressFailures == 0 {
		l.MaxAddressFailures = DefaultAuthMaxAddressFailures
	}
	if l.Window == 0 {
		l.Window = DefaultAuthWindow
	}
	return &AuthThrottle{kv: kv, lim: l, trusted: trusted, now: time.Now}
}

// Limits returns the limits in force, defaults filled in.
func (a *AuthThrottle) Limits() AuthLimits { return a.lim }

// exempt reports whether logins from ip are not throttled.
func (a *AuthThrottle) exempt(ip netip.Addr) bool {
	if a.lim.LimitTrusted {
		return false
	}
	for _, p := range a.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// maxUserKey bounds the part of a user name a key holds.
const maxUserKey = 256

func loginKey(ip netip.Addr, user string) string {
	return authKeyPrefix + "l/" + ip.String() + "/" + user[:min(len(user), maxUserKey)]
}
func userKey(user string) string     { return authKeyPrefix + "u/" + user[:min(len(user), maxUserKey)] }
func addrKey(ip netip.Addr) string   { return authKeyPrefix + "a/" + ip.String() }
func (a *AuthThrottle) epoch() int64 { return a.now().UnixNano() / int64(a.lim.Window) }
func indexKey(epoch int64) string    { return authKeyPrefix + "i/" + strconv.FormatInt(epoch, 10) }

// count reads a counter; a missing one (or a store error) is 0.
func (a *AuthThrottle) count(ctx context.Context, key string) (int64, error) {
	v, ok, err := a.kv.Get(ctx, key)
	if err != nil || !ok {
		return 0, err
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// AddressBlocked reports whether every login from ip is refused.
func (a *AuthThrottle) AddressBlocked(ctx context.Context, ip netip.Addr) (bool, error) {
	if a.exempt(ip) {
		return false, nil
	}
	n, err := a.count(ctx, addrKey(ip))
	return n >= int64(a.lim.MaxAddressFailures), err
}

// Blocked reports whether user's logins from ip are refused, and which
// counter refuses them (an AuthKind…).
func (a *AuthThrottle) Blocked(ctx context.Context, ip netip.Addr, user string) (string, error) {
	if a.exempt(ip) {
		return "", nil
	}
	for _, c := range []struct {
		kind, key string
		limit     int
	}{
		{AuthKindAddress, addrKey(ip), a.lim.MaxAddressFailures},
		{AuthKindUser, userKey(user), a.lim.MaxUserFailures},
		{AuthKindLogin, loginKey(ip, user), a.lim.MaxFailures},
	} {
		n, err := a.count(ctx, c.key)
		if err != nil {
			return "", err
		}
		if n >= int64(c.limit) {
			return c.kind, nil
		}
	}
	return "", nil
}

// Fail records a failed login of user from ip and returns the login's
// failures so far, how long to wait before answering, and which counter
// (an AuthKind…) it brought to its limit, "" if none.
func (a *AuthThrottle) Fail(ctx context.Context, ip netip.Addr, user string) (n int64, delay time.Duration, blocked string, err error) {
	if a.exempt(ip) {
		return 0, 0, "", nil
	}
	counters := []struct {
		kind, key string
		limit     int
	}{
		{AuthKindLogin, loginKey(ip, user), a.lim.MaxFailures},
		{AuthKindUser, userKey(user), a.lim.MaxUserFailures},
		{AuthKindAddress, addrKey(ip), a.lim.MaxAddressFailures},
	}
	for i, c := range counters {
		v, err := a.kv.Incr(ctx, c.key, 1, a.lim.Window)
		if err != nil {
			return n, a.lim.Delay, blocked, err
		}
		if i == 0 {
			n = v
		}
		if v == 1 {
			a.index(ctx, c.kind, ip, user)
		}
		if v >= int64(c.limit) && blocked == "" {
			blocked = c.kind
		}
	}
	delay = a.lim.MaxDelay
	if n < 32 {
		delay = min(a.lim.Delay<<(n-1), a.lim.MaxDelay)
	}
	return n, delay, blocked, nil
}

// Succeeded forgets the failures of user's login from ip (not those of
// the user nor of the address, which others may be causing).
func (a *AuthThrottle) Succeeded(ctx context.Context, ip netip.Addr, user string) error {
	if a.exempt(ip) {
		return nil
	}
	return a.kv.Del(ctx, loginKey(ip, user))
}

// index notes a new counter so that Status can list it: the KV store has
// no listing, so each window has a counter of records and one key per
// record. A record lives at most a window, so the current and previous
// windows' indexes name every live one.
func (a *AuthThrottle) index(ctx context.Context, kind string, ip netip.Addr, user string) {
	ik := indexKey(a.epoch())
	slot, err := a.kv.Incr(ctx, ik, 1, 2*a.lim.Window)
	if err != nil || slot > maxIndexed {
		return
	}
	rec := kind + "\x00" + ip.String() + "\x00" + user
	_ = a.kv.Set(ctx, ik+"/"+strconv.FormatInt(slot, 10), []byte(rec), 2*a.lim.Window)
}

// Status lists the live counters (those of the current and previous
// windows' indexes), each once.
func (a *AuthThrottle) Status(ctx context.Context) ([]AuthRecord, error) {
	var out []AuthRecord
	seen := map[string]bool{}
	e := a.epoch()
	for _, ep := range []int64{e - 1, e} {
		ik := indexKey(ep)
		slots, err := a.count(ctx, ik)
		if err != nil {
			return nil, err
		}
		for i := int64(1); i <= min(slots, maxIndexed); i++ {
			v, ok, err := a.kv.Get(ctx, ik+"/"+strconv.FormatInt(i, 10))
			if err != nil {
				return nil, err
			}
			if !ok || seen[string(v)] {
				continue
			}
			seen[string(v)] = true
			r, key, ok := a.record(string(v))
			if !ok {
				continue
			}
			if r.Failures, err = a.count(ctx, key); err != nil {
				return nil, err
			}
			if r.Failures == 0 {
				continue // expired or unblocked
			}
			r.Blocked = r.Failures >= int64(r.Limit)
			out = append(out, r)
		}
	}
	return out, nil
}

// record decodes an index entry into a record (without its count) and the
// key of its counter.
func (a *AuthThrottle) record(v string) (AuthRecord, string, bool) {
	kind, rest, _ := strings.Cut(v, "\x00")
	addr, user, ok := strings.Cut(rest, "\x00")
	ip, err := netip.ParseAddr(addr)
	if !ok || err != nil {
		return AuthRecord{}, "", false
	}
	switch kind {
	case AuthKindLogin:
		return AuthRecord{Kind: kind, Address: addr, User: user, Limit: a.lim.MaxFailures}, loginKey(ip, user), true
	case AuthKindUser:
		return AuthRecord{Kind: kind, User: user, Limit: a.lim.MaxUserFailures}, userKey(user), true
	case AuthKindAddress:
		return AuthRecord{Kind: kind, Address: addr, Limit: a.lim.MaxAddressFailures}, addrKey(ip), true
	}
	return AuthRecord{}, "", false
}

// Unblock forgets the failures of target, a client address (its own
// counter and its logins') or else a user name (its own counter and its
// logins from every address), and returns how many counters it removed.
func (a *AuthThrottle) Unblock(ctx context.Context, target string) (int, error) {
	if target == "" {
		return 0, fmt.Errorf("unblock: name a client address or a user")
	}
	recs, err := a.Status(ctx)
	if err != nil {
		return 0, err
	}
	ip, ipErr := netip.ParseAddr(target)
	var keys []string
	if ipErr == nil {
		ip = ip.Unmap()
		keys = append(keys, addrKey(ip))
		for _, r := range recs {
			if r.Kind == AuthKindLogin && r.Address == ip.String() {
				keys = append(keys, loginKey(ip, r.User))
			}
		}
	} else {
		keys = append(keys, userKey(target))
		for _, r := range recs {
			if r.Kind == AuthKindLogin && r.User == target {
				keys = append(keys, loginKey(netip.MustParseAddr(r.Address), r.User))
			}
		}
	}
	removed := 0
	for _, k := range keys {
		n, err := a.count(ctx, k)
		if err != nil {
			return removed, err
		}
		if n == 0 {
			continue
		}
		if err := a.kv.Del(ctx, k); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
