// Package exercise registers handlers that call every SDK method and record
// what they saw in transaction notes. The sdktest tests run it natively and
// as wasm (testdata/exercise) and require identical results, which checks
// the wasm bindings against the host semantics.
package exercise

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk"
)

func init() {
	sdk.OnConnect(connect)
	sdk.OnHelo(helo)
	sdk.OnMail(mail)
	sdk.OnRcpt(rcpt)
	sdk.OnData(data)
	sdk.OnDeliver(deliver)
}

// verdict returns the verdict configured for the hook under config key
// "verdicts", e.g. {"rcpt": ["reject", 550, "5.7.1", "no"]}.
func verdict(c *sdk.Ctx) sdk.Verdict {
	var v []any
	if err := c.Config("verdicts."+c.Hook().String(), &v); err != nil || len(v) == 0 {
		return sdk.Continue()
	}
	code, enh, text := 0, "", ""
	if len(v) == 4 {
		f, _ := v[1].(float64)
		code = int(f)
		enh, _ = v[2].(string)
		text, _ = v[3].(string)
	}
	switch v[0] {
	case "accept":
		return sdk.Accept()
	case "reject":
		return sdk.Reject(code, enh, text)
	case "tempfail":
		return sdk.Tempfail(code, enh, text)
	case "discard":
		return sdk.Discard()
	case "quarantine":
		return sdk.Quarantine()
	case "disconnect":
		return sdk.Disconnect(text)
	}
	return sdk.Verdict{Kind: pluginapi.Verdict(99)}
}

func note(c *sdk.Ctx, key string, v any) {
	if err := c.SetNote(c.Hook().String()+"."+key, join(v)); err != nil {
		c.Error("set note %s: %v", key, err)
	}
}

// join formats its operands separated by spaces.
func join(args ...any) string { return strings.TrimSuffix(fmt.Sprintln(args...), "\n") }

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func connect(c *sdk.Ctx) sdk.Verdict {
	note(c, "ip", c.ClientIP())
	note(c, "port", c.ClientPort())
	note(c, "local", c.LocalIP())
	note(c, "rdns", c.RDNS())
	note(c, "rdns_status", c.RDNSStatus())
	note(c, "ptr", c.PTR())
	note(c, "listener", c.Listener())
	note(c, "tls", c.TLS())
	note(c, "auth", c.AuthUser())
	_, err := c.Prop(pluginapi.Prop(1000))
	note(c, "badprop", errText(err))
	note(c, "body", errText(readAll(c)))
	note(c, "addheader", errText(c.AddHeader("X-Too-Early", "1")))
	c.Debug("connect from %s", c.ClientIP())
	return verdict(c)
}

func helo(c *sdk.Ctx) sdk.Verdict {
	note(c, "helo", c.Helo())
	note(c, "now", c.Now().UTC().Format(time.RFC3339Nano))
	var all map[string]any
	note(c, "config", errText(c.Config("", &all)))
	var big string
	if err := c.Config("big", &big); err == nil {
		note(c, "big", len(big))
	}
	var missing string
	note(c, "missing", errText(c.Config("no.such.key", &missing)))
	v, ok := c.Note("connect.ip")
	note(c, "seen", join(v, ok))
	_, ok = c.Note("nope")
	note(c, "nonote", ok)
	note(c, "badnote", errText(c.SetNote("", "x")))
	return verdict(c)
}

func mail(c *sdk.Ctx) sdk.Verdict {
	note(c, "from", c.MailFrom())
	n, err := c.KVIncr("count", 2, time.Minute)
	note(c, "incr", join(n, errText(err)))
	note(c, "set", errText(c.KVSet("k", []byte(strings.Repeat("v", 5000)), 0)))
	b, ok, err := c.KVGet("k")
	note(c, "get", join(len(b), ok, errText(err)))
	vs, err := c.KVGetMany("count", "nokey", "k")
	if len(vs) == 3 {
		note(c, "getmany", join(string(vs[0]), vs[1] == nil, len(vs[2]), errText(err)))
	} else {
		note(c, "getmany", join(len(vs), errText(err)))
	}
	many := make([]string, pluginapi.MaxKVGetMany+1)
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	_, err = c.KVGetMany(many...)
	note(c, "getmany.toomany", errText(err))
	_, err = c.KVGetMany("a\nb")
	note(c, "getmany.newline", errText(err))
	ops := []sdk.KVIncrOp{{Key: "count", Delta: 3, TTL: time.Minute}, {Key: "fresh", Delta: -1, TTL: time.Hour}, {Key: "count", Delta: 1}}
	err = c.KVIncrMany(ops)
	note(c, "incrmany", join(ops[0].N, ops[1].N, ops[2].N, errText(err)))
	note(c, "incrmany.text", errText(c.KVIncrMany([]sdk.KVIncrOp{{Key: "k", Delta: 1}})))
	toomany := make([]sdk.KVIncrOp, pluginapi.MaxKVIncrMany+1)
	for i := range toomany {
		toomany[i].Key = fmt.Sprint("k", i)
	}
	note(c, "incrmany.toomany", errText(c.KVIncrMany(toomany)))
	note(c, "incrmany.newline", errText(c.KVIncrMany([]sdk.KVIncrOp{{Key: "a\nb", Delta: 1}})))
	note(c, "incrmany.negttl", errText(c.KVIncrMany([]sdk.KVIncrOp{{Key: "a", Delta: 1, TTL: -time.Second}})))
	note(c, "del", errText(c.KVDel("k")))
	_, ok, err = c.KVGet("k")
	note(c, "get2", join(ok, errText(err)))
	a, err := c.LookupA("2.0.0.127.bl.example")
	note(c, "a", join(a, errText(err)))
	a, err = c.LookupAAAA("v6.example")
	note(c, "aaaa", join(a, errText(err)))
	a, err = c.LookupMX("example")
	note(c, "mx", join(a, errText(err)))
	a, err = c.LookupTXT("example")
	note(c, "txt", join(a, errText(err)))
	a, err = c.LookupPTR("1.2.0.192.in-addr.arpa")
	note(c, "ptr", join(a, errText(err)))
	a, err = c.LookupA("nx.example")
	note(c, "nx", join(len(a), errText(err)))
	note(c, "metric", errText(c.Metric("mails", 1.5)))
	note(c, "denied", errors.Is(c.Metric("mails", 1), sdk.ErrDenied))
	return verdict(c)
}

func rcpt(c *sdk.Ctx) sdk.Verdict {
	r := c.Rcpt()
	note(c, "rcpts", strings.Join(c.Rcpts(), ","))
	switch {
	case strings.HasPrefix(r, "rewrite@"):
		note(c, "rewrite", errText(c.RewriteRcpt(r, "rewritten@example.com")))
	case strings.HasPrefix(r, "drop@"):
		note(c, "drop", errText(c.DelRcpt(r)))
	case strings.HasPrefix(r, "add@"):
		note(c, "add", errText(c.AddRcpt("extra@example.com")))
		note(c, "addbad", errText(c.AddRcpt("not an address")))
	}
	note(c, "header", errText(c.SetHeader("X-Rcpt", "1")))
	if strings.HasPrefix(r, "reject@") {
		return sdk.Reject(550, "5.1.1", "<"+r+">: no such user")
	}
	if strings.HasPrefix(r, "badreply@") {
		return sdk.Reject(450, "4.1.1", "wrong class")
	}
	return verdict(c)
}

func readAll(c *sdk.Ctx) error {
	h := sha256.New()
	_, err := io.CopyBuffer(h, c.Body(), make([]byte, 7))
	if err == nil {
		note(c, "sha", hex.EncodeToString(h.Sum(nil))[:16])
	}
	return err
}

func data(c *sdk.Ctx) sdk.Verdict {
	note(c, "qid", c.QueueID())
	note(c, "size", c.BodySize())
	s, ok := c.Header("subject")
	note(c, "subject", join(s, ok))
	note(c, "received", strings.Join(c.HeaderAll("Received"), "|"))
	long, _ := c.Header("X-Long")
	note(c, "long", len(long))
	note(c, "headers", len(c.Headers()))
	note(c, "read", errText(readAll(c)))
	note(c, "add", errText(c.AddHeader("X-Exercise", "added")))
	note(c, "set", errText(c.SetHeader("Subject", "replaced")))
	note(c, "del", errText(c.DelHeader("X-Remove")))
	note(c, "delnone", errText(c.DelHeader("X-Absent")))
	note(c, "inject", errText(c.AddHeader("X-Evil", "a\r\nBcc: x@example.com")))
	note(c, "score", errText(c.AddScore("EXERCISE", 2.5)))
	note(c, "badscore", errText(c.AddScore("", 1)))
	note(c, "route", errText(c.SetRoute("mx.example:25")))
	note(c, "rcptedit", errText(c.AddRcpt("late@example.com")))
	return verdict(c)
}

func deliver(c *sdk.Ctx) sdk.Verdict {
	note(c, "dest", c.Destination())
	note(c, "attempt", c.Attempt())
	note(c, "route", errText(c.SetRoute("relay.example:2525")))
	note(c, "rcptedit", errText(c.AddRcpt("x@example.com")))
	c.Warn("delivering %s to %s", c.QueueID(), c.Destination())
	return verdict(c)
}
