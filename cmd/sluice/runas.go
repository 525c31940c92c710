package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sluice-mta/sluice/core/config"
)

// account is the user `sluice serve --user NAME` runs as once the ports
// are bound.
type account struct {
	name     string
	uid, gid int
	groups   []int
}

// lookupAccount resolves a user name (or number) with its primary and
// supplementary groups. Only root can switch to another user.
func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("--user %s: no such user; create it (useradd --system %s) or name an existing one", name, name)
		}
	}
	a := &account{name: u.Username}
	if a.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("--user %s: uid %q: %w", name, u.Uid, err)
	}
	if a.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("--user %s: gid %q: %w", name, u.Gid, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("--user %s: its groups: %w", name, err)
	}
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			a.groups = append(a.groups, n)
		}
	}
	if euid := os.Geteuid(); euid != 0 && euid != a.uid {
		return nil, fmt.Errorf("--user %s: only root can switch to another user (this is uid %d); start as root, or leave --user out", name, euid)
	}
	return a, nil
}

// become gives data_dir and the admin socket to the account and switches
// the whole process (every thread) to it. Files in data_dir are owned by
// the account afterwards, whoever created them; paths outside data_dir
// (a Maildir or plugins directory elsewhere) must be writable by it
// already.
func (a *account) become(cfg *config.Config, log *slog.Logger) error {
	if os.Geteuid() == a.uid {
		return nil // already that user
	}
	abs, err := a.dataDir(cfg)
	if err != nil {
		return err
	}
	if err := chownTree(abs, a.uid, a.gid); err != nil {
		return fmt.Errorf("--user %s: giving %s to it: %w", a.name, cfg.DataDir, err)
	}
	if err := os.Lchown(cfg.Admin.Socket, a.uid, -1); err != nil {
		return fmt.Errorf("--user %s: admin socket: %w", a.name, err)
	}
	groups := a.groups
	if len(groups) == 0 {
		groups = []int{a.gid}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("--user %s: setgroups: %w", a.name, err)
	}
	if err := syscall.Setgid(a.gid); err != nil {
		return fmt.Errorf("--user %s: setgid: %w", a.name, err)
	}
	if err := syscall.Setuid(a.uid); err != nil {
		return fmt.Errorf("--user %s: setuid: %w", a.name, err)
	}
	if os.Getuid() != a.uid || os.Geteuid() != a.uid || os.Getgid() != a.gid {
		return fmt.Errorf("--user %s: still uid %d, gid %d after switching", a.name, os.Geteuid(), os.Getegid())
	}
	log.Info("running as "+a.name, "uid", a.uid, "gid", a.gid)
	return nil
}

// dataDir returns data_dir as an absolute path, refusing one that is not
// a directory of its own ("/", "/var"): all of it is given to the account.
func (a *account) dataDir(cfg *config.Config) (string, error) {
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return "", fmt.Errorf("--user %s: data_dir: %w", a.name, err)
	}
	if strings.Count(abs, "/") < 2 {
		return "", fmt.Errorf("--user %s: data_dir %s is a top-level directory, and all of data_dir is given to %s: use a directory of its own, like /var/lib/sluice", a.name, abs, a.name)
	}
	return abs, nil
}

// chownTree gives dir and everything under it to uid:gid, without
// following symbolic links. The admin socket's group (socket_group) is
// kept.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		g := gid
		if d.Type()&fs.ModeSocket != 0 {
			g = -1
		}
		return os.Lchown(path, uid, g)
	})
}
