package sdktest_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"

	_ "github.com/sluice-mta/sluice/sdk/internal/exercise"
)

const exercisePkg = "testdata/exercise"

func scenario() sdktest.Txn {
	msg := "Received: from a\nReceived: from b\n\tfolded\nSubject: Hi\nX-Remove: 1\nX-Long: " +
		strings.Repeat("x", 6000) + "\n\nHello,\nbody line two.\n"
	return sdktest.Txn{
		Plugin:   "exercise",
		ClientIP: "192.0.2.1", ClientPort: 40000, RDNS: "mail.example.org", Helo: "mail.example.org",
		RDNSStatus: "confirmed", PTR: "mx.example.org",
		TLS: "TLS1.3 TLS_AES_128_GCM_SHA256", AuthUser: "alice",
		From: "alice@example.org", QueueID: "Q1", Message: []byte(msg),
		Destination: "example.com", Attempt: 2,
		Config: map[string]any{"big": strings.Repeat("b", 10000), "list": []any{"a", "b"}},
		Grants: []string{"kv", "dns"},
		Resolver: sdktest.MemResolver{
			"A 2.0.0.127.bl.example":     {"127.0.0.2"},
			"AAAA v6.example":            {"2001:db8::1"},
			"MX example":                 {"10 mx1.example.", "20 mx2.example."},
			"TXT example":                {"v=spf1 -all"},
			"PTR 1.2.0.192.in-addr.arpa": {"mail.example.org."},
		},
	}
}

type step struct {
	name string
	run  func(r *sdktest.Runner) sdktest.Result
}

func hook(h pluginapi.Hook) step {
	return step{h.String(), func(r *sdktest.Runner) sdktest.Result { return r.Run(h) }}
}

func rcpt(addr string) step {
	return step{"rcpt " + addr, func(r *sdktest.Runner) sdktest.Result { return r.RunRcpt(addr) }}
}

var steps = []step{
	hook(pluginapi.HookConnect), hook(pluginapi.HookHelo), hook(pluginapi.HookMail),
	rcpt("ok@example.com"), rcpt("rewrite@example.com"), rcpt("drop@example.com"),
	rcpt("add@example.com"), rcpt("reject@example.com"), rcpt("badreply@example.com"),
	hook(pluginapi.HookData), hook(pluginapi.HookDeliver),
}

func runAll(r *sdktest.Runner) []sdktest.Result {
	var out []sdktest.Result
	for _, s := range steps {
		out = append(out, s.run(r))
	}
	return out
}

// check asserts what the exercise plugin must see and do, whichever way it runs.
func check(t *testing.T, mode string, res []sdktest.Result) {
	t.Helper()
	last := res[len(res)-1]
	notes := []struct{ key, want string }{
		{"connect.ip", "192.0.2.1"},
		{"connect.port", "40000"},
		{"connect.rdns", "mail.example.org"},
		{"connect.rdns_status", "confirmed"},
		{"connect.ptr", "mx.example.org"},
		{"connect.listener", "smtp"},
		{"connect.tls", "TLS1.3 TLS_AES_128_GCM_SHA256"},
		{"connect.auth", "alice"},
		{"connect.badprop", "sluice: not found"},
		{"connect.body", "sluice: not available at this stage"},
		{"connect.addheader", "sluice: not available at this stage"},
		{"helo.helo", "mail.example.org"},
		{"helo.now", "2025-01-02T03:04:05Z"},
		{"helo.config", "ok"},
		{"helo.big", "10000"},
		{"helo.missing", "sluice: not found"},
		{"helo.seen", "192.0.2.1 true"},
		{"helo.nonote", "false"},
		{"helo.badnote", "sluice: bad argument"},
		{"mail.from", "alice@example.org"},
		{"mail.incr", "2 ok"},
		{"mail.set", "ok"},
		{"mail.get", "5000 true ok"},
		{"mail.getmany", "2 true 5000 ok"},
		{"mail.getmany.toomany", "sluice: bad argument"},
		{"mail.getmany.newline", "sluice: bad argument"},
		{"mail.incrmany", "5 -1 6 ok"},
		{"mail.incrmany.text", "sluice: temporary failure"},
		{"mail.incrmany.toomany", "sluice: bad argument"},
		{"mail.incrmany.newline", "sluice: bad argument"},
		{"mail.incrmany.negttl", "sluice: bad argument"},
		{"mail.del", "ok"},
		{"mail.get2", "false ok"},
		{"mail.a", "[127.0.0.2] ok"},
		{"mail.aaaa", "[2001:db8::1] ok"},
		{"mail.mx", "[10 mx1.example. 20 mx2.example.] ok"},
		{"mail.txt", "[v=spf1 -all] ok"},
		{"mail.ptr", "[mail.example.org.] ok"},
		{"mail.nx", "0 ok"},
		{"mail.metric", "sluice: denied: capability not granted"},
		{"mail.denied", "true"},
		{"rcpt.rewrite", "ok"},
		{"rcpt.drop", "ok"},
		{"rcpt.add", "ok"},
		{"rcpt.addbad", "sluice: bad argument"},
		{"rcpt.header", "sluice: not available at this stage"},
		{"data.qid", "Q1"},
		{"data.subject", "Hi true"},
		{"data.received", "from a|from b\tfolded"},
		{"data.long", "6000"},
		{"data.read", "ok"},
		{"data.add", "ok"},
		{"data.set", "ok"},
		{"data.del", "ok"},
		{"data.delnone", "sluice: not found"},
		{"data.inject", "sluice: bad argument"},
		{"data.score", "ok"},
		{"data.badscore", "sluice: bad argument"},
		{"data.route", "sluice: not available at this stage"},
		{"data.rcptedit", "ok"},
		{"deliver.dest", "example.com"},
		{"deliver.attempt", "2"},
		{"deliver.route", "ok"},
		{"deliver.rcptedit", "sluice: not available at this stage"},
	}
	for _, n := range notes {
		if got := last.Notes[n.key]; got != n.want {
			t.Errorf("%s: note %s = %q, want %q", mode, n.key, got, n.want)
		}
	}
	wantRcpts := []string{"ok@example.com", "rewritten@example.com", "add@example.com", "extra@example.com", "late@example.com"}
	if !sameSet(last.Rcpts, wantRcpts) {
		t.Errorf("%s: rcpts = %q, want %q", mode, last.Rcpts, wantRcpts)
	}
	for i, s := range steps {
		r := res[i]
		want := pluginapi.Continue
		reply := ""
		switch s.name {
		case "rcpt reject@example.com":
			want, reply = pluginapi.Reject, "550 5.1.1 <reject@example.com>: no such user"
		case "rcpt badreply@example.com":
			want = pluginapi.Reject
		}
		if r.Verdict != want {
			t.Errorf("%s: %s: verdict %v, want %v", mode, s.name, r.Verdict, want)
		}
		if reply != "" && r.Reply() != reply {
			t.Errorf("%s: %s: reply %q, want %q", mode, s.name, r.Reply(), reply)
		}
		if s.name == "rcpt badreply@example.com" && (r.Code != 550 || r.Enhanced != "5.7.1") {
			t.Errorf("%s: a 4xx reply on a reject must give the default 550 5.7.1, got %q", mode, r.Reply())
		}
	}
	for _, h := range []string{"X-Exercise: added\r\n", "Subject: replaced\r\n", "Received: from a\r\n"} {
		if !strings.Contains(last.Header, h) {
			t.Errorf("%s: header lacks %q:\n%s", mode, h, last.Header)
		}
	}
	if strings.Contains(last.Header, "X-Remove") || strings.Contains(last.Header, "X-Evil") || strings.Contains(last.Header, "Bcc") {
		t.Errorf("%s: header kept a deleted or injected field:\n%s", mode, last.Header)
	}
	if last.Score != 2.5 || len(last.Symbols) != 1 || last.Symbols[0].Name != "EXERCISE" || last.Symbols[0].Plugin != "exercise" {
		t.Errorf("%s: score %v symbols %+v, want 2.5 EXERCISE from exercise", mode, last.Score, last.Symbols)
	}
	if last.Route != "relay.example:2525" {
		t.Errorf("%s: route %q", mode, last.Route)
	}
	if !last.HasLog("WARN delivering Q1 to example.com") {
		t.Errorf("%s: deliver log missing: %q", mode, last.Logs)
	}
	if res[0].Notes["connect.sha"] != "" || res[len(res)-2].Notes["data.sha"] == "" {
		t.Errorf("%s: body hash: connect %q data %q", mode, res[0].Notes["connect.sha"], res[len(res)-2].Notes["data.sha"])
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestExerciseNative(t *testing.T) {
	check(t, "native", runAll(sdktest.Native(t, scenario())))
}

func TestExerciseWasm(t *testing.T) {
	native := runAll(sdktest.Native(t, scenario()))
	wasm := runAll(sdktest.Wasm(t, exercisePkg, scenario()))
	check(t, "wasm", wasm)
	// Beyond the checks, both ways must agree on everything but host log lines.
	for i := range steps {
		n, w := native[i], wasm[i]
		for _, l := range n.Logs {
			if !slices.Contains(w.Logs, l) && !strings.Contains(l, "does not match") {
				t.Errorf("%s: native logged %q, wasm did not: %q", steps[i].name, l, w.Logs)
			}
		}
		for k, v := range n.Notes {
			if w.Notes[k] != v {
				t.Errorf("%s: note %s: native %q, wasm %q", steps[i].name, k, v, w.Notes[k])
			}
		}
		if n.Header != w.Header {
			t.Errorf("%s: header differs:\nnative %.300q\nwasm   %.300q", steps[i].name, n.Header, w.Header)
		}
		n.Logs, w.Logs, n.Notes, w.Notes, n.Header, w.Header = nil, nil, nil, nil, "", ""
		if !reflect.DeepEqual(n, w) {
			t.Errorf("%s: native and wasm differ:\nnative %+v\nwasm   %+v\nwasm logs %q", steps[i].name, n, w, wasm[i].Logs)
		}
	}
}

func TestVerdicts(t *testing.T) {
	tx := sdktest.Txn{Plugin: "exercise", ClientIP: "192.0.2.1", Message: []byte("Subject: x\n\nbody\n"),
		Config: map[string]any{"verdicts": map[string]any{
			"connect": []any{"accept"}, // the chain's result for accept is continue
			"helo":    []any{"discard"},
			"mail":    []any{"quarantine"},
			"rcpt":    []any{"tempfail", 452, "4.2.2", "mailbox full"},
			"data":    []any{"disconnect", 0, "", "go away"},
			"deliver": []any{"reject"},
		}}}
	want := []struct {
		hook    pluginapi.Hook
		verdict pluginapi.Verdict
		reply   string
	}{
		{pluginapi.HookConnect, pluginapi.Continue, ""},
		{pluginapi.HookHelo, pluginapi.Discard, ""},
		{pluginapi.HookMail, pluginapi.Quarantine, ""},
		{pluginapi.HookRcpt, pluginapi.Tempfail, "452 4.2.2 mailbox full"},
		{pluginapi.HookData, pluginapi.Disconnect, "421 4.7.0 go away"},
		{pluginapi.HookDeliver, pluginapi.Reject, "550 5.7.1"},
	}
	runners := map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, exercisePkg, tx)}
	for mode, r := range runners {
		for _, w := range want {
			res := r.Run(w.hook)
			if res.Verdict != w.verdict || !strings.HasPrefix(res.Reply(), w.reply) {
				t.Errorf("%s %s: got %v %q, want %v %q", mode, w.hook, res.Verdict, res.Reply(), w.verdict, w.reply)
			}
			if res.Verdict != pluginapi.Continue && res.Verdict != pluginapi.Accept && w.reply == "" && res.Code != 0 {
				t.Errorf("%s %s: unexpected reply %q", mode, w.hook, res.Reply())
			}
		}
	}
}
