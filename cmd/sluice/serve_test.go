package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestServeGOGC starts `sluice serve` without GOGC in its environment and
// with GOGC=200, and reads the collector's setting where an operator
// would: go_gc_gogc_percent on the admin socket's /metrics. Without it the
// server runs at serverGCPercent; the environment's value wins.
func TestServeGOGC(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"", fmt.Sprint(serverGCPercent)},
		{"GOGC=200", "200"},
	} {
		t.Run("env="+tc.env, func(t *testing.T) {
			dir := t.TempDir()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			smtpAddr := ln.Addr().String()
			ln.Close()
			cfg := filepath.Join(dir, "sluice.toml")
			sock := filepath.Join(dir, "admin.sock")
			conf := fmt.Sprintf(`hostname = "mx.test"
data_dir = %q
local_domains = ["example.com"]
[smtp]
listen = [%q]
[submission]
listen = []
tls_listen = []
[admin]
socket = %q
`, dir, smtpAddr, sock)
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			// The test process's own GOGC must not decide the case: none
			// in the server's environment, or the case's.
			t.Setenv("GOGC", "") // restored when the test ends
			os.Unsetenv("GOGC")
			env := []string{"SLUICE_CONFIG="}
			if tc.env != "" {
				env = append(env, tc.env)
			}
			srv := servertest.ServeBinary(t, sluiceBin, cfg, env...)
			srv.WaitLog(t, 60*time.Second, "smtp listening on")

			client := &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				},
			}}
			resp, err := client.Get("http://sluice/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`(?m)^go_gc_gogc_percent (\S+)$`).FindSubmatch(body)
			if m == nil {
				t.Fatalf("no go_gc_gogc_percent in /metrics (status %s)", resp.Status)
			}
			if got := string(m[1]); got != tc.want {
				t.Errorf("go_gc_gogc_percent %s with environment %q, want %s", got, tc.env, tc.want)
			}
		})
	}
}
