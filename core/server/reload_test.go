package server_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/tlsconf"
)

// reloadConf is a configuration a reload test rewrites.
type reloadConf struct {
	domains   string // local_domains entries, quoted
	maxRcpts  int
	logLevel  string
	logFormat string
	listen    []string
	extra     string // appended at the end
}

func (c reloadConf) write(t *testing.T, dir string) string {
	t.Helper()
	var ls []string
	for _, l := range c.listen {
		ls = append(ls, fmt.Sprintf("%q", l))
	}
	text := fmt.Sprintf(`hostname = "reload.test"
data_dir = %q
local_domains = [%s]
trusted_networks = []
log_level = %q
log_format = %q

[smtp]
listen = [%s]
max_recipients = %d

[submission]
listen = []
tls_listen = []

[local]
maildir = "{data_dir}/mail/{domain}/{user}"
%s`, filepath.Join(dir, "data"), c.domains, c.logLevel, c.logFormat, strings.Join(ls, ", "), c.maxRcpts, c.extra)
	path := filepath.Join(dir, "sluice.toml")
	// by rename, as an editor saves: never half a file
	if err := os.WriteFile(path+".new", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	return path
}

// rcpts starts a transaction on s and returns the reply code to each RCPT;
// the transaction is reset after.
func (s *rawSession) rcpts(addrs ...string) []string {
	s.t.Helper()
	s.cmdExpect("MAIL FROM:<sender@example.org>", "250")
	var codes []string
	for _, a := range addrs {
		s.write("RCPT TO:<" + a + ">\r\n")
		line, err := s.reply()
		if err != nil {
			s.t.Fatalf("RCPT %s: %v", a, err)
		}
		codes = append(codes, line[:3])
	}
	s.cmdExpect("RSET", "250")
	return codes
}

func sameCodes(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: RCPT replies %v, want %v", what, got, want)
	}
}

// TestReload: SIGHUP and `sluice reload` apply a rewritten file to the
// running binary — a local domain, a limit, the log level and format, a
// listener added then removed — while a session begun before keeps its
// settings; a file with a mistake changes nothing, and `sluice reload`
// prints its file:line and exits non-zero; a key a running server cannot
// change is named.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	addr, addr2 := reserveAddr(t), reserveAddr(t)
	conf := reloadConf{domains: `"localhost"`, maxRcpts: 2, logLevel: "info", logFormat: "text", listen: []string{addr}}
	cfgPath := conf.write(t, dir)
	p := startServe(t, cfgPath, addr, nil)
	socket := filepath.Join(dir, "data", "admin.sock")

	before := dialRaw(t, addr)
	before.cmdExpect("EHLO before.test", "250")
	servertest.MustSend(t, addr, "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", "one", "x\r\n"))
	servertest.WaitFiles(t, mailbox(dir, "alice"), 1, 10*time.Second)
	if strings.Contains(p.log(), "local transport") {
		t.Fatalf("a debug line at log_level info:\n%s", p.log())
	}

	// SIGHUP: a domain, a limit, the log level, a listener.
	conf.domains, conf.maxRcpts, conf.logLevel, conf.listen = `"localhost", "new.test"`, 3, "debug", []string{addr, addr2}
	conf.write(t, dir)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, `msg=reloaded .*changed="\[local_domains log_level smtp.listen smtp.max_recipients\]" listening="\[smtp 127.0.0.1:\d+\]"`)

	after := dialRaw(t, addr2)
	after.cmdExpect("EHLO after.test", "250")
	sameCodes(t, "new session", after.rcpts("a@localhost", "b@new.test", "c@localhost", "d@localhost"), "250", "250", "250", "452")
	sameCodes(t, "session begun before the reload", before.rcpts("a@localhost", "b@new.test", "c@localhost", "d@localhost"), "250", "554", "250", "452")
	servertest.MustSend(t, addr, "sender@localhost", []string{"bob@localhost"}, servertest.Message("sender@localhost", "bob@localhost", "two", "x\r\n"))
	servertest.WaitFiles(t, mailbox(dir, "bob"), 1, 10*time.Second)
	p.waitLog(t, `level=DEBUG msg="local transport"`)

	// A mistake: nothing changes; `sluice reload` says where, exits 1,
	// through the config (read by the command itself) or the socket (read
	// by the server).
	good := conf
	conf.extra = "[delivery]\nport = 0\n"
	conf.write(t, dir)
	for _, args := range [][]string{{"reload", "--config", cfgPath}, {"reload", "--socket", socket}} {
		r := runBin(t, "", nil, "", nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, cfgPath+":19: delivery.port") {
			t.Errorf("sluice %v with a mistake: status %d, stderr %q; want 1 and %s:19", args, r.code, r.stderr, cfgPath)
		}
	}
	p.signal(t, syscall.SIGHUP)
	// The socket's reload above logged the first such line; SIGHUP's is
	// the second, and the good file must not be written before it.
	p.waitLogN(t, `msg="reload failed; nothing changed" err=".*sluice.toml:19: delivery.port`, 2)
	fresh := dialRaw(t, addr2)
	fresh.cmdExpect("EHLO fresh.test", "250")
	sameCodes(t, "after a failed reload", fresh.rcpts("b@new.test"), "250")

	// `sluice reload`: a listener removed, JSON logs, a key that needs a
	// restart.
	conf = good
	conf.listen, conf.logFormat, conf.extra = []string{addr}, "json", "[queue]\nworkers = 3\n"
	conf.write(t, dir)
	r := runBin(t, "", nil, "", nil, "reload", "--config", cfgPath)
	if r.code != 0 {
		t.Fatalf("sluice reload: status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"reloaded " + cfgPath + "\n",
		"changed: log_format, smtp.listen\n",
		"stopped listening on smtp " + addr2 + "\n",
		"not applied until a restart: queue.workers\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sluice reload printed\n%s\nwithout %q", r.stdout, want)
		}
	}
	if !refused(addr2) {
		t.Errorf("%s still accepts connections after its removal", addr2)
	}
	fresh.cmdExpect("NOOP", "250") // sessions on a removed listener go on
	servertest.MustSend(t, addr, "sender@localhost", []string{"carol@localhost"}, servertest.Message("sender@localhost", "carol@localhost", "three", "x\r\n"))
	servertest.WaitFiles(t, mailbox(dir, "carol"), 1, 10*time.Second)
	p.stop(t)
	lines := strings.Split(strings.TrimSpace(p.log()), "\n")
	first := -1
	for i, line := range lines {
		if strings.Contains(line, `"msg":"reloaded"`) {
			first = i
		}
	}
	if first < 0 {
		t.Fatalf("no JSON \"reloaded\" line:\n%s", p.log())
	}
	n := 0
	for _, line := range lines[first:] {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line after the switch to JSON is not JSON: %s", line)
		}
		n++
	}
	if n < 3 {
		t.Errorf("only %d log lines from the reload on:\n%s", n, strings.Join(lines[first:], "\n"))
	}
}

// writeCert writes a certificate for host to dir/name.{crt,key}.
func writeCert(t *testing.T, dir, name, host string) (string, string) {
	t.Helper()
	certPEM, keyPEM, err := tlsconf.GenerateSelfSigned(host, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for p, b := range map[string][]byte{cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(p+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}

// servedCert returns the name in the certificate addr serves after
// STARTTLS.
func servedCert(t *testing.T, addr string) string {
	t.Helper()
	s := dialRaw(t, addr)
	s.cmdExpect("EHLO client.test", "250")
	s.cmdExpect("STARTTLS", "220")
	tc := tls.Client(s.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer tc.Close()
	return tc.ConnectionState().PeerCertificates[0].DNSNames[0]
}

// TestReloadCertificate: SIGHUP still reloads the certificate files in
// place; a reload that names other files serves them; a broken
// certificate fails the reload and the one in use stays.
func TestReloadCertificate(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	cert, key := writeCert(t, dir, "a", "one.test")
	tlsConf := func(cert, key string) string { return fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", cert, key) }
	conf := reloadConf{domains: `"localhost"`, maxRcpts: 10, logLevel: "info", logFormat: "text", listen: []string{addr}, extra: tlsConf(cert, key)}
	cfgPath := conf.write(t, dir)
	p := startServe(t, cfgPath, addr, nil)
	if got := servedCert(t, addr); got != "one.test" {
		t.Fatalf("serving %s, want one.test", got)
	}

	writeCert(t, dir, "a", "two.test")
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, `msg=reloaded`)
	if got := servedCert(t, addr); got != "two.test" {
		t.Errorf("after SIGHUP serving %s, want two.test", got)
	}

	cert3, key3 := writeCert(t, dir, "b", "three.test")
	conf.extra = tlsConf(cert3, key3)
	conf.write(t, dir)
	if r := runBin(t, "", nil, "", nil, "reload", "--config", cfgPath); r.code != 0 || !strings.Contains(r.stdout, "changed: tls.cert, tls.key") {
		t.Fatalf("sluice reload: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := servedCert(t, addr); got != "three.test" {
		t.Errorf("after naming other files serving %s, want three.test", got)
	}

	if err := os.WriteFile(cert3, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf.maxRcpts = 11
	conf.write(t, dir)
	r := runBin(t, "", nil, "", nil, "reload", "--config", cfgPath)
	if r.code != 1 || !strings.Contains(r.stderr, cert3) {
		t.Errorf("sluice reload with a broken certificate: %d %q, want 1 naming %s", r.code, r.stderr, cert3)
	}
	if got := servedCert(t, addr); got != "three.test" {
		t.Errorf("after a failed reload serving %s, want three.test", got)
	}
}
