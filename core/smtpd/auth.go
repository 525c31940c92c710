package smtpd

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
)

// Authenticator checks submission logins (core/users.File is one).
type Authenticator interface {
	// Authenticate reports whether password is user's.
	Authenticate(user, password string) bool
}

// Replies of AUTH and of the checks that depend on it.
var (
	errAuthRequired    = mail.NewReply(530, "5.7.0", "Authentication required")
	errAuthEncryption  = mail.NewReply(538, "5.7.11", "Encryption required for requested authentication mechanism, use STARTTLS")
	errAuthUnavailable = mail.NewReply(502, "5.5.1", "AUTH not available on this service")
	errAuthMechanism   = mail.NewReply(504, "5.5.4", "Unrecognized authentication type, use PLAIN or LOGIN")
	errAuthInvalid     = mail.NewReply(535, "5.7.8", "Authentication credentials invalid")
	errAuthTooMany     = mail.NewReply(421, "4.7.0", "Too many failed logins, try again later")
	// errAuthStore answers a login while a shared throttle store that
	// fails closed ([kv] on_error) cannot be reached (RFC 4954's 454).
	errAuthStore      = mail.NewReply(454, "4.7.0", "Temporary authentication failure, try again later")
	errSenderNotOwned = mail.NewReply(553, "5.7.1", "Sender address not owned by user")
)

var _ smtp.AuthSession = (*session)(nil)

// authUsable reports whether AUTH may be used now: users are configured
// and the connection is encrypted (or allow_insecure_auth is set).
func (ss *session) authUsable() bool {
	if ss.s.opts.Users == nil {
		return false
	}
	_, isTLS := ss.tlsState()
	return isTLS || ss.s.opts.AllowInsecureAuth
}

// AuthMechanisms lists the mechanisms offered in EHLO: none before TLS.
func (ss *session) AuthMechanisms() []string {
	if !ss.authUsable() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a login with mech.
func (ss *session) Auth(mech string) (_ sasl.Server, err error) {
	defer func() {
		if err != nil {
			ss.s.opts.Observer.AuthAttempt(mech, "refused")
		}
	}()
	switch {
	case ss.s.opts.Users == nil:
		return nil, ss.reject("auth", errAuthUnavailable)
	case !ss.authUsable():
		return nil, ss.reject("auth", errAuthEncryption)
	case ss.addressBlocked():
		ss.log.Warn("auth refused: too many failures", "ip", ss.info.ClientIP.String(), "blocked", AuthKindAddress)
		ss.closeAfterReply()
		return nil, smtpReply(errAuthTooMany)
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, password string) error {
			if identity != "" && identity != user {
				return ss.authFailed(mech, user, password, "authorization identity differs from the user")
			}
			return ss.login(mech, user, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: func(user, password string) error { return ss.login(mech, user, password) }}, nil
	}
	return nil, ss.reject("auth", errAuthMechanism, "mech", mech)
}

// login checks a user's password; nil means go-smtp answers 235.
func (ss *session) login(mech, user, password string) error {
	th := ss.s.authThrottle
	kind, err := th.Blocked(ss.ctx, ss.info.ClientIP, user)
	if errors.Is(err, filter.ErrAbortHook) {
		// The shared store fails closed: no login it cannot count.
		ss.s.opts.Observer.AuthAttempt(mech, "refused")
		ss.log.Warn("auth refused: the throttle's store is unavailable", "ip", ss.info.ClientIP.String(), "user", user, "err", err)
		return smtpReply(errAuthStore)
	}
	if err != nil {
		ss.throttleFailed("auth throttle: store failed, not throttling", err)
	}
	if kind != "" {
		ss.s.opts.Observer.AuthAttempt(mech, "refused")
		ss.log.Warn("auth refused: too many failures", "ip", ss.info.ClientIP.String(), "user", user,
			"mech", strings.ToUpper(mech), "blocked", kind)
		ss.closeAfterReply()
		return smtpReply(errAuthTooMany)
	}
	if !ss.s.opts.Users.Authenticate(user, password) {
		return ss.authFailed(mech, user, password, "bad user or password")
	}
	if err := th.Succeeded(ss.ctx, ss.info.ClientIP, user); err != nil {
		ss.throttleFailed("auth throttle: store failed", err)
	}
	ss.info.AuthUser = user
	if ss.fs != nil {
		ss.fs.Txn().Conn.AuthUser = user
	}
	ss.log.Info("auth", "ip", ss.info.ClientIP.String(), "user", user, "mech", strings.ToUpper(mech))
	ss.s.opts.Observer.AuthAttempt(mech, "success")
	return nil
}

// authFailed logs a failed login (one line with ip= and user= for
// fail2ban), counts it, waits the delay and returns the reply: 535, or 421
// and the end of the connection when a counter reaches its limit. The same
// user and password failing again in one session (smtplib tries PLAIN, then
// LOGIN with the same credentials) is one attempt: counted once, answered
// at once.
func (ss *session) authFailed(mech, user, password, why string) error {
	ss.s.opts.Observer.AuthAttempt(mech, "failure")
	attempt := sha256.Sum256([]byte(user + "\x00" + password))
	if attempt == ss.authLast {
		ss.log.Warn("auth failed", "ip", ss.info.ClientIP.String(), "user", user,
			"mech", strings.ToUpper(mech), "reason", why, "repeat", true)
		return smtpReply(errAuthInvalid)
	}
	ss.authLast = attempt
	n, delay, blocked, err := ss.s.authThrottle.Fail(ss.ctx, ss.info.ClientIP, user)
	if err != nil {
		ss.throttleFailed("auth throttle: store failed", err)
	}
	args := []any{"ip", ss.info.ClientIP.String(), "user", user, "mech", strings.ToUpper(mech), "failures", n, "reason", why}
	if blocked != "" {
		ss.log.Warn("auth failed", append(args, "blocked", blocked)...)
		ss.closeAfterReply()
		return smtpReply(errAuthTooMany)
	}
	ss.log.Warn("auth failed", args...)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ss.s.ctx.Done():
	}
	return smtpReply(errAuthInvalid)
}

// addressBlocked reports whether the client's address may not log in at
// all; a failing store does not block.
func (ss *session) addressBlocked() bool {
	b, err := ss.s.authThrottle.AddressBlocked(ss.ctx, ss.info.ClientIP)
	if err != nil {
		ss.throttleFailed("auth throttle: store failed, not throttling", err)
	}
	return b
}

// throttleFailed logs a failure of the AUTH throttle's store: at debug
// level for a shared store's outage under fail_open, which the store logs
// once when it starts and once when it ends, as a warning otherwise.
func (ss *session) throttleFailed(msg string, err error) {
	if errors.Is(err, filter.ErrKVUnavailable) {
		ss.log.Debug(msg, "err", err)
		return
	}
	ss.log.Warn(msg, "err", err)
}

// closeAfterReply closes the connection once the next reply is written.
func (ss *session) closeAfterReply() {
	if g, ok := ss.conn.Conn().(*guardConn); ok {
		g.closeAfterReply.Store(true)
	}
}

// tlsState returns the connection's TLS state; ok is false in plain text.
func (ss *session) tlsState() (tls.ConnectionState, bool) {
	if g, ok := ss.conn.Conn().(*guardConn); ok {
		return g.tlsState()
	}
	return ss.conn.TLSConnectionState()
}

// tlsDescription describes the TLS session for filters, like
// "TLS1.3 TLS_AES_128_GCM_SHA256"; "" in plain text.
func (ss *session) tlsDescription() string {
	st, ok := ss.tlsState()
	if !ok {
		return ""
	}
	return strings.ReplaceAll(tls.VersionName(st.Version), " ", "") + " " + tls.CipherSuiteName(st.CipherSuite)
}

// checkSenderOwned enforces restrict_sender for an authenticated user:
// the MAIL FROM domain must be the login's domain, or a local domain when
// the login is not an address. The null sender is always allowed.
func (ss *session) checkSenderOwned(from string) error {
	user := ss.info.AuthUser
	if !ss.s.opts.RestrictSender || user == "" || from == "" {
		return nil
	}
	_, domain, reply := checkAddress(from)
	if reply != nil {
		return nil // checkSender already refused it
	}
	if _, userDomain, ok := mail.Split(user); ok {
		if mail.NormDomain(userDomain) == mail.NormDomain(domain) {
			return nil
		}
	} else if ss.s.isLocal(domain) {
		return nil
	}
	return ss.reject("mail", errSenderNotOwned, "from", from, "user", user)
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): "Username:", then "Password:".
type loginServer struct {
	check func(user, password string) error
	user  string
	step  int
}

// Next implements sasl.Server.
func (a *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch a.step {
	case 0:
		a.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough // initial response carries the user name
	case 1:
		a.user, a.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		a.step = 3
		return nil, true, a.check(a.user, string(response))
	}
	return nil, true, errors.New("sasl: unexpected LOGIN response")
}
