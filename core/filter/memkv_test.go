package filter

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/testclock"
)

func TestMemKV(t *testing.T) {
	ctx := context.Background()
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	kv := NewMemKV(clk.Now)
	if n, err := kv.Incr(ctx, "c", 2, time.Minute); err != nil || n != 2 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	clk.Add(30 * time.Second)
	if n, _ := kv.Incr(ctx, "c", 1, time.Hour); n != 3 {
		t.Fatalf("second Incr = %d, want 3", n)
	}
	clk.Add(31 * time.Second) // the first ttl holds: an existing counter keeps its expiry
	if _, ok, _ := kv.Get(ctx, "c"); ok {
		t.Fatal("counter outlived its first ttl")
	}
	if err := kv.Set(ctx, "s", []byte("text"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Incr(ctx, "s", 1, 0); err == nil {
		t.Error("Incr on a non-number succeeded (the embedded store refuses it)")
	}
	if v, ok, _ := kv.Get(ctx, "s"); !ok || string(v) != "text" {
		t.Errorf("Get(s) = %q, %v", v, ok)
	}
	if err := kv.Del(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := kv.Get(ctx, "s"); ok {
		t.Error("Get after Del found the key")
	}
}
