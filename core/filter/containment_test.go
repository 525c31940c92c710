package filter

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// pluginLines counts the lines a plugin logged through the host (log and
// stdio), without the host's own lines about it.
func pluginLines(logs, plugin string) (lines, bytes int) {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "plugin="+plugin) && strings.Contains(l, "xxxxxxxxxx") {
			lines++
			bytes += strings.Count(l, "x")
		}
	}
	return lines, bytes
}

// TestQuotas: one call floods the log and the KV store; what it may write
// is bounded per call (the issue: ~10 MiB of log and 20-30 MiB of KV from
// one message) and per minute, and the refusals are counted.
func TestQuotas(t *testing.T) {
	t.Run("per call", func(t *testing.T) {
		dir := t.TempDir()
		install(t, dir, "flood", "flood", "grants = [\"kv\"]\ntimeout = \"10s\"\n")
		kv := &fakeKV{}
		h, logs := newHost(t, dir, Options{KV: kv})
		txn := newTxn()
		if r := h.Run(context.Background(), pluginapi.HookMail, txn); r.Verdict != pluginapi.Continue {
			t.Fatalf("result %+v", r)
		}
		if lines, _ := pluginLines(logs.String(), "flood"); lines != defaultLogLines {
			t.Errorf("%d lines logged, want the quota of %d", lines, defaultLogLines)
		}
		if st := noteI32(t, txn, "kv"); st != int32(pluginapi.StatusTooLarge) {
			t.Errorf("refused kv_set returned %d, want %d", st, pluginapi.StatusTooLarge)
		}
		if ok := noteI32(t, txn, "ok"); ok != 3 {
			t.Errorf("%d kv_set of 64 KiB succeeded, want 3 (256 KiB per call)", ok)
		}
		stored := 0
		for k, v := range kv.m {
			stored += len(k) + len(v)
		}
		if stored > defaultKVBytes+1024 {
			t.Errorf("%d bytes in the store after one call", stored)
		}
		info, _ := pluginNamed(h, "flood")
		if want := uint64(2*1000 - defaultLogLines + 97); info.QuotaRefused != want {
			t.Errorf("QuotaRefused = %d, want %d", info.QuotaRefused, want)
		}
		if !contains(logs.String(), "plugin over its log quota") {
			t.Errorf("no line says the log quota refused lines:\n%.2000s", logs)
		}
	})
	t.Run("per minute", func(t *testing.T) {
		dir := t.TempDir()
		install(t, dir, "flood", "flood", `grants = ["kv"]
timeout = "10s"
[limits]
log_lines = 0
log_bytes = 0
kv_bytes = 0
log_bytes_per_minute = "20KiB"
kv_bytes_per_minute = "200KiB"
`)
		kv := &fakeKV{}
		h, logs := newHost(t, dir, Options{KV: kv})
		var ok int32
		for range 3 {
			txn := newTxn()
			h.Run(context.Background(), pluginapi.HookMail, txn)
			ok += noteI32(t, txn, "ok")
		}
		// The bucket refills 20 KiB a minute: the three calls take a few
		// hundred bytes more than its 20 KiB at most.
		if _, bytes := pluginLines(logs.String(), "flood"); bytes > 21<<10 || bytes < 10<<10 {
			t.Errorf("%d bytes logged by three calls, want about 20 KiB", bytes)
		}
		if ok != 3 {
			t.Errorf("%d kv_set of 64 KiB succeeded in three calls, want 3 (200 KiB a minute)", ok)
		}
	})
}

// TestFieldRules: header values with control bytes, bare line breaks or
// lines over 998 octets are refused; folding is allowed.
func TestFieldRules(t *testing.T) {
	long := strings.Repeat("v", 998-len("X-Test: "))
	for _, tc := range []struct {
		value string
		want  pluginapi.Status
	}{
		{"plain", pluginapi.StatusOK},
		{"folded;\r\n\tcontinued", pluginapi.StatusOK},
		{long, pluginapi.StatusOK},
		{long + "v", pluginapi.StatusBadArgument},
		{"a\vb", pluginapi.StatusBadArgument},
		{"\x1b[2J", pluginapi.StatusBadArgument},
		{"a\x7f", pluginapi.StatusBadArgument},
		{"a\xff", pluginapi.StatusBadArgument},
		{"a\r\nX-Injected: yes", pluginapi.StatusBadArgument},
		{"a\nb", pluginapi.StatusBadArgument},
		{"a\x00b", pluginapi.StatusBadArgument},
		{strings.Repeat("w\r\n ", 30000), pluginapi.StatusBadArgument}, // over 64 KiB
	} {
		txn := newTxn()
		h, _ := mail.ParseHeader([]byte("Subject: s\r\n\r\nbody"))
		txn.Header = &h
		e := NewEnv(context.Background(), pluginapi.HookData, txn, &EnvSpec{Plugin: "p"})
		for name, f := range map[string]func(string, string) pluginapi.Status{"add_header": e.AddHeader, "set_header": e.SetHeader} {
			if got := f("X-Test", tc.value); got != tc.want {
				t.Errorf("%s(%q) = %v, want %v", name, tc.value, got, tc.want)
			}
		}
		if tc.want != pluginapi.StatusOK && h.Count("X-Test") != 0 {
			t.Errorf("refused value %q was written", tc.value)
		}
	}
}

// TestRcptRules: recipients plugins add or rewrite are checked as an RCPT
// from a client: syntax (the issue's ../../x@d was refused only at
// delivery, after a 250), the caller's relay control, and a limit.
func TestRcptRules(t *testing.T) {
	relay := func(addr string) *mail.Reply {
		if mail.Domain(addr) != "local.test" {
			return mail.NewReply(554, "5.7.1", "Relay access denied")
		}
		return nil
	}
	for _, tc := range []struct {
		addr string
		want pluginapi.Status
	}{
		{"user@local.test", pluginapi.StatusOK},
		{"../../x@local.test", pluginapi.StatusBadArgument},
		{"a/b@local.test", pluginapi.StatusBadArgument},
		{"user%other.test@local.test", pluginapi.StatusBadArgument},
		{"a!b@local.test", pluginapi.StatusBadArgument},
		{"user@local..test", pluginapi.StatusBadArgument},
		{"<user@local.test>", pluginapi.StatusBadArgument},
		{"user@remote.test", pluginapi.StatusBadArgument}, // relay control
		{"jöran@local.test", pluginapi.StatusBadArgument}, // not SMTPUTF8
	} {
		for _, hook := range []pluginapi.Hook{pluginapi.HookRcpt, pluginapi.HookData} {
			txn := newTxn()
			txn.Rcpt = "old@local.test"
			txn.Rcpts = []mail.Recipient{{Addr: "old@local.test"}}
			txn.CheckRcpt = relay
			e := NewEnv(context.Background(), hook, txn, &EnvSpec{Plugin: "p"})
			if got := e.RewriteRcpt("old@local.test", tc.addr); got != tc.want {
				t.Errorf("rewrite_rcpt to %q at %v = %v, want %v", tc.addr, hook, got, tc.want)
			}
			if got := e.AddRcpt(tc.addr); got != tc.want {
				t.Errorf("add_rcpt %q at %v = %v, want %v", tc.addr, hook, got, tc.want)
			}
		}
	}
	txn := newTxn()
	txn.MaxRcpts = 2
	e := NewEnv(context.Background(), pluginapi.HookData, txn, &EnvSpec{Plugin: "p"})
	for i, want := range []pluginapi.Status{pluginapi.StatusOK, pluginapi.StatusOK, pluginapi.StatusTooLarge} {
		if got := e.AddRcpt(string(rune('a'+i)) + "@local.test"); got != want {
			t.Errorf("add_rcpt %d with MaxRcpts 2 = %v, want %v", i+1, got, want)
		}
	}
}

// Test421Closes: a 421 closes the connection whatever the verdict that
// sent it (the issue: a tempfail with set_reply(421) kept it open).
func Test421Closes(t *testing.T) {
	r := Result{Verdict: pluginapi.Tempfail, Reply: *mail.NewReply(421, "4.7.0", "go away"), Plugin: "p"}
	for _, hook := range []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookHelo, pluginapi.HookMail, pluginapi.HookRcpt, pluginapi.HookData} {
		if o := Apply(hook, r); !o.Close || o.Reply == nil || o.Reply.Code != 421 {
			t.Errorf("tempfail 421 at %v: %+v, want 421 and close", hook, o)
		}
	}
	if o := Apply(pluginapi.HookDeliver, r); o.Close {
		t.Errorf("close at deliver: %+v", o)
	}
	r.Reply = *mail.NewReply(451, "4.7.1", "later")
	if o := Apply(pluginapi.HookMail, r); o.Close {
		t.Errorf("a 451 closes: %+v", o)
	}
}
