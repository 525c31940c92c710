package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestConfigFlagAnywhere: --config (and -c, and --socket) may come before
// or after a command's arguments, and $SLUICE_CONFIG still works when it
// is left out; an explicit --config wins over the environment.
func TestConfigFlagAnywhere(t *testing.T) {
	dir := t.TempDir()
	addr := reserveAddr(t)
	// Outbound mail waits in the queue: its relay is down.
	cfgPath := procConfig(t, dir, addr, "", "\n[delivery]\nrelay_host = \""+reserveAddr(t)+"\"\n")
	other := filepath.Join(t.TempDir(), "other.toml")
	if err := os.WriteFile(other, []byte("data_dir = "+`"`+filepath.Join(t.TempDir(), "other")+`"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "data", "users")
	env := []string{"SLUICE_CONFIG=" + other}
	for _, tc := range []struct {
		args []string
		env  []string
		user string // then in the users file
	}{
		{[]string{"user", "add", "alice@localhost", "--config", cfgPath}, nil, "alice@localhost"},
		{[]string{"user", "add", "bob@localhost", "-c", cfgPath}, nil, "bob@localhost"},
		{[]string{"user", "add", "--config=" + cfgPath, "carol@localhost"}, nil, "carol@localhost"},
		{[]string{"user", "add", "dave@localhost", "--config", cfgPath}, env, "dave@localhost"},
		{[]string{"user", "add", "erin@localhost"}, []string{"SLUICE_CONFIG=" + cfgPath}, "erin@localhost"},
	} {
		r := runBin(t, "", nil, "secret-password\n", tc.env, tc.args...)
		if r.code != 0 {
			t.Errorf("sluice %s: exit %d\n%s", strings.Join(tc.args, " "), r.code, r.stderr)
			continue
		}
		b, _ := os.ReadFile(users)
		if !strings.Contains(string(b), tc.user+":") {
			t.Errorf("sluice %s: %s not in %s:\n%s", strings.Join(tc.args, " "), tc.user, users, b)
		}
	}
	if r := runBin(t, "", nil, "", nil, "user", "ls", "--config", cfgPath); r.code != 0 || !strings.Contains(r.stdout, "erin@localhost") {
		t.Errorf("user ls --config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, "", nil, "", nil, "user", "rm", "alice@localhost", "--config", cfgPath); r.code != 0 {
		t.Errorf("user rm NAME --config: exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(users); strings.Contains(string(b), "alice@localhost:") {
		t.Errorf("alice still in the users file after rm:\n%s", b)
	}

	// The queue commands, against the running server.
	startServe(t, cfgPath, addr, nil)
	id := servertest.MustSend(t, addr, "sender@localhost", []string{"nobody@remote.example"}, servertest.Message("sender@localhost", "nobody@remote.example", "held", "x\r\n"))
	if r := runBin(t, "", nil, "", nil, "queue", "hold", id, "--config", cfgPath); r.code != 0 {
		t.Fatalf("queue hold ID --config: exit %d\n%s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"queue", "show", id, "--config", cfgPath},
		{"queue", "show", id, "--socket", filepath.Join(dir, "data", "admin.sock")},
		{"queue", "ls", "--config", cfgPath},
	} {
		if r := runBin(t, "", nil, "", nil, args...); r.code != 0 || !strings.Contains(r.stdout, id) {
			t.Errorf("sluice %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if r := runBin(t, "", nil, "", nil, "config", "check", "--config", cfgPath); r.code != 0 {
		t.Errorf("config check --config: exit %d\n%s", r.code, r.stderr)
	}
}
