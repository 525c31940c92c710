package dns

import (
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

func BenchmarkLookup(b *testing.B) {
	srv := dnstest.Start(b, dnstest.Zone("a.test. 300 IN A 192.0.2.1"))
	b.Run("cached", func(b *testing.B) {
		r, err := New(Options{Servers: []string{srv.Addr}})
		if err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.Lookup(b.Context(), mdns.TypeA, "a.test"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("uncached", func(b *testing.B) {
		r, err := New(Options{Servers: []string{srv.Addr}, CacheSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := r.Lookup(b.Context(), mdns.TypeA, "a.test"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
