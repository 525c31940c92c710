package badgerlog

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/internal/testlog"
)

// TestLevels checks what an operator sees of Badger's lines at the info
// level, and at debug.
func TestLevels(t *testing.T) {
	buf := testlog.New(t)
	l := New(buf.Logger(slog.LevelInfo), "queue")
	l.Errorf("disk full\n")
	l.Warningf("slow %d", 3)
	l.Infof("compaction done")
	l.Debugf("noise")
	out := buf.String()
	for _, want := range []string{`level=ERROR msg="badger: disk full" component=queue`, `level=WARN msg="badger: slow 3" component=queue`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "compaction") || strings.Contains(out, "noise") {
		t.Errorf("info or debug line shown at level info:\n%s", out)
	}

	buf = testlog.New(t)
	New(buf.Logger(slog.LevelDebug), "kv").Infof("compaction done")
	if out := buf.String(); !strings.Contains(out, `level=DEBUG msg="badger: compaction done" component=kv`) {
		t.Errorf("Badger's info line not logged at debug:\n%s", out)
	}
}
