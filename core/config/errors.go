package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// Error is one mistake in a configuration file. Its text names the file, the
// line (or "(default)" for a value the file did not set), the key and what is
// wrong, for example:
//
//	sluice.toml:12: smtp.max_recipients: must be at least 1
type Error struct {
	// File is the name the configuration was loaded from.
	File string
	// Line is the 1-based line of the key, or 0 when the value came from the
	// built-in default.
	Line int
	// Key is the dotted key ("queue.min_backoff"), empty for syntax errors
	// and unknown keys, whose Msg names the key itself.
	Key string
	// Msg says what is wrong and how to write it instead.
	Msg string
}

// Error formats the mistake as file:line: key: message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d: ", e.Line)
	} else {
		b.WriteString(" (default): ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// joinErrors sorts errs by line and joins them, one per line of text.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// mismatchRE matches go-toml's type mismatch message.
var mismatchRE = regexp.MustCompile(`^cannot decode TOML (\w+) into .*of type (\S+)$`)

// prefixRE matches the error netip.Prefix.UnmarshalText returns.
var prefixRE = regexp.MustCompile(`^netip\.ParsePrefix\((".*")\): (.*)$`)

// decodeErrors turns an error from go-toml into Errors naming file, line and
// key in Sluice's words.
func decodeErrors(file string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]*Error, 0, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			key := strings.Join(de.Key(), ".")
			msg := fmt.Sprintf("unknown key %q", key)
			if strings.Contains(de.Error(), "table") {
				msg = fmt.Sprintf("unknown table %q", key)
			}
			if s := suggest(key); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs = append(errs, &Error{File: file, Line: line, Msg: msg})
		}
		return joinErrors(errs)
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return fmt.Errorf("%s: %w", file, err)
	}
	line, _ := de.Position()
	key := strings.Join(de.Key(), ".")
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if key == "" {
		return &Error{File: file, Line: line, Msg: "not valid TOML: " + msg}
	}
	if m := mismatchRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("expected %s, not %s", describeType(m[2]), describeKind(m[1]))
	} else if m := prefixRE.FindStringSubmatch(msg); m != nil {
		msg = badNetwork(m[1], m[2])
	}
	return &Error{File: file, Line: line, Key: key, Msg: msg}
}

// badNetwork is the message for a trusted network that does not parse.
func badNetwork(quoted, why string) string {
	return fmt.Sprintf(`bad network %s: %s; write it in CIDR form like "192.0.2.0/24" or "2001:db8::/32"`, quoted, why)
}

// describeType names a Go field type the way the file spells its values.
func describeType(t string) string {
	switch t {
	case "int", "int64":
		return "a whole number"
	case "string":
		return "a quoted string"
	case "bool":
		return "true or false"
	case "[]string", "[]netip.Prefix":
		return `a list of quoted strings like ["a", "b"]`
	case "config.Duration":
		return `a quoted duration like "30s", "5m" or "1h"`
	case "config.Size":
		return `a size like "50MiB" or a whole number of bytes`
	case "netip.Prefix":
		return `a quoted network like "192.0.2.0/24"`
	}
	if strings.HasPrefix(t, "[]config.") {
		return "a list of tables ([[…]] sections)"
	}
	if strings.HasPrefix(t, "config.") {
		return "a table"
	}
	return t
}

// describeKind names a TOML value kind as go-toml reports it.
func describeKind(k string) string {
	switch k {
	case "integer":
		return "a number"
	case "array":
		return "a list"
	case "table", "inline":
		return "a table"
	case "bool", "boolean":
		return "true/false"
	case "float":
		return "a decimal number"
	}
	return "a " + k
}

// knownKeys lists every dotted key the Config type accepts.
var knownKeys = collectKeys(reflect.TypeOf(Config{}), "")

func collectKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			keys = append(keys, collectKeys(f.Type, prefix)...) // embedded: same table
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
			keys = append(keys, collectKeys(f.Type, key+".")...)
		}
	}
	return keys
}

// suggest returns the known key closest to an unknown one, or "" when none
// is close enough to be a likely typo.
func suggest(key string) string {
	best, bestDist := "", 3
	if len(key) < 6 {
		bestDist = 2
	}
	for _, k := range knownKeys {
		if abs(len(key)-len(k)) >= bestDist {
			continue
		}
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours cost one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
