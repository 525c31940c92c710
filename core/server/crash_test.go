package server_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// startProcess runs `sluice serve --config path` and waits for its SMTP port.
func startProcess(t *testing.T, cfgPath, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(sluiceBin, "serve", "--config", cfgPath)
	logf, err := os.OpenFile(cfgPath+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(cfgPath + ".log")
			t.Fatalf("sluice did not listen on %s within 20s:\n%s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKill9UnderLoad: every message acknowledged with 250 before the process
// is killed with SIGKILL is delivered after a restart.
func TestKill9UnderLoad(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	cfgPath := filepath.Join(dir, "sluice.toml")
	conf := fmt.Sprintf(`hostname = "crash.test"
data_dir = %q
local_domains = ["localhost"]

[smtp]
listen = [%q]

[submission]
listen = []
tls_listen = []

[local]
maildir = "{data_dir}/mail/{domain}/{user}"
`, filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProcess(t, cfgPath, addr)

	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("tok-%d-%d", w, i)
				if _, err := servertest.Send(addr, "load@localhost", []string{"alice@localhost"}, servertest.Message("load@localhost", "alice@localhost", tok, strings.Repeat("payload line\r\n", 200))); err != nil {
					return // the server died under us
				}
				mu.Lock()
				acked = append(acked, tok)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d messages acknowledged before the kill; the load did not run", len(acked))
	}

	startProcess(t, cfgPath, addr)
	box := filepath.Join(dir, "data", "mail", "localhost", "alice")
	deadline := time.Now().Add(60 * time.Second)
	var missing []string
	for {
		have := map[string]bool{}
		for _, f := range servertest.MaildirFiles(box) {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if i := strings.Index(string(b), "Subject: "); i >= 0 {
				subj := string(b[i+len("Subject: "):])
				have[subj[:strings.IndexByte(subj, '\n')]] = true // Maildir files have LF line endings
			}
		}
		missing = missing[:0]
		for _, tok := range acked {
			if !have[tok] {
				missing = append(missing, tok)
			}
		}
		if len(missing) == 0 {
			t.Logf("%d acknowledged messages, all delivered after kill -9 and restart", len(acked))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages lost after kill -9, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
		}
		time.Sleep(200 * time.Millisecond)
	}
}
