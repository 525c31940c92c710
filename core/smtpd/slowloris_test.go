package smtpd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
)

// Issue 13's slowloris target: while 1,100 clients from 110 addresses drip
// one byte a second of an endless EHLO line into a service with the
// default limits (1,000 connections, 50 per address, stress mode from
// 800), a normal client on another address that tries once a second
// completes a whole transaction within 20 s, and keeps doing so for the
// attack's duration; a session sending at normal speed throughout is never
// cut. Without stress mode every slot stays taken for the 5-minute command
// timeout and the client is refused throughout.
const (
	lorisAddrs   = 110
	lorisPerAddr = 10
	lorisAttack  = 35 * time.Second
	lorisWithin  = 20 * time.Second
)

// raiseNoFile lifts the open-file limit to n (the attack holds about two
// descriptors per client in this process), or skips the test.
func raiseNoFile(t *testing.T, n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if rl.Cur >= n {
		return
	}
	if rl.Max < n {
		t.Skipf("open-file limit %d (hard %d), the attack needs %d", rl.Cur, rl.Max, n)
	}
	old := rl
	rl.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// lorisStats counts what the attacking clients saw.
type lorisStats struct {
	connected, refused, cut atomic.Int64
	open, peak              atomic.Int64 // connections held now, at most
}

// hold counts a connection held (+1) or ended (-1).
func (st *lorisStats) hold(d int64) {
	n := st.open.Add(d)
	for p := st.peak.Load(); n > p && !st.peak.CompareAndSwap(p, n); p = st.peak.Load() {
	}
}

// loris is one attacking client from src until stop: it connects, waits
// for the banner and sends an endless EHLO line, one byte a second; when
// refused or cut it connects again a second later.
func loris(addr, src string, stop <-chan struct{}, st *lorisStats) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	wait := func() bool {
		select {
		case <-stop:
			return false
		case <-time.After(time.Second):
			return true
		}
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			if !wait() {
				return
			}
			continue
		}
		r := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		banner, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(banner, "220") {
			st.refused.Add(1)
			c.Close()
			if !wait() {
				return
			}
			continue
		}
		st.connected.Add(1)
		st.hold(1)
		line := "EHLO " + strings.Repeat("a", 1<<12)
		for i := 0; ; i++ {
			select {
			case <-stop:
				st.hold(-1)
				c.Close()
				return
			default:
			}
			if _, err := c.Write([]byte{line[i%len(line)]}); err != nil {
				break
			}
			// A second's wait, which also notices the server's goodbye.
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := r.ReadByte(); err == nil || !isTimeout(err) {
				break
			}
		}
		st.cut.Add(1)
		st.hold(-1)
		c.Close()
	}
}

// transact runs one whole transaction from src: banner, EHLO, MAIL, RCPT,
// DATA, QUIT; each reply within 10 s.
func transact(addr, src string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, step := range []struct{ send, want string }{
		{"", "220"},
		{"EHLO legit.example\r\n", "250 "},
		{"MAIL FROM:<a@legit.example>\r\n", "250 "},
		{"RCPT TO:<u@local.test>\r\n", "250 "},
		{"DATA\r\n", "354 "},
		{"Subject: hello\r\n\r\nhi\r\n.\r\n", "250 "},
		{"QUIT\r\n", "221 "},
	} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(step.send)); err != nil {
			return err
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("after %q: %v", step.send, err)
			}
			if len(line) >= 4 && line[3] == '-' {
				continue // a multi-line reply goes on
			}
			if !strings.HasPrefix(line, step.want) {
				return fmt.Errorf("after %q: %q", step.send, strings.TrimSpace(line))
			}
			break
		}
	}
	return nil
}

// steady is a session from src that stays open and runs a transaction
// (MAIL, RCPT, DATA) every second at normal speed until stop; it returns
// the first thing that went wrong, nil when nothing did.
func steady(addr, src string, stop <-chan struct{}) (int, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(send, want string) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(send)); err != nil {
			return err
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("after %q: %v", send, err)
			}
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, want) {
				return fmt.Errorf("after %q: %q", send, strings.TrimSpace(line))
			}
			return nil
		}
	}
	if err := say("", "220"); err != nil {
		return 0, err
	}
	if err := say("EHLO steady.example\r\n", "250 "); err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		select {
		case <-stop:
			return n, nil
		case <-time.After(time.Second):
		}
		for _, step := range [][2]string{
			{"MAIL FROM:<s@legit.example>\r\n", "250 "},
			{"RCPT TO:<u@local.test>\r\n", "250 "},
			{"DATA\r\n", "354 "},
			{"Subject: steady\r\n\r\nhi\r\n.\r\n", "250 "},
		} {
			if err := say(step[0], step[1]); err != nil {
				return n, err
			}
		}
	}
}

func TestSlowlorisManyAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("a 35 s attack by 1,100 clients")
	}
	raiseNoFile(t, 8192)
	obs := newCountObserver()
	opts := testOptions(&fakeQueue{})
	opts.Observer = obs
	opts.Listener.MaxConnections = 1000
	opts.Listener.MaxConnectionsPerIP = 50
	opts.Listener.CommandTimeout = config.Duration(DefaultCommandTimeout)
	opts.Listener.DataTimeout = config.Duration(DefaultDataTimeout)
	opts.Listener.SessionTimeout = config.Duration(DefaultSessionTimeout)
	addr := startServer(t, opts)

	// The steady session is open before the attack, as a real one would be.
	stop := make(chan struct{})
	type result struct {
		n   int
		err error
	}
	steadyDone := make(chan result, 1)
	go func() {
		n, err := steady(addr, "127.0.1.2", stop)
		steadyDone <- result{n, err}
	}()

	var st lorisStats
	var wg sync.WaitGroup
	start := time.Now()
	for a := range lorisAddrs {
		src := fmt.Sprintf("127.0.0.%d", 2+a)
		for range lorisPerAddr {
			wg.Add(1)
			go func() {
				defer wg.Done()
				loris(addr, src, stop, &st)
			}()
		}
	}

	// The normal client: one try a second, each a whole transaction.
	var done []time.Duration // since start, of each completed transaction
	var tries, refused int
	var lastErr error
	for time.Since(start) < lorisAttack {
		next := time.Now().Add(time.Second)
		tries++
		if err := transact(addr, "127.0.1.1"); err != nil {
			refused++
			lastErr = err
		} else {
			done = append(done, time.Since(start))
		}
		time.Sleep(time.Until(next))
	}
	end := time.Since(start)
	close(stop)
	wg.Wait()
	sr := <-steadyDone

	t.Logf("attack %v: clients connected %d times (at most %d at once), refused %d, cut %d; stress mode entered %d times, left %d; evicted %d",
		end.Round(time.Second), st.connected.Load(), st.peak.Load(), st.refused.Load(), st.cut.Load(),
		obs.get("stress:smtp,true"), obs.get("stress:smtp,false"), obs.get("conn:smtp,evicted"))
	t.Logf("normal client: %d tries, %d whole transactions, %d failed (last: %v); steady session: %d transactions",
		tries, len(done), refused, lastErr, sr.n)
	if obs.get("stress:smtp,true") == 0 {
		t.Errorf("the service never entered stress mode")
	}
	if p := st.peak.Load(); p < 900 {
		t.Errorf("the attack held only %d connections at most: not the attack the issue describes", p)
	}
	// A transaction within every 20 s of the attack.
	prev := time.Duration(0)
	for _, d := range append(done, end) {
		if d-prev > lorisWithin {
			t.Errorf("no whole transaction between %v and %v of the attack (completed at %v)",
				prev.Round(time.Millisecond), d.Round(time.Millisecond), done)
			break
		}
		prev = d
	}
	if sr.err != nil {
		t.Errorf("the steady session was cut after %d transactions: %v", sr.n, sr.err)
	}
}
