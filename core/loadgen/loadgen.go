// Package loadgen drives parallel SMTP sessions against a server and
// measures how many messages per second it accepts and how long it takes to
// answer end-of-data. It is the engine of cmd/sluice-load and `make bench`.
//
// Each session connects once, says EHLO, then loops MAIL, RCPT, DATA (sent
// as one pipelined group when the server offers PIPELINING) and a fixed
// message, until the duration is over or the message count is used up.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of Options.
const (
	DefaultConns    = 10
	DefaultSize     = 10 * 1024
	DefaultDuration = 10 * time.Second
	DefaultFrom     = "loadgen@sluice-load.invalid"
	DefaultTo       = "sink@bench.test"
	DefaultTimeout  = 30 * time.Second
)

// Options says what load to send where. Zero fields take the defaults above.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// Conns is how many sessions run in parallel.
	Conns int
	// Duration bounds the run in time and Count in messages (transactions
	// tried, accepted or not); when both are set, whichever ends first
	// stops it. With neither, the run lasts DefaultDuration.
	Duration time.Duration
	Count    int
	// Size is the message size in bytes, headers included.
	Size int
	// From and To are the envelope sender and the one recipient.
	From, To string
	// Helo is the name sent in EHLO; "localhost" when empty.
	Helo string
	// Timeout bounds each connect, write and wait for a reply.
	Timeout time.Duration
}

// withDefaults fills zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		return o, errors.New("loadgen: no server address: give host:port, like 127.0.0.1:2525")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return o, fmt.Errorf("loadgen: bad server address %q: %v; give host:port", o.Addr, err)
	}
	if o.Conns < 0 || o.Count < 0 || o.Size < 0 || o.Duration < 0 || o.Timeout < 0 {
		return o, errors.New("loadgen: connections, count, size, duration and timeout must not be negative")
	}
	if o.Conns == 0 {
		o.Conns = DefaultConns
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.Duration == 0 && o.Count == 0 {
		o.Duration = DefaultDuration
	}
	if o.From == "" {
		o.From = DefaultFrom
	}
	if o.To == "" {
		o.To = DefaultTo
	}
	if o.Helo == "" {
		o.Helo = "localhost"
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	for _, s := range []string{o.From, o.To, o.Helo} {
		if strings.ContainsAny(s, "<>\r\n ") {
			return o, fmt.Errorf("loadgen: bad address or name %q: it must not hold spaces, angle brackets or line breaks", s)
		}
	}
	return o, nil
}

// Run drives the load described by opts and reports on it. It returns an
// error when opts are invalid or no session could get past EHLO. Cancelling
// ctx closes the connections at once and returns the partial report with
// ctx's error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	payload := dataPayload(Message(opts.Size, opts.From, opts.To, time.Now()))
	l := &limit{count: int64(opts.Count)}

	// Connect every session first so the clock measures steady work only.
	sessions := make([]*session, opts.Conns)
	var wg sync.WaitGroup
	for i := range sessions {
		s := newSession(&opts, payload, l)
		sessions[i] = s
		wg.Go(func() { s.start(ctx) })
	}
	wg.Wait()
	var ready []*session
	var firstErr error
	for _, s := range sessions {
		if s.conn != nil {
			ready = append(ready, s)
		} else if firstErr == nil {
			firstErr = s.startErr
		}
	}
	if len(ready) == 0 {
		for _, s := range sessions {
			s.close()
		}
		return nil, fmt.Errorf("loadgen: no session to %s got past EHLO: %w", opts.Addr, firstErr)
	}

	start := time.Now()
	if opts.Duration > 0 {
		l.deadline = start.Add(opts.Duration)
	}
	for _, s := range ready {
		wg.Go(func() { s.loop(ctx) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, s := range sessions {
		s.close()
	}

	r := &Report{Addr: opts.Addr, Conns: opts.Conns, Connected: len(ready), Size: opts.Size, Elapsed: elapsed}
	var lat []time.Duration
	for _, s := range sessions {
		r.Accepted += s.accepted
		lat = append(lat, s.latencies...)
		for k, n := range s.errors {
			if r.Errors == nil {
				r.Errors, r.ErrorText = map[string]int{}, map[string]string{}
			}
			r.Errors[k] += n
			r.Failed += n
			if _, ok := r.ErrorText[k]; !ok {
				r.ErrorText[k] = s.errorText[k]
			}
		}
	}
	slices.Sort(lat)
	r.P50, r.P90, r.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	if elapsed > 0 {
		r.Rate = float64(r.Accepted) / elapsed.Seconds()
	}
	return r, ctx.Err()
}

// limit decides, shared by all sessions, whether another transaction may
// start.
type limit struct {
	deadline time.Time // zero: no time limit
	count    int64     // 0: no count limit
	taken    atomic.Int64
}

// take claims one transaction, or reports that the run is over.
func (l *limit) take(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	if !l.deadline.IsZero() && !time.Now().Before(l.deadline) {
		return false
	}
	return l.count == 0 || l.taken.Add(1) <= l.count
}
