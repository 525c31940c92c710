package server_test

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/users"
)

// authThrottleServer runs a submission service (AUTH without TLS, on
// loopback) with small AUTH limits; 127.0.0.1 is the only trusted network.
// adjust changes the configuration before the server starts.
func authThrottleServer(t *testing.T, adjust ...func(*config.Config)) (*servertest.Server, string) {
	t.Helper()
	cfg := servertest.Config(t)
	cfg.Auth = config.Auth{}
	cfg.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.Submission.Listen = []string{"127.0.0.1:0"}
	cfg.Submission.AllowInsecureAuth = true
	cfg.Submission.AuthFailDelay = config.Duration(10 * time.Millisecond)
	cfg.Submission.AuthFailMaxDelay = config.Duration(50 * time.Millisecond)
	cfg.Submission.AuthMaxFailures = 3
	cfg.Submission.AuthMaxUserFailures = 5
	cfg.Submission.AuthMaxAddressFailures = 10
	for user, pw := range map[string]string{"alice@localhost": "alice-pw", "bob@localhost": "bob-pw", "carol@localhost": "carol-pw"} {
		if err := users.Set(cfg.Submission.UsersFile, user, pw); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range adjust {
		f(cfg)
	}
	s := servertest.Start(t, cfg)
	for _, svc := range s.Services() {
		if svc.Name == "submission" {
			return s, svc.Addrs[0].String()
		}
	}
	t.Fatal("no submission service")
	return nil, ""
}

// login logs in with AUTH PLAIN from the loopback address from and
// returns the reply code: 235, or the refusal's.
func login(t *testing.T, addr, from, user, password string) int {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		if code := servertest.Code(err); code != 0 {
			return code
		}
		t.Fatalf("AUTH from %s: %v", from, err)
	}
	_ = c.Quit()
	return 235
}

// TestAuthThrottleShared: an attacker failing for alice from a shared
// address blocks alice there, not bob; alice's failures from another
// address add up to the per-user limit, which blocks her everywhere;
// `sluice auth status` lists the counts and `sluice auth unblock` lifts
// them; the trusted network is exempt.
func TestAuthThrottleShared(t *testing.T) {
	s, addr := authThrottleServer(t)
	sock := "--socket=" + s.Config.Admin.Socket
	steps := []struct {
		from, user, password string
		want                 int
	}{
		{"127.0.0.5", "alice@localhost", "guess1", 535},
		{"127.0.0.5", "alice@localhost", "guess2", 535},
		{"127.0.0.5", "alice@localhost", "guess3", 421}, // alice's third from .5
		{"127.0.0.5", "bob@localhost", "bob-pw", 235},   // bob at the same address
		{"127.0.0.5", "alice@localhost", "alice-pw", 421},
		{"127.0.0.6", "alice@localhost", "guess4", 535},
		{"127.0.0.6", "alice@localhost", "guess5", 421},   // alice's fifth anywhere
		{"127.0.0.7", "alice@localhost", "alice-pw", 421}, // blocked everywhere
		{"127.0.0.7", "bob@localhost", "bob-pw", 235},
	}
	for i, st := range steps {
		if got := login(t, addr, st.from, st.user, st.password); got != st.want {
			t.Fatalf("step %d: %s from %s with %q: %d, want %d", i+1, st.user, st.from, st.password, got, st.want)
		}
	}
	status := mustCLI(t, "auth", "status", sock)
	for _, want := range []string{
		"login    127.0.0.5  alice@localhost  3/3       blocked",
		"login    127.0.0.6  alice@localhost  2/3       counting",
		"user     -          alice@localhost  5/5       blocked",
		"address  127.0.0.5  -                3/10      counting",
	} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("auth status lacks %q:\n%s", want, status)
		}
	}

	if out := mustCLI(t, "auth", "unblock", sock, "alice@localhost"); !strings.Contains(out, "alice@localhost: 3 failure count(s) removed") {
		t.Errorf("unblock alice: %q", out)
	}
	if got := login(t, addr, "127.0.0.5", "alice@localhost", "alice-pw"); got != 235 {
		t.Errorf("alice after unblock: %d, want 235", got)
	}
	if out := mustCLI(t, "auth", "unblock", sock, "127.0.0.5"); !strings.Contains(out, "127.0.0.5: 1 failure count(s) removed") {
		t.Errorf("unblock 127.0.0.5: %q", out)
	}
	if out := mustCLI(t, "auth", "status", sock); strings.Contains(out, "alice") || strings.Contains(out, "127.0.0.5") {
		t.Errorf("status after unblocking:\n%s", out)
	}

	// The trusted network is exempt: never blocked, nothing counted.
	for i := range 6 {
		if got := login(t, addr, "127.0.0.1", "carol@localhost", "nope"); got != 535 {
			t.Fatalf("trusted failure %d: %d, want 535", i+1, got)
		}
	}
	if got := login(t, addr, "127.0.0.1", "carol@localhost", "carol-pw"); got != 235 {
		t.Errorf("carol from the trusted network: %d, want 235", got)
	}
	if out := mustCLI(t, "auth", "status", sock); strings.Contains(out, "carol") {
		t.Errorf("a trusted address's failures were counted:\n%s", out)
	}
}

// smtplibLogins is a Python smtplib client: each argument is one login
// (user:password) on a connection of its own from 127.0.0.8; it prints the
// outcome of each (smtplib tries PLAIN, then LOGIN, with the same
// credentials).
const smtplibLogins = `
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
for arg in sys.argv[2:]:
    user, password = arg.split(":", 1)
    s = smtplib.SMTP(host, int(port), source_address=("127.0.0.8", 0), timeout=10)
    try:
        s.ehlo("client.test")
        s.login(user, password)
        print("ok")
    except smtplib.SMTPAuthenticationError as e:
        print(e.smtp_code)
    except smtplib.SMTPServerDisconnected:
        print("disconnected")
    finally:
        try:
            s.close()
        except Exception:
            pass
`

// TestAuthThrottleSmtplib: smtplib's login tries PLAIN and then LOGIN
// with the same password; that is one failed attempt, not two, so two
// wrong logins leave carol short of the limit of three, and her right
// password is taken; a third wrong one is blocked.
func TestAuthThrottleSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	s, addr := authThrottleServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", smtplibLogins, addr,
		"carol@localhost:wrong1", "carol@localhost:wrong2", "carol@localhost:carol-pw",
		"carol@localhost:wrong3", "carol@localhost:wrong4", "carol@localhost:wrong5", "carol@localhost:carol-pw").CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	// The success forgets the login's count: wrong3 and wrong4 are 535,
	// wrong5 the third: 421 to PLAIN, and smtplib finds the connection
	// closed when it tries LOGIN; so is the right password after it (carol
	// has failed five times: her user limit).
	if got, want := strings.Fields(string(out)), []string{"535", "535", "ok", "535", "535", "disconnected", "disconnected"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("smtplib logins: %v, want %v", got, want)
	}
	var counted, repeats, refused int
	for _, l := range s.Logs() {
		if strings.Contains(l, `msg="auth refused: too many failures"`) {
			refused++
		}
		if strings.Contains(l, `msg="auth failed"`) {
			if strings.Contains(l, "repeat=true") {
				repeats++
			} else {
				counted++
			}
		}
	}
	if counted != 5 || repeats != 4 || refused != 1 {
		t.Errorf("logged %d counted failures, %d repeats and %d refusals; want 5, 4 and 1", counted, repeats, refused)
	}
}
