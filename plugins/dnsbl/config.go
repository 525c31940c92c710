package dnsbl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/sdk"
)

// defaultCacheTTL is how long a list's answer is reused when cache_ttl is
// not set.
const defaultCacheTTL = 5 * time.Minute

// defaultSkip are the networks never looked up when skip_networks is not
// set: loopback.
var defaultSkip = []string{"127.0.0.0/8", "::1/128"}

// action is what one answer of a list means.
type action struct {
	reject bool
	ignore bool
	score  float64
}

// zone is one configured blocklist.
type zone struct {
	name   string // "zen.spamhaus.org", lower case, no final dot
	symbol string // "DNSBL_ZEN_SPAMHAUS_ORG"
	dflt   action // for a listed answer not in codes
	codes  map[netip.Addr]action
}

// config is the plugin's [config] table, checked.
type config struct {
	zones       []zone
	skip        sdk.Networks
	cacheTTL    time.Duration
	delayReject bool
}

// rawConfig is [config] as written.
type rawConfig struct {
	Zones        []rawZone `json:"zones"`
	SkipNetworks *[]string `json:"skip_networks"`
	CacheTTL     string    `json:"cache_ttl"`
	DelayReject  *bool     `json:"delay_reject"`
}

// rawZone is one zones element as written.
type rawZone struct {
	Zone   string         `json:"zone"`
	Score  *float64       `json:"score"`
	Reject bool           `json:"reject"`
	Symbol string         `json:"symbol"`
	Codes  map[string]any `json:"codes"`
}

// loadConfig reads and checks the plugin's configuration; its errors name
// the key and say what to write instead. strict refuses unknown keys (at
// load; the hooks skip that second decoding pass).
func loadConfig(c *sdk.Ctx, strict bool) (*config, error) {
	var rc rawConfig
	if strict {
		var raw json.RawMessage
		if err := c.Config("", &raw); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return nil, fmt.Errorf("dnsbl: reading [config]: %v", err)
		}
		if len(raw) > 0 {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rc); err != nil {
				return nil, fmt.Errorf("dnsbl: [config]: %v (known keys: zones, skip_networks, cache_ttl, delay_reject; zones elements: zone, score, reject, symbol, codes)", err)
			}
		}
	} else if err := c.Config("", &rc); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("dnsbl: [config]: %v", err)
	}
	return checkConfig(rc)
}

// checkConfig checks the [config] table as written.
func checkConfig(rc rawConfig) (*config, error) {
	cfg := &config{cacheTTL: defaultCacheTTL, delayReject: true}
	if rc.DelayReject != nil {
		cfg.delayReject = *rc.DelayReject
	}
	if rc.CacheTTL != "" {
		d, err := time.ParseDuration(rc.CacheTTL)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("dnsbl: cache_ttl = %q is not a duration: write one like \"5m\" or \"1h\" (\"0s\" turns the cache off)", rc.CacheTTL)
		}
		cfg.cacheTTL = d
	}
	skip := defaultSkip
	if rc.SkipNetworks != nil {
		skip = *rc.SkipNetworks
	}
	var err error
	if cfg.skip, err = sdk.ParseNetworks(skip); err != nil {
		return nil, fmt.Errorf("dnsbl: skip_networks: %v", err)
	}
	if len(rc.Zones) == 0 {
		return nil, errors.New(`dnsbl: zones is empty: add at least one list, like zones = [{zone = "zen.spamhaus.org", score = 5.0}]`)
	}
	seen := map[string]bool{}
	for i, rz := range rc.Zones {
		z, err := parseZone(rz)
		if err != nil {
			return nil, fmt.Errorf("dnsbl: zones[%d]: %v", i, err)
		}
		if seen[z.name] {
			return nil, fmt.Errorf("dnsbl: zones[%d]: %q is listed twice: keep one entry per list", i, z.name)
		}
		seen[z.name] = true
		cfg.zones = append(cfg.zones, z)
	}
	return cfg, nil
}

// parseZone checks one zones element.
func parseZone(rz rawZone) (zone, error) {
	name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(rz.Zone), "."))
	if !validDomain(name) {
		return zone{}, fmt.Errorf("zone = %q is not a DNS name: write the list's zone, like \"zen.spamhaus.org\"", rz.Zone)
	}
	z := zone{name: name, symbol: rz.Symbol, dflt: action{reject: rz.Reject}, codes: map[netip.Addr]action{}}
	if z.symbol == "" {
		z.symbol = symbolFor(name)
	}
	if len(z.symbol) > 64 || !validSymbol(z.symbol) {
		return zone{}, fmt.Errorf("%s: symbol = %q: use letters, digits and _ (at most 64)", name, z.symbol)
	}
	if rz.Score != nil {
		if *rz.Score < 0 || *rz.Score > 1000 {
			return zone{}, fmt.Errorf("%s: score = %v is out of range: use 0 to 1000", name, *rz.Score)
		}
		z.dflt.score = *rz.Score
	}
	for k, v := range rz.Codes {
		a, err := netip.ParseAddr(k)
		if err != nil || !a.Is4() || !a.IsLoopback() {
			return zone{}, fmt.Errorf("%s: codes: %q is not a return code: lists answer with addresses in 127.0.0.0/8, like \"127.0.0.2\"", name, k)
		}
		var act action
		switch v := v.(type) {
		case float64:
			if v < 0 || v > 1000 {
				return zone{}, fmt.Errorf("%s: codes.%q = %v is out of range: use a score from 0 to 1000, \"reject\" or \"ignore\"", name, k, v)
			}
			act.score = v
		case string:
			switch strings.ToLower(v) {
			case "reject":
				act.reject = true
			case "ignore":
				act.ignore = true
			default:
				return zone{}, fmt.Errorf("%s: codes.%q = %q: use a score (a number), \"reject\" or \"ignore\"", name, k, v)
			}
		default:
			return zone{}, fmt.Errorf("%s: codes.%q: use a score (a number), \"reject\" or \"ignore\"", name, k)
		}
		z.codes[a] = act
	}
	if !z.dflt.reject && z.dflt.score == 0 && len(z.codes) == 0 {
		return zone{}, fmt.Errorf("%s: the list does nothing: set score, reject = true or codes", name)
	}
	return z, nil
}

// symbolFor names a list's score: "zen.spamhaus.org" gives
// "DNSBL_ZEN_SPAMHAUS_ORG".
func symbolFor(zone string) string {
	b := []byte("DNSBL_" + strings.ToUpper(zone))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

func validSymbol(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validDomain reports whether s is a plausible DNS name of two labels or
// more.
func validDomain(s string) bool {
	if len(s) == 0 || len(s) > 180 || !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// zoneNamed returns the configured list called name.
func (cfg *config) zoneNamed(name string) (zone, bool) {
	for _, z := range cfg.zones {
		if z.name == name {
			return z, true
		}
	}
	return zone{}, false
}

// formatScore writes a score without trailing zeros.
func formatScore(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
