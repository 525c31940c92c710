package smtpd

import "bytes"

// bareScanner finds bare CR and bare LF (a CR not followed by LF, an LF not
// preceded by CR) in a message read in chunks. It looks at each byte once
// with the vectorised bytes.Count and bytes.IndexByte and allocates nothing.
type bareScanner struct {
	// pendingCR is set when the last chunk ended in CR: it is bare unless
	// the next chunk starts with LF.
	pendingCR bool
	// bare latches once a bare CR or LF has been seen.
	bare bool
}

// scan feeds the next chunk of the message and reports whether a bare CR or
// LF has been seen so far (a CR at the very end is judged by the next chunk
// or by end).
func (s *bareScanner) scan(b []byte) bool {
	if s.bare || len(b) == 0 {
		return s.bare
	}
	if s.pendingCR {
		if b[0] != '\n' {
			s.bare = true
			return true
		}
		b = b[1:]
		s.pendingCR = false
	}
	lfs := 0
	for rest := b; ; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if i == 0 || rest[i-1] != '\r' {
			// rest[i-1] is within b: rest only ever starts after an LF
			// that was itself checked, or at b's start.
			s.bare = true
			return true
		}
		lfs++
		rest = rest[i+1:]
	}
	crs := bytes.Count(b, []byte{'\r'})
	if len(b) > 0 && b[len(b)-1] == '\r' {
		s.pendingCR = true
		crs--
	}
	if crs != lfs {
		s.bare = true
	}
	return s.bare
}

// end reports, once the whole message was scanned, whether it held a bare
// CR or LF, counting a CR in its last byte.
func (s *bareScanner) end() bool {
	return s.bare || s.pendingCR
}

// normalizeNewlines appends src to dst with every bare CR and every bare LF
// turned into CRLF; CRLF pairs are kept as they are.
func normalizeNewlines(dst, src []byte) []byte {
	for len(src) > 0 {
		i := indexCRorLF(src)
		if i < 0 {
			return append(dst, src...)
		}
		dst = append(dst, src[:i]...)
		if src[i] == '\r' && i+1 < len(src) && src[i+1] == '\n' {
			i++ // a proper CRLF
		}
		dst = append(dst, '\r', '\n')
		src = src[i+1:]
	}
	return dst
}

// indexCRorLF returns the index of the first CR or LF in b, or -1.
func indexCRorLF(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	if lf < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if cr := bytes.IndexByte(b[:lf], '\r'); cr >= 0 {
		return cr
	}
	return lf
}
