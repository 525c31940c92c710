package server

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/metrics"
	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/smtpd"
)

// newMetrics makes the server's one metrics registry; the configured
// routes' domains get destination labels of their own.
func newMetrics(cfg *config.Config) *metrics.Registry {
	var routes []string
	for _, r := range cfg.Delivery.Routes {
		routes = append(routes, r.Domain)
	}
	return metrics.New(metrics.Options{Routes: routes})
}

// observers are told what the SMTP services, the queue and the plugins
// do, for the metrics.
type observers struct {
	smtp    smtpd.Observer
	queue   queue.Observer
	plugins filter.Observer
}

var _ filter.Observer = pluginObserver{}

// observers returns the metrics registry for each, or none at all (nil:
// no cost on the message path) with [metrics] enabled = false.
func (s *Server) observers() observers {
	if !s.cfg.Metrics.Enabled {
		return observers{}
	}
	return observers{smtp: s.metrics, queue: queueObserver{s.metrics}, plugins: pluginObserver{s.metrics}}
}

// pluginObserver hands the filter host each plugin's recorder in the
// metrics registry.
type pluginObserver struct{ m *metrics.Registry }

// Plugin returns the recorder of the plugin named name.
func (o pluginObserver) Plugin(name string) filter.PluginObserver { return o.m.Plugin(name) }

// queueObserver passes the queue's events to the metrics registry.
type queueObserver struct{ m *metrics.Registry }

var _ queue.Observer = queueObserver{}

// Committed records an Enqueue's durable-commit time.
func (o queueObserver) Committed(d time.Duration) { o.m.QueueCommit(d) }

// Recorded records one recipient's delivery outcome.
func (o queueObserver) Recorded(d queue.Delivery) {
	result := metrics.Deferred
	switch d.Status {
	case mail.Sent:
		result = metrics.Delivered
	case mail.Bounced:
		result = metrics.Bounced
	}
	o.m.Delivery(metrics.Delivery{ID: d.ID, Rcpt: d.Rcpt, Result: result, Relay: d.Relay, DSN: d.DSN,
		Text: d.Text, Delay: d.Delay, Time: d.At})
}

// metricSources tells the registry where to read the queue, the plugins'
// instances and the certificate's expiry at scrape time.
func (s *Server) metricSources() {
	src := metrics.Sources{
		Queue: func(ctx context.Context) (metrics.QueueStats, error) {
			st, err := s.queue.Stats(ctx)
			qs := metrics.QueueStats{Queued: st.Queued, Deferred: st.Deferred, Held: st.Held, Oldest: st.Oldest, Bytes: st.Bytes}
			for _, d := range st.Destinations {
				qs.Destinations = append(qs.Destinations, metrics.DestinationStats(d))
			}
			return qs, err
		},
		CertExpiry: func() time.Time {
			if c := s.live().tls.Certificate(); c != nil && c.Leaf != nil {
				return c.Leaf.NotAfter
			}
			return time.Time{}
		},
	}
	src.PluginInstances = func() map[string]int {
		out := map[string]int{}
		for _, p := range s.plugins() { // the live filter host's (reload.go)
			out[p.Name] = p.Pool
		}
		return out
	}
	s.metrics.SetSources(src)
}
