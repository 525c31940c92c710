package dashboard

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/sluice-mta/sluice/core/metrics"
)

// Chart geometry, in SVG user units (the SVG scales to the page width).
const (
	chartW, chartH = 600.0, 180.0
	padL, padR     = 36.0, 8.0
	padT, padB     = 8.0, 22.0
)

// seriesClass is each series' CSS class (colours live in the stylesheet;
// the page's CSP allows no inline style).
var seriesClass = [...]string{"s-accepted", "s-delivered", "s-deferred", "s-bounced"}

// chart draws the per-minute series as an inline SVG line chart: one
// polyline a series, the y axis from 0 to the largest count, the x axis the
// last hour. Everything in it is numbers and fixed words, so it is safe as
// template.HTML.
func chart(minutes []metrics.Minute) template.HTML {
	top := 1
	for _, m := range minutes {
		for _, c := range m.Counts {
			top = max(top, c)
		}
	}
	top = niceCeil(top)
	n := len(minutes)
	x := func(i int) float64 {
		if n <= 1 {
			return padL
		}
		return padL + float64(i)*(chartW-padL-padR)/float64(n-1)
	}
	y := func(v int) float64 { return padT + (chartH-padT-padB)*(1-float64(v)/float64(top)) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="Mail per minute over the last hour">`, chartW, chartH)
	for _, v := range []int{0, top / 2, top} {
		fmt.Fprintf(&b, `<line class="grid" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y(v), y(v))
		fmt.Fprintf(&b, `<text class="axis" x="%g" y="%.1f" text-anchor="end">%d</text>`, padL-4, y(v)+4, v)
	}
	for i, label := range map[int]string{0: "-60m", n / 2: "-30m", n - 1: "now"} {
		anchor := "middle"
		if i == n-1 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%g" text-anchor="%s">%s</text>`, x(i), chartH-6, anchor, label)
	}
	for s := range seriesClass {
		fmt.Fprintf(&b, `<polyline class="line %s" points="`, seriesClass[s])
		for i, m := range minutes {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(m.Counts[s]))
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten.
func niceCeil(n int) int {
	p := 1
	for {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
		p *= 10
	}
}
