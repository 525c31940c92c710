package auth

import (
	"bytes"
	"strings"
)

// field is one header field as it was written: its name and its raw bytes,
// folded continuation lines and final line ending included.
type field struct {
	name string
	raw  []byte
}

// value returns the field's unfolded body, the text after the colon with
// line breaks removed and the ends trimmed.
func (f field) value() string {
	_, v, _ := bytes.Cut(f.raw, []byte(":"))
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	v = bytes.ReplaceAll(v, []byte("\n"), nil)
	return strings.TrimSpace(string(v))
}

// splitHeader cuts msg into its header fields and the rest: the empty line
// that ends the header, then the body. Lines starting with a space or tab
// continue the field before them; a line that is neither (no colon) becomes a
// field without a name, kept as it is. Joining the fields' raw bytes and rest
// gives msg back byte for byte.
func splitHeader(msg []byte) (fields []field, rest []byte) {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		if isBlankLine(line) {
			return fields, msg
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			last := &fields[len(fields)-1]
			last.raw = last.raw[:len(last.raw)+len(line)]
			msg = msg[len(line):]
			continue
		}
		name := ""
		if i := bytes.IndexByte(line, ':'); i > 0 {
			name = strings.TrimRight(string(line[:i]), " \t")
		}
		// raw is a prefix of msg so that it can grow over the
		// continuation lines that follow.
		fields = append(fields, field{name: name, raw: msg[:len(line)]})
		msg = msg[len(line):]
	}
	return fields, nil
}

// isBlankLine reports whether line is "\r\n" or "\n".
func isBlankLine(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// headerValues returns the unfolded values of every field named name
// (case-insensitively), in order.
func headerValues(fields []field, name string) []string {
	var vs []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value())
		}
	}
	return vs
}

// authservID returns the authserv-id an Authentication-Results value starts
// with (RFC 8601 section 2.2): a token or quoted-string after optional
// comments and white space. It returns "" when there is none.
func authservID(v string) string {
	v = skipCFWS(v)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(c)
			}
		}
		return "" // unterminated
	}
	end := strings.IndexAny(v, " \t\r\n;()\"")
	if end < 0 {
		end = len(v)
	}
	return v[:end]
}

// skipCFWS drops leading white space and (possibly nested) comments.
func skipCFWS(v string) string {
	depth := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '\\' && depth > 0:
			i++
		case depth > 0, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return v[i:]
		}
	}
	return ""
}

// removeAuthResults returns msg without the Authentication-Results fields
// whose authserv-id is host (compared without case or final dot), as RFC 8601 section 5
// asks of a border MTA: such fields can only be forged. The other bytes of
// msg are kept as they were.
func removeAuthResults(msg []byte, host string) []byte {
	fields, rest := splitHeader(msg)
	out := make([]byte, 0, len(msg))
	for _, f := range fields {
		if strings.EqualFold(f.name, "Authentication-Results") && strings.EqualFold(strings.TrimSuffix(authservID(f.value()), "."), host) {
			continue
		}
		out = append(out, f.raw...)
	}
	return append(out, rest...)
}
