package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueStats are the queue's figures at one moment.
type QueueStats struct {
	// Queued messages have not had a delivery attempt yet, Deferred ones
	// have and wait for the next, Held ones wait for a release. The three
	// do not overlap.
	Queued, Deferred, Held int
	// Oldest is when the oldest message that is not held arrived (zero
	// with none).
	Oldest time.Time
	// Bytes is the size of every queued message together.
	Bytes int64
	// Destinations are the domains with the most pending recipients that
	// have been deferred at least once, most first, with the last error
	// seen for one of them.
	Destinations []DestinationStats
	// At is when the figures were read.
	At time.Time
}

// DestinationStats is one destination domain's deferred recipients.
type DestinationStats struct {
	Domain     string
	Recipients int
	LastError  string
}

// QueueStats returns the queue's figures, from a scan no older than
// Options.QueueMaxAge; ok is false without a queue source.
func (r *Registry) QueueStats(ctx context.Context) (qs QueueStats, ok bool, err error) {
	src := r.sources.Load().Queue
	if src == nil {
		return QueueStats{}, false, nil
	}
	r.queueMu.Lock()
	defer r.queueMu.Unlock()
	now := r.opts.Now()
	// A scan is reused for QueueMaxAge, or for queueReuse times as long as
	// it took, whichever is longer: a million-message queue takes seconds
	// to scan, and a scrape every few seconds must not keep a core busy
	// rescanning it.
	maxAge := max(r.opts.QueueMaxAge, queueReuse*r.queueTook)
	if !r.queueAt.IsZero() && now.Sub(r.queueAt) < maxAge {
		return r.queueVal, true, r.queueErr
	}
	qs, err = src(ctx)
	if qs.At.IsZero() {
		qs.At = now
	}
	r.queueAt, r.queueVal, r.queueErr, r.queueTook = now, qs, err, r.opts.Now().Sub(now)
	return qs, true, err
}

// queueReuse is how many times its own duration a queue scan is reused:
// a scan then takes at most a tenth of a core.
const queueReuse = 10

// scrapeCollector reads the Sources at each scrape.
type scrapeCollector struct{ r *Registry }

var (
	descQueueMessages = prometheus.NewDesc("sluice_queue_messages",
		"Messages in the queue by state (queued: not tried yet; deferred: waiting for a retry; held).", []string{"state"}, nil)
	descQueueOldest = prometheus.NewDesc("sluice_queue_oldest_seconds",
		"Age of the oldest message in the queue that is not held (0 with none).", nil, nil)
	descQueueBytes = prometheus.NewDesc("sluice_queue_bytes",
		"Size of every message in the queue together.", nil, nil)
	descPluginInstances = prometheus.NewDesc("sluice_plugin_instances",
		"Live WebAssembly instances of each loaded plugin.", []string{"plugin"}, nil)
	descCertExpiry = prometheus.NewDesc("sluice_tls_certificate_expiry_timestamp_seconds",
		"When the served TLS certificate expires, in seconds since the Unix epoch.", nil, nil)
)

// Describe sends every descriptor the collector may use.
func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueMessages, descQueueOldest, descQueueBytes, descPluginInstances, descCertExpiry} {
		ch <- d
	}
}

// Collect reads each source and sends its metrics; a source that fails
// sends an invalid metric, which the registry reports as an error while
// serving the rest.
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.r.sources.Load()
	if src.Queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		qs, _, err := c.r.QueueStats(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descQueueMessages, err)
		} else {
			for _, s := range []struct {
				state string
				n     int
			}{{"queued", qs.Queued}, {"deferred", qs.Deferred}, {"held", qs.Held}} {
				ch <- prometheus.MustNewConstMetric(descQueueMessages, prometheus.GaugeValue, float64(s.n), s.state)
			}
			oldest := 0.0
			if !qs.Oldest.IsZero() {
				oldest = max(c.r.opts.Now().Sub(qs.Oldest).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(descQueueOldest, prometheus.GaugeValue, oldest)
			ch <- prometheus.MustNewConstMetric(descQueueBytes, prometheus.GaugeValue, float64(qs.Bytes))
		}
	}
	if src.PluginInstances != nil {
		for name, n := range src.PluginInstances() {
			ch <- prometheus.MustNewConstMetric(descPluginInstances, prometheus.GaugeValue, float64(n), name)
		}
	}
	if src.CertExpiry != nil {
		if t := src.CertExpiry(); !t.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(t.Unix()))
		}
	}
}
