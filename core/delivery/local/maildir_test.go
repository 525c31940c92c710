package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// readFixture returns testdata/name.
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newMessage wraps body in a mail.Message.
func newMessage(body []byte) *mail.Message {
	return &mail.Message{
		Envelope: mail.Envelope{ID: "TESTID", From: "sender@example.org", Received: time.Now()},
		Body:     body,
	}
}

// mailFiles returns the contents of the files in dir/sub by name.
func mailFiles(t *testing.T, dir, sub string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// makeMaildir creates an empty Maildir at dir.
func makeMaildir(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaildirDeliversBytes: a message with CRLF and one with LF line
// endings are each stored as the same bytes with LF line endings: no CR
// anywhere in the file, the Return-Path and Delivered-To lines included.
func TestMaildirDeliversBytes(t *testing.T) {
	tests := []struct {
		fixture string
	}{
		{"message.eml"},
		{"message-lf.eml"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			root := t.TempDir()
			d := NewMaildir(MaildirOptions{Template: root + "/{domain}/{user}", Create: true})
			body := readFixture(t, tt.fixture)
			rcpts := []string{"Alice@Example.COM", "bob@example.com"}
			res := d.Deliver(context.Background(), newMessage(body), rcpts)
			if len(res) != len(rcpts) {
				t.Fatalf("got %d results, want %d", len(res), len(rcpts))
			}
			for i, user := range []string{"alice", "bob"} {
				r := res[i]
				if r.Rcpt != rcpts[i] || r.Status != mail.Sent || r.Reply.Enhanced.String() != "2.0.0" || r.Relay != "local" {
					t.Errorf("result %d = %+v, want sent 2.0.0 via local", i, r)
				}
				dir := filepath.Join(root, "example.com", user)
				files := mailFiles(t, dir, "new")
				if len(files) != 1 {
					t.Fatalf("%s: %d files in new/, want 1", user, len(files))
				}
				want := "Return-Path: <sender@example.org>\nDelivered-To: " + user + "@example.com\n" + strings.ReplaceAll(string(body), "\r\n", "\n")
				for name, got := range files {
					if i := strings.IndexByte(string(got), '\r'); i >= 0 {
						t.Errorf("%s: file %s has a CR at byte %d: %q", user, name, i, got)
					}
					if string(got) != want {
						t.Errorf("%s: file %s =\n%q\nwant\n%q", user, name, got, want)
					}
					if !strings.Contains(r.Reply.Text, name) {
						t.Errorf("result text %q does not name the file %s", r.Reply.Text, name)
					}
				}
				if n := len(mailFiles(t, dir, "tmp")); n != 0 {
					t.Errorf("%s: %d files left in tmp/", user, n)
				}
				if fi, err := os.Stat(filepath.Join(dir, "cur")); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: cur/ = %v, %v; want a 0700 directory", user, fi, err)
				}
			}
		})
	}
}

func TestMaildirNoCreate(t *testing.T) {
	root := t.TempDir()
	makeMaildir(t, filepath.Join(root, "example.com", "alice"))
	d := NewMaildir(MaildirOptions{Template: root + "/{domain}/{user}"})
	res := d.Deliver(context.Background(), newMessage([]byte("Subject: x\r\n\r\nhi\r\n")),
		[]string{"alice@example.com", "bob@example.com"})
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2", len(res))
	}
	if res[0].Status != mail.Sent {
		t.Errorf("alice: %+v, want sent", res[0])
	}
	if r := res[1]; r.Status != mail.Bounced || r.Reply.Enhanced.String() != "5.1.1" || r.Reply.Code != 550 ||
		r.Reply.Text != "mailbox unavailable: no such user" {
		t.Errorf("bob: %+v, want bounced 5.1.1", r)
	}
	if _, err := os.Stat(filepath.Join(root, "example.com", "bob")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bob's Maildir was created without Create: %v", err)
	}
}

func TestMaildirRejectsUnsafeNames(t *testing.T) {
	tests := []string{
		"../etc@example.com",
		"..@example.com",
		".hidden@example.com",
		"a..b@example.com",
		"a/b@example.com",
		`a\b@example.com`,
		"a\x00b@example.com",
		"@example.com",
		strings.Repeat("x", 65) + "@example.com",
		"alice@../../etc",
		"alice@",
		"alice@exa/mple.com",
		"no-domain",
	}
	for _, rcpt := range tests {
		t.Run(fmt.Sprintf("%q", rcpt), func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "mail")
			d := NewMaildir(MaildirOptions{Template: root + "/{domain}/{user}", Create: true})
			res := d.Deliver(context.Background(), newMessage([]byte("Subject: x\r\n\r\nhi\r\n")), []string{rcpt})
			if len(res) != 1 {
				t.Fatalf("got %d results, want 1", len(res))
			}
			if r := res[0]; r.Status != mail.Bounced || r.Reply.Enhanced.String() != "5.1.3" || r.Rcpt != rcpt {
				t.Errorf("result = %+v, want bounced 5.1.3", r)
			}
			entries, err := os.ReadDir(base)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("something was created under %s: %v", base, entries)
			}
		})
	}
	// The longest allowed local part still delivers.
	root := t.TempDir()
	d := NewMaildir(MaildirOptions{Template: root + "/{user}", Create: true})
	long := strings.Repeat("x", 64) + "@example.com"
	if r := d.Deliver(context.Background(), newMessage([]byte("\r\n")), []string{long}); r[0].Status != mail.Sent {
		t.Errorf("64-byte local part: %+v, want sent", r[0])
	}
}

func TestMaildirConcurrentUniqueNames(t *testing.T) {
	root := t.TempDir()
	d := NewMaildir(MaildirOptions{Template: root + "/{user}", Create: true})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", w, i)
				res := d.Deliver(context.Background(), newMessage([]byte(body)), []string{"alice@example.com"})
				if res[0].Status != mail.Sent {
					errs <- fmt.Sprintf("%d-%d: %+v", w, i, res[0])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	files := mailFiles(t, filepath.Join(root, "alice"), "new")
	if len(files) != workers*each {
		t.Fatalf("%d files in new/, want %d (a name was reused)", len(files), workers*each)
	}
	seen := make(map[string]bool)
	for _, b := range files {
		seen[string(b)] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct messages in new/, want %d", len(seen), workers*each)
	}
}

func TestMaildirUniqueNameFormat(t *testing.T) {
	d := NewMaildir(MaildirOptions{})
	d.host = "mx/1:2"
	d.pid = 42
	names := make(map[string]bool)
	for range 1000 {
		n := d.uniqueName()
		if names[n] {
			t.Fatalf("name %s repeated", n)
		}
		names[n] = true
		parts := strings.SplitN(n, ".", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[1], "M") || !strings.Contains(parts[1], "P42Q") {
			t.Fatalf("name %q is not SEC.MusecPpidQn.host", n)
		}
	}
	d2 := NewMaildir(MaildirOptions{})
	if strings.ContainsAny(d2.host, "/:") {
		t.Errorf("host part %q contains '/' or ':'", d2.host)
	}
}

func TestMaildirSync(t *testing.T) {
	t.Run("synced", func(t *testing.T) {
		root := t.TempDir()
		d := NewMaildir(MaildirOptions{Template: root + "/{user}", Create: true})
		var mu sync.Mutex
		var synced []string
		d.sync = func(f *os.File) error {
			mu.Lock()
			synced = append(synced, f.Name())
			mu.Unlock()
			return f.Sync()
		}
		res := d.Deliver(context.Background(), newMessage([]byte("Subject: x\r\n\r\nhi\r\n")), []string{"alice@example.com"})
		if res[0].Status != mail.Sent {
			t.Fatalf("result = %+v, want sent", res[0])
		}
		dir := filepath.Join(root, "alice")
		var file, newDir bool
		for _, p := range synced {
			file = file || filepath.Dir(p) == filepath.Join(dir, "tmp")
			newDir = newDir || p == filepath.Join(dir, "new")
		}
		if !file || !newDir {
			t.Errorf("synced %v; want the file in tmp/ and the new/ directory", synced)
		}
	})
	t.Run("sync fails", func(t *testing.T) {
		root := t.TempDir()
		makeMaildir(t, filepath.Join(root, "alice"))
		d := NewMaildir(MaildirOptions{Template: root + "/{user}"})
		d.sync = func(*os.File) error { return errors.New("input/output error") }
		res := d.Deliver(context.Background(), newMessage([]byte("Subject: x\r\n\r\nhi\r\n")), []string{"alice@example.com"})
		if r := res[0]; r.Status != mail.Deferred || r.Reply.Enhanced.String() != "4.3.0" || !strings.Contains(r.Reply.Text, "input/output error") {
			t.Errorf("result = %+v, want deferred 4.3.0 with the error", r)
		}
		for _, sub := range []string{"new", "tmp"} {
			if n := len(mailFiles(t, filepath.Join(root, "alice"), sub)); n != 0 {
				t.Errorf("%d files left in %s/ after a failed sync", n, sub)
			}
		}
	})
}

func TestMaildirFilesystemErrorDefers(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "alice")
	makeMaildir(t, dir)
	// tmp/ is a file: the Maildir is broken, which is the operator's to fix.
	if err := os.Remove(filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := NewMaildir(MaildirOptions{Template: root + "/{user}", Create: true})
	res := d.Deliver(context.Background(), newMessage([]byte("\r\n")), []string{"alice@example.com"})
	if r := res[0]; r.Status != mail.Deferred || r.Reply.Enhanced[0] != 4 || !strings.Contains(r.Reply.Text, "tmp") {
		t.Errorf("result = %+v, want deferred naming tmp", r)
	}
}

func TestMaildirSameMailboxOnce(t *testing.T) {
	root := t.TempDir()
	d := NewMaildir(MaildirOptions{Template: root + "/{domain}/{user}", Create: true})
	rcpts := []string{"Alice@example.com", "alice@EXAMPLE.com", "alice@example.com."}
	res := d.Deliver(context.Background(), newMessage([]byte("\r\n")), rcpts)
	for i, r := range res {
		if r.Status != mail.Sent || r.Rcpt != rcpts[i] {
			t.Errorf("result %d = %+v, want sent for %s", i, r, rcpts[i])
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Errorf("domain directories %v, want only example.com", ents)
	}
	if n := len(mailFiles(t, filepath.Join(root, "example.com", "alice"), "new")); n != 1 {
		t.Errorf("%d copies delivered, want 1", n)
	}
}

func TestMaildirCancelledDefers(t *testing.T) {
	root := t.TempDir()
	d := NewMaildir(MaildirOptions{Template: root + "/{user}", Create: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := d.Deliver(ctx, newMessage([]byte("\r\n")), []string{"alice@example.com"})
	if r := res[0]; r.Status != mail.Deferred {
		t.Errorf("result = %+v, want deferred", r)
	}
	if _, err := os.Stat(filepath.Join(root, "alice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delivered despite a cancelled context: %v", err)
	}
}
