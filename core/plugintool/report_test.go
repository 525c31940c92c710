package plugintool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
)

const noSubject = "From: alice@example.org\nTo: bob@example.com\n\nHello.\n"

// defaults are the [spam] thresholds of the embedded default configuration.
var defaults = filter.Spam{AddHeader: 5, Quarantine: 10, Reject: 15}

// TestTestSession: --auth-user, --tls and --listener reach the plugin as
// the auth user, TLS and listener properties.
func TestTestSession(t *testing.T) {
	dir := plugins(t, map[string]string{"scorer.wasm": "testdata/scorer"})
	cache := t.TempDir() // one compilation for all runs
	for _, c := range []struct {
		opts TestOptions
		want string
	}{
		{TestOptions{}, `session auth="" tls="" listener="smtp"`},
		{TestOptions{AuthUser: "alice@example.org", TLS: true, Listener: "submission"},
			`session auth="alice@example.org" tls="` + TLSDescription + `" listener="submission"`},
	} {
		o := c.opts
		o.Wasm, o.Message, o.From, o.Rcpts = filepath.Join(dir, "scorer.wasm"), []byte(message), "alice@example.org", []string{"bob@example.com"}
		o.CacheDir = cache
		stages, err := Test(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if logs := strings.Join(stages[2].Logs, "\n"); !strings.Contains(logs, c.want) {
			t.Errorf("%+v: mail stage logged %q, want %q", c.opts, logs, c.want)
		}
	}
}

// TestTestScores: the output gives the total, the symbols and what the
// [spam] thresholds make of them, in text and JSON; the data stage shows a
// spam refusal and a hold as the server would apply them.
func TestTestScores(t *testing.T) {
	cache := t.TempDir() // one compilation for all runs
	for _, c := range []struct {
		score  float64
		action string
		why    string
		effect string
		header string // the X-Spam-Status the data stage adds, "" for none
	}{
		{3, "none", "3 is under add_header 5: no X-Spam-Status header", "", ""},
		{6, "header", "6 is at or over add_header 5: X-Spam-Status added", "", "X-Spam-Status: Yes, score=6.0 symbols=MISSING_SUBJECT(6)"},
		{12, "quarantine", "12 is at or over quarantine 10: held in the queue", "message held", "X-Spam-Status: Yes, score=12.0 symbols=MISSING_SUBJECT(12)"},
		{20, "reject", "20 is at or over reject 15: refused with 550 5.7.1", "refused 550 5.7.1 Message rejected as spam (score 20.0) ([spam] reject)", ""},
	} {
		dir := plugins(t, map[string]string{"scorer.wasm": "testdata/scorer",
			"scorer.toml": fmt.Sprintf("[config]\nscore = %v\n", c.score)})
		stages, err := Test(context.Background(), TestOptions{Wasm: filepath.Join(dir, "scorer.wasm"), Message: []byte(noSubject),
			From: "alice@example.org", Rcpts: []string{"bob@example.com"}, Spam: defaults, CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		sp := SpamOf(stages, defaults)
		if sp.Score != c.score || sp.Action != c.action || !strings.Contains(sp.Why, c.why) {
			t.Errorf("score %v: %+v, want action %s, why %q", c.score, sp, c.action, c.why)
		}
		var out bytes.Buffer
		if err := WriteStages(&out, stages); err != nil {
			t.Fatal(err)
		}
		if err := WriteSpam(&out, sp); err != nil {
			t.Fatal(err)
		}
		wantLines := []string{
			fmt.Sprintf("    score %+g MISSING_SUBJECT (scorer), total %g\n", c.score, c.score),
			fmt.Sprintf("score %g, symbols MISSING_SUBJECT(%g)\n", c.score, c.score),
			"spam  " + c.action + ": " + c.why,
			"([spam] add_header 5, quarantine 10, reject 15)\n",
		}
		if c.effect != "" {
			wantLines = append(wantLines, "data                     continue: "+c.effect+"\n")
		}
		if c.header != "" {
			wantLines = append(wantLines, "    header + "+c.header+"\n")
		} else if strings.Contains(out.String(), "header + X-Spam-Status") {
			t.Errorf("score %v: an X-Spam-Status field shown:\n%s", c.score, out.String())
		}
		for _, l := range wantLines {
			if !strings.Contains(out.String(), l) {
				t.Errorf("score %v: output lacks %q:\n%s", c.score, l, out.String())
			}
		}
		out.Reset()
		if err := WriteJSON(&out, stages, sp); err != nil {
			t.Fatal(err)
		}
		var js struct {
			Stages []struct {
				Stage, Verdict, Effect string
				Symbols                []struct{ Plugin, Name string }
				HeaderDiff             []string `json:"header_diff"`
			}
			Score   float64
			Symbols []struct {
				Plugin, Name string
				Score        float64
			}
			Spam struct {
				Action    string
				AddHeader float64 `json:"add_header"`
			}
		}
		if err := json.Unmarshal(out.Bytes(), &js); err != nil {
			t.Fatalf("--json output: %v\n%s", err, out.String())
		}
		if js.Score != c.score || len(js.Symbols) != 1 || js.Symbols[0].Name != "MISSING_SUBJECT" || js.Symbols[0].Plugin != "scorer" ||
			js.Spam.Action != c.action || js.Spam.AddHeader != 5 || len(js.Stages) != len(stages) || js.Stages[4].Stage != "data" ||
			js.Stages[4].Effect != c.effect || len(js.Stages[4].Symbols) != 1 {
			t.Errorf("score %v: JSON %+v", c.score, js)
		}
		if got := strings.Join(js.Stages[4].HeaderDiff, "|"); c.header != "" && got != "+ "+c.header || c.header == "" && got != "" {
			t.Errorf("score %v: JSON data stage header_diff %q, want %q", c.score, got, c.header)
		}
	}
}

// TestTestConfigErrorNamesAuthorsFile: a mistake in the NAME.toml given
// with --config is reported with that file's path and line, not the
// temporary copy's.
func TestTestConfigErrorNamesAuthorsFile(t *testing.T) {
	dir := plugins(t, map[string]string{"scorer.wasm": "testdata/scorer"})
	typo := filepath.Join(t.TempDir(), "typo.toml")
	if err := os.WriteFile(typo, []byte("failure_policy = \"continue\"\ntimeout = \"1s\"\nfailure_polcy = \"tempfail\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Test(context.Background(), TestOptions{Wasm: filepath.Join(dir, "scorer.wasm"), Config: typo,
		Message: []byte(message), From: "a@example.org", Rcpts: []string{"b@example.com"}})
	if err == nil || !strings.HasPrefix(err.Error(), typo+":3: unknown key \"failure_polcy\"") || strings.Contains(err.Error(), "sluice-plugin-test-") {
		t.Errorf("error %v, want it to start with %s:3: unknown key", err, typo)
	}
}
