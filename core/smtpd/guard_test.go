package smtpd

import (
	"bytes"
	"strings"
	"testing"
)

// guardDataEnd feeds b to the guard's DATA scanner in chunks of step bytes
// and returns the index just past the end marker (or -1) and whether the
// scanner saw go-smtp drop a bare CR.
func guardDataEnd(b []byte, step int) (int, bool) {
	var d dataScanner
	done := 0
	for done < len(b) {
		chunk := b[done:min(len(b), done+step)]
		n := d.scan(chunk)
		done += n
		if d.ended() {
			return done, d.lostCR
		}
		if n != len(chunk) {
			return -2, d.lostCR // stopped early without an end: a bug
		}
	}
	return -1, d.lostCR
}

// droppedCR reports whether go-smtp, having read msg (ending in its end
// marker), handed the session fewer CRs than msg holds besides the one of
// the end marker: the bare CR the guard must flag.
func droppedCR(msg, body []byte) bool {
	return bytes.Count(msg, []byte("\r"))-bytes.Count(body, []byte("\r")) > 1
}

// checkDataEnd compares the guard's DATA framing of b, in chunks of step,
// with a real go-smtp's.
func checkDataEnd(t *testing.T, o *smtpOracle, b []byte, step int) {
	t.Helper()
	want, body := o.dataEnd(t, b)
	got, lost := guardDataEnd(b, step)
	if got != want {
		t.Fatalf("%q in chunks of %d: guard ends DATA at %d, go-smtp at %d", b, step, got, want)
	}
	if want >= 0 && lost != droppedCR(b[:want], body) {
		t.Fatalf("%q: guard says a CR was lost: %v; go-smtp handed the session %q", b, lost, body)
	}
}

func TestGuardDataEnd(t *testing.T) {
	o := newSMTPOracle(t)
	for _, tc := range []struct {
		in   string
		end  int
		lost bool
	}{
		{".\r\n", 3, false},
		{"a\r\n.\r\nMAIL", 6, false},
		{"a\n.\nMAIL\r\n.\r\n", 13, false},
		{"a\r.\r\n", -1, false},
		{"a\r\n.\rX\r\n.\r\n", 11, true},
		{"a\r\r\n.\r\n", -1, false}, // go-smtp's quirk: CR CR LF does not start a line
		{"..\r\n.\r\n", 7, false},
		{"a\r\n..\r\n.\r\n", 10, false},
	} {
		for step := 1; step <= len(tc.in); step++ {
			if got, lost := guardDataEnd([]byte(tc.in), step); got != tc.end || lost != tc.lost {
				t.Errorf("%q in chunks of %d: end %d, lost CR %v; want %d, %v", tc.in, step, got, lost, tc.end, tc.lost)
			}
		}
		// The expectations are go-smtp's.
		checkDataEnd(t, o, []byte(tc.in), 1)
	}
}

// FuzzGuardDataEnd: the guard's DATA scanner ends a message exactly where
// the real go-smtp does, however the bytes are cut, and flags exactly the
// bare CRs go-smtp drops.
func FuzzGuardDataEnd(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "\n.\n", "\r.\r\n", "\r\n.\rX", "x\r\r\n.\r\n"} {
		f.Add([]byte(s), uint8(2))
	}
	// Runs of lines (dataRun) broken by dots, bare LFs and CR runs.
	f.Add([]byte("one\r\ntwo\r\n..three\r\n\n.four\r\r\n.five\r\r\r\n.six\r\n.\r\n"), uint8(255))
	f.Add([]byte("one\r\ntwo\r\n\r\n.\r\n"), uint8(6))
	o := newSMTPOracle(f)
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		if len(b) > 1<<14 {
			t.Skip("long inputs add nothing the state machine can see")
		}
		checkDataEnd(t, o, b, int(step)+1)
	})
}

// checkBDAT compares the chunk the guard expects after "BDAT"+rest, given n
// bytes, with the bytes the real go-smtp reads before answering.
func checkBDAT(t *testing.T, o *smtpOracle, rest string, n int) {
	t.Helper()
	want := o.bdatChunkLen(t, rest, n)
	var l lineGuard
	l.frame([]byte("BDAT" + rest + "\r\n"))
	got := 0
	if l.mode == modeBDAT {
		got = int(min(l.bdatLeft, int64(n)))
	}
	if got != want {
		t.Fatalf("%q with %d bytes: guard passes a chunk of %d, go-smtp reads %d", "BDAT"+rest, n, got, want)
	}
}

func TestGuardBDAT(t *testing.T) {
	o := newSMTPOracle(t)
	for _, rest := range []string{
		" 10", " 10 LAST", " 10 last", " 0", " 0 LAST", " 5  ", "  5", " 10 NOTLAST", " 1 2 3", " -1",
		" +5", " 0x10", " 4294967296", " 4294967295", "", " ", "\t5", " 5\tLAST", " 05",
	} {
		checkBDAT(t, o, rest, 20)
	}
}

// FuzzGuardBDAT: after a BDAT command the guard passes exactly the chunk the
// real go-smtp reads, whether or not it accepts the command.
func FuzzGuardBDAT(f *testing.F) {
	for _, s := range []string{" 10", " 3 LAST", " 0", " x", " 10 MORE"} {
		f.Add(s, uint16(12))
	}
	o := newSMTPOracle(f)
	f.Fuzz(func(t *testing.T, rest string, n uint16) {
		if strings.ContainsAny(rest, "\r\n") {
			t.Skip("the line guard refuses a bare CR or LF before any framing")
		}
		checkBDAT(t, o, rest, int(n%2048))
	})
}

// TestSTARTTLSOnlyInTheGuard: go-smtp takes any line starting with
// STARTTLS (in any case) for STARTTLS, the shim only the verb. Were go-smtp to
// run the handshake itself, the guard would sit below TLS. go-smtp gets no
// TLS configuration, so such lines get its 502 and the session goes on in
// plain text, still guarded.
func TestSTARTTLSOnlyInTheGuard(t *testing.T) {
	addr := startServer(t, submissionOptions(t, &fakeQueue{}))
	for _, line := range []string{"STARTTLSX", "starttls\tnow"} {
		t.Run(line, func(t *testing.T) {
			rc := dialRaw(t, addr, "")
			rc.greet()
			rc.send(line + "\r\n")
			if code, text := rc.reply(); code != 502 {
				t.Fatalf("%q got %d %q, want 502", line, code, text)
			}
			rc.send("NOOP\r\n")
			rc.expect(250)
			rc.send("NOOP\n")
			if got := rc.readToEOF(); !strings.HasPrefix(got, "500 5.5.2") {
				t.Errorf("bare LF after %q got %q, want 500 5.5.2 from the guard", line, got)
			}
		})
	}
}

// longLineRef is the guard's DATA line check as it was, a line at a time:
// the reference for longLine's windows.
func longLineRef(lineLen *int, maxLine int, b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			*lineLen += len(b)
			return *lineLen > maxLine+1
		}
		if *lineLen+i > maxLine+1 {
			return true
		}
		*lineLen = 0
		b = b[i+1:]
	}
}

// FuzzLongLine: the guard's DATA line-length check, fed b in chunks of
// step bytes, refuses at the same chunk as a check a line at a time, and
// carries the same length of the open line between chunks.
func FuzzLongLine(f *testing.F) {
	f.Add([]byte("short\r\nlines\r\n"), uint8(3), uint8(4))
	f.Add([]byte("0123456789\r\n01234\r\n0123456789ab\r\n"), uint8(255), uint8(10))
	f.Add([]byte("\n\n\n0123456\n"), uint8(1), uint8(5))
	f.Fuzz(func(t *testing.T, b []byte, step, maxLine uint8) {
		l := lineGuard{maxLine: int(maxLine)}
		ref := 0
		for i := 0; i < len(b); i += int(step) + 1 {
			chunk := b[i:min(len(b), i+int(step)+1)]
			got, want := l.longLine(chunk), longLineRef(&ref, int(maxLine), chunk)
			if got != want {
				t.Fatalf("%q in chunks of %d, max %d: chunk at %d: long %v, want %v", b, step+1, maxLine, i, got, want)
			}
			if got {
				return
			}
			if l.lineLen != ref {
				t.Fatalf("%q in chunks of %d, max %d: after the chunk at %d the line has %d bytes, want %d", b, step+1, maxLine, i, l.lineLen, ref)
			}
		}
	})
}
