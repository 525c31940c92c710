package headers

import (
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

const received = "Received: from laptop.internal ([203.0.113.9])\n\tby mx.example.com (Sluice) with ESMTPSA id Q1;\n\tSun, 22 Nov 2026 18:00:00 +0000\n" +
	"Received: from [10.0.0.5] by laptop.internal; Sun, 22 Nov 2026 17:59:59 +0000\n"

const message = received + "X-Originating-IP: [203.0.113.9]\nFrom: <alice@example.com>\nTo: <bob@example.org>\n" +
	"Subject: Quarterly report\nX-Mailer: Outlook 16\nX-Customer-ID: forged\nX-Spam-Status: No, score=-9\n\nHello.\n"

func TestData(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		config map[string]any
		want   string // the header section after the data stage
	}{
		{"no config changes nothing", "alice", nil, strings.ReplaceAll(strings.SplitN(message, "\n\n", 2)[0], "\n", "\r\n") + "\r\n"},
		{"strip received for auth", "alice", map[string]any{"strip_received_for_auth": true},
			"Received: by mx.example.com (Sluice) with ESMTPSA id Q1; Sun, 22 Nov 2026 18:00:00 +0000\r\nFrom: <alice@example.com>\r\nTo: <bob@example.org>\r\n" +
				"Subject: Quarterly report\r\nX-Mailer: Outlook 16\r\nX-Customer-ID: forged\r\nX-Spam-Status: No, score=-9\r\n"},
		{"customer id replaces a forged one", "alice", map[string]any{"customer_ids": map[string]any{"alice": "C-1001"}, "remove": []any{"Received", "X-Originating-IP", "X-Spam-Status"}},
			"From: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: Quarterly report\r\nX-Mailer: Outlook 16\r\nX-Customer-ID: C-1001\r\n"},
		{"customer id header renamed", "alice", map[string]any{"customer_ids": map[string]any{"alice": "C-1001"}, "customer_id_header": "X-Account",
			"remove": []any{"Received", "X-Originating-IP", "X-Spam-Status", "X-Customer-ID"}},
			"X-Account: C-1001\r\nFrom: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: Quarterly report\r\nX-Mailer: Outlook 16\r\n"},
		{"unknown user loses the forged id", "mallory", map[string]any{"customer_ids": map[string]any{"alice": "C-1001"}, "remove": []any{"Received", "X-Originating-IP", "X-Spam-Status"}},
			"From: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: Quarterly report\r\nX-Mailer: Outlook 16\r\n"},
		{"subject tag drops incoming X-Spam-Status", "", map[string]any{"subject_tag": "[SPAM]", "subject_tag_score": 5.0, "remove": []any{"Received", "X-Originating-IP", "X-Customer-ID"}},
			"From: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: Quarterly report\r\nX-Mailer: Outlook 16\r\n"},
		{"unauthenticated keeps Received", "", map[string]any{"strip_received_for_auth": true, "remove": []any{"From", "To", "Subject", "X-Mailer", "X-Customer-ID", "X-Spam-Status"}},
			"Received: from laptop.internal ([203.0.113.9])\r\n\tby mx.example.com (Sluice) with ESMTPSA id Q1;\r\n\tSun, 22 Nov 2026 18:00:00 +0000\r\n" +
				"Received: from [10.0.0.5] by laptop.internal; Sun, 22 Nov 2026 17:59:59 +0000\r\nX-Originating-IP: [203.0.113.9]\r\n"},
		{"add, remove, rewrite", "", map[string]any{
			"add":     []any{map[string]any{"name": "X-Policy", "value": "checked"}, map[string]any{"name": "X-Hosted-By", "value": "Example Hosting"}},
			"remove":  []any{"x-mailer", "Received", "X-Originating-IP", "X-Customer-ID", "X-Spam-Status"},
			"rewrite": []any{map[string]any{"name": "Subject", "match": `(?i)quarterly (\w+)`, "replace": "Q3 $1"}, map[string]any{"name": "To", "match": "nomatch", "replace": "x"}}},
			"X-Hosted-By: Example Hosting\r\nX-Policy: checked\r\nFrom: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: Q3 report\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{ClientIP: "203.0.113.9", AuthUser: tc.user, From: "alice@example.com", Rcpts: []string{"bob@example.org"},
				Message: []byte(message), Config: tc.config}
			for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
				res := r.Run(pluginapi.HookData)
				if res.Verdict != pluginapi.Continue || len(res.Logs) != 0 {
					t.Errorf("%s: verdict %v, logs %q; want continue, no logs", mode, res.Verdict, res.Logs)
				}
				if res.Header != tc.want {
					t.Errorf("%s: header\n%s\nwant\n%s", mode, res.Header, tc.want)
				}
			}
		})
	}
}

func TestDeliverSubjectTag(t *testing.T) {
	tag := map[string]any{"subject_tag": "[SPAM]", "subject_tag_score": 5.0}
	tests := []struct {
		name    string
		status  string // X-Spam-Status, "" for none
		subject string
		config  map[string]any
		want    string // Subject after deliver
	}{
		{"over threshold", "Yes, score=6.5 symbols=MISSING_DATE(1)", "Win big", tag, "[SPAM] Win big"},
		{"at threshold", "Yes, score=5.0 symbols=X(5)", "Win big", tag, "[SPAM] Win big"},
		{"under threshold", "Yes, score=4.9 symbols=X(4.9)", "Win big", tag, "Win big"},
		{"no status", "", "Win big", tag, "Win big"},
		{"unparseable status", "Yes, score=lots", "Win big", tag, "Win big"},
		{"already tagged (retry)", "Yes, score=9 symbols=X(9)", "[SPAM] Win big", tag, "[SPAM] Win big"},
		{"empty subject", "Yes, score=9 symbols=X(9)", "", tag, "[SPAM]"},
		{"no tag configured", "Yes, score=9 symbols=X(9)", "Win big", nil, "Win big"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := "From: <a@example.org>\nSubject: " + tc.subject + "\n\nbody\n"
			if tc.status != "" {
				m = "X-Spam-Status: " + tc.status + "\n" + m
			}
			tx := sdktest.Txn{From: "a@example.org", Rcpts: []string{"b@example.com"}, Destination: "example.com", Attempt: 2,
				Message: []byte(m), Config: tc.config}
			for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
				res := r.Run(pluginapi.HookDeliver)
				got := ""
				for _, l := range strings.Split(res.Header, "\r\n") {
					if v, ok := strings.CutPrefix(l, "Subject:"); ok {
						got = strings.TrimSpace(v)
					}
				}
				if res.Verdict != pluginapi.Continue || got != tc.want {
					t.Errorf("%s: verdict %v, Subject %q; want continue, %q", mode, res.Verdict, got, tc.want)
				}
			}
		})
	}
}

func TestConfigRefused(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		want   string // "" loads
	}{
		{"defaults", nil, ""},
		{"example", map[string]any{"strip_received_for_auth": true, "customer_ids": map[string]any{"alice": "C-1001"},
			"subject_tag": "[SPAM]", "subject_tag_score": 5.0, "add": []any{map[string]any{"name": "X-A", "value": "b"}},
			"remove": []any{"X-Mailer"}, "rewrite": []any{map[string]any{"name": "Subject", "match": "a", "replace": "b"}}}, ""},
		{"not a table", map[string]any{"add": "X-A: b"}, "[config] does not decode"},
		{"bad add name", map[string]any{"add": []any{map[string]any{"name": "X A", "value": "b"}}}, `add[0].name: "X A" is not a header name`},
		{"line break in value", map[string]any{"add": []any{map[string]any{"name": "X-A", "value": "b\r\nBcc: x@evil.test"}}}, "add[0].value: the value may not contain line breaks"},
		{"empty remove", map[string]any{"remove": []any{""}}, "remove[0]: a header name is required"},
		{"bad regexp", map[string]any{"rewrite": []any{map[string]any{"name": "Subject", "match": "(", "replace": "x"}}}, "rewrite[0].match: error parsing regexp"},
		{"empty match", map[string]any{"rewrite": []any{map[string]any{"name": "Subject", "replace": "x"}}}, "rewrite[0].match is empty"},
		{"tag without score", map[string]any{"subject_tag": "[SPAM]"}, "subject_tag needs subject_tag_score"},
		{"score without tag", map[string]any{"subject_tag_score": 5.0}, "subject_tag is empty"},
		{"negative score", map[string]any{"subject_tag": "[SPAM]", "subject_tag_score": -1}, "subject_tag_score must be positive"},
		{"bad customer id header", map[string]any{"customer_id_header": "X-Customer-ID:"}, "customer_id_header"},
		{"customer id with newline", map[string]any{"customer_ids": map[string]any{"alice": "C\n1"}}, `customer_ids."alice"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{Config: tc.config}
			err := sdktest.Native(t, tx).Init()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("native Init: %v, want %q", err, tc.want)
			}
			if got := sdktest.LoadError(t, ".", tx); tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("wasm load error %q, want %q", got, tc.want)
			}
		})
	}
}
