package smtpd

import (
	"net/netip"
	"sync"
	"time"
)

// AuthLimits throttle failed logins per client IP. Zero values take the
// defaults below.
type AuthLimits struct {
	// Delay is added before the 535 reply per failure so far: the n-th
	// failure waits n × Delay, up to MaxDelay.
	Delay, MaxDelay time.Duration
	// MaxFailures within Window get 421 4.7.0 and the connection closed;
	// further AUTH from that IP are refused until the window has passed.
	MaxFailures int
	Window      time.Duration
}

// Defaults for zero values in AuthLimits.
const (
	DefaultAuthDelay       = time.Second
	DefaultAuthMaxDelay    = 5 * time.Second
	DefaultAuthMaxFailures = 5
	DefaultAuthWindow      = 15 * time.Minute
)

// authLimiter counts failed logins per client IP.
type authLimiter struct {
	lim AuthLimits
	now func() time.Time

	mu    sync.Mutex
	fails map[netip.Addr]*authFails
}

type authFails struct {
	n     int
	first time.Time
}

func newAuthLimiter(l AuthLimits) *authLimiter {
	if l.Delay == 0 {
		l.Delay = DefaultAuthDelay
	}
	if l.MaxDelay == 0 {
		l.MaxDelay = DefaultAuthMaxDelay
	}
	if l.MaxFailures == 0 {
		l.MaxFailures = DefaultAuthMaxFailures
	}
	if l.Window == 0 {
		l.Window = DefaultAuthWindow
	}
	return &authLimiter{lim: l, now: time.Now, fails: map[netip.Addr]*authFails{}}
}

// entry returns ip's current record, dropping an expired one; nil if none.
func (a *authLimiter) entry(ip netip.Addr, now time.Time) *authFails {
	f := a.fails[ip]
	if f != nil && now.Sub(f.first) > a.lim.Window {
		delete(a.fails, ip)
		return nil
	}
	return f
}

// blocked reports whether ip has used up its failures.
func (a *authLimiter) blocked(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.entry(ip, a.now())
	return f != nil && f.n >= a.lim.MaxFailures
}

// fail records a failure from ip and returns the failures so far, how
// long to wait before answering, and whether ip is now blocked.
func (a *authLimiter) fail(ip netip.Addr) (n int, delay time.Duration, blocked bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	f := a.entry(ip, now)
	if f == nil {
		if len(a.fails) >= 10000 {
			a.prune(now)
		}
		f = &authFails{first: now}
		a.fails[ip] = f
	}
	f.n++
	delay = min(time.Duration(f.n)*a.lim.Delay, a.lim.MaxDelay)
	return f.n, delay, f.n >= a.lim.MaxFailures
}

// prune drops expired records so the map stays bounded.
func (a *authLimiter) prune(now time.Time) {
	for ip := range a.fails {
		a.entry(ip, now)
	}
}
