// Package dashboard is Sluice's HTTP listener: Prometheus metrics at
// /metrics, health checks at /healthz and /readyz, and at / a dashboard an
// operator can open on a phone — the queue by state and its oldest message,
// accepted, delivered, deferred and bounced mail per minute over the last
// hour, the destinations deferring most, the plugins' latency and
// failures, the last delivery results, and a queue browser that holds,
// releases, flushes, removes and bounces messages through admin.Actions,
// the code the admin socket runs.
//
// Pages are rendered on the server with html/template; the stylesheet, the
// small script that refreshes the live parts and the templates are
// embedded in the binary (no CDN: it works offline). Every page but the
// health checks (and /metrics, unless Options.MetricsLogin) needs a login:
// a user of the users file or the configured token. The session is a
// cookie (HttpOnly, SameSite=Strict); every POST carries the session's
// CSRF token and is refused from another origin.
package dashboard

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/metrics"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Authenticator checks a login (core/users.File is one).
type Authenticator interface {
	Authenticate(user, password string) bool
}

// Options configure the dashboard.
type Options struct {
	// Metrics is the server's registry: /metrics, the queue figures and the
	// recent activity. Required.
	Metrics *metrics.Registry
	// Queue is browsed and acted on; nil leaves the queue browser out.
	Queue admin.Queue
	// Plugins lists the loaded plugins; nil for none.
	Plugins func() []filter.PluginInfo
	// Ready reports whether the server takes mail (/readyz); nil means
	// always.
	Ready func() bool
	// Users checks dashboard logins; nil for none.
	Users Authenticator
	// Token logs in as the user "token", and is accepted as a bearer
	// token; "" for none.
	Token string
	// MetricsLogin requires the login for /metrics too.
	MetricsLogin bool
	// Secure marks the session cookie Secure (the listener serves HTTPS).
	Secure bool
	// Hostname names the server in the page title.
	Hostname string
	// Logger receives logins and actions; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Dashboard serves the HTTP listener's pages.
type Dashboard struct {
	opts  Options
	log   *slog.Logger
	acts  admin.Actions
	pages map[string]*template.Template
	auth  *sessions
	mux   *http.ServeMux
}

// New builds the dashboard for opts.
func New(opts Options) (*Dashboard, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	d := &Dashboard{opts: opts, log: opts.Logger.With("component", "dashboard"),
		auth: newSessions(opts.Now)}
	d.acts = admin.Actions{Queue: opts.Queue, Log: d.log}
	var err error
	if d.pages, err = parsePages(opts.Now); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, "ok\n") })
	m.HandleFunc("GET /readyz", d.readyz)
	metricsH := opts.Metrics.Handler()
	if opts.MetricsLogin {
		metricsH = d.login(metricsH.ServeHTTP)
	}
	m.Handle("GET /metrics", metricsH)
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /login", d.loginPage)
	m.HandleFunc("POST /login", d.loginPost)
	m.HandleFunc("POST /logout", d.login(d.logout))
	m.HandleFunc("GET /{$}", d.login(d.overview))
	m.HandleFunc("GET /queue", d.login(d.queueList))
	m.HandleFunc("GET /queue/{id}", d.login(d.queueShow))
	m.HandleFunc("POST /queue/flush", d.login(d.queueFlush))
	m.HandleFunc("POST /queue/{id}/{op}", d.login(d.queueAction))
	d.mux = m
	return d, nil
}

// ServeHTTP serves every page, with headers that keep the pages from being
// framed, sniffed or given scripts from elsewhere.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	d.mux.ServeHTTP(w, r)
}

// readyz answers 200 once the server takes mail, else 503.
func (d *Dashboard) readyz(w http.ResponseWriter, _ *http.Request) {
	if d.opts.Ready() {
		text(w, http.StatusOK, "ready\n")
		return
	}
	text(w, http.StatusServiceUnavailable, "not ready\n")
}

// text writes a plain-text answer.
func text(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(s))
}
