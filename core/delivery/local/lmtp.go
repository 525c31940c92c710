package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/sluice-mta/sluice/core/mail"
)

// defaultLMTPTimeout bounds the connection and each command when
// LMTPOptions.Timeout is zero.
const defaultLMTPTimeout = 5 * time.Minute

// LMTPOptions configures an LMTP deliverer.
type LMTPOptions struct {
	// Addr is where the LMTP server listens: "host:port" or "unix:/path".
	Addr string
	// Hostname is the name sent in LHLO; "localhost" when empty.
	Hostname string
	// Timeout bounds connecting and each command; the reply after the
	// message data gets twice as long. Zero means 5 minutes.
	Timeout time.Duration
	// Logger receives one line per recipient; nil discards them.
	Logger *slog.Logger
}

// LMTP hands messages to a local delivery agent such as Dovecot over LMTP
// (RFC 2033), which answers for each recipient separately after the data.
// It opens one connection per Deliver call. The message goes without the
// Return-Path fields it came with: the server, making the final delivery,
// writes the one from MAIL FROM (Dovecot and Cyrus do), so the stored
// message has exactly one.
type LMTP struct {
	opts    LMTPOptions
	log     *slog.Logger
	relay   string
	network string
	address string
}

var _ mail.Deliverer = (*LMTP)(nil)

// NewLMTP returns an LMTP deliverer for opts.
func NewLMTP(opts LMTPOptions) *LMTP {
	if opts.Timeout <= 0 {
		opts.Timeout = defaultLMTPTimeout
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	l := &LMTP{opts: opts, log: orDiscard(opts.Logger), network: "tcp", address: opts.Addr}
	if path, ok := strings.CutPrefix(opts.Addr, "unix:"); ok {
		l.network, l.address = "unix", path
		l.relay = "lmtp[" + opts.Addr + "]"
	} else if host, port, err := net.SplitHostPort(opts.Addr); err == nil {
		l.relay = "lmtp[" + host + "]:" + port
	} else {
		l.relay = "lmtp[" + opts.Addr + "]"
	}
	return l
}

// Deliver sends m to the LMTP server for rcpts and returns the server's
// verdict for each.
func (l *LMTP) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	results := l.deliver(ctx, m, rcpts)
	for _, r := range results {
		logResult(ctx, l.log, m, r)
	}
	return results
}

// deliver runs one LMTP transaction. Every recipient gets exactly one
// Result, in the order of rcpts.
func (l *LMTP) deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	results := make([]mail.Result, len(rcpts))
	if len(rcpts) == 0 {
		return results
	}
	// index maps each distinct address to its positions in rcpts; the
	// server sees each address once.
	index := make(map[string][]int, len(rcpts))
	var order []string
	for i, rc := range rcpts {
		if _, ok := index[rc]; !ok {
			order = append(order, rc)
		}
		index[rc] = append(index[rc], i)
	}
	done := make(map[string]bool, len(order))
	set := func(rcpt string, r mail.Result) {
		done[rcpt] = true
		for _, i := range index[rcpt] {
			results[i] = r
			results[i].Rcpt = rcpts[i]
		}
	}
	// failAll gives every recipient without a Result one built from err.
	failAll := func(err error, dsn string) []mail.Result {
		for _, rc := range order {
			if !done[rc] {
				set(rc, l.errResult(rc, err, dsn))
			}
		}
		return results
	}

	dialer := net.Dialer{Timeout: l.opts.Timeout}
	conn, err := dialer.DialContext(ctx, l.network, l.address)
	if err != nil {
		return failAll(fmt.Errorf("connecting to LMTP server %s: %w", l.opts.Addr, err), "4.4.1")
	}
	// Cancelling ctx aborts whatever command is in flight.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	c.CommandTimeout = l.opts.Timeout
	c.SubmissionTimeout = 2 * l.opts.Timeout

	if err := c.Hello(l.opts.Hostname); err != nil {
		// Even a 5xx greeting is the server's trouble, not the
		// recipients': defer rather than bounce.
		return failAll(fmt.Errorf("LMTP server %s refused the session: %s", l.opts.Addr, err), "4.4.2")
	}
	if err := c.Mail(m.From, l.mailOptions(c, m)); err != nil {
		return failAll(err, "4.4.2")
	}
	var accepted []string
	for _, rc := range order {
		if err := c.Rcpt(rc, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return failAll(err, "4.4.2")
			}
			set(rc, l.errResult(rc, err, ""))
			continue
		}
		accepted = append(accepted, rc)
	}
	if len(accepted) == 0 {
		c.Quit()
		return results
	}

	w, err := c.Data()
	if err != nil {
		return failAll(err, "4.4.2")
	}
	if _, err := w.Write(withoutReturnPath(m.Body)); err != nil {
		return failAll(err, "4.4.2")
	}
	resp, err := w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	if err != nil && !errors.As(err, &perRcpt) {
		// The connection broke before every reply came: what was
		// confirmed is delivered, the rest is retried.
		for rc, dr := range resp {
			set(rc, l.okResult(rc, dr.StatusText))
		}
		return failAll(err, "4.4.2")
	}
	for rc, se := range perRcpt {
		set(rc, l.errResult(rc, se, ""))
	}
	for rc, dr := range resp {
		set(rc, l.okResult(rc, dr.StatusText))
	}
	c.Quit()
	return failAll(errors.New("LMTP server gave no reply for this recipient"), "4.4.2")
}

// mailOptions returns the MAIL parameters for m that the server supports.
func (l *LMTP) mailOptions(c *smtp.Client, m *mail.Message) *smtp.MailOptions {
	opts := &smtp.MailOptions{Size: int64(len(m.Body))}
	if ok, _ := c.Extension("SMTPUTF8"); ok && m.SMTPUTF8 {
		opts.UTF8 = true
	}
	return opts
}

// okResult is the Result for a positive per-recipient reply.
func (l *LMTP) okResult(rcpt, text string) mail.Result {
	r := mail.Reply{Code: 250, Enhanced: mail.EnhancedCode{2, 0, 0}, Text: text}
	if code, rest, ok := mail.CutEnhanced(text); ok {
		r.Enhanced, r.Text = code, rest
	}
	return mail.SentResult(rcpt, l.relay, r)
}

// errResult turns err into a Result for rcpt. An *smtp.SMTPError keeps the
// server's reply (5xx bounces, anything else defers; an enhanced code that
// is missing or of another class becomes x.0.0); other errors defer with
// fallback ("4.0.0" when empty).
func (l *LMTP) errResult(rcpt string, err error, fallback string) mail.Result {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		if fallback == "" {
			fallback = "4.0.0"
		}
		return mail.DeferredResult(rcpt, l.relay, reason(451, fallback, err.Error()))
	}
	r := mail.WireReply(se.Code, se.EnhancedCode, se.Message)
	class := se.Code / 100
	if class != 5 {
		class = 4
	}
	// A reply without an enhanced code of its own class gets x.0.0.
	if se.EnhancedCode[0] != class {
		r.Enhanced = mail.EnhancedCode{class, 0, 0}
	}
	if class == 5 {
		return mail.BouncedResult(rcpt, l.relay, r)
	}
	return mail.DeferredResult(rcpt, l.relay, r)
}
