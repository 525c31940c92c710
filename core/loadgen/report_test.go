package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, v := range n {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2), 50, 1 * time.Millisecond},
		{ms(1, 2, 3), 50, 2 * time.Millisecond},
		{ms(hundred...), 50, 50 * time.Millisecond},
		{ms(hundred...), 90, 90 * time.Millisecond},
		{ms(hundred...), 99, 99 * time.Millisecond},
		{ms(hundred...), 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.in), tt.p, got, tt.want)
		}
	}
}

func TestReportText(t *testing.T) {
	r := &Report{
		Addr: "127.0.0.1:2525", Conns: 20, Connected: 20, Size: 10240,
		Elapsed: 10 * time.Second, Accepted: 12345, Rate: 1234.5,
		P50: 1500 * time.Microsecond, P90: 12 * time.Millisecond, P99: 250 * time.Millisecond, Max: time.Second,
		Failed: 4, Errors: map[string]int{"451": 3, "conn": 1}, ErrorText: map[string]string{"451": "4.3.0 try later", "conn": "EOF"},
	}
	row := r.MarkdownRow("sluice")
	wantRow := "| sluice | 20 | 10 KiB | 1234 | 1.50 ms | 12.0 ms | 250 ms | 1000 ms | 451×3, conn×1 |"
	if row != wantRow {
		t.Errorf("MarkdownRow =\n%s\nwant\n%s", row, wantRow)
	}
	if cols, hcols := strings.Count(row, "|"), strings.Count(strings.Split(MarkdownHeader, "\n")[0], "|"); cols != hcols {
		t.Errorf("row has %d bars, header %d", cols, hcols)
	}
	s := r.String()
	for _, want := range []string{"1234.5 msgs/s", "p99 250 ms", "451: 4.3.0 try later", "20/20 connections"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	if got := (&Report{}).MarkdownRow("x"); !strings.HasSuffix(got, "| none |") {
		t.Errorf("report without errors: %s", got)
	}
}
