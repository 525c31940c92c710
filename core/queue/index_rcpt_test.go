package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// formatOneEntries are the index entries Sluice stored for env in index
// format 1 (marker "1"): state and sender as now, no recipient entries,
// and a domain entry for each domain of a pending recipient's address and
// of its key, whose value lists those recipients' keys (each a uvarint
// length and its bytes).
func formatOneEntries(env *mail.Envelope) map[string][]byte {
	out := map[string][]byte{
		string(ixKey(ixState, State(env), env.ID)):          nil,
		string(ixKey(ixSender, mail.Key(env.From), env.ID)): nil,
	}
	for _, r := range env.Pending() {
		key := mail.Key(r.Addr)
		for _, d := range []string{mail.Domain(r.Addr), mail.Domain(key)} {
			k := string(ixKey(ixDomain, d, env.ID))
			if d == mail.Domain(r.Addr) || !bytes.Contains(out[k], []byte(key)) {
				out[k] = append(binary.AppendUvarint(out[k], uint64(len(key))), key...)
			}
		}
	}
	return out
}

// writeFormatOne replaces q's index with the format-1 index of its
// envelopes, marker and all, as the Sluice before recipient entries left it.
func writeFormatOne(t *testing.T, q *Queue) {
	t.Helper()
	if err := q.db.DropPrefix([]byte(prefixIndex)); err != nil {
		t.Fatal(err)
	}
	wb := q.db.NewWriteBatch()
	defer wb.Cancel()
	for _, env := range list(t, q) {
		for k, v := range formatOneEntries(&env) {
			if err := wb.Set([]byte(k), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := wb.Set(indexDoneKey, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
}

// indexMarker is the stored value of the index's marker ("" without one).
func indexMarker(t *testing.T, q *Queue) string {
	t.Helper()
	var v []byte
	err := q.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(indexDoneKey)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		t.Fatalf("read the index marker: %v", err)
	}
	return string(v)
}

// TestIndexUpgraded: a queue indexed in format 1 (no recipient entries,
// recipients in the domain entries' values) is brought to the current
// format in the background at the first start, while messages are queued,
// held, released, bounced and removed, listing correctly meanwhile; once
// done the index is exactly what the envelopes call for, every filter
// lists as a scan does, and a restart keeps it.
func TestIndexUpgraded(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	opts.Logger = nil
	opts.scanBudget = 40
	q := openQueue(t, opts)
	ctx := context.Background()
	var plain []string // messages without an odd domain: see reindex
	for i := range 1500 {
		rcpts := []string{fmt.Sprintf("later%d@d%d.test", i%10, i%10)}
		switch i % 7 {
		case 1:
			rcpts = append(rcpts, fmt.Sprintf("LATER%d@D%d.Test.", (i+1)%10, (i+1)%10), fmt.Sprintf("later%d@d%d.test", i%10, i%10))
		case 2:
			rcpts = append(rcpts, fmt.Sprintf("ok%d@Mixed.Case.TEST..", i%10))
		}
		id := enqueue(t, q, []string{"a@src.test", "", "c@other.test"}[i%3], rcpts...)
		if i%7 != 2 {
			plain = append(plain, id)
		}
		if i%50 == 0 {
			if err := q.Hold(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeFormatOne(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, opts)
	// Meanwhile, whether or not the upgrade has got to them.
	for i, id := range plain[:300] {
		var err error
		switch i % 5 {
		case 0:
			err = q.Hold(ctx, id)
		case 1:
			err = q.Remove(ctx, id)
		case 2:
			err = q.Release(ctx, id)
		case 3:
			err = q.Bounce(ctx, id)
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%30 == 0 {
			enqueue(t, q, "new@src.test", fmt.Sprintf("later%d@d1.test", i))
			if ids, _ := pageAll(t, q, ListOptions{Rcpt: "later1@d1.test", Limit: 1000}); len(ids) == 0 {
				t.Fatal("while upgrading: no message for later1@d1.test")
			}
		}
	}
	eventually(t, "the index to be upgraded", q.indexReady)
	if m := indexMarker(t, q); m != indexVersion {
		t.Errorf("marker %q after the upgrade, want %q", m, indexVersion)
	}
	checkIndex(t, q, "upgraded")
	compareListings(t, q, "upgraded")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, opts)
	if !q.indexReady() {
		t.Error("the upgraded index is not ready at once after a restart")
	}
	checkIndex(t, q, "upgraded and restarted")
}

// TestPageRcptOneDomain: a recipient filter seeks its address's own
// entries, so with every message to one domain it answers in one page
// however small the budget, alone, combined and after an ID; the domain
// holds many times the entries a page may step over.
func TestPageRcptOneDomain(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	opts.scanBudget = 20 // 160 index steps a page
	opts.Logger = nil
	q := openQueue(t, opts)
	var needle, twice string
	for i := range 2500 {
		rcpts := []string{fmt.Sprintf("user%d@dead.test", i)}
		if i == 2000 {
			rcpts = append(rcpts, "User1234@Dead.Test.")
		}
		id := enqueue(t, q, "load@src.test", rcpts...)
		switch i {
		case 1234:
			needle = id
		case 2000:
			twice = id
		}
	}
	if ids, pages := pageAll(t, q, ListOptions{Domain: "dead.test", Limit: 1000}); len(ids) != 2500 || pages < 3 {
		t.Fatalf("--domain dead.test: %d messages in %d pages, want 2500 in 3 or more", len(ids), pages)
	}
	for _, tc := range []struct {
		o    ListOptions
		want []string
	}{
		{ListOptions{Rcpt: "user1234@dead.test"}, []string{needle, twice}},
		{ListOptions{Rcpt: "<USER1234@dead.test.>", State: StateQueued, Sender: "load@src.test", Domain: "dead.test"}, []string{needle, twice}},
		{ListOptions{Rcpt: "user1234@dead.test", After: needle}, []string{twice}},
		{ListOptions{Rcpt: "user1234@dead.test", Limit: 1}, []string{needle}},
		{ListOptions{Rcpt: "user1234@dead.test", State: StateDeferred}, nil},
		{ListOptions{Rcpt: "nobody@dead.test"}, nil},
	} {
		p, err := q.Page(context.Background(), tc.o)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, env := range p.Messages {
			got = append(got, env.ID)
		}
		wantNext := ""
		if tc.o.Limit == 1 {
			wantNext = needle
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") || p.Next != wantNext {
			t.Errorf("%+v: first page %v, next %q; want %v, next %q", tc.o, got, p.Next, tc.want, wantNext)
		}
	}
}
