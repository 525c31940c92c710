package sdk

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// bodyHost is a host with only a message body; it copies at most max
// bytes a call (0: as many as fit), fails with fail once off reaches
// failAt (when fail is set), and counts its calls.
type bodyHost struct {
	Host
	body   []byte
	max    int
	failAt int64
	fail   pluginapi.Status
	calls  int
}

func (h *bodyHost) ReadBody(off int64, p []byte) (int, pluginapi.Status) {
	h.calls++
	if h.fail != pluginapi.StatusOK && off >= h.failAt {
		return 0, h.fail
	}
	if off >= int64(len(h.body)) {
		return 0, pluginapi.StatusOK
	}
	if h.max > 0 && len(p) > h.max {
		p = p[:h.max]
	}
	return copy(p, h.body[off:]), pluginapi.StatusOK
}

// TestAppendBody: the whole body or its first limit bytes are appended
// to dst, in two host calls when dst has room, in more when the host
// copies less a call; a failure returns what was read and the status.
func TestAppendBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 2560) // 40 KiB
	h := &bodyHost{body: body}
	c := &Ctx{host: h}
	got, err := c.AppendBody(make([]byte, 0, 64<<10), 1<<20)
	if err != nil || !bytes.Equal(got, body) || h.calls != 2 {
		t.Fatalf("roomy buffer: %d bytes, %v, %d host calls; want %d bytes in 2 calls", len(got), err, h.calls, len(body))
	}
	got, err = c.AppendBody([]byte("x"), 1<<20)
	if err != nil || !bytes.Equal(got, append([]byte("x"), body...)) {
		t.Fatalf("growing from a 1-byte slice: %d bytes, %v", len(got), err)
	}
	got, err = c.AppendBody(nil, 100)
	if err != nil || !bytes.Equal(got, body[:100]) {
		t.Fatalf("limit 100: %q, %v", got, err)
	}
	h.max, h.calls = 1000, 0
	got, err = c.AppendBody(nil, 1<<20)
	if err != nil || !bytes.Equal(got, body) || h.calls < 42 {
		t.Fatalf("short host reads: %d bytes, %v, %d calls; want %d bytes in 42 or more", len(got), err, h.calls, len(body))
	}
	h.max, h.fail, h.failAt = 0, pluginapi.StatusWrongStage, 0
	if got, err = c.AppendBody(nil, 1<<20); !errors.Is(err, ErrWrongStage) || len(got) != 0 {
		t.Fatalf("wrong stage: %d bytes, %v", len(got), err)
	}
	h.max, h.failAt = 1000, 3000
	if got, err = c.AppendBody(nil, 1<<20); !errors.Is(err, ErrWrongStage) || !bytes.Equal(got, body[:3000]) {
		t.Fatalf("failure after 3000 bytes: %d bytes, %v", len(got), err)
	}
}
