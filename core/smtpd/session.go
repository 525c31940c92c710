package smtpd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/mail"
)

// Replies of the session.
var (
	errRelayDenied  = mail.NewReply(554, "5.7.1", "Relay access denied")
	errTooManyRcpts = mail.NewReply(452, "4.5.3", "Too many recipients")
	errNestedMail   = mail.NewReply(503, "5.5.1", "Nested MAIL command")
	errMailFirst    = mail.NewReply(503, "5.5.1", "MAIL first")
	errBareNewline  = mail.NewReply(550, "5.5.2", "Message contains bare CR or LF, refused")
	errQueue        = mail.NewReply(451, "4.3.0", "Temporary queue failure, try again")
	errReadFailed   = mail.NewReply(421, "4.4.2", "Error reading message, closing connection")
)

// queuedReply is the answer to a message taken: an *smtp.SMTPError with
// code 250 is go-smtp's way of choosing the success text.
func queuedReply(id string) error {
	return smtpReply(&mail.Reply{Code: 250, Enhanced: mail.EnhancedCode{2, 0, 0}, Text: "Ok: queued as " + id})
}

// defaultBodyCap is the first buffer size for a message whose MAIL gave no
// SIZE; it grows by doubling.
const defaultBodyCap = 16 << 10

// session is one client connection's SMTP state, from its first greeting.
type session struct {
	s    *Server
	conn *smtp.Conn
	info ConnInfo
	log  *slog.Logger    // the connection's logger: session ID and client
	ctx  context.Context // the server's, carrying the session ID (logctx)

	env      *mail.Envelope  // the current transaction, nil before MAIL
	given    []string        // the recipients accepted at RCPT, as given
	sizeHint int64           // SIZE= from MAIL, 0 when not given
	fs       *filter.Session // the filter chain's state, nil without filters
	authLast [32]byte        // hash of the last failed AUTH's user and password
}

var (
	_ smtp.Session = (*session)(nil)
)

// newSession starts a session at the client's first HELO or EHLO.
func newSession(s *Server, c *smtp.Conn) (*session, error) {
	ip := remoteIP(c.Conn())
	id, log := s.sessionLog(c.Conn())
	ss := &session{
		s:    s,
		conn: c,
		info: ConnInfo{Service: s.opts.Name, ClientIP: ip},
		log:  log,
		ctx:  sessionContext(s.ctx, id),
	}
	ss.info.Helo = c.Hostname()
	if ss.fs = newFilterSession(s.opts.Filters, s.opts.Name, s.opts.Spam, c.Conn()); ss.fs != nil {
		conn := ss.fs.Txn().Conn
		conn.TLS = ss.tlsDescription()
		rd := ss.rdns()
		conn.RDNS, conn.RDNSStatus, conn.PTR = rd.Name, rd.Status, rd.PTR
		ss.fs.Txn().CheckRcpt, ss.fs.Txn().MaxRcpts = ss.checkPluginRcpt, s.lc.MaxRecipients
		if err := ss.answer("connect", ss.fs.Connect(ss.ctx)); err != nil {
			return nil, err
		}
		if err := ss.answer("helo", ss.fs.Helo(ss.ctx, ss.info.Helo)); err != nil {
			return nil, err
		}
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
	ss.given = nil
	ss.sizeHint = 0
}

// Logout ends the session; disconnects are logged by the connection.
func (ss *session) Logout() error { return nil }

// Mail starts a transaction.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.env != nil {
		return smtpReply(errNestedMail)
	}
	if ss.s.requireAuth && ss.info.AuthUser == "" {
		return ss.reject("mail", errAuthRequired, "from", from)
	}
	if reply := checkSender(from); reply != nil {
		return ss.reject("mail", reply, "from", from)
	}
	if !mail.ASCII(from) && (opts == nil || !opts.UTF8) {
		return ss.reject("mail", errSenderUTF8, "from", from)
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
		conn := fs.Txn().Conn
		conn.Helo = ss.info.Helo
		conn.TLS = ss.tlsDescription() // STARTTLS may have come since
		if err := ss.answer("mail", fs.Mail(ss.ctx, from)); err != nil {
			return err
		}
	}
	ss.env = env
	ss.given = ss.given[:0]
	return nil
}

// Rcpt checks a recipient and adds to the transaction what it resolves to
// (Options.Recipients): a recipient unknown at a local domain is refused
// here, before DATA; an alias is queued as its targets. max_recipients
// counts the addresses the client gave, as Postfix does.
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if ss.env == nil { // go-smtp checks this too
		return smtpReply(errMailFirst)
	}
	if !ss.env.SMTPUTF8 && !mail.ASCII(to) {
		return ss.reject("rcpt", errRcptUTF8, "rcpt", to)
	}
	local, domain, reply := checkAddress(to)
	if reply == errLocalUnsafe || reply == errRouting {
		local, domain, reply = ss.srsAddress(to, reply)
	}
	if reply != nil {
		return ss.reject("rcpt", reply, "rcpt", to)
	}
	// Local domains take mail from anyone; the rest is relaying.
	if !ss.s.isLocal(domain) && !ss.relayAllowed() {
		return ss.reject("rcpt", errRelayDenied, "rcpt", to)
	}
	addr := local + "@" + domain
	if slices.Contains(ss.given, addr) {
		return nil // a duplicate is accepted once
	}
	if len(ss.given) >= ss.s.lc.MaxRecipients {
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
	targets, summary, err := ss.resolve(rcpt)
	if err != nil {
		return err
	}
	if fs := ss.fs; fs != nil {
		return ss.rcptStage(fs, rcpt, targets, summary)
	}
	ss.given = append(ss.given, addr)
	ss.env.Rcpts = addRcpts(ss.env.Rcpts, targets)
	return nil
}

// Data reads the message into one buffer that starts with the Received
// header, checks it for bare CR and LF, runs the inbound checks and the
// data stage on its header, parsed once, and queues it.
func (ss *session) Data(r io.Reader) (err error) {
	if br := newBodyReader(ss.conn.Conn(), r, int64(ss.s.lc.MaxMessageSize)); br != nil {
		defer br.finish()
		r = br
	}
	env := ss.env
	if env == nil {
		return smtpReply(errMailFirst)
	}
	discarded := false
	defer func() {
		if res := messageResult(err, env.Held, discarded); res != "" {
			ss.s.opts.Observer.SMTPMessage(ss.s.opts.Name, res)
		}
	}()
	now := time.Now()
	env.ID = ss.s.opts.Queue.NewID()
	env.Received = now
	_, isTLS := ss.tlsState()
	env.ClientRDNS = ss.rdns().Name
	tr := mail.Trace{
		Helo:       env.Helo,
		ClientName: env.ClientRDNS,
		ClientIP:   ss.info.ClientIP,
		By:         ss.s.opts.Hostname,
		Comment:    nodeComment(ss.s.opts.NodeID),
		With:       mail.Protocol(env.SMTPUTF8, isTLS, ss.info.AuthUser != ""),
		UTF8:       env.SMTPUTF8,
		ID:         env.ID,
		Date:       now,
	}
	if len(env.Rcpts) == 1 {
		tr.Rcpt = env.Rcpts[0].Addr
	}
	bodyCap := int64(defaultBodyCap)
	if ss.sizeHint > 0 {
		bodyCap = min(ss.sizeHint, int64(ss.s.lc.MaxMessageSize)) + 1
	}
	buf := make([]byte, 0, 512+bodyCap)
	buf = mail.AppendReceived(buf, tr)
	hdrLen := len(buf)

	var sc bareScanner
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow, amortised doubling
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		if sc.scan(buf[len(buf):len(buf)+n]) && !ss.s.normalize {
			// go-smtp reads and drops the rest up to the real end.
			return ss.reject("data", errBareNewline)
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
		return ss.reject("data", errBareNewline)
	}
	if sc.end() {
		if !ss.s.normalize {
			return ss.reject("data", errBareNewline)
		}
		buf = normalizeNewlines(buf[:hdrLen:hdrLen], buf[hdrLen:])
	}
	msg, err := ss.process(env, buf)
	if err != nil || msg == nil {
		discarded = msg == nil // a 250 without a message to queue
		return err
	}
	env.Size = int64(len(msg))
	ctx := ss.ctx
	if ss.fs != nil {
		// The queue's "queued" line, the data-stage line of every message
		// taken, says what the plugins scored it (0 and no symbols too).
		t := ss.fs.Txn()
		ctx = logctx.With(ctx, slog.Float64("score", t.Score), slog.String("symbols", filter.SymbolList(t.Symbols)))
	}
	id, err := ss.s.opts.Queue.Enqueue(ctx, env, msg)
	if err != nil {
		ss.log.Error("enqueue failed", "id", env.ID, "code", errQueue.Code, "err", err)
		return smtpReply(errQueue)
	}
	return queuedReply(id) // the queue logs the message it took
}

// process runs what reads or edits the header of the message in buf —
// the inbound checks and the data stage with its spam thresholds — on
// one parse of it, and returns the message to queue: buf itself when
// nothing changed the header, else the header written back once before
// the body. A nil message with a nil error is a discarded one (answered
// 250); an error is the reply refusing it.
func (ss *session) process(env *mail.Envelope, buf []byte) ([]byte, error) {
	checks := ss.s.opts.Auth != nil && env.AuthUser == "" && !env.Trusted
	fs := ss.fs
	if !checks && fs == nil {
		return buf, nil
	}
	hdr, body := mail.ParseHeader(buf)
	if checks {
		if reply := ss.authenticate(env, buf, &hdr); reply != nil {
			return nil, smtpReply(reply)
		}
	}
	if fs != nil {
		o := fs.Data(ss.ctx, env, &hdr, body)
		if err := ss.answer("data", o); err != nil {
			return nil, err
		}
		if t := fs.Txn(); o.Hold {
			ss.log.Info("quarantined", "id", env.ID, "score", t.Score, "symbols", filter.SymbolList(t.Symbols))
		} else if len(t.Symbols) > 0 {
			// A score under every [spam] threshold leaves no header: the
			// log is where an author and an operator see it.
			ss.log.Info("scored", "id", env.ID, "score", t.Score, "symbols", filter.SymbolList(t.Symbols))
		}
		if o.Discard {
			ss.log.Info("discarded by a plugin", "id", env.ID, "from", env.From)
			return nil, queuedReply(env.ID)
		}
	}
	if !hdr.Edited() {
		return buf, nil
	}
	return hdr.Message(body), nil
}

// readFailed handles a read error inside the message. An SMTPError (size
// limit) or a BDAT reset is answered normally; anything else (timeout,
// broken or too long line) closes the connection, so that what the client
// sends later is never read as commands.
func (ss *session) readFailed(err error) error {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		reply := mail.WireReply(se.Code, se.EnhancedCode, se.Message)
		if se.Code == 552 {
			ss.logReject("data", &reply, "rule", "max_message_size")
		} else {
			ss.logReject("data", &reply)
		}
		return se
	case errors.Is(err, smtp.ErrDataReset):
		return err
	}
	ss.log.Warn("reading message failed, closing connection", "id", ss.env.ID, "timeout", isTimeout(err), "err", err)
	ss.conn.Conn().Close()
	return smtpReply(errReadFailed)
}

// reject logs a refusal (logReject) and returns its reply for go-smtp.
func (ss *session) reject(stage string, reply *mail.Reply, attrs ...any) error {
	ss.logReject(stage, reply, attrs...)
	return smtpReply(reply)
}

// nodeComment is the Received: comment naming node id ("" keeps
// "Sluice").
func nodeComment(id string) string {
	if id == "" {
		return ""
	}
	return "Sluice node " + id
}
