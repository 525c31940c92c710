package smtpd

import (
	"bytes"
	"io"
	"testing"
)

// checkUnstuff feeds b to an unstuffer in chunks of step bytes, taking at
// most room bytes of output at a time, and compares what it hands out and
// where it stops with what the real go-smtp hands its session for the same
// bytes after DATA.
func checkUnstuff(t *testing.T, o *smtpOracle, b []byte, step, room int) {
	t.Helper()
	end, want := o.dataEnd(t, b)
	var u unstuffer
	var got []byte
	dst := make([]byte, room)
	used := 0
	for used < len(b) && u.state != stateEOF {
		chunk := b[used:min(len(b), used+step)]
		for len(chunk) > 0 && u.state != stateEOF {
			w, n := u.run(dst, chunk)
			got = append(got, dst[:w]...)
			chunk = chunk[n:]
			used += n
		}
	}
	switch {
	case end >= 0 && (u.state != stateEOF || used != end):
		t.Fatalf("%q (chunks %d, room %d): unstuffer ended at %d (ended %v), go-smtp at %d", b, step, room, used, u.state == stateEOF, end)
	case end < 0 && u.state == stateEOF:
		t.Fatalf("%q (chunks %d, room %d): unstuffer ended at %d, go-smtp found no end", b, step, room, used)
	case !bytes.Equal(got, want):
		t.Fatalf("%q (chunks %d, room %d): unstuffer hands out %q, go-smtp %q", b, step, room, got, want)
	}
}

// TestBodyUnstuff: the session's DATA reader un-dot-stuffs exactly as
// go-smtp's reader does (the expectations are go-smtp's), however the
// input is cut and however little room each read has.
func TestBodyUnstuff(t *testing.T) {
	o := newSMTPOracle(t)
	for _, in := range []string{
		".\r\n", "a\r\n.\r\nMAIL", "..\r\n.\r\n", "a\r\n..b\r\n...\r\n.\r\n", "a\r\n.\rX\r\n.\r\n",
		"a\r\r\n.\r\n\r\n.\r\n", "\r\n\r\n.\r\n", "line one\r\nline two\r\n.\r\n", "a\n.\nb\r\n.\r\n", "no end",
	} {
		for step := 1; step <= len(in); step++ {
			for _, room := range []int{1, 2, 3, 7, 4096} {
				checkUnstuff(t, o, []byte(in), step, room)
			}
		}
	}
}

// FuzzBodyUnstuff: as TestBodyUnstuff, for any input.
func FuzzBodyUnstuff(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "..\r\n.\r\n", "\r.\r\n", "\r\n.\rX\r\n.\r\n", "x\r\r\n.\r\n"} {
		f.Add([]byte(s), uint8(3), uint8(2))
	}
	// Runs of lines (dataRun) broken by dots, bare LFs and CR runs.
	f.Add([]byte("one\r\ntwo\r\n..three\r\n\n.four\r\r\n.five\r\r\r\n.six\r\n.\r\n"), uint8(255), uint8(255))
	f.Add([]byte("one\r\ntwo\r\n\r\n.\r\n"), uint8(6), uint8(255))
	o := newSMTPOracle(f)
	f.Fuzz(func(t *testing.T, b []byte, step, room uint8) {
		if len(b) > 1<<14 {
			t.Skip("long inputs add nothing the state machine can see")
		}
		checkUnstuff(t, o, b, int(step)+1, int(room)+1)
	})
}

// TestBodyReaderStandsIn: the reader go-smtp hands a session for DATA is
// the one bodyReader replaces (a go-smtp upgrade that renames it would
// otherwise quietly turn the fast path off), and a pipe (BDAT) is not.
func TestBodyReaderStandsIn(t *testing.T) {
	o := newSMTPOracle(t)
	c := o.dial(t)
	c.send("DATA\r\n")
	c.expect(t, "354")
	c.send("x\r\n.\r\n")
	if m := <-c.sc.msg; !m.dataReader {
		t.Error("go-smtp's DATA reader is not the type isDataReader looks for: bodyReader would never be used")
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	if isDataReader(pr) {
		t.Error("a pipe (BDAT) taken for go-smtp's DATA reader")
	}
}
