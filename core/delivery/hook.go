package delivery

import (
	"context"
	"maps"
	"net/netip"
	"strings"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// byDomain groups recipients by their lowercased domain, in first-seen
// order: the deliver stage runs once per destination.
func byDomain(rcpts []string) (domains []string, groups map[string][]string) {
	groups = make(map[string][]string)
	for _, rc := range rcpts {
		d := ""
		if i := strings.LastIndexByte(rc, '@'); i >= 0 {
			d = strings.ToLower(strings.TrimSuffix(rc[i+1:], "."))
		}
		if _, ok := groups[d]; !ok {
			domains = append(domains, d)
		}
		groups[d] = append(groups[d], rc)
	}
	return domains, groups
}

// deliverHook runs the deliver-stage plugins for one destination. It
// returns the message to deliver (with the plugins' header edits and
// route), or, when a plugin decided the recipients' fate, their results.
func (r *Router) deliverHook(ctx context.Context, m *mail.Message, domain string, rcpts []string) (*mail.Message, []mail.Result) {
	conn := &filter.Conn{Helo: m.Helo}
	if ip, err := netip.ParseAddr(m.ClientIP); err == nil {
		conn.ClientIP = ip
	}
	attempt := 1
	for _, rc := range m.Rcpts {
		attempt = max(attempt, rc.Attempts+1)
	}
	txn := &filter.Txn{
		Conn:        conn,
		From:        m.From,
		Rcpts:       append([]string(nil), rcpts...),
		QueueID:     m.ID,
		Notes:       maps.Clone(m.Notes),
		Destination: domain,
		Attempt:     attempt,
	}
	txn.Header, txn.Body = filter.ParseHeader(m.Body)
	res := r.filters.Run(ctx, pluginapi.HookDeliver, txn)

	fate := func(st mail.Status, code int, dsn, text string) []mail.Result {
		out := make([]mail.Result, len(rcpts))
		for i, rc := range rcpts {
			enh, _ := mail.ParseEnhanced(dsn) // checked by the host
			out[i] = mail.Result{Rcpt: rc, Status: st, Reply: mail.Reply{Code: code, Enhanced: enh, Text: text}, Relay: "plugin " + res.Plugin}
		}
		return out
	}
	switch res.Verdict {
	case pluginapi.Reject:
		return nil, fate(mail.Bounced, res.Code, res.Enhanced, res.Text)
	case pluginapi.Tempfail, pluginapi.Disconnect:
		return nil, fate(mail.Deferred, res.Code, res.Enhanced, res.Text)
	case pluginapi.Quarantine:
		// A message already in the queue cannot be put on hold from here;
		// it is deferred and retried with backoff (see RATIONALE.md).
		return nil, fate(mail.Deferred, 451, "4.7.0", "held back by a deliver-stage plugin")
	case pluginapi.Discard:
		return nil, fate(mail.Sent, 250, "2.0.0", "discarded by a deliver-stage plugin")
	}
	out := *m
	out.Route = txn.Route
	if txn.HeaderEdited {
		hdr := filter.FormatHeader(txn.Header)
		body := make([]byte, 0, len(hdr)+2+len(txn.Body))
		out.Body = append(append(append(body, hdr...), '\r', '\n'), txn.Body...)
	}
	return &out, nil
}
