package smtpd

import "github.com/sluice-mta/sluice/core/mail"

// dataScanner is go-smtp's end-of-data state machine (dataReader in its
// data.go), run over the bytes before go-smtp reads them so the guard hands
// out nothing past the end marker. It never decides where a message ends on
// its own account: it must agree with go-smtp byte for byte, which
// FuzzGuardDataEnd checks against a real go-smtp server.
type dataScanner struct {
	state int
	// lostCR is set when go-smtp's reader drops a bare CR: at a line start
	// it elides "." and then "\r" even when no "\n" follows, so "\r\n.\rX"
	// reaches the session as "\r\nX". The session refuses such a message as
	// holding a bare CR.
	lostCR bool
}

// go-smtp's dataReader states.
const (
	stateBeginLine = iota
	stateDot
	stateDotCR
	stateCR
	stateData
	stateEOF
)

// dataStep is one step of go-smtp's dataReader outside the middle of a
// line: the state after byte c in state s, and whether the reader hands c
// on (a dot that starts a line is dropped, and so is the CR after it).
func dataStep(s int, c byte) (int, bool) {
	switch s {
	case stateBeginLine:
		switch c {
		case '.':
			return stateDot, false
		case '\r':
			return stateCR, true
		}
	case stateDot:
		if c == '\r' {
			return stateDotCR, false
		}
	case stateDotCR:
		if c == '\n' {
			return stateEOF, false
		}
	case stateCR:
		if c == '\n' {
			return stateBeginLine, true
		}
	case stateData:
		if c == '\r' {
			return stateCR, true
		}
	}
	return stateData, true
}

// ended reports whether the end marker was seen.
func (d *dataScanner) ended() bool { return d.state == stateEOF }

// dataRun is the fast path of go-smtp's dataReader from stateData: how
// many bytes at the start of b it hands on as they are, in a run, and the
// state after them. Bytes are only dropped, and the data only ends, at a
// dot that starts a line, which follows an LF; up to the first "\n." the
// reader visits stateData, stateCR and stateBeginLine only, handing on
// every byte. The run stops before that LF, or before a last LF of b
// (the next bytes decide what follows it), where the state is stateCR
// after an odd run of CRs (CR, CR is CR then data: go-smtp's quirk) and
// stateData otherwise; a run stopping before "\n." in stateBeginLine
// (after a bare LF) is the same as stateData there, as the LF leads both
// to stateData. A run of 0 leaves the byte to the state machine.
func dataRun(b []byte) (n, state int) {
	n = mail.IndexLineDot(b)
	if n < 0 {
		n = len(b)
		if n > 0 && b[n-1] == '\n' {
			n--
		}
	}
	crs := 0
	for crs < n && b[n-1-crs] == '\r' {
		crs++
	}
	if crs%2 == 1 {
		return n, stateCR
	}
	return n, stateData
}

// scan runs the state machine over b and returns how many bytes belong to
// the message (all of b, or up to and including the end marker).
func (d *dataScanner) scan(b []byte) int {
	s := d.state
	i := 0
	for i < len(b) && s != stateEOF {
		if s == stateData {
			// Fast path: lines without a leading dot in one run.
			if n, rs := dataRun(b[i:]); n > 0 {
				i += n
				s = rs
				continue
			}
		}
		c := b[i]
		i++
		if s == stateDotCR && c != '\n' {
			d.lostCR = true
		}
		s, _ = dataStep(s, c)
	}
	d.state = s
	return i
}
