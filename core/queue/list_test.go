package queue

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// pageIDs walks every page of o (o.Limit a page) and returns the IDs in
// order, with the number of pages.
func pageIDs(t *testing.T, q *Queue, o ListOptions) ([]string, int) {
	t.Helper()
	var ids []string
	pages := 0
	for {
		p, err := q.Page(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Messages) > max(o.Limit, 0) && o.Limit > 0 {
			t.Fatalf("page of %d messages, limit %d", len(p.Messages), o.Limit)
		}
		for _, e := range p.Messages {
			ids = append(ids, e.ID)
		}
		if p.Next == "" {
			return ids, pages
		}
		o.After = p.Next
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

// TestPageFilters: Page lists in ID order, pages with After/Next, and
// filters by state, sender, pending recipient and domain, in any case.
func TestPageFilters(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	q := openQueue(t, opts)
	ctx := context.Background()

	a1 := enqueue(t, q, "Alice@Src.Test", "x@a.test")
	a2 := enqueue(t, q, "alice@src.test", "y@b.test", "z@a.test")
	b1 := enqueue(t, q, "bob@src.test", "y@b.test")
	bounce := enqueue(t, q, "", "alice@src.test")
	held := enqueue(t, q, "bob@src.test", "w@c.test")
	if err := q.Hold(ctx, held); err != nil {
		t.Fatal(err)
	}
	// a2's recipient at b.test is delivered: a2 has no pending one there.
	err := q.update(ctx, func(txn *badger.Txn) error {
		env, err := getEnvelope(txn, a2)
		if err != nil {
			return err
		}
		was := ixEntries(env)
		env.Rcpts[0].State = mail.Delivered
		env.Attempts, env.Rcpts[0].Attempts, env.Rcpts[1].Attempts = 1, 1, 1
		return putEnvelope(txn, was, env)
	})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{a1, a2, b1, bounce, held}

	for _, limit := range []int{1, 2, 5, 0} {
		got, pages := pageIDs(t, q, ListOptions{Limit: limit})
		if !slices.Equal(got, all) {
			t.Errorf("limit %d: paged IDs %v, want %v", limit, got, all)
		}
		if limit == 2 && pages != 3 {
			t.Errorf("limit 2: %d pages, want 3", pages)
		}
	}
	p, err := q.Page(ctx, ListOptions{After: a2, Limit: 2})
	if err != nil || len(p.Messages) != 2 || p.Messages[0].ID != b1 || p.Next != bounce {
		t.Errorf("after %s limit 2: %+v, %v; want %s, %s and next %s", a2, p, err, b1, bounce, bounce)
	}

	for _, tc := range []struct {
		name string
		o    ListOptions
		want []string
	}{
		{"held", ListOptions{State: StateHeld}, []string{held}},
		{"deferred", ListOptions{State: StateDeferred}, []string{a2}},
		{"queued", ListOptions{State: StateQueued}, []string{a1, b1, bounce}},
		{"sender any case", ListOptions{Sender: "ALICE@src.TEST"}, []string{a1, a2}},
		{"sender in brackets", ListOptions{Sender: "<bob@src.test>"}, []string{b1, held}},
		{"null sender", ListOptions{Sender: "<>"}, []string{bounce}},
		{"pending rcpt", ListOptions{Rcpt: "Y@B.test"}, []string{b1}},
		{"domain", ListOptions{Domain: "@A.Test."}, []string{a1, a2}},
		{"domain only delivered there", ListOptions{Domain: "b.test"}, []string{b1}},
		{"domain and state", ListOptions{Domain: "a.test", State: StateQueued}, []string{a1}},
		{"sender and rcpt", ListOptions{Sender: "bob@src.test", Rcpt: "w@c.test"}, []string{held}},
		{"no match", ListOptions{Rcpt: "nobody@a.test"}, nil},
	} {
		got, _ := pageIDs(t, q, tc.o)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	if _, err := q.Page(ctx, ListOptions{State: "active"}); err == nil {
		t.Error("state active: no error")
	}
}

// TestPageScanBudget: a page reads at most its budget of envelopes; a
// filter that matches late returns short pages with a Next until it
// reaches the match. (The dashboard's search, Match, needs every envelope
// decoded; envelopes a filter skips by their bytes cost less of the
// budget: TestPageRareFilter.)
func TestPageScanBudget(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	opts.scanBudget = 3
	q := openQueue(t, opts)
	var ids []string
	for range 7 {
		ids = append(ids, enqueue(t, q, "a@src.test", "x@a.test"))
	}
	last := enqueue(t, q, "a@src.test", "x@late.test")
	late := ListOptions{Match: func(env *mail.Envelope) bool { return mail.Domain(env.Rcpts[0].Addr) == "late.test" }}
	p, err := q.Page(context.Background(), late)
	if err != nil || len(p.Messages) != 0 || p.Next != ids[2] {
		t.Fatalf("first page: %+v, %v; want empty with next %s", p, err, ids[2])
	}
	got, pages := pageIDs(t, q, late)
	if !slices.Equal(got, []string{last}) || pages != 3 {
		t.Errorf("walked %v in %d pages, want [%s] in 3", got, pages, last)
	}
	// An unfiltered page is bounded by the budget too, and goes on.
	got, _ = pageIDs(t, q, ListOptions{Limit: 10})
	if !slices.Equal(got, append(ids, last)) {
		t.Errorf("unfiltered walk %v", got)
	}
}

// TestStatsDomains: Stats lists every destination domain with its pending
// recipients by message age, the deferred ones, and the oldest message.
func TestStatsDomains(t *testing.T) {
	c := newClock()
	q := openQueue(t, testOptions(t, t.TempDir(), c))
	ctx := context.Background()
	old := enqueue(t, q, "a@src.test", "x@a.test", "y@B.test")
	c.Add(30 * time.Minute)
	enqueue(t, q, "a@src.test", "z@a.test")
	c.Add(2 * time.Hour)
	enqueue(t, q, "a@src.test", "w@a.test")
	held := enqueue(t, q, "a@src.test", "v@c.test")
	if err := q.Hold(ctx, held); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued != 3 || st.Held != 1 || st.OldestID != old || !st.Oldest.Equal(c.Now().Add(-150*time.Minute)) {
		t.Errorf("stats %+v", st)
	}
	// Ages: under 5 min (index 0); 120 min: under 160 (index 5); 150
	// min: under 160 too.
	want := []DomainStats{
		{Domain: "a.test", Recipients: 3, Ages: []int{1, 0, 0, 0, 0, 2, 0, 0, 0, 0}},
		{Domain: "b.test", Recipients: 1, Ages: []int{0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
	}
	if len(st.Domains) != len(want) {
		t.Fatalf("domains %+v, want %+v", st.Domains, want)
	}
	for i, d := range st.Domains {
		w := want[i]
		if d.Domain != w.Domain || d.Recipients != w.Recipients || d.Deferred != 0 || !slices.Equal(d.Ages, w.Ages) {
			t.Errorf("domain %d: %+v, want %+v", i, d, w)
		}
	}
	for _, tc := range []struct {
		age  time.Duration
		want int
	}{{0, 0}, {4 * time.Minute, 0}, {5 * time.Minute, 1}, {1279 * time.Minute, 8}, {1280 * time.Minute, 9}, {100 * time.Hour, 9}} {
		if got := ageBucket(tc.age); got != tc.want {
			t.Errorf("ageBucket(%v) = %d, want %d", tc.age, got, tc.want)
		}
	}
}
