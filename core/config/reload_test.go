package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeConf(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReload: the keys that changed are listed, the ones a running server
// cannot change flagged and kept (data_dir before its expansion, so the
// paths under it stay), and a file with a mistake gives file:line and no
// configuration.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.toml")
	base := `data_dir = "/srv/a"
local_domains = ["a.test"]
[smtp]
listen = ["127.0.0.1:2525"]
max_recipients = 10
`
	writeConf(t, path, base)
	cur, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		text        string
		want        []Change
		check       func(t *testing.T, c *Config)
		errContains string
	}{
		{name: "unchanged", text: base},
		{
			name: "live keys",
			text: `data_dir = "/srv/b"
local_domains = ["a.test", "b.test"]
[smtp]
listen = ["127.0.0.1:2525", "127.0.0.1:2526"]
max_recipients = 20
[submission]
max_recipients = 7
`,
			want: []Change{{Key: "data_dir", Restart: true}, {Key: "local_domains"}, {Key: "smtp.listen"}, {Key: "smtp.max_recipients"}, {Key: "submission.max_recipients"}},
			check: func(t *testing.T, c *Config) {
				if c.DataDir != "/srv/a" || c.Local.Maildir != "/srv/a/mail/{domain}/{user}" || c.Admin.Socket != "/srv/a/admin.sock" {
					t.Errorf("data_dir %q, maildir %q, socket %q: want the running data_dir kept", c.DataDir, c.Local.Maildir, c.Admin.Socket)
				}
				if c.SMTP.MaxRecipients != 20 || len(c.LocalDomains) != 2 || c.Submission.MaxRecipients != 7 {
					t.Errorf("live keys not taken: %+v %v %d", c.SMTP, c.LocalDomains, c.Submission.MaxRecipients)
				}
			},
		},
		{
			name: "unknown key",
			text: base + "hostname_is_not_here = false\n",
			// an unknown key is a mistake
			errContains: "sluice.toml:6",
		},
		{
			name: "kept",
			text: "hostname = \"new.test\"\n" + base + "[queue]\nworkers = 3\n[admin]\nsocket = \"/run/x.sock\"\n",
			want: []Change{{Key: "hostname", Restart: true}, {Key: "queue.workers", Restart: true}, {Key: "admin.socket", Restart: true}},
			check: func(t *testing.T, c *Config) {
				if c.Hostname != cur.Hostname || c.Queue != cur.Queue || c.Admin != cur.Admin {
					t.Errorf("restart keys changed: %q %+v %+v", c.Hostname, c.Queue, c.Admin)
				}
			},
		},
		{
			name: "metrics kept",
			text: base + "[metrics]\nenabled = false\n",
			want: []Change{{Key: "metrics.enabled", Restart: true}},
			check: func(t *testing.T, c *Config) {
				if !c.Metrics.Enabled {
					t.Error("metrics.enabled changed under a running server")
				}
			},
		},
		{
			name:        "mistake",
			text:        base + "[delivery]\nport = 0\n",
			errContains: "sluice.toml:7: delivery.port",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writeConf(t, path, tc.text)
			c, changes, err := Reload(path, cur)
			if tc.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errContains) || c != nil {
					t.Fatalf("Reload = %v, %v; want no configuration and an error with %q", c, err, tc.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(changes, tc.want) {
				t.Errorf("changes %+v, want %+v", changes, tc.want)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			if len(tc.want) == 0 && !reflect.DeepEqual(c, cur) {
				t.Errorf("unchanged file reloads to\n%+v\nwant\n%+v", c, cur)
			}
		})
	}
}

// TestDiffCoversEveryKey: every key of the configuration is compared, so
// that no change can pass a reload unnoticed: each leaf field set to a
// different value shows up as exactly its key.
func TestDiffCoversEveryKey(t *testing.T) {
	a := Default()
	var keys []string
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case f.Anonymous:
				walk(v.Field(i), prefix)
			case f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler):
				walk(v.Field(i), prefix+name+".")
			default:
				keys = append(keys, prefix+name)
				b := Default()
				bf := fieldByKey(reflect.ValueOf(b).Elem(), prefix+name)
				changeValue(t, bf, prefix+name)
				if got := Diff(a, b); len(got) != 1 || got[0].Key != prefix+name {
					t.Errorf("changing %s: Diff = %+v", prefix+name, got)
				}
			}
		}
	}
	walk(reflect.ValueOf(a).Elem(), "")
	if len(keys) < 50 {
		t.Errorf("only %d keys walked", len(keys))
	}
}

// fieldByKey finds the field of a dotted key.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	parts := strings.Split(key, ".")
	for _, p := range parts {
		v = fieldByTag(v, p)
	}
	return v
}

func fieldByTag(v reflect.Value, tag string) reflect.Value {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Anonymous {
			if r := fieldByTag(v.Field(i), tag); r.IsValid() {
				return r
			}
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == tag {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

// changeValue sets v to a value different from its current one.
func changeValue(t *testing.T, v reflect.Value, key string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint32:
		v.SetUint(v.Uint() + 1)
	case reflect.Float64:
		v.SetFloat(v.Float() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	default:
		t.Fatalf("%s: no way to change a %s", key, v.Kind())
	}
}
