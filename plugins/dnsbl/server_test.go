package dnsbl

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/users"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestServer runs the plugin in the real server over SMTP, the client
// (127.0.0.1) listed by a loopback DNS server whose answers have TTL 0, so
// the host's DNS cache keeps none of them and every saved query is the
// plugin's own cache.
func TestServer(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(
		"1.0.0.127.score.example. 0 IN A 127.0.0.2",
		"1.0.0.127.block.example. 0 IN A 127.0.0.4",
	))
	srv.SetNegativeTTL(0)
	tests := []struct {
		name  string
		zones []any
		// code is the reply code of the unauthenticated message (0: sent).
		code int
		// header is a line the delivered message carries.
		header string
	}{
		{"reject", []any{map[string]any{"zone": "block.example", "score": 1.0, "codes": map[string]any{"127.0.0.4": "reject"}}}, 554, ""},
		{"score", []any{map[string]any{"zone": "score.example", "score": 5.0}}, 0, "X-Spam-Status: Yes, score=5.0 symbols=DNSBL_SCORE_EXAMPLE(5)"},
		{"unlisted", []any{map[string]any{"zone": "other.example", "reject": true}}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := servertest.Config(t)
			cfg.TrustedNetworks = nil
			cfg.DNS.Servers = []string{srv.Addr}
			cfg.Spam.AddHeader = 1
			cfg.Submission.Listen = []string{"127.0.0.1:0"}
			cfg.Submission.AllowInsecureAuth = true
			if err := users.Set(cfg.Submission.UsersFile, "carol@localhost", "secret"); err != nil {
				t.Fatal(err)
			}
			toml, err := sdktest.PluginTOML(map[string]any{"skip_networks": []any{}, "zones": tc.zones}, []string{"dns", "kv"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			servertest.Install(t, cfg, "dnsbl", sdktest.Build(t, "."), string(toml))
			s := servertest.Start(t, cfg)
			// The subtests run in parallel on one DNS server, each with a
			// zone of its own: queries are counted by zone, never reset.

			zone := tc.zones[0].(map[string]any)["zone"].(string)
			for i := range 2 {
				msg := servertest.Message("x@sender.example", "alice@localhost", tc.name+" "+string(rune('a'+i)), "hi\r\n")
				_, err := servertest.Send(s.Addr, "x@sender.example", []string{"alice@localhost"}, msg)
				if servertest.Code(err) != tc.code || (tc.code == 0 && err != nil) {
					t.Fatalf("message %d: %v, want code %d", i, err, tc.code)
				}
				if tc.code != 0 && !strings.Contains(err.Error(), "blocked using "+zone) {
					t.Errorf("message %d: %v does not name the list", i, err)
				}
				// One query for the first connection, none for the second:
				// the answer is cached in the key-value store.
				if n := zoneQueries(srv, zone); n != 1 {
					t.Errorf("after message %d: %d queries to %s (%v), want 1", i, n, zone, srv.Log())
				}
			}
			if tc.code == 0 {
				files := servertest.WaitFiles(t, s.Mailbox("alice", "localhost"), 2, 10*time.Second)
				checkHeader(t, files[0], tc.header)
			}

			// An authenticated session is neither refused nor scored.
			sub := s.Services()[1]
			if sub.Name != "submission" {
				t.Fatalf("second service is %q, want submission", sub.Name)
			}
			msg := servertest.Message("carol@localhost", "bob@localhost", "from carol", "hi\r\n")
			if err := submit(sub.Addrs[0].String(), "carol@localhost", "secret", "bob@localhost", msg); err != nil {
				t.Fatalf("authenticated submission: %v", err)
			}
			files := servertest.WaitFiles(t, s.Mailbox("bob", "localhost"), 1, 10*time.Second)
			checkHeader(t, files[0], "")
		})
	}
}

// zoneQueries counts the queries srv received for names in zone (the
// server also asks about the sender's SPF and DMARC).
func zoneQueries(srv *dnstest.Server, zone string) int {
	n := 0
	for _, q := range srv.Log() {
		if strings.HasSuffix(q.Name, "."+zone+".") {
			n++
		}
	}
	return n
}

// checkHeader checks that the message in file has the header line want,
// or, when want is "", no X-Spam-Status.
func checkHeader(t *testing.T, file, want string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case want == "" && strings.Contains(string(b), "X-Spam-Status"):
		t.Errorf("%s has an X-Spam-Status header:\n%s", file, b)
	case want != "" && !strings.Contains(string(b), want+"\n"):
		t.Errorf("%s lacks %q:\n%s", file, want, b)
	}
}

// submit sends msg after logging in with PLAIN (allow_insecure_auth).
func submit(addr, user, password, rcpt, msg string) error {
	_, err := servertest.SendAs(addr, servertest.Login{User: user, Password: password}, user, []string{rcpt}, msg)
	return err
}
