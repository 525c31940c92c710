package ratelimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/sdk"
)

// Keys a limit can count by.
const (
	keyUser         = "user"
	keySender       = "sender"
	keyIP           = "ip"
	keySenderDomain = "sender_domain"
)

// subWindows is how many buckets a window is cut into.
const subWindows = 6

// minWindow is the shortest window: a bucket is at least window/6 long.
const minWindow = time.Second

// limit is one element of the config key "limits".
type limit struct {
	// Key is what is counted: user, sender, ip or sender_domain.
	Key string `json:"key"`
	// Window is how far back the count reaches ("1m", "1h", "1d").
	Window string `json:"window"`
	// Messages and Recipients are the most allowed within Window; 0 is no
	// limit.
	Messages   int64 `json:"messages"`
	Recipients int64 `json:"recipients"`

	// window is Window parsed.
	window time.Duration
	// prefix is the text of its counters' keys before the bucket index,
	// for messages and for recipients.
	prefix [2]string
}

// loadLimits reads and checks the configuration: the init check and
// every hook call use it, so nothing lives in guest memory between calls.
func loadLimits(c *sdk.Ctx) ([]limit, error) {
	var top map[string]json.RawMessage
	if err := c.Config("", &top); err != nil {
		if errors.Is(err, sdk.ErrNotFound) {
			return nil, errors.New(`no [config] table: add limits = [{key = "user", window = "1h", messages = 100}] to ratelimit.toml`)
		}
		return nil, fmt.Errorf("[config]: %v", err)
	}
	for k := range top {
		if k != "limits" {
			return nil, fmt.Errorf("[config]: unknown key %q; the only key is limits", k)
		}
	}
	raw, ok := top["limits"]
	if !ok {
		return nil, errors.New(`[config]: missing key limits, e.g. limits = [{key = "ip", window = "1m", messages = 30}]`)
	}
	return parseLimits(raw)
}

// parseLimits decodes and checks the JSON form of the "limits" array.
func parseLimits(raw []byte) ([]limit, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("limits: must be an array of tables like {key = \"user\", window = \"1h\", messages = 100}: %v", err)
	}
	if len(elems) == 0 {
		return nil, errors.New("limits: empty; list at least one limit or remove the plugin")
	}
	out := make([]limit, 0, len(elems))
	for i, e := range elems {
		var l limit
		dec := json.NewDecoder(bytes.NewReader(e))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("limits[%d]: %v (keys: key, window, messages, recipients)", i, err)
		}
		if err := l.check(); err != nil {
			return nil, fmt.Errorf("limits[%d]: %v", i, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// check validates one limit and fills in window.
func (l *limit) check() error {
	switch l.Key {
	case keyUser, keySender, keyIP, keySenderDomain:
	default:
		return fmt.Errorf("key %q: must be one of user, sender, ip, sender_domain", l.Key)
	}
	d, err := parseWindow(l.Window)
	if err != nil {
		return err
	}
	if d < minWindow {
		return fmt.Errorf("window %q: shorter than the minimum of %v", l.Window, minWindow)
	}
	l.window = d
	for i, kind := range [...]byte{kindMessages, kindRecipients} {
		l.prefix[i] = string(kind) + "/" + l.Key + "/" + strconv.FormatInt(d.Milliseconds(), 10) + "/"
	}
	if l.Messages < 0 || l.Recipients < 0 {
		return errors.New("messages and recipients must not be negative (0 or absent: no limit)")
	}
	if l.Messages == 0 && l.Recipients == 0 {
		return errors.New("sets neither messages nor recipients; give at least one a positive value")
	}
	return nil
}

// max is the limit's maximum for events of kind (0: none).
func (l *limit) max(kind byte) int64 {
	if kind == kindMessages {
		return l.Messages
	}
	return l.Recipients
}

// parseWindow parses a Go duration ("90s", "1h30m") or a number of days
// ("1d", "7d").
func parseWindow(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New(`window: missing; give a duration like "1m", "1h" or "1d"`)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 366 {
			return 0, fmt.Errorf("window %q: days must be a whole number from 1 to 366, like \"1d\"", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("window %q: not a duration; use e.g. \"1m\", \"1h\", \"1d\"", s)
	}
	return d, nil
}
