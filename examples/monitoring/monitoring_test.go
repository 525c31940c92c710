// Package monitoring_test checks the Prometheus rules and the Grafana
// dashboard of examples/monitoring against promtool and against the
// metrics Sluice really exports.
package monitoring_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-mta/sluice/core/metrics"
	"github.com/sluice-mta/sluice/core/metrics/metricstest"
	"github.com/sluice-mta/sluice/pluginapi"
)

// TestRules: the rule file and the scrape configuration load, and the
// rules' unit tests (alerts_test.yml) pass.
func TestRules(t *testing.T) {
	metricstest.Run(t, ".", "check", "rules", "alerts.yml")
	metricstest.Run(t, ".", "check", "config", "prometheus.yml")
	out := metricstest.Run(t, ".", "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules said:\n%s", out)
	}
}

// exported returns the name of every series Sluice exports, each metric
// given a value through the registry's own API.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	r := metrics.New(metrics.Options{Routes: []string{"partner.example"}})
	r.SMTPConnection("smtp", "accepted")
	r.SMTPSession("smtp", 1)
	r.SMTPMessage("smtp", "accepted")
	r.SMTPReject("smtp", "rcpt", "relay")
	r.SMTPTLS("smtp", tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, false)
	r.SMTPTLSFailure("smtp", "version")
	r.AuthAttempt("plain", "success")
	r.QueueCommit(time.Millisecond)
	r.Delivery(metrics.Delivery{Rcpt: "a@partner.example", Result: metrics.Delivered, Relay: "local"})
	r.PluginCall("p", pluginapi.HookRcpt, pluginapi.Continue, time.Microsecond)
	r.PluginFailure("p", pluginapi.HookRcpt, pluginapi.FailTrap, time.Millisecond)
	r.SetSources(metrics.Sources{
		Queue:           func(context.Context) (metrics.QueueStats, error) { return metrics.QueueStats{}, nil },
		PluginInstances: func() map[string]int { return map[string]int{"p": 1} },
		CertExpiry:      func() time.Time { return time.Now().Add(time.Hour) },
	})
	mfs, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"up": true}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

// metricName finds the metric names in a PromQL expression: sluice_, go_
// and process_ names (recording rules, "sluice:…", are not metrics).
var metricName = regexp.MustCompile(`\b(?:sluice|go|process)_[a-zA-Z0-9_]+\b|\bup\b`)

// TestGrafanaDashboard: the dashboard is valid JSON, every panel has a
// query, and every query names only metrics Sluice exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) < 10 {
		t.Fatalf("dashboard %q has %d panels", dash.Title, len(dash.Panels))
	}
	names := exported(t)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			found := metricName.FindAllString(tg.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range found {
				if !names[n] {
					t.Errorf("panel %q: %s is not a metric Sluice exports", p.Title, n)
				}
			}
		}
	}
	// The alert rules name exported metrics too.
	rules, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricName.FindAllString(string(rules), -1) {
		if !names[n] {
			t.Errorf("alerts.yml: %s is not a metric Sluice exports", n)
		}
	}
}
