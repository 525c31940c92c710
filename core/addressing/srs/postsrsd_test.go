package srs

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// postsrsd runs the reference SRS daemon (Postfix's postsrsd) on loopback
// with secret and domain, and returns a lookup function for its forward
// and reverse tables (Postfix's tcp_table protocol).
func postsrsd(t *testing.T, domain string, secret []byte) func(table, key string) (string, bool) {
	t.Helper()
	bin, err := exec.LookPath("postsrsd")
	if err != nil {
		bin = "/usr/sbin/postsrsd"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("postsrsd is not installed (the reference this package is checked against): run scripts/install-test-deps.sh as root")
		}
	}
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	fwd, rev := freePort(t), freePort(t)
	cmd := exec.Command(bin, "-s"+secretFile, "-d"+domain, "-l127.0.0.1", "-4",
		"-f"+strconv.Itoa(fwd), "-r"+strconv.Itoa(rev))
	out, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("postsrsd output:\n%s", log)
		}
	})
	ports := map[string]int{"forward": fwd, "reverse": rev}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range ports {
		for {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("postsrsd did not listen on port %d: %v", p, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return func(table, key string) (string, bool) {
		t.Helper()
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ports[table]))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "get %s\n", url.PathEscape(key))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("postsrsd %s %q: %v", table, key, err)
		}
		code, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		v, err := url.PathUnescape(val)
		if err != nil {
			v = val
		}
		return v, code == "200"
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestPostsrsd: for the same secret and domain, our addresses are
// postsrsd's byte for byte, each reverses the other's, and both refuse
// the same forgery.
func TestPostsrsd(t *testing.T) {
	const domain = "fwd.example.com"
	lookup := postsrsd(t, domain, secret)
	r, err := New(Options{Domain: domain, Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	senders := []string{
		"alice@orig.example",
		"Bob.Smith@Orig.Example",
		"x+y@sub.orig.example",
		"SRS0=abcd=AB=orig.example=u@other.example",
		"SRS1=wxyz=first.example==abcd=AB=orig.example=u@other.example",
	}
	for _, s := range senders {
		ours, err := r.Forward(s)
		if err != nil {
			t.Fatalf("Forward(%q): %v", s, err)
		}
		theirs, ok := lookup("forward", s)
		if !ok || theirs != ours {
			t.Errorf("Forward(%q):\n ours     %s\n postsrsd %s", s, ours, theirs)
		}
		if back, ok := lookup("reverse", ours); !ok || back != mustReverse(t, r, ours) {
			t.Errorf("postsrsd reverses %s to %q (%v), we to %q", ours, back, ok, mustReverse(t, r, ours))
		}
	}
	good, _ := r.Forward("alice@orig.example")
	forged := strings.Replace(good, "=alice@", "=mallory@", 1)
	if back, ok := lookup("reverse", forged); ok {
		t.Errorf("postsrsd reverses the forgery %s to %s", forged, back)
	}
	if back, err := r.Reverse(forged); err == nil {
		t.Errorf("we reverse the forgery %s to %s", forged, back)
	}
}

func mustReverse(t *testing.T, r *Rewriter, addr string) string {
	t.Helper()
	back, err := r.Reverse(addr)
	if err != nil {
		t.Fatalf("Reverse(%q): %v", addr, err)
	}
	return back
}
