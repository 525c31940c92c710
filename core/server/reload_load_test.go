package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
)

// TestReloadUnderLoad: reloads that replace every component — the SMTP
// configuration, the filter host, the DNS resolver, the addressing maps,
// the router — while messages flow lose none and answer each reload with
// what changed (run with -race for the swaps).
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	path := filepath.Join(dir, "sluice.toml")
	write := func(i int) {
		plugins := `"{data_dir}/plugins"`
		if i%2 == 1 {
			plugins = `""`
		}
		text := fmt.Sprintf(`hostname = "load.test"
data_dir = %q
local_domains = ["localhost", "d%d.test"]
[smtp]
listen = [%q]
max_recipients = %d
[submission]
listen = []
tls_listen = []
[local]
maildir = "{data_dir}/mail/{domain}/{user}"
[plugins]
dir = %s
[dns]
timeout = "%ds"
`, filepath.Join(dir, "data"), i, addr, 10+i, plugins, 1+i%3)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, cfg, server.WithConfigFile(path))

	var (
		mu    sync.Mutex
		acked int
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := servertest.Message("sender@localhost", "alice@localhost", fmt.Sprintf("m%d-%d", w, i), "x\r\n")
				if _, err := servertest.Send(addr, "sender@localhost", []string{"alice@localhost"}, msg); err != nil {
					t.Errorf("send during reloads: %v", err)
					return
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		})
	}
	for i := 1; i <= 6; i++ {
		write(i)
		rep, err := s.Server.Reload(context.Background())
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if len(rep.Changed) < 4 {
			t.Errorf("reload %d changed only %v", i, rep.Changed)
		}
		if got := s.Server.Config().SMTP.MaxRecipients; got != 10+i {
			t.Errorf("after reload %d max_recipients %d, want %d", i, got, 10+i)
		}
		// some messages through each configuration
		mu.Lock()
		want := acked + 3
		mu.Unlock()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := acked
			mu.Unlock()
			if n >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no message acknowledged within 10s after reload %d", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if acked < 10 {
		t.Fatalf("only %d messages sent during the reloads", acked)
	}
	servertest.WaitFiles(t, filepath.Join(dir, "data", "mail", "localhost", "alice"), acked, 30*time.Second)
}
