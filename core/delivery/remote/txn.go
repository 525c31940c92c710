package remote

import (
	"bytes"
	"cmp"
	"context"
	"net/netip"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/sluice-mta/sluice/core/mail"
)

// send tries the targets in order, and each one's addresses, until one
// takes a session secured as the TLS policy says; the transactions then
// run there. Only failing to get a session moves on to the next address:
// once one is up, its replies are the verdict. When no session could be
// had, the first TLS policy failure (at the most preferred host) is the
// reason given, rather than a later connection failure.
func (d *Deliverer) send(ctx context.Context, m *mail.Message, ds *dest, rcpts []string) []mail.Result {
	domain := ds.domain
	var last *failure // nil: nothing tried failed yet (formatted only when needed)
	var policyFail *failure
	for _, t := range ds.targets {
		addrs, secure, f := d.addrs(ctx, t, domain)
		if f != nil {
			if f.status == mail.Bounced {
				return f.all(rcpts)
			}
			last = f
			continue
		}
		p, f := d.plan(ctx, ds, t, secure)
		if f != nil {
			last = f
			policyFail = cmp.Or(policyFail, f)
			continue
		}
		for _, a := range addrs {
			if err := ctx.Err(); err != nil {
				relay := "none"
				if last != nil {
					relay = last.relay
				}
				return deferred("4.4.1", relay, "delivery to %s interrupted: %v", domain, err).all(rcpts)
			}
			ap := netip.AddrPortFrom(a.Unmap(), uint16(t.port))
			fresh := false
			for {
				cn, f := d.connect(ctx, ds, t.host, ap, p, fresh)
				if f != nil {
					last = f
					if f.reply.Enhanced[1] == 7 {
						policyFail = cmp.Or(policyFail, f.under(p.name))
					}
					break
				}
				res, stale := d.session(ctx, cn, m, rcpts)
				if stale && !fresh {
					// The pooled connection had gone away: dial anew.
					fresh = true
					continue
				}
				for i := range res {
					res[i].TLSPolicy = p.name
				}
				return res
			}
		}
	}
	if policyFail != nil {
		return policyFail.all(rcpts)
	}
	if last == nil {
		last = deferred("4.4.1", "none", "no mail exchanger of %s could be reached", domain)
	}
	return last.all(rcpts)
}

// session runs the transactions for rcpts on cn, MaxRcptsPerTxn recipients
// each, then pools or closes cn. stale reports that cn, taken from the
// pool, failed before anything was sent; cn is closed and there are no
// results.
func (d *Deliverer) session(ctx context.Context, cn *conn, m *mail.Message, rcpts []string) (out []mail.Result, stale bool) {
	stop := context.AfterFunc(ctx, func() { cn.raw.Close() })
	out = make([]mail.Result, len(rcpts))
	usable := true
	for start := 0; start < len(rcpts); start += d.opts.MaxRcptsPerTxn {
		end := min(start+d.opts.MaxRcptsPerTxn, len(rcpts))
		ok, isStale := d.transaction(cn, m, rcpts[start:end], out[start:end], start == 0 && cn.reused)
		if isStale {
			stop()
			cn.c.Close()
			return nil, true
		}
		if ok && end < len(rcpts) {
			ok = d.ready(cn) == nil
		}
		if !ok {
			usable = false
			for i := end; i < len(rcpts); i++ {
				out[i] = deferred("4.4.2", cn.relay, "connection to %s lost before this recipient was sent", cn.relay).result(rcpts[i])
			}
			break
		}
	}
	if !stop() {
		usable = false // ctx ended and closed the connection
	}
	tlsVer, verified := cn.tls, cn.verified
	if tlsVer == "" {
		tlsVer, verified = "none", ""
	}
	for i := range out {
		out[i].TLS, out[i].Verified = tlsVer, verified
	}
	switch {
	case !usable:
		cn.c.Close()
	case cn.msgs < d.opts.MaxMsgsPerConn && d.ready(cn) == nil:
		cn.reused = false
		d.pool.put(cn)
	default:
		cn.quit(d.opts.CommandTimeout)
	}
	return out, false
}

// ready makes cn fit for the next MAIL. After a completed transaction
// (the reply to the end of the data, or a refused MAIL) the server holds no
// transaction and nothing is sent: a reused connection costs no round trip.
// Only a transaction left open (every RCPT refused, DATA refused) is ended
// with RSET, said beneath go-smtp (rset): its Client.Reset would clear its
// unexported didHello and make the next MAIL say EHLO again, and a
// connection says EHLO once (twice with STARTTLS).
func (d *Deliverer) ready(cn *conn) error {
	if !cn.open {
		return nil
	}
	if err := d.rset(cn); err != nil {
		return err
	}
	cn.open = false
	return nil
}

// transaction sends m to rcpts on cn and fills out, one Result per
// recipient. ok reports that the connection is fit for more; stale that
// it broke at the first command while first is set (nothing is filled).
func (d *Deliverer) transaction(cn *conn, m *mail.Message, rcpts []string, out []mail.Result, first bool) (ok, stale bool) {
	c, relay := cn.c, cn.relay
	r := &txnOut{rcpts: rcpts, out: out, relay: relay}
	all := span(0, len(rcpts))

	// RFC 6531: an internationalized message (a non-ASCII address or
	// header) goes only to a server offering SMTPUTF8, and is never
	// downgraded. One that only declared SMTPUTF8 at MAIL, all ASCII, is
	// not internationalized: a server without SMTPUTF8 gets it without the
	// parameter, as Postfix does, rather than a bounce.
	utf8 := m.SMTPUTF8 || nonASCIIAddress(m, rcpts)
	if has, _ := c.Extension("SMTPUTF8"); utf8 && !has {
		if nonASCIIAddress(m, rcpts) || !mail.ASCII(headerSection(m.Body)) {
			r.set(all, bounced(553, "5.6.7", relay, "%s does not support SMTPUTF8, which this message needs (a non-ASCII address or header); not sent", relay).result)
			return true, false
		}
		utf8 = false
	}
	// RFC 6152: an 8-bit body goes only to a server offering 8BITMIME; we do
	// not convert to 7-bit (that would break DKIM signatures), so it bounces.
	if has, _ := c.Extension("8BITMIME"); !has && !mail.ASCII(m.Body) {
		r.set(all, bounced(554, "5.6.3", relay, "%s does not support 8BITMIME and this message has an 8-bit body; not sent", relay).result)
		return true, false
	}
	if limit, has := c.MaxMessageSize(); has && limit > 0 && len(m.Body) > limit {
		r.set(all, bounced(552, "5.3.4", relay, "message of %d bytes is larger than the %d bytes %s accepts", len(m.Body), limit, relay).result)
		return true, false
	}
	if ok, stale, done := d.pipeline(cn, m, rcpts, r, first, utf8); done {
		return ok, stale
	}
	if err := c.Mail(m.From, mailOptions(m, utf8)); err != nil {
		return r.mailFailed(err, first)
	}
	cn.open = true // until the reply to the end of the data
	info := recipientInfo(m)
	var accepted []int
	for i, rc := range rcpts {
		if accepted, ok = r.rcpt(accepted, i, c.Rcpt(rc, rcptOptions(info[rc]))); !ok {
			return false, false
		}
	}
	if len(accepted) == 0 {
		return true, false
	}
	resp, err := d.sendBody(cn, m.Body)
	if err != nil {
		return r.reply(accepted, err), false
	}
	cn.msgs++
	r.sent(accepted, resp)
	return true, false
}

// mailOptions are the MAIL parameters for m (SMTPUTF8 when utf8); go-smtp
// adds only those the peer supports (BODY=8BITMIME whenever it offers
// 8BITMIME).
func mailOptions(m *mail.Message, utf8 bool) *smtp.MailOptions {
	o := &smtp.MailOptions{Size: int64(len(m.Body)), UTF8: utf8}
	switch strings.ToUpper(m.Ret) {
	case "FULL":
		o.Return = smtp.DSNReturnFull
	case "HDRS":
		o.Return = smtp.DSNReturnHeaders
	}
	if printable(m.EnvID) {
		o.EnvelopeID = m.EnvID
	}
	return o
}

// nonASCIIAddress reports that m's sender or one of rcpts is not ASCII,
// which needs SMTPUTF8 whether or not MAIL declared it (mail queued before
// the inbound check, or made locally, can lack the flag).
func nonASCIIAddress(m *mail.Message, rcpts []string) bool {
	if !mail.ASCII(m.From) {
		return true
	}
	for _, rc := range rcpts {
		if !mail.ASCII(rc) {
			return true
		}
	}
	return false
}

// headerSection is body up to the blank line that ends its header
// fields (all of it when there is none).
func headerSection(body []byte) []byte {
	if bytes.HasPrefix(body, []byte("\r\n")) {
		return nil
	}
	if i := bytes.Index(body, []byte("\r\n\r\n")); i >= 0 {
		return body[:i+2]
	}
	return body
}

// recipientInfo maps each address of m to its envelope recipient.
func recipientInfo(m *mail.Message) map[string]*mail.Recipient {
	info := make(map[string]*mail.Recipient, len(m.Rcpts))
	for i := range m.Rcpts {
		info[m.Rcpts[i].Addr] = &m.Rcpts[i]
	}
	return info
}

// rcptOptions are the DSN parameters (NOTIFY, ORCPT) given for r at
// RCPT, passed on when well formed.
func rcptOptions(r *mail.Recipient) *smtp.RcptOptions {
	if r == nil {
		return nil
	}
	o := &smtp.RcptOptions{Notify: notifyList(r.Notify)}
	if typ, addr, found := strings.Cut(r.ORCPT, ";"); found && addr != "" {
		switch strings.ToUpper(typ) {
		case "RFC822":
			if printable(addr) {
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
			}
		case "UTF-8":
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	return o
}

// notifyList is a well-formed NOTIFY list (NEVER alone, or some of
// SUCCESS, FAILURE, DELAY), or nil.
func notifyList(list []string) []smtp.DSNNotify {
	var out []smtp.DSNNotify
	for _, n := range list {
		v := smtp.DSNNotify(strings.ToUpper(n))
		switch v {
		case smtp.DSNNotifyNever:
			if len(list) != 1 {
				return nil
			}
		case smtp.DSNNotifyDelayed, smtp.DSNNotifyFailure, smtp.DSNNotifySuccess:
		default:
			return nil
		}
		out = append(out, v)
	}
	return out
}

// printable reports whether s is non-empty printable ASCII.
func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
