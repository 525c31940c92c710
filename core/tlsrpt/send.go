package tlsrpt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

const (
	// retryInterval is how long a report that could not go out (DNS or
	// the queue failing) waits before the next try.
	retryInterval = time.Hour
	// giveUpAfter is how long after its day's end a report is still
	// tried; then its counts are dropped.
	giveUpAfter = 48 * time.Hour
	// lookupTimeout bounds one TLSRPT record lookup.
	lookupTimeout = 30 * time.Second
)

// SendDue sends the reports of every finished day whose time has come
// (Delay after the following midnight, UTC) and has not been sent yet,
// then forgets those days' counts. Run calls it every CheckInterval; it
// looks at the store only when a day has become due or a retry is up.
// Call it directly only while Run does not run.
func (r *Reporter) SendDue(ctx context.Context) {
	r.nextCheck = time.Time{}
	r.sendDue(ctx)
}

func (r *Reporter) sendDue(ctx context.Context) {
	now := r.now().UTC()
	if now.Before(r.nextCheck) {
		return
	}
	todayStart := now.Truncate(24 * time.Hour)
	next := todayStart.Add(24*time.Hour + r.opts.Delay)
	r.Flush()
	days, err := r.st.days()
	if err != nil {
		r.log.Warn("tlsrpt: listing the days to report", "err", err)
		r.nextCheck = now.Add(retryInterval)
		return
	}
	for _, day := range days {
		start, err := time.Parse(DayLayout, day)
		if err != nil || !start.Before(todayStart) {
			continue
		}
		due := start.Add(24*time.Hour + r.opts.Delay)
		if now.Before(due) {
			next = minTime(next, due)
			continue
		}
		giveUp := now.Sub(start.Add(24*time.Hour)) > giveUpAfter
		if !r.sendDay(ctx, day, now, giveUp) {
			next = minTime(next, now.Add(retryInterval))
		}
	}
	r.nextCheck = next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// sendDay reports one day to each of its policy domains and forgets the
// counts of those done; it returns false when some are kept for a retry.
func (r *Reporter) sendDay(ctx context.Context, day string, now time.Time, giveUp bool) bool {
	list, err := r.st.day(day, "")
	if err != nil {
		r.log.Warn("tlsrpt: reading a day's counts", "day", day, "err", err)
		return false
	}
	set := r.opts.Settings()
	set.Sender = set.withDefaults()
	if !set.Send {
		r.log.Debug("tlsrpt: not sending reports ([tlsrpt] enabled = false); dropping the day's counts", "day", day, "domains", len(list))
	}
	done := true
	for _, c := range list {
		if ctx.Err() != nil {
			return false
		}
		if set.Send {
			err := r.sendDomain(ctx, c, set.Sender, now)
			if err != nil && !giveUp {
				r.log.Warn("tlsrpt: report postponed", "domain", c.Domain, "day", day, "err", err, "retry_in", retryInterval)
				done = false
				continue
			}
			if err != nil {
				r.log.Warn("tlsrpt: report not sent; giving up", "domain", c.Domain, "day", day, "err", err)
			}
		}
		if err := r.remove(day, c.Domain); err != nil {
			r.log.Warn("tlsrpt: forgetting a reported day", "domain", c.Domain, "day", day, "err", err)
			done = false
		}
	}
	return done
}

// remove deletes one day's counts of one domain, again when a flush
// commits at the same moment.
func (r *Reporter) remove(day, domain string) error {
	var err error
	for range 10 {
		if err = r.st.remove(day, domain); err == nil || !errors.Is(err, errConflict) {
			break
		}
	}
	return err
}

// sendDomain looks up the domain's TLSRPT record and, if it names mailto:
// addresses, queues the report to them. It returns an error only when a
// later try may succeed; a domain that asks for no report is done.
func (r *Reporter) sendDomain(ctx context.Context, c *DomainCounts, s Sender, now time.Time) error {
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	rec, err := Lookup(lctx, r.opts.Resolver, c.Domain)
	cancel()
	if errors.Is(err, ErrNoRecord) {
		r.log.Debug("tlsrpt: no report wanted", "domain", c.Domain, "day", c.Day, "reason", err)
		return nil
	}
	if err != nil {
		return err
	}
	addrs, ignored := rec.Mailto()
	for _, u := range ignored {
		why := "not a mailto: URI with an address"
		if strings.HasPrefix(strings.ToLower(u), "https:") {
			why = "https reports are not posted; only mailto: is sent"
		}
		r.log.Info("tlsrpt: rua ignored", "domain", c.Domain, "rua", u, "why", why)
	}
	if len(addrs) == 0 {
		return nil
	}
	rep, err := NewReport(c, s)
	if err != nil {
		return nil // a day that does not parse never will
	}
	msg, err := rep.Message(s, addrs, now)
	if err != nil {
		return err
	}
	id, err := r.opts.Submit(ctx, s.From, addrs, msg)
	if err != nil {
		return fmt.Errorf("queueing the report: %w", err)
	}
	var ok, failed int64
	for _, p := range c.Policies {
		ok, failed = ok+p.Successful, failed+p.Failed
	}
	r.log.Info("tlsrpt: report queued", "id", id, "domain", c.Domain, "day", c.Day, "rcpts", strings.Join(addrs, ","),
		"successful", ok, "failed", failed, "report_id", rep.ReportID)
	return nil
}

// withDefaults fills in what the settings leave empty: the organization is
// From's domain, the contact From itself.
func (s Sender) withDefaults() Sender {
	s.Organization = cmp.Or(s.Organization, mail.Domain(s.From))
	s.Contact = cmp.Or(s.Contact, s.From)
	return s
}
