package smtpd

import (
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// Replies of the session.
var (
	errRelayDenied = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relay access denied"}
	errTooManyRcpts = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3},
		Message: "Too many recipients"}
	errNestedMail = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "Nested MAIL command"}
	errBareNewline = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Message contains bare CR or LF, refused"}
	errQueue = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary queue failure, try again"}
)

// defaultBodyCap is the first buffer size for a message whose MAIL gave no
// SIZE; it grows by doubling.
const defaultBodyCap = 16 << 10

// session is one client connection's SMTP state, from its first greeting.
type session struct {
	s    *Server
	conn *smtp.Conn
	info ConnInfo
	log  *slog.Logger

	env      *mail.Envelope // the current transaction, nil before MAIL
	sizeHint int64          // SIZE= from MAIL, 0 when not given
	fs       *fsession      // the filter chain's state, nil without filters
}

var (
	_ smtp.Session = (*session)(nil)
)

// newSession starts a session at the client's first HELO or EHLO.
func newSession(s *Server, c *smtp.Conn) (*session, error) {
	ip := remoteIP(c.Conn())
	ss := &session{
		s:    s,
		conn: c,
		info: ConnInfo{Service: s.opts.Name, ClientIP: ip},
		log:  s.log.With("client", ip.String()),
	}
	ss.info.Helo = c.Hostname()
	if ss.fs = newFsession(s.opts.Filters, s.opts.Name, c.Conn()); ss.fs != nil {
		ss.fs.txn.Conn.TLS = ss.tlsDescription()
		if reply := ss.run(pluginapi.HookConnect); reply != nil {
			return nil, reply
		}
		ss.fs.txn.Conn.Helo = ss.info.Helo
		if reply := ss.run(pluginapi.HookHelo); reply != nil {
			return nil, reply
		}
		// A Discard at connect or helo drops every message of the connection.
		ss.fs.discardAll = ss.fs.discard
		ss.fs.connNotes = maps.Clone(ss.fs.txn.Notes)
		ss.fs.connSymbols = slices.Clone(ss.fs.txn.Symbols)
	}
	return ss, nil
}

// relayAllowed reports whether this client may send to any domain: it comes
// from a trusted network or has authenticated.
func (ss *session) relayAllowed() bool {
	return ss.info.AuthUser != "" || ss.s.isTrusted(ss.info.ClientIP)
}

// Reset drops the current transaction.
func (ss *session) Reset() {
	ss.env = nil
	ss.sizeHint = 0
}

// Logout ends the session; disconnects are logged by the connection.
func (ss *session) Logout() error { return nil }

// Mail starts a transaction.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.env != nil {
		return errNestedMail
	}
	if ss.s.requireAuth && ss.info.AuthUser == "" {
		return ss.reject("mail", errAuthRequired, "from", from)
	}
	if err := checkSender(from); err != nil {
		return ss.reject("mail", err.(*smtp.SMTPError), "from", from)
	}
	if err := ss.checkSenderOwned(from); err != nil {
		return err
	}
	ss.info.Helo = ss.conn.Hostname() // a later EHLO may have changed it
	env := &mail.Envelope{
		From:     from,
		ClientIP: ss.info.ClientIP.String(),
		Helo:     ss.info.Helo,
		AuthUser: ss.info.AuthUser,
		Trusted:  ss.s.isTrusted(ss.info.ClientIP),
	}
	if opts != nil {
		env.SMTPUTF8 = opts.UTF8
		env.Body8Bit = opts.Body == smtp.Body8BitMIME
		env.Ret = string(opts.Return)
		env.EnvID = opts.EnvelopeID
		ss.sizeHint = opts.Size
	}
	if fs := ss.fs; fs != nil {
		fs.txn.Conn.Helo = ss.info.Helo
		fs.txn.Conn.TLS = ss.tlsDescription() // STARTTLS may have come since
		fs.beginTxn(from)
		if reply := ss.run(pluginapi.HookMail); reply != nil {
			return reply
		}
	}
	ss.env = env
	return nil
}

// Rcpt checks a recipient and adds it to the transaction.
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if ss.env == nil { // go-smtp checks this too
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "MAIL first"}
	}
	local, domain, err := checkAddress(to)
	if err != nil {
		return ss.reject("rcpt", err.(*smtp.SMTPError), "rcpt", to)
	}
	// Local domains take mail from anyone; the rest is relaying.
	if !ss.s.isLocal(domain) && !ss.relayAllowed() {
		return ss.reject("rcpt", errRelayDenied, "rcpt", to)
	}
	addr := local + "@" + domain
	for _, r := range ss.env.Rcpts {
		if r.Addr == addr {
			return nil // a duplicate is accepted once
		}
	}
	if len(ss.env.Rcpts) >= ss.s.lc.MaxRecipients {
		return ss.reject("rcpt", errTooManyRcpts, "rcpt", to)
	}
	rcpt := mail.Recipient{Addr: addr}
	if opts != nil {
		for _, n := range opts.Notify {
			rcpt.Notify = append(rcpt.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			rcpt.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	if fs := ss.fs; fs != nil {
		fs.txn.Rcpt, fs.txn.Rcpts = addr, rcptAddrs(ss.env.Rcpts)
		discarded := fs.discard
		fs.discard = false
		reply := ss.run(pluginapi.HookRcpt)
		dropThis := fs.discard
		fs.discard = discarded
		if reply != nil {
			return reply
		}
		syncRcpts(ss.env, fs.txn.Rcpts) // plugins may add or remove others
		if dropThis || fs.txn.Rcpt == "" {
			ss.log.Info("recipient dropped by a plugin", "rcpt", addr)
			return nil // 250, but not delivered
		}
		rcpt.Addr = fs.txn.Rcpt // possibly rewritten
	}
	ss.env.Rcpts = append(ss.env.Rcpts, rcpt)
	return nil
}

// Data reads the message into one buffer that starts with the Received
// header, checks it for bare CR and LF, and queues it. The reply to a
// queued message is an *smtp.SMTPError with code 250, go-smtp's way of
// choosing the success text.
func (ss *session) Data(r io.Reader) error {
	env := ss.env
	if env == nil {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "MAIL first"}
	}
	now := time.Now()
	env.ID = ss.s.opts.Queue.NewID()
	env.Received = now
	ri := receivedInfo{
		Helo:     env.Helo,
		ClientIP: ss.info.ClientIP,
		Hostname: ss.s.opts.Hostname,
		Auth:     ss.info.AuthUser != "",
		UTF8:     env.SMTPUTF8,
		ID:       env.ID,
		Date:     now,
	}
	_, ri.TLS = ss.tlsState()
	if len(env.Rcpts) == 1 {
		ri.Rcpt = env.Rcpts[0].Addr
	}
	bodyCap := int64(defaultBodyCap)
	if ss.sizeHint > 0 {
		bodyCap = min(ss.sizeHint, int64(ss.s.lc.MaxMessageSize)) + 1
	}
	buf := make([]byte, 0, 512+bodyCap)
	buf = appendReceived(buf, ri)
	hdrLen := len(buf)

	var sc bareScanner
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow, amortised doubling
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		if sc.scan(buf[len(buf):len(buf)+n]) && !ss.s.normalize {
			// go-smtp reads and drops the rest up to the real end.
			return ss.reject("data", errBareNewline, "from", env.From)
		}
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return ss.readFailed(err)
		}
	}
	if lostBareCR(ss.conn.Conn()) {
		// The bytes are gone, so even "normalize" cannot repair this.
		return ss.reject("data", errBareNewline, "from", env.From)
	}
	if sc.end() {
		if !ss.s.normalize {
			return ss.reject("data", errBareNewline, "from", env.From)
		}
		buf = normalizeNewlines(buf[:hdrLen:hdrLen], buf[hdrLen:])
	}
	var reply *smtp.SMTPError
	if buf, reply = ss.authenticate(env, buf); reply != nil {
		return reply
	}
	if fs := ss.fs; fs != nil {
		if buf, reply = ss.filterData(env, buf); reply != nil {
			return reply
		}
		if fs.discard || len(env.Rcpts) == 0 {
			ss.log.Info("discarded by a plugin", "id", env.ID, "from", env.From)
			return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + env.ID}
		}
	}
	env.Size = int64(len(buf))
	id, err := ss.s.opts.Queue.Enqueue(ss.s.ctx, env, buf)
	if err != nil {
		ss.log.Error("enqueue failed", "id", env.ID, "code", errQueue.Code, "err", err)
		return errQueue
	}
	ss.log.Info("queued", "id", id, "from", env.From, "rcpts", len(env.Rcpts), "size", env.Size)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + id}
}

// readFailed handles a read error inside the message. An SMTPError (size
// limit) or a BDAT reset is answered normally; anything else (timeout,
// broken or too long line) closes the connection, so that what the client
// sends later is never read as commands.
func (ss *session) readFailed(err error) error {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		return ss.reject("data", se)
	case errors.Is(err, smtp.ErrDataReset):
		return err
	}
	ss.log.Warn("reading message failed, closing connection", "timeout", isTimeout(err), "err", err)
	ss.conn.Conn().Close()
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Error reading message, closing connection"}
}

// reject logs a refusal and returns its reply.
func (ss *session) reject(stage string, reply *smtp.SMTPError, attrs ...any) error {
	ss.log.Info("reject", append([]any{"stage", stage, "code", reply.Code,
		"reason", reply.Message}, attrs...)...)
	return reply
}
