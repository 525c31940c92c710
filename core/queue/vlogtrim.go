package queue

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// vlogMapping is where Badger has mapped one value-log file in this
// process.
type vlogMapping struct {
	fid        int64
	path       string
	start, end uintptr
}

// vlogMappings lists the mappings of the value-log files in dir
// (/proc/self/maps). Badger maps every value-log file whole, shared and
// writable, from opening it until value-log GC deletes it; the pages
// written or read through a mapping count in the RSS for as long as they
// stay mapped. Without /proc it returns nothing.
func vlogMappings(dir string) []vlogMapping {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []vlogMapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasSuffix(line, []byte(".vlog")) {
			continue
		}
		// start-end perms offset dev inode path
		fields := strings.Fields(string(line))
		if len(fields) < 6 {
			continue
		}
		path := strings.Join(fields[5:], " ")
		if filepath.Dir(path) != dir {
			continue
		}
		fid, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(path), ".vlog"), 10, 64)
		if err != nil {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, vlogMapping{fid: fid, path: path, start: uintptr(start), end: uintptr(end)})
	}
	return out
}

// trimVlog drops this process's page-table entries for every value-log
// file but the newest (madvise MADV_DONTNEED): a rotated file takes no
// more writes, and Badger msynced it at rotation. On a shared file
// mapping MADV_DONTNEED only unmaps the pages: they stay in the page
// cache (dirty ones stay dirty, to be written back as before), and a
// later read of a body there (a delivery still behind, value-log GC)
// maps the cached page again with a minor fault, no disk read. So the
// mail written is untouched, and the RSS no longer counts the value log
// of mail taken long ago. See RATIONALE.md "The value log's pages".
//
// It must not run while Badger may unmap one of these files, or the
// range could meanwhile hold another mapping: Badger unmaps a value-log
// file only when value-log GC deletes it (at once or, with iterators
// open, when the last one closes) and when the database closes; gcLoop
// runs both GC and trimVlog and skips trimVlog until the files a GC pass
// rewrote are gone (see gcLoop), and Close stops gcLoop first. The
// newest file, the one written to, is left alone: Badger moves its
// mapping (mremap) when it rotates it.
//
// It returns how many files it trimmed.
func trimVlog(maps []vlogMapping) int {
	newest := int64(-1)
	for _, m := range maps {
		newest = max(newest, m.fid)
	}
	n := 0
	for _, m := range maps {
		if m.fid == newest {
			continue
		}
		// /proc/self/maps is not read in one piece: a line read before a
		// change and one read after it can both be there. So the range
		// must still map this file now (its map_files link) — a range
		// that no longer does is left alone until the next round.
		if !stillMaps(m) {
			continue
		}
		// Errors (EINVAL on a range that is not mapped) leave the pages
		// where they were; there is nothing to do about them.
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED)
		if errno == 0 {
			n++
		}
	}
	return n
}

// stillMaps reports whether m's range is, right now, one mapping of m's
// file (/proc/self/map_files/START-END names the file a mapping of exactly
// that range maps).
func stillMaps(m vlogMapping) bool {
	got, err := os.Readlink(fmt.Sprintf("/proc/self/map_files/%x-%x", m.start, m.end))
	return err == nil && got == m.path
}
