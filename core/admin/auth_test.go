package admin

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/smtpd"
)

// TestAuthRoundTrip: status and unblock go through the socket to a real
// throttle (in memory); a server without one says so.
func TestAuthRoundTrip(t *testing.T) {
	ctx := context.Background()
	th := smtpd.NewAuthThrottle(nil, smtpd.AuthLimits{MaxFailures: 2}, nil)
	ip := netipAddr(t, "192.0.2.7")
	for range 2 {
		if _, _, _, err := th.Fail(ctx, ip, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	cl := serveBackend(t, Backend{Auth: th})
	recs, err := cl.AuthStatus(ctx)
	if err != nil || len(recs) != 3 {
		t.Fatalf("AuthStatus = %v, %v; want 3 records", recs, err)
	}
	var b strings.Builder
	if err := WriteAuthStatus(&b, recs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "login    192.0.2.7  alice  2/2       blocked\n") {
		t.Errorf("status table:\n%s", b.String())
	}
	if n, err := cl.AuthUnblock(ctx, "alice"); n != 2 || err != nil {
		t.Errorf("AuthUnblock(alice) = %d, %v; want 2", n, err)
	}
	if _, err := cl.AuthUnblock(ctx, ""); err == nil || !strings.Contains(err.Error(), "name a client address or a user") {
		t.Errorf("AuthUnblock(\"\") = %v", err)
	}
	if _, err := serveBackend(t, Backend{}).AuthStatus(ctx); err == nil || !strings.Contains(err.Error(), "no AUTH throttle") {
		t.Errorf("AuthStatus without a throttle = %v", err)
	}
}

// TestWriteAuthStatusQuotes: a user name is what a client sent; one with
// spaces or control characters is printed quoted.
func TestWriteAuthStatusQuotes(t *testing.T) {
	var b strings.Builder
	WriteAuthStatus(&b, []smtpd.AuthRecord{{Kind: smtpd.AuthKindUser, User: "evil\x1b[2J user", Failures: 1, Limit: 5}})
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), `"evil\x1b[2J user"`) {
		t.Errorf("printed %q", b.String())
	}
	b.Reset()
	WriteAuthStatus(&b, nil)
	if b.String() != "no failed logins counted\n" {
		t.Errorf("empty status: %q", b.String())
	}
}

func netipAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
