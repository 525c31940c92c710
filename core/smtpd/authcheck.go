package smtpd

import (
	"context"

	"github.com/sluice-mta/sluice/core/auth"
	"github.com/sluice-mta/sluice/core/mail"
)

// Checker runs the inbound SPF, DKIM and DMARC checks; *auth.Checker
// implements it.
type Checker interface {
	Check(ctx context.Context, in auth.CheckInput) (*auth.Results, error)
}

var _ Checker = (*auth.Checker)(nil)

// Replies of the inbound checks.
var (
	errDMARCReject = mail.NewReply(550, "5.7.1", "Message rejected: the From domain's DMARC policy says reject")
	errAuthTemp    = mail.NewReply(451, "4.3.0", "Temporary authentication failure, try again")
)

// authenticate checks mail from the outside world (not from an
// authenticated user nor a trusted network): it runs the checks on msg,
// whose header h the caller parsed, removes from h forged
// Authentication-Results fields claiming our name and prepends ours, hands
// the results to the filters, and refuses mail whose DMARC policy says
// reject when the operator enforces it. A refusal is the reply to send.
func (ss *session) authenticate(env *mail.Envelope, msg []byte, h *mail.Header) *mail.Reply {
	res, err := ss.s.opts.Auth.Check(ss.ctx, auth.CheckInput{
		ID: env.ID, ClientIP: ss.info.ClientIP, Helo: env.Helo, MailFrom: env.From, Message: msg, Header: h,
	})
	if err != nil {
		ss.log.Warn("authentication checks failed", "id", env.ID, "err", err)
		return errAuthTemp
	}
	if ss.fs != nil {
		ss.fs.Txn().Conn.AuthResults = res.Header()
	}
	if ss.s.opts.DMARCEnforce && res.Disposition() == auth.DispositionReject {
		ss.logReject("data", errDMARCReject)
		return errDMARCReject
	}
	res.Apply(h)
	return nil
}
