package admin

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/pluginapi"
)

// WriteList prints the queue as `sluice queue ls` shows it (see
// ListWriter), all of envs as one page.
func WriteList(w io.Writer, envs []mail.Envelope, now time.Time) error {
	lw := NewListWriter(w, now)
	if err := lw.Write(envs); err != nil {
		return err
	}
	return lw.Close()
}

// ListWriter prints the queue page by page as `sluice queue ls` shows it:
// one line a message with its attempts and next attempt, then one
// indented line a recipient with its state, attempts, relay and last
// error; a held message has a line with the reason and when it was held,
// and its next attempt is when its hold expires. Message lines and
// recipient lines are aligned each among themselves, within a page; the
// column header comes first and a count of the messages last (Close).
type ListWriter struct {
	w      io.Writer
	now    time.Time
	n      int  // messages written
	header bool // the header is written
}

// NewListWriter returns a ListWriter printing to w, with next attempts
// relative to now.
func NewListWriter(w io.Writer, now time.Time) *ListWriter {
	return &ListWriter{w: w, now: now}
}

// Close prints the count of the messages written.
func (l *ListWriter) Close() error {
	if !l.header {
		if err := l.Write(nil); err != nil { // the header alone
			return err
		}
	}
	_, err := fmt.Fprintf(l.w, "-- %d message(s)\n", l.n)
	return err
}

// Write prints one page.
func (l *ListWriter) Write(envs []mail.Envelope) error {
	if l.header && len(envs) == 0 {
		return nil
	}
	now := l.now
	var msgs, rcpts bytes.Buffer
	mw := tabwriter.NewWriter(&msgs, 0, 0, 2, ' ', 0)
	rw := tabwriter.NewWriter(&rcpts, 0, 0, 2, ' ', 0)
	first := !l.header
	l.header = true
	if first {
		fmt.Fprintln(mw, "ID\tSIZE\tARRIVED\tSTATE\tATTEMPTS\tNEXT ATTEMPT\tFROM")
	}
	l.n += len(envs)
	counts := make([]int, len(envs))
	holds := make([]string, len(envs))
	for i, e := range envs {
		state := queue.State(&e)
		if e.DelayWarned {
			state += ",warned"
		}
		next := "-"
		if (!e.Held || !e.HeldAt.IsZero() && e.NextAttempt.After(e.HeldAt)) && !e.NextAttempt.IsZero() {
			next = "now"
			if e.NextAttempt.After(now) {
				next = fmt.Sprintf("%s (in %s)", e.NextAttempt.Local().Format(time.DateTime), e.NextAttempt.Sub(now).Round(time.Second))
			}
			if e.Held {
				next = "expires " + next
			}
		}
		if e.Held {
			holds[i] = "  held: " + cmp.Or(oneLine(e.HoldReason), "no reason recorded")
			if !e.HeldAt.IsZero() {
				holds[i] += ", since " + e.HeldAt.Local().Format(time.DateTime)
			}
			holds[i] += "\n"
		}
		from := e.From
		if from == "" {
			from = "<> (bounce)"
		}
		fmt.Fprintf(mw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.Size, e.Received.Local().Format(time.DateTime), state, e.Attempts, next, from)
		for _, r := range e.Rcpts {
			relay := r.Relay
			if relay == "" {
				relay = "-"
			}
			fmt.Fprintf(rw, "  -> %s\t%s\tattempts=%d\trelay=%s", r.Addr, r.State, r.Attempts, relay)
			if r.TLS != "" {
				fmt.Fprintf(rw, " tls=%s", r.TLS)
			}
			if r.TLSPolicy != "" {
				fmt.Fprintf(rw, " tls_policy=%s", r.TLSPolicy)
			}
			if r.LastError != "" {
				fmt.Fprintf(rw, "\t%s %s", r.DSNCode, oneLine(r.LastError))
			}
			fmt.Fprintln(rw)
		}
		counts[i] = len(e.Rcpts)
	}
	if err := mw.Flush(); err != nil {
		return err
	}
	if err := rw.Flush(); err != nil {
		return err
	}
	ml := strings.SplitAfter(msgs.String(), "\n")
	rl := strings.SplitAfter(rcpts.String(), "\n")
	out := bufio.NewWriter(l.w)
	if first {
		out.WriteString(ml[0])
		ml = ml[1:]
	}
	for i, n := range counts {
		out.WriteString(ml[i])
		out.WriteString(holds[i])
		for _, l := range rl[:n] {
			out.WriteString(l)
		}
		rl = rl[n:]
	}
	return out.Flush()
}

// WriteDetail prints one message as `sluice queue show` shows it.
func WriteDetail(w io.Writer, d *Detail) error {
	e := d.Envelope
	fmt.Fprintf(w, "ID:        %s\nFrom:      <%s>\nReceived:  %s\nSize:      %d\nAttempts:  %d\nHeld:      %v\n",
		e.ID, e.From, e.Received.Format(time.RFC3339), e.Size, e.Attempts, e.Held)
	if e.Held {
		fmt.Fprintf(w, "Hold:      %s", cmp.Or(oneLine(e.HoldReason), "no reason recorded"))
		if !e.HeldAt.IsZero() {
			fmt.Fprintf(w, ", since %s", e.HeldAt.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	switch {
	case e.Held && !e.HeldAt.IsZero() && e.NextAttempt.After(e.HeldAt):
		fmt.Fprintf(w, "Expires:   %s (bounced unless released)\n", e.NextAttempt.Format(time.RFC3339))
	case !e.Held && !e.NextAttempt.IsZero():
		fmt.Fprintf(w, "Next:      %s\n", e.NextAttempt.Format(time.RFC3339))
	}
	if e.ClientIP != "" {
		fmt.Fprintf(w, "Client:    %s (HELO %s)\n", e.ClientIP, e.Helo)
	}
	for _, r := range e.Rcpts {
		fmt.Fprintf(w, "Rcpt:      <%s> %s attempts=%d", r.Addr, r.State, r.Attempts)
		if r.LastError != "" {
			fmt.Fprintf(w, " relay=%s dsn=%s (%s)", r.Relay, r.DSNCode, oneLine(r.LastError))
		}
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintf(w, "\n%s", d.Headers)
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// WritePlugins prints the plugins as `sluice plugin ls` shows them.
func WritePlugins(w io.Writer, ps []filter.PluginInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tPLUGIN\tHOOKS\tGRANTS\tPOLICY\tCALLS\tERRORS\tP50\tP99\tPOOL")
	for _, p := range ps {
		var hooks []string
		for h := pluginapi.Hook(0); h < pluginapi.NumHooks; h++ {
			if p.Hooks&(1<<h) != 0 {
				hooks = append(hooks, h.String())
			}
		}
		grants := strings.Join(p.Grants, ",")
		if grants == "" {
			grants = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%d (%d-%d)\n", p.Order, p.Name, strings.Join(hooks, ","),
			grants, p.FailurePolicy, p.Calls, p.Errors, p.P50, p.P99, p.Pool, p.PoolMin, p.PoolMax)
	}
	fmt.Fprintf(tw, "-- %d plugin(s)\n", len(ps))
	return tw.Flush()
}

// WriteStats prints the queue's figures as `sluice queue stats` shows
// them: messages by state, their size, the oldest message, then, like
// Postfix's qshape, one line a destination domain with its pending
// recipients (T), how many of them by the age of their message in
// minutes (under 5, under 10, … over 1280), and how many were deferred.
// The TOTAL line sums every domain, listed or not.
func WriteStats(w io.Writer, st queue.Stats, now time.Time) error {
	out := bufio.NewWriter(w)
	fmt.Fprintf(out, "queued:    %d\ndeferred:  %d\nheld:      %d\ntotal:     %d messages, %.1f MiB\n",
		st.Queued, st.Deferred, st.Held, st.Queued+st.Deferred+st.Held, float64(st.Bytes)/(1<<20))
	if st.Oldest.IsZero() {
		fmt.Fprintln(out, "oldest:    -")
	} else {
		fmt.Fprintf(out, "oldest:    %s %s (%s ago)\n", st.OldestID, st.Oldest.Local().Format(time.DateTime), now.Sub(st.Oldest).Round(time.Second))
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "DOMAIN\tT\t")
	for _, b := range queue.AgeBuckets {
		fmt.Fprintf(tw, "%d\t", int(b.Minutes()))
	}
	fmt.Fprintf(tw, "%d+\tDEFERRED\t\n", int(queue.AgeBuckets[len(queue.AgeBuckets)-1].Minutes()))
	total := st.AllDomains
	if total.Ages == nil { // an empty queue
		total = queue.DomainStats{Domain: "TOTAL", Ages: make([]int, len(queue.AgeBuckets)+1)}
	}
	for _, d := range append([]queue.DomainStats{total}, st.Domains...) {
		fmt.Fprintf(tw, "%s\t%d\t", cmp.Or(d.Domain, "(no domain)"), d.Recipients)
		for _, n := range d.Ages {
			fmt.Fprintf(tw, "%d\t", n)
		}
		fmt.Fprintf(tw, "%d\t\n", d.Deferred)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Flush()
}
