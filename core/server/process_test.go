package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is `sluice serve` running as a separate process.
type proc struct {
	cmd *exec.Cmd
	// stderr is the file its standard error (the log) goes to.
	stderr string
	done   chan error
}

// procConfig writes a minimal configuration for a process test: SMTP on
// addr, no submission, data in dir/data, plus extra lines at the top level
// and in sections (extra is appended verbatim). It returns the file's path.
func procConfig(t *testing.T, dir, addr, top, extra string) string {
	t.Helper()
	conf := fmt.Sprintf(`hostname = "proc.test"
data_dir = %q
local_domains = ["localhost"]
%s
[smtp]
listen = [%q]

[submission]
listen = []
tls_listen = []

[local]
maildir = "{data_dir}/mail/{domain}/{user}"
%s`, filepath.Join(dir, "data"), top, addr, extra)
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServe runs `sluice serve --config cfgPath args…` with env added to
// the environment, and waits until addr accepts connections. Standard
// error goes to cfgPath+".stderr", standard output to cfgPath+".stdout".
// The process is killed at the end of the test if it is still running.
func startServe(t *testing.T, cfgPath, addr string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(sluiceBin, append([]string{"serve", "--config", cfgPath}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, stderr: cfgPath + ".stderr", done: make(chan error, 1)}
	errf, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	outf, err := os.Create(cfgPath + ".stdout")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { errf.Close(); outf.Close() })
	cmd.Stdout, cmd.Stderr = outf, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("sluice serve exited (%v) before listening on %s:\n%s", err, addr, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice serve did not listen on %s within 30s:\n%s", addr, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// log returns what the process wrote to standard error so far.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.stderr)
	return string(b)
}

// stop sends SIGTERM and waits for the process to exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("sluice serve exited with %v after SIGTERM:\n%s", err, p.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("sluice serve still running 30s after SIGTERM:\n%s", p.log())
	}
}

// result is how a run of the binary ended.
type result struct {
	code           int // exit status
	stdout, stderr string
}

// runBin runs the sluice binary (or bin, when not "") with stdin, env
// added to the environment and, when cred is not nil, as another user.
func runBin(t *testing.T, bin string, cred *syscall.Credential, stdin string, env []string, args ...string) result {
	t.Helper()
	if bin == "" {
		bin = sluiceBin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return result{0, out.String(), errb.String()}
	case errors.As(err, &ee) && ee.Exited():
		return result{ee.ExitCode(), out.String(), errb.String()}
	default:
		t.Fatalf("running %s %v: %v\n%s", bin, args, err, errb.String())
		return result{}
	}
}
