// Package users is the submission users file: one "user:hash" a line,
// the hash in bcrypt or argon2id (PHC string) form. A File re-reads itself
// when it changes on disk; Add and Remove edit it atomically for
// `sluice user`.
package users

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// File is a users file, re-read when it changes. It is safe for
// concurrent use.
type File struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex
	stamp stamp
	users map[string]string // user → hash
	dummy string            // a hash to verify against for unknown users
}

// stamp identifies one version of the file.
type stamp struct {
	fi   os.FileInfo
	mod  time.Time
	size int64
}

func (a stamp) same(b stamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.mod.Equal(b.mod) && a.size == b.size
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{fi: fi, mod: fi.ModTime(), size: fi.Size()}
}

// Open reads the users file at path. A missing file is an empty one (every
// login fails until `sluice user add` creates it); bad lines are logged
// with file:line and skipped.
func Open(path string, log *slog.Logger) (*File, error) {
	if log == nil {
		log = slog.Default()
	}
	f := &File{path: path, log: log}
	if err := f.reload(); err != nil {
		return nil, err
	}
	if len(f.users) == 0 {
		log.Info("users: no submission users yet; add one with `sluice user add NAME`", "file", path)
	}
	return f, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// reload reads the file if it changed since the last read.
func (f *File) reload() error {
	st := stampOf(f.path)
	if f.users != nil && st.same(f.stamp) {
		return nil
	}
	f.stamp = st
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		f.users = map[string]string{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("users: reading %s: %w", f.path, err)
	}
	users, errs := Parse(bytes.NewReader(data), f.path)
	for _, e := range errs {
		f.log.Error("users: bad line skipped", "err", e)
	}
	if f.users != nil {
		f.log.Info("users: file reloaded", "file", f.path, "users", len(users))
	}
	f.users = users
	return nil
}

// Users returns the user names, sorted.
func (f *File) Users() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(); err != nil {
		f.log.Error("users: reload failed, keeping the previous users", "err", err)
	}
	return sortedKeys(f.users)
}

// Authenticate reports whether password is user's. It re-reads the file
// first when it changed. Unknown users cost as much time as known ones.
func (f *File) Authenticate(user, password string) bool {
	f.mu.Lock()
	if err := f.reload(); err != nil {
		f.log.Error("users: reload failed, keeping the previous users", "err", err)
	}
	hash, ok := f.users[user]
	if !ok {
		if f.dummy == "" {
			f.dummy, _ = Hash("not a password")
		}
		hash = f.dummy
	}
	f.mu.Unlock()
	good, err := Verify(hash, password)
	if err != nil {
		f.log.Error("users: cannot check password", "file", f.path, "user", user, "err", err)
		return false
	}
	return ok && good
}

// LineError is a bad line of a users file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse reads users file lines ("user:hash"; blank lines and lines
// starting with '#' are ignored). Bad lines are returned as *LineError
// naming name and the line, and skipped.
func Parse(r io.Reader, name string) (map[string]string, []error) {
	users := map[string]string{}
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, &LineError{File: name, Line: n, Msg: fmt.Sprintf(format, args...)})
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			bad(`no ":" between user and hash; write "user:hash" (see "sluice user add")`)
		case CheckName(user) != nil:
			bad("%v", CheckName(user))
		case checkHash(hash) != nil:
			bad("user %q: %v", user, checkHash(hash))
		case users[user] != "":
			bad("user %q is listed twice; the first line is used", user)
		default:
			users[user] = hash
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, &LineError{File: name, Line: n + 1, Msg: err.Error()})
	}
	return users, errs
}

// CheckName returns why name cannot be a user name, or nil.
func CheckName(name string) error {
	if name == "" {
		return errors.New("empty user name")
	}
	if len(name) > 256 {
		return errors.New("user name longer than 256 bytes")
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == ':' || c == 0x7f {
			return fmt.Errorf("user name %q holds a space, control character or ':'", name)
		}
	}
	return nil
}

// constantEq compares two byte strings in constant time.
func constantEq(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
