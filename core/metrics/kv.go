package metrics

import "github.com/prometheus/client_golang/prometheus"

// kvOps are the values of sluice_kv_errors_total's op label.
var kvOps = []string{"get", "set", "incr", "del"}

// KVObserver counts the shared KV store's outages (core/kvstore's
// RedisObserver): sluice_kv_errors_total{op}, operations that failed
// because Redis could not be reached in time, and sluice_kv_up, 1 while
// the last operation reached it.
type KVObserver struct {
	errs *prometheus.CounterVec
	up   prometheus.Gauge
}

// NewKVObserver registers the KV series in r; call it once per Registry,
// for a server whose store is Redis.
func NewKVObserver(r *Registry) *KVObserver {
	o := &KVObserver{
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_kv_errors_total",
			Help: "Shared KV (Redis) operations that failed because Redis could not be reached in time, by operation."}, []string{"op"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_kv_up",
			Help: "1 while the shared KV store (Redis) answers, 0 since an operation found it unreachable."}),
	}
	for _, op := range kvOps {
		o.errs.WithLabelValues(op)
	}
	o.up.Set(1)
	r.reg.MustRegister(o.errs, o.up)
	return o
}

// KVError counts one operation that failed for want of Redis.
func (o *KVObserver) KVError(op string) { o.errs.WithLabelValues(oneOf(op, kvOps, "get")).Inc() }

// KVUp sets sluice_kv_up.
func (o *KVObserver) KVUp(up bool) {
	if up {
		o.up.Set(1)
	} else {
		o.up.Set(0)
	}
}
