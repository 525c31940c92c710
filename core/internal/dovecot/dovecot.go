// Package dovecot starts a throwaway Dovecot LMTP server for tests.
//
// Start writes a minimal Dovecot 2.3 configuration into a test's temporary
// directory (LMTP only, on 127.0.0.1, a passwd-file user database and
// Maildirs under the temporary directory), runs `dovecot -F` as a child
// process and stops it when the test ends. Dovecot must be installed; run
// scripts/install-test-deps.sh. A missing Dovecot fails the test: tests do
// not skip silently.
package dovecot

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long Start waits for Dovecot to listen.
const startTimeout = 30 * time.Second

// Server is a running Dovecot LMTP server.
type Server struct {
	// Addr is the LMTP listener, "127.0.0.1:port".
	Addr string
	// MailRoot holds one Maildir per user.
	MailRoot string
	// Users lists the known local parts: alice, bob and postmaster. The
	// domain is ignored; any other local part gets 550 5.1.1 at RCPT.
	Users []string

	dir string
	cmd *exec.Cmd
}

// Start runs a Dovecot LMTP server for t and stops it in t.Cleanup. It
// fails t when Dovecot is missing, unsupported or does not come up.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot"
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatalf("dovecot is not installed (needed for LMTP tests): run scripts/install-test-deps.sh as root")
		}
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("running %s --version: %v; reinstall with scripts/install-test-deps.sh", bin, err)
	}
	version := strings.TrimSpace(string(out))
	if !strings.HasPrefix(version, "2.3.") {
		t.Fatalf("dovecot %s found, but this helper writes Dovecot 2.3 configuration; install Debian 12's dovecot-core 2.3 or extend core/internal/dovecot", version)
	}

	s := &Server{Users: []string{"alice", "bob", "postmaster"}, dir: t.TempDir()}
	s.MailRoot = filepath.Join(s.dir, "mail")
	uid, gid, internal := mailOwner(t)
	// Dovecot drops to uid for delivery, which must be able to reach the
	// mail root through the temporary directories.
	openPath(t, s.dir)
	for _, d := range []string{s.MailRoot, filepath.Join(s.dir, "run"), filepath.Join(s.dir, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(s.MailRoot, uid, gid); err != nil {
		t.Fatalf("chown %s to %d:%d: %v", s.MailRoot, uid, gid, err)
	}

	port := freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	users := filepath.Join(s.dir, "users")
	var pw strings.Builder
	for _, u := range s.Users {
		// user:password:uid:gid:gecos:home:shell:extra
		fmt.Fprintf(&pw, "%s::%d:%d::%s::\n", u, uid, gid, filepath.Join(s.MailRoot, u))
	}
	if err := os.WriteFile(users, []byte(pw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(s.dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(config(s, port, uid, internal, users)), 0o644); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	s.cmd = exec.Command(bin, "-F", "-c", conf)
	s.cmd.Stdout = &stderr
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting dovecot: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("dovecot output:\n%s\ndovecot log:\n%s", stderr.String(), s.Log())
		}
	})

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("dovecot exited before listening on %s (%v):\n%s\n%s", s.Addr, err, stderr.String(), s.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not listen on %s within %v:\n%s", s.Addr, startTimeout, s.Log())
		}
	}
}

// Maildir returns the path of user's Maildir (its INBOX).
func (s *Server) Maildir(user string) string {
	return filepath.Join(s.MailRoot, user)
}

// Log returns Dovecot's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "dovecot.log"))
	return string(b)
}

// config renders the Dovecot 2.3 configuration.
func config(s *Server, port, uid int, internal, users string) string {
	r := strings.NewReplacer(
		"{dir}", s.dir,
		"{mail}", s.MailRoot,
		"{port}", strconv.Itoa(port),
		"{uid}", strconv.Itoa(uid),
		"{internal}", internal,
		"{users}", users,
	)
	return r.Replace(configTemplate)
}

const configTemplate = `# Throwaway test configuration written by core/internal/dovecot.
protocols = lmtp
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
debug_log_path = {dir}/dovecot.log
ssl = no
shutdown_clients = yes
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {internal}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = 0
mail_location = maildir:{mail}/%n
auth_username_format = %Ln
lmtp_save_to_detail_mailbox = no
mail_save_crlf = yes
passdb {
  driver = passwd-file
  args = {users}
}
userdb {
  driver = passwd-file
  args = {users}
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = {port}
  }
}
service anvil {
  chroot =
}
service log {
  chroot =
}
`

// mailOwner picks the uid and gid mail is delivered as, and the internal
// user Dovecot's helper processes run as. Dovecot will not deliver as root,
// so as root it is the "dovecot" system user; otherwise the current user.
func mailOwner(t testing.TB) (uid, gid int, internal string) {
	t.Helper()
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("looking up the current user: %v", err)
		}
		return os.Geteuid(), os.Getegid(), u.Username
	}
	u, err := user.Lookup("dovecot")
	if err != nil {
		t.Fatalf("no dovecot system user (%v): run scripts/install-test-deps.sh", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, u.Username
}

// openPath makes dir and its parents up to the system temporary directory
// searchable by other users, so that a delivery uid can reach the mail root.
func openPath(t testing.TB, dir string) {
	t.Helper()
	stop := filepath.Clean(os.TempDir())
	for d := dir; d != stop && d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o711); err != nil {
			t.Fatalf("making %s searchable for dovecot: %v", d, err)
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
