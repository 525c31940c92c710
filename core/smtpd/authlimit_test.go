package smtpd

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
)

func TestAuthThrottleCounts(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	kv := filter.NewMemKV(clock)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	a := NewAuthThrottle(kv, AuthLimits{Delay: time.Second, MaxDelay: 5 * time.Second,
		MaxFailures: 4, MaxUserFailures: 6, MaxAddressFailures: 8, Window: time.Minute}, trusted)
	a.now = clock
	ip, other, office := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("10.1.1.1")

	// One login: exponential delay, blocked at the fourth failure.
	for i, want := range []struct {
		delay   time.Duration
		blocked string
	}{{time.Second, ""}, {2 * time.Second, ""}, {4 * time.Second, ""}, {5 * time.Second, AuthKindLogin}} {
		n, d, b, err := a.Fail(ctx, ip, "alice")
		if err != nil || n != int64(i+1) || d != want.delay || b != want.blocked {
			t.Errorf("failure %d: n=%d delay=%v blocked=%q err=%v, want delay=%v blocked=%q", i+1, n, d, b, err, want.delay, want.blocked)
		}
	}
	blocked := func(ip netip.Addr, user, want string) {
		t.Helper()
		if got, err := a.Blocked(ctx, ip, user); got != want || err != nil {
			t.Errorf("Blocked(%s, %s) = %q, %v; want %q", ip, user, got, err, want)
		}
	}
	blocked(ip, "alice", AuthKindLogin)
	blocked(ip, "bob", "")      // another user from the same address
	blocked(other, "alice", "") // alice from elsewhere: 4 of 6
	// Two more for alice from elsewhere reach the user limit.
	a.Fail(ctx, other, "alice")
	if _, _, b, _ := a.Fail(ctx, other, "alice"); b != AuthKindUser {
		t.Errorf("sixth failure of alice blocked %q, want %q", b, AuthKindUser)
	}
	blocked(netip.MustParseAddr("192.0.2.3"), "alice", AuthKindUser)
	blocked(ip, "bob", "")
	// Many users from one address reach the address limit.
	for _, u := range []string{"u1", "u2", "u3"} {
		a.Fail(ctx, ip, u)
	}
	if _, _, b, _ := a.Fail(ctx, ip, "u4"); b != AuthKindAddress {
		t.Errorf("eighth failure from %s blocked %q, want %q", ip, b, AuthKindAddress)
	}
	if ok, _ := a.AddressBlocked(ctx, ip); !ok {
		t.Error("address not blocked after its limit")
	}
	blocked(ip, "bob", AuthKindAddress)

	// Trusted networks are exempt.
	for range 10 {
		if _, d, b, _ := a.Fail(ctx, office, "carol"); d != 0 || b != "" {
			t.Fatalf("trusted address throttled: delay %v blocked %q", d, b)
		}
	}
	blocked(office, "alice", "")

	recs, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range recs {
		got[r.Kind+" "+r.Address+" "+r.User] = r.Failures
	}
	for k, n := range map[string]int64{"login 192.0.2.1 alice": 4, "user  alice": 6, "address 192.0.2.1 ": 8, "login 192.0.2.2 alice": 2} {
		if got[k] != n {
			t.Errorf("status %q = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if _, ok := got["user  carol"]; ok {
		t.Error("a trusted address's failures were counted")
	}

	// Unblocking the address lifts it and its logins, not alice's own count.
	if n, err := a.Unblock(ctx, "192.0.2.1"); n != 6 || err != nil { // address, alice, u1-u4
		t.Errorf("Unblock(address) = %d, %v; want 6", n, err)
	}
	blocked(ip, "bob", "")
	blocked(ip, "alice", AuthKindUser)
	if n, err := a.Unblock(ctx, "alice"); n != 2 || err != nil { // user, login from other
		t.Errorf("Unblock(user) = %d, %v; want 2", n, err)
	}
	blocked(ip, "alice", "")

	// A success forgets the login's count; the window ends the others.
	a.Fail(ctx, other, "dave")
	a.Succeeded(ctx, other, "dave")
	if n, _, _, _ := a.Fail(ctx, other, "dave"); n != 1 {
		t.Errorf("count after a success = %d, want 1", n)
	}
	a.Fail(ctx, other, "erin")
	now = now.Add(2 * time.Minute)
	if n, _, _, _ := a.Fail(ctx, other, "erin"); n != 1 {
		t.Errorf("count after the window = %d, want 1", n)
	}
	if recs, _ := a.Status(ctx); len(recs) != 3 { // erin's login, user, address
		t.Errorf("status after the window lists %v", recs)
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
