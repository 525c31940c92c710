package helo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

// The rules, by their configuration name; each scores under its symbol
// (the name in upper case).
const (
	ruleNoPTR          = "no_ptr"
	rulePTRUnconfirmed = "ptr_unconfirmed"
	ruleRDNSTempfail   = "rdns_tempfail"
	ruleHeloNotFQDN    = "helo_not_fqdn"
	ruleHeloOurs       = "helo_ours"
	ruleHeloIPMismatch = "helo_ip_mismatch"
)

// rules lists every rule in the order they are checked and reported.
var rules = []string{ruleNoPTR, rulePTRUnconfirmed, ruleRDNSTempfail, ruleHeloNotFQDN, ruleHeloOurs, ruleHeloIPMismatch}

// defaultScores are the scores of rules not given in scores.
var defaultScores = map[string]float64{
	ruleNoPTR:          1.5,
	rulePTRUnconfirmed: 1.0,
	ruleRDNSTempfail:   0,
	ruleHeloNotFQDN:    1.0,
	ruleHeloOurs:       4.0,
	ruleHeloIPMismatch: 2.0,
}

// defaultSkip are the networks never checked when skip_networks is not
// set: loopback.
var defaultSkip = []string{"127.0.0.0/8", "::1/128"}

// config is the plugin's [config] table, checked.
type config struct {
	// ourNames are the host names and domains a client may not greet as
	// (lower case, no final dot).
	ourNames []string
	// ourAddrs are the networks of our own addresses; the address the
	// client connected to is always ours too.
	ourAddrs sdk.Networks
	skip     sdk.Networks
	scores   map[string]float64
	reject   map[string]bool
}

// rawConfig is [config] as written.
type rawConfig struct {
	OurNames     []string           `json:"our_names"`
	OurAddresses []string           `json:"our_addresses"`
	SkipNetworks *[]string          `json:"skip_networks"`
	Scores       map[string]float64 `json:"scores"`
	Reject       []string           `json:"reject"`
}

// loadConfig reads and checks [config]; the init check and every hook
// call use it, so nothing lives in guest memory between calls.
func loadConfig(c *sdk.Ctx) (*config, error) {
	var top json.RawMessage
	if err := c.Config("", &top); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("helo: [config]: %v", err)
	}
	return parseConfig(top)
}

// parseConfig checks the [config] table, given as JSON.
func parseConfig(top json.RawMessage) (*config, error) {
	var rc rawConfig
	if len(top) > 0 {
		d := json.NewDecoder(bytes.NewReader(top))
		d.DisallowUnknownFields()
		if err := d.Decode(&rc); err != nil {
			return nil, fmt.Errorf("helo: [config]: %v (known keys: our_names, our_addresses, skip_networks, scores, reject)", err)
		}
	}
	cfg := &config{scores: make(map[string]float64, len(rules)), reject: map[string]bool{}}
	for _, n := range rc.OurNames {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n == "" || strings.ContainsAny(n, " []") {
			return nil, fmt.Errorf("helo: our_names: %q is not a host or domain name", n)
		}
		cfg.ourNames = append(cfg.ourNames, n)
	}
	var err error
	if cfg.ourAddrs, err = sdk.ParseNetworks(rc.OurAddresses); err != nil {
		return nil, fmt.Errorf("helo: our_addresses: %v", err)
	}
	skip := defaultSkip
	if rc.SkipNetworks != nil {
		skip = *rc.SkipNetworks
	}
	if cfg.skip, err = sdk.ParseNetworks(skip); err != nil {
		return nil, fmt.Errorf("helo: skip_networks: %v", err)
	}
	for _, r := range rules {
		cfg.scores[r] = defaultScores[r]
	}
	for _, r := range sortedKeys(rc.Scores) {
		if !slices.Contains(rules, r) {
			return nil, fmt.Errorf("helo: scores: unknown rule %q; rules are %s", r, strings.Join(rules, ", "))
		}
		cfg.scores[r] = rc.Scores[r]
	}
	for _, r := range rc.Reject {
		if !slices.Contains(rules, r) {
			return nil, fmt.Errorf("helo: reject: unknown rule %q; rules are %s", r, strings.Join(rules, ", "))
		}
		cfg.reject[r] = true
	}
	return cfg, nil
}

// ours reports whether name (lower case, no final dot) is one of ours.
func (cfg *config) ours(name string) bool { return slices.Contains(cfg.ourNames, name) }

// ourAddr reports whether ip is one of ours: in our_addresses, or local,
// the address the client connected to.
func (cfg *config) ourAddr(ip, local netip.Addr) bool {
	return ip == local || cfg.ourAddrs.Contains(ip)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
