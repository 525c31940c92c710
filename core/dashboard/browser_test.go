package dashboard_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-mta/sluice/core/servertest"
)

// chromium returns the path of Debian's chromium, failing the test when
// it is missing (`make test-deps` installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: run `make test-deps` (Debian package chromium)")
	return ""
}

// TestBrowser drives the dashboard in headless Chromium over the DevTools
// protocol: it logs in, finds the queue count and a delivered message,
// holds and releases a message through the queue browser, and saves
// screenshots in the test's temporary directory (and in
// $SLUICE_SCREENSHOTS when set, to refresh the README's).
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	cfg := servertest.Config(t)
	cfg.HTTP.Listen = "127.0.0.1:0"
	token := "browser-test-token-0123456789"
	cfg.HTTP.Token = token
	cfg.Delivery.RelayHost = "127.0.0.1:1" // nothing listens: remote mail is deferred
	s := servertest.Start(t, cfg)
	base := "http://" + s.HTTPAddr().String()

	delivered := servertest.MustSend(t, s.Addr, "alice@example.com", []string{"bob@localhost"},
		servertest.Message("alice@example.com", "bob@localhost", "hello", "delivered here\r\n"))
	deferred := servertest.MustSend(t, s.Addr, "alice@localhost", []string{"carol@remote.example"},
		servertest.Message("alice@localhost", "carol@remote.example", "away", "deferred\r\n"))
	servertest.WaitFiles(t, s.Mailbox("bob", "localhost"), 1, 10*time.Second)
	waitFor(t, "the remote message's first attempt", func() bool {
		m, err := s.Queue().Get(context.Background(), deferred)
		return err == nil && m.Attempts > 0
	})

	shots := t.TempDir()
	actx, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		var png []byte
		run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
		save(t, shots, name, png)
	}

	// The dashboard sends us to the login form; the token logs in.
	var url string
	run("open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#password", chromedp.ByID),
		chromedp.Location(&url))
	if !strings.Contains(url, "/login") {
		t.Fatalf("dashboard without a login is at %s, want the login form", url)
	}
	shot("login.png")
	run("log in", chromedp.SendKeys("#password", token, chromedp.ByID), chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#q-deferred", chromedp.ByID))

	// The queue count and the delivered message are on the overview.
	var deferredCount, recent string
	run("read the overview", chromedp.Text("#q-deferred", &deferredCount, chromedp.ByID),
		chromedp.Text("#recent", &recent, chromedp.ByID))
	if strings.TrimSpace(deferredCount) != "1" {
		t.Errorf("deferred count on the page = %q, want 1", deferredCount)
	}
	if !strings.Contains(recent, delivered) || !strings.Contains(recent, "bob@localhost") || !strings.Contains(recent, "delivered") {
		t.Errorf("last results do not show the delivery of %s:\n%s", delivered, recent)
	}
	shot("overview.png")

	// Hold, then release, the deferred message from its page.
	var state string
	run("open the message", chromedp.Navigate(base+"/queue/"+deferred), chromedp.WaitVisible("#op-hold", chromedp.ByID))
	run("hold it", chromedp.Click("#op-hold", chromedp.ByID), chromedp.WaitVisible(`#flash[data-done="hold"]`, chromedp.ByQuery),
		chromedp.Text("#msg-state", &state, chromedp.ByID))
	if state != "held" {
		t.Errorf("state after hold = %q", state)
	}
	if m, err := s.Queue().Get(context.Background(), deferred); err != nil || !m.Held {
		t.Fatalf("after hold in the browser the queue has held=%v (err %v)", m != nil && m.Held, err)
	}
	shot("message-held.png")
	run("release it", chromedp.Click("#op-release", chromedp.ByID), chromedp.WaitVisible(`#flash[data-done="release"]`, chromedp.ByQuery),
		chromedp.Text("#msg-state", &state, chromedp.ByID))
	if state == "held" {
		t.Errorf("state after release still %q", state)
	}
	if m, err := s.Queue().Get(context.Background(), deferred); err != nil || m.Held {
		t.Fatalf("after release in the browser the queue has held=%v (err %v)", m != nil && m.Held, err)
	}

	// The queue browser finds the message by address; on a phone-sized
	// screen too.
	var rows string
	run("search the queue", chromedp.Navigate(base+"/queue?q=carol%40remote"), chromedp.WaitVisible("#messages", chromedp.ByID),
		chromedp.Text("#messages", &rows, chromedp.ByID))
	if !strings.Contains(rows, deferred) {
		t.Errorf("search by address does not list %s:\n%s", deferred, rows)
	}
	shot("queue.png")
	run("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/"), chromedp.WaitVisible("#q-queued", chromedp.ByID))
	shot("overview-phone.png")
}

// save writes a screenshot into dir, and into $SLUICE_SCREENSHOTS when set.
func save(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	if len(png) < 1000 {
		t.Fatalf("screenshot %s is only %d bytes", name, len(png))
	}
	for _, d := range []string{dir, os.Getenv("SLUICE_SCREENSHOTS")} {
		if d == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s", filepath.Join(dir, name))
}

// waitFor polls cond until it holds; the deadline only guards a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
