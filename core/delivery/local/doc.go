// Package local delivers messages to mailboxes on this host: straight into
// Maildirs on disk, or over LMTP to a local delivery agent such as Dovecot.
//
// Both transports implement mail.Deliverer and answer with one
// mail.Result per recipient, so a message to several users can succeed for
// some and be deferred or bounced for others.
package local
