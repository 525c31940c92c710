// Package greylist is a Sluice plugin that greylists: the first attempt of
// a (client network, sender, recipient) triplet is deferred with 451, and a
// retry after the delay (and before the expiry) is accepted and
// whitelists the client network for a while. See README.md for its
// configuration.
// It registers itself as the plugin greylist (sdk.Plugin); `make plugins`
// builds it into the first-party module, plugins/firstparty, with the
// others.
// State lives in the key-value store, with times taken from the plugin
// clock (c.Now): "t:NET:HASH" holds a triplet's first attempt, "w:NET" the
// end of a network's whitelisting. The stores' own TTLs only collect
// garbage.
package greylist

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/sdk"
)

// noteKey is the transaction note holding, for senders of
// spf_pass_domains, the greylisting decision deferred to data: the seconds
// to wait.
const noteKey = "greylist.defer"

func init() {
	sdk.Plugin("greylist", func() {
		sdk.OnInit(func(c *sdk.Ctx) error {
			_, err := loadConfig(c, true)
			return err
		})
		sdk.OnRcpt(onRcpt)
		sdk.OnData(onData)
	})
}

// main is not called: the host calls the exported hooks.

// onRcpt greylists the triplet of this recipient.
func onRcpt(c *sdk.Ctx) sdk.Verdict {
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
	network := clientNet(ip)
	now := c.Now()
	from, rcpt := c.MailFrom(), c.Rcpt()
	// The network's whitelisting and the triplet in one host call: one
	// round trip to a shared store.
	key := tripletKey(network, from, rcpt)
	vs, err := c.KVGetMany("w:"+network, key)
	if err == nil && whitelisted(vs[0], now) {
		return sdk.Continue()
	}
	var wait time.Duration
	if err == nil {
		wait, err = check(c, cfg, key, vs[1], network, from, rcpt, now)
	}
	if err != nil {
		// The store is down: let mail through rather than defer it all.
		c.KVFailed(err, "greylist: %s <%s> <%s>: %v; not greylisting", network, from, rcpt, err)
		return sdk.Continue()
	}
	if wait == 0 {
		return sdk.Continue()
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	if cfg.spfDomain(sdk.Domain(from)) {
		// SPF is checked after DATA: decide there.
		if prev, ok := c.Note(noteKey); ok {
			if p, err := strconv.ParseInt(prev, 10, 64); err == nil {
				secs = max(secs, p)
			}
		}
		if err := c.SetNote(noteKey, strconv.FormatInt(secs, 10)); err != nil {
			c.Warn("greylist: deferring the decision to data: %v", err)
		}
		return sdk.Continue()
	}
	c.Info("greylist: %s <%s> <%s>: greylisted for %d s", network, from, rcpt, secs)
	return greylisted(secs)
}

// onData lets a sender of spf_pass_domains through when its SPF passed,
// and otherwise defers the message as onRcpt would have.
func onData(c *sdk.Ctx) sdk.Verdict {
	note, ok := c.Note(noteKey)
	if !ok {
		return sdk.Continue()
	}
	secs, err := strconv.ParseInt(note, 10, 64)
	if err != nil || secs <= 0 {
		return sdk.Continue()
	}
	from := c.MailFrom()
	if spfPass(c.AuthResults(), sdk.Domain(from)) {
		c.Info("greylist: <%s> passed SPF: not greylisted", from)
		return sdk.Continue()
	}
	c.Info("greylist: <%s> did not pass SPF: greylisted for %d s", from, secs)
	return greylisted(secs)
}

// greylisted is the deferral.
func greylisted(secs int64) sdk.Verdict {
	return sdk.Tempfail(451, "4.7.1", fmt.Sprintf("Greylisted, please try again in %d seconds", secs))
}

// check records the attempt and returns how long the client must still
// wait (0: go ahead); v is the triplet's stored value under key (nil: no
// attempt recorded). A retry between delay and expiry after the first
// attempt passes and whitelists the network.
func check(c *sdk.Ctx, cfg *config, key string, v []byte, network, from, rcpt string, now time.Time) (time.Duration, error) {
	if v != nil {
		if sec, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			age := now.Sub(time.Unix(sec, 0))
			switch {
			case age >= 0 && age < cfg.delay:
				return cfg.delay - age, nil
			case age >= cfg.delay && age <= cfg.expiry:
				pass(c, cfg, key, network, from, rcpt, now)
				return 0, nil
			}
		}
	}
	// New, expired or unreadable: this is the first attempt.
	if err := c.KVSet(key, []byte(strconv.FormatInt(now.Unix(), 10)), cfg.expiry+time.Hour); err != nil {
		return 0, err
	}
	return cfg.delay, nil
}

// pass forgets the triplet and whitelists the network.
func pass(c *sdk.Ctx, cfg *config, key, network, from, rcpt string, now time.Time) {
	c.Info("greylist: %s <%s> <%s>: retried in time, passed", network, from, rcpt)
	if err := c.KVDel(key); err != nil {
		c.KVFailed(err, "greylist: forgetting %s: %v", key, err)
	}
	if cfg.whitelistAfter <= 0 {
		return
	}
	until := strconv.FormatInt(now.Add(cfg.whitelistAfter).Unix(), 10)
	if err := c.KVSet("w:"+network, []byte(until), cfg.whitelistAfter+time.Hour); err != nil {
		c.KVFailed(err, "greylist: whitelisting %s: %v", network, err)
	}
}

// whitelisted reports whether v, the value stored under a network's
// whitelisting key (nil: none), whitelists it at now.
func whitelisted(v []byte, now time.Time) bool {
	if v == nil {
		return false
	}
	until, err := strconv.ParseInt(string(v), 10, 64)
	return err == nil && now.Unix() < until
}

// clientNet is the network a client is greylisted as: its /24 (IPv4) or
// /64 (IPv6), since big senders retry from another address of the same
// pool.
func clientNet(ip netip.Addr) string {
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// tripletKey names a triplet's record. The addresses are hashed so that
// the key stays short whatever their length (the host limits keys to 256
// bytes); they are compared without regard to case.
func tripletKey(network, from, rcpt string) string {
	if from == "" {
		from = "<>"
	}
	h := sha256.Sum256([]byte(strings.ToLower(from) + "\x00" + strings.ToLower(rcpt)))
	return "t:" + network + ":" + hex.EncodeToString(h[:16])
}

// spfPass reports whether an Authentication-Results value
// ("mx.example; spf=pass smtp.mailfrom=a@example.com; dkim=none") holds an
// SPF pass for domain.
func spfPass(ar, domain string) bool {
	if domain == "" {
		return false
	}
	_, methods, ok := strings.Cut(ar, ";")
	if !ok {
		return false
	}
	for _, m := range strings.Split(methods, ";") {
		f := strings.Fields(m)
		if len(f) == 0 || !strings.EqualFold(f[0], "spf=pass") {
			continue
		}
		for _, p := range f[1:] {
			if v, ok := strings.CutPrefix(strings.ToLower(p), "smtp.mailfrom="); ok {
				if d := sdk.Domain(v); d == domain || (d == "" && v == domain) {
					return true
				}
			}
		}
	}
	return false
}

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[*config]{Load: func(c *sdk.Ctx) (*config, error) { return loadConfig(c, false) }}
