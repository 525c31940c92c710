package admin

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sluice-mta/sluice/core/queue"
)

// otherGroup returns a group this process may give a file that is not its
// own group, or -1 if there is none (not root, no supplementary group).
func otherGroup() int {
	if os.Geteuid() == 0 {
		return 65534 // nogroup
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getegid() {
			return g
		}
	}
	return -1
}

// TestSocketPerm: the socket is 0600 by default; WithSocketPerm gives it
// another mode and a group.
func TestSocketPerm(t *testing.T) {
	gid := otherGroup()
	for _, tc := range []struct {
		name     string
		opts     []Option
		mode     fs.FileMode
		wantGID  int // -1: the process's group
		needsGID bool
	}{
		{"default", nil, 0o600, -1, false},
		{"mode only", []Option{WithSocketPerm(0o660, -1)}, 0o660, -1, false},
		{"mode and group", []Option{WithSocketPerm(0o660, gid)}, 0o660, gid, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsGID && gid < 0 {
				t.Skip("not root and in no supplementary group: no other group to give the socket")
			}
			dir := t.TempDir()
			log := slog.New(slog.DiscardHandler)
			q, err := queue.Open(context.Background(), queue.Options{Dir: filepath.Join(dir, "queue"), Hostname: "mx.test", Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			socket := filepath.Join(dir, "admin.sock")
			s, err := NewServer(socket, Backend{Queue: q}, log, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fi, err := os.Stat(socket)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != tc.mode {
				t.Errorf("socket mode %v, want a socket with %v", fi.Mode(), tc.mode)
			}
			want := tc.wantGID
			if want < 0 {
				want = os.Getegid()
			}
			if got := int(fi.Sys().(*syscall.Stat_t).Gid); got != want {
				t.Errorf("socket group %d, want %d", got, want)
			}
		})
	}
}
