package sdk

import (
	"errors"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
)

// cfgHost is a host that has only a configuration; the buffer it returns
// is reused, as the wasm host's is.
type cfgHost struct {
	Host
	cfg string
	buf []byte
}

func (h *cfgHost) Config(key string) ([]byte, pluginapi.Status) {
	if h.cfg == "" {
		return nil, pluginapi.StatusNotFound
	}
	h.buf = append(h.buf[:0], h.cfg...)
	return h.buf, pluginapi.StatusOK
}

// TestConfigCache: Load runs once for a configuration, again when the
// configuration's JSON changes, and again after an error.
func TestConfigCache(t *testing.T) {
	loads := 0
	fail := false
	cc := ConfigCache[string]{Load: func(c *Ctx) (string, error) {
		loads++
		if fail {
			return "", errors.New("bad")
		}
		b, _ := c.host.Config("")
		return string(b), nil
	}}
	h := &cfgHost{cfg: `{"a":1}`}
	c := &Ctx{host: h}
	get := func(want string, wantLoads int) {
		t.Helper()
		got, err := cc.Get(c)
		if err != nil || got != want || loads != wantLoads {
			t.Fatalf("Get = %q, %v after %d loads; want %q after %d", got, err, loads, want, wantLoads)
		}
	}
	get(`{"a":1}`, 1)
	get(`{"a":1}`, 1)
	h.cfg = `{"a":2}`
	get(`{"a":2}`, 2)
	get(`{"a":2}`, 2)
	fail, h.cfg = true, `{"a":3}`
	if _, err := cc.Get(c); err == nil || loads != 3 {
		t.Fatalf("a failing Load: %v after %d loads", err, loads)
	}
	fail = false
	get(`{"a":3}`, 4)
	h.cfg = "" // no [config] table: Load decides what that means
	get("", 5)
	get("", 5)
}
