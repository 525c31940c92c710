// Package headers is a Sluice plugin that edits header fields by rules
// from its configuration: at the data stage it strips internal Received
// lines and client addresses from authenticated submissions, stamps the
// customer ID of the authenticated user, and adds, removes and rewrites
// fields; at the deliver stage it tags the Subject of mail whose spam
// score (the core's X-Spam-Status) passes a threshold.
// It registers itself as the plugin headers (sdk.Plugin); `make plugins`
// builds it into the first-party module, plugins/firstparty, with the
// others.
package headers

import (
	"errors"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

func init() {
	sdk.Plugin("headers", func() {
		sdk.OnInit(func(c *sdk.Ctx) error {
			_, err := loadRules(c)
			return err
		})
		sdk.OnData(onData)
		sdk.OnDeliver(onDeliver)
	})
}

// clientIPHeaders carry the submitting client's address.
var clientIPHeaders = []string{"X-Originating-IP", "X-Sender-IP", "X-Client-IP"}

// onData applies the data-stage rules in a fixed order: Received
// stripping, customer ID, remove, rewrite, add.
func onData(c *sdk.Ctx) sdk.Verdict {
	r, err := cfgCache.Get(c)
	if err != nil {
		c.Error("%v", err)
		return sdk.Continue()
	}
	user := c.AuthUser()
	if r.StripReceivedForAuth && user != "" {
		stripReceived(c)
	}
	if len(r.CustomerIDs) > 0 {
		var id string
		ok := false
		if user != "" { // mail from outside: no map lookup
			id, ok = r.CustomerIDs[user]
		}
		if ok {
			check(c, "setting", r.CustomerIDHeader, c.SetHeader(r.CustomerIDHeader, id))
		} else {
			check(c, "removing", r.CustomerIDHeader, c.DelHeader(r.CustomerIDHeader))
		}
	}
	if r.SubjectTag != "" {
		// Only the core's own X-Spam-Status (added after this stage) may
		// decide the tag at deliver.
		check(c, "removing", "X-Spam-Status", c.DelHeader("X-Spam-Status"))
	}
	for _, name := range r.Remove {
		check(c, "removing", name, c.DelHeader(name))
	}
	for _, rw := range r.rewrites {
		vals := c.HeaderAll(rw.name)
		changed := false
		for i, v := range vals {
			if nv := rw.re.ReplaceAllString(v, rw.replace); nv != v {
				vals[i], changed = nv, true
			}
		}
		if !changed {
			continue
		}
		if len(vals) == 1 {
			check(c, "rewriting", rw.name, c.SetHeader(rw.name, vals[0]))
			continue
		}
		check(c, "rewriting", rw.name, c.DelHeader(rw.name))
		for i := len(vals) - 1; i >= 0; i-- {
			check(c, "rewriting", rw.name, c.AddHeader(rw.name, vals[i]))
		}
	}
	for _, f := range r.Add {
		check(c, "adding", f.Name, c.AddHeader(f.Name, f.Value))
	}
	return sdk.Continue()
}

// stripReceived replaces every Received field with one: the first (this
// server's), without its "from HELO ([IP])" clause; it also drops the
// fields naming the client's address.
func stripReceived(c *sdk.Ctx) {
	recv := c.HeaderAll("Received")
	if len(recv) == 0 {
		return
	}
	check(c, "removing", "Received", c.DelHeader("Received"))
	own := strings.Join(strings.Fields(recv[0]), " ")
	if strings.HasPrefix(own, "from ") {
		if i := strings.Index(own, " by "); i >= 0 {
			own = own[i+1:]
		}
	}
	check(c, "adding", "Received", c.AddHeader("Received", own))
	for _, h := range clientIPHeaders {
		check(c, "removing", h, c.DelHeader(h))
	}
}

// onDeliver tags the Subject when the core's X-Spam-Status score reaches
// subject_tag_score. The deliver stage runs at every attempt: a subject
// already tagged is left alone.
func onDeliver(c *sdk.Ctx) sdk.Verdict {
	r, err := cfgCache.Get(c)
	if err != nil {
		c.Error("%v", err)
		return sdk.Continue()
	}
	if r.SubjectTag == "" {
		return sdk.Continue()
	}
	status, ok := c.Header("X-Spam-Status")
	if !ok {
		return sdk.Continue()
	}
	score, ok := spamScore(status)
	if !ok || score < r.SubjectTagScore {
		return sdk.Continue()
	}
	subj, _ := c.Header("Subject")
	if strings.HasPrefix(subj, r.SubjectTag) {
		return sdk.Continue()
	}
	tagged := r.SubjectTag
	if subj != "" {
		tagged += " " + subj
	}
	check(c, "tagging", "Subject", c.SetHeader("Subject", tagged))
	return sdk.Continue()
}

// spamScore reads "score=6.5" from an X-Spam-Status value.
func spamScore(status string) (float64, bool) {
	for _, f := range strings.FieldsFunc(status, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		if v, ok := strings.CutPrefix(f, "score="); ok {
			s, err := strconv.ParseFloat(v, 64)
			return s, err == nil
		}
	}
	return 0, false
}

// check logs a failed header edit ("removing", "X-Mailer"); a field that
// was not there is no error.
func check(c *sdk.Ctx, verb, field string, err error) {
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		c.Error("headers: %s %s: %v", verb, field, err)
	}
}

// main is not called: the host calls the exported hooks.

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[*rules]{Load: loadRules}
