package delivery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/addressing/srs"
	"github.com/sluice-mta/sluice/core/mail"
)

// TestRouterTransports: with Addressing, each recipient goes to its
// domain's transport — Maildir, the domain's own LMTP server (one
// deliverer per server, made once), or remote — and forwarded recipients
// are relayed in a transaction of their own with the SRS sender, the
// others with the original one.
func TestRouterTransports(t *testing.T) {
	rw, err := srs.New(srs.Options{Domain: "fwd.test", Secrets: [][]byte{[]byte("a-secret-of-enough-length")}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := addressing.New(addressing.Options{
		LocalDomains: []string{"maildir.test"},
		Transports:   map[string]string{"a.test": "127.0.0.1:2401", "b.test": "unix:/run/b.sock", "a2.test": "127.0.0.1:2401"},
		SRS:          rw,
	})
	if err != nil {
		t.Fatal(err)
	}
	local, remote := &recorder{name: "local"}, &recorder{name: "remote"}
	lmtp := map[string]*recorder{}
	made := 0
	r := NewRouter(RouterOptions{Local: local, Remote: remote, Addressing: res, NewLMTP: func(addr string) mail.Deliverer {
		made++
		lmtp[addr] = &recorder{name: "lmtp " + addr}
		return lmtp[addr]
	}})
	m := &mail.Message{Envelope: mail.Envelope{From: "sender@orig.test", Rcpts: []mail.Recipient{
		{Addr: "x@far.test", Forward: true}, {Addr: "y@far.test"}, {Addr: "z@other.test", Forward: true},
	}}}
	rcpts := []string{"u@maildir.test", "v@a.test", "w@b.test", "x@far.test", "y@far.test", "v@a2.test", "z@other.test"}
	for range 2 {
		got := r.Deliver(context.Background(), m, rcpts)
		if len(got) != len(rcpts) {
			t.Fatalf("%d results for %d recipients", len(got), len(rcpts))
		}
		var relays []string
		for _, x := range got {
			relays = append(relays, x.Rcpt+" "+x.Relay)
		}
		slices.Sort(relays)
		want := []string{"u@maildir.test local", "v@a.test lmtp 127.0.0.1:2401", "v@a2.test lmtp 127.0.0.1:2401",
			"w@b.test lmtp unix:/run/b.sock", "x@far.test remote", "y@far.test remote", "z@other.test remote"}
		if !slices.Equal(relays, want) {
			t.Errorf("results:\n%s\nwant:\n%s", strings.Join(relays, "\n"), strings.Join(want, "\n"))
		}
	}
	if made != 2 {
		t.Errorf("NewLMTP called %d times, want once per server (2)", made)
	}
	checkCalls(t, "lmtp a", lmtp["127.0.0.1:2401"].calls[:1], []string{"v@a.test", "v@a2.test"})
	checkCalls(t, "local", local.calls[:1], []string{"u@maildir.test"})
	calls := fmt.Sprint(remote.calls[:2])
	if calls != "[[y@far.test] [x@far.test z@other.test]]" {
		t.Errorf("remote calls %s, want the plain recipient, then the forwarded ones", calls)
	}
	if remote.froms[0] != "sender@orig.test" {
		t.Errorf("a plain remote recipient went with sender %q", remote.froms[0])
	}
	if !strings.HasPrefix(remote.froms[1], "SRS0=") || !strings.HasSuffix(remote.froms[1], "=orig.test=sender@fwd.test") {
		t.Errorf("forwarded recipients went with sender %q, want an SRS0 address at fwd.test", remote.froms[1])
	}
	if back, err := rw.Reverse(remote.froms[1]); err != nil || back != "sender@orig.test" {
		t.Errorf("the SRS sender reverses to %q, %v", back, err)
	}
	if m.From != "sender@orig.test" {
		t.Errorf("the queued message's sender changed to %q", m.From)
	}

	// The null sender (a bounce) stays null when forwarded.
	remote.froms = nil
	bounce := &mail.Message{Envelope: mail.Envelope{Rcpts: []mail.Recipient{{Addr: "x@far.test", Forward: true}}}}
	r.Deliver(context.Background(), bounce, []string{"x@far.test"})
	if len(remote.froms) != 1 || remote.froms[0] != "" {
		t.Errorf("a forwarded bounce went with senders %q, want the null sender", remote.froms)
	}
}
