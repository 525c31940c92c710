package plugintool

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/pluginapi"
)

// TLSDescription is what the TLS property reads in a run with TLS on
// (TestOptions.TLS): the description the server gives a TLS 1.3 session.
const TLSDescription = "TLS1.3 TLS_AES_128_GCM_SHA256"

// Spam is what the [spam] thresholds make of a message's score, as the
// server's data stage applies them (core/filter's Session).
type Spam struct {
	// Score is the message's total after the data stage; Symbols its
	// contributions.
	Score   float64
	Symbols []filter.Symbol
	// Thresholds are the [spam] table the run applied; Config the
	// server configuration file it came from ("": the defaults).
	Thresholds filter.Spam
	Config     string
	// Action is "none", "header" (X-Spam-Status added), "quarantine"
	// (held in the queue, the header added too when over add_header) or
	// "reject" (550 5.7.1 at end of data).
	Action string
	// Why says it for a person: "3 is under add_header 5: no
	// X-Spam-Status header, the message is queued".
	Why string
}

// SpamOf applies the thresholds to the scores the stages added, as the
// server does after the data stage: no symbol, no action.
func SpamOf(stages []Stage, th filter.Spam) Spam {
	sp := Spam{Thresholds: th, Action: "none"}
	for _, st := range stages {
		sp.Symbols = append(sp.Symbols, st.Symbols...)
		if st.Hook <= pluginapi.HookData { // the thresholds apply after data
			sp.Score = st.Score
		}
	}
	g := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	score := g(sp.Score)
	switch {
	case len(sp.Symbols) == 0:
		sp.Why = "no plugin added a score"
	case th.Reject > 0 && sp.Score >= th.Reject:
		sp.Action, sp.Why = "reject", fmt.Sprintf("%s is at or over reject %s: refused with 550 5.7.1 at end of data", score, g(th.Reject))
	case th.Quarantine > 0 && sp.Score >= th.Quarantine:
		sp.Action, sp.Why = "quarantine", fmt.Sprintf("%s is at or over quarantine %s: held in the queue (sluice queue release)", score, g(th.Quarantine))
	case th.AddHeader > 0 && sp.Score >= th.AddHeader:
		sp.Action, sp.Why = "header", fmt.Sprintf("%s is at or over add_header %s: X-Spam-Status added, the message is queued", score, g(th.AddHeader))
	case th.AddHeader > 0:
		sp.Why = fmt.Sprintf("%s is under add_header %s: no X-Spam-Status header, the message is queued (the server logs it as \"scored\")", score, g(th.AddHeader))
	default:
		sp.Why = fmt.Sprintf("%s: no [spam] threshold is set, the message is queued", score)
	}
	return sp
}

// WriteSpam prints the score summary after the stages.
func WriteSpam(w io.Writer, sp Spam) error {
	syms := filter.SymbolList(sp.Symbols)
	if syms == "" {
		syms = "(none)"
	}
	table := "[spam]"
	if sp.Config != "" {
		table += " of " + sp.Config + ":"
	}
	_, err := fmt.Fprintf(w, "score %s, symbols %s\nspam  %s: %s (%s add_header %g, quarantine %g, reject %g)\n",
		strconv.FormatFloat(sp.Score, 'g', -1, 64), syms, sp.Action, sp.Why, table,
		sp.Thresholds.AddHeader, sp.Thresholds.Quarantine, sp.Thresholds.Reject)
	return err
}

// JSON output, for scripting a plugin's CI (`sluice plugin test --json`).
type (
	jsonReport struct {
		Stages  []jsonStage  `json:"stages"`
		Score   float64      `json:"score"`
		Symbols []jsonSymbol `json:"symbols"`
		Spam    jsonSpam     `json:"spam"`
	}
	jsonStage struct {
		Stage      string            `json:"stage"`
		Hook       string            `json:"hook"`
		Verdict    string            `json:"verdict"`
		Reply      string            `json:"reply,omitempty"`
		Plugin     string            `json:"plugin,omitempty"`
		Effect     string            `json:"effect,omitempty"`
		Symbols    []jsonSymbol      `json:"symbols,omitempty"`
		Score      float64           `json:"score"`
		HeaderDiff []string          `json:"header_diff,omitempty"`
		Rcpts      []string          `json:"rcpts,omitempty"`
		Route      string            `json:"route,omitempty"`
		Notes      map[string]string `json:"notes,omitempty"`
		Logs       []string          `json:"logs,omitempty"`
	}
	jsonSymbol struct {
		Plugin string  `json:"plugin"`
		Name   string  `json:"name"`
		Score  float64 `json:"score"`
	}
	jsonSpam struct {
		Action     string  `json:"action"`
		Why        string  `json:"why"`
		Config     string  `json:"config,omitempty"`
		AddHeader  float64 `json:"add_header"`
		Quarantine float64 `json:"quarantine"`
		Reject     float64 `json:"reject"`
	}
)

func jsonSymbols(syms []filter.Symbol) []jsonSymbol {
	out := make([]jsonSymbol, 0, len(syms))
	for _, s := range syms {
		out = append(out, jsonSymbol{Plugin: s.Plugin, Name: s.Name, Score: s.Score})
	}
	return out
}

// WriteJSON prints the stages and the score summary as one JSON object:
// {"stages": [{"stage", "hook", "verdict", "reply", "plugin", "effect",
// "symbols", "score", "header_diff", "rcpts", "route", "notes", "logs"}],
// "score", "symbols": [{"plugin", "name", "score"}], "spam": {"action",
// "why", "config", "add_header", "quarantine", "reject"}}.
func WriteJSON(w io.Writer, stages []Stage, sp Spam) error {
	r := jsonReport{Stages: []jsonStage{}, Score: sp.Score, Symbols: jsonSymbols(sp.Symbols),
		Spam: jsonSpam{Action: sp.Action, Why: sp.Why, Config: sp.Config, AddHeader: sp.Thresholds.AddHeader,
			Quarantine: sp.Thresholds.Quarantine, Reject: sp.Thresholds.Reject}}
	for _, st := range stages {
		js := jsonStage{Stage: st.Name, Hook: st.Hook.String(), Verdict: st.Result.Verdict.String(),
			Plugin: st.Result.Plugin, Effect: effect(st), Score: st.Score, HeaderDiff: st.HeaderDiff,
			Route: st.Route, Notes: st.Notes, Logs: st.Logs}
		if len(st.Symbols) > 0 {
			js.Symbols = jsonSymbols(st.Symbols)
		}
		if st.Result.Reply.Code != 0 {
			js.Reply = st.Result.Reply.String()
		} else if st.Outcome.Reply != nil {
			js.Reply = st.Outcome.Reply.String()
		}
		if st.Hook == pluginapi.HookRcpt || st.Hook == pluginapi.HookData {
			js.Rcpts = append([]string{}, st.Rcpts...)
		}
		r.Stages = append(r.Stages, js)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
