package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/metrics/metricstest"
	"github.com/sluice-mta/sluice/core/servertest"
)

// httpGet fetches url with c and returns the status and body.
func httpGet(t *testing.T, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHTTPListener: with [http] listen set, the server answers the health
// checks, serves metrics that promtool accepts (on the listener and on the
// admin socket) with the delivery it made, and the dashboard only after a
// login.
func TestHTTPListener(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.HTTP.Listen = "127.0.0.1:0"
	token := "test-token-0123456789abcdef"
	cfg.HTTP.Token = token
	s := servertest.Start(t, cfg)
	base := "http://" + s.HTTPAddr().String()
	noRedirect := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	if code, body := httpGet(t, noRedirect, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := httpGet(t, noRedirect, base+"/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}

	id := servertest.MustSend(t, s.Addr, "alice@example.com", []string{"bob@localhost"},
		servertest.Message("alice@example.com", "bob@localhost", "hi", "hello\r\n"))
	servertest.WaitFiles(t, s.Mailbox("bob", "localhost"), 1, 10*time.Second)

	var metricsText string
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, metricsText = httpGet(t, noRedirect, base+"/metrics")
		if strings.Contains(metricsText, `sluice_delivery_attempts_total{result="delivered",transport="maildir"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivered attempt in /metrics:\n%s", metricsText)
		}
		time.Sleep(10 * time.Millisecond)
	}
	metricstest.CheckMetrics(t, []byte(metricsText))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(metricsText))
	zw.Close()
	t.Logf("one scrape of /metrics: %d bytes, %d gzipped", len(metricsText), gz.Len())
	for _, want := range []string{"sluice_queue_commit_seconds_count 1", `sluice_queue_messages{state="queued"} `,
		"sluice_delivery_seconds_count 1", "sluice_tls_certificate_expiry_timestamp_seconds ", "process_resident_memory_bytes "} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	sock := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", cfg.Admin.Socket)
	}}}
	code, sockText := httpGet(t, sock, "http://sluice/metrics")
	if code != 200 || !strings.Contains(sockText, "sluice_delivery_seconds_count 1") {
		t.Errorf("admin socket /metrics: %d\n%.400s", code, sockText)
	}
	metricstest.CheckMetrics(t, []byte(sockText))

	// The dashboard needs a login.
	if code, _ := httpGet(t, noRedirect, base+"/"); code != http.StatusSeeOther {
		t.Errorf("/ without login: %d, want a redirect to /login", code)
	}
	if code, _ := httpGet(t, noRedirect, base+"/", "Authorization", "Bearer wrong-token-0123456789"); code != 401 {
		t.Errorf("/ with a wrong token: %d, want 401", code)
	}
	code, page := httpGet(t, noRedirect, base+"/", "Authorization", "Bearer "+token)
	if code != 200 || !strings.Contains(page, id) || !strings.Contains(page, "bob@localhost") {
		t.Errorf("/ with the token: %d, want the delivery of %s listed\n%.600s", code, id, page)
	}

	// A browser login: the form, a session cookie, and CSRF on POSTs.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := browser.PostForm(base+"/login", url.Values{"user": {""}, "password": {token}, "next": {"/queue"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/queue" {
		t.Fatalf("login: %d at %s, want 200 at /queue", resp.StatusCode, resp.Request.URL)
	}
	resp, err = browser.PostForm(base+"/queue/flush", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without a CSRF token: %d, want 403", resp.StatusCode)
	}
}
