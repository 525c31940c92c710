package smtpd

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestAuthLimiter(t *testing.T) {
	a := newAuthLimiter(AuthLimits{Delay: time.Second, MaxDelay: 3 * time.Second, MaxFailures: 4, Window: time.Minute})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	ip, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i, want := range []struct {
		delay   time.Duration
		blocked bool
	}{{time.Second, false}, {2 * time.Second, false}, {3 * time.Second, false}, {3 * time.Second, true}} {
		n, d, b := a.fail(ip)
		if n != i+1 || d != want.delay || b != want.blocked {
			t.Errorf("failure %d: got n=%d delay=%v blocked=%v, want delay=%v blocked=%v", i+1, n, d, b, want.delay, want.blocked)
		}
	}
	if !a.blocked(ip) || a.blocked(other) {
		t.Error("blocking is not per IP")
	}
	now = now.Add(2 * time.Minute)
	if a.blocked(ip) {
		t.Error("still blocked after the window")
	}
	if n, _, _ := a.fail(ip); n != 1 {
		t.Errorf("count after the window = %d, want 1", n)
	}
}

func TestLoginServer(t *testing.T) {
	check := func(user, pw string) error {
		if user == "u" && pw == "p" {
			return nil
		}
		return errors.New("bad")
	}
	for _, tc := range []struct {
		name  string
		steps [][]byte // client responses; nil first means no initial response
		ok    bool
	}{
		{"challenges", [][]byte{nil, []byte("u"), []byte("p")}, true},
		{"initial response", [][]byte{[]byte("u"), []byte("p")}, true},
		{"wrong", [][]byte{nil, []byte("u"), []byte("x")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &loginServer{check: check}
			var err error
			done := false
			for i, r := range tc.steps {
				var ch []byte
				ch, done, err = s.Next(r)
				if !done && string(ch) != "Username:" && string(ch) != "Password:" {
					t.Errorf("step %d challenge %q", i, ch)
				}
			}
			if !done || (err == nil) != tc.ok {
				t.Errorf("done=%v err=%v, want ok=%v", done, err, tc.ok)
			}
		})
	}
}
