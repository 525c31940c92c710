package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
)

// Ctx is one hook call: typed access to the connection, the transaction and
// the host's helpers. It is valid only during the handler call.
type Ctx struct {
	host Host
	hook pluginapi.Hook
}

// Hook returns the hook being run.
func (c *Ctx) Hook() pluginapi.Hook { return c.hook }

// Prop returns a raw property (pluginapi.Prop…).
func (c *Ctx) Prop(p pluginapi.Prop) (string, error) {
	v, st := c.host.Prop(p)
	return v, statusErr(st)
}

func (c *Ctx) prop(p pluginapi.Prop) string {
	v, _ := c.host.Prop(p)
	return v
}

// ClientIP returns the client's address (the zero Addr when unknown).
func (c *Ctx) ClientIP() netip.Addr {
	raw := c.prop(pluginapi.PropClientIP)
	if !InstanceCache {
		a, _ := netip.ParseAddr(raw)
		return a
	}
	return clientIP.parse(raw)
}

// parsedAddr is an address property's text and its parsed form.
type parsedAddr struct {
	raw  string
	addr netip.Addr
	ok   bool
}

// parse returns raw parsed (the zero Addr when it does not parse), from p
// when p holds raw's.
func (p *parsedAddr) parse(raw string) netip.Addr {
	if !p.ok || raw != p.raw {
		a, _ := netip.ParseAddr(raw)
		*p = parsedAddr{raw: raw, addr: a, ok: true}
	}
	return p.addr
}

// clientIP is, in a wasm instance (InstanceCache), the client address
// ClientIP parsed last: every hook of a session, and of the sessions of
// one client, asks for the same one, and parsing it anew is a visible
// part of a small hook's guest time.
var clientIP parsedAddr

// ClientPort returns the client's TCP port.
func (c *Ctx) ClientPort() int {
	n, _ := strconv.Atoi(c.prop(pluginapi.PropClientPort))
	return n
}

// LocalIP returns the address the client connected to.
func (c *Ctx) LocalIP() netip.Addr {
	a, _ := netip.ParseAddr(c.prop(pluginapi.PropLocalIP))
	return a
}

// RDNS returns the client's verified reverse DNS name: a PTR name of its
// address that resolves back to it; "" when none.
func (c *Ctx) RDNS() string { return c.prop(pluginapi.PropClientRDNS) }

// RDNSStatus says how the client's reverse DNS lookup ended: "confirmed"
// (RDNS is the name), "unconfirmed" (it has PTR names, none resolving
// back), "none" (no PTR), "tempfail" (failed or out of time); "" when none
// was made, and at the deliver hook.
func (c *Ctx) RDNSStatus() string { return c.prop(pluginapi.PropRDNSStatus) }

// PTR returns the client's first PTR name, not verified (see RDNSStatus);
// "" when none, and at the deliver hook.
func (c *Ctx) PTR() string { return c.prop(pluginapi.PropClientPTR) }

// Helo returns the HELO/EHLO argument.
func (c *Ctx) Helo() string { return c.prop(pluginapi.PropHelo) }

// TLS describes the TLS session ("TLS1.3 TLS_AES_128_GCM_SHA256"), "" when none.
func (c *Ctx) TLS() string { return c.prop(pluginapi.PropTLS) }

// AuthUser returns the authenticated user, "" when none.
func (c *Ctx) AuthUser() string { return c.prop(pluginapi.PropAuthUser) }

// Listener returns "smtp" or "submission".
func (c *Ctx) Listener() string { return c.prop(pluginapi.PropListener) }

// MailFrom returns the return path as the client sent it in MAIL FROM,
// without brackets or parameters ("" for the null sender).
func (c *Ctx) MailFrom() string { return c.prop(pluginapi.PropMailFrom) }

// Rcpt returns the recipient under consideration (rcpt hook), without
// brackets or parameters: its local part as sent, its domain in lower
// case (RCPT TO:<Bob@Example.COM> reads "Bob@example.com").
func (c *Ctx) Rcpt() string { return c.prop(pluginapi.PropRcpt) }

// Rcpts returns the recipients accepted so far.
func (c *Ctx) Rcpts() []string { return lines(c.prop(pluginapi.PropRcpts)) }

// QueueID returns the message's queue ID (data, deliver).
func (c *Ctx) QueueID() string { return c.prop(pluginapi.PropQueueID) }

// BodySize returns the message size in bytes (data, deliver; else 0).
func (c *Ctx) BodySize() int64 {
	n, _ := strconv.ParseInt(c.prop(pluginapi.PropBodySize), 10, 64)
	return n
}

// Destination returns the destination domain of a delivery attempt (deliver).
func (c *Ctx) Destination() string { return c.prop(pluginapi.PropDestination) }

// Attempt returns the delivery attempt number (deliver).
func (c *Ctx) Attempt() int {
	n, _ := strconv.Atoi(c.prop(pluginapi.PropAttempt))
	return n
}

// AuthResults returns the Authentication-Results value the host computed.
func (c *Ctx) AuthResults() string { return c.prop(pluginapi.PropAuthResults) }

// Note returns a transaction note set by this or an earlier plugin or stage.
func (c *Ctx) Note(key string) (string, bool) {
	v, st := c.host.Note(key)
	return v, st == pluginapi.StatusOK
}

// SetNote sets a transaction note that later plugins and stages read; an
// empty value deletes it.
func (c *Ctx) SetNote(key, value string) error { return statusErr(c.host.SetNote(key, value)) }

// Config decodes the plugin's [config] value at a dotted key ("" for the
// whole table) into v with encoding/json. A missing key is ErrNotFound.
func (c *Ctx) Config(key string, v any) error {
	b, st := c.host.Config(key)
	if st != pluginapi.StatusOK {
		return st
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("config key %q: %w", key, err)
	}
	return nil
}

// ConfigJSON returns the plugin's [config] value at a dotted key ("" for
// the whole table) as JSON, in the dialect Config decodes. The slice is
// only valid until the next host call: copy what you keep. A plugin that
// decodes its configuration once per instance compares it with this (a
// plugin's configuration is fixed for the life of its instances, but in
// native tests many configurations share one process).
func (c *Ctx) ConfigJSON(key string) ([]byte, error) {
	b, st := c.host.Config(key)
	if st != pluginapi.StatusOK {
		return nil, st
	}
	return b, nil
}

// Now returns the host's clock, the only clock a plugin should use.
func (c *Ctx) Now() time.Time { return time.Unix(0, c.host.Now()) }

// AddScore adds score to the message's spam score under a symbol name
// (printable ASCII). The scores of all plugins add up; after the data
// stage the server applies its [spam] thresholds to the total: at or over
// reject the message is refused with 550 5.7.1, at or over quarantine it
// is held in the queue, at or over add_header it gets
// "X-Spam-Status: Yes, score=S symbols=NAME(score),…". Under all of them
// only the server's "scored" log line shows the score; `sluice plugin
// test` prints the total and what the thresholds would do.
func (c *Ctx) AddScore(symbol string, score float64) error {
	return statusErr(c.host.AddScore(symbol, score))
}

// SetRoute sends this delivery attempt via "host:port" (deliver).
func (c *Ctx) SetRoute(route string) error { return statusErr(c.host.SetRoute(route)) }

// Debug logs a printf-style line at debug level, tagged by the host with
// the plugin, hook and queue ID.
func (c *Ctx) Debug(format string, args ...any) { c.log(pluginapi.LogDebug, format, args) }

// Info logs a printf-style line at info level.
func (c *Ctx) Info(format string, args ...any) { c.log(pluginapi.LogInfo, format, args) }

// Warn logs a printf-style line at warning level.
func (c *Ctx) Warn(format string, args ...any) { c.log(pluginapi.LogWarn, format, args) }

// Error logs a printf-style line at error level.
func (c *Ctx) Error(format string, args ...any) { c.log(pluginapi.LogError, format, args) }

// KVFailed logs that the plugin goes on without what a key-value call
// failed to give it (a limit not applied, a cache not written). A
// temporary failure (ErrTempFail: the shared store unreachable under
// [kv] on_error = "fail_open", or the call's deadline reached) is logged at
// debug level only, since the host logs an outage itself once when it
// starts and once when it ends and counts every failed call
// (sluice_kv_errors_total); any other error is a warning.
func (c *Ctx) KVFailed(err error, format string, args ...any) {
	level := pluginapi.LogWarn
	if errors.Is(err, ErrTempFail) {
		level = pluginapi.LogDebug
	}
	c.log(level, format, args)
}

func (c *Ctx) log(level int32, format string, args []any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	c.host.Log(level, msg)
}

// Metric adds delta to the plugin's counter name; needs the "metrics" grant.
func (c *Ctx) Metric(name string, delta float64) error {
	return statusErr(c.host.MetricAdd(name, delta))
}

// lines splits a "\n"-terminated list.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
