package queue

import (
	"context"
	"errors"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// ranges are the prefixes of the index ranges a message must appear in
// to pass f: one for each of its state, sender, recipient and domain
// tests; none when f has none of them.
func (f *filter) ranges() [][]byte {
	var rs [][]byte
	if f.state != "" {
		rs = append(rs, ixKey(ixState, f.state, ""))
	}
	switch {
	case f.nullSender:
		rs = append(rs, ixKey(ixSender, "", ""))
	case f.sender != "":
		rs = append(rs, ixKey(ixSender, f.sender, ""))
	}
	if f.rcpt != "" {
		rs = append(rs, ixKey(ixRcpt, f.rcpt, ""))
	}
	if f.domain != "" {
		rs = append(rs, ixKey(ixDomain, f.domain, ""))
	}
	return rs
}

// find calls fn with each envelope after ID after that passes f, in ID
// order, until fn returns false, the page's budget is spent or the queue
// ends. It returns the ID to go on after ("" at the end). A filter with
// an indexed test seeks the index (seekIndex); one without, or before the
// index is complete, reads the envelopes in turn (scan).
func (q *Queue) find(ctx context.Context, after string, f *filter, fn func(*mail.Envelope) bool) (string, error) {
	if rs := f.ranges(); len(rs) > 0 && q.indexReady() {
		return q.seekIndex(ctx, after, q.budget()*skipCost, rs, f, fn)
	}
	return q.scan(ctx, after, q.budget(), f.skipper(), func(env *mail.Envelope) bool {
		return !f.ok(env) || fn(env)
	})
}

// seekIndex is find over the index: it walks the ranges together, each
// seeking to the greatest ID another one stands at (a leapfrog join), so
// that a test few messages pass costs about as many steps as they are.
// An ID in every range is a candidate, and its envelope is read and
// checked with f. The messages leased at enqueue without index entries
// (unindexedAfter) are candidates too, taken in ID order among the
// others. Each index step costs 1 of budget and each envelope read
// skipCost.
func (q *Queue) seekIndex(ctx context.Context, after string, budget int, rs [][]byte, f *filter, fn func(*mail.Envelope) bool) (string, error) {
	var next string
	err := q.db.View(func(txn *badger.Txn) error {
		pend := unindexedAfter(txn, after)
		its := make([]*badger.Iterator, len(rs))
		for i, r := range rs {
			its[i] = txn.NewIterator(badger.IteratorOptions{Prefix: r})
			defer its[i].Close()
		}
		// id is the message ID its[i] stands at; ok is false once it ran out.
		id := func(i int) (string, bool) {
			if !its[i].Valid() {
				return "", false
			}
			return string(its[i].Item().Key()[len(rs[i]):]), true
		}
		seek := func(i int, to string, past bool) {
			k := append(append([]byte(nil), rs[i]...), to...)
			if past {
				k = append(k, 0)
			}
			its[i].Seek(k)
		}
		for i := range its {
			if after == "" {
				its[i].Rewind()
			} else {
				seek(i, after, true)
			}
		}
		spent := 0
		decided := after // every ID up to it is done with
		// unindexed takes the candidates of pend before below ("": all of
		// them); it reports false when fn asked to stop (next is set).
		unindexed := func(below string) (bool, error) {
			for len(pend) > 0 && (below == "" || pend[0] < below) {
				cand := pend[0]
				pend = pend[1:]
				keep, err := q.candidate(txn, cand, f, fn)
				if err != nil {
					return false, err
				}
				spent += skipCost
				decided = cand
				if !keep {
					if below != "" || len(pend) > 0 {
						next = cand
					}
					return false, nil
				}
			}
			return true, nil
		}
	walk:
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			if spent >= budget && decided > after {
				next = decided
				return nil
			}
			// The candidate is the greatest ID a range stands at.
			cand, ok := id(0)
			if !ok {
				break walk
			}
			for i := 1; i < len(its); i++ {
				v, ok := id(i)
				if !ok {
					break walk
				}
				cand = max(cand, v)
			}
			aligned := true
			for i := range its {
				if v, _ := id(i); v < cand {
					seek(i, cand, false)
					spent++
					v, ok := id(i)
					if !ok {
						break walk
					}
					if v != cand {
						aligned = false
					}
				}
			}
			// No message below cand is in every range: the unindexed
			// ones below it come first (and cand, when it is not in
			// every range either).
			below := cand
			if !aligned {
				below += "\x00"
			}
			if more, err := unindexed(below); !more || err != nil {
				return err
			}
			if !aligned {
				// cand is decided, and all before it.
				decided = cand
				continue
			}
			if len(pend) > 0 && pend[0] == cand {
				pend = pend[1:] // in the index after all: taken once
			}
			keep, err := q.candidate(txn, cand, f, fn)
			if err != nil {
				return err
			}
			spent += 1 + skipCost
			decided = cand
			its[0].Next()
			if !keep {
				if _, ok := id(0); ok || len(pend) > 0 {
					next = cand
				}
				return nil
			}
		}
		// The index has no more candidates: the unindexed ones left.
		_, err := unindexed("")
		return err
	})
	return next, err
}

// candidate reads the envelope of message id, in every range, checks it
// against f and calls fn if it passes. keep is fn's answer, true when it
// did not pass.
func (q *Queue) candidate(txn *badger.Txn, id string, f *filter, fn func(*mail.Envelope) bool) (keep bool, err error) {
	env, err := getEnvelope(txn, id)
	if errors.Is(err, ErrNotFound) {
		return true, nil // an entry without an envelope passes nothing
	}
	if err != nil {
		return false, err
	}
	if !f.ok(env) {
		return true, nil
	}
	return fn(env), nil
}
