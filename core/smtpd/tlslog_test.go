package smtpd

import (
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/metrics"
)

// TestTLSFailureReasonsListed: the reasons smtpd classifies handshake
// failures into are the metric's fixed set.
func TestTLSFailureReasonsListed(t *testing.T) {
	if got, want := slices.Sorted(slices.Values(tlsFailureReasons)), slices.Sorted(slices.Values(metrics.TLSFailureReasons())); !slices.Equal(got, want) {
		t.Errorf("smtpd classifies into %v, the metric counts %v", got, want)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l := mustListen(t)
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// TestTLSFailureReason runs real handshakes that fail in each way a
// client makes them fail and checks the reason the server's error is
// given.
func TestTLSFailureReason(t *testing.T) {
	srvCfg, _ := testTLSConfig(t) // an ECDSA certificate, TLS 1.2 minimum
	junkCert := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c := srvCfg.Certificates[0]
		return &tls.Certificate{Certificate: [][]byte{[]byte("not a certificate")}, PrivateKey: c.PrivateKey}, nil
	}
	for _, tc := range []struct {
		name   string
		server func(*tls.Config)
		client func(net.Conn) // runs on its own goroutine; the conn is closed after
		want   string
	}{
		{"TLS 1.0 client", nil, func(c net.Conn) {
			tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}).Handshake()
		}, tlsFailVersion},
		{"RSA-only suites against an ECDSA certificate", nil, func(c net.Conn) {
			tls.Client(c, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
				CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}).Handshake()
		}, tlsFailCipher},
		{"client does not trust the certificate", nil, func(c net.Conn) {
			tls.Client(c, &tls.Config{ServerName: testHost}).Handshake()
		}, tlsFailRejected},
		{"unparsable client certificate", func(c *tls.Config) { c.ClientAuth = tls.RequestClientCert }, func(c net.Conn) {
			tls.Client(c, &tls.Config{InsecureSkipVerify: true, GetClientCertificate: junkCert}).Handshake()
		}, tlsFailClientCert},
		{"plain text", nil, func(c net.Conn) {
			c.Write([]byte("EHLO client.example\r\n"))
			c.Read(make([]byte, 64)) // until the server hangs up
		}, tlsFailNotTLS},
		{"hang-up", nil, func(net.Conn) {}, tlsFailClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srvCfg.Clone()
			if tc.server != nil {
				tc.server(cfg)
			}
			sc, cc := tcpPair(t)
			go func() { tc.client(cc); cc.Close() }()
			err := tls.Server(sc, cfg).HandshakeContext(context.Background())
			if err == nil {
				t.Fatal("the handshake succeeded")
			}
			if got := tlsFailureReason(err); got != tc.want {
				t.Errorf("reason %q for %v, want %q", got, err, tc.want)
			}
		})
	}
	// OpenSSL refusing the certificate: at TLS 1.3 its alert comes
	// unencrypted.
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		t.Run("openssl s_client "+v+" does not trust the certificate", func(t *testing.T) {
			if _, err := exec.LookPath("openssl"); err != nil {
				t.Skip("openssl not installed")
			}
			l := mustListen(t)
			defer l.Close()
			cmd := exec.Command("openssl", "s_client", "-connect", l.Addr().String(), v, "-verify_return_error")
			cmd.Stdin = strings.NewReader("")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			sc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			err = tls.Server(sc, srvCfg).HandshakeContext(context.Background())
			if got := tlsFailureReason(err); got != tlsFailRejected {
				t.Errorf("reason %q for %v, want %q", got, err, tlsFailRejected)
			}
		})
	}
	t.Run("silent client", func(t *testing.T) {
		sc, _ := tcpPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := tls.Server(sc, srvCfg).HandshakeContext(ctx)
		if got := tlsFailureReason(err); got != tlsFailTimeout {
			t.Errorf("reason %q for %v, want %q", got, err, tlsFailTimeout)
		}
	})
}

// TestTLSAttrs: the "tls" line names the client's certificate only when
// one was presented, with its SHA-256 fingerprint in openssl's form.
func TestTLSAttrs(t *testing.T) {
	_, leaf := testTLSConfig(t)
	st := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_256_GCM_SHA384}
	if got := tlsAttrs(st); !slices.Equal(got, []any{"version", "TLS 1.3", "cipher", "TLS_AES_256_GCM_SHA384"}) {
		t.Errorf("without a client certificate: %v", got)
	}
	st.PeerCertificates = append(st.PeerCertificates, leaf)
	got := tlsAttrs(st)
	if len(got) != 10 || got[4] != "cert_subject" || got[5] != leaf.Subject.String() || got[6] != "cert_issuer" || got[8] != "cert_sha256" {
		t.Fatalf("with a client certificate: %v", got)
	}
	if fp := got[9].(string); len(fp) != 95 || strings.Count(fp, ":") != 31 || strings.ToUpper(fp) != fp {
		t.Errorf("fingerprint %q, want 32 upper-case hex pairs joined by colons", fp)
	}
}
