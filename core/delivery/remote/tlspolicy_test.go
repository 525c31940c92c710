package remote

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/sluice-mta/sluice/core/delivery/mtasts"
	"github.com/sluice-mta/sluice/core/internal/testca"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// recorder is a tlsrpt.Recorder that keeps what it is told.
type recorder struct {
	mu  sync.Mutex
	got []tlsrpt.Result
}

func (r *recorder) Record(_ context.Context, res tlsrpt.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, res)
}

func (r *recorder) results() []tlsrpt.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// has reports whether a result of policy type pt with the failure (or
// success, for "") was recorded.
func (r *recorder) has(pt tlsrpt.PolicyType, failure tlsrpt.ResultType) bool {
	for _, res := range r.results() {
		if res.PolicyType == pt && res.Failure == failure && res.Success == (failure == "") {
			return true
		}
	}
	return false
}

// observed is a TLSObserver that keeps what it is told, as
// "policy/result".
type observed struct {
	mu  sync.Mutex
	got []string
}

func (o *observed) observe(policy, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, policy+"/"+result)
}

// has reports whether policy/result was observed.
func (o *observed) has(policy, result string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Contains(o.got, policy+"/"+result)
}

// checkMetric checks what the metric was told of a session under metric's
// policy: its failure rtype, or success for ""; a failure that was only
// reported (the mail went as opportunistic TLS) is no success of the
// policy.
func checkMetric(t *testing.T, o *observed, metric string, rtype tlsrpt.ResultType) {
	t.Helper()
	want := cmp.Or(string(rtype), "success")
	if !o.has(metric, want) {
		t.Errorf("the metric was told %q; want %s/%s", o.got, metric, want)
	}
	if rtype != "" && o.has(metric, "success") {
		t.Errorf("the metric was told %q: a %s failure counted as a success too", o.got, metric)
	}
}

// mxCerts are the certificates the tests' MX shows: valid for
// mx1.example.test from the test CA, expired, for another name, and
// self-signed.
type mxCerts struct {
	good, expired, wrongName, self tls.Certificate
}

func newMXCerts(t *testing.T, ca *testca.CA) mxCerts {
	self := selfSigned(t)
	self.Leaf, _ = x509.ParseCertificate(self.Certificate[0])
	return mxCerts{
		good:      ca.Chain(ca.Issue(t, []string{"mx1.example.test"}, time.Time{}, time.Time{})),
		expired:   ca.Chain(ca.Issue(t, []string{"mx1.example.test"}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))),
		wrongName: ca.Chain(ca.Issue(t, []string{"other.test"}, time.Time{}, time.Time{})),
		self:      self,
	}
}

// noTLS is a sink option: no STARTTLS at all.
var noTLS *tls.Certificate

// mxSink starts the MX mx1.example.test (192.0.2.1) showing cert, or
// without STARTTLS for nil.
func mxSink(t *testing.T, e *env, cert *tls.Certificate) *sink {
	s := startSink(t, sinkOptions{cert: cert})
	e.route("192.0.2.1:25", s.addr)
	return s
}

// checkTLS checks the results' TLS and that the sink got what it should.
func checkTLS(t *testing.T, got []mail.Result, s *sink, wantTLS string, wantTxns int) {
	t.Helper()
	if got[0].Status == mail.Sent && got[0].TLSText() != wantTLS {
		t.Errorf("result TLS %q, want %q", got[0].TLSText(), wantTLS)
	}
	if n := len(s.transactions()); n != wantTxns {
		t.Errorf("the MX got %d transactions, want %d (never in plain text where TLS is required)", n, wantTxns)
	}
}

// TestVerifyPolicy: tls = "verify" for a domain needs STARTTLS and a
// certificate valid for the MX name; anything else defers with 4.7.5 and
// the problem, and nothing is sent.
func TestVerifyPolicy(t *testing.T) {
	ca := testca.New(t, "Sluice test CA")
	certs := newMXCerts(t, ca)
	tests := []struct {
		name   string
		cert   *tls.Certificate
		want   want
		rtype  tlsrpt.ResultType
		wantTx int
	}{
		{"valid certificate", &certs.good, want{policy: "verify", status: mail.Sent}, "", 1},
		{"expired", &certs.expired, want{policy: "verify", status: mail.Deferred, dsn: "4.7.5", text: "certificate expired"}, tlsrpt.ResultCertificateExpired, 0},
		{"wrong name", &certs.wrongName, want{policy: "verify", status: mail.Deferred, dsn: "4.7.5", text: "valid for other.test, not mx1.example.test"}, tlsrpt.ResultCertificateHostMismatch, 0},
		{"self-signed", &certs.self, want{policy: "verify", status: mail.Deferred, dsn: "4.7.5", text: "self-signed certificate not trusted"}, tlsrpt.ResultCertificateNotTrusted, 0},
		{"no STARTTLS", noTLS, want{policy: "verify", status: mail.Deferred, dsn: "4.7.5", text: `does not offer STARTTLS, which tls = "verify" for example.test requires`}, tlsrpt.ResultSTARTTLSNotSupported, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, twoMX...)
			s := mxSink(t, e, tt.cert)
			rec := &recorder{}
			d := e.deliverer(func(o *Options) {
				o.Roots, o.TLSReport = ca.Pool(), rec
				o.Routes = map[string]Route{"example.test": {TLS: TLSVerify}}
			})
			rcpts := []string{"a@example.test"}
			got := deliver(d, message("Q1", rcpts...))
			check(t, got, rcpts, tt.want)
			checkTLS(t, got, s, "TLSv1.3 verified=pkix", tt.wantTx)
			if !rec.has(tlsrpt.PolicyNone, tt.rtype) {
				t.Errorf("TLS-RPT got %+v, want a no-policy-found result %q", rec.results(), tt.rtype)
			}
			// The detail is the same for every session, so that they add
			// up in the report (no time of day in it).
			if tt.rtype == tlsrpt.ResultCertificateExpired {
				want := "certificate expired on " + certs.expired.Leaf.NotAfter.UTC().Format(time.RFC3339)
				if d := rec.results()[0].Detail; d != want {
					t.Errorf("TLS-RPT detail %q, want %q", d, want)
				}
			}
		})
	}
}

// TestOpportunisticPolicy: by default any certificate will do and a
// server without STARTTLS gets the mail in plain text; tls = "none" never
// says STARTTLS.
func TestOpportunisticPolicy(t *testing.T) {
	ca := testca.New(t, "Sluice test CA")
	certs := newMXCerts(t, ca)
	for _, tt := range []struct {
		name, policy string
		cert         *tls.Certificate
		wantTLS      string
	}{
		{"self-signed", "", &certs.self, "TLSv1.3 verified=no"},
		{"expired", "", &certs.expired, "TLSv1.3 verified=no"},
		{"no STARTTLS", "", noTLS, "none"},
		{"tls none", TLSNone, &certs.good, "none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, twoMX...)
			s := mxSink(t, e, tt.cert)
			d := e.deliverer(func(o *Options) { o.TLS = tt.policy })
			rcpts := []string{"a@example.test"}
			got := deliver(d, message("Q1", rcpts...))
			check(t, got, rcpts, want{status: mail.Sent, policy: cmp.Or(tt.policy, TLSOpportunistic)})
			checkTLS(t, got, s, tt.wantTLS, 1)
		})
	}
}

// policyServer serves an MTA-STS policy over HTTPS with a certificate
// for mta-sts.example.test from ca, on 127.0.0.1; it counts the fetches.
type policyServer struct {
	port int
	hits atomic.Int32
	mu   sync.Mutex
	text string
	srv  *httptest.Server
}

func startPolicyServer(t *testing.T, ca *testca.CA, text string) *policyServer {
	t.Helper()
	ps := &policyServer{text: text}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.example.test:"+strconv.Itoa(ps.port) {
			http.NotFound(w, r)
			return
		}
		ps.hits.Add(1)
		ps.mu.Lock()
		defer ps.mu.Unlock()
		fmt.Fprint(w, ps.text)
	}))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Chain(ca.Issue(t, []string{"mta-sts.example.test"}, time.Time{}, time.Time{}))}}
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	_, port, _ := net.SplitHostPort(ps.srv.Listener.Addr().String())
	ps.port, _ = strconv.Atoi(port)
	return ps
}

// stsZone publishes an MTA-STS record for example.test, whose policy host
// is on loopback.
var stsZone = append(slices.Clone(twoMX),
	`_mta-sts.example.test. 300 IN TXT "v=STSv1; id=20260101"`,
	"mta-sts.example.test. 300 IN A 127.0.0.1")

func stsPolicy(mode string, mx ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: STSv1\r\nmode: %s\r\n", mode)
	for _, m := range mx {
		fmt.Fprintf(&b, "mx: %s\r\n", m)
	}
	b.WriteString("max_age: 86400\r\n")
	return b.String()
}

// TestMTASTS: an enforced policy needs an MX it lists and a certificate
// valid for that MX's name, or the mail is deferred with 4.7.5 naming the
// policy and the problem, and never sent in plain text; testing mode
// delivers and reports; a policy that cannot be fetched (its server's
// certificate is not trusted) counts as none, reported.
func TestMTASTS(t *testing.T) {
	ca := testca.New(t, "Sluice test CA")
	certs := newMXCerts(t, ca)
	tests := []struct {
		name     string
		policy   string
		policyCA *testca.CA // the CA the policy server's certificate is from; nil: ca
		cert     *tls.Certificate
		tlsNo    bool // the message says TLS-Required: No
		want     want
		wantTLS  string
		wantTx   int
		rep      tlsrpt.PolicyType
		rtype    tlsrpt.ResultType
	}{
		{name: "enforce, valid", policy: stsPolicy("enforce", "mx1.example.test", "mx2.example.test"), cert: &certs.good,
			want: want{policy: "mta-sts", status: mail.Sent}, wantTLS: "TLSv1.3 verified=mta-sts", wantTx: 1, rep: tlsrpt.PolicySTS},
		{name: "enforce, wildcard", policy: stsPolicy("enforce", "*.example.test"), cert: &certs.good,
			want: want{policy: "mta-sts", status: mail.Sent}, wantTLS: "TLSv1.3 verified=mta-sts", wantTx: 1, rep: tlsrpt.PolicySTS},
		{name: "enforce, expired certificate", policy: stsPolicy("enforce", "mx1.example.test"), cert: &certs.expired,
			want: want{policy: "mta-sts", status: mail.Deferred, dsn: "4.7.5", text: "certificate expired"}, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultCertificateExpired},
		{name: "enforce, certificate for another name", policy: stsPolicy("enforce", "mx1.example.test"), cert: &certs.wrongName,
			want: want{policy: "mta-sts", status: mail.Deferred, dsn: "4.7.5", text: "the MTA-STS policy of example.test (mode enforce)"}, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultCertificateHostMismatch},
		{name: "enforce, no STARTTLS", policy: stsPolicy("enforce", "mx1.example.test"), cert: noTLS,
			want: want{policy: "mta-sts", status: mail.Deferred, dsn: "4.7.5", text: "does not offer STARTTLS"}, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultSTARTTLSNotSupported},
		{name: "enforce, MX not listed", policy: stsPolicy("enforce", "mx9.example.test"), cert: &certs.good,
			want: want{policy: "mta-sts", status: mail.Deferred, dsn: "4.7.5", text: "does not list MX host mx1.example.test (it lists mx9.example.test)"}, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultValidationFailure},
		{name: "enforce, expired certificate, TLS-Required: No: delivered, reported", policy: stsPolicy("enforce", "mx1.example.test"), cert: &certs.expired, tlsNo: true,
			want: want{policy: "tls-required-no", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultCertificateExpired},
		{name: "enforce, MX not listed, TLS-Required: No: delivered, reported", policy: stsPolicy("enforce", "mx9.example.test"), cert: &certs.good, tlsNo: true,
			want: want{policy: "tls-required-no", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultValidationFailure},
		{name: "testing, self-signed: delivered, reported", policy: stsPolicy("testing", "mx1.example.test"), cert: &certs.self,
			want: want{policy: "mta-sts-testing", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultCertificateNotTrusted},
		{name: "policy server not trusted: no policy", policy: stsPolicy("enforce", "mx9.example.test"), policyCA: testca.New(t, "Sluice test CA"), cert: &certs.self,
			want: want{policy: "opportunistic", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultSTSWebPKIInvalid},
		{name: "mode none: no policy", policy: stsPolicy("none"), cert: noTLS,
			want: want{policy: "opportunistic", status: mail.Sent}, wantTLS: "none", wantTx: 1, rep: tlsrpt.PolicyNone, rtype: tlsrpt.ResultSTARTTLSNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, stsZone...)
			s := mxSink(t, e, tt.cert)
			pca := tt.policyCA
			if pca == nil {
				pca = ca
			}
			ps := startPolicyServer(t, pca, tt.policy)
			rec, obs := &recorder{}, &observed{}
			d := e.deliverer(func(o *Options) {
				o.Roots, o.TLSReport, o.TLSObserver = ca.Pool(), rec, obs.observe
				o.MTASTS = mtasts.New(mtasts.Options{Resolver: e.res, Roots: ca.Pool(), Port: ps.port})
			})
			rcpts := []string{"a@example.test"}
			got := deliver(d, tlsNoMessage(tt.tlsNo, rcpts...))
			check(t, got, rcpts, tt.want)
			checkTLS(t, got, s, tt.wantTLS, tt.wantTx)
			if !rec.has(tt.rep, tt.rtype) {
				t.Errorf("TLS-RPT got %+v, want a %s result %q", rec.results(), tt.rep, tt.rtype)
			}
			if tt.rep == tlsrpt.PolicySTS && tt.rtype != tlsrpt.ResultSTSWebPKIInvalid {
				checkMetric(t, obs, "mta-sts", tt.rtype)
				r := rec.results()[0]
				if !slices.Contains(r.PolicyStrings, "mode: "+strings.Fields(tt.policy)[3]) || r.MXHost != "mx1.example.test" {
					t.Errorf("TLS-RPT result %+v: want the policy's lines and the MX host", r)
				}
				if tt.rtype != tlsrpt.ResultValidationFailure && (r.ReceivingIP.String() != "127.0.0.1" || r.SendingIP.String() != "127.0.0.1") {
					t.Errorf("TLS-RPT result %+v: want both ends' addresses", r)
				}
			}
		})
	}
}

// tlsaRecord is the TLSA record of cert for mx1.example.test's port 25.
func tlsaRecord(cert *x509.Certificate, usage, selector, mtype int) string {
	data := cert.Raw
	if selector == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch mtype {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return fmt.Sprintf("_25._tcp.mx1.example.test. 300 IN TLSA %d %d %d %x", usage, selector, mtype, data)
}

// TestDANE: DNSSEC-validated TLSA records decide (DANE-EE with SHA-256,
// SHA-512 and full matching, DANE-TA); a set the certificate does not
// satisfy defers with 4.7.5 and sends nothing; records none of which is
// usable mean TLS without authentication (still required); an unsigned
// zone falls back to the domain's other policy; DANE wins over MTA-STS;
// dane-only needs it.
func TestDANE(t *testing.T) {
	ca := testca.New(t, "Sluice test CA")
	certs := newMXCerts(t, ca)
	other := newMXCerts(t, testca.New(t, "Sluice test CA"))
	tests := []struct {
		name     string
		cert     *tls.Certificate
		tlsa     string
		unsigned bool
		servfail bool
		sts      string // an MTA-STS policy, too
		policy   string
		tlsNo    bool // the message says TLS-Required: No
		want     want
		wantTLS  string
		wantTx   int
		rep      tlsrpt.PolicyType
		rtype    tlsrpt.ResultType
	}{
		{name: "DANE-EE SPKI SHA-256, self-signed", cert: &certs.self, tlsa: tlsaRecord(certs.self.Leaf, 3, 1, 1),
			want: want{policy: "dane", status: mail.Sent}, wantTLS: "TLSv1.3 verified=dane", wantTx: 1, rep: tlsrpt.PolicyTLSA},
		{name: "DANE-EE certificate SHA-512, expired", cert: &certs.expired, tlsa: tlsaRecord(certs.expired.Leaf, 3, 0, 2),
			want: want{policy: "dane", status: mail.Sent}, wantTLS: "TLSv1.3 verified=dane", wantTx: 1, rep: tlsrpt.PolicyTLSA},
		{name: "DANE-EE full certificate", cert: &certs.wrongName, tlsa: tlsaRecord(certs.wrongName.Leaf, 3, 0, 0),
			want: want{policy: "dane", status: mail.Sent}, wantTLS: "TLSv1.3 verified=dane", wantTx: 1, rep: tlsrpt.PolicyTLSA},
		{name: "DANE-TA", cert: &certs.good, tlsa: tlsaRecord(ca.Cert, 2, 0, 1),
			want: want{policy: "dane", status: mail.Sent}, wantTLS: "TLSv1.3 verified=dane", wantTx: 1, rep: tlsrpt.PolicyTLSA},
		{name: "DANE-TA, certificate for another name", cert: &certs.wrongName, tlsa: tlsaRecord(ca.Cert, 2, 0, 1),
			want: want{policy: "dane", status: mail.Deferred, dsn: "4.7.5", text: "no TLSA record matches the certificate"}, rep: tlsrpt.PolicyTLSA, rtype: tlsrpt.ResultValidationFailure},
		{name: "TLSA not matching", cert: &certs.self, tlsa: tlsaRecord(other.good.Leaf, 3, 1, 1),
			want: want{policy: "dane", status: mail.Deferred, dsn: "4.7.5", text: "the DANE TLSA records of mx1.example.test"}, rep: tlsrpt.PolicyTLSA, rtype: tlsrpt.ResultValidationFailure},
		{name: "TLSA not matching, TLS-Required: No: delivered, reported", cert: &certs.self, tlsa: tlsaRecord(other.good.Leaf, 3, 1, 1), tlsNo: true,
			want: want{policy: "tls-required-no", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicyTLSA, rtype: tlsrpt.ResultValidationFailure},
		{name: "TLSA lookup fails, TLS-Required: No: delivered, reported", cert: &certs.self, tlsa: tlsaRecord(certs.self.Leaf, 3, 1, 1), servfail: true, tlsNo: true,
			want: want{policy: "tls-required-no", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicyTLSA, rtype: tlsrpt.ResultTLSAInvalid},
		{name: "dane-only ignores TLS-Required: No", cert: &certs.good, policy: TLSDANEOnly, tlsNo: true,
			want: want{policy: "dane-only", status: mail.Deferred, dsn: "4.7.5", text: "publishes no DNSSEC-validated TLSA records"}},
		{name: "DANE, no STARTTLS", cert: noTLS, tlsa: tlsaRecord(certs.self.Leaf, 3, 1, 1),
			want: want{policy: "dane", status: mail.Deferred, dsn: "4.7.5", text: "does not offer STARTTLS"}, rep: tlsrpt.PolicyTLSA, rtype: tlsrpt.ResultSTARTTLSNotSupported},
		{name: "unsigned zone falls back", cert: &certs.self, tlsa: tlsaRecord(other.good.Leaf, 3, 1, 1), unsigned: true,
			want: want{policy: "opportunistic", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicyNone},
		{name: "unsigned zone falls back to MTA-STS", cert: &certs.self, tlsa: tlsaRecord(certs.self.Leaf, 3, 1, 1), unsigned: true,
			sts:  stsPolicy("enforce", "mx1.example.test"),
			want: want{policy: "mta-sts", status: mail.Deferred, dsn: "4.7.5", text: "self-signed"}, rep: tlsrpt.PolicySTS, rtype: tlsrpt.ResultCertificateNotTrusted},
		{name: "DANE beats MTA-STS", cert: &certs.self, tlsa: tlsaRecord(certs.self.Leaf, 3, 1, 1),
			sts:  stsPolicy("enforce", "mx1.example.test"),
			want: want{policy: "dane", status: mail.Sent}, wantTLS: "TLSv1.3 verified=dane", wantTx: 1, rep: tlsrpt.PolicyTLSA},
		{name: "TLSA lookup fails", cert: &certs.self, tlsa: tlsaRecord(certs.self.Leaf, 3, 1, 1), servfail: true,
			want: want{policy: "dane", status: mail.Deferred, dsn: "4.7.5", text: "looking up the TLSA records of mx1.example.test failed"}, rep: tlsrpt.PolicyTLSA, rtype: tlsrpt.ResultTLSAInvalid},
		{name: "no usable TLSA record (PKIX-EE): TLS without authentication", cert: &certs.self, tlsa: tlsaRecord(certs.self.Leaf, 1, 1, 1),
			want: want{policy: "dane", status: mail.Sent}, wantTLS: "TLSv1.3 verified=no", wantTx: 1, rep: tlsrpt.PolicyTLSA},
		{name: "no usable TLSA record, no STARTTLS", cert: noTLS, tlsa: tlsaRecord(certs.self.Leaf, 1, 1, 1),
			want: want{policy: "dane", status: mail.Deferred, dsn: "4.7.5", text: "does not offer STARTTLS"}, rep: tlsrpt.PolicyTLSA, rtype: tlsrpt.ResultSTARTTLSNotSupported},
		{name: "dane-only without TLSA", cert: &certs.good, policy: TLSDANEOnly,
			want: want{policy: "dane-only", status: mail.Deferred, dsn: "4.7.5", text: "publishes no DNSSEC-validated TLSA records"}},
		{name: "dane-only with TLSA", cert: &certs.self, tlsa: tlsaRecord(certs.self.Leaf, 3, 1, 1), policy: TLSDANEOnly,
			want: want{policy: "dane", status: mail.Sent}, wantTLS: "TLSv1.3 verified=dane", wantTx: 1, rep: tlsrpt.PolicyTLSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone := slices.Clone(twoMX[:3]) // mx1 only
			if tt.tlsa != "" {
				zone = append(zone, tt.tlsa)
			}
			if tt.sts != "" {
				zone = append(zone, stsZone[len(twoMX):]...)
			}
			e := newEnv(t, zone...)
			if !tt.unsigned {
				e.dns.SetSigned("example.test", true)
			}
			if tt.servfail {
				e.dns.SetRcode("_25._tcp.mx1.example.test", mdns.RcodeServerFailure)
			}
			s := mxSink(t, e, tt.cert)
			rec, obs := &recorder{}, &observed{}
			var sts STSPolicies
			if tt.sts != "" {
				ps := startPolicyServer(t, ca, tt.sts)
				sts = mtasts.New(mtasts.Options{Resolver: e.res, Roots: ca.Pool(), Port: ps.port})
			}
			d := e.deliverer(func(o *Options) {
				o.DANE, o.TLS, o.Roots, o.TLSReport, o.MTASTS, o.TLSObserver = true, tt.policy, ca.Pool(), rec, sts, obs.observe
			})
			rcpts := []string{"a@example.test"}
			got := deliver(d, tlsNoMessage(tt.tlsNo, rcpts...))
			check(t, got, rcpts, tt.want)
			checkTLS(t, got, s, tt.wantTLS, tt.wantTx)
			if tt.rep != "" && !rec.has(tt.rep, tt.rtype) {
				t.Errorf("TLS-RPT got %+v, want a %s result %q", rec.results(), tt.rep, tt.rtype)
			}
			switch {
			case tt.rep == tlsrpt.PolicyTLSA:
				checkMetric(t, obs, "dane", tt.rtype)
			case tt.want.policy == TLSDANEOnly:
				// Required here, published nowhere: RFC 8460's dane-required.
				checkMetric(t, obs, "dane", tlsrpt.ResultDANERequired)
				if !rec.has(tlsrpt.PolicyNone, tlsrpt.ResultDANERequired) {
					t.Errorf("TLS-RPT got %+v, want a dane-required failure", rec.results())
				}
			}
			if tt.rep == tlsrpt.PolicyTLSA && !tt.servfail {
				if r := rec.results()[0]; len(r.PolicyStrings) != 1 || !strings.Contains(r.PolicyStrings[0], "IN TLSA ") {
					t.Errorf("TLS-RPT result %+v: want the TLSA record as the policy string", r)
				}
			}
		})
	}
}

// TestPolicyTriesNextMX: an MX whose certificate does not meet the policy
// is skipped for the next one, which gets the mail.
func TestPolicyTriesNextMX(t *testing.T) {
	ca := testca.New(t, "Sluice test CA")
	e := newEnv(t, twoMX...)
	bad := mxSink(t, e, ptr(testca.SelfSigned(t, "mx1.example.test")))
	good := startSink(t, sinkOptions{cert: ptr(ca.Chain(ca.Issue(t, []string{"mx2.example.test"}, time.Time{}, time.Time{})))})
	e.route("192.0.2.2:25", good.addr)
	d := e.deliverer(func(o *Options) {
		o.Roots = ca.Pool()
		o.Routes = map[string]Route{"example.test": {TLS: TLSVerify}}
	})
	rcpts := []string{"a@example.test"}
	got := deliver(d, message("Q1", rcpts...))
	check(t, got, rcpts, want{status: mail.Sent, relay: "mx2.example.test[192.0.2.2]:25"})
	checkTLS(t, got, good, "TLSv1.3 verified=pkix", 1)
	if n := len(bad.transactions()); n != 0 {
		t.Errorf("the self-signed MX got %d transactions", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestPoolKeys: a session that fell back to less than its plan asked (an
// MTA-STS testing policy's unverified or plain session) is pooled as what
// it is, and a plan that needs verification never takes it.
func TestPoolKeys(t *testing.T) {
	verify := func(tls.ConnectionState) error { return nil }
	sts := &tlsPlan{mode: planRequired, verify: verify, verified: "mta-sts", key: "sts"}
	soft := &tlsPlan{mode: planRequired, verify: verify, verified: "mta-sts", key: "sts", soft: true}
	opp := &tlsPlan{mode: planOptional, key: "opp"}
	relay := &tlsPlan{mode: planPlain, auth: true, plainAuth: true, key: "relay/alice/0"}
	for _, tt := range []struct {
		name string
		p    *tlsPlan
		cn   conn
		key  string
	}{
		{"verified as asked", soft, conn{tls: "TLSv1.3", verified: "mta-sts"}, "sts"},
		{"testing, unverified", soft, conn{tls: "TLSv1.3", verified: "no"}, "opp"},
		{"testing, plain", soft, conn{}, "plain"},
		{"opportunistic", opp, conn{tls: "TLSv1.3", verified: "no"}, "opp"},
		{"logged in, plain", relay, conn{}, "relay/alice/0"},
	} {
		if got := tt.p.keyFor(&tt.cn); got != tt.key {
			t.Errorf("%s: pooled as %q, want %q", tt.name, got, tt.key)
		}
	}
	if got := sts.accepts(); !slices.Equal(got, []string{"sts"}) {
		t.Errorf("an enforced policy reuses %q; want only verified sessions", got)
	}
	if got := opp.accepts(); !slices.Contains(got, "plain") || slices.Contains(got, "relay/alice/0") {
		t.Errorf("opportunistic TLS reuses %q", got)
	}
}

// tlsNoMessage is message("Q1", rcpts...), with a "TLS-Required: No"
// field (RFC 8689) when no is set.
func tlsNoMessage(no bool, rcpts ...string) *mail.Message {
	m := message("Q1", rcpts...)
	if no {
		m.Body = append([]byte("TLS-Required: No\r\n"), m.Body...)
	}
	return m
}
