package metrics

import (
	"strings"
	"sync"
	"testing"
)

func TestCounters(t *testing.T) {
	c := New()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				c.Add("ratelimit", "over-limit", 1)
			}
		}()
	}
	wg.Wait()
	c.Add("dnsbl", "hits", 2.5)
	if got := c.Get("ratelimit", "over-limit"); got != 2000 {
		t.Errorf("counter = %v, want 2000", got)
	}
	var b strings.Builder
	if err := c.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	want := "sluice_plugin_hits{plugin=\"dnsbl\"} 2.5\nsluice_plugin_over_limit{plugin=\"ratelimit\"} 2000\n"
	if b.String() != want {
		t.Errorf("prometheus text:\n%s\nwant\n%s", b.String(), want)
	}
}
