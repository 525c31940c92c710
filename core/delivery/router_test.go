package delivery

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// recorder is a Deliverer that remembers its calls and sends everything.
type recorder struct {
	name  string
	mu    sync.Mutex
	calls [][]string
	froms []string // the envelope sender of each call
}

func (r *recorder) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(rcpts))
	r.froms = append(r.froms, m.From)
	r.mu.Unlock()
	out := make([]mail.Result, len(rcpts))
	for i, rc := range rcpts {
		out[i] = mail.Result{Rcpt: rc, Status: mail.Sent, Reply: mail.Reply{Code: 250, Enhanced: mail.MustEnhanced("2.0.0")}, Relay: r.name}
	}
	return out
}

func TestRouterSplitsByDomain(t *testing.T) {
	tests := []struct {
		name       string
		domains    []string
		rcpts      []string
		wantLocal  []string
		wantRemote []string
	}{
		{
			name:       "mixed",
			domains:    []string{"example.com", "Example.NET"},
			rcpts:      []string{"a@example.com", "b@other.org", "c@EXAMPLE.net", "d@example.com.evil.org"},
			wantLocal:  []string{"a@example.com", "c@EXAMPLE.net"},
			wantRemote: []string{"b@other.org", "d@example.com.evil.org"},
		},
		{
			name:      "all local, case and trailing dot",
			domains:   []string{"example.com."},
			rcpts:     []string{"A@Example.Com", "b@example.com."},
			wantLocal: []string{"A@Example.Com", "b@example.com."},
		},
		{
			name:      "no domain is local",
			domains:   []string{"example.com"},
			rcpts:     []string{"postmaster"},
			wantLocal: []string{"postmaster"},
		},
		{
			name:       "at sign in quoted local part",
			domains:    []string{"example.com"},
			rcpts:      []string{`"a@example.com"@other.org`},
			wantRemote: []string{`"a@example.com"@other.org`},
		},
		{
			name:       "no local domains",
			rcpts:      []string{"a@example.com"},
			wantRemote: []string{"a@example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local, remote := &recorder{name: "local"}, &recorder{name: "remote"}
			r := NewRouter(RouterOptions{LocalDomains: tt.domains, Local: local, Remote: remote})
			res := r.Deliver(context.Background(), &mail.Message{}, tt.rcpts)

			checkCalls(t, "local", local.calls, tt.wantLocal)
			checkCalls(t, "remote", remote.calls, tt.wantRemote)
			if len(res) != len(tt.rcpts) {
				t.Fatalf("got %d results for %d recipients: %+v", len(res), len(tt.rcpts), res)
			}
			for _, x := range res {
				want := "remote"
				if slices.Contains(tt.wantLocal, x.Rcpt) {
					want = "local"
				}
				if x.Relay != want || x.Status != mail.Sent {
					t.Errorf("result for %s = %+v, want sent via %s", x.Rcpt, x, want)
				}
			}
		})
	}
}

func checkCalls(t *testing.T, which string, calls [][]string, want []string) {
	t.Helper()
	if len(want) == 0 {
		if len(calls) != 0 {
			t.Errorf("%s deliverer called with %v, want no call", which, calls)
		}
		return
	}
	if len(calls) != 1 || !slices.Equal(calls[0], want) {
		t.Errorf("%s deliverer calls = %v, want one call with %v", which, calls, want)
	}
}

func TestRouterNilDeliverersDefer(t *testing.T) {
	tests := []struct {
		name    string
		local   mail.Deliverer
		rcpt    string
		wantDSN string
	}{
		{name: "remote without transport", local: &recorder{}, rcpt: "x@far.example", wantDSN: "4.4.1"},
		{name: "local without transport", rcpt: "x@example.com", wantDSN: "4.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRouter(RouterOptions{LocalDomains: []string{"example.com"}, Local: tt.local})
			res := r.Deliver(context.Background(), &mail.Message{}, []string{tt.rcpt})
			if len(res) != 1 {
				t.Fatalf("got %d results, want 1: %+v", len(res), res)
			}
			got := res[0]
			if got.Rcpt != tt.rcpt || got.Status != mail.Deferred || got.Reply.Enhanced.String() != tt.wantDSN || got.Reply.Text == "" {
				t.Errorf("result = %+v, want deferred %s with a reason", got, tt.wantDSN)
			}
		})
	}
}

func TestRouterRemoteNilText(t *testing.T) {
	r := NewRouter(RouterOptions{})
	res := r.Deliver(context.Background(), &mail.Message{}, []string{"a@b.example", "c@d.example"})
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2", len(res))
	}
	for _, x := range res {
		if x.Reply.Text != "no remote delivery configured yet" || x.Status != mail.Deferred {
			t.Errorf("result = %+v", x)
		}
	}
}
