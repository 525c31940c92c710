package tlsrpt

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sluice-mta/sluice/core/mail"
)

// Defaults for the zero values of Options.
const (
	DefaultBuffer        = 10000
	DefaultFlushInterval = 10 * time.Second
	DefaultCheckInterval = time.Minute
)

// Settings are the [tlsrpt] keys, read again before each day's reports so
// that a reload applies.
type Settings struct {
	// Send turns the daily reports on; off, a finished day's counts are
	// dropped.
	Send bool
	Sender
}

// Options configures a Reporter.
type Options struct {
	// DB keeps the counts (the queue's database); the caller closes it,
	// after Close.
	DB *badger.DB
	// Resolver looks up the TLSRPT records.
	Resolver TXTResolver
	// Submit queues a report message from from to rcpts and returns its
	// queue ID; the queue delivers (and DKIM-signs) it as our own mail.
	Submit func(ctx context.Context, from string, rcpts []string, msg []byte) (string, error)
	// Settings returns the settings in force.
	Settings func() Settings
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Buffer is how many results may wait for the aggregator before
	// further ones are dropped (and counted); DefaultBuffer when zero.
	Buffer int
	// FlushInterval is how often counts are written to DB.
	FlushInterval time.Duration
	// CheckInterval is how often Run looks at the clock for a finished
	// day to report.
	CheckInterval time.Duration
	// Delay is how long after midnight (UTC) a day's reports go out; a
	// random one of 1 to 10 minutes when zero, so that not every sender
	// reports at the same second.
	Delay time.Duration
	// Logger receives what happens; nil discards it.
	Logger *slog.Logger
}

// Reporter records TLS results and sends the daily reports. Record never
// blocks; the rest is safe for concurrent use.
type Reporter struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	st      store
	in      chan dated
	dropped atomic.Int64

	// mu guards pending, the counts not yet written; Record never takes
	// it.
	mu      sync.Mutex
	pending map[string]*DomainCounts // by day + "/" + domain

	// The sender's state, only touched by sendDue.
	nextCheck time.Time
}

var _ Recorder = (*Reporter)(nil)

// dated is a result with the UTC day it happened on, in days since 1970
// (a string would cost Record an allocation).
type dated struct {
	day int64
	r   Result
}

// New returns a Reporter; Run makes it flush and report.
func New(opts Options) *Reporter {
	opts.FlushInterval = cmp.Or(opts.FlushInterval, DefaultFlushInterval)
	opts.CheckInterval = cmp.Or(opts.CheckInterval, DefaultCheckInterval)
	if opts.Delay == 0 {
		opts.Delay = time.Minute + rand.N(9*time.Minute)
	}
	r := &Reporter{opts: opts, log: opts.Logger, now: opts.Now, st: store{opts.DB},
		in: make(chan dated, cmp.Or(opts.Buffer, DefaultBuffer)), pending: map[string]*DomainCounts{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Record counts one session's TLS outcome under today's date. It never
// waits: when the buffer is full (the aggregator cannot keep up) the
// result is dropped and counted.
func (r *Reporter) Record(_ context.Context, res Result) {
	res.PolicyDomain = mail.NormDomain(res.PolicyDomain)
	if res.PolicyDomain == "" {
		return
	}
	select {
	case r.in <- dated{day: r.now().Unix() / 86400, r: res}:
	default:
		r.dropped.Add(1)
	}
}

// Dropped returns how many results were dropped for a full buffer.
func (r *Reporter) Dropped() int64 { return r.dropped.Load() }

// Run aggregates results, writes them every FlushInterval and sends each
// finished day's reports, until ctx ends; then it writes what it holds.
func (r *Reporter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.opts.CheckInterval)
		defer t.Stop()
		for {
			r.sendDue(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	flush := time.NewTicker(r.opts.FlushInterval)
	defer flush.Stop()
	var reported int64
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			r.Flush()
			return nil
		case d := <-r.in:
			r.mu.Lock()
			r.addLocked(d)
			r.drainLocked()
			r.mu.Unlock()
		case <-flush.C:
			r.Flush()
			if n := r.dropped.Load(); n != reported {
				r.log.Warn("tlsrpt: results dropped: the aggregator could not keep up", "dropped", n-reported)
				reported = n
			}
		}
	}
}

// Close writes what is still buffered, for a Reporter whose Run has
// returned (or never ran); the caller closes DB after it.
func (r *Reporter) Close() error { return r.flush() }

// Flush writes the results buffered so far to the store; a failure is
// logged and the counts kept for the next try.
func (r *Reporter) Flush() {
	if err := r.flush(); err != nil {
		r.log.Warn("tlsrpt: writing counts", "err", err)
	}
}

func (r *Reporter) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushLocked()
}

func (r *Reporter) flushLocked() error {
	r.drainLocked()
	if len(r.pending) == 0 {
		return nil
	}
	batch := make([]*DomainCounts, 0, len(r.pending))
	for _, c := range r.pending {
		batch = append(batch, c)
	}
	if err := r.st.add(batch); err != nil {
		return err
	}
	clear(r.pending)
	return nil
}

// drainLocked moves every buffered result into pending.
func (r *Reporter) drainLocked() {
	for {
		select {
		case d := <-r.in:
			r.addLocked(d)
		default:
			return
		}
	}
}

func (r *Reporter) addLocked(d dated) {
	// The domain goes into keys and the report's header fields: only a
	// valid one.
	if _, reply := mail.CheckDomain(d.r.PolicyDomain); reply != nil || d.r.PolicyDomain[0] == '[' {
		r.log.Debug("tlsrpt: result for an invalid policy domain ignored", "domain", d.r.PolicyDomain)
		return
	}
	day := Day(time.Unix(d.day*86400, 0))
	k := day + "/" + d.r.PolicyDomain
	c := r.pending[k]
	if c == nil {
		c = &DomainCounts{Day: day, Domain: d.r.PolicyDomain}
		r.pending[k] = c
	}
	c.add(&d.r)
}

// Today returns today's (UTC) counts so far, of every policy domain or of
// the one named, by domain; results recorded a moment ago are included.
func (r *Reporter) Today(_ context.Context, domain string) (string, []DomainCounts, error) {
	day := Day(r.now())
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.flushLocked(); err != nil {
		return day, nil, err
	}
	list, err := r.st.day(day, mail.NormDomain(domain))
	out := make([]DomainCounts, len(list))
	for i, c := range list {
		out[i] = *c
	}
	return day, out, err
}
