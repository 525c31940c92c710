package greylist

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

// config is the plugin's [config] table, checked.
type config struct {
	delay          time.Duration
	expiry         time.Duration
	whitelistAfter time.Duration
	skip           sdk.Networks
	spfDomains     []string // lower case
}

// rawConfig is [config] as written.
type rawConfig struct {
	Delay          string    `json:"delay"`
	Expiry         string    `json:"expiry"`
	WhitelistAfter string    `json:"whitelist_after"`
	SkipNetworks   *[]string `json:"skip_networks"`
	SPFPassDomains []string  `json:"spf_pass_domains"`
}

// knownKeys is said in the error for an unknown key.
const knownKeys = "delay, expiry, whitelist_after, skip_networks, spf_pass_domains"

// loadConfig reads and checks the configuration; strict also refuses
// unknown keys (at load; the hooks skip that second decoding pass).
func loadConfig(c *sdk.Ctx, strict bool) (*config, error) {
	var rc rawConfig
	if strict {
		var raw json.RawMessage
		if err := c.Config("", &raw); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return nil, fmt.Errorf("greylist: reading [config]: %v", err)
		}
		if len(raw) > 0 {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rc); err != nil {
				return nil, fmt.Errorf("greylist: [config]: %v (known keys: %s)", err, knownKeys)
			}
		}
	} else if err := c.Config("", &rc); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("greylist: [config]: %v", err)
	}
	return checkConfig(rc)
}

// checkConfig checks the table as written and fills in the defaults.
func checkConfig(rc rawConfig) (*config, error) {
	cfg := &config{}
	for _, d := range []struct {
		key, val, dflt string
		dst            *time.Duration
	}{
		{"delay", rc.Delay, "5m", &cfg.delay},
		{"expiry", rc.Expiry, "36h", &cfg.expiry},
		{"whitelist_after", rc.WhitelistAfter, "36d", &cfg.whitelistAfter},
	} {
		v := d.val
		if v == "" {
			v = d.dflt
		}
		dur, err := parseDuration(v)
		if err != nil || dur < 0 {
			return nil, fmt.Errorf("greylist: %s = %q is not a duration: write one like %q (units s, m, h, d)", d.key, d.val, d.dflt)
		}
		*d.dst = dur
	}
	if cfg.delay == 0 {
		return nil, errors.New(`greylist: delay = "0s" greylists nobody: remove the plugin instead, or set a delay like "5m"`)
	}
	if cfg.expiry <= cfg.delay {
		return nil, fmt.Errorf("greylist: expiry (%v) must be longer than delay (%v): it is how long after the first attempt a retry is still accepted", cfg.expiry, cfg.delay)
	}
	skip := []string{"127.0.0.0/8", "::1/128"}
	if rc.SkipNetworks != nil {
		skip = *rc.SkipNetworks
	}
	var err error
	if cfg.skip, err = sdk.ParseNetworks(skip); err != nil {
		return nil, fmt.Errorf("greylist: skip_networks: %v", err)
	}
	for _, d := range rc.SPFPassDomains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || strings.ContainsAny(d, "@ /") || !strings.Contains(d, ".") {
			return nil, fmt.Errorf("greylist: spf_pass_domains: %q is not a domain: write one like \"gmail.com\"", d)
		}
		cfg.spfDomains = append(cfg.spfDomains, d)
	}
	return cfg, nil
}

// parseDuration is time.ParseDuration that also knows days ("36d").
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || f < 0 || f > 3650 {
			return 0, errors.New("bad number of days")
		}
		return time.Duration(f * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// spfDomain reports whether the sender's domain is one whose SPF pass
// skips greylisting.
func (cfg *config) spfDomain(domain string) bool {
	for _, d := range cfg.spfDomains {
		if d == domain {
			return true
		}
	}
	return false
}
