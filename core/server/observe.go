package server

import (
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/metrics"
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
