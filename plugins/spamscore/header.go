package spamscore

import (
	"bytes"
	"net/mail"
	"strings"
	"unsafe"
)

// simpleHeader is a header section read without net/textproto when every
// line is plain: a field "Name: value" whose name is letters, digits and
// hyphens, or a continuation line starting with a space or a tab, each
// ending in CRLF, with no other byte than printable ASCII and tabs. For
// such a section Get answers what textproto's MIMEHeader.Get does (the
// first field of that name, any case; continuation lines joined with a
// space; blanks trimmed as textproto trims them), and reading it cannot
// fail, where textproto's reader is most of the guest time of a message
// built by a plain mail client or sluice-load. FuzzSimpleHeader checks the
// two against each other. A value on one line, nearly all of them, is a
// string over the section's bytes, not a copy: it is valid until those
// bytes change, which for readHeader's is the next call (spamscore keeps
// no value from one call to the next).
type simpleHeader []simpleField

// simpleField is one field: its name and the raw lines after the colon,
// continuation lines included, without the final CRLF.
type simpleField struct{ name, raw []byte }

// parseSimpleHeader reads hdr (the section without its blank line) when
// it is simple; ok is false when it is not, and textproto must read it.
func parseSimpleHeader(hdr []byte) (h simpleHeader, ok bool) {
	return appendSimpleHeader(make(simpleHeader, 0, 16), hdr)
}

// appendSimpleHeader is parseSimpleHeader appending the fields to h.
func appendSimpleHeader(h simpleHeader, hdr []byte) (simpleHeader, bool) {
	for len(hdr) > 0 {
		nl := bytes.IndexByte(hdr, '\n')
		if nl < 1 || hdr[nl-1] != '\r' {
			return nil, false
		}
		line := hdr[:nl-1]
		hdr = hdr[nl+1:]
		if len(line) == 0 || !plainLine(line) {
			return nil, false // an empty line would end the section early
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h) == 0 {
				return nil, false
			}
			f := &h[len(h)-1]
			f.raw = f.raw[:len(f.raw)+2+len(line)] // raw ends where the CRLF and this line follow
			continue
		}
		colon := 0
		for colon < len(line) && isNameByte(line[colon]) {
			colon++
		}
		if colon == 0 || colon == len(line) || line[colon] != ':' {
			return nil, false
		}
		h = append(h, simpleField{name: line[:colon], raw: line[colon+1:]})
	}
	return h, true
}

// plainLine reports whether line is printable ASCII and tabs.
func plainLine(line []byte) bool {
	for _, b := range line {
		if (b < ' ' || b > '~') && b != '\t' {
			return false
		}
	}
	return true
}

func isNameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-'
}

// Get returns the first value of the field name (letters, digits and
// hyphens, any case), "" when there is none.
func (h simpleHeader) Get(name string) string {
	for _, f := range h {
		if len(f.name) == len(name) && equalFoldASCII(f.name, name) {
			return f.value()
		}
	}
	return ""
}

// value unfolds raw as textproto does: each line trimmed of blanks at both
// ends, the lines joined with one space, then the blanks before the first
// character dropped. A value on one line is not copied (see simpleHeader):
// a copy was a guest allocation for every field read, six a message.
func (f simpleField) value() string {
	raw := f.raw
	i := bytes.IndexByte(raw, '\r')
	if i < 0 {
		v := trimBlanks(raw) // no blank left to drop before it
		return unsafe.String(unsafe.SliceData(v), len(v))
	}
	v := append([]byte(nil), trimBlanks(raw[:i])...)
	for raw = raw[i+2:]; ; raw = raw[i+2:] {
		i = bytes.IndexByte(raw, '\r')
		line := raw
		if i >= 0 {
			line = raw[:i]
		}
		v = append(append(v, ' '), trimBlanks(line)...)
		if i < 0 {
			return string(bytes.TrimLeft(v, " \t"))
		}
	}
}

// trimBlanks trims spaces and tabs at both ends (textproto's trim), in a
// loop: bytes.Trim builds its cutset's table at every call.
func trimBlanks(s []byte) []byte {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// equalFoldASCII compares a field name with name, ASCII letters in any case.
func equalFoldASCII(a []byte, b string) bool {
	for i := range a {
		x, y := a[i], b[i]
		if x != y && (x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z') {
			return false
		}
	}
	return true
}

// keptHeader holds the fields of the header section readHeader read last,
// kept from call to call (an instance runs one call at a time) so that a
// simple section is read without an allocation once it has grown.
var keptHeader simpleHeader

// readHeader reads the header section hdr (without its blank line): the
// simple way when it can, else with net/mail. A simple section's fields
// are keptHeader's: valid until the next call.
func readHeader(hdr []byte) (headerGetter, error) {
	if h, ok := appendSimpleHeader(keptHeader[:0], hdr); ok {
		keptHeader = h
		return &keptHeader, nil
	}
	msg, err := mail.ReadMessage(bytes.NewReader(append(hdr[:len(hdr):len(hdr)], '\r', '\n')))
	if err != nil {
		return nil, err
	}
	return msg.Header, nil
}

// parseAddress is mail.ParseAddress, answered without it for the plain
// forms most mail has: "local@domain", "<local@domain>" and
// "Words Of A Name <local@domain>", where the name's words are letters and
// digits and the address's atoms letters, digits, '_', '+' and '-'.
// FuzzSimpleAddress checks the two against each other.
func parseAddress(s string) (mail.Address, error) {
	if a, ok := simpleAddress(s); ok {
		return a, nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return mail.Address{}, err
	}
	return *a, nil
}

// simpleAddress reads s when it has one of parseAddress's plain forms. The
// address is a value: a pointer to it was a guest allocation a message.
func simpleAddress(s string) (mail.Address, bool) {
	lt := strings.IndexByte(s, '<')
	if lt < 0 {
		if !addrSpec(s) {
			return mail.Address{}, false
		}
		return mail.Address{Address: s}, true
	}
	if !strings.HasSuffix(s, ">") || !addrSpec(s[lt+1:len(s)-1]) {
		return mail.Address{}, false
	}
	// The name: words of letters and digits separated by spaces. Joined
	// by single spaces it is the text before '<' less its trailing
	// spaces (no copy); only a run of spaces inside needs a new string.
	raw := s[:lt]
	single := true
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == ' ':
			if i > 0 && raw[i-1] == ' ' && strings.TrimRight(raw[i:], " ") != "" {
				single = false
			}
		case !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'):
			return mail.Address{}, false
		}
	}
	name := strings.TrimRight(raw, " ")
	if lt > 0 && (s[0] == ' ' || name == "") {
		return mail.Address{}, false
	}
	if !single {
		name = strings.Join(strings.Fields(name), " ")
	}
	return mail.Address{Name: name, Address: s[lt+1 : len(s)-1]}, true
}

// addrSpec reports whether s is local@domain, each part atoms of letters,
// digits, '_', '+' and '-' joined by single dots.
func addrSpec(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && dotAtom(local) && dotAtom(domain)
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}
