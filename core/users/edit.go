package users

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
)

// ErrNoUser is returned by Remove for a user not in the file.
var ErrNoUser = errors.New("no such user")

// Set adds user with the argon2id hash of password to the file at path,
// replacing an existing entry, creating the file when missing. The file is
// rewritten through a temporary file and a rename, so a running server
// never reads half of it.
func Set(path, user, password string) error {
	if err := CheckName(user); err != nil {
		return err
	}
	if password == "" {
		return errors.New("empty password")
	}
	hash, err := Hash(password)
	if err != nil {
		return err
	}
	return edit(path, func(lines []string) ([]string, error) {
		entry := user + ":" + hash
		for i, l := range lines {
			if lineUser(l) == user {
				lines[i] = entry
				return lines, nil
			}
		}
		return append(lines, entry), nil
	})
}

// Remove deletes user from the file at path; ErrNoUser when absent.
func Remove(path, user string) error {
	return edit(path, func(lines []string) ([]string, error) {
		n := len(lines)
		lines = slices.DeleteFunc(lines, func(l string) bool { return lineUser(l) == user })
		if len(lines) == n {
			return nil, fmt.Errorf("%s: %w %q", path, ErrNoUser, user)
		}
		return lines, nil
	})
}

// List returns the users in the file at path (sorted) and its bad lines.
func List(path string) ([]string, []error, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	users, errs := Parse(bytes.NewReader(data), path)
	return sortedKeys(users), errs, nil
}

// lineUser returns the user a line is for, "" for comments and blanks.
func lineUser(l string) string {
	t := strings.TrimSpace(l)
	if t == "" || t[0] == '#' {
		return ""
	}
	u, _, _ := strings.Cut(t, ":")
	return u
}

// edit rewrites the file at path with f applied to its lines, keeping
// comments and the file's mode.
func edit(path string, f func([]string) ([]string, error)) error {
	var lines []string
	mode := os.FileMode(0o600)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return err
		}
	default:
		return err
	}
	lines, err = f(lines)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	return renameio.WriteFile(path, buf.Bytes(), mode)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
