package metrics

import (
	"sync"
	"time"
)

// Series of the per-minute activity.
const (
	seriesAccepted = iota
	seriesDelivered
	seriesDeferred
	seriesBounced
	numSeries
)

// SeriesNames names the per-minute series, in Minute.Counts order.
var SeriesNames = [numSeries]string{"accepted", "delivered", "deferred", "bounced"}

// historyMinutes is how far back the per-minute activity goes.
const historyMinutes = 60

// RecentDeliveries is how many delivery results Activity keeps.
const RecentDeliveries = 100

// Activity keeps what the dashboard shows of the last hour: messages
// accepted and recipients delivered, deferred and bounced per minute, and
// the last RecentDeliveries delivery results. It lives in memory only.
type Activity struct {
	now func() time.Time

	mu      sync.Mutex
	minutes [historyMinutes]Minute // ring, indexed by minute number
	recent  [RecentDeliveries]Delivery
	next    int // next slot of recent
	filled  bool
}

// Minute is the activity of one minute.
type Minute struct {
	// Start is the minute's first instant.
	Start time.Time
	// Counts are indexed like SeriesNames.
	Counts [numSeries]int
}

func newActivity(now func() time.Time) *Activity { return &Activity{now: now} }

// slot returns the ring slot of t's minute, reset if it held an older
// minute. a.mu is held.
func (a *Activity) slot(t time.Time) *Minute {
	start := t.Truncate(time.Minute)
	m := &a.minutes[(start.Unix()/60)%historyMinutes]
	if !m.Start.Equal(start) {
		*m = Minute{Start: start}
	}
	return m
}

// count adds one to series s in the current minute.
func (a *Activity) count(s int) {
	t := a.now()
	a.mu.Lock()
	a.slot(t).Counts[s]++
	a.mu.Unlock()
}

// delivery records a delivery result.
func (a *Activity) delivery(d Delivery) {
	s := seriesDeferred
	switch d.Result {
	case Delivered:
		s = seriesDelivered
	case Bounced:
		s = seriesBounced
	}
	a.mu.Lock()
	a.slot(d.Time).Counts[s]++
	a.recent[a.next] = d
	a.next = (a.next + 1) % RecentDeliveries
	if a.next == 0 {
		a.filled = true
	}
	a.mu.Unlock()
}

// Minutes returns the last hour, oldest first, one Minute for each (empty
// minutes included), ending with the current one.
func (a *Activity) Minutes() []Minute {
	now := a.now().Truncate(time.Minute)
	out := make([]Minute, historyMinutes)
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range out {
		start := now.Add(-time.Duration(historyMinutes-1-i) * time.Minute)
		m := a.minutes[(start.Unix()/60)%historyMinutes]
		if !m.Start.Equal(start) {
			m = Minute{Start: start}
		}
		out[i] = m
	}
	return out
}

// Recent returns the last delivery results, newest first.
func (a *Activity) Recent() []Delivery {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.next
	if a.filled {
		n = RecentDeliveries
	}
	out := make([]Delivery, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, a.recent[(a.next-i+RecentDeliveries)%RecentDeliveries])
	}
	return out
}
