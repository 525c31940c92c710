package smtpd

import (
	"errors"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/addressing/srs"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
)

// noteResolved is the transaction note that tells the rcpt-stage plugins
// what the recipient under consideration resolves to (Resolution.Summary,
// e.g. "alias: a@example.com (maildir), x@example.net (forward)"). It is
// set just before the rcpt stage and removed after it (pluginapi/ABI.md).
const noteResolved = "sluice.rcpt.resolved"

// resolve returns what the recipient rcpt, as given at RCPT, stands for:
// with Options.Recipients, the addresses it expands to (a mailbox, an
// alias's targets, an SRS bounce's original sender), each with rcpt's DSN
// parameters and an ORCPT naming rcpt, and a one-line summary; without,
// rcpt itself. A refused recipient is the reply to send, logged with its
// cause.
func (ss *session) resolve(rcpt mail.Recipient) ([]mail.Recipient, string, error) {
	r := ss.s.opts.Recipients
	if r == nil {
		return []mail.Recipient{rcpt}, "", nil
	}
	res, err := r.Resolve(ss.ctx, rcpt.Addr)
	for _, p := range res.Problems {
		ss.log.Warn("addressing: "+p, "rcpt", rcpt.Addr)
	}
	if err != nil {
		var ref *addressing.Refusal
		if !errors.As(err, &ref) {
			ref = &addressing.Refusal{Reply: *errResolve, Err: err}
		}
		return nil, "", ss.reject("rcpt", &ref.Reply, "rule", "addressing", "rcpt", rcpt.Addr, "cause", ref.Err.Error())
	}
	if res.Kind != addressing.Remote {
		ss.log.Debug("recipient resolved", "rcpt", rcpt.Addr, "to", res.Summary())
	}
	return res.Recipients(rcpt.Notify, rcpt.ORCPT), res.Summary(), nil
}

// srsAddress lets through an address at our SRS domain that checkAddress
// refused with reply for its local part: an SRS hash is base64 ('/' and
// '+') and the original sender's local part in it may hold what senders
// may ('%', '!'). Such an address is only reversed, never used as a path
// or a route. It must still pass the sender checks (no spaces or control
// characters).
func (ss *session) srsAddress(to string, reply *mail.Reply) (string, string, *mail.Reply) {
	r := ss.s.opts.Recipients
	if r == nil || r.SRS() == nil || !srs.IsSRS(to) || checkSender(to) != nil {
		return "", "", reply
	}
	local, d, _ := mail.Split(to)
	domain, dreply := checkDomain(d)
	if dreply != nil || mail.NormDomain(domain) != r.SRS().Domain() {
		return "", "", reply
	}
	return local, domain, nil
}

// errResolve answers a recipient whose resolution failed without a reply
// of its own.
var errResolve = mail.NewReply(451, "4.3.0", "Temporary failure resolving the recipient, try again")

// addRcpts appends to rcpts the recipients of rs not in it already: an
// address reached twice in a transaction (given and through an alias, or
// through two aliases) is queued once, with what it was first reached as.
func addRcpts(rcpts, rs []mail.Recipient) []mail.Recipient {
	const linear = 256 // comparisons before a map is cheaper
	if len(rcpts)*len(rs) <= linear {
	next:
		for _, r := range rs {
			for _, have := range rcpts {
				if mail.SameAddress(have.Addr, r.Addr) {
					continue next
				}
			}
			rcpts = append(rcpts, r)
		}
		return rcpts
	}
	seen := make(map[string]bool, len(rcpts)+len(rs))
	for _, have := range rcpts {
		seen[mail.Key(have.Addr)] = true
	}
	for _, r := range rs {
		if k := mail.Key(r.Addr); !seen[k] {
			seen[k] = true
			rcpts = append(rcpts, r)
		}
	}
	return rcpts
}

// rcptStage runs the rcpt-stage plugins on rcpt as the client gave it,
// with the note saying what it resolves to, and adds its targets to the
// transaction. A recipient a plugin rewrote is resolved again (its
// targets' ORCPT still names what the client gave); a dropped one is
// answered 250 and not queued.
func (ss *session) rcptStage(fs *filter.Session, rcpt mail.Recipient, targets []mail.Recipient, summary string) error {
	t := fs.Txn()
	if summary != "" && t.Notes != nil {
		t.Notes[noteResolved] = summary
	}
	got, o := fs.Rcpt(ss.ctx, ss.env.Rcpts, rcpt)
	delete(t.Notes, noteResolved)
	if err := ss.answer("rcpt", o); err != nil {
		return err
	}
	if o.Drop {
		ss.given = append(ss.given, rcpt.Addr)
		ss.env.Rcpts = got
		ss.log.Info("recipient dropped by a plugin", "rcpt", rcpt.Addr)
		return nil
	}
	last := got[len(got)-1] // rcpt, as the plugins left it
	got = got[:len(got)-1]
	if last.Addr != rcpt.Addr {
		if last.ORCPT == "" {
			last.ORCPT = "rfc822;" + rcpt.Addr
		}
		var err error
		if targets, _, err = ss.resolve(last); err != nil {
			ss.env.Rcpts = got
			return err
		}
	}
	ss.given = append(ss.given, rcpt.Addr)
	ss.env.Rcpts = addRcpts(got, targets)
	return nil
}
