package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/tlsconf"
)

// testUsers is an Authenticator over a map.
type testUsers map[string]string

func (u testUsers) Authenticate(user, password string) bool {
	p, ok := u[user]
	return ok && p == password
}

// testTLSConfig returns a server config with a fresh self-signed
// certificate for testHost, and the certificate's leaf.
func testTLSConfig(t *testing.T) (*tls.Config, *x509.Certificate) {
	t.Helper()
	certPEM, keyPEM, err := tlsconf.GenerateSelfSigned(testHost, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, cert.Leaf
}

// clientTLS trusts any certificate (the tests check which one they got).
func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: testHost}
}

// submissionOptions are testOptions for a submission service with TLS and
// the users alice@local.test/secret and bob/hunter2.
func submissionOptions(t *testing.T, q Enqueuer) Options {
	opts := testOptions(q)
	opts.Name = "submission"
	opts.TLSConfig, _ = testTLSConfig(t)
	opts.Users = testUsers{"alice@local.test": "secret", "bob": "hunter2"}
	opts.RestrictSender = true
	opts.AuthLimits = AuthLimits{Delay: time.Millisecond, MaxDelay: 2 * time.Millisecond, MaxFailures: 3}
	return opts
}

// startTLSListener serves opts with implicit TLS on a fresh port.
func startTLSListener(t *testing.T, opts Options) string {
	t.Helper()
	return serveOn(t, opts, (*Server).ServeTLS)
}

// startTLS sends STARTTLS on rc, expects 220 and switches rc to TLS.
func (rc *rawConn) startTLS() *tls.ConnectionState {
	rc.t.Helper()
	rc.send("STARTTLS\r\n")
	rc.expect(220)
	return rc.handshake()
}

// handshake runs the client side of TLS on rc.
func (rc *rawConn) handshake() *tls.ConnectionState {
	rc.t.Helper()
	tc := tls.Client(rc.c, clientTLS())
	if err := tc.Handshake(); err != nil {
		rc.t.Fatalf("TLS handshake: %v", err)
	}
	rc.c, rc.r = tc, bufio.NewReader(tc)
	st := tc.ConnectionState()
	return &st
}

// plain is the base64 AUTH PLAIN response for user and password.
func plain(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}

// ehloLines sends EHLO and returns the capability lines.
func (rc *rawConn) ehlo() []string {
	rc.t.Helper()
	rc.send("EHLO client.example\r\n")
	var lines []string
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("EHLO reply: %v", err)
		}
		lines = append(lines, string(bytes.TrimRight([]byte(line[4:]), "\r\n")))
		if line[3] == ' ' {
			if line[:3] != "250" {
				rc.t.Fatalf("EHLO got %q", line)
			}
			return lines[1:]
		}
	}
}

// mustListen listens on a fresh 127.0.0.1 port.
func mustListen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// b64 is standard base64.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
