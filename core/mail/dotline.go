package mail

import "bytes"

// IndexLineDot returns the index of the first LF in b that is followed by
// a dot ("\n."), or -1: where a line of message data starts with a dot,
// which SMTP's DATA doubles on the wire (dot-stuffing) and a reader
// undoes. It looks for the dots rather than the line ends: most mail has
// fewer (base64 has none), so a body is crossed in a few vectorised
// steps instead of one a line, as bytes.Index(b, "\n.") would take.
func IndexLineDot(b []byte) int {
	for i := 1; i < len(b); {
		j := bytes.IndexByte(b[i:], '.')
		if j < 0 {
			return -1
		}
		if i += j; b[i-1] == '\n' {
			return i - 1
		}
		i++
	}
	return -1
}
