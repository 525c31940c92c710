package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/kvstore"
	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/servertest"
)

// blockAlice fails alice's logins until the per-user limit blocks her
// everywhere (authThrottleServer's limits: 3 a login, 5 a user).
func blockAlice(t *testing.T, addr string) {
	t.Helper()
	for i, st := range []struct {
		from string
		want int
	}{{"127.0.0.5", 535}, {"127.0.0.5", 535}, {"127.0.0.5", 421}, {"127.0.0.6", 535}, {"127.0.0.6", 421}} {
		if got := login(t, addr, st.from, "alice@localhost", "guess"); got != st.want {
			t.Fatalf("failure %d from %s: %d, want %d", i+1, st.from, got, st.want)
		}
	}
}

// movedLine is the log line of a migration out of the queue's database.
const movedLine = "moved the plugins' KV records"

func loggedMove(s *servertest.Server) bool {
	for _, l := range s.Logs() {
		if strings.Contains(l, movedLine) {
			return true
		}
	}
	return false
}

// queueKVKeys lists the store's records left in the queue's database.
func queueKVKeys(t *testing.T, dataDir string) []string {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Options{Dir: filepath.Join(dataDir, "queue")})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	keys, err := kvstore.New(q.DB()).Keys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestKVOwnDatabase: on Badger the shared state (here the AUTH throttle's
// counts, which share the plugins' store) lives in data_dir/kv, created at
// the first start and reopened at the next, where the counts still block;
// a data_dir of an earlier version, whose counts are in the queue's
// database, has them moved into data_dir/kv at its first start (logged
// once, the queue's database left without them), and they still block.
func TestKVOwnDatabase(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	inDir := func(c *config.Config) { c.DataDir = dataDir }

	s, addr := authThrottleServer(t, inDir)
	blockAlice(t, addr)
	s.Stop()
	if _, err := os.Stat(filepath.Join(dataDir, "kv", "MANIFEST")); err != nil {
		t.Fatalf("no KV database in data_dir/kv: %v", err)
	}
	if keys := queueKVKeys(t, dataDir); len(keys) != 0 {
		t.Fatalf("the queue's database holds KV records %q", keys)
	}

	s, addr = authThrottleServer(t, inDir)
	if got := login(t, addr, "127.0.0.7", "alice@localhost", "alice-pw"); got != 421 {
		t.Errorf("alice after a restart: %d, want 421 (still blocked)", got)
	}
	if got := login(t, addr, "127.0.0.7", "bob@localhost", "bob-pw"); got != 235 {
		t.Errorf("bob after a restart: %d, want 235", got)
	}
	s.Stop()
	if loggedMove(s) {
		t.Error("a restart logged a migration with nothing to move")
	}

	// Put the records back where an earlier version kept them.
	kvDB, err := badger.Open(badger.DefaultOptions(filepath.Join(dataDir, "kv")).WithValueThreshold(64 << 10).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(ctx, queue.Options{Dir: filepath.Join(dataDir, "queue")})
	if err != nil {
		t.Fatal(err)
	}
	n, err := kvstore.Migrate(ctx, kvDB, kvstore.New(q.DB()))
	if err != nil || n == 0 {
		t.Fatalf("moving the records back into the queue's database: %d, %v", n, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := kvDB.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dataDir, "kv")); err != nil {
		t.Fatal(err)
	}

	s, addr = authThrottleServer(t, inDir)
	if got := login(t, addr, "127.0.0.8", "alice@localhost", "alice-pw"); got != 421 {
		t.Errorf("alice after the migration: %d, want 421 (still blocked)", got)
	}
	s.Stop()
	if !loggedMove(s) {
		t.Errorf("the first start over the old layout did not log %q", movedLine)
	}
	if keys := queueKVKeys(t, dataDir); len(keys) != 0 {
		t.Errorf("the queue's database still holds KV records after the migration: %q", keys)
	}

	s, addr = authThrottleServer(t, inDir)
	if got := login(t, addr, "127.0.0.9", "alice@localhost", "alice-pw"); got != 421 {
		t.Errorf("alice at the start after the migration: %d, want 421", got)
	}
	s.Stop()
	if loggedMove(s) {
		t.Error("the start after the migration moved records again")
	}
}
