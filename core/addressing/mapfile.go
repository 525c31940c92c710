package addressing

import (
	"fmt"
	"strings"
)

// SyntaxError is one mistake in a map file, as "file:line: what is wrong".
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

// Error formats the mistake as file:line: message.
func (e *SyntaxError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// entry is one logical line of a map file: a key and the rest of the line.
type entry struct {
	line  int
	key   string
	value string
}

// scanFile calls fn for each logical line of text in Postfix's table
// format: blank lines and lines whose first non-blank character is '#'
// are skipped, a line starting with white space continues the logical line
// before it, and the key is separated from the value by white space. key
// and value are substrings of text (no copy) unless a skipped line sits
// inside a continued line. warn receives a continuation line that has
// nothing to continue (Postfix ignores those with a warning too).
func scanFile(text string, fn func(entry) error, warn func(line int, msg string)) error {
	type span struct{ start, end int }
	var spans []span
	var cur entry
	lastNext := -1 // where the line after the last one taken starts
	flush := func() error {
		if len(spans) == 0 {
			return nil
		}
		s := text[spans[0].start:spans[0].end]
		if len(spans) > 1 {
			parts := make([]string, len(spans))
			for i, sp := range spans {
				parts[i] = text[sp.start:sp.end]
			}
			s = strings.Join(parts, " ")
		}
		spans = spans[:0]
		cur.key, cur.value = cutField(s)
		return fn(cur)
	}
	line := 0
	for pos := 0; pos < len(text); line++ {
		end := strings.IndexByte(text[pos:], '\n')
		next := len(text)
		if end < 0 {
			end = len(text)
		} else {
			end += pos
			next = end + 1
		}
		l := strings.TrimRight(text[pos:end], " \t\r")
		trimmed := strings.TrimLeft(l, " \t")
		switch {
		case trimmed == "" || trimmed[0] == '#':
			// blank or comment
		case len(trimmed) < len(l): // starts with white space
			switch {
			case len(spans) == 0:
				warn(line+1, "line starts with white space but continues nothing (ignored)")
			case pos == lastNext:
				spans[len(spans)-1].end = pos + len(l)
				lastNext = next
			default:
				spans = append(spans, span{pos, pos + len(l)})
				lastNext = next
			}
		default:
			if err := flush(); err != nil {
				return err
			}
			cur = entry{line: line + 1}
			spans = append(spans, span{pos, pos + len(l)})
			lastNext = next
		}
		pos = next
	}
	return flush()
}

// cutField splits s at its first run of white space into the key and the
// trimmed rest.
func cutField(s string) (key, rest string) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t\r\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// splitTargets splits an alias value into addresses: separated by commas
// and/or white space, a double-quoted part kept whole ("john doe"@d).
// It allocates only the result slice.
func splitTargets(v string, out []string) []string {
	start := -1
	quoted := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"':
			quoted = !quoted
			if start < 0 {
				start = i
			}
		case c == '\\' && quoted && i+1 < len(v):
			i++
		case !quoted && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			if start >= 0 {
				out = append(out, v[start:i])
				start = -1
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		out = append(out, v[start:])
	}
	return out
}

// checkDomain returns why d (normalised) cannot be a mail domain, or "".
func checkDomain(d string) string {
	switch {
	case d == "":
		return "the domain is empty"
	case len(d) > 253:
		return "the domain is longer than 253 characters"
	case d[0] == '.' || strings.Contains(d, ".."):
		return fmt.Sprintf("domain %q has an empty label", d)
	case d[0] == '[':
		return "" // address literal
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c < 0x80 && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Sprintf("domain %q has the character %q", d, c)
		}
	}
	return ""
}

// checkLocal returns why a local part cannot be used, or "".
func checkLocal(l string) string {
	if len(l) > 256 {
		return "the local part is longer than 256 characters"
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; c < 0x20 || c == 0x7f || c == '<' || c == '>' {
			return fmt.Sprintf("local part %q has the character %q", l, c)
		}
	}
	return ""
}
