package addressing

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// dump writes t sorted, one entry a line, for golden files.
func dump(t *Table) string {
	var lines []string
	for d := range t.domains {
		lines = append(lines, "domain   "+d)
	}
	for k := range t.mailboxes {
		lines = append(lines, "mailbox  "+k)
	}
	for d := range t.anyUser {
		lines = append(lines, "anyuser  @"+d)
	}
	targets := func(raw string) string { return strings.Join(splitTargets(raw, nil), " | ") }
	for k, v := range t.aliases {
		lines = append(lines, "alias    "+k+" -> "+targets(v))
	}
	for k, v := range t.bare {
		lines = append(lines, "bare     "+k+" -> "+targets(v))
	}
	for d, v := range t.catchAll {
		lines = append(lines, "catchall @"+d+" -> "+targets(v))
	}
	slices.Sort(lines)
	s := t.Stats()
	lines = append(lines, fmt.Sprintf("stats    domains=%d mailboxes=%d aliases=%d catchalls=%d", s.Domains, s.Mailboxes, s.Aliases, s.CatchAlls))
	for _, w := range t.Warnings() {
		lines = append(lines, "warning  "+w)
	}
	return strings.Join(lines, "\n") + "\n"
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestPostfixFiles loads Postfix's own virtual_alias_maps,
// virtual_mailbox_maps and virtual_mailbox_domains text files as they are
// and compares the Table with testdata/postfix.golden.
func TestPostfixFiles(t *testing.T) {
	tab, err := LoadTable(Files{
		Domains:   "testdata/postfix/domains",
		Mailboxes: "testdata/postfix/vmailbox",
		Aliases:   "testdata/postfix/virtual",
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/postfix.golden", dump(tab))
}

// TestBadFiles loads each testdata/bad file in the slot its extension
// names and compares the error with the .err file beside it.
func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.*")
	n := 0
	for _, f := range files {
		ext := filepath.Ext(f)
		if ext == ".err" {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			var fs Files
			switch ext {
			case ".aliases":
				fs.Aliases = f
			case ".mailboxes":
				fs.Mailboxes = f
			case ".domains":
				fs.Domains = f
			default:
				t.Fatalf("unknown extension %q", ext)
			}
			tab, err := LoadTable(fs)
			if err == nil {
				t.Fatalf("loaded without error:\n%s", dump(tab))
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("error line %q does not start with file:line", line)
				}
			}
			golden(t, strings.TrimSuffix(f, ext)+".err", err.Error()+"\n")
		})
	}
	if n == 0 {
		t.Fatal("no testdata/bad files")
	}
}

func TestScanFile(t *testing.T) {
	tests := []struct {
		name, text string
		want       []entry
		warns      int
	}{
		{"empty", "", nil, 0},
		{"comments and blanks", "# c\n\n   \n\t# indented\n", nil, 0},
		{"one", "a@b c@d", []entry{{1, "a@b", "c@d"}}, 0},
		{"crlf", "a@b c@d\r\ne@f\r\n", []entry{{1, "a@b", "c@d"}, {2, "e@f", ""}}, 0},
		{"continued", "a@b c@d,\n  e@f\nx@y z@w\n", []entry{{1, "a@b", "c@d,\n  e@f"}, {3, "x@y", "z@w"}}, 0},
		{"continued across a comment", "a@b c@d,\n# note\n  e@f\n", []entry{{1, "a@b", "c@d,   e@f"}}, 0},
		{"continuation first", "  orphan@x y@z\na@b c@d\n", []entry{{2, "a@b", "c@d"}}, 1},
		{"trailing space", "a@b   \t\n", []entry{{1, "a@b", ""}}, 0},
		{"no final newline", "a@b c@d", []entry{{1, "a@b", "c@d"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []entry
			warns := 0
			err := scanFile(tt.text, func(e entry) error { got = append(got, e); return nil }, func(int, string) { warns++ })
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if warns != tt.warns {
				t.Errorf("%d warnings, want %d", warns, tt.warns)
			}
		})
	}
}

func TestSplitTargets(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a@b", []string{"a@b"}},
		{"a@b, c@d,e@f  g@h", []string{"a@b", "c@d", "e@f", "g@h"}},
		{"a@b,\n   c@d", []string{"a@b", "c@d"}},
		{`"john doe"@example.com, x@y`, []string{`"john doe"@example.com`, "x@y"}},
		{`"a\"b,c"@d`, []string{`"a\"b,c"@d`}},
		{" , ,", nil},
	}
	for _, tt := range tests {
		if got := splitTargets(tt.in, nil); !slices.Equal(got, tt.want) {
			t.Errorf("splitTargets(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzLoadAliases(f *testing.F) {
	for _, p := range []string{"testdata/postfix/virtual", "testdata/postfix/vmailbox"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("a@b c@d,\n  e@f\n#x\n  g@h\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		p := filepath.Join(dir, "aliases")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		tab, err := LoadTable(Files{Aliases: p, Mailboxes: p})
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, p+":") && !strings.HasPrefix(line, "…") {
					t.Errorf("error line %q does not name file:line", line)
				}
			}
			return
		}
		// Whatever loads resolves without panicking.
		r, err := New(Options{LocalDomains: []string{"example.com"}, Files: Files{Aliases: p, Mailboxes: p}})
		if err != nil {
			t.Fatal(err)
		}
		for k := range tab.aliases {
			r.Resolve(t.Context(), k)
		}
	})
}
