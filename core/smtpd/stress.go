package smtpd

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Stress mode, after Postfix's: a service holding stress_threshold
// connections (by default 80% of max_connections) is under attack or
// overload, and changes how it treats sessions until it is down by a tenth
// of max_connections again (hysteresis):
//
//   - command and data timeouts are at most stress_timeout, for the
//     sessions already open too (their waits are woken to take the shorter
//     deadline, see retime);
//   - an address may open no more than its fair share of max_connections,
//     divided among the addresses connected, so the addresses holding the
//     most slots are refused first;
//   - when every slot is taken, a newcomer takes the slot of the session
//     that has waited longest for a command line, or fallen furthest behind
//     the minimum data rate in a message, provided that is at least
//     evictMinLag (evict); a session sending at normal speed never is. Only
//     when no session is that slow is the newcomer refused.
//
// Entering and leaving are logged and given to the Observer.

// evictMinLag is how far behind a session must be to be evicted for a
// newcomer: waiting this long for a command line, or this far behind the
// minimum data rate.
const evictMinLag = 2 * time.Second

// Defaults for Options.Listener's stress keys.
const (
	DefaultMinDataRate   = 500 // bytes a second, as Postfix's smtpd_min_data_rate
	DefaultStressTimeout = 10 * time.Second
	// DefaultStressPercent of max_connections is the default threshold.
	DefaultStressPercent = 80
)

// pace is what a connection's deadlines come from: its configuration's
// timeouts, and whether its service is in stress mode now.
type pace struct {
	command, data, stress time.Duration
	minRate               int
	stressed              *atomic.Bool // the front's
}

// newPace returns the pace of a connection to s.
func (s *Server) newPace() *pace {
	return &pace{command: s.lc.CommandTimeout.D(), data: s.lc.DataTimeout.D(), stress: s.lc.StressTimeout.D(),
		minRate: s.lc.MinDataRate, stressed: &s.fr.stress.on}
}

// under returns d, or the stress timeout when shorter and in stress mode.
func (p *pace) under(d time.Duration) time.Duration {
	if p.stress > 0 && p.stressed.Load() {
		return min(d, p.stress)
	}
	return d
}

// commandTimeout bounds a whole command line (and a TLS handshake).
func (p *pace) commandTimeout() time.Duration { return p.under(p.command) }

// dataTimeout bounds each read inside message data.
func (p *pace) dataTimeout() time.Duration { return p.under(p.data) }

// What a connection's guard waits for (waitState.phase).
const (
	waitBusy      = iota // not reading from the client: the server is at work
	waitHandshake        // a TLS handshake
	waitCommand          // a command line
	waitData             // message data
)

// waitState is what a guard waits for and since when (for message data:
// when it would have its bytes so far at the minimum rate), read by other
// goroutines choosing a session to evict.
type waitState struct {
	phase atomic.Int32
	since atomic.Int64 // UnixNano
}

func (w *waitState) set(phase int32, since time.Time) {
	if phase != waitBusy {
		w.since.Store(since.UnixNano())
	}
	w.phase.Store(phase)
}

// lag returns how long the guard has been behind at now, and false when
// it is not waiting on the client.
func (w *waitState) lag(now time.Time) (time.Duration, int32) {
	p := w.phase.Load()
	if p == waitBusy {
		return 0, p
	}
	return now.Sub(time.Unix(0, w.since.Load())), p
}

// stressState is a service's stress mode; on is read without front.mu,
// the rest is guarded by it.
type stressState struct {
	on     atomic.Bool
	since  time.Time
	evicts int
	// timer checks again for leaving once the stress timeout has passed
	// since entering, when the connections fell low enough before.
	timer *time.Timer
}

// admission is what admit decided about a new connection.
type admission struct {
	ok      bool
	why     string     // refused: "max_connections", "per_ip" or "fair_share"
	victim  *guardConn // to evict for it
	entered []*guardConn
	enter   bool // stress mode starts: entered are the sessions to retime
	conns   int  // the service's connections, this one counted
}

// stressThreshold returns s's stress threshold, 0 for none.
func (s *Server) stressThreshold() int {
	return s.lc.StressThreshold
}

// admit counts a new connection from ip under s's limits, or refuses it.
// In stress mode it applies the fair share, and when the service is full
// picks a session to evict for it.
func (f *front) admit(s *Server, ip netip.Addr) admission {
	maxConns, maxPerIP, thr := s.lc.MaxConnections, s.lc.MaxConnectionsPerIP, s.stressThreshold()
	f.mu.Lock()
	defer f.mu.Unlock()
	var a admission
	held := f.perIP[ip]
	switch {
	case maxPerIP > 0 && held >= maxPerIP:
		a.why = "per_ip"
		return a
	case f.stress.on.Load() && maxConns > 0 && held >= f.fairShare(maxConns, held):
		a.why = "fair_share"
		return a
	case maxConns > 0 && f.conns >= maxConns:
		if !f.stress.on.Load() {
			a.why = "max_connections"
			return a
		}
		victim, leaving := f.slowest(time.Now())
		if f.conns-leaving < maxConns {
			break // slots being freed by sessions evicted before
		}
		if victim == nil || !victim.line.kicked.CompareAndSwap(false, true) {
			a.why = "max_connections"
			return a
		}
		a.victim = victim
		f.stress.evicts++
	}
	f.conns++
	f.perIP[ip]++
	a.ok, a.conns = true, f.conns
	if thr > 0 && !f.stress.on.Load() && f.conns >= thr {
		f.stress.on.Store(true)
		f.stress.since, f.stress.evicts = time.Now(), 0
		a.enter, a.entered = true, f.openConns()
	}
	return a
}

// fairShare is what one address may hold in stress mode: max_connections
// divided among the addresses connected, counting a newcomer's; at least 1.
func (f *front) fairShare(maxConns, held int) int {
	n := len(f.perIP)
	if held == 0 {
		n++
	}
	return max(1, maxConns/n)
}

// slowest returns the open session furthest behind at now, by at least
// evictMinLag (nil when there is none), and the number of sessions evicted
// already that still hold their slot. f.mu is held.
func (f *front) slowest(now time.Time) (victim *guardConn, leaving int) {
	worst := evictMinLag
	for g := range f.open {
		if g.line.kicked.Load() {
			leaving++
			continue
		}
		if lag, _ := g.line.wait.lag(now); lag >= worst {
			victim, worst = g, lag
		}
	}
	return victim, leaving
}

// release undoes admit; it reports whether stress mode ended, and then
// for how long it lasted and how many sessions it evicted.
func (f *front) release(s *Server, ip netip.Addr) (left bool, lasted time.Duration, evicts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns--
	if f.perIP[ip]--; f.perIP[ip] <= 0 {
		delete(f.perIP, ip)
	}
	return f.leave(s)
}

// leave ends stress mode when the connections are down by a tenth of
// max_connections (at least one) below the threshold and it has lasted the
// stress timeout at least; when only the time is missing, it checks again
// then. f.mu is held.
func (f *front) leave(s *Server) (left bool, lasted time.Duration, evicts int) {
	st := &f.stress
	if !st.on.Load() || f.conns > s.stressThreshold()-max(1, s.lc.MaxConnections/10) {
		return false, 0, 0
	}
	lasted = time.Since(st.since)
	if wait := s.lc.StressTimeout.D() - lasted; wait > 0 {
		if st.timer == nil {
			st.timer = time.AfterFunc(wait, func() {
				f.mu.Lock()
				st.timer = nil
				left, lasted, evicts := f.leave(s)
				f.mu.Unlock()
				if left {
					s.leftStress(lasted, evicts)
				}
			})
		}
		return false, 0, 0
	}
	st.on.Store(false)
	return true, lasted, st.evicts
}

// admit counts a new connection from ip, or reports false when a limit is
// reached; it logs entering stress mode and evicts a session when the
// decision says so.
func (s *Server) admit(ip netip.Addr) bool {
	a := s.fr.admit(s, ip)
	if a.enter {
		s.log.Warn("stress mode: entering", "connections", a.conns,
			"max_connections", s.lc.MaxConnections, "stress_timeout", s.lc.StressTimeout.D())
		s.opts.Observer.SMTPStress(s.opts.Name, true)
		go func() {
			for _, g := range a.entered {
				g.retime()
			}
		}()
	}
	if a.victim != nil {
		s.opts.Observer.SMTPConnection(s.opts.Name, "evicted")
		a.victim.evict()
	}
	if !a.ok {
		s.log.Warn("connection refused: too many connections", "client", ip.String(), "limit", a.why, "code", 421)
	}
	return a.ok
}

// release undoes admit, and logs leaving stress mode.
func (s *Server) release(ip netip.Addr) {
	if left, lasted, evicts := s.fr.release(s, ip); left {
		s.leftStress(lasted, evicts)
	}
}

// leftStress logs and reports the end of stress mode.
func (s *Server) leftStress(lasted time.Duration, evicts int) {
	s.log.Warn("stress mode: leaving", "lasted", lasted.Round(time.Millisecond), "evicted", evicts)
	s.opts.Observer.SMTPStress(s.opts.Name, false)
}

// retime wakes the connection's read, if it waits on the client, so that
// it takes the shorter deadline of stress mode.
func (g *guardConn) retime() {
	g.line.wake.Add(1)
	if _, p := g.line.wait.lag(time.Now()); p == waitCommand || p == waitData {
		_ = g.Conn.SetReadDeadline(time.Now())
	}
}

// evict ends a session marked by slowest for a newcomer: its read is woken
// and its guard answers 421 4.4.2 and hangs up (evicted), on the session's
// own goroutine; a TLS handshake in progress just fails.
func (g *guardConn) evict() {
	g.line.wake.Add(1)
	_ = g.Conn.SetReadDeadline(time.Now())
}

// evicted answers an evicted session and hangs up.
func (l *lineGuard) evicted() error {
	stage := "command"
	if l.mode != modeCmd {
		stage = "data"
	}
	l.log.Warn("evicted in stress mode: the service is full and this session the slowest, closing connection",
		"stage", stage, "code", 421)
	if l.observe != nil {
		l.observe(stage, "stress_evict")
	}
	return l.hangUpWith("421 4.4.2", "Server busy and this session too slow, closing connection")
}
