package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of one Run.
type Report struct {
	// Addr is the server that was driven.
	Addr string `json:"addr"`
	// Conns is how many sessions were asked for; Connected how many got a
	// 220 greeting and a 250 to EHLO.
	Conns     int `json:"conns"`
	Connected int `json:"connected"`
	// Size is the message size in bytes.
	Size int `json:"size"`
	// Elapsed runs from the moment all sessions were ready to the end of
	// the last transaction.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Accepted counts messages that got a 2xx reply to end-of-data.
	Accepted int `json:"accepted"`
	// Failed counts transactions and connections that did not end in an
	// accepted message; Errors splits them by reply code ("451", "550") or
	// "conn" for a network error or a reply that could not be read.
	Failed int            `json:"failed"`
	Errors map[string]int `json:"errors,omitempty"`
	// ErrorText holds the first reply text seen for each key of Errors.
	ErrorText map[string]string `json:"error_text,omitempty"`
	// Rate is accepted messages per second over Elapsed.
	Rate float64 `json:"msgs_per_sec"`
	// Latency from the end-of-data dot being written to the server's reply,
	// over accepted messages: 50th, 90th and 99th percentile and maximum.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// MarkdownHeader is the header of the table whose rows MarkdownRow writes.
const MarkdownHeader = "| target | conns | size | msgs/s | p50 | p90 | p99 | max | errors |\n" +
	"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"

// MarkdownRow returns the report as one row of a Markdown table under
// MarkdownHeader, with target in the first column.
func (r *Report) MarkdownRow(target string) string {
	return fmt.Sprintf("| %s | %d | %s | %.0f | %s | %s | %s | %s | %s |",
		target, r.Conns, sizeString(r.Size), r.Rate,
		ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.errorSummary())
}

// String summarises the report in a few lines for a person.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d connections, %s messages\n", r.Addr, r.Connected, r.Conns, sizeString(r.Size))
	fmt.Fprintf(&b, "accepted %d in %.2fs: %.1f msgs/s\n", r.Accepted, r.Elapsed.Seconds(), r.Rate)
	fmt.Fprintf(&b, "end-of-data to reply: p50 %s  p90 %s  p99 %s  max %s\n", ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max))
	fmt.Fprintf(&b, "errors: %s", r.errorSummary())
	for _, k := range slices.Sorted(maps.Keys(r.ErrorText)) {
		fmt.Fprintf(&b, "\n  %s: %s", k, r.ErrorText[k])
	}
	return b.String()
}

// errorSummary lists error counts as "451×3, conn×1", or "none".
func (r *Report) errorSummary() string {
	if len(r.Errors) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, r.Errors[k]))
	}
	return strings.Join(parts, ", ")
}

// ms formats a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return fmt.Sprintf("%.2f ms", f)
	case f < 100:
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.0f ms", f)
}

// sizeString writes a byte count as "10 KiB" when it is whole KiB.
func sizeString(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p / 100 * float64(len(sorted)))
	if float64(rank) < p/100*float64(len(sorted)) {
		rank++ // ceil
	}
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}
