package smtpd

import (
	"strings"
	"testing"
)

// refDataEnd is go-smtp's dataReader state machine written out byte by
// byte: it returns the index just past the end marker, or -1.
func refDataEnd(b []byte) int {
	s := stateBeginLine
	for i, c := range b {
		switch s {
		case stateBeginLine:
			switch c {
			case '.':
				s = stateDot
			case '\r':
				s = stateCR
			default:
				s = stateData
			}
		case stateDot:
			if c == '\r' {
				s = stateDotCR
			} else {
				s = stateData
			}
		case stateDotCR:
			if c == '\n' {
				return i + 1
			}
			s = stateData
		case stateCR:
			if c == '\n' {
				s = stateBeginLine
			} else {
				s = stateData
			}
		case stateData:
			if c == '\r' {
				s = stateCR
			}
		}
	}
	return -1
}

// guardDataEnd feeds b to the guard's DATA scanner in chunks of step bytes.
func guardDataEnd(b []byte, step int) int {
	var d dataScanner
	done := 0
	for done < len(b) {
		chunk := b[done:min(len(b), done+step)]
		n := d.scan(chunk)
		done += n
		if d.ended() {
			return done
		}
		if n != len(chunk) {
			return -2 // stopped early without an end: a bug
		}
	}
	return -1
}

func TestGuardDataEnd(t *testing.T) {
	for _, tc := range []struct {
		in  string
		end int
	}{
		{".\r\n", 3},
		{"a\r\n.\r\nMAIL", 6},
		{"a\n.\nMAIL\r\n.\r\n", 13},
		{"a\r.\r\n", -1},
		{"a\r\n.\rX\r\n.\r\n", 11},
		{"a\r\r\n.\r\n", -1}, // go-smtp's quirk: CR CR LF does not start a line
		{"..\r\n.\r\n", 7},
	} {
		for step := 1; step <= len(tc.in); step++ {
			if got := guardDataEnd([]byte(tc.in), step); got != tc.end {
				t.Errorf("%q in chunks of %d: end %d, want %d", tc.in, step, got, tc.end)
			}
		}
		if ref := refDataEnd([]byte(tc.in)); ref != tc.end {
			t.Errorf("reference for %q: %d, want %d", tc.in, ref, tc.end)
		}
	}
}

// FuzzGuardDataEnd: the guard's fast DATA scanner ends a message exactly
// where go-smtp does, however the bytes are cut.
func FuzzGuardDataEnd(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "\n.\n", "\r.\r\n", "\r\n.\rX", "x\r\r\n.\r\n"} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		if got, want := guardDataEnd(b, int(step)+1), refDataEnd(b); got != want {
			t.Fatalf("%q: guard ends at %d, go-smtp at %d", b, got, want)
		}
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
