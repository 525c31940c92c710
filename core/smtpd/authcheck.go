package smtpd

import (
	"context"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/auth"
	"github.com/sluice-mta/sluice/core/mail"
)

// Checker runs the inbound SPF, DKIM and DMARC checks; *auth.Checker
// implements it.
type Checker interface {
	Check(ctx context.Context, in auth.CheckInput) (*auth.Results, error)
}

var _ Checker = (*auth.Checker)(nil)

var errDMARCReject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
	Message: "Message rejected: the From domain's DMARC policy says reject"}

// authenticate checks mail from the outside world (not from an
// authenticated user nor a trusted network): it removes forged
// Authentication-Results headers claiming our name, prepends ours, hands the
// results to the filters, and refuses mail whose DMARC policy says reject
// when the operator enforces it.
func (ss *session) authenticate(env *mail.Envelope, msg []byte) ([]byte, *smtp.SMTPError) {
	c := ss.s.opts.Auth
	if c == nil || env.AuthUser != "" || env.Trusted {
		return msg, nil
	}
	res, err := c.Check(ss.s.ctx, auth.CheckInput{
		ID: env.ID, ClientIP: ss.info.ClientIP, Helo: env.Helo, MailFrom: env.From, Message: msg,
	})
	if err != nil {
		ss.log.Warn("authentication checks failed", "id", env.ID, "err", err)
		return nil, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary authentication failure, try again"}
	}
	if ss.fs != nil {
		ss.fs.txn.Conn.AuthResults = res.Header()
	}
	if ss.s.opts.DMARCEnforce && res.Disposition() == auth.DispositionReject {
		ss.log.Info("reject", "stage", "data", "code", errDMARCReject.Code, "reason", "dmarc", "id", env.ID, "from", env.From)
		return nil, errDMARCReject
	}
	return res.Apply(msg), nil
}
