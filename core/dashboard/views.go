package dashboard

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/metrics"
	"github.com/sluice-mta/sluice/core/queue"
)

// pageSize is how many messages a queue browser page lists.
const pageSize = 50

// page is what every template gets.
type page struct {
	Title string
	Host  string
	Nav   string
	User  string
	CSRF  string
	Flash string
	Done  string // the action Flash reports
	Now   time.Time
	Data  any
}

// render executes template name with data inside the common layout.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	p := page{Title: name, Host: d.opts.Hostname, Nav: name, Now: d.opts.Now(), Data: data,
		Flash: flashText(r.URL.Query().Get("done")), Done: r.URL.Query().Get("done")}
	if ss := sessionOf(r); ss != nil {
		p.User, p.CSRF = ss.user, ss.csrf
	}
	var b bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		d.log.Error("dashboard template", "page", name, "err", err)
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// flashText says what an action just did.
func flashText(op string) string {
	switch op {
	case "hold":
		return "Message held."
	case "release":
		return "Message released: due now."
	case "bounce":
		return "Message bounced: the sender gets a DSN."
	case "remove":
		return "Message removed."
	case "flush":
		return "Queue flushed: every message that is not held is due now."
	}
	return ""
}

// overviewData is the overview page.
type overviewData struct {
	Ready    bool
	QueueOK  bool
	QueueErr string
	Queue    metrics.QueueStats
	Oldest   time.Duration
	Chart    template.HTML
	Totals   [4]int
	Series   [4]string
	Plugins  []filter.PluginInfo
	Recent   []metrics.Delivery
	Browsing bool
}

// overview serves /: the whole picture on one page.
func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	data := overviewData{Ready: d.opts.Ready(), Series: metrics.SeriesNames, Browsing: d.opts.Queue != nil}
	qs, ok, err := d.opts.Metrics.QueueStats(r.Context())
	data.QueueOK, data.Queue = ok && err == nil, qs
	if err != nil {
		data.QueueErr = err.Error()
	}
	if !qs.Oldest.IsZero() {
		data.Oldest = d.opts.Now().Sub(qs.Oldest).Round(time.Second)
	}
	minutes := d.opts.Metrics.Activity().Minutes()
	for _, m := range minutes {
		for i, c := range m.Counts {
			data.Totals[i] += c
		}
	}
	data.Chart = chart(minutes)
	if d.opts.Plugins != nil {
		data.Plugins = d.opts.Plugins()
	}
	data.Recent = d.opts.Metrics.Activity().Recent()
	d.render(w, r, "overview", data)
}

// row is one message in the queue browser.
type row struct {
	mail.Envelope
	State   string
	Pending int
	Error   string
}

// stateOf names a message's state as the queue gauges do.
func stateOf(e *mail.Envelope) string {
	switch {
	case e.Held:
		return "held"
	case e.Attempts > 0:
		return "deferred"
	}
	return "queued"
}

// matches reports whether e's ID, sender or a recipient contains q
// (case-insensitively); an empty q matches all.
func matches(e *mail.Envelope, q string) bool {
	if q == "" {
		return true
	}
	q = strings.ToLower(q)
	if strings.Contains(strings.ToLower(e.ID), q) || strings.Contains(strings.ToLower(e.From), q) {
		return true
	}
	for _, r := range e.Rcpts {
		if strings.Contains(strings.ToLower(r.Addr), q) {
			return true
		}
	}
	return false
}

// listData is the queue browser page.
type listData struct {
	Q, State         string
	Rows             []row
	Total, Page      int
	Pages            int
	PrevURL, NextURL string
}

// queueList serves /queue: messages in arrival order, searched by q (an
// address or an ID) and state, pageSize a page.
func (d *Dashboard) queueList(w http.ResponseWriter, r *http.Request) {
	if d.opts.Queue == nil {
		http.NotFound(w, r)
		return
	}
	envs, err := d.opts.Queue.List(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	state := r.URL.Query().Get("state")
	data := listData{Q: q, State: state}
	var all []row
	for i := range envs {
		e := &envs[i]
		if !matches(e, q) || (state != "" && stateOf(e) != state) {
			continue
		}
		rw := row{Envelope: *e, State: stateOf(e)}
		for _, p := range e.Pending() {
			rw.Pending++
			if rw.Error == "" {
				rw.Error = p.LastError
			}
		}
		all = append(all, rw)
	}
	data.Total = len(all)
	data.Pages = max((len(all)+pageSize-1)/pageSize, 1)
	data.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	data.Page = min(max(data.Page, 1), data.Pages)
	lo := (data.Page - 1) * pageSize
	data.Rows = all[lo:min(lo+pageSize, len(all))]
	link := func(p int) string {
		v := url.Values{"page": {strconv.Itoa(p)}}
		if q != "" {
			v.Set("q", q)
		}
		if state != "" {
			v.Set("state", state)
		}
		return "/queue?" + v.Encode()
	}
	if data.Page > 1 {
		data.PrevURL = link(data.Page - 1)
	}
	if data.Page < data.Pages {
		data.NextURL = link(data.Page + 1)
	}
	d.render(w, r, "queue", data)
}

// showData is the message page.
type showData struct {
	row
	Headers string
	Ops     []admin.Op
}

// queueShow serves /queue/{id}: envelope, recipients, headers, actions.
func (d *Dashboard) queueShow(w http.ResponseWriter, r *http.Request) {
	if d.opts.Queue == nil {
		http.NotFound(w, r)
		return
	}
	m, err := d.opts.Queue.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, err)
		return
	}
	h, _ := mail.ParseHeader(m.Body)
	data := showData{row: row{Envelope: m.Envelope, State: stateOf(&m.Envelope), Pending: len(m.Pending())},
		Headers: string(h.Bytes()), Ops: admin.Ops}
	d.render(w, r, "message", data)
}

// queueAction serves POST /queue/{id}/{op}.
func (d *Dashboard) queueAction(w http.ResponseWriter, r *http.Request) {
	op, id := admin.Op(r.PathValue("op")), r.PathValue("id")
	if d.opts.Queue == nil || !slices.Contains(admin.Ops, op) {
		http.NotFound(w, r)
		return
	}
	if err := d.acts.Do(r.Context(), op, id, "http:"+sessionOf(r).user); err != nil {
		d.fail(w, err)
		return
	}
	to := "/queue/" + url.PathEscape(id) + "?done=" + string(op)
	if op == admin.OpRemove || op == admin.OpBounce {
		to = "/queue?done=" + string(op)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// queueFlush serves POST /queue/flush (domain= for one domain).
func (d *Dashboard) queueFlush(w http.ResponseWriter, r *http.Request) {
	if d.opts.Queue == nil {
		http.NotFound(w, r)
		return
	}
	if err := d.acts.Flush(r.Context(), strings.TrimSpace(r.PostFormValue("domain")), "http:"+sessionOf(r).user); err != nil {
		d.fail(w, err)
		return
	}
	http.Redirect(w, r, "/queue?done=flush", http.StatusSeeOther)
}

// fail answers a queue error: 404 for a message that is gone.
func (d *Dashboard) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, queue.ErrNotFound) {
		http.Error(w, "no such message in the queue (delivered or removed meanwhile?)", http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// parsePages parses each page template with the layout; now is the clock
// of "since".
func parsePages(now func() time.Time) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ago":   ago,
		"since": func(t time.Time) string { return ago(now().Sub(t)) },
		"bytes": humanBytes,
		"short": func(s string, n int) string {
			if len([]rune(s)) <= n {
				return s
			}
			return string([]rune(s)[:n-1]) + "…"
		},
		"ms": func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) },
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"overview", "queue", "message", "login"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard templates: %w", err)
		}
		out[name] = t
	}
	return out, nil
}

// ago writes a duration the way a person reads it: "42s", "5m", "3h12m",
// "2d4h".
func ago(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// humanBytes writes a size in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(k*k*k))
}
