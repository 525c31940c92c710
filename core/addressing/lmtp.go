package addressing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/mail"
)

// LMTP verification defaults.
const (
	DefaultLMTPTimeout     = 10 * time.Second
	DefaultLMTPPositiveTTL = 5 * time.Minute
	DefaultLMTPNegativeTTL = time.Minute
	DefaultLMTPMaxIdle     = 4
	DefaultLMTPIdleTimeout = 30 * time.Second
	DefaultLMTPCacheSize   = 100000
)

// LMTPOptions configures verification over LMTP.
type LMTPOptions struct {
	// Hostname is sent in LHLO; "localhost" when empty.
	Hostname string
	// Timeout bounds connecting and each command.
	Timeout time.Duration
	// PositiveTTL and NegativeTTL are how long an answer is cached.
	PositiveTTL time.Duration
	NegativeTTL time.Duration
	// MaxIdle connections are kept open per server, for IdleTimeout.
	MaxIdle     int
	IdleTimeout time.Duration
	// CacheSize bounds the cached answers.
	CacheSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// verdict is an LMTP server's answer about one address.
type verdict struct {
	exists bool
	// reply is the server's refusal when !exists.
	reply   mail.Reply
	expires time.Time
}

// lmtpChecker asks LMTP servers whether a mailbox exists, over pooled
// connections, and caches the answers.
type lmtpChecker struct {
	opts LMTPOptions

	mu    sync.Mutex
	pools map[string][]*lmtpConn // idle connections per server
	cache map[string]verdict
	// dials and checks count, for tests and metrics.
	dials, checks int
}

// lmtpConn is one connection, greeted, between transactions.
type lmtpConn struct {
	c    *smtp.Client
	conn net.Conn
	idle time.Time
}

func newLMTPChecker(o LMTPOptions) *lmtpChecker {
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultLMTPTimeout
	}
	if o.PositiveTTL <= 0 {
		o.PositiveTTL = DefaultLMTPPositiveTTL
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultLMTPNegativeTTL
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = DefaultLMTPMaxIdle
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultLMTPIdleTimeout
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultLMTPCacheSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &lmtpChecker{opts: o, pools: make(map[string][]*lmtpConn), cache: make(map[string]verdict)}
}

// check asks server whether addr is a mailbox. A 2xx to RCPT means yes, a
// 5xx no (with the server's reply); anything else is an error, and is not
// cached.
func (l *lmtpChecker) check(ctx context.Context, server, addr string) (verdict, error) {
	ck := server + "\x00" + mail.Key(addr)
	now := l.opts.Now()
	l.mu.Lock()
	if v, ok := l.cache[ck]; ok && now.Before(v.expires) {
		l.mu.Unlock()
		return v, nil
	}
	l.mu.Unlock()

	v, err := l.ask(ctx, server, addr)
	if err != nil {
		return v, err
	}
	ttl := l.opts.PositiveTTL
	if !v.exists {
		ttl = l.opts.NegativeTTL
	}
	v.expires = now.Add(ttl)
	l.mu.Lock()
	if len(l.cache) >= l.opts.CacheSize {
		for k, old := range l.cache {
			if !now.Before(old.expires) {
				delete(l.cache, k)
			}
		}
		if len(l.cache) >= l.opts.CacheSize {
			clear(l.cache)
		}
	}
	l.cache[ck] = v
	l.mu.Unlock()
	return v, nil
}

// ask runs MAIL FROM:<>, RCPT TO and RSET on a pooled connection. A pooled
// connection the server has closed meanwhile is replaced once.
func (l *lmtpChecker) ask(ctx context.Context, server, addr string) (verdict, error) {
	for attempt := 0; ; attempt++ {
		lc, reused, err := l.get(ctx, server)
		if err != nil {
			return verdict{}, err
		}
		v, err := l.transaction(ctx, lc, addr)
		if err == nil {
			l.put(server, lc)
			return v, nil
		}
		lc.c.Close()
		var se *smtp.SMTPError
		if reused && attempt == 0 && !errors.As(err, &se) && ctx.Err() == nil {
			continue // the idle connection had gone stale
		}
		return verdict{}, fmt.Errorf("LMTP server %s: %w", server, err)
	}
}

// transaction asks about addr on lc. A 4xx reply is an error; a broken
// RSET loses the connection but not the answer.
func (l *lmtpChecker) transaction(ctx context.Context, lc *lmtpConn, addr string) (verdict, error) {
	stop := context.AfterFunc(ctx, func() { lc.conn.Close() })
	defer func() {
		if !stop() {
			lc.conn = nil // closed by the cancellation: not reusable
		}
	}()
	l.mu.Lock()
	l.checks++
	l.mu.Unlock()
	if err := lc.c.Mail("", nil); err != nil {
		return verdict{}, err
	}
	v := verdict{exists: true}
	if err := lc.c.Rcpt(addr, nil); err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code/100 != 5 {
			return verdict{}, err
		}
		v = verdict{reply: mail.WireReply(se.Code, se.EnhancedCode, se.Message)}
	}
	if err := lc.c.Reset(); err != nil {
		lc.c.Close()
		lc.conn = nil
	}
	return v, nil
}

// get returns an idle connection to server, or dials one and sends LHLO.
func (l *lmtpChecker) get(ctx context.Context, server string) (*lmtpConn, bool, error) {
	now := l.opts.Now()
	l.mu.Lock()
	for idle := l.pools[server]; len(idle) > 0; idle = l.pools[server] {
		lc := idle[len(idle)-1]
		l.pools[server] = idle[:len(idle)-1]
		if now.Sub(lc.idle) < l.opts.IdleTimeout {
			l.mu.Unlock()
			return lc, true, nil
		}
		lc.c.Close()
	}
	l.dials++
	l.mu.Unlock()

	network, address := "tcp", server
	if path, ok := strings.CutPrefix(server, "unix:"); ok {
		network, address = "unix", path
	}
	d := net.Dialer{Timeout: l.opts.Timeout}
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, false, fmt.Errorf("connecting to LMTP server %s: %w", server, err)
	}
	c := smtp.NewClientLMTP(conn)
	c.CommandTimeout = l.opts.Timeout
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := c.Hello(l.opts.Hostname); err != nil {
		c.Close()
		return nil, false, fmt.Errorf("LMTP server %s refused LHLO: %w", server, err)
	}
	return &lmtpConn{c: c, conn: conn}, false, nil
}

// put keeps lc for reuse, or closes it when the pool is full or it broke.
func (l *lmtpChecker) put(server string, lc *lmtpConn) {
	if lc.conn == nil {
		return
	}
	lc.idle = l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pools == nil || len(l.pools[server]) >= l.opts.MaxIdle {
		lc.c.Close()
		return
	}
	l.pools[server] = append(l.pools[server], lc)
}

// close says QUIT on every idle connection (waiting a second at most for
// each answer) and closes it.
func (l *lmtpChecker) close() {
	l.mu.Lock()
	pools := l.pools
	l.pools = nil
	l.mu.Unlock()
	for _, idle := range pools {
		for _, lc := range idle {
			lc.c.CommandTimeout = time.Second
			lc.c.Quit()
			lc.c.Close()
		}
	}
}

// stats returns how many connections were dialled and transactions run.
func (l *lmtpChecker) stats() (dials, checks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dials, l.checks
}
