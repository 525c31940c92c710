package queue

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIDFormat: a queue ID is 12 upper-case base-36 digits of its
// nanosecond time (more once they no longer fit), zero-padded, then 4
// random ones, as strings.ToUpper(strconv.FormatInt(…, 36)) writes them.
func TestIDFormat(t *testing.T) {
	want := func(n int64, width int) string {
		s := strings.ToUpper(strconv.FormatInt(n, 36))
		return strings.Repeat("0", max(0, width-len(s))) + s
	}
	for _, n := range []int64{0, 1, 35, 36, 1795000000123456789, idRandSpace - 1, 4738381338321616895, 4738381338321616896, math.MaxInt64} {
		for _, width := range []int{idRandDigits, idTimeDigits} {
			if got := string(appendBase36([]byte("x"), n, width)); got != "x"+want(n, width) {
				t.Errorf("appendBase36(%d, %d) = %q, want %q", n, width, got[1:], want(n, width))
			}
		}
	}
	var g idGen
	now := time.Unix(0, 1795000000123456789)
	seen := map[string]bool{}
	for range 1000 {
		id := g.next(now)
		ts, rs := id[:idTimeDigits], id[idTimeDigits:]
		if len(id) != idTimeDigits+idRandDigits || ts > want(now.UnixNano()+1000, idTimeDigits) || ts < want(now.UnixNano(), idTimeDigits) {
			t.Fatalf("ID %q for %v: want %s… plus %d random digits", id, now, want(now.UnixNano(), idTimeDigits), idRandDigits)
		}
		if r, err := strconv.ParseInt(rs, 36, 64); err != nil || r >= idRandSpace || rs != strings.ToUpper(rs) {
			t.Fatalf("ID %q: random part %q not %d upper-case base-36 digits", id, rs, idRandDigits)
		}
		seen[rs] = true
	}
	if len(seen) < 900 { // 1,000 draws of 1,679,616: a repeat or two at most
		t.Errorf("1,000 IDs had %d distinct random parts", len(seen))
	}
}
