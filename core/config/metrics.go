package config

// Metrics configures what the server counts for its Prometheus metrics
// (/metrics on the admin socket and the [http] listener) and the
// dashboard's recent activity.
type Metrics struct {
	// Enabled counts SMTP sessions and refusals, queue commits, deliveries
	// and plugin calls as they happen. false takes every observer off the
	// message path, to run without the cost or to measure it; /metrics
	// then serves only what is read at scrape time (queue depth, plugin
	// instances, certificate expiry, the Go runtime and process) and the
	// plugins' own metric_add counters, and the dashboard's per-minute
	// chart and last delivery results stay empty. A running server keeps
	// its value until restarted.
	Enabled bool `toml:"enabled"`
}
