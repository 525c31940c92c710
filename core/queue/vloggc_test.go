//go:build !race

// Not under the race detector: Badger v4.9.6's value-log GC itself reads
// the memtable's max version (DB.MaxVersion, in valueLog.rewrite) without
// the lock memTable.Put writes it under, which -race reports whenever a
// GC pass rewrites a file while writes go on.

package queue

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// TestValueLogGCWithTrim: with the trim running every millisecond beside
// value-log GC (every 5 ms), delivered mail's value-log files are still
// deleted by GC once compactions have counted their garbage (small
// memtables make them), and every message is delivered whole.
func TestValueLogGCWithTrim(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	opts := testOptions(t, dir, c)
	opts.Logger = nil // one line a message
	opts.vlogFileSize = 1 << 20
	opts.memTableSize = 256 << 10
	opts.vlogTrim = time.Millisecond
	opts.GCInterval = 5 * time.Millisecond
	d := &fakeDeliverer{fn: sendAll}
	opts.Deliverer = d
	q := openQueue(t, opts)
	run(t, q)

	const n = 6000 // 60 MiB of bodies
	for i := range n {
		body := fmt.Appendf(nil, "Subject: %d\r\n\r\n", i)
		body = append(body, bytes.Repeat([]byte{byte('a' + i%26)}, 10<<10)...)
		env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "x@dst.test"}}}
		if _, err := q.Enqueue(context.Background(), env, body); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every message delivered", func() bool { return len(d.Calls()) == n })
	for _, cl := range d.Calls() {
		var i int
		if _, err := fmt.Sscanf(cl.Body, "Subject: %d", &i); err != nil ||
			!strings.HasSuffix(cl.Body, "\r\n\r\n"+strings.Repeat(string(rune('a'+i%26)), 10<<10)) {
			t.Fatalf("%s delivered damaged (%d bytes)", cl.ID, len(cl.Body))
		}
	}
	eventually(t, "the first value-log files deleted by value-log GC", func() bool {
		_, err1 := os.Stat(filepath.Join(dir, "000001.vlog"))
		_, err2 := os.Stat(filepath.Join(dir, "000002.vlog"))
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	})
}
