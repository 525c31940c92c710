package queue

import (
	"bytes"
	"encoding/binary"
)

// A listing filter that matches few messages of a deep queue reads every
// envelope: decoding the JSON is most of that work (a million took 6–7 s).
// mayMatch looks at the stored bytes first and skips the decoding of an
// envelope that cannot pass.

// mayMatch reports whether the stored envelope raw (as putEnvelope wrote
// it, with encoding/json) may pass f. It is false only when raw certainly
// does not: every address, state and sender test is decided by decoding.
//
// It is sound because, for an envelope whose bytes are all ASCII, a
// filter's needle (already lowercased: mail.Key, mail.NormDomain) that
// holds no character encoding/json escapes appears in raw, in some case,
// wherever the decoded field holds it: ASCII keys lowercase only ASCII
// letters, and a final dot the key drops follows the needle. Envelopes with
// other bytes, and needles with such characters, are always decoded.
func (f *filter) mayMatch(raw []byte) bool {
	if len(f.needles) == 0 || !isASCII(raw) { // Unicode case rules: decode
		return true
	}
	for _, alts := range f.needles {
		found := false
		for _, n := range alts {
			if n.fold && containsFold(raw, n.b) || !n.fold && bytes.Contains(raw, n.b) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// isASCII reports whether b has no byte above 0x7f, eight at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// containsFold reports whether ASCII s contains low (lowercase ASCII) in
// any case.
func containsFold(s, low []byte) bool {
	if len(low) == 0 {
		return true
	}
	first, other := low[0], low[0]
	if 'a' <= first && first <= 'z' {
		other = first - 'a' + 'A'
	}
	for i := 0; i+len(low) <= len(s); {
		rest := s[i : len(s)-len(low)+1]
		j := bytes.IndexByte(rest, first)
		if other != first {
			if k := bytes.IndexByte(rest, other); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 {
			return false
		}
		if bytes.EqualFold(s[i+j:i+j+len(low)], low) {
			return true
		}
		i += j + 1
	}
	return false
}

// needle is a byte string a stored envelope must hold: as encoding/json
// writes it (a key and its value), or, with fold, in any ASCII case (an
// address as the sender wrote it).
type needle struct {
	b    []byte
	fold bool
}

// rawNeedles are what a stored envelope must hold to pass f: for each
// entry, at least one of its needles. None when f has no such test or one
// that needs the decoded envelope (Match).
func (f *filter) rawNeedles() [][]needle {
	if f.match != nil {
		return nil // the dashboard's own test needs the envelope
	}
	var needles [][]needle
	one := func(s string, fold bool) { needles = append(needles, []needle{{[]byte(s), fold}}) }
	switch f.state {
	case StateHeld:
		one(`"held":true`, false)
	case StateQueued: // no attempt: the envelope's count (or a recipient's) is 0, or below
		needles = append(needles, []needle{{[]byte(`"attempts":0`), false}, {[]byte(`"attempts":-`), false}})
	}
	if f.nullSender {
		one(`"from":""`, false)
	}
	for _, s := range []string{f.sender, f.rcpt} {
		if s != "" && plainNeedle(s) {
			one(s, true)
		}
	}
	if f.domain != "" && plainNeedle(f.domain) {
		one("@"+f.domain, true)
	}
	return needles
}

// plainNeedle reports whether s is ASCII and holds nothing encoding/json
// writes escaped (quote, backslash, control characters, and <, >, & with
// its HTML escaping).
func plainNeedle(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80, c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
