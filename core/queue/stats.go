package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// Stats are the queue's figures at one moment (Queue.Stats).
type Stats struct {
	// Queued messages have had no delivery attempt yet, Deferred ones have
	// and wait for the next; Held ones wait for a release. The three do not
	// overlap.
	Queued   int `json:"queued"`
	Deferred int `json:"deferred"`
	Held     int `json:"held"`
	// Oldest is when the oldest message that is not held arrived (zero
	// with none), OldestID its queue ID.
	Oldest   time.Time `json:"oldest,omitzero"`
	OldestID string    `json:"oldest_id,omitempty"`
	// Bytes is the size of every message together.
	Bytes int64 `json:"bytes"`
	// Destinations are the domains with the most pending recipients that
	// failed at least once, most first (at most topDestinations), each
	// with the last error of one of them.
	Destinations []DestinationStats `json:"destinations"`
	// Domains are the pending recipients of messages that are not held,
	// by destination domain, most first, each with the ages of their
	// messages (qshape's table). Every domain is listed.
	Domains []DomainStats `json:"domains"`
	// AllDomains sums Domains (Domain "TOTAL"), all of them even when a
	// caller shortens the list.
	AllDomains DomainStats `json:"all_domains"`
}

// DestinationStats is one domain's deferred recipients.
type DestinationStats struct {
	Domain     string `json:"domain"`
	Recipients int    `json:"recipients"`
	LastError  string `json:"last_error,omitempty"`
}

// AgeBuckets are the upper bounds of the age columns of DomainStats.Ages,
// as Postfix's qshape draws them: under 5 minutes, under 10, … under
// 1280, and a last column for older ones.
var AgeBuckets = []time.Duration{
	5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute,
	160 * time.Minute, 320 * time.Minute, 640 * time.Minute, 1280 * time.Minute,
}

// DomainStats is one destination domain's pending recipients.
type DomainStats struct {
	Domain string `json:"domain"`
	// Recipients pending there; Deferred of them failed at least once.
	Recipients int `json:"recipients"`
	Deferred   int `json:"deferred"`
	// Ages counts the Recipients by the age of their message: Ages[i] is
	// younger than AgeBuckets[i] (and not younger than the bucket before),
	// the last element older than every bucket.
	Ages []int `json:"ages"`
	// Oldest is when the oldest of their messages arrived.
	Oldest time.Time `json:"oldest"`
}

// topDestinations is how many domains Stats.Destinations lists.
const topDestinations = 10

// Stats reads every envelope once (not the message bytes) and counts the
// queue by state and destination. It costs a scan of the envelopes:
// callers cache it (core/metrics keeps one for a few seconds).
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	now := q.opts.Now()
	type dest struct {
		DomainStats
		lastErr string
	}
	dests := map[string]*dest{}
	err := q.scanAll(ctx, func(env *mail.Envelope) {
		st.Bytes += env.Size
		switch State(env) {
		case StateHeld:
			st.Held++
			return
		case StateDeferred:
			st.Deferred++
		default:
			st.Queued++
		}
		if st.Oldest.IsZero() || env.Received.Before(st.Oldest) || env.Received.Equal(st.Oldest) && env.ID < st.OldestID {
			st.Oldest, st.OldestID = env.Received, env.ID
		}
		age := ageBucket(now.Sub(env.Received))
		for _, r := range env.Pending() {
			domain := mail.Domain(r.Addr)
			d := dests[domain]
			if d == nil {
				d = &dest{DomainStats: DomainStats{Domain: domain, Ages: make([]int, len(AgeBuckets)+1)}}
				dests[domain] = d
			}
			d.Recipients++
			d.Ages[age]++
			if d.Oldest.IsZero() || env.Received.Before(d.Oldest) {
				d.Oldest = env.Received
			}
			if r.Attempts == 0 {
				continue
			}
			d.Deferred++
			if r.LastError != "" {
				d.lastErr = r.LastError
			}
		}
	})
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	st.AllDomains = DomainStats{Domain: "TOTAL", Ages: make([]int, len(AgeBuckets)+1)}
	for _, d := range dests {
		st.Domains = append(st.Domains, d.DomainStats)
		st.AllDomains.Recipients += d.Recipients
		st.AllDomains.Deferred += d.Deferred
		for i, n := range d.Ages {
			st.AllDomains.Ages[i] += n
		}
		if st.AllDomains.Oldest.IsZero() || d.Oldest.Before(st.AllDomains.Oldest) {
			st.AllDomains.Oldest = d.Oldest
		}
		if d.Deferred > 0 {
			st.Destinations = append(st.Destinations, DestinationStats{Domain: d.Domain, Recipients: d.Deferred, LastError: d.lastErr})
		}
	}
	slices.SortFunc(st.Destinations, func(a, b DestinationStats) int {
		if c := cmp.Compare(b.Recipients, a.Recipients); c != 0 {
			return c
		}
		return cmp.Compare(a.Domain, b.Domain)
	})
	st.Destinations = st.Destinations[:min(len(st.Destinations), topDestinations)]
	slices.SortFunc(st.Domains, func(a, b DomainStats) int {
		if c := cmp.Compare(b.Recipients, a.Recipients); c != 0 {
			return c
		}
		return cmp.Compare(a.Domain, b.Domain)
	})
	return st, nil
}

// ageBucket is the index in DomainStats.Ages of a message of age age.
func ageBucket(age time.Duration) int {
	i, _ := slices.BinarySearchFunc(AgeBuckets, age, func(b, a time.Duration) int {
		if b <= a {
			return -1
		}
		return 1
	})
	return i
}
