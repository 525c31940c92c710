package admin

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/testclock"
)

// FuzzListQuery: any query string GET /queue may get is refused with an
// error or answered with a page within its limit; it never panics.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=2", "limit=-1", "limit=99999", "limit=x", "after=ZZZZ", "state=held", "state=active",
		"sender=%3C%3E", "sender=ALICE@Src.Test", "rcpt=%3Cx@a.test%3E", "domain=@A.TEST.", "domain=%00", "sender=@",
		"after=&limit=1&state=queued&sender=a@src.test&rcpt=x@a.test&domain=a.test",
	} {
		f.Add(s)
	}
	c := testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	q, err := queue.Open(context.Background(), queue.Options{Dir: filepath.Join(f.TempDir(), "queue"), Hostname: "mx.test",
		Now: c.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { q.Close() })
	for _, from := range []string{"alice@src.test", "", "Bob@Src.Test"} {
		enqueue(f, q, from, "x@a.test", "y@b.test")
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, err := listOptions(v)
		if err != nil {
			return
		}
		p, err := q.Page(context.Background(), o)
		if err != nil {
			t.Fatalf("%q: options accepted, page refused: %v", raw, err)
		}
		if limit := o.Limit; limit > 0 && len(p.Messages) > limit {
			t.Fatalf("%q: %d messages over the limit %d", raw, len(p.Messages), limit)
		}
	})
}
