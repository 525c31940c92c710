package mail

import (
	"bytes"
	"strings"
)

// Field is one header field as it was written: its name and its raw
// bytes, from the name to the final line ending, folded continuation lines
// included. A field the core or a plugin adds is written "Name: value\r\n".
// A line in the header section that is not a field (no colon) is kept as a
// Field with an empty Name, so that nothing is lost.
type Field struct {
	Name string
	raw  []byte
}

// NewField builds a field "Name: value" with a CRLF ending. value may be
// folded ("a;\r\n\tb"); callers taking values from outside check them.
func NewField(name, value string) Field {
	raw := make([]byte, 0, len(name)+len(value)+4)
	raw = append(append(append(append(raw, name...), ':', ' '), value...), '\r', '\n')
	return Field{Name: name, raw: raw}
}

// Raw returns the field's bytes, final line ending included. The slice
// must not be modified.
func (f Field) Raw() []byte { return f.raw }

// Value returns the text after the colon as written: folding kept, the
// final line ending removed.
func (f Field) Value() string {
	v := f.raw
	if i := bytes.IndexByte(v, ':'); i >= 0 && f.Name != "" {
		v = v[i+1:]
	}
	v = bytes.TrimSuffix(v, []byte("\n"))
	v = bytes.TrimSuffix(v, []byte("\r"))
	return string(v)
}

// Unfolded returns the value with folding removed and surrounding white
// space trimmed.
func (f Field) Unfolded() string {
	v := f.Value()
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	}
	return strings.TrimSpace(v)
}

// Header is a message's header section, parsed once. Fields keep their
// original bytes unless edited, so an untouched header is written back
// byte for byte. The zero Header is empty.
type Header struct {
	// Fields in order, top first.
	Fields []Field
	// sep is the empty line that ended the section ("\r\n"), nil when the
	// message had none.
	sep    []byte
	edited bool
}

// ParseHeader splits msg into its header section and body (what follows
// the empty line). Lines end in CRLF or bare LF; a line starting with a
// space or tab continues the field before it. Fields alias msg. A message
// without the empty line is all header.
func ParseHeader(msg []byte) (Header, []byte) {
	var h Header
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		if len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n' {
			h.sep = line
			return h, msg[len(line):]
		}
		if (line[0] == ' ' || line[0] == '\t') && len(h.Fields) > 0 {
			last := &h.Fields[len(h.Fields)-1]
			last.raw = last.raw[:len(last.raw)+len(line)] // raw is a prefix of msg
			msg = msg[len(line):]
			continue
		}
		name := ""
		if i := bytes.IndexByte(line, ':'); i > 0 {
			for i > 0 && (line[i-1] == ' ' || line[i-1] == '\t') { // strings.TrimRight builds its cutset's table at every call
				i--
			}
			name = string(line[:i])
		}
		h.Fields = append(h.Fields, Field{Name: name, raw: msg[:len(line):len(msg)]})
		msg = msg[len(line):]
	}
	return h, nil
}

// Edited reports whether the header was changed since it was parsed.
func (h *Header) Edited() bool { return h.edited }

// Get returns the index-th (0-based) field of that name, compared without
// case.
func (h *Header) Get(name string, index int) (Field, bool) {
	for _, f := range h.Fields {
		if f.Name != "" && strings.EqualFold(f.Name, name) {
			if index == 0 {
				return f, true
			}
			index--
		}
	}
	return Field{}, false
}

// Values returns the unfolded values of every field of that name.
func (h *Header) Values(name string) []string {
	var out []string
	for _, f := range h.Fields {
		if f.Name != "" && strings.EqualFold(f.Name, name) {
			out = append(out, f.Unfolded())
		}
	}
	return out
}

// Count returns how many fields have that name.
func (h *Header) Count(name string) int {
	n := 0
	for _, f := range h.Fields {
		if f.Name != "" && strings.EqualFold(f.Name, name) {
			n++
		}
	}
	return n
}

// Prepend puts fields at the top, in the order given (trace and filter
// fields are added on top).
func (h *Header) Prepend(fs ...Field) {
	h.Fields = append(append(make([]Field, 0, len(fs)+len(h.Fields)), fs...), h.Fields...)
	h.edited = true
}

// Add prepends the field "name: value".
func (h *Header) Add(name, value string) { h.Prepend(NewField(name, value)) }

// Set replaces every field of that name with one "name: value" in the
// place of the first, or prepends it when there is none.
func (h *Header) Set(name, value string) {
	nf := NewField(name, value)
	out := h.Fields[:0:0]
	done := false
	for _, f := range h.Fields {
		if f.Name != "" && strings.EqualFold(f.Name, name) {
			if !done {
				out = append(out, nf)
				done = true
			}
			continue
		}
		out = append(out, f)
	}
	if !done {
		out = append([]Field{nf}, out...)
	}
	h.Fields = out
	h.edited = true
}

// Del deletes every field of that name and returns how many there were.
func (h *Header) Del(name string) int {
	return h.DelFunc(func(f Field) bool { return f.Name != "" && strings.EqualFold(f.Name, name) })
}

// DelFunc deletes the fields for which del returns true and returns how
// many it deleted.
func (h *Header) DelFunc(del func(Field) bool) int {
	var out []Field // allocated at the first deletion only
	for i, f := range h.Fields {
		switch {
		case del(f):
			if out == nil {
				out = make([]Field, i, len(h.Fields)-1)
				copy(out, h.Fields[:i])
			}
		case out != nil:
			out = append(out, f)
		}
	}
	if out == nil {
		return 0
	}
	n := len(h.Fields) - len(out)
	h.Fields = out
	h.edited = true
	return n
}

// Len is the size in bytes of the fields (without the ending empty line).
func (h *Header) Len() int {
	n := 0
	for _, f := range h.Fields {
		n += len(f.raw)
	}
	return n
}

// AppendTo appends the fields' bytes (without the ending empty line).
func (h *Header) AppendTo(dst []byte) []byte {
	for _, f := range h.Fields {
		dst = append(dst, f.raw...)
	}
	return dst
}

// Bytes returns the fields' bytes (without the ending empty line), as
// plugins read the header section.
func (h *Header) Bytes() []byte { return h.AppendTo(make([]byte, 0, h.Len())) }

// Message joins the header and body back into a message: the fields, the
// empty line (CRLF when the parsed message had none and there is a body)
// and the body. For an unedited header it gives the parsed bytes back.
func (h *Header) Message(body []byte) []byte {
	sep := h.sep
	if sep == nil && len(body) > 0 {
		sep = []byte("\r\n")
	}
	out := make([]byte, 0, h.Len()+len(sep)+len(body))
	return append(append(h.AppendTo(out), sep...), body...)
}
