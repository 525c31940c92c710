package server_test

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestJSONLogs: with log_format = "json" every line the server writes to
// standard error is one JSON object with time, level and msg, from start
// to stop, a delivered message included. Run as root without --user, the
// server warns that it is root.
func TestJSONLogs(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	cfgPath := procConfig(t, dir, addr, `log_format = "json"`+"\nlog_level = \"debug\"\n", "")
	p := startServe(t, cfgPath, addr, nil)
	servertest.MustSend(t, addr, "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", "json", "x\r\n"))
	servertest.WaitFiles(t, filepath.Join(dir, "data", "mail", "localhost", "alice"), 1, 10*time.Second)
	p.stop(t)

	var msgs []string
	sc := bufio.NewScanner(strings.NewReader(p.log()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not JSON (%v): %s", err, sc.Text())
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line has no %q: %s", k, sc.Text())
			}
		}
		msg, _ := rec["msg"].(string)
		msgs = append(msgs, msg)
	}
	all := strings.Join(msgs, "\n")
	if !strings.Contains(all, "listening") {
		t.Errorf("no \"listening\" line among the JSON log:\n%s", p.log())
	}
	if root := strings.Contains(all, "running as root"); root != (os.Geteuid() == 0) {
		t.Errorf("euid %d, a \"running as root\" warning: %v; want one exactly when root:\n%s", os.Geteuid(), root, p.log())
	}
}

// TestNotifyReady: under systemd (Type=notify, $NOTIFY_SOCKET) the server
// says READY=1 once its ports accept connections, and STOPPING=1 on
// SIGTERM.
func TestNotifyReady(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := reserveAddr(t)
	cfgPath := procConfig(t, dir, addr, "", "")

	got := make(chan string, 4)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			// The port must accept connections when READY=1 is sent.
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				got <- string(buf[:n])
			} else {
				got <- string(buf[:n]) + " (port not accepting: " + err.Error() + ")"
			}
		}
	}()
	p := startServe(t, cfgPath, addr, []string{"NOTIFY_SOCKET=" + sockPath})
	expect := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("notification %q, want %q", s, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s notification within 20s:\n%s", want, p.log())
		}
	}
	expect("READY=1")
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case s := <-got:
		if !strings.HasPrefix(s, "STOPPING=1") {
			t.Errorf("notification %q on SIGTERM, want STOPPING=1", s)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("no STOPPING=1 within 20s of SIGTERM")
	}
}

// testUser creates a system user (with its own group) for the test, or
// finds it from an earlier run, and returns its uid and gid. It skips the
// test unless it runs as root.
func testUser(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a user and switches to it")
	}
	id := func(flag string) int {
		out, err := exec.Command("id", flag, name).Output()
		if err != nil {
			return -1
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		return n
	}
	if id("-u") < 0 {
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil && id("-u") < 0 { // a parallel run may have created it
			t.Fatalf("useradd %s: %v\n%s", name, err, out)
		}
	}
	return id("-u"), id("-g")
}

// worldDir makes a temporary directory every user can enter (t.TempDir's
// are root's own), removed at the end of the test.
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-user-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestServeUser: `sluice serve --user NAME` started as root binds its port,
// hands data_dir to NAME and runs as NAME: the process's uids are NAME's,
// mail is delivered into files NAME owns, the queue and `sluice queue`
// work. The admin socket gets socket_group and socket_mode: a member of
// that group (a web server) can submit with `sluice sendmail`, another
// user gets EX_NOPERM.
func TestServeUser(t *testing.T) {
	uid, gid := testUser(t, "sluicetest")
	webUID, webGID := testUser(t, "sluicetestweb")
	dir := worldDir(t)
	run := filepath.Join(dir, "run") // like systemd's RuntimeDirectory
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sluice") // the test binary's own dir is root's
	data, err := os.ReadFile(sluiceBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := reserveAddr(t)
	sock := filepath.Join(run, "admin.sock")
	cfgPath := procConfig(t, dir, addr, "", `
[admin]
socket = "`+sock+`"
socket_mode = "0660"
socket_group = "sluicetestweb"
`)
	// A file already in data_dir, owned by root, is handed over too.
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "users"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfgPath, addr, nil, "--user", "sluicetest")
	// The port accepts from New on; the switch comes after, and then the
	// "data in" line.
	deadline := time.Now().Add(15 * time.Second)
	for out, _ := os.ReadFile(cfgPath + ".stdout"); !strings.Contains(string(out), "sluice: data in "); out, _ = os.ReadFile(cfgPath + ".stdout") {
		if time.Now().After(deadline) {
			t.Fatalf("no \"data in\" line within 15s:\n%s\n%s", out, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}

	status, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			want := strconv.Itoa(uid)
			if f[0] == "Gid:" {
				want = strconv.Itoa(gid)
			}
			for _, v := range f[1:] { // real, effective, saved, filesystem
				if v != want {
					t.Errorf("process %s, want %s everywhere", line, want)
					break
				}
			}
		}
	}

	servertest.MustSend(t, addr, "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", "as sluicetest", "x\r\n"))
	box := filepath.Join(dir, "data", "mail", "localhost", "alice")
	files := servertest.WaitFiles(t, box, 1, 10*time.Second)
	owner := func(path string) (int, int) {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return int(st.Uid), int(st.Gid)
	}
	for _, f := range []string{files[0], filepath.Join(dir, "data"), filepath.Join(dir, "data", "queue"), filepath.Join(dir, "data", "users")} {
		if u, g := owner(f); u != uid || g != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", f, u, g, uid, gid)
		}
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if u, g := owner(sock); u != uid || g != webGID || fi.Mode().Perm() != 0o660 {
		t.Errorf("admin socket %d:%d %v, want %d:%d 0660", u, g, fi.Mode().Perm(), uid, webGID)
	}
	if r := runBin(t, bin, nil, "", nil, "queue", "ls", "--config", cfgPath); r.code != 0 {
		t.Errorf("sluice queue ls: exit %d\n%s", r.code, r.stderr)
	}

	// The web server's user, in socket_group, submits; nobody may not.
	msg := "Subject: from the web\n\nhello\n"
	env := []string{"SLUICE_CONFIG=" + cfgPath}
	if r := runBin(t, bin, &syscall.Credential{Uid: uint32(webUID), Gid: uint32(webGID)}, msg, env, "sendmail", "bob@localhost"); r.code != 0 {
		t.Errorf("sendmail as sluicetestweb: exit %d\n%s", r.code, r.stderr)
	} else {
		servertest.WaitFiles(t, filepath.Join(dir, "data", "mail", "localhost", "bob"), 1, 10*time.Second)
	}
	r := runBin(t, bin, &syscall.Credential{Uid: 65534, Gid: 65534}, msg, env, "sendmail", "bob@localhost")
	if r.code != 77 || !strings.Contains(r.stderr, "socket_group") {
		t.Errorf("sendmail as nobody: exit %d %q, want 77 (EX_NOPERM) naming socket_group", r.code, r.stderr)
	}
	p.stop(t)
	if !strings.Contains(p.log(), "running as sluicetest") || strings.Contains(p.log(), "running as root") {
		t.Errorf("log does not say it switched to sluicetest, or warns about root:\n%s", p.log())
	}
}

// TestServeUserRefused: --user names a user that does not exist, or
// data_dir is a top-level directory that would be given away whole: the
// server does not start, touches nothing, and says why.
func TestServeUserRefused(t *testing.T) {
	dir := t.TempDir()
	cfgPath := procConfig(t, dir, reserveAddr(t), "", "")
	r := runBin(t, "", nil, "", nil, "serve", "--config", cfgPath, "--user", "no-such-user-sluice")
	if r.code == 0 || !strings.Contains(r.stderr, "no such user") {
		t.Errorf("serve --user no-such-user-sluice: exit %d %q", r.code, r.stderr)
	}
	testUser(t, "sluicetest")
	top := filepath.Join(dir, "top.toml")
	if err := os.WriteFile(top, []byte("data_dir = \"/tmp\"\n[smtp]\nlisten = []\n[submission]\nlisten = []\ntls_listen = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runBin(t, "", nil, "", nil, "serve", "--config", top, "--user", "sluicetest")
	if r.code == 0 || !strings.Contains(r.stderr, "top-level directory") {
		t.Errorf("serve --user with data_dir /tmp: exit %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat("/tmp/admin.sock"); err == nil {
		t.Errorf("serve --user with data_dir /tmp made /tmp/admin.sock before refusing")
	}
}
