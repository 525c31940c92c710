package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/metrics"
	"github.com/sluice-mta/sluice/core/queue"
)

// fakeQueue is an admin.Queue over a slice.
type fakeQueue struct {
	mu   sync.Mutex
	envs []mail.Envelope
	ops  []string
}

func (q *fakeQueue) List(context.Context) ([]mail.Envelope, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]mail.Envelope(nil), q.envs...), nil
}
func (q *fakeQueue) Get(_ context.Context, id string) (*mail.Message, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.envs {
		if e.ID == id {
			return &mail.Message{Envelope: e, Body: []byte("Subject: s\r\nX-Test: yes\r\n\r\nbody\r\n")}, nil
		}
	}
	return nil, queue.ErrNotFound
}
func (q *fakeQueue) op(name, id string) error {
	if _, err := q.Get(context.Background(), id); err != nil {
		return err
	}
	q.mu.Lock()
	q.ops = append(q.ops, name+" "+id)
	q.mu.Unlock()
	return nil
}
func (q *fakeQueue) Hold(ctx context.Context, id string) error    { return q.op("hold", id) }
func (q *fakeQueue) Release(ctx context.Context, id string) error { return q.op("release", id) }
func (q *fakeQueue) Remove(ctx context.Context, id string) error  { return q.op("remove", id) }
func (q *fakeQueue) Bounce(ctx context.Context, id string) error  { return q.op("bounce", id) }
func (q *fakeQueue) Flush(context.Context) error                  { q.ops = append(q.ops, "flush"); return nil }
func (q *fakeQueue) FlushDomain(_ context.Context, d string) error {
	q.ops = append(q.ops, "flush "+d)
	return nil
}

// users is an Authenticator of one user.
type users struct{}

func (users) Authenticate(u, p string) bool { return u == "admin" && p == "pw" }

// client logs in on the dashboard d and returns the cookie and a page's
// CSRF token.
func login(t *testing.T, h http.Handler) (*http.Cookie, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/login", strings.NewReader("user=admin&password=pw&next=%2Fqueue"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/queue" {
		t.Fatalf("login: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	c := rec.Result().Cookies()[0]
	_, body := get(t, h, c, "/queue")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the queue page")
	}
	return c, m[1]
}

func get(t *testing.T, h http.Handler, c *http.Cookie, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", path, nil)
	if c != nil {
		req.AddCookie(c)
	}
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func post(h http.Handler, c *http.Cookie, path string, form url.Values, hdr ...string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	req.AddCookie(c)
	h.ServeHTTP(rec, req)
	return rec
}

// TestQueueBrowser: paging and search, a message's headers, actions with
// and without the CSRF token or from another site, and a missing message.
func TestQueueBrowser(t *testing.T) {
	q := &fakeQueue{}
	for i := range 120 {
		e := mail.Envelope{ID: fmt.Sprintf("ID%04d", i), From: "s@src.example", Rcpts: []mail.Recipient{{Addr: fmt.Sprintf("u%d@dst.example", i)}}}
		if i == 7 {
			e.Held = true
		}
		q.envs = append(q.envs, e)
	}
	ready := false
	d, err := New(Options{Metrics: metrics.New(metrics.Options{}), Queue: q, Users: users{}, Ready: func() bool { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, d, nil, "/readyz"); code != 503 {
		t.Errorf("/readyz before ready: %d", code)
	}
	ready = true
	if code, _ := get(t, d, nil, "/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
	if rec := post(d, &http.Cookie{Name: "x"}, "/login", url.Values{"user": {"admin"}, "password": {"nope"}}); rec.Code != 401 {
		t.Errorf("wrong password: %d", rec.Code)
	}
	c, csrf := login(t, d)

	_, page3 := get(t, d, c, "/queue?page=3")
	if !strings.Contains(page3, "ID0119") || strings.Contains(page3, "ID0099") || !strings.Contains(page3, "page 3 of 3") {
		t.Errorf("page 3 does not hold IDs 100-119")
	}
	_, found := get(t, d, c, "/queue?q=U42%40DST")
	if !strings.Contains(found, "ID0042") || strings.Count(found, `data-id="`) != 1 {
		t.Errorf("search by address: want ID0042 alone")
	}
	_, held := get(t, d, c, "/queue?state=held")
	if strings.Count(held, `data-id="`) != 1 || !strings.Contains(held, "ID0007") {
		t.Errorf("state filter: want ID0007 alone")
	}
	if _, msg := get(t, d, c, "/queue/ID0003"); !strings.Contains(msg, "X-Test: yes") {
		t.Errorf("message page lacks its headers")
	}
	if code, _ := get(t, d, c, "/queue/NOPE"); code != 404 {
		t.Errorf("missing message: %d", code)
	}

	for _, tc := range []struct {
		name string
		form url.Values
		hdr  []string
		want int
	}{
		{"no token", url.Values{}, nil, 403},
		{"wrong token", url.Values{"csrf": {"x" + csrf}}, nil, 403},
		{"cross-site", url.Values{"csrf": {csrf}}, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"other origin", url.Values{"csrf": {csrf}}, []string{"Origin", "http://evil.example"}, 403},
		{"good", url.Values{"csrf": {csrf}}, []string{"Sec-Fetch-Site", "same-origin"}, 303},
	} {
		rec := post(d, c, "/queue/ID0003/hold", tc.form, tc.hdr...)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, rec.Code, tc.want)
		}
	}
	if rec := post(d, c, "/queue/ID0003/explode", url.Values{"csrf": {csrf}}); rec.Code != 404 {
		t.Errorf("unknown operation: %d", rec.Code)
	}
	post(d, c, "/queue/flush", url.Values{"csrf": {csrf}, "domain": {"dst.example"}})
	if strings.Join(q.ops, ";") != "hold ID0003;flush dst.example" {
		t.Errorf("queue operations %q", q.ops)
	}
}
