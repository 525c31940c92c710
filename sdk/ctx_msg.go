package sdk

import (
	"io"
	"slices"

	"github.com/sluice-mta/sluice/pluginapi"
)

// Header returns the first value of a header field, unfolded and trimmed
// (data, deliver). ok is false when the field is absent or the hook has no
// message.
func (c *Ctx) Header(name string) (value string, ok bool) {
	v, st := c.host.Header(name, 0)
	return v, st == pluginapi.StatusOK
}

// HeaderAll returns every value of a header field, in order (data, deliver).
func (c *Ctx) HeaderAll(name string) []string {
	var vs []string
	for i := 0; ; i++ {
		v, st := c.host.Header(name, i)
		if st != pluginapi.StatusOK {
			return vs
		}
		vs = append(vs, v)
	}
}

// Headers returns the raw header section as it stands after earlier edits,
// CRLF line endings (data, deliver; nil elsewhere).
func (c *Ctx) Headers() []byte {
	b, st := c.host.Headers()
	if st != pluginapi.StatusOK {
		return nil
	}
	return append([]byte(nil), b...)
}

// AppendHeaders appends the raw header section (as Headers returns it) to
// dst and returns the extended slice, dst unchanged when there is none
// (a hook before data). A plugin that reads the section at every call
// keeps its buffer from call to call (an instance runs one call at a time)
// and passes it back as dst[:0]: no allocation once it has grown.
func (c *Ctx) AppendHeaders(dst []byte) []byte {
	b, st := c.host.Headers()
	if st != pluginapi.StatusOK {
		return dst
	}
	return append(dst, b...)
}

// Body returns a reader over the message body (after the header section),
// read from the host in chunks of the caller's size (data, deliver). At
// other hooks the first Read returns ErrWrongStage.
func (c *Ctx) Body() io.Reader { return &bodyReader{host: c.host} }

// AppendBody appends the message body (after the header section), at most
// limit bytes of it, to dst and returns the extended slice (data, deliver;
// at other hooks ErrWrongStage). It reads from the host straight into
// dst's spare capacity, growing it when full: given a buffer with room for
// the body, it makes one host call for the bytes and one to find the end,
// where Body's reader makes one per Read. A plugin that scans whole bodies
// keeps its buffer from call to call (an instance runs one call at a time)
// and passes it back as dst[:0]. On an error dst holds what was read.
func (c *Ctx) AppendBody(dst []byte, limit int64) ([]byte, error) {
	var off int64
	for off < limit {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, int(min(limit-off, int64(max(bodyChunk, cap(dst))))))
		}
		room := dst[len(dst):cap(dst)]
		if int64(len(room)) > limit-off {
			room = room[:limit-off]
		}
		n, st := c.host.ReadBody(off, room)
		if st != pluginapi.StatusOK {
			return dst, st
		}
		if n == 0 {
			break
		}
		dst, off = dst[:len(dst)+n], off+int64(n)
	}
	return dst, nil
}

// bodyChunk is the least AppendBody grows its buffer by.
const bodyChunk = 16 << 10

type bodyReader struct {
	host Host
	off  int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, st := r.host.ReadBody(r.off, p)
	if st != pluginapi.StatusOK {
		return 0, st
	}
	if n == 0 {
		return 0, io.EOF
	}
	r.off += int64(n)
	return n, nil
}

// AddHeader prepends a header field (data, deliver). The value may not
// contain line breaks. Fields of the same name already there stay, the
// client's included: use AddHeader for fields that may repeat (a trace
// or an Authentication-Results of your own) and SetHeader for any field
// a later reader trusts.
func (c *Ctx) AddHeader(name, value string) error { return statusErr(c.host.AddHeader(name, value)) }

// SetHeader replaces every occurrence of a field with one, or adds it
// (data, deliver). Use it for a field a later reader trusts, such as a
// customer ID or a verdict (X-Customer, X-Spam-Flag): with AddHeader a
// client could send its own field of that name and a reader taking the
// first or the last one might believe it.
func (c *Ctx) SetHeader(name, value string) error { return statusErr(c.host.SetHeader(name, value)) }

// DelHeader deletes every occurrence of a field (data, deliver);
// ErrNotFound when there was none.
func (c *Ctx) DelHeader(name string) error { return statusErr(c.host.DelHeader(name)) }

// AddRcpt adds a recipient (rcpt, data).
func (c *Ctx) AddRcpt(addr string) error { return statusErr(c.host.AddRcpt(addr)) }

// DelRcpt removes a recipient (rcpt, data); at rcpt, removing the
// recipient under consideration drops it.
func (c *Ctx) DelRcpt(addr string) error { return statusErr(c.host.DelRcpt(addr)) }

// RewriteRcpt replaces recipient old with new (rcpt, data).
func (c *Ctx) RewriteRcpt(old, new string) error { return statusErr(c.host.RewriteRcpt(old, new)) }
