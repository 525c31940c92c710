// Package redistest starts real redis-server processes on free loopback
// ports for tests: a standalone server that a test can stop and start again
// on the same port (and, with StartUnix, on a Unix domain socket too), and
// a three-master Redis Cluster. Tests that need one
// skip when redis-server is not installed (scripts/install-test-deps.sh
// installs it).
package redistest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one redis-server process on 127.0.0.1.
type Server struct {
	// Addr is "127.0.0.1:port"; it stays the same across Stop and Start.
	Addr string
	// Socket is the path of the server's Unix domain socket (StartUnix),
	// "" for none; it too stays the same across Stop and Start.
	Socket string
	dir    string
	args   []string

	// tls says the port speaks TLS (StartTLS).
	tls bool

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Available reports whether redis-server (and redis-cli) can be run.
func Available() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a standalone redis-server on a free port with no
// persistence, its working files under dir.
func Start(dir string, extra ...string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return start(dir, port, extra...)
}

// StartT is Start for a test: it skips the test when redis-server is not
// installed, fails it when the server does not start, and stops the
// server when the test ends.
func StartT(t testing.TB, extra ...string) *Server {
	t.Helper()
	return startT(t, Start, extra)
}

// startT runs start for a test in a directory of its own, as StartT says.
func startT(t testing.TB, start func(string, ...string) (*Server, error), extra []string) *Server {
	t.Helper()
	if !Available() {
		t.Skip("redis-server not installed (scripts/install-test-deps.sh)")
	}
	s, err := start(t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartUnix starts a standalone redis-server like Start that also listens
// on the Unix domain socket dir/redis.sock (Socket), readable by this user
// only; Start waits for an answer on the socket.
func StartUnix(dir string, extra ...string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "redis.sock")
	s := newServer(dir, port, append([]string{"--unixsocket", sock, "--unixsocketperm", "700"}, extra...)...)
	s.Socket = sock
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// StartUnixT is StartUnix for a test, as StartT is Start's.
func StartUnixT(t testing.TB, extra ...string) *Server {
	t.Helper()
	return startT(t, StartUnix, extra)
}

// StartTLS starts a standalone redis-server like Start whose port speaks
// only TLS with the certificate and key in certFile and keyFile (clients
// are not asked for certificates).
func StartTLS(dir, certFile, keyFile string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := newServer(dir, port, "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no")
	s.tls = true
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func start(dir string, port int, extra ...string) (*Server, error) {
	s := newServer(dir, port, extra...)
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// newServer is a Server on port with extra arguments after the defaults
// (a later argument overrides an earlier one), not started.
func newServer(dir string, port int, extra ...string) *Server {
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	s.args = append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log"),
	}, extra...)
	return s
}

// Start (re)starts the server on its port and waits until it answers PING.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("redistest: already running")
	}
	cmd := exec.Command("redis-server", s.args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr, s.Socket, s.tls); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			s.cmd = nil
			return fmt.Errorf("redistest: %s does not answer: %w", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// CPU is the user and system time the running server has used (Linux:
// /proc/PID/stat, in clock ticks of 10 ms).
func (s *Server) CPU() (time.Duration, error) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("redistest: not running")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("redistest: %w", err)
	}
	// The fields after the command name: state is the first, utime and
	// stime the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("redistest: /proc/%d/stat has %d fields", cmd.Process.Pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("redistest: /proc/%d/stat: utime %q, stime %q", cmd.Process.Pid, f[11], f[12])
	}
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}

// ping sends PING in the inline protocol and expects +PONG (or -NOAUTH),
// on the Unix domain socket when socket is not "".
func ping(addr, socket string, overTLS bool) error {
	var c net.Conn
	var err error
	if socket != "" {
		c, err = net.DialTimeout("unix", socket, time.Second)
	} else if overTLS {
		// Readiness only: the test checks the certificate itself.
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.DialTimeout("tcp", addr, time.Second)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server that wants a login answers, too.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Cluster is a Redis Cluster of three masters and no replicas.
type Cluster struct {
	// Nodes are the masters; Addrs their addresses, the seeds to give a
	// client.
	Nodes []*Server
	Addrs []string
}

// StartCluster starts three redis-server --cluster-enabled yes processes
// under dir, joins them with redis-cli --cluster create and waits until
// the cluster reports ok.
func StartCluster(dir string) (*Cluster, error) {
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		port, err := freePort()
		if err != nil {
			c.Stop()
			return nil, err
		}
		nd := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(nd, 0o755); err != nil {
			c.Stop()
			return nil, err
		}
		s, err := start(nd, port, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nd, "nodes.conf"), "--cluster-node-timeout", "2000")
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, s := range c.Nodes {
			host, port, _ := net.SplitHostPort(s.Addr)
			out, err := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				ok = false
			}
		}
		if ok {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, errors.New("redistest: the cluster never reported cluster_state:ok")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}
