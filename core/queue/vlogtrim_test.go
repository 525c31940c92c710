package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"golang.org/x/sys/unix"
)

// vlogRSS returns the resident KiB of each value-log file of dir mapped in
// this process, by file name, from /proc/self/smaps.
func vlogRSS(t *testing.T, dir string) map[string]int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	out := make(map[string]int)
	cur := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"): // a mapping's first line
			cur = ""
			if p := fields[len(fields)-1]; len(fields) >= 6 && filepath.Dir(p) == dir && strings.HasSuffix(p, ".vlog") {
				cur = filepath.Base(p)
				out[cur] += 0
			}
		case len(fields) == 3 && fields[0] == "Rss:" && cur != "":
			kb, _ := strconv.Atoi(fields[1])
			out[cur] += kb
		}
	}
	return out
}

// TestRotatedValueLogLeavesRSS: the bodies written to value-log files that
// have been rotated out stop counting in the process's RSS (the pages the
// writes made resident are unmapped by gcLoop), and every body still
// reads back whole afterwards.
func TestRotatedValueLogLeavesRSS(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	opts := testOptions(t, dir, c)
	opts.vlogFileSize = 1 << 20
	opts.vlogTrim = 10 * time.Millisecond
	opts.Deliverer = &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		var out []mail.Result
		for _, r := range rcpts {
			out = append(out, mail.DeferredResult(r, "mx:25", mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.4.1"), Text: "try later"}))
		}
		return out
	}}
	q := openQueue(t, opts)
	run(t, q)

	bodies := make(map[string][]byte)
	for i := range 400 { // 4 MiB of bodies: four 1 MiB files rotated
		body := fmt.Appendf(nil, "Subject: %d\r\n\r\n", i)
		body = append(body, bytes.Repeat([]byte{byte('a' + i%26)}, 10<<10)...)
		env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "x@dst.test"}}}
		id, err := q.Enqueue(context.Background(), env, body)
		if err != nil {
			t.Fatal(err)
		}
		bodies[id] = body
	}

	var last map[string]int
	eventually(t, "the rotated value-log files' pages unmapped", func() bool {
		last = vlogRSS(t, dir)
		newest := newest(mapKeys(last), ".vlog")
		rotated := 0
		for name, kb := range last {
			if name == newest {
				continue
			}
			if kb > 0 {
				return false
			}
			rotated++
		}
		return rotated >= 3
	})
	t.Logf("resident KiB by value-log file: %v", last)

	for id, want := range bodies {
		m, err := q.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Body, want) {
			t.Fatalf("%s: body of %d bytes read back as %d bytes, different", id, len(want), len(m.Body))
		}
	}
}

func mapKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestStillMaps checks the trim's last look before a madvise: a value-log
// file's mapping as vlogMappings lists it is recognised, and the same
// range is not once it maps another file or nothing.
func TestStillMaps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "000007.vlog")
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, 1<<16, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	maps := vlogMappings(dir)
	if len(maps) != 1 || maps[0].fid != 7 || maps[0].path != path {
		t.Fatalf("vlogMappings(%s) = %+v, want one mapping of %s", dir, maps, path)
	}
	if !stillMaps(maps[0]) {
		t.Fatalf("stillMaps(%+v) = false for a live mapping", maps[0])
	}
	other := maps[0]
	other.path = filepath.Join(dir, "000008.vlog")
	if stillMaps(other) {
		t.Errorf("stillMaps says the range maps %s", other.path)
	}
	if err := unix.Munmap(b); err != nil {
		t.Fatal(err)
	}
	if stillMaps(maps[0]) {
		t.Errorf("stillMaps(%+v) = true after munmap", maps[0])
	}
}
