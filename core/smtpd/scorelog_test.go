package smtpd

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/pluginapi"
)

// TestDataLineCarriesScore: a message the plugins scored gets a data-stage
// line with its score and symbols, also under every [spam] threshold (no
// header then); a held one's "quarantined" line has them too; a message
// nobody scored gets no "scored" line. The queue's "queued" line of every
// message has its score and symbols (the context Enqueue is given).
func TestDataLineCarriesScore(t *testing.T) {
	for _, c := range []struct {
		scores  []float64
		msg     string
		symbols string
	}{
		{[]float64{3}, "scored", "MISSING_SUBJECT(3)"},
		{[]float64{6, -1.5}, "scored", "MISSING_SUBJECT(6),MISSING_SUBJECT(-1.5)"},
		{[]float64{10}, "quarantined", "MISSING_SUBJECT(10)"},
		{nil, "", ""},
	} {
		q := &fakeQueue{}
		logs := &testlog.Buffer{}
		opts := testOptions(q)
		opts.Logger = jsonLogger(logs)
		opts.Spam = filter.Spam{AddHeader: 5, Quarantine: 10, Reject: 15}
		opts.Filters = &scriptedFilters{act: func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
			if hook == pluginapi.HookData {
				for _, s := range c.scores {
					txn.Symbols = append(txn.Symbols, filter.Symbol{Plugin: "p", Name: "MISSING_SUBJECT", Score: s})
					txn.Score += s
				}
			}
			return filter.Result{}
		}}
		rc := dialRaw(t, startServer(t, opts), "")
		rc.greet()
		rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
		rc.expect(250)
		rc.expect(250)
		rc.expect(354)
		rc.send("From: s@example.org\r\n\r\nbody\r\n.\r\n")
		rc.expect(250)
		envs, _ := q.got()
		want := 0.0
		for _, s := range c.scores {
			want += s
		}
		q.mu.Lock()
		queued := map[string]any{}
		for _, a := range q.attrs[0] {
			queued[a.Key] = a.Value.Any()
		}
		q.mu.Unlock()
		if queued["score"] != want || queued["symbols"] != c.symbols {
			t.Errorf("scores %v: the queued line's attributes %v; want score %v, symbols %q", c.scores, queued, want, c.symbols)
		}
		var found map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			m := map[string]any{}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			if m["msg"] == "scored" || m["msg"] == "quarantined" {
				found = m
			}
		}
		if c.msg == "" {
			if found != nil {
				t.Errorf("no score: got line %v", found)
			}
			continue
		}
		if found == nil || found["msg"] != c.msg || found["score"] != want || found["symbols"] != c.symbols || found["id"] != envs[0].ID {
			t.Errorf("scores %v: line %v, want %s with id %s, score %v, symbols %s", c.scores, found, c.msg, envs[0].ID, want, c.symbols)
		}
	}
}
