package mtasts

import (
	"context"
	"testing"

	"github.com/sluice-mta/sluice/core/dns"
)

// BenchmarkCacheGet is what MTA-STS adds to each delivery attempt to a
// domain whose policy is cached: the TXT record (from the resolver's
// cache) and the policy read back from Badger and parsed.
//
//	go test -run '^$' -bench CacheGet -benchmem ./core/delivery/mtasts
func BenchmarkCacheGet(b *testing.B) {
	s := newSetup(b, enforce)
	res, err := dns.New(dns.Options{Servers: []string{s.dns.Addr}}) // caching, as the server's
	if err != nil {
		b.Fatal(err)
	}
	opts := s.opts
	opts.Resolver = res
	c := New(opts)
	defer c.Close()
	ctx := context.Background()
	if p, err := c.Get(ctx, "example.test"); p == nil || err != nil {
		b.Fatal(p, err)
	}
	b.ResetTimer()
	for b.Loop() {
		if p, _ := c.Get(ctx, "example.test"); p == nil {
			b.Fatal("no policy")
		}
	}
}
