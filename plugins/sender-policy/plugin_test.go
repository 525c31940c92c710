package senderpolicy

import (
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// conf is the scenarios' configuration.
var conf = map[string]any{
	"owners": map[string]any{
		"alice": []any{"alice@example.test", "@alice.example"},
		"Carol": []any{"Carol@Example.Test"},
	},
	"max_rcpts":     map[string]any{"alice": 2, "*": 3},
	"block_senders": []any{"*@spam.test", "bad@*", "*@*.spam.test"},
	"block_rcpts":   []any{"trap@*", "*@[0-9]*.example"},
}

// msg is a message with the given From field (none when "").
func msg(from string) []byte {
	h := "To: <x@example.com>\nSubject: hi\n"
	if from != "" {
		h = "From: " + from + "\n" + h
	}
	return []byte(h + "\nbody\n")
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name string
		tx   sdktest.Txn
		hook pluginapi.Hook
		want string // reply, "" for continue
	}{
		// Ownership of the envelope sender (authenticated only).
		{"owner address", sdktest.Txn{AuthUser: "alice", From: "alice@example.test"}, pluginapi.HookMail, ""},
		{"owner address case", sdktest.Txn{AuthUser: "ALICE", From: "Alice@EXAMPLE.test"}, pluginapi.HookMail, ""},
		{"owned domain", sdktest.Txn{AuthUser: "alice", From: "sales@alice.example"}, pluginapi.HookMail, ""},
		{"owner key case", sdktest.Txn{AuthUser: "carol", From: "carol@example.test"}, pluginapi.HookMail, ""},
		{"not owned", sdktest.Txn{AuthUser: "alice", From: "bob@example.test"}, pluginapi.HookMail, "550 5.7.1 <bob@example.test>: user alice may not send as this address"},
		{"subdomain of owned domain", sdktest.Txn{AuthUser: "alice", From: "x@sub.alice.example"}, pluginapi.HookMail, "550 5.7.1 <x@sub.alice.example>: user alice may not send as this address"},
		{"unlisted user", sdktest.Txn{AuthUser: "mallory", From: "mallory@example.test"}, pluginapi.HookMail, "550 5.7.1 <mallory@example.test>: user mallory may not send as this address"},
		{"null sender authenticated", sdktest.Txn{AuthUser: "alice", From: ""}, pluginapi.HookMail, "550 5.7.1 The null sender <> is not allowed for authenticated users"},
		{"unauthenticated any sender", sdktest.Txn{From: "bob@example.test"}, pluginapi.HookMail, ""},
		{"unauthenticated null sender", sdktest.Txn{From: ""}, pluginapi.HookMail, ""},
		// Sender block list (everyone).
		{"blocked domain", sdktest.Txn{From: "Someone@SPAM.test"}, pluginapi.HookMail, "550 5.7.1 <Someone@SPAM.test>: sender blocked by policy"},
		{"blocked local part", sdktest.Txn{From: "bad@anywhere.example"}, pluginapi.HookMail, "550 5.7.1 <bad@anywhere.example>: sender blocked by policy"},
		{"blocked subdomain pattern", sdktest.Txn{From: "x@mx.spam.test"}, pluginapi.HookMail, "550 5.7.1 <x@mx.spam.test>: sender blocked by policy"},
		{"block beats ownership", sdktest.Txn{AuthUser: "alice", From: "bad@alice.example"}, pluginapi.HookMail, "550 5.7.1 <bad@alice.example>: sender blocked by policy"},
		{"not blocked lookalike", sdktest.Txn{From: "x@notspam.test"}, pluginapi.HookMail, ""},
		{"not blocked prefix", sdktest.Txn{From: "badger@example.org"}, pluginapi.HookMail, ""},
		// Recipient block list and per-message limits.
		{"blocked rcpt", sdktest.Txn{Rcpt: "Trap@example.com"}, pluginapi.HookRcpt, "550 5.7.1 <Trap@example.com>: recipient blocked by policy"},
		{"blocked rcpt class", sdktest.Txn{Rcpt: "x@9lives.example"}, pluginapi.HookRcpt, "550 5.7.1 <x@9lives.example>: recipient blocked by policy"},
		{"rcpt ok", sdktest.Txn{Rcpt: "x@lives.example"}, pluginapi.HookRcpt, ""},
		{"alice third rcpt", sdktest.Txn{AuthUser: "alice", Rcpts: []string{"a@x.test", "b@x.test"}, Rcpt: "c@x.test"}, pluginapi.HookRcpt, "452 4.5.3 Too many recipients: at most 2 per message for alice"},
		{"alice second rcpt", sdktest.Txn{AuthUser: "alice", Rcpts: []string{"a@x.test"}, Rcpt: "c@x.test"}, pluginapi.HookRcpt, ""},
		{"default limit", sdktest.Txn{AuthUser: "bob", Rcpts: []string{"a@x.test", "b@x.test", "c@x.test"}, Rcpt: "d@x.test"}, pluginapi.HookRcpt, "452 4.5.3 Too many recipients: at most 3 per message for bob"},
		{"unauthenticated no limit", sdktest.Txn{Rcpts: []string{"a@x.test", "b@x.test", "c@x.test"}, Rcpt: "d@x.test"}, pluginapi.HookRcpt, ""},
		// Header From alignment (authenticated only).
		{"from same address", sdktest.Txn{AuthUser: "alice", From: "alice@example.test", Message: msg("Alice <alice@example.test>")}, pluginapi.HookData, ""},
		{"from same domain", sdktest.Txn{AuthUser: "alice", From: "alice@example.test", Message: msg("info@Example.Test")}, pluginapi.HookData, ""},
		{"from parent domain", sdktest.Txn{AuthUser: "alice", From: "a@mail.example.test", Message: msg("a@example.test")}, pluginapi.HookData, ""},
		{"from subdomain", sdktest.Txn{AuthUser: "alice", From: "a@example.test", Message: msg("a@news.example.test")}, pluginapi.HookData, ""},
		{"from sibling", sdktest.Txn{AuthUser: "alice", From: "a@a.example.test", Message: msg("a@b.example.test")}, pluginapi.HookData, "550 5.7.1 From <a@b.example.test> does not match the envelope sender <a@a.example.test>"},
		{"from via tld", sdktest.Txn{AuthUser: "alice", From: "a@test", Message: msg("a@example.test")}, pluginapi.HookData, "550 5.7.1 From <a@example.test> does not match the envelope sender <a@test>"},
		{"from other", sdktest.Txn{AuthUser: "alice", From: "alice@example.test", Message: msg(`"alice@example.test" <ceo@bank.example>`)}, pluginapi.HookData, "550 5.7.1 From <ceo@bank.example> does not match the envelope sender <alice@example.test>"},
		{"from list one bad", sdktest.Txn{AuthUser: "alice", From: "alice@example.test", Message: msg("alice@example.test, x@other.example")}, pluginapi.HookData, "550 5.7.1 From <x@other.example> does not match the envelope sender <alice@example.test>"},
		{"no from", sdktest.Txn{AuthUser: "alice", From: "alice@example.test", Message: msg("")}, pluginapi.HookData, "550 5.7.1 The message must have exactly one From header field (it has 0)"},
		{"bad from", sdktest.Txn{AuthUser: "alice", From: "alice@example.test", Message: msg("not an address")}, pluginapi.HookData, "550 5.7.1 The From header field is not a valid address list"},
		{"unauthenticated from", sdktest.Txn{From: "alice@example.test", Message: msg("ceo@bank.example")}, pluginapi.HookData, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := tc.tx
			tx.Config, tx.ClientIP = conf, "192.0.2.1"
			if tx.AuthUser != "" {
				tx.Listener = "submission"
			}
			for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
				res := r.Run(tc.hook)
				if res.Reply() != tc.want {
					t.Errorf("%s: %v %q, want %q", mode, res.Verdict, res.Reply(), tc.want)
				}
				if tc.want == "" && res.Verdict != pluginapi.Continue {
					t.Errorf("%s: verdict %v, want continue", mode, res.Verdict)
				}
			}
		})
	}
}

func TestStrictAndOff(t *testing.T) {
	for _, tc := range []struct {
		mode, env, from, want string
	}{
		{"strict", "a@example.test", "b@EXAMPLE.test", ""},
		{"strict", "a@mail.example.test", "a@example.test", "550 5.7.1 From <a@example.test> does not match the envelope sender <a@mail.example.test>"},
		{"off", "a@example.test", "ceo@bank.example", ""},
	} {
		tx := sdktest.Txn{AuthUser: "alice", From: tc.env, Message: msg(tc.from), Config: map[string]any{"from_alignment": tc.mode}}
		for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
			if res := r.Run(pluginapi.HookData); res.Reply() != tc.want {
				t.Errorf("%s %s %s/%s: %q, want %q", mode, tc.mode, tc.env, tc.from, res.Reply(), tc.want)
			}
		}
	}
	// Without owners any sender passes MAIL, even for a user.
	tx := sdktest.Txn{AuthUser: "alice", From: "anyone@anywhere.example"}
	if res := sdktest.Native(t, tx).Run(pluginapi.HookMail); res.Verdict != pluginapi.Continue {
		t.Errorf("no owners: %s", res.Reply())
	}
}

func TestConfigRefused(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		want   string
	}{
		{"unknown key", map[string]any{"owner": map[string]any{}}, `unknown key "owner"`},
		{"owners not a map", map[string]any{"owners": []any{"alice"}}, "owners: must map logins"},
		{"owner entry no @", map[string]any{"owners": map[string]any{"alice": []any{"example.test"}}}, `owners: alice: "example.test" is neither an address`},
		{"owner entry empty domain", map[string]any{"owners": map[string]any{"alice": []any{"alice@"}}}, "is neither an address"},
		{"bad alignment", map[string]any{"from_alignment": "loose"}, `from_alignment: "loose": must be`},
		{"max zero", map[string]any{"max_rcpts": map[string]any{"*": 0}}, "max_rcpts: * = 0: must be at least 1"},
		{"max not number", map[string]any{"max_rcpts": map[string]any{"alice": "ten"}}, "max_rcpts: must map logins"},
		{"pattern no @", map[string]any{"block_senders": []any{"spam.test"}}, `block_senders: [0] "spam.test" has no @: write "*@spam.test"`},
		{"bad pattern", map[string]any{"block_rcpts": []any{"x@[a-"}}, `block_rcpts: [0] "x@[a-": syntax error in pattern`},
		{"patterns not list", map[string]any{"block_rcpts": "x@y"}, "block_rcpts: must be a list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{Config: tc.config}
			if err := sdktest.Native(t, tx).Init(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("native: %v, want %q", err, tc.want)
			}
			if got := sdktest.LoadError(t, ".", tx); !strings.Contains(got, "refused to load") || !strings.Contains(got, tc.want) {
				t.Errorf("wasm load: %q, want a refusal with %q", got, tc.want)
			}
		})
	}
	for _, cfg := range []map[string]any{nil, conf} {
		if err := sdktest.Native(t, sdktest.Txn{Config: cfg}).Init(); err != nil {
			t.Errorf("config %v refused: %v", cfg, err)
		}
	}
}

// TestExampleTOML: the shipped sender-policy.toml loads in the real host as it is.
func TestExampleTOML(t *testing.T) {
	if got := sdktest.ExampleLoadError(t, ".", "sender-policy.toml"); got != "" {
		t.Errorf("sender-policy.toml refused: %s", got)
	}
}

// TestBlockListAnswerKept: one wasm instance asked about a blocked and an
// unblocked address in turn, each twice running (the instance keeps the
// last address's answer), refuses exactly the blocked ones.
func TestBlockListAnswerKept(t *testing.T) {
	tx := sdktest.Txn{ClientIP: "192.0.2.1", Config: map[string]any{"block_senders": []any{"*@spam.test"}, "block_rcpts": []any{"trap@*"}}}
	for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
		for _, from := range []string{"a@spam.test", "a@spam.test", "a@ham.test", "a@ham.test", "A@SPAM.test", "a@ham.test"} {
			r.Txn().From = from
			want := ""
			if strings.HasSuffix(strings.ToLower(from), "@spam.test") {
				want = "550 5.7.1 <" + from + ">: sender blocked by policy"
			}
			if got := r.Run(pluginapi.HookMail).Reply(); got != want {
				t.Errorf("%s: MAIL FROM:<%s>: %q, want %q", mode, from, got, want)
			}
		}
		for _, rcpt := range []string{"x@a.test", "trap@a.test", "trap@a.test", "x@a.test"} {
			want := ""
			if strings.HasPrefix(rcpt, "trap@") {
				want = "550 5.7.1 <" + rcpt + ">: recipient blocked by policy"
			}
			if got := r.RunRcpt(rcpt).Reply(); got != want {
				t.Errorf("%s: RCPT TO:<%s>: %q, want %q", mode, rcpt, got, want)
			}
		}
	}
}
