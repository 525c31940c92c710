package config

import (
	"encoding"
	"fmt"
	"os"
	"reflect"
	"strings"
)

// Change is one key whose value differs between two configurations.
type Change struct {
	// Key is the dotted key, like "smtp.max_recipients"; a list or a table
	// array ("delivery.route") is one key.
	Key string
	// Restart is set when a running server cannot change the key (see
	// Reload): it keeps its value until the next start.
	Restart bool
}

// restartKeys are the keys, and the sections (ending in "."), that a
// running server cannot change: where its data lives, the name it is
// known by (in the queue's bounces and the generated certificate too), the
// admin socket a reload is asked through, the queue's workers and timings,
// the HTTP listener, and whether metrics are counted (the observers are
// handed to the queue and the services at start), and where the shared
// state lives (the store is opened once).
var restartKeys = []string{"data_dir", "hostname", "node_id", "admin.", "queue.", "http.", "metrics.", "kv."}

// NeedsRestart reports whether a running server cannot change key.
func NeedsRestart(key string) bool {
	for _, k := range restartKeys {
		if key == k || strings.HasSuffix(k, ".") && strings.HasPrefix(key, k) {
			return true
		}
	}
	return false
}

// Reload reads the configuration at path again ("" is the built-in
// default) for a server running with cur, and returns it with the keys that
// changed. The keys a running server cannot change (NeedsRestart) keep
// cur's values — data_dir before {data_dir} is expanded, so that every path
// stays under the running data directory — and are listed with Restart
// set. A mistake in the file returns its file:line error, and nothing else.
func Reload(path string, cur *Config) (*Config, []Change, error) {
	name, data := DefaultName, []byte(nil)
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, nil, fmt.Errorf("reading configuration: %w", err)
		}
		name = path
	}
	c, err := parse(name, data, nil)
	if err != nil {
		return nil, nil, err
	}
	movedData := c.DataDir != cur.DataDir
	if movedData { // keep it, and the paths under it
		if c, err = parse(name, data, func(c *Config) { c.DataDir = cur.DataDir }); err != nil {
			return nil, nil, err
		}
	}
	var changes []Change
	if movedData {
		changes = append(changes, Change{Key: "data_dir", Restart: true})
	}
	for _, ch := range Diff(cur, c) {
		ch.Restart = NeedsRestart(ch.Key)
		changes = append(changes, ch)
	}
	c.Hostname, c.NodeID, c.Admin, c.Queue, c.HTTP, c.Metrics, c.KV = cur.Hostname, cur.NodeID, cur.Admin, cur.Queue, cur.HTTP, cur.Metrics, cur.KV
	return c, changes, nil
}

// Diff lists the keys whose values differ from a to b, in the order of
// Config's fields.
func Diff(a, b *Config) []Change {
	var out []Change
	diffStruct(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", &out)
	return out
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// diffStruct compares the fields of two structs of one type; prefix is
// the dotted key of their table ("" at the top).
func diffStruct(a, b reflect.Value, prefix string, out *[]Change) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fa, fb := a.Field(i), b.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case f.Anonymous && f.Type.Kind() == reflect.Struct: // its keys are the table's own
			diffStruct(fa, fb, prefix, out)
		case name == "-" || name == "":
		case f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler):
			diffStruct(fa, fb, prefix+name+".", out)
		case !reflect.DeepEqual(fa.Interface(), fb.Interface()):
			*out = append(*out, Change{Key: prefix + name})
		}
	}
}
