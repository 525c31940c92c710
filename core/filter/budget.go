package filter

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// MachineMemory returns the memory this process may use: the machine's
// (MemTotal in /proc/meminfo) or its cgroup's limit (cgroup v2 memory.max)
// when lower; 0 when neither can be read (not Linux). The server takes it
// as the plugins' memory budget when the configuration sets none.
func MachineMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64); err == nil {
					total = kb << 10
				}
				break
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}
