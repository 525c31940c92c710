package addressing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/addressing/srs"
	"github.com/sluice-mta/sluice/core/mail"
)

// fixture is the Options of testdata/resolve: local domains example.com
// and localhost, mailboxes, aliases, "+" as delimiter, Maildir delivery.
func fixture() Options {
	return Options{
		LocalDomains: []string{"example.com", "localhost"},
		Files:        Files{Mailboxes: "testdata/resolve/mailboxes", Aliases: "testdata/resolve/aliases"},
		Delimiter:    "+",
	}
}

func newResolver(t testing.TB, o Options) *Resolver {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// tgt writes a Target as "addr (transport)" or "addr (forward)".
func tgt(t Target) string {
	if t.Forward {
		return t.Addr + " (forward)"
	}
	return t.Addr + " (" + t.Transport.String() + ")"
}

func TestResolve(t *testing.T) {
	r := newResolver(t, fixture())
	tests := []struct {
		addr     string
		kind     Kind
		targets  []string
		problems int
	}{
		{"alice@example.com", Mailbox, []string{"alice@example.com (maildir)"}, 0},
		{"Alice@EXAMPLE.com.", Mailbox, []string{"Alice@example.com (maildir)"}, 0},
		{"alice+tag@example.com", Mailbox, []string{"alice@example.com (maildir)"}, 0},
		{"alice+a+b@example.com", Mailbox, []string{"alice@example.com (maildir)"}, 0},
		{"team@example.com", Alias, []string{"alice@example.com (maildir)", "bob@example.com (maildir)", "friend@remote.example (forward)"}, 0},
		{"team+news@example.com", Alias, []string{"alice@example.com (maildir)", "bob@example.com (maildir)", "friend@remote.example (forward)"}, 0},
		{"list@example.com", Alias, []string{"alice@example.com (maildir)", "bob@example.com (maildir)", "friend@remote.example (forward)", "carol@example.com (maildir)"}, 0},
		{"alice-both@example.com", Alias, []string{"alice@example.com (maildir)", "alice@remote.example (forward)"}, 0},
		{"copy@example.com", Alias, []string{"x@remote.example (forward)"}, 1},
		{"half@example.com", Alias, []string{"bob@example.com (maildir)"}, 1},
		{"anyone@catch.example", Alias, []string{"carol@example.com (maildir)"}, 0},
		{"alice@alias.example", Alias, []string{"alice@example.com (maildir)"}, 0},
		{"alice+x@alias.example", Alias, []string{"alice@example.com (maildir)"}, 0},
		{"bob@alias.example", Alias, []string{"dave@other.example (maildir)"}, 0},
		{"dave@other.example", Mailbox, []string{"dave@other.example (maildir)"}, 0},
		{"nobody@other.example", Alias, []string{"carol@example.com (maildir)"}, 0},
		{"postmaster@localhost", Alias, []string{"alice@example.com (maildir)"}, 0},
		{"postmaster@example.com", Alias, []string{"alice@example.com (maildir)"}, 0},
		{"postmaster", Alias, []string{"alice@example.com (maildir)"}, 0},
		{"abuse@example.com", Alias, []string{"bob@example.com (maildir)"}, 0},
		{"someone@remote.example", Remote, []string{"someone@remote.example (relay)"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			res, err := r.Resolve(context.Background(), tt.addr)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			var got []string
			for _, x := range res.Targets {
				got = append(got, tgt(x))
			}
			if res.Kind != tt.kind || !slices.Equal(got, tt.targets) {
				t.Errorf("%s %q, want %s %q", res.Kind, got, tt.kind, tt.targets)
			}
			if len(res.Problems) != tt.problems {
				t.Errorf("problems %q, want %d", res.Problems, tt.problems)
			}
			if res.Original != tt.addr {
				t.Errorf("Original = %q", res.Original)
			}
		})
	}
}

// TestResolveRefused: unknown users, a loop, an alias to nothing.
func TestResolveRefused(t *testing.T) {
	r := newResolver(t, fixture())
	tests := []struct {
		addr  string
		reply string
		cause error
	}{
		{"nobody@example.com", "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table", ErrUnknownUser},
		{"nobody+tag@example.com", "550 5.1.1 <nobody+tag@example.com>: Recipient address rejected: User unknown in virtual mailbox table", ErrUnknownUser},
		{"nobody@alias.example", "550 5.1.1 <nobody@alias.example>: Recipient address rejected: User unknown in virtual mailbox table", ErrUnknownUser},
		{"ghost@example.com", "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown in virtual mailbox table", ErrUnknownUser},
		{"loop2@example.com", "550 5.4.6 <loop2@example.com>: Recipient address rejected: mail forwarding loop", nil},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			res, err := r.Resolve(context.Background(), tt.addr)
			var ref *Refusal
			if !errors.As(err, &ref) {
				t.Fatalf("Resolve = %s, %v; want a refusal", res.Summary(), err)
			}
			if ref.Reply.String() != tt.reply {
				t.Errorf("reply %q, want %q", ref.Reply.String(), tt.reply)
			}
			if err := ref.Reply.Check(); err != nil {
				t.Errorf("reply does not check: %v", err)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("cause %v, want %v", err, tt.cause)
			}
			if res.Kind != Unknown || len(res.Targets) != 0 {
				t.Errorf("refused but %s with %d targets", res.Kind, len(res.Targets))
			}
		})
	}
	// The loop names its chain.
	_, err := r.Resolve(context.Background(), "loop2@example.com")
	var loop *LoopError
	if !errors.As(err, &loop) {
		t.Fatalf("loop error %v is not a *LoopError", err)
	}
	want := []string{"loop2@example.com", "loop3@example.com", "loop1@example.com", "loop2@example.com"}
	if !slices.Equal(loop.Chain, want) {
		t.Errorf("chain %q, want %q", loop.Chain, want)
	}
	if !strings.Contains(err.Error(), "alias loop: loop2@example.com -> loop3@example.com -> loop1@example.com -> loop2@example.com") {
		t.Errorf("error %q does not show the loop", err)
	}
}

// TestResolveOptions: delimiter off, verify none, transports, limits.
func TestResolveOptions(t *testing.T) {
	ctx := context.Background()
	t.Run("no delimiter", func(t *testing.T) {
		o := fixture()
		o.Delimiter = ""
		r := newResolver(t, o)
		if _, err := r.Resolve(ctx, "alice+tag@example.com"); !errors.Is(err, ErrUnknownUser) {
			t.Errorf("alice+tag without a delimiter: %v, want unknown", err)
		}
	})
	t.Run("two delimiters", func(t *testing.T) {
		o := fixture()
		o.Delimiter = "+-"
		r := newResolver(t, o)
		res, err := r.Resolve(ctx, "bob-lists@example.com")
		if err != nil || res.Addrs()[0] != "bob@example.com" {
			t.Errorf("bob-lists: %v %v", res.Addrs(), err)
		}
		// An alias with the delimiter in its name still matches whole.
		res, err = r.Resolve(ctx, "alice-both@example.com")
		if err != nil || len(res.Targets) != 2 {
			t.Errorf("alice-both: %v %v", res.Addrs(), err)
		}
	})
	t.Run("verify none", func(t *testing.T) {
		r := newResolver(t, Options{LocalDomains: []string{"localhost"}, Delimiter: "+"})
		if r.Verify() != VerifyNone {
			t.Errorf("verify %q with no maps, want none", r.Verify())
		}
		res, err := r.Resolve(ctx, "anyone+x@localhost")
		if err != nil || res.Kind != Mailbox || res.Addrs()[0] != "anyone@localhost" {
			t.Errorf("anyone+x@localhost: %s %v", res.Summary(), err)
		}
	})
	t.Run("maps by default", func(t *testing.T) {
		r := newResolver(t, fixture())
		if r.Verify() != VerifyMaps {
			t.Errorf("verify %q with maps, want maps", r.Verify())
		}
	})
	t.Run("transports", func(t *testing.T) {
		o := fixture()
		o.Local = Transport{Kind: LMTP, LMTP: "127.0.0.1:24"}
		o.Transports = map[string]string{"Other.Example": "unix:/run/b/lmtp", "extra.example": "127.0.0.1:2424"}
		r := newResolver(t, o)
		res, err := r.Resolve(ctx, "bob@alias.example")
		if err != nil || tgt(res.Targets[0]) != "dave@other.example (lmtp unix:/run/b/lmtp)" {
			t.Errorf("bob@alias.example: %s %v", res.Summary(), err)
		}
		if got := r.Transport("EXAMPLE.com"); got != (Transport{Kind: LMTP, LMTP: "127.0.0.1:24"}) {
			t.Errorf("Transport(example.com) = %v", got)
		}
		if got := r.Transport("remote.example"); got.Kind != Relay {
			t.Errorf("Transport(remote.example) = %v", got)
		}
		if !r.IsLocal("extra.example") {
			t.Error("a domain with a transport is not local")
		}
	})
	t.Run("depth", func(t *testing.T) {
		dir := t.TempDir()
		var b strings.Builder
		for i := range 30 {
			fmt.Fprintf(&b, "d%d@example.com d%d@example.com\n", i, i+1)
		}
		fmt.Fprintf(&b, "d30@example.com alice@example.com\n")
		writeFile(t, filepath.Join(dir, "aliases"), b.String())
		o := fixture()
		o.Files.Aliases = filepath.Join(dir, "aliases")
		o.MaxDepth = 10
		r := newResolver(t, o)
		_, err := r.Resolve(ctx, "d0@example.com")
		var ref *Refusal
		if !errors.Is(err, ErrTooDeep) || !errors.As(err, &ref) || ref.Reply.String() != "451 4.3.0 <d0@example.com>: Recipient address rejected: alias expansion failed, try again later" {
			t.Errorf("d0: %v", err)
		}
		if res, err := r.Resolve(ctx, "d25@example.com"); err != nil || res.Addrs()[0] != "alice@example.com" {
			t.Errorf("d25 (six levels): %v %v", res.Addrs(), err)
		}
	})
	t.Run("too many", func(t *testing.T) {
		o := fixture()
		o.MaxTargets = 2
		r := newResolver(t, o)
		if _, err := r.Resolve(ctx, "team@example.com"); !errors.Is(err, ErrTooMany) {
			t.Errorf("team with MaxTargets 2: %v", err)
		}
	})
	t.Run("recipients", func(t *testing.T) {
		r := newResolver(t, fixture())
		res, err := r.Resolve(ctx, "Team@example.com")
		if err != nil {
			t.Fatal(err)
		}
		rc := res.Recipients([]string{"FAILURE"}, "")
		if len(rc) != 3 || rc[2].Addr != "friend@remote.example" || !rc[2].Forward || rc[0].Forward || rc[0].ORCPT != "rfc822;Team@example.com" || rc[1].Notify[0] != "FAILURE" {
			t.Errorf("Recipients = %+v", rc)
		}
		if rc := res.Recipients(nil, "rfc822;given@x"); rc[0].ORCPT != "rfc822;given@x" {
			t.Errorf("the client's ORCPT is not kept: %+v", rc[0])
		}
		// A mailbox that is the address as given needs no ORCPT.
		plain, _ := r.Resolve(ctx, "Alice@example.com")
		if rc := plain.Recipients(nil, ""); len(rc) != 1 || rc[0].ORCPT != "" || rc[0].Addr != "Alice@example.com" {
			t.Errorf("Recipients of a plain mailbox = %+v", rc)
		}
		detail, _ := r.Resolve(ctx, "alice+tag@example.com")
		if rc := detail.Recipients(nil, ""); rc[0].ORCPT != "rfc822;alice+tag@example.com" || rc[0].Addr != "alice@example.com" {
			t.Errorf("Recipients of alice+tag = %+v", rc)
		}
		if s := res.Summary(); s != "alias: alice@example.com (maildir), bob@example.com (maildir), friend@remote.example (forward)" {
			t.Errorf("Summary = %q", s)
		}
	})
}

// TestResolveSRS: a bounce to an SRS address of ours goes back to the
// original sender; forged ones are refused.
func TestResolveSRS(t *testing.T) {
	rw, err := srs.New(srs.Options{Domain: "fwd.example", Secrets: [][]byte{[]byte("a-secret-of-enough-length")}})
	if err != nil {
		t.Fatal(err)
	}
	o := fixture()
	o.SRS = rw
	r := newResolver(t, o)
	ctx := context.Background()
	if !r.IsLocal("fwd.example") {
		t.Error("the SRS domain is not local")
	}
	for _, sender := range []string{"someone@orig.example", "bob@example.com"} {
		fwd, err := r.ForwardSender(sender)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Resolve(ctx, fwd)
		if err != nil || res.Kind != Bounce || len(res.Targets) != 1 {
			t.Fatalf("Resolve(%q) = %s, %v", fwd, res.Summary(), err)
		}
		want := sender + " (forward)"
		if mail.Domain(sender) == "example.com" {
			want = sender + " (maildir)"
		}
		if got := tgt(res.Targets[0]); got != want {
			t.Errorf("bounce to %s goes to %s, want %s", fwd, got, want)
		}
	}
	fwd, _ := r.ForwardSender("someone@orig.example")
	forged := strings.Replace(fwd, "=someone@", "=mallory@", 1)
	_, err = r.Resolve(ctx, forged)
	var ref *Refusal
	if !errors.As(err, &ref) || !errors.Is(err, ErrBadSRS) || ref.Reply.Code != 550 {
		t.Errorf("forged %s: %v", forged, err)
	}
	// Not SRS at the SRS domain: unknown.
	if _, err := r.Resolve(ctx, "plain@fwd.example"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("plain@fwd.example: %v", err)
	}
	// Without SRS the sender is kept.
	r2 := newResolver(t, fixture())
	if s, err := r2.ForwardSender("a@b.example"); s != "a@b.example" || err != nil {
		t.Errorf("ForwardSender without SRS = %q, %v", s, err)
	}
}

func TestFormat(t *testing.T) {
	r := newResolver(t, fixture())
	res, _ := r.Explain(context.Background(), "list+x@example.com")
	var b strings.Builder
	res.Format(&b)
	golden(t, "testdata/format.golden", b.String())
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
