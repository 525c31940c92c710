package dns

import (
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

// FuzzAnswerText feeds arbitrary DNS messages, as a server could send
// them, through the answer extraction and text rendering that Lookup and
// the typed lookups use: they must not panic, and every answer must be
// one printable line (the filter host separates answers by newlines).
func FuzzAnswerText(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		b, err := seed.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	types := []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT, mdns.TypePTR, mdns.TypeCNAME, mdns.TypeNS}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := new(mdns.Msg)
		if err := msg.Unpack(data); err != nil {
			return
		}
		name := "example.test."
		if len(msg.Question) > 0 {
			name = mdns.CanonicalName(msg.Question[0].Name)
		}
		for _, qtype := range types {
			ans, ttl := extract(msg, name, qtype)
			if ttl < 0 || ttl > MaxTTL {
				t.Fatalf("ttl %v out of range", ttl)
			}
			for _, rr := range ans.rrs {
				if rr.Header().Rrtype != qtype {
					t.Fatalf("asked %s, extracted %s", typeName(qtype), rr)
				}
			}
			for _, s := range answerText(ans.rrs) {
				for i := 0; i < len(s); i++ {
					if s[i] < ' ' || s[i] > '~' {
						t.Fatalf("answer %q has byte %#x outside printable ASCII", s, s[i])
					}
				}
				if qtype == mdns.TypeMX {
					pref, host, ok := strings.Cut(s, " ")
					if !ok || pref == "" || strings.Trim(pref, "0123456789") != "" || host == "" {
						t.Fatalf("MX answer %q is not \"pref host\"", s)
					}
				}
			}
		}
	})
}

func fuzzSeeds() []*mdns.Msg {
	reply := func(qtype uint16, rcode int, records ...string) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion("example.test.", qtype)
		m.Response = true
		m.Rcode = rcode
		for _, r := range records {
			m.Answer = append(m.Answer, dnstest.RR(r))
		}
		return m
	}
	nx := reply(mdns.TypeA, mdns.RcodeNameError)
	nx.Ns = append(nx.Ns, dnstest.RR(". 60 IN SOA ns. host. 1 2 3 4 60"))
	return []*mdns.Msg{
		reply(mdns.TypeA, 0, "example.test. 60 IN A 192.0.2.1", "example.test. 60 IN A 192.0.2.2"),
		reply(mdns.TypeAAAA, 0, "example.test. 60 IN AAAA 2001:db8::1"),
		reply(mdns.TypeMX, 0, "example.test. 60 IN MX 10 mx.example.test.", "example.test. 60 IN MX 0 ."),
		reply(mdns.TypeTXT, 0, `example.test. 60 IN TXT "v=spf1 " "-all" "\"q\" \\ \010"`),
		reply(mdns.TypePTR, 0, "example.test. 60 IN PTR host.example.test."),
		reply(mdns.TypeA, 0, "example.test. 60 IN CNAME b.test.", "b.test. 30 IN CNAME c.test.", "c.test. 10 IN A 192.0.2.3"),
		reply(mdns.TypeA, 0, "example.test. 60 IN CNAME example.test."),
		reply(mdns.TypeNS, 0, "example.test. 60 IN NS ns\\032x.test."),
		nx,
	}
}
