package smtpd

import "github.com/sluice-mta/sluice/core/mail"

// The address checks live in core/mail, shared with the filter host.

// Replies refusing an address.
var (
	errAddrSyntax   = mail.ReplyAddrSyntax
	errDomainSyntax = mail.ReplyDomainSyntax
	errLocalUnsafe  = mail.ReplyLocalUnsafe
	errRouting      = mail.ReplyRouting
	// RFC 6531 section 3.4: a non-ASCII address without SMTPUTF8 on MAIL.
	errSenderUTF8 = mail.NewReply(553, "5.6.7", "Non-ASCII sender address needs the SMTPUTF8 parameter on MAIL FROM")
	errRcptUTF8   = mail.NewReply(553, "5.6.7", "Non-ASCII recipient address needs the SMTPUTF8 parameter on MAIL FROM")
)

// checkAddress is mail.CheckAddress: an RCPT address.
func checkAddress(addr string) (local, domain string, reply *mail.Reply) {
	return mail.CheckAddress(addr)
}

// checkDomain is mail.CheckDomain.
func checkDomain(d string) (string, *mail.Reply) { return mail.CheckDomain(d) }

// checkSender is mail.CheckSender: a MAIL FROM address.
func checkSender(addr string) *mail.Reply { return mail.CheckSender(addr) }
