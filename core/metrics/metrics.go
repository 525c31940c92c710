// Package metrics is Sluice's one Prometheus registry (client_golang): every
// sluice_ metric of the core and of the plugins is defined and registered
// here, beside the Go runtime and process collectors, and served by Handler
// (the HTTP listener) and WritePrometheus (the admin socket).
//
// Other packages never import it for a global: each declares a small
// observer interface of its own (smtpd.Observer, queue.Observer,
// filter.Observer, filter.Metrics) and the server hands them the Registry,
// which implements them all. Figures that already live elsewhere (queue
// depth, plugin instances, certificate expiry) are read at scrape time from
// the Sources the server sets.
//
// Every label has a bounded set of values: services, stages, reasons,
// results, transports, hooks and verdicts are fixed lists; plugin names are
// the loaded plugins; destinations are the configured routes plus at most
// Options.TopDestinations others (see destinations.go), the rest "other".
package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// Options configure a Registry.
type Options struct {
	// Routes are the destination domains configured with a route of their
	// own; each always gets its own destination label.
	Routes []string
	// TopDestinations is how many other destination domains get a label of
	// their own (0 means DefaultTopDestinations, negative none).
	TopDestinations int
	// QueueMaxAge is how long a queue scan is reused by later scrapes and
	// dashboard views (0 means DefaultQueueMaxAge; negative scans every
	// time), or ten times as long as the scan took when that is longer.
	QueueMaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults for zero Options fields.
const (
	DefaultTopDestinations = 20
	DefaultQueueMaxAge     = 5 * time.Second
)

// Sources are the figures read at scrape time. Any may be nil.
type Sources struct {
	// Queue scans the queue.
	Queue func(ctx context.Context) (QueueStats, error)
	// PluginInstances returns the live instances of each loaded plugin.
	PluginInstances func() map[string]int
	// CertExpiry returns when the served TLS certificate expires (zero
	// when there is none).
	CertExpiry func() time.Time
}

// Registry holds every sluice_ metric. Its methods are safe for concurrent
// use.
type Registry struct {
	opts Options
	reg  *prometheus.Registry

	smtpConns    *prometheus.CounterVec
	smtpSessions *prometheus.GaugeVec
	smtpMessages *prometheus.CounterVec
	smtpRejects  *prometheus.CounterVec
	smtpTLS      *prometheus.CounterVec
	smtpTLSFail  *prometheus.CounterVec
	smtpStress   *prometheus.GaugeVec
	smtpStressN  *prometheus.CounterVec
	authAttempts *prometheus.CounterVec

	queueCommit prometheus.Histogram

	deliveryAttempts *prometheus.CounterVec
	deliverySeconds  prometheus.Histogram
	destAttempts     *prometheus.CounterVec
	deliveryTLS      *prometheus.CounterVec
	dests            *destinations

	pluginCalls    *prometheus.CounterVec
	pluginSeconds  *pluginCallSeconds
	pluginFailures *prometheus.CounterVec
	counters       *pluginCounters
	// plugins caches each plugin's call series (plugins.go); pluginsMu
	// serialises its replacement.
	plugins   atomic.Pointer[pluginSet]
	pluginsMu sync.Mutex

	sources  atomic.Pointer[Sources]
	queueMu  sync.Mutex // serialises scans; guards the cache below
	queueAt  time.Time
	queueVal QueueStats
	queueErr error
	// queueTook is how long the last scan took.
	queueTook time.Duration

	activity *Activity
}

// New builds the registry with every metric registered.
func New(opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TopDestinations == 0 {
		opts.TopDestinations = DefaultTopDestinations
	}
	if opts.QueueMaxAge == 0 {
		opts.QueueMaxAge = DefaultQueueMaxAge
	}
	r := &Registry{opts: opts, reg: prometheus.NewRegistry()}
	r.sources.Store(&Sources{})
	r.plugins.Store(&pluginSet{})
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		r.reg.MustRegister(c)
		return c
	}
	r.smtpConns = counter("sluice_smtp_connections_total",
		"SMTP connections by service and result (accepted; refused: over a connection limit; evicted: its slot given to a newcomer in stress mode).", "service", "result")
	r.smtpSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_smtp_sessions",
		Help: "SMTP sessions open now, by service."}, []string{"service"})
	r.reg.MustRegister(r.smtpSessions)
	r.smtpMessages = counter("sluice_smtp_messages_total",
		"Messages at the end of DATA by service and result (accepted, rejected, tempfailed, discarded, held).", "service", "result")
	r.smtpRejects = counter("sluice_smtp_rejects_total",
		"SMTP refusals by service, stage (connect, command, helo, auth, mail, rcpt, data) and reason ("+reasonList()+").",
		"service", "stage", "reason")
	r.smtpTLS = counter("sluice_smtp_tls_total",
		"Inbound TLS handshakes completed, by service, protocol version, cipher suite and client_cert (presented, none).",
		"service", "version", "cipher", "client_cert")
	r.smtpTLSFail = counter("sluice_smtp_tls_failures_total",
		"Inbound TLS handshakes failed, by service and reason ("+strings.Join(tlsFailureReasons, ", ")+").",
		"service", "reason")
	r.smtpStress = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_smtp_stress",
		Help: "1 while the SMTP service is in stress mode (connections past stress_threshold), else 0."}, []string{"service"})
	r.reg.MustRegister(r.smtpStress)
	r.smtpStressN = counter("sluice_smtp_stress_total",
		"Times the SMTP service entered stress mode.", "service")
	r.authAttempts = counter("sluice_auth_attempts_total",
		"SMTP AUTH attempts by mechanism (plain, login, other) and result (success, failure, refused).", "mechanism", "result")

	r.queueCommit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_queue_commit_seconds",
		Help:    "Time to make a new message durable in the queue (the synced commit before each 250).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}})
	r.reg.MustRegister(r.queueCommit)

	r.deliveryAttempts = counter("sluice_delivery_attempts_total",
		"Delivery attempts per recipient by transport (maildir, lmtp, smtp, none) and result (delivered, deferred, bounced).",
		"transport", "result")
	r.deliveryTLS = counter("sluice_delivery_tls_total",
		"Outbound SMTP session attempts by the TLS policy that applied (dane, mta-sts, verify, relay, opportunistic) and the outcome (success, or the RFC 8460 result type of the failure).",
		"policy", "result")
	r.deliverySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_delivery_seconds",
		Help:    "Time from arrival to a recipient's final status (delivered or bounced).",
		Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 5 * 86400}})
	r.reg.MustRegister(r.deliverySeconds)
	r.destAttempts = counter("sluice_delivery_destination_attempts_total",
		"Delivery attempts per recipient by destination domain (configured routes and a bounded top-N; the rest \"other\") and result.",
		"destination", "result")
	r.dests = newDestinations(opts.Routes, opts.TopDestinations)

	r.pluginCalls = counter("sluice_plugin_calls_total",
		"Plugin hook calls by plugin, hook and verdict (\"error\" for a failed call).", "plugin", "hook", "verdict")
	r.pluginSeconds = newPluginCallSeconds(r)
	r.reg.MustRegister(r.pluginSeconds)
	r.pluginFailures = counter("sluice_plugin_failures_total",
		"Plugin failures by plugin and kind (trap, timeout, memory, load; suspended: a call answered by the failure policy of a plugin suspended for failing; quota: a call that had a log line or KV write refused by its quotas).", "plugin", "kind")
	r.counters = newPluginCounters()
	r.reg.MustRegister(r.counters)

	r.reg.MustRegister(&scrapeCollector{r: r})
	r.reg.MustRegister(collectors.NewGoCollector())
	r.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.activity = newActivity(opts.Now)
	return r
}

// SetSources sets what is read at scrape time; it may be called again.
func (r *Registry) SetSources(s Sources) { r.sources.Store(&s) }

// Handler serves the registry in the Prometheus exposition formats.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gatherer returns the underlying registry, for tests and tools.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// WritePrometheus writes every metric in the Prometheus text format (the
// admin socket's GET /metrics). Families that failed to gather are left
// out; the error names them.
func (r *Registry) WritePrometheus(w io.Writer) error {
	mfs, gerr := r.reg.Gather()
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return gerr
}

// Activity returns the recent-activity recorder the dashboard reads.
func (r *Registry) Activity() *Activity { return r.activity }
