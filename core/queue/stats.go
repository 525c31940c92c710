package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// Stats are the queue's figures at one moment (Queue.Stats).
type Stats struct {
	// Queued messages have had no delivery attempt yet, Deferred ones have
	// and wait for the next; Held ones wait for a release. The three do not
	// overlap.
	Queued, Deferred, Held int
	// Oldest is when the oldest message that is not held arrived (zero
	// with none).
	Oldest time.Time
	// Bytes is the size of every message together.
	Bytes int64
	// Destinations are the domains with the most pending recipients that
	// failed at least once, most first (at most topDestinations), each
	// with the last error of one of them.
	Destinations []DestinationStats
}

// DestinationStats is one domain's deferred recipients.
type DestinationStats struct {
	Domain     string
	Recipients int
	LastError  string
}

// topDestinations is how many domains Stats lists.
const topDestinations = 10

// Stats reads every envelope once (not the message bytes) and counts the
// queue by state. It costs a scan of the envelopes: callers cache it
// (core/metrics keeps one for a few seconds).
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	type dest struct {
		rcpts   int
		lastErr string
	}
	dests := map[string]*dest{}
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixMsg), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		var env mail.Envelope
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			env = mail.Envelope{}
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &env) }); err != nil {
				return fmt.Errorf("decode envelope %s: %w", it.Item().Key()[len(prefixMsg):], err)
			}
			st.Bytes += env.Size
			switch {
			case env.Held:
				st.Held++
				continue
			case env.Attempts > 0:
				st.Deferred++
			default:
				st.Queued++
			}
			if st.Oldest.IsZero() || env.Received.Before(st.Oldest) {
				st.Oldest = env.Received
			}
			for _, r := range env.Pending() {
				if r.Attempts == 0 {
					continue
				}
				_, domain, _ := mail.Split(r.Addr)
				domain = mail.NormDomain(domain)
				d := dests[domain]
				if d == nil {
					d = &dest{}
					dests[domain] = d
				}
				d.rcpts++
				if r.LastError != "" {
					d.lastErr = r.LastError
				}
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	for domain, d := range dests {
		st.Destinations = append(st.Destinations, DestinationStats{Domain: domain, Recipients: d.rcpts, LastError: d.lastErr})
	}
	slices.SortFunc(st.Destinations, func(a, b DestinationStats) int {
		if c := cmp.Compare(b.Recipients, a.Recipients); c != 0 {
			return c
		}
		return cmp.Compare(a.Domain, b.Domain)
	})
	st.Destinations = st.Destinations[:min(len(st.Destinations), topDestinations)]
	return st, nil
}
