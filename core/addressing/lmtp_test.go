package addressing

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/internal/dovecot"
	"github.com/sluice-mta/sluice/core/testclock"
)

// TestVerifyLMTPDovecot asks a real Dovecot (passwd-file userdb: alice,
// bob, postmaster) at RCPT.
func TestVerifyLMTPDovecot(t *testing.T) {
	dc := dovecot.Start(t)
	clock := testclock.New(time.Now())
	r := newResolver(t, Options{
		LocalDomains: []string{"example.com"},
		Delimiter:    "+",
		Verify:       VerifyLMTP,
		Local:        Transport{Kind: LMTP, LMTP: dc.Addr},
		LMTP:         LMTPOptions{Now: clock.Now},
	})
	ctx := context.Background()

	res, err := r.Resolve(ctx, "alice+news@example.com")
	if err != nil || res.Kind != Mailbox || tgt(res.Targets[0]) != "alice@example.com (lmtp "+dc.Addr+")" {
		t.Fatalf("alice+news: %s, %v", res.Summary(), err)
	}
	// Dovecot's own refusal of an unknown user becomes ours.
	_, err = r.Resolve(ctx, "nobody@example.com")
	var ref *Refusal
	if !errors.As(err, &ref) || !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("nobody: %v, want a refusal", err)
	}
	if ref.Reply.Code != 550 || ref.Reply.Enhanced.String() != "5.1.1" || !strings.Contains(ref.Reply.Text, "nobody@example.com") {
		t.Errorf("nobody: reply %q, want Dovecot's 550 5.1.1", ref.Reply.String())
	}
	if err := ref.Reply.Check(); err != nil {
		t.Errorf("Dovecot's reply does not check: %v", err)
	}
	t.Logf("Dovecot says: %s", ref.Reply.String())

	// Answers are cached, both ways; one pooled connection served all.
	dials, checks := r.lmtp.stats()
	for range 3 {
		known(r, "alice@example.com")
		known(r, "nobody@example.com")
	}
	if d, c := r.lmtp.stats(); c != checks || d != dials {
		t.Errorf("cached answers asked again: %d→%d transactions, %d→%d dials", checks, c, dials, d)
	}
	known(r, "bob@example.com")
	known(r, "carol@example.com")
	if d, c := r.lmtp.stats(); d != 1 || c != checks+2 {
		t.Errorf("after two new addresses: %d dials, %d transactions; want 1 dial, %d", d, c, checks+2)
	}
	// Past the negative TTL Dovecot is asked again.
	clock.Add(DefaultLMTPNegativeTTL + time.Second)
	known(r, "nobody@example.com")
	if _, c := r.lmtp.stats(); c != checks+3 {
		t.Errorf("expired negative answer not asked again: %d transactions", c)
	}

	// A pooled connection that went away is replaced, not an error.
	// (The clock moved past the idle timeout above, so that one was
	// redialled already.)
	before, _ := r.lmtp.stats()
	r.lmtp.mu.Lock()
	for _, lc := range r.lmtp.pools[dc.Addr] {
		lc.conn.Close()
	}
	r.lmtp.mu.Unlock()
	if !known(r, "postmaster@example.com") {
		t.Error("postmaster refused after the pooled connection broke")
	}
	if d, _ := r.lmtp.stats(); d != before+1 {
		t.Errorf("%d dials after a stale connection, want %d", d, before+1)
	}
}

// TestVerifyLMTPAliases: alias targets are verified too, and the
// catch-all comes after the LMTP server's "no".
func TestVerifyLMTPAliases(t *testing.T) {
	dc := dovecot.Start(t)
	dir := t.TempDir()
	aliases := dir + "/aliases"
	writeFile(t, aliases, "team@example.com alice@example.com, nobody@example.com, friend@remote.example\n@catch.example bob@example.com\n")
	r := newResolver(t, Options{
		LocalDomains: []string{"example.com", "catch.example"},
		Files:        Files{Aliases: aliases},
		Verify:       VerifyLMTP,
		Local:        Transport{Kind: LMTP, LMTP: dc.Addr},
	})
	ctx := context.Background()
	res, err := r.Resolve(ctx, "team@example.com")
	if err != nil || strings.Join(res.Addrs(), " ") != "alice@example.com friend@remote.example" || len(res.Problems) != 1 {
		t.Errorf("team: %s %q, %v", res.Summary(), res.Problems, err)
	}
	// alice exists at catch.example too (Dovecot ignores the domain);
	// carol does not: the catch-all takes her.
	res, err = r.Resolve(ctx, "alice@catch.example")
	if err != nil || res.Kind != Mailbox {
		t.Errorf("alice@catch.example: %s, %v", res.Summary(), err)
	}
	res, err = r.Resolve(ctx, "carol@catch.example")
	if err != nil || res.Kind != Alias || res.Addrs()[0] != "bob@example.com" {
		t.Errorf("carol@catch.example: %s, %v", res.Summary(), err)
	}
}

// TestVerifyLMTPTempFail: an LMTP server that is down, or answers 4xx,
// gets the client 451 4.3.0, never a 250; and nothing is cached.
func TestVerifyLMTPTempFail(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	var answer atomic.Int32
	answer.Store(451)
	fake := startFakeLMTP(t, func(to string) error {
		if code := int(answer.Load()); code != 250 {
			return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 3, 0}, Message: "userdb lookup failed"}
		}
		return nil
	})
	for name, addr := range map[string]string{"down": down, "4xx": fake} {
		t.Run(name, func(t *testing.T) {
			r := newResolver(t, Options{
				LocalDomains: []string{"example.com"},
				Verify:       VerifyLMTP,
				Local:        Transport{Kind: LMTP, LMTP: addr},
				LMTP:         LMTPOptions{Timeout: 2 * time.Second},
			})
			_, err := r.Resolve(context.Background(), "alice@example.com")
			var ref *Refusal
			if !errors.As(err, &ref) || !errors.Is(err, ErrTempFail) {
				t.Fatalf("Resolve: %v, want a temporary refusal", err)
			}
			if got := ref.Reply.String(); got != "451 4.3.0 <alice@example.com>: Recipient address rejected: temporary failure verifying the mailbox, try again later" {
				t.Errorf("reply %q", got)
			}
			if name == "4xx" {
				answer.Store(250)
				if !known(r, "alice@example.com") {
					t.Error("after the server recovered, alice is still refused (a temporary failure was cached)")
				}
			}
		})
	}
}

// TestVerifyLMTPCancel: a cancelled RCPT does not wait for a hung server.
func TestVerifyLMTPCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts, never greets
		}
	}()
	r := newResolver(t, Options{LocalDomains: []string{"example.com"}, Verify: VerifyLMTP, Local: Transport{Kind: LMTP, LMTP: ln.Addr().String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = r.Resolve(ctx, "alice@example.com")
	if !errors.Is(err, ErrTempFail) || time.Since(start) > 2*time.Second {
		t.Errorf("Resolve against a hung server: %v after %v", err, time.Since(start))
	}
}

// startFakeLMTP runs a go-smtp LMTP server whose RCPT answer is rcpt's.
func startFakeLMTP(t *testing.T, rcpt func(to string) error) string {
	t.Helper()
	s := smtp.NewServer(fakeBackend{rcpt: rcpt})
	s.LMTP = true
	s.Domain = "fake.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

type fakeBackend struct{ rcpt func(string) error }

func (b fakeBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &fakeSession{b}, nil }

type fakeSession struct{ b fakeBackend }

func (s *fakeSession) Reset()                                    {}
func (s *fakeSession) Logout() error                             { return nil }
func (s *fakeSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error { return s.b.rcpt(to) }
func (s *fakeSession) Data(r io.Reader) error                    { _, err := io.Copy(io.Discard, r); return err }
