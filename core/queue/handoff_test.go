package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/testclock"
)

// crashChildEnv names the queue directory of the child process
// TestKillLeasedAtEnqueue starts (TestMain runs crashChild instead of the
// tests when it is set).
const crashChildEnv = "SLUICE_QUEUE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		os.Exit(1) // crashChild waits to be killed
	}
	os.Exit(m.Run())
}

// leaseState reports whether id has a lease and whether it has a
// schedule entry.
func leaseState(q *Queue, id string) (lease, sched bool, err error) {
	err = q.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(leaseKey(id))
		lease = err == nil
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSched)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if _, sid, ok := parseSchedKey(it.Item().Key()); ok && sid == id {
				sched = true
			}
		}
		return nil
	})
	return lease, sched, err
}

// handingOff reports whether Run has started leasing fresh messages at
// enqueue.
func handingOff(q *Queue) bool {
	q.handMu.Lock()
	defer q.handMu.Unlock()
	return q.handOn
}

// handingQueue opens a queue with testOptions (changed by edit) whose
// deliveries wait for b.finish, starts Run (done reports its end) and
// waits until Run leases at enqueue.
func handingQueue(t *testing.T, c *testclock.Clock, edit func(*Options)) (q *Queue, b *blockingDeliverer, opts Options, done <-chan error) {
	t.Helper()
	opts = testOptions(t, t.TempDir(), c)
	edit(&opts)
	b = &blockingDeliverer{started: make(chan string, 8), finish: make(chan bool)}
	opts.Deliverer = b
	q = openQueue(t, opts)
	done = startRun(t, q)
	eventually(t, "Run leasing at enqueue", func() bool { return handingOff(q) })
	return q, b, opts, done
}

// crashChild runs a queue in dir with one worker whose delivery never
// ends, enqueues three messages (the first goes to the worker, the others
// wait for it, leased at enqueue), prints "queued ID" for each and
// "ready", and waits to be killed.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(1)
	}
	started := make(chan string, 3)
	q, err := Open(context.Background(), Options{
		Dir:       dir,
		Hostname:  "mx.test",
		Workers:   1,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Deliverer: &blockingDeliverer{started: started, finish: make(chan bool)},
	})
	if err != nil {
		fail(err)
	}
	go q.Run(context.Background())
	// No testing.T in the child: poll with a deadline of its own.
	for deadline := time.Now().Add(20 * time.Second); !handingOff(q); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			fail(errors.New("Run did not start leasing at enqueue within 20 s"))
		}
	}
	var ids []string
	for i := range 3 {
		env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: fmt.Sprintf("r%d@dst.test", i)}}}
		id, err := q.Enqueue(context.Background(), env, []byte("Subject: crash\r\n\r\nbody\r\n"))
		if err != nil {
			fail(err)
		}
		ids = append(ids, id)
		fmt.Println("queued", id)
	}
	if got := <-started; got != ids[0] {
		fail(fmt.Errorf("delivering %s, want %s", got, ids[0]))
	}
	for _, id := range ids {
		lease, sched, err := leaseState(q, id)
		if err != nil {
			fail(err)
		}
		if !lease || sched {
			fail(fmt.Errorf("%s: lease %v, schedule entry %v; want leased at enqueue", id, lease, sched))
		}
	}
	fmt.Println("ready")
	select {}
}

// TestKillLeasedAtEnqueue: a process killed (SIGKILL) while messages it
// leased at enqueue are being delivered or wait for a worker loses none of
// them: the next start delivers each.
func TestKillLeasedAtEnqueue(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var ids []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "queued" {
			ids = append(ids, f[1])
			continue
		}
		if sc.Text() != "ready" {
			t.Fatalf("child: %s", sc.Text())
		}
		break
	}
	if len(ids) != 3 {
		t.Fatalf("child queued %v and ended (%v)", ids, sc.Err())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	opts := testOptions(t, dir, newClock())
	opts.Now = nil // the child's messages were received at the real time
	checkRecovered(t, opts, ids)
	d := restartDelivering(t, nil, opts)
	for _, id := range ids {
		if n := callsFor(d, id); n != 1 {
			t.Errorf("%s delivered %d times after the restart, want once", id, n)
		}
	}
}

// TestAdminWhileLeasedAtEnqueue: a message leased at enqueue and waiting
// for a worker obeys the administrator as a scheduled one does: held, it
// is not delivered, keeps its hold expiry and bounces at it; removed, it
// is not delivered; held and released, it is delivered once.
func TestAdminWhileLeasedAtEnqueue(t *testing.T) {
	c := newClock()
	q, b, opts, _ := handingQueue(t, c, func(o *Options) { o.Workers, o.HoldLifetime = 1, 48*time.Hour })
	ctx := context.Background()

	first := enqueue(t, q, "a@src.test", "first@dst.test")
	if got := <-b.started; got != first {
		t.Fatalf("delivering %s, want %s", got, first)
	}
	held := enqueue(t, q, "a@src.test", "held@dst.test")
	removed := enqueue(t, q, "a@src.test", "removed@dst.test")
	released := enqueue(t, q, "a@src.test", "released@dst.test")
	for _, id := range []string{held, removed, released} {
		lease, sched, err := leaseState(q, id)
		if err != nil {
			t.Fatal(err)
		}
		if !lease || sched {
			t.Fatalf("%s: lease %v, schedule entry %v; want leased at enqueue", id, lease, sched)
		}
	}
	if err := q.Hold(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := q.Remove(ctx, removed); err != nil {
		t.Fatal(err)
	}
	if err := q.Hold(ctx, released); err != nil {
		t.Fatal(err)
	}
	if err := q.Release(ctx, released); err != nil {
		t.Fatal(err)
	}

	b.finish <- true // first: the worker goes on to the others
	if got := <-b.started; got != released {
		t.Fatalf("delivering %s next, want only %s (held %s, removed %s)", got, released, held, removed)
	}
	b.finish <- true
	eventually(t, "only the held message left, not leased", func() bool {
		envs := list(t, q)
		if len(envs) != 1 || envs[0].ID != held {
			return false
		}
		lease, _, err := leaseState(q, held)
		return err == nil && !lease
	})
	if env := envOf(t, q, held); State(env) != StateHeld || env.HoldReason != "held by the administrator" || !env.NextAttempt.Equal(env.HeldAt.Add(opts.HoldLifetime)) {
		t.Errorf("held message %+v, want held by the administrator until its hold expiry", env)
	}
	if lease, _, _ := leaseState(q, removed); lease {
		t.Errorf("removed message %s still leased", removed)
	}
	checkIndex(t, q, "held, removed and released while leased at enqueue")

	// Its hold expires: it bounces to the sender, with a DSN.
	c.Add(49 * time.Hour)
	q.kick()
	dsnID := <-b.started
	if dsnID == held {
		t.Fatalf("held message %s delivered at its hold expiry", held)
	}
	m, err := q.Get(ctx, dsnID)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "" || len(m.Rcpts) != 1 || m.Rcpts[0].Addr != "a@src.test" || !strings.Contains(string(m.Body), "not released within 48h0m0s") || !strings.Contains(string(m.Body), "held@dst.test") {
		t.Errorf("delivering %s from %q to %v, want the hold expiry's DSN for held@dst.test to a@src.test:\n%s", dsnID, m.From, m.Rcpts, m.Body)
	}
	b.finish <- true
	eventually(t, "queue empty after the hold expiry", func() bool { return len(list(t, q)) == 0 })
}

// TestDrainUnleasesHanded: messages leased at enqueue and still waiting
// for a worker when a drain stops the scheduler are due again at once,
// not leased, and the next start delivers them.
func TestDrainUnleasesHanded(t *testing.T) {
	q, b, opts, done := handingQueue(t, newClock(), func(o *Options) { o.Workers = 1 })
	first := enqueue(t, q, "a@src.test", "first@dst.test")
	<-b.started
	waiting := []string{enqueue(t, q, "a@src.test", "w1@dst.test"), enqueue(t, q, "a@src.test", "w2@dst.test")}
	ch := drainAsync(q, time.Minute)
	eventually(t, "leasing stopped", q.leasingStopped.Load)
	b.finish <- true
	if st := <-ch; st != (DrainStats{Finished: 1}) {
		t.Errorf("DrainStats %+v, want 1 finished", st)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	for _, id := range waiting {
		lease, sched, err := leaseState(q, id)
		if err != nil {
			t.Fatal(err)
		}
		if lease || !sched || leased(t, q, id) {
			t.Errorf("%s after the drain: lease %v, schedule entry %v; want due now, not leased", id, lease, sched)
		}
	}

	d := restartDelivering(t, q, opts)
	if calls := d.Calls(); len(calls) != 2 || callsFor(d, first) != 0 {
		t.Errorf("calls after restart %v, want one each for %v", calls, waiting)
	}
}

// TestHoldDuringDeliveryLeasedAtEnqueue: a message leased at enqueue and
// held by the administrator while its delivery runs is recorded as held:
// a deferred recipient waits for the release, not for a retry.
func TestHoldDuringDeliveryLeasedAtEnqueue(t *testing.T) {
	q, b, _, _ := handingQueue(t, newClock(), func(*Options) {})
	id := enqueue(t, q, "a@src.test", "r@dst.test")
	<-b.started
	if err := q.Hold(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	b.finish <- false // deferred
	eventually(t, "the attempt recorded", func() bool {
		env := envOf(t, q, id)
		lease, _, err := leaseState(q, id)
		return env != nil && env.Rcpts[0].Attempts == 1 && err == nil && !lease
	})
	env := envOf(t, q, id)
	if State(env) != StateHeld {
		t.Errorf("after the attempt: %s (%+v), want held", State(env), env)
	}
	if _, sched, _ := leaseState(q, id); sched {
		t.Errorf("held message %s scheduled for a retry", id)
	}
	checkIndex(t, q, "held during its delivery")
	if got, _ := pageAll(t, q, ListOptions{State: StateHeld}); len(got) != 1 || got[0] != id {
		t.Errorf("held: listed %v, want [%s]", got, id)
	}
}

// TestBodyNotKeptLeasedAtEnqueue: a message leased at enqueue whose body
// is too large to keep in memory is delivered with its body read back,
// and one small enough with the body it was given.
func TestBodyNotKeptLeasedAtEnqueue(t *testing.T) {
	opts := testOptions(t, t.TempDir(), newClock())
	d := &fakeDeliverer{fn: sendAll}
	opts.Deliverer = d
	q := openQueue(t, opts)
	run(t, q)
	eventually(t, "Run leasing at enqueue", func() bool { return handingOff(q) })
	large := "Subject: large\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", handBodyMax/18+1)
	small := "Subject: small\r\n\r\nhello\r\n"
	want := map[string]string{} // by queue ID
	for _, body := range []string{large, small} {
		env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "r@dst.test"}}}
		id, err := q.Enqueue(context.Background(), env, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		want[id] = body
	}
	eventually(t, "both delivered", func() bool { return len(d.Calls()) == 2 })
	for _, c := range d.Calls() {
		if c.Body != want[c.ID] {
			t.Errorf("delivered %s with %d bytes %.40q…, want %d bytes %.40q…", c.ID, len(c.Body), c.Body, len(want[c.ID]), want[c.ID])
		}
	}
}
