package server_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/metrics/metricstest"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// metricsRules make the policy plugin refuse one recipient at RCPT and let
// everything else through.
const metricsRules = `
[config]
rules = [
  {hook = "rcpt", match = "blocked@", verdict = "reject", code = 550, enh = "5.7.1", text = "blocked"},
]
`

// scrape fetches /metrics from the admin socket of cfg and returns every
// sample by its series ("name{labels}", labels as exported) and the text.
func scrape(t *testing.T, cfg *config.Config) (map[string]float64, string) {
	t.Helper()
	sock := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", cfg.Admin.Socket)
	}}}
	code, text := httpGet(t, sock, "http://sluice/metrics")
	if code != 200 {
		t.Fatalf("admin socket /metrics: %d\n%.400s", code, text)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, text
}

// pluginMetricsSetup installs the policy plugin, one that traps at every
// hook, one that runs out of memory_limit at every hook (both failing
// open) and one that does not load, starts the server with metrics as
// enabled says, and sends one message to alice and to a recipient policy
// refuses at RCPT; alice's copy is delivered.
func pluginMetricsSetup(t *testing.T, enabled bool) *config.Config {
	t.Helper()
	cfg := servertest.Config(t)
	cfg.Metrics.Enabled = enabled
	servertest.Install(t, cfg, "10-trap", wat(t, "trap"), "failure_policy = \"continue\"\nbreaker_failures = 0\n")
	servertest.Install(t, cfg, "20-grow", wat(t, "grow"), "failure_policy = \"continue\"\nbreaker_failures = 0\nmemory_limit = \"1MiB\"\n")
	servertest.Install(t, cfg, "30-policy", sdktest.Build(t, "testdata/policy"), metricsRules)
	servertest.Install(t, cfg, "40-bad", wat(t, "bigmemory"), "")
	s := servertest.Start(t, cfg)
	replies := rawTransaction(t, s.Addr, "client.test", "a@remote.test", []string{"alice@localhost", "blocked@localhost"}, "metrics")
	if len(replies) < 5 || !strings.HasPrefix(replies[3], "550 5.7.1") || !strings.HasPrefix(replies[len(replies)-1], "250") {
		t.Fatalf("replies %q: want blocked@ refused at RCPT and the message taken", replies)
	}
	servertest.WaitFiles(t, s.Mailbox("alice", "localhost"), 1, 10*time.Second)
	return cfg
}

// TestPluginMetrics: after a real message, /metrics counts each plugin's
// calls by hook and verdict (the policy plugin's refusal at RCPT, its
// continue at DATA and at delivery), their times, and the failures by
// kind: a trap, a memory_limit hit, a module that did not load; promtool
// accepts the output.
func TestPluginMetrics(t *testing.T) {
	cfg := pluginMetricsSetup(t, true)
	want := map[string]float64{
		`sluice_plugin_calls_total{hook="rcpt",plugin="30-policy",verdict="reject"}`:      1,
		`sluice_plugin_calls_total{hook="rcpt",plugin="30-policy",verdict="continue"}`:    1,
		`sluice_plugin_calls_total{hook="data",plugin="30-policy",verdict="continue"}`:    1,
		`sluice_plugin_calls_total{hook="deliver",plugin="30-policy",verdict="continue"}`: 1,
		`sluice_plugin_call_seconds_count{hook="rcpt",plugin="30-policy"}`:                2,
		`sluice_plugin_calls_total{hook="rcpt",plugin="10-trap",verdict="error"}`:         2,
		`sluice_plugin_failures_total{kind="trap",plugin="10-trap"}`:                      7, // every hook, rcpt twice
		`sluice_plugin_failures_total{kind="memory",plugin="20-grow"}`:                    7,
		`sluice_plugin_failures_total{kind="load",plugin="40-bad"}`:                       1,
	}
	var got map[string]float64
	var text string
	// The deliver hook runs on the queue's time: poll until it is counted.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, text = scrape(t, cfg)
		if got[`sluice_plugin_calls_total{hook="deliver",plugin="30-policy",verdict="continue"}`] > 0 || time.Now().After(deadline) {
			break
		}
	}
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
	if s := got[`sluice_plugin_call_seconds_sum{hook="rcpt",plugin="30-policy"}`]; !(s > 0) {
		t.Errorf("policy's rcpt calls took %v s in all, want more than 0", s)
	}
	for series := range got {
		if strings.Contains(series, `kind="trap",plugin="20-grow"`) || strings.Contains(series, `verdict="error",plugin="30-policy"`) {
			t.Errorf("unexpected series %s", series)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
	metricstest.CheckMetrics(t, []byte(text))
}

// TestMetricsDisabled: with [metrics] enabled = false mail flows as ever,
// nothing on the message path is counted (no SMTP, queue commit, delivery
// or plugin series), and /metrics still serves what is read at scrape
// time, which promtool accepts.
func TestMetricsDisabled(t *testing.T) {
	cfg := pluginMetricsSetup(t, false)
	got, text := scrape(t, cfg)
	for series, v := range got {
		for _, prefix := range []string{"sluice_smtp_", "sluice_plugin_calls_total", "sluice_plugin_call_seconds",
			"sluice_plugin_failures_total", "sluice_delivery_attempts_total", "sluice_queue_commit_seconds_count"} {
			if strings.HasPrefix(series, prefix) && v != 0 {
				t.Errorf("%s = %v with metrics disabled", series, v)
			}
		}
	}
	for _, series := range []string{`sluice_plugin_instances{plugin="30-policy"}`, "sluice_queue_bytes", "process_resident_memory_bytes"} {
		if _, ok := got[series]; !ok {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	metricstest.CheckMetrics(t, []byte(text))
}
