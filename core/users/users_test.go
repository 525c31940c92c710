package users

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not an argon2id PHC string", h)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("battery staple"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hash, pw string
		ok       bool
	}{
		{h, "correct horse", true},
		{h, "correct horse ", false},
		{h, "", false},
		{string(bc), "battery staple", true},
		{string(bc), "battery", false},
	} {
		got, err := Verify(tc.hash, tc.pw)
		if err != nil || got != tc.ok {
			t.Errorf("Verify(%.20s…, %q) = %v, %v; want %v", tc.hash, tc.pw, got, err, tc.ok)
		}
	}
}

func TestParseBadLines(t *testing.T) {
	good, _ := Hash("pw")
	in := strings.Join([]string{
		"# comment",
		"alice@example.com:" + good,
		"",
		"no-colon-here",
		"bob:plaintext",
		"carol:$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA",
		"alice@example.com:" + good,
		"da ve:" + good,
		"erin:$2b$10$notreallyabcrypthash",
	}, "\n")
	users, errs := Parse(strings.NewReader(in), "users")
	if !slices.Equal(sortedKeys(users), []string{"alice@example.com"}) {
		t.Errorf("users %v, want only alice@example.com", sortedKeys(users))
	}
	var lines []int
	for _, e := range errs {
		var le *LineError
		if !errors.As(e, &le) || le.File != "users" {
			t.Errorf("error %v is not a LineError for file users", e)
			continue
		}
		if !strings.HasPrefix(e.Error(), "users:") {
			t.Errorf("error %q does not start with file:line", e)
		}
		lines = append(lines, le.Line)
	}
	if want := []int{4, 5, 6, 7, 8, 9}; !slices.Equal(lines, want) {
		t.Errorf("bad lines %v, want %v", lines, want)
	}
}

func TestFileReloadAndEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "users")
	var logs bytes.Buffer
	f, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Authenticate("alice", "pw1") {
		t.Error("login succeeded with no users file")
	}
	if err := Set(path, "alice", "pw1"); err != nil {
		t.Fatal(err)
	}
	if !f.Authenticate("alice", "pw1") || f.Authenticate("alice", "pw2") {
		t.Error("new user not picked up, or wrong password accepted")
	}
	if err := Set(path, "alice", "pw2"); err != nil {
		t.Fatal(err)
	}
	if err := Set(path, "bob@example.com", "x"); err != nil {
		t.Fatal(err)
	}
	if f.Authenticate("alice", "pw1") || !f.Authenticate("alice", "pw2") {
		t.Error("changed password not picked up")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode: %v %v, want 0600", fi.Mode(), err)
	}
	// A bad line added by hand is reported with file:line and skipped.
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(data, "broken line\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := f.Users(); !slices.Equal(got, []string{"alice", "bob@example.com"}) {
		t.Errorf("Users() = %v", got)
	}
	if !strings.Contains(logs.String(), path+":3:") {
		t.Errorf("bad line not logged with file:line; logs:\n%s", logs.String())
	}
	if err := Remove(path, "alice"); err != nil {
		t.Fatal(err)
	}
	if f.Authenticate("alice", "pw2") {
		t.Error("removed user can still log in")
	}
	if err := Remove(path, "alice"); !errors.Is(err, ErrNoUser) {
		t.Errorf("removing a missing user: %v, want ErrNoUser", err)
	}
	names, bad, err := List(path)
	if err != nil || !slices.Equal(names, []string{"bob@example.com"}) || len(bad) != 1 {
		t.Errorf("List = %v, %v, %v", names, bad, err)
	}
	if err := Set(path, "x:y", "pw"); err == nil {
		t.Error("a name with ':' was accepted")
	}
}
