// Package scaffold writes a new Sluice plugin's own module, outside the
// Sluice tree, ready to test and build (`sluice plugin new`): a Go module
// whose go.mod replaces github.com/sluice-mta/sluice with a Sluice source
// tree and whose go.sum is tidy, a hook skeleton, its NAME.toml, tests run
// natively and as .wasm in the real filter host, and a Makefile with the
// build line; or the same for a C plugin built with clang without libc.
package scaffold

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"
)

//go:embed templates
var templates embed.FS

// sluiceModule is the module path of the Sluice tree (and its SDK).
const sluiceModule = "github.com/sluice-mta/sluice"

// Options describe the plugin to create.
type Options struct {
	// Name is the plugin's name: its NAME.wasm and NAME.toml, and the
	// module path unless Module is set. Lowercase letters, digits and
	// dashes, starting with a letter.
	Name string
	// Dir is the directory to create; it must not exist or be empty.
	Dir string
	// Lang is "go" (default) or "c".
	Lang string
	// SDK is the Sluice source tree (the directory of its go.mod, or one
	// in it such as its sdk directory) the module's replace directive
	// points at ("": see DefaultSDK).
	SDK string
	// Module is the Go module path (default: Name).
	Module string
	// Go is the go command that tidies the module ("": "go" on PATH);
	// Env its environment (nil: this process's).
	Go  string
	Env []string
	// NoTidy skips `go mod tidy` (the golden-file test).
	NoTidy bool
}

// Result is what New wrote.
type Result struct {
	// Dir is the module's directory (absolute); Files its files, relative
	// to it; SDK the Sluice tree its go.mod points at.
	Dir   string
	Files []string
	SDK   string
	// Next are the commands to run in Dir, in order: the test, the build,
	// `sluice plugin check` and `test`, the copy into the server's plugins
	// directory (PLUGINS_DIR). The module's README and Makefile give the
	// same lines.
	Next []string
}

// testArgs are the arguments of `sluice plugin test NAME.wasm` for each
// skeleton: a session that shows what it does (a refused recipient, the
// header of an authenticated customer, the score of testdata/message.eml).
var testArgs = map[string]string{
	"go": "--eml testdata/message.eml --from a@example.org --rcpt ok@example.com --rcpt blocked@example.com --auth-user alice --listener submission",
	"c":  "--eml testdata/message.eml --from a@example.org --rcpt ok@example.com --auth-user alice --listener submission",
}

// next lists the commands after `sluice plugin new` (Result.Next).
func next(lang, name string) []string {
	build := "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o " + name + ".wasm ."
	if lang == "c" {
		build = "make " + name + ".wasm"
	}
	return []string{
		"go test ./...",
		build,
		"sluice plugin check " + name + ".wasm",
		"sluice plugin test " + name + ".wasm " + testArgs[lang],
		"cp " + name + ".wasm " + name + ".toml PLUGINS_DIR/",
	}
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// New writes the plugin's module and runs `go mod tidy` in it.
func New(ctx context.Context, opts Options) (*Result, error) {
	if !validName.MatchString(opts.Name) {
		return nil, fmt.Errorf("plugin name %q: use lowercase letters, digits and dashes, starting with a letter (it names NAME.wasm and NAME.toml)", opts.Name)
	}
	if opts.Lang == "" {
		opts.Lang = "go"
	}
	if opts.Lang != "go" && opts.Lang != "c" {
		return nil, fmt.Errorf("--lang %q: give go or c", opts.Lang)
	}
	if opts.Module == "" {
		opts.Module = opts.Name
	}
	if opts.Dir == "" {
		opts.Dir = opts.Name
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%s exists and is not empty: give another directory", dir)
	}
	sdk := opts.SDK
	if sdk == "" {
		if sdk = DefaultSDK(); sdk == "" {
			return nil, errors.New("cannot find the Sluice source tree: give --sdk PATH, the tree (the directory of its go.mod, module " + sluiceModule + ") or its sdk directory")
		}
	}
	sdk, goVersion, err := checkSDK(sdk)
	if err != nil {
		return nil, err
	}
	data := struct{ Name, Module, SDK, GoVersion, TestArgs string }{opts.Name, opts.Module, sdk, goVersion, testArgs[opts.Lang]}
	res := &Result{Dir: dir, SDK: sdk, Next: next(opts.Lang, opts.Name)}
	root := "templates/" + opts.Lang
	err = fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := template.New(p).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := t.Execute(&out, data); err != nil {
			return err
		}
		rel := outName(strings.TrimPrefix(p, root+"/"), opts.Name)
		res.Files = append(res.Files, rel)
		return write(filepath.Join(dir, rel), out.Bytes())
	})
	if err != nil {
		return nil, err
	}
	if opts.Lang == "c" {
		h, err := os.ReadFile(filepath.Join(sdk, "sdk", "c", "sluice.h"))
		if err == nil {
			err = write(filepath.Join(dir, "sluice.h"), h)
		}
		if err != nil {
			return nil, err
		}
		res.Files = append(res.Files, "sluice.h")
	}
	if !opts.NoTidy {
		if err := tidy(ctx, dir, sdk, opts); err != nil {
			return res, err
		}
		res.Files = append(res.Files, "go.sum")
	}
	return res, nil
}

// outName maps a template's path to the file it writes: NAME.x becomes
// the plugin's name, gitignore .gitignore, message.eml goes to testdata/.
func outName(rel, name string) string {
	rel = strings.TrimSuffix(rel, ".tmpl")
	switch base := path.Base(rel); {
	case base == "gitignore":
		rel = path.Join(path.Dir(rel), ".gitignore")
	case base == "message.eml":
		rel = path.Join(path.Dir(rel), "testdata", base)
	case strings.HasPrefix(base, "NAME."):
		rel = path.Join(path.Dir(rel), name+strings.TrimPrefix(base, "NAME"))
	}
	return filepath.FromSlash(rel)
}

func write(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// checkSDK returns the absolute path of the Sluice tree at dir, or around
// it (dir may be the tree's sdk directory, or any directory in the tree:
// the first go.mod found going up decides, as for the go command), and
// its go version; or says why dir is not in one.
func checkSDK(dir string) (abs, goVersion string, err error) {
	start, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(start); err != nil {
		return "", "", fmt.Errorf("--sdk %s: %w: give the Sluice source tree (the directory of its go.mod) or its sdk directory", dir, err)
	}
	var b []byte
	for abs = start; ; abs = filepath.Dir(abs) {
		if b, err = os.ReadFile(filepath.Join(abs, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(abs) == abs {
			return "", "", fmt.Errorf("--sdk %s: no go.mod in it or above it: give the Sluice source tree (the directory of its go.mod) or its sdk directory", dir)
		}
	}
	mod := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b)
	if mod == nil || string(mod[1]) != sluiceModule {
		return "", "", fmt.Errorf("--sdk %s: %s is not module %s: give the Sluice source tree or its sdk directory", dir, filepath.Join(abs, "go.mod"), sluiceModule)
	}
	gov := regexp.MustCompile(`(?m)^go\s+(\S+)`).FindSubmatch(b)
	if gov == nil {
		return "", "", fmt.Errorf("--sdk %s: %s has no go line", dir, filepath.Join(abs, "go.mod"))
	}
	return abs, string(gov[1]), nil
}

// DefaultSDK is the Sluice tree this program was built from, when it is
// still there (a build without -trimpath records its source paths), or
// the one holding the working directory; "" when neither is.
func DefaultSDK() string {
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		// file is <tree>/core/plugintool/scaffold/scaffold.go.
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "..", ".."))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			candidates = append(candidates, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range candidates {
		if abs, _, err := checkSDK(c); err == nil {
			if _, err := os.Stat(filepath.Join(abs, "sdk", "sdktest")); err == nil {
				return abs
			}
		}
	}
	return ""
}

// tidy runs `go mod tidy` in dir, which writes go.sum from the module
// cache (the SDK's dependencies are there once Sluice was built). go.sum
// starts as a copy of the SDK's own: its checksums are the ones the build
// verified, so tidy needs no checksum database (offline, it could not
// reach one) and keeps only the lines the plugin needs.
func tidy(ctx context.Context, dir, sdk string, opts Options) error {
	if sum, err := os.ReadFile(filepath.Join(sdk, "go.sum")); err == nil {
		if err := write(filepath.Join(dir, "go.sum"), sum); err != nil {
			return err
		}
	}
	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "mod", "tidy")
	cmd.Dir, cmd.Env = dir, opts.Env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go mod tidy in %s: %v\n%s\nthe module is written; run `go mod tidy` there once the Go module cache or proxy can serve the SDK's dependencies", dir, err, bytes.TrimSpace(out))
	}
	return nil
}
