package delivery

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// scripted plays the deliver-stage plugins: a verdict per destination.
type scripted struct {
	mu    sync.Mutex
	seen  []string
	notes []string
}

func (s *scripted) Hooks() uint32 { return 1 << pluginapi.HookDeliver }

func (s *scripted) Run(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
	s.mu.Lock()
	s.seen = append(s.seen, txn.Destination)
	s.notes = append(s.notes, txn.Notes["tag"])
	s.mu.Unlock()
	switch txn.Destination {
	case "blocked.test":
		return filter.Result{Verdict: pluginapi.Reject, Reply: *mail.NewReply(550, "5.7.1", "no mail to blocked.test"), Plugin: "policy"}
	case "later.test":
		return filter.Result{Verdict: pluginapi.Tempfail, Reply: *mail.NewReply(451, "4.7.1", "not now"), Plugin: "policy"}
	case "void.test":
		return filter.Result{Verdict: pluginapi.Discard, Plugin: "policy"}
	case "held.test":
		return filter.Result{Verdict: pluginapi.Quarantine, Plugin: "policy"}
	}
	txn.Header.Add("X-Dest", txn.Destination)
	txn.Route = "smarthost.test:2525"
	return filter.Result{}
}

// bodyRecorder keeps the message bytes and route it was handed.
type bodyRecorder struct {
	recorder
	bodies [][]byte
	routes []string
}

func (b *bodyRecorder) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	b.mu.Lock()
	b.bodies = append(b.bodies, m.Body)
	b.routes = append(b.routes, m.Route)
	b.mu.Unlock()
	return b.recorder.Deliver(ctx, m, rcpts)
}

func TestDeliverHook(t *testing.T) {
	local := &bodyRecorder{recorder: recorder{name: "local"}}
	remote := &bodyRecorder{recorder: recorder{name: "remote"}}
	f := &scripted{}
	r := NewRouter(RouterOptions{LocalDomains: []string{"local.test"}, Local: local, Remote: remote, Filters: f})
	m := &mail.Message{
		Envelope: mail.Envelope{ID: "Q1", From: "s@local.test", Notes: map[string]string{"tag": "from-data"}},
		Body:     []byte("Subject: hi\r\n\r\nbody\r\n"),
	}
	res := r.Deliver(context.Background(), m, []string{"a@blocked.test", "b@later.test", "c@void.test", "d@local.test", "e@ok.test", "f@held.test"})
	want := map[string]mail.Status{
		"a@blocked.test": mail.Bounced, "b@later.test": mail.Deferred, "c@void.test": mail.Sent,
		"d@local.test": mail.Sent, "e@ok.test": mail.Sent, "f@held.test": mail.Held,
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(res), len(want), res)
	}
	for _, r := range res {
		if r.Status != want[r.Rcpt] {
			t.Errorf("%s: %v, want %v (%s)", r.Rcpt, r.Status, want[r.Rcpt], r.Reply.Text)
		}
		if r.Rcpt == "a@blocked.test" && (r.Reply.Enhanced.String() != "5.7.1" || r.Reply.Text != "no mail to blocked.test") {
			t.Errorf("bounce carries %q %q", r.Reply.Enhanced.String(), r.Reply.Text)
		}
		if r.Rcpt == "f@held.test" && (r.Reply.String() != "451 4.7.0 quarantined by plugin policy" || r.Relay != "plugin policy") {
			t.Errorf("a deliver-stage quarantine holds with %q via %q", r.Reply, r.Relay)
		}
	}
	if len(local.bodies) != 1 || !bytes.Equal(local.bodies[0], []byte("X-Dest: local.test\r\nSubject: hi\r\n\r\nbody\r\n")) {
		t.Errorf("local got %q", local.bodies)
	}
	if len(remote.bodies) != 1 || !bytes.HasPrefix(remote.bodies[0], []byte("X-Dest: ok.test\r\n")) || remote.routes[0] != "smarthost.test:2525" {
		t.Errorf("remote got %q via %q", remote.bodies, remote.routes)
	}
	if !bytes.Equal(m.Body, []byte("Subject: hi\r\n\r\nbody\r\n")) {
		t.Errorf("the queued message was changed: %q", m.Body)
	}
	for i, n := range f.notes {
		if n != "from-data" {
			t.Errorf("destination %s saw note %q", f.seen[i], n)
		}
	}
}
