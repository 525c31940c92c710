package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyIndex maps each key written in a file to where it was written, so that
// checks made after decoding can still point at a line.
type keyIndex struct {
	// lines maps a dotted key ("smtp.listen") and each array element
	// ("smtp.listen[1]") to its 1-based line.
	lines map[string]int
	// kinds maps a dotted key to the TOML kind of its value.
	kinds map[string]unstable.Kind
	// tables counts the [[name]] array tables seen so far.
	tables map[string]int
}

// indexKeys parses data and records the line of every key and array element.
// A document that does not parse yields what was read before the error; the
// decoder reports the syntax error itself.
func indexKeys(data []byte) *keyIndex {
	ix := &keyIndex{lines: map[string]int{}, kinds: map[string]unstable.Kind{}, tables: map[string]int{}}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.Table:
			table = keyParts(expr.Key())
			ix.add(&p, strings.Join(table, "."), expr.Key())
		case unstable.ArrayTable:
			// Each [[name]] is element n of the array "name": its keys
			// are indexed as "name[n].key".
			table = keyParts(expr.Key())
			name := strings.Join(table, ".")
			ix.add(&p, name, expr.Key())
			n := ix.tables[name]
			ix.tables[name]++
			table[len(table)-1] += "[" + strconv.Itoa(n) + "]"
			ix.add(&p, strings.Join(table, "."), expr.Key())
		case unstable.KeyValue:
			ix.keyValue(&p, table, expr)
		}
	}
	return ix
}

// keyValue records one key-value and, for inline tables and arrays, what it
// holds.
func (ix *keyIndex) keyValue(p *unstable.Parser, prefix []string, kv *unstable.Node) {
	parts := append(append([]string(nil), prefix...), keyParts(kv.Key())...)
	key := strings.Join(parts, ".")
	ix.add(p, key, kv.Key())
	v := kv.Value()
	ix.kinds[key] = v.Kind
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			ix.keyValue(p, parts, it.Node())
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			if r := it.Node().Raw; r.Length > 0 {
				ix.lines[key+"["+strconv.Itoa(i)+"]"] = p.Shape(r).Start.Line
			}
		}
	}
}

// add records the line of the first part of a key.
func (ix *keyIndex) add(p *unstable.Parser, key string, it unstable.Iterator) {
	if _, ok := ix.lines[key]; ok || !it.Next() {
		return
	}
	ix.lines[key] = p.Shape(it.Node().Raw).Start.Line
}

// line returns where key (or, failing that, the array holding the element
// key) was written, and false when the file does not set it.
func (ix *keyIndex) line(key string) (int, bool) {
	if l, ok := ix.lines[key]; ok {
		return l, true
	}
	if i := strings.LastIndexByte(key, ']'); i > 0 && i < len(key)-1 {
		// A key the file left out of an array table element: the
		// element's [[table]] line.
		if l, ok := ix.lines[key[:i+1]]; ok {
			return l, true
		}
	}
	if i := strings.IndexByte(key, '['); i > 0 {
		l, ok := ix.lines[key[:i]]
		return l, ok
	}
	return 0, false
}

// keyParts returns the parts of a (possibly dotted) key.
func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}
