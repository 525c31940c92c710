package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

// mayMatchSound fails when a stored envelope passes a filter that its
// bytes said it could not pass.
func mayMatchSound(t *testing.T, env *mail.Envelope, o ListOptions) {
	t.Helper()
	raw, err := json.Marshal(env) // what putEnvelope stores
	if err != nil {
		return
	}
	f := newFilter(o)
	if f.ok(env) && !f.mayMatch(raw) {
		t.Errorf("filter %+v passes %s, but its stored bytes were skipped", o, raw)
	}
}

// TestMayMatch: the byte test never rejects an envelope the filter passes
// (cases, a final dot, escaped characters, Unicode case rules, states),
// and it does reject plain ASCII envelopes that cannot pass, so that a
// rare filter's scan decodes little.
func TestMayMatch(t *testing.T) {
	envs := []*mail.Envelope{
		{ID: "1", From: "Alice@Example.COM.", Rcpts: []mail.Recipient{{Addr: "Bob@Dst.Test."}}, Attempts: 1},
		{ID: "2", From: "", Rcpts: []mail.Recipient{{Addr: "postmaster@dst.test"}}},
		{ID: "3", From: "a&b@src.test", Rcpts: []mail.Recipient{{Addr: "\"x<y>\"@dst.test"}}, Held: true, Attempts: 2},
		// U+212A KELVIN SIGN lowercases to an ASCII k under Unicode rules.
		{ID: "4", From: "\u212aate@src.test", Rcpts: []mail.Recipient{{Addr: "user@\u212a.test"}}},
		{ID: "5", From: "jösé@exämple.test", Rcpts: []mail.Recipient{{Addr: "ÜSER@BÜCHER.TEST"}}, SMTPUTF8: true},
		{ID: "6", From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "one@dst.test", State: mail.Delivered}, {Addr: "two@other.test"}}, Attempts: 3},
	}
	filters := []ListOptions{
		{State: StateQueued}, {State: StateDeferred}, {State: StateHeld},
		{Sender: "alice@example.com"}, {Sender: "ALICE@example.com."}, {Sender: "<>"}, {Sender: "a&b@src.test"},
		{Sender: "kate@src.test"}, {Sender: "jösé@EXÄMPLE.test"},
		{Rcpt: "bob@dst.test"}, {Rcpt: "<BOB@DST.TEST>"}, {Rcpt: "\"x<y>\"@dst.test"}, {Rcpt: "user@k.test"},
		{Rcpt: "üser@bücher.test"}, {Rcpt: "two@other.test"}, {Rcpt: "one@dst.test"},
		{Domain: "dst.test"}, {Domain: "@DST.TEST."}, {Domain: "k.test"}, {Domain: "bücher.test"}, {Domain: "other.test"},
		{Domain: "dst.test", State: StateHeld}, {Sender: "<>", State: StateQueued},
	}
	for _, env := range envs {
		for _, o := range filters {
			mayMatchSound(t, env, o)
		}
	}

	// What the test is for: a plain envelope that cannot pass is skipped.
	plain := &mail.Envelope{ID: "7", From: "load@src.test", Rcpts: []mail.Recipient{{Addr: "user7@dead7.test", Attempts: 1}}, Attempts: 1} // deferred once
	raw, _ := json.Marshal(plain)
	for _, o := range []ListOptions{{Domain: "nowhere.test"}, {Sender: "nobody@src.test"}, {Rcpt: "user8@dead7.test"}, {State: StateHeld}, {State: StateQueued}, {Sender: "<>"}} {
		f := newFilter(o)
		if f.mayMatch(raw) {
			t.Errorf("filter %+v: %s not skipped", o, raw)
		}
	}
	for _, o := range []ListOptions{{Domain: "DEAD7.test"}, {Sender: "Load@src.test"}, {Rcpt: "user7@dead7.test."}, {State: StateDeferred}, {}} {
		f := newFilter(o)
		if !f.mayMatch(raw) {
			t.Errorf("filter %+v: %s skipped", o, raw)
		}
	}
}

// FuzzMayMatch holds the byte test to the filter on any addresses and
// states: it must never skip an envelope the filter passes.
func FuzzMayMatch(f *testing.F) {
	f.Add("Alice@Example.COM.", "bob@dst.test", "alice@example.com", "bob@dst.test.", "DST.test", 1, false)
	f.Add("", "\u212a@x.test", "<>", "k@x.test", "x.test", 0, false)
	f.Add("a&b@src.test", "\"q<\"@d.test", "a&b@src.test", "\"q<\"@d.test", "d.test", 2, true)
	f.Fuzz(func(t *testing.T, from, rcpt, sender, frcpt, domain string, attempts int, held bool) {
		env := &mail.Envelope{ID: "1", From: from, Rcpts: []mail.Recipient{{Addr: rcpt, Attempts: attempts}}, Attempts: attempts, Held: held}
		for _, state := range []string{"", StateQueued, StateDeferred, StateHeld} {
			mayMatchSound(t, env, ListOptions{State: state, Sender: sender})
			mayMatchSound(t, env, ListOptions{State: state, Rcpt: frcpt})
			mayMatchSound(t, env, ListOptions{State: state, Domain: domain})
			mayMatchSound(t, env, ListOptions{Sender: sender, Rcpt: frcpt, Domain: domain})
		}
	})
}

// enqueueRare queues 2,000 messages to userN@deadN%10.test, all but one,
// whose ID it returns: that one is to Needle@Rare.Test. (user1234's turn).
func enqueueRare(t *testing.T, q *Queue) string {
	t.Helper()
	var want string
	for i := range 2000 {
		rcpt := fmt.Sprintf("user%d@dead%d.test", i, i%10)
		if i == 1234 {
			rcpt = "Needle@Rare.Test."
		}
		if id := enqueue(t, q, "a@src.test", rcpt); i == 1234 {
			want = id
		}
	}
	return want
}

// TestPageRareFilter: without the index (as while an older queue is being
// indexed), a filter that passes one message in thousands pages through
// them (short pages with a Next, each within its budget) and finds exactly
// that one, skipping the others by their bytes.
func TestPageRareFilter(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	opts.scanBudget = 50
	opts.listScan = true
	q := openQueue(t, opts)
	want := enqueueRare(t, q)
	var got []string
	pages := 0
	o := ListOptions{Domain: "rare.test", Limit: 10}
	for {
		p, err := q.Page(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, env := range p.Messages {
			got = append(got, env.ID)
		}
		if p.Next == "" {
			break
		}
		o.After = p.Next
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("found %v, want [%s]", got, want)
	}
	// 2,000 envelopes, 50 decoded or 50×skipCost skipped a page.
	if lo, hi := 2000/(50*skipCost), 2000/(50*skipCost)+2; pages < lo || pages > hi {
		t.Errorf("%d pages, want %d to %d: skipped envelopes cost a %dth of a decoded one", pages, lo, hi, skipCost)
	}
}

// BenchmarkScanSkip compares what a scan does with one stored envelope
// that a rare filter rejects: its byte test (skip) against decoding it.
// skipCost follows their ratio.
func BenchmarkScanSkip(b *testing.B) {
	raw, err := json.Marshal(benchEnvelope())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("skip", func(b *testing.B) {
		f := newFilter(ListOptions{Domain: "nowhere.test"})
		skip := f.skipper()
		for b.Loop() {
			if !skip(raw) {
				b.Fatal("not skipped")
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if err := decodeEnvelope(raw, new(mail.Envelope)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
