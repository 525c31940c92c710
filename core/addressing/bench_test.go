package addressing

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// writeMaps writes n entries: n/2 mailboxes and n/2 aliases (each to a
// mailbox and a remote address) over n/100 domains, as a hosting
// provider's files look.
func writeMaps(tb testing.TB, dir string, n int) Files {
	tb.Helper()
	files := Files{Mailboxes: filepath.Join(dir, "mailboxes"), Aliases: filepath.Join(dir, "aliases")}
	write := func(path string, line func(i int, w *bufio.Writer)) {
		f, err := os.Create(path)
		if err != nil {
			tb.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for i := range n / 2 {
			line(i, w)
		}
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	domains := max(n/100, 1)
	write(files.Mailboxes, func(i int, w *bufio.Writer) {
		fmt.Fprintf(w, "user%d@domain%d.example\n", i, i%domains)
	})
	write(files.Aliases, func(i int, w *bufio.Writer) {
		fmt.Fprintf(w, "alias%d@domain%d.example user%d@domain%d.example, fwd%d@remote.example\n", i, i%domains, i, i%domains, i)
	})
	return files
}

// heap returns the live heap after a full collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkLoad1M loads one million entries (500k mailboxes, 500k
// aliases) and reports the time and the memory the Table keeps.
func BenchmarkLoad1M(b *testing.B) {
	files := writeMaps(b, b.TempDir(), 1_000_000)
	var retained uint64
	var took, cpu time.Duration
	for b.Loop() {
		before := heap()
		start, cpu0 := time.Now(), cpuTime()
		t, err := LoadTable(files)
		took, cpu = time.Since(start), cpuTime()-cpu0
		if err != nil {
			b.Fatal(err)
		}
		retained = heap() - before
		if t.Stats().Entries() < 1_000_000 {
			b.Fatalf("loaded %+v", t.Stats())
		}
		runtime.KeepAlive(t)
	}
	mib := float64(retained) / (1 << 20)
	b.ReportMetric(float64(took.Milliseconds()), "ms/load")
	b.ReportMetric(float64(cpu.Milliseconds()), "cpu-ms/load")
	b.ReportMetric(mib, "MiB-retained")
	if cpu > 2*time.Second || mib > 200 {
		b.Errorf("1M entries: %v (CPU %v) and %.0f MiB; the budget is 2s and 200 MiB", took, cpu, mib)
	}
}

// cpuTime is the CPU time this process has used (all threads, so the
// garbage collector's work counts), which a busy machine does not inflate
// the way it does wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkResolve looks up mailboxes and aliases in tables of 10k and 1M
// entries: the time per lookup does not grow with the table.
func BenchmarkResolve(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		files := writeMaps(b, b.TempDir(), n)
		r, err := New(Options{Files: files, Delimiter: "+"})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		domains := max(n/100, 1)
		for _, kind := range []string{"mailbox", "alias", "detail", "unknown"} {
			addrs := make([]string, 1024)
			for j := range addrs {
				i := (j * 7919) % (n / 2)
				switch kind {
				case "mailbox":
					addrs[j] = fmt.Sprintf("user%d@domain%d.example", i, i%domains)
				case "alias":
					addrs[j] = fmt.Sprintf("alias%d@domain%d.example", i, i%domains)
				case "detail":
					addrs[j] = fmt.Sprintf("user%d+tag@domain%d.example", i, i%domains)
				case "unknown":
					addrs[j] = fmt.Sprintf("nobody%d@domain%d.example", i, i%domains)
				}
			}
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				i := 0
				for b.Loop() {
					_, err := r.Resolve(ctx, addrs[i%len(addrs)])
					if (err == nil) == (kind == "unknown") {
						b.Fatalf("%s: %v", addrs[i%len(addrs)], err)
					}
					i++
				}
			})
		}
	}
}

// TestTableMemory keeps the memory per entry within the budget that
// makes 1M entries fit in 200 MiB (measured on 100k entries, so that it
// runs with the other tests).
func TestTableMemory(t *testing.T) {
	const n = 100_000
	files := writeMaps(t, t.TempDir(), n)
	before := heap()
	tab, err := LoadTable(files)
	if err != nil {
		t.Fatal(err)
	}
	per := float64(heap()-before) / n
	runtime.KeepAlive(tab)
	t.Logf("%.0f bytes per entry", per)
	if per > 200*(1<<20)/1e6 {
		t.Errorf("%.0f bytes per entry: 1M entries would take more than 200 MiB", per)
	}
}
