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
	"github.com/sluice-mta/sluice/pluginapi"
)

// WriteList prints the queue as `sluice queue ls` shows it: one line a
// message with its attempts and next attempt, then one indented line a
// recipient with its state, attempts, relay and last error; a held message
// has a line with the reason and when it was held, and its next attempt is
// when its hold expires. Message lines and recipient lines are aligned
// each among themselves.
func WriteList(w io.Writer, envs []mail.Envelope, now time.Time) error {
	var msgs, rcpts bytes.Buffer
	mw := tabwriter.NewWriter(&msgs, 0, 0, 2, ' ', 0)
	rw := tabwriter.NewWriter(&rcpts, 0, 0, 2, ' ', 0)
	fmt.Fprintln(mw, "ID\tSIZE\tARRIVED\tSTATE\tATTEMPTS\tNEXT ATTEMPT\tFROM")
	counts := make([]int, len(envs))
	holds := make([]string, len(envs))
	for i, e := range envs {
		state := "queued"
		if e.Held {
			state = "held"
		}
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
	out := bufio.NewWriter(w)
	out.WriteString(ml[0])
	for i, n := range counts {
		out.WriteString(ml[i+1])
		out.WriteString(holds[i])
		for _, l := range rl[:n] {
			out.WriteString(l)
		}
		rl = rl[n:]
	}
	fmt.Fprintf(out, "-- %d message(s)\n", len(envs))
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
