package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testca"
)

func TestKVConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "redis.pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testca.New(t, "redis CA").WriteCA(t, dir)
	tests := []struct {
		name, text string
		// want is a substring of the error ("" for none).
		want string
	}{
		{"default", "", ""},
		{"redis", "[kv]\nbackend = \"redis\"\nredis = [\"10.0.0.5:6379\"]\ntimeout = \"20ms\"\non_error = \"fail_closed\"\npassword_file = \"" + pw + "\"\n", ""},
		{"cluster", "[kv]\nbackend = \"redis\"\ncluster = true\nredis = [\"a:7000\", \"b:7001\"]\n", ""},
		{"bad backend", "[kv]\nbackend = \"etcd\"\n", "cfg.toml:2: kv.backend: \"etcd\""},
		{"empty redis", "[kv]\nbackend = \"redis\"\nredis = []\n", "cfg.toml:3: kv.redis: is empty"},
		{"several without cluster", "[kv]\nbackend = \"redis\"\nredis = [\"a:1\", \"b:2\"]\n", "kv.redis: lists 2 addresses but kv.cluster is false"},
		{"bad address", "[kv]\nbackend = \"redis\"\nredis = [\"nohost\"]\n", "kv.redis[0]: bad address"},
		{"missing password file", "[kv]\nbackend = \"redis\"\npassword_file = \"" + filepath.Join(dir, "none") + "\"\n", "cfg.toml:3: kv.password_file:"},
		{"brace prefix", "[kv]\nbackend = \"redis\"\nprefix = \"a{b}\"\n", "kv.prefix:"},
		{"zero timeout", "[kv]\nbackend = \"redis\"\ntimeout = \"0s\"\n", "cfg.toml:3: kv.timeout: must be longer than zero"},
		{"long timeout", "[kv]\nbackend = \"redis\"\ntimeout = \"1m\"\n", "kv.timeout: 1m0s is longer"},
		{"node id", "node_id = \"mx-2.a_b\"\n", ""},
		{"bad node id", "node_id = \"mx 2\"\n", "cfg.toml:1: node_id: \"mx 2\" has ' '"},
		{"tls ca", "[kv]\nbackend = \"redis\"\nredis = [\"10.0.0.5:6380\"]\ntls = true\ntls_ca_file = \"" + ca + "\"\n", ""},
		{"ca without tls", "[kv]\nbackend = \"redis\"\nredis = [\"10.0.0.5:6380\"]\ntls_ca_file = \"" + ca + "\"\n", "cfg.toml:4: kv.tls_ca_file: is set but kv.tls is false"},
		{"ca not pem", "[kv]\nbackend = \"redis\"\nredis = [\"10.0.0.5:6380\"]\ntls = true\ntls_ca_file = \"" + pw + "\"\n", "cfg.toml:5: kv.tls_ca_file: " + pw + " holds no PEM certificate"},
		{"unix socket", "[kv]\nbackend = \"redis\"\nredis = [\"unix:/run/redis/redis.sock\"]\n", ""},
		{"relative socket", "[kv]\nbackend = \"redis\"\nredis = [\"unix:redis.sock\"]\n", "cfg.toml:3: kv.redis[0]: socket \"unix:redis.sock\": the path must be absolute"},
		{"socket in a cluster", "[kv]\nbackend = \"redis\"\ncluster = true\nredis = [\"10.0.0.5:7000\", \"unix:/run/redis/redis.sock\"]\n", "cfg.toml:4: kv.redis[1]: \"unix:/run/redis/redis.sock\" is a Unix domain socket but kv.cluster is true"},
		{"socket with tls", "[kv]\nbackend = \"redis\"\nredis = [\"unix:/run/redis/redis.sock\"]\ntls = true\n", "cfg.toml:3: kv.redis[0]: \"unix:/run/redis/redis.sock\" is a Unix domain socket but kv.tls is true"},
		{"bad on_error", "[kv]\nbackend = \"redis\"\non_error = \"ignore\"\n", "cfg.toml:3: kv.on_error: \"ignore\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("cfg.toml", []byte(tt.text))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if c.KV.Timeout.D() <= 0 || c.KV.Timeout.D() > time.Second {
					t.Errorf("timeout %v", c.KV.Timeout.D())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error %v; want it to contain %q", err, tt.want)
			}
		})
	}
	if !NeedsRestart("kv.backend") {
		t.Error("kv.backend does not need a restart")
	}
}
