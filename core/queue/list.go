package queue

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// Message states, as `sluice queue ls --state` and Stats name them. They do
// not overlap: a held message is held whatever its attempts.
const (
	StateQueued   = "queued"   // no delivery attempt yet
	StateDeferred = "deferred" // attempted at least once, waiting for the next
	StateHeld     = "held"     // on hold until released (or its hold expires)
)

// State names env's state: StateHeld, StateDeferred or StateQueued.
func State(env *mail.Envelope) string {
	switch {
	case env.Held:
		return StateHeld
	case env.Attempts > 0:
		return StateDeferred
	}
	return StateQueued
}

// Page limits.
const (
	// DefaultPageLimit is the page size when ListOptions.Limit is 0.
	DefaultPageLimit = 100
	// MaxPageLimit is the largest page Page returns, whatever is asked.
	MaxPageLimit = 1000
	// pageScanBudget is how many envelopes one Page call reads at most:
	// a filter that matches rarely returns a short page and a Next to
	// go on from, so that no call reads a deep queue whole.
	pageScanBudget = 20000
)

// ListOptions choose one page of queued messages, in ID (arrival) order.
// Filters combine: a message must pass all that are set.
type ListOptions struct {
	// After starts the page after this queue ID ("": from the start).
	After string
	// Limit is the most messages the page holds (0: DefaultPageLimit;
	// at most MaxPageLimit).
	Limit int
	// State is StateQueued, StateDeferred, StateHeld, or "" for any.
	State string
	// Sender is the envelope sender, compared as mail.Key compares
	// addresses; "<>" is the null sender (bounces).
	Sender string
	// Rcpt is a pending recipient, compared as Sender is.
	Rcpt string
	// Domain is a pending recipient's domain (case and a trailing dot
	// ignored, a leading "@" allowed).
	Domain string
	// Match, when set, must also accept the message (the dashboard's
	// search).
	Match func(*mail.Envelope) bool
}

// Page is one page of queued messages.
type Page struct {
	Messages []mail.Envelope `json:"messages"`
	// Next is the ID to pass as ListOptions.After for the next page; ""
	// when the queue has no more messages after this page. A page may be
	// shorter than the limit and still have a Next: its scan budget ran
	// out before enough messages matched.
	Next string `json:"next,omitempty"`
}

// CheckListOptions reports a clear error for options a person got wrong.
func CheckListOptions(o ListOptions) error {
	switch o.State {
	case "", StateQueued, StateDeferred, StateHeld:
	default:
		return fmt.Errorf("unknown state %q: use %s, %s or %s", o.State, StateQueued, StateDeferred, StateHeld)
	}
	if o.Limit < 0 {
		return fmt.Errorf("limit %d: must not be negative", o.Limit)
	}
	return nil
}

// filter is ListOptions compiled for matching.
type filter struct {
	state, sender, rcpt, domain string
	nullSender                  bool
	match                       func(*mail.Envelope) bool
	needles                     [][]needle // see mayMatch
}

func newFilter(o ListOptions) filter {
	f := filter{state: o.State, match: o.Match}
	switch s := strings.TrimSpace(o.Sender); s {
	case "":
	case "<>":
		f.nullSender = true
	default:
		f.sender = mail.Key(strings.Trim(s, "<>"))
	}
	if r := strings.Trim(strings.TrimSpace(o.Rcpt), "<>"); r != "" {
		f.rcpt = mail.Key(r)
	}
	if d := strings.TrimPrefix(strings.TrimSpace(o.Domain), "@"); d != "" {
		f.domain = mail.NormDomain(d)
	}
	f.needles = f.rawNeedles()
	return f
}

func (f *filter) ok(env *mail.Envelope) bool {
	if f.state != "" && State(env) != f.state {
		return false
	}
	if f.nullSender && env.From != "" {
		return false
	}
	if f.sender != "" && mail.Key(env.From) != f.sender {
		return false
	}
	if f.rcpt != "" || f.domain != "" {
		found := false
		for _, r := range env.Pending() {
			if (f.rcpt == "" || mail.Key(r.Addr) == f.rcpt) && (f.domain == "" || mail.Domain(r.Addr) == f.domain) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return f.match == nil || f.match(env)
}

// Page returns one page of the queued messages that pass o's filters, in
// ID order. It reads at most a fixed number of envelopes (and index
// entries) whatever the queue's depth, so its cost and memory do not grow
// with the queue: page through it with Next. A state, sender, recipient or
// domain filter seeks the listing index (find).
func (q *Queue) Page(ctx context.Context, o ListOptions) (Page, error) {
	if err := CheckListOptions(o); err != nil {
		return Page{}, fmt.Errorf("queue: list: %w", err)
	}
	limit := o.Limit
	if limit == 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	f := newFilter(o)
	p := Page{Messages: []mail.Envelope{}}
	next, err := q.find(ctx, o.After, &f, func(env *mail.Envelope) bool {
		p.Messages = append(p.Messages, *env)
		return len(p.Messages) < limit
	})
	if err != nil {
		return Page{}, fmt.Errorf("queue: list: %w", err)
	}
	p.Next = next
	return p, nil
}

// scan decodes the envelopes after ID after, in ID order, and calls fn
// with each (a fresh one each time) until fn returns false, budget
// envelopes have been read (budget <= 0: no bound) or the queue ends.
// With skip set, an envelope whose stored bytes skip rejects is not
// decoded (nor given to fn), and counts a skipCost-th of one against the
// budget. It returns the ID of the last envelope read when the scan
// stopped before the end, "" when it reached the end.
func (q *Queue) scan(ctx context.Context, after string, budget int, skip func(raw []byte) bool, fn func(*mail.Envelope) bool) (string, error) {
	var last string
	budget *= skipCost
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(envelopeScan)
		defer it.Close()
		if after == "" {
			it.Rewind()
		} else {
			it.Seek(append(msgKey(after), 0))
		}
		for n := 0; it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			var env *mail.Envelope
			err := item.Value(func(v []byte) error {
				if skip != nil && skip(v) {
					return nil
				}
				env = new(mail.Envelope)
				return decodeEnvelope(v, env)
			})
			if err != nil {
				return fmt.Errorf("decode envelope %s: %w", item.Key()[len(prefixMsg):], err)
			}
			if env == nil {
				n++
			} else {
				n += skipCost
			}
			if (env != nil && !fn(env)) || (budget > 0 && n >= budget) {
				id := string(item.Key()[len(prefixMsg):])
				it.Next()
				if it.Valid() {
					last = id
				}
				return nil
			}
		}
		return nil
	})
	return last, err
}

// skipCost is how many envelopes skipped by their stored bytes cost one
// decoded envelope of a scan's budget. The byte test takes 0.3 µs, the
// decoding 4.5 µs (BenchmarkScanSkip), and reading the next item from
// Badger is the same for both.
const skipCost = 8

// skipper returns the scan's skip test for f (mayMatch), nil when f has
// none.
func (f *filter) skipper() func(raw []byte) bool {
	if len(f.needles) == 0 {
		return nil
	}
	return func(raw []byte) bool { return !f.mayMatch(raw) }
}

// envelopeScan iterates over the envelopes without prefetching their
// values: envelopes are stored inline in the LSM tree (under
// bodyThreshold), so Value reads them in place, whereas a prefetch copies
// each into a buffer of its own from a goroutine of its own (a third of a
// deep queue's full scan went to starting those goroutines).
var envelopeScan = badger.IteratorOptions{Prefix: []byte(prefixMsg)}

// budget is how many envelopes one Page reads at most.
func (q *Queue) budget() int {
	if q.opts.scanBudget > 0 {
		return q.opts.scanBudget
	}
	return pageScanBudget
}

// scanAll decodes every envelope, GOMAXPROCS decoders at a time, and calls
// fn with each from the calling goroutine, in no particular order. Stats
// reads the whole queue with it: decoding the JSON is most of the cost.
func (q *Queue) scanAll(ctx context.Context, fn func(*mail.Envelope)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type record struct{ key, val []byte }
	const batch = 256
	raw := make(chan []record, 4)
	decoded := make(chan []*mail.Envelope, 4)
	var readErr, decodeErr error
	go func() {
		defer close(raw)
		readErr = q.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(envelopeScan)
			defer it.Close()
			var b []record
			send := func() error {
				select {
				case raw <- b:
					b = nil
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if b = append(b, record{it.Item().KeyCopy(nil), v}); len(b) == batch {
					if err := send(); err != nil {
						return err
					}
				}
			}
			if len(b) > 0 {
				return send()
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	var failed sync.Once
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for b := range raw {
				out := make([]*mail.Envelope, 0, len(b))
				for _, r := range b {
					env := new(mail.Envelope)
					if err := decodeEnvelope(r.val, env); err != nil {
						failed.Do(func() {
							decodeErr = fmt.Errorf("decode envelope %s: %w", r.key[len(prefixMsg):], err)
							cancel()
						})
						break
					}
					out = append(out, env)
				}
				select {
				case decoded <- out:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() { wg.Wait(); close(decoded) }()
	for envs := range decoded {
		for _, env := range envs {
			fn(env)
		}
	}
	// The reader and the decoders are done: decoded is closed after them.
	if decodeErr != nil {
		return decodeErr
	}
	return readErr
}
