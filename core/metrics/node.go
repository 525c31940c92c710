package metrics

import "github.com/prometheus/client_golang/prometheus"

// SetNode registers sluice_node_info{node="ID"} 1 in r, so that series
// scraped from several nodes sharing state tell which node they are
// (join on it, or let Prometheus's instance label do); call it once.
func SetNode(r *Registry, id string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_node_info",
		Help: "Always 1; node names this node (node_id, or its host name)."}, []string{"node"})
	g.WithLabelValues(id).Set(1)
	r.reg.MustRegister(g)
}
