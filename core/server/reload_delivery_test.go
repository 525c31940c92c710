package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/auth/dkimkey"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
)

// TestReloadDelivery: a reload moves outbound mail to another relay and
// starts signing it with a DKIM key added to the file; a DKIM key that does
// not load fails the reload, and mail keeps going where it went.
func TestReloadDelivery(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	oneAddr, twoAddr := reserveAddr(t), reserveAddr(t)
	one, two := startSink(t, oneAddr, false, nil), startSink(t, twoAddr, false, nil)
	key, err := dkimkey.Generate(dkimkey.Ed25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := dkimkey.MarshalPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "dkim.pem")
	if err := os.WriteFile(keyPath, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice.toml")
	write := func(relay, dkim string) {
		text := fmt.Sprintf(`hostname = "relay.test"
data_dir = %q
[smtp]
listen = [%q]
[submission]
listen = []
tls_listen = []
[queue]
min_backoff = "1s"
max_backoff = "2s"
[delivery]
relay_host = %q
relay_tls = "none"
%s`, filepath.Join(dir, "data"), addr, relay, dkim)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(oneAddr, "")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := servertest.Start(t, cfg, server.WithConfigFile(path))
	send := func(subject string) {
		servertest.MustSend(t, s.Addr, "a@example.org", []string{"x@remote.test"}, servertest.Message("a@example.org", "x@remote.test", subject, "x\r\n"))
	}
	send("one")
	waitSink(t, one, 1, 10*time.Second)

	write(twoAddr, fmt.Sprintf("[[dkim.key]]\ndomain = \"example.org\"\nselector = \"s1\"\nprivate_key = %q\n", keyPath))
	rep, err := s.Server.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.Changed) != "[delivery.relay_host dkim.key]" {
		t.Errorf("changed %v", rep.Changed)
	}
	send("two")
	got := waitSink(t, two, 1, 10*time.Second)
	if !bytes.Contains(got[0], []byte("DKIM-Signature:")) || !bytes.Contains(got[0], []byte("d=example.org")) {
		t.Errorf("mail after the reload not signed:\n%s", got[0])
	}

	if err := os.WriteFile(keyPath, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(oneAddr, fmt.Sprintf("[[dkim.key]]\ndomain = \"example.org\"\nselector = \"s1\"\nprivate_key = %q\n", keyPath))
	if _, err := s.Server.Reload(context.Background()); err == nil {
		t.Fatal("reload with a broken DKIM key succeeded")
	}
	send("three")
	waitSink(t, two, 2, 10*time.Second)
	if n := one.count(); n != 1 {
		t.Errorf("the first relay got %d messages after a failed reload, want 1", n)
	}
}
