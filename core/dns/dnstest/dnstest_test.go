package dnstest

import (
	"testing"

	"github.com/miekg/dns"
)

func ask(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network}
	resp, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	return resp
}

func TestServer(t *testing.T) {
	s := Start(t, Zone(
		"Host.Example. 60 IN A 192.0.2.1",
		"www.example. 60 IN CNAME host.example.",
		"deep.sub.example. 60 IN TXT \"x\"",
	))
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
		soa     bool
	}{
		{"host.example.", dns.TypeA, dns.RcodeSuccess, 1, false},
		{"HOST.EXAMPLE.", dns.TypeA, dns.RcodeSuccess, 1, false},
		{"www.example.", dns.TypeA, dns.RcodeSuccess, 2, false},      // CNAME + A
		{"host.example.", dns.TypeMX, dns.RcodeSuccess, 0, true},     // NODATA
		{"sub.example.", dns.TypeA, dns.RcodeSuccess, 0, true},       // empty non-terminal
		{"missing.example.", dns.TypeA, dns.RcodeNameError, 0, true}, // NXDOMAIN
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			resp := ask(t, s, network, tt.name, tt.qtype)
			if resp.Rcode != tt.rcode || len(resp.Answer) != tt.answers || (len(resp.Ns) == 1) != tt.soa {
				t.Errorf("%s %s %s: rcode %d, %d answers, %d authority; want %d, %d, SOA %v",
					network, tt.name, dns.TypeToString[tt.qtype], resp.Rcode, len(resp.Answer), len(resp.Ns), tt.rcode, tt.answers, tt.soa)
			}
		}
	}
	if n := s.Queries(); n != 2*len(tests) {
		t.Errorf("Queries() = %d; want %d", n, 2*len(tests))
	}

	s.Set("host.example", RR("host.example. 60 IN A 192.0.2.7"))
	if resp := ask(t, s, "udp", "host.example.", dns.TypeA); len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Errorf("after Set: %v", resp.Answer)
	}
	s.Set("host.example")
	if resp := ask(t, s, "udp", "host.example.", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("after removing: rcode %d; want NXDOMAIN", resp.Rcode)
	}
	s.Add("new.example. 60 IN A 192.0.2.8")
	if resp := ask(t, s, "udp", "new.example.", dns.TypeA); len(resp.Answer) != 1 {
		t.Errorf("after Add: %v", resp.Answer)
	}

	s.SetRcode("new.example", dns.RcodeServerFailure)
	if resp := ask(t, s, "udp", "new.example.", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("SetRcode: rcode %d", resp.Rcode)
	}
	s.SetRcode("new.example", dns.RcodeSuccess)

	s.SetTruncate(true)
	s.Reset()
	if resp := ask(t, s, "udp", "new.example.", dns.TypeA); !resp.Truncated || len(resp.Answer) != 0 {
		t.Errorf("SetTruncate: UDP answer truncated %v with %d records", resp.Truncated, len(resp.Answer))
	}
	if resp := ask(t, s, "tcp", "new.example.", dns.TypeA); resp.Truncated || len(resp.Answer) != 1 {
		t.Errorf("SetTruncate: TCP answer truncated %v with %d records", resp.Truncated, len(resp.Answer))
	}
	want := []Query{{"new.example.", dns.TypeA, "udp"}, {"new.example.", dns.TypeA, "tcp"}}
	if log := s.Log(); len(log) != 2 || log[0] != want[0] || log[1] != want[1] {
		t.Errorf("Log() = %+v; want %+v", log, want)
	}
}
