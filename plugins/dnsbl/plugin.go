// Package dnsbl is a Sluice plugin that looks the client's address up in
// DNS blocklists when it connects, and scores or refuses its mail per list
// and per return code. See README.md for its configuration.
// It registers itself as the plugin dnsbl (sdk.Plugin); `make plugins`
// builds it into the first-party module, plugins/firstparty, with the
// others.
// The lookups happen at connect; their outcome is kept in the connection
// note "dnsbl" and applied at MAIL FROM, when the host knows whether the
// client authenticated (authenticated sessions are never scored nor
// refused). With delay_reject = false a reject happens at connect already.
package dnsbl

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk"
)

// noteKey is the transaction note holding the outcome of the lookups:
// "none", or space-separated "zone=reject" and "zone=SCORE" entries.
const noteKey = "dnsbl"

func init() {
	sdk.Plugin("dnsbl", func() {
		sdk.OnInit(func(c *sdk.Ctx) error {
			_, err := loadConfig(c, true)
			return err
		})
		sdk.OnConnect(onConnect)
		sdk.OnMail(onMail)
	})
}

// main is not called: the host calls the exported hooks.

// onConnect looks the client up and keeps the outcome in a note; it
// refuses at once when delay_reject is off.
func onConnect(c *sdk.Ctx) sdk.Verdict {
	cfg, err := cfgCache.Get(c)
	if err != nil {
		c.Error("%v", err)
		return sdk.Continue()
	}
	ip := c.ClientIP().Unmap()
	if !ip.IsValid() || cfg.skip.Contains(ip) {
		return sdk.Continue()
	}
	hits := check(c, cfg, ip)
	if err := c.SetNote(noteKey, formatHits(hits)); err != nil {
		c.Warn("dnsbl: keeping the outcome for [%s]: %v", ip, err)
	}
	if !cfg.delayReject && c.Listener() != "submission" {
		if v, ok := rejectVerdict(ip, hits); ok {
			return v
		}
	}
	return sdk.Continue()
}

// onMail applies the outcome to the transaction: nothing for an
// authenticated client, else the reject or the scores.
func onMail(c *sdk.Ctx) sdk.Verdict {
	if c.AuthUser() != "" {
		return sdk.Continue()
	}
	cfg, err := cfgCache.Get(c)
	if err != nil {
		c.Error("%v", err)
		return sdk.Continue()
	}
	ip := c.ClientIP().Unmap()
	if !ip.IsValid() || cfg.skip.Contains(ip) {
		return sdk.Continue()
	}
	var hits []hit
	if note, ok := c.Note(noteKey); ok {
		hits = parseHits(note)
	} else {
		// Loaded after this client connected: look it up now.
		hits = check(c, cfg, ip)
	}
	if v, ok := rejectVerdict(ip, hits); ok {
		return v
	}
	for _, h := range hits {
		sym := symbolFor(h.zone)
		if z, ok := cfg.zoneNamed(h.zone); ok {
			sym = z.symbol
		}
		if err := c.AddScore(sym, h.score); err != nil {
			c.Warn("dnsbl: adding score %s: %v", sym, err)
		}
	}
	return sdk.Continue()
}

// hit is one list's verdict on the client.
type hit struct {
	zone   string
	reject bool
	score  float64
}

// rejectVerdict returns the reply for the first list that rejects.
func rejectVerdict(ip netip.Addr, hits []hit) (sdk.Verdict, bool) {
	for _, h := range hits {
		if h.reject {
			return sdk.Reject(554, "5.7.1", fmt.Sprintf("Service unavailable; client [%s] blocked using %s", ip, h.zone)), true
		}
	}
	return sdk.Verdict{}, false
}

// check asks every list about ip (or reuses a cached answer) and returns
// the lists that matter. A list that cannot be asked is skipped.
func check(c *sdk.Ctx, cfg *config, ip netip.Addr) []hit {
	var hits []hit
	now := c.Now()
	// Every list's cached answer in one host call: one round trip to a
	// shared store. A store that cannot be read is no cache.
	var cached [][]byte
	if cfg.cacheTTL > 0 && len(cfg.zones) <= pluginapi.MaxKVGetMany {
		keys := make([]string, len(cfg.zones))
		for i, z := range cfg.zones {
			keys[i] = cacheKey(z.name, ip)
		}
		cached, _ = c.KVGetMany(keys...)
	}
	for i, z := range cfg.zones {
		var v []byte
		if cached != nil {
			v = cached[i]
		}
		answers, err := lookup(c, cfg, z.name, ip, now, v)
		if err != nil {
			c.Warn("dnsbl: %s: looking up [%s]: %v; skipping the list this time", z.name, ip, err)
			continue
		}
		if h, ok := judge(z, answers); ok {
			c.Info("dnsbl: [%s] listed by %s (%s)", ip, z.name, strings.Join(answers, ","))
			hits = append(hits, h)
		}
	}
	return hits
}

// judge turns a list's answers into a verdict: reject if any answer
// rejects, else the highest score. Answers outside 127.0.0.0/8 and in
// 127.255.255.0/24 (lists' error codes, e.g. Spamhaus refusing an open
// resolver) never count.
func judge(z zone, answers []string) (hit, bool) {
	h := hit{zone: z.name}
	listed := false
	for _, s := range answers {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() || !a.IsLoopback() || a.As4()[1] == 255 && a.As4()[2] == 255 {
			continue
		}
		act, ok := z.codes[a]
		if !ok {
			act = z.dflt
		}
		if act.ignore {
			continue
		}
		listed = true
		h.reject = h.reject || act.reject
		h.score = max(h.score, act.score)
	}
	if !listed || !h.reject && h.score == 0 {
		return hit{}, false
	}
	return h, true
}

// cacheKey is the store key of zone's cached answer for ip.
func cacheKey(zoneName string, ip netip.Addr) string { return "c:" + zoneName + ":" + ip.String() }

// lookup returns the A records of ip's name in zone, from the cache when
// it holds a fresh answer: cached is the value check read under the key
// (nil: none). The cache lives in the key-value store under "c:ZONE:IP"
// (cacheKey) as "EXPIRY ANSWER,ANSWER" (EXPIRY in Unix seconds of the
// plugin clock, so a cached answer ages with the host's clock); now is
// that clock, read once per check.
func lookup(c *sdk.Ctx, cfg *config, zoneName string, ip netip.Addr, now time.Time, cached []byte) ([]string, error) {
	key := cacheKey(zoneName, ip)
	if cfg.cacheTTL > 0 && cached != nil {
		if answers, fresh := parseCached(string(cached), now); fresh {
			return answers, nil
		}
	}
	answers, err := c.LookupA(queryName(ip, zoneName))
	if err != nil {
		return nil, err
	}
	if cfg.cacheTTL > 0 {
		v := strconv.FormatInt(now.Add(cfg.cacheTTL).Unix(), 10) + " " + strings.Join(answers, ",")
		if err := c.KVSet(key, []byte(v), cfg.cacheTTL); err != nil {
			c.KVFailed(err, "dnsbl: caching the answer for [%s] from %s: %v", ip, zoneName, err)
		}
	}
	return answers, nil
}

// parseCached reads a cache value; fresh is false when it expired or is
// unreadable.
func parseCached(v string, now time.Time) (answers []string, fresh bool) {
	exp, list, ok := strings.Cut(v, " ")
	if !ok {
		return nil, false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= sec {
		return nil, false
	}
	if list == "" {
		return nil, true
	}
	return strings.Split(list, ","), true
}

// queryName is the name to ask a list about ip: the reversed octets of an
// IPv4 address ("2.0.0.127.zen.spamhaus.org") or the reversed nibbles of
// an IPv6 address.
func queryName(ip netip.Addr, zone string) string {
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
	} else {
		const hex = "0123456789abcdef"
		a := ip.As16()
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(zone)
	return b.String()
}

// formatHits writes hits as the note's value.
func formatHits(hits []hit) string {
	if len(hits) == 0 {
		return "none"
	}
	parts := make([]string, len(hits))
	for i, h := range hits {
		if h.reject {
			parts[i] = h.zone + "=reject"
		} else {
			parts[i] = h.zone + "=" + formatScore(h.score)
		}
	}
	return strings.Join(parts, " ")
}

// parseHits reads a note written by formatHits; unreadable entries are
// skipped.
func parseHits(note string) []hit {
	var hits []hit
	for _, f := range strings.Fields(note) {
		zone, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		if v == "reject" {
			hits = append(hits, hit{zone: zone, reject: true})
			continue
		}
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			hits = append(hits, hit{zone: zone, score: s})
		}
	}
	return hits
}

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[*config]{Load: func(c *sdk.Ctx) (*config, error) { return loadConfig(c, false) }}
