package helo

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// conf is the scenarios' configuration: every rule scores, none rejects.
var conf = map[string]any{
	"our_names":     []any{"mx.example.test", "Example.Test."},
	"our_addresses": []any{"192.0.2.25/32", "2001:db8:25::/64"},
	"skip_networks": []any{"10.0.0.0/8"},
	"scores": map[string]any{
		"no_ptr": 1.5, "ptr_unconfirmed": 1.25, "rdns_tempfail": 0.5,
		"helo_not_fqdn": 1, "helo_ours": 4, "helo_ip_mismatch": 2,
	},
}

// confirmed is a client whose reverse DNS is in order.
func confirmed(helo string) sdktest.Txn {
	return sdktest.Txn{ClientIP: "198.51.100.7", LocalIP: "192.0.2.30", Helo: helo,
		RDNS: "mail.client.test", RDNSStatus: "confirmed", PTR: "mail.client.test", From: "a@client.test"}
}

// symbols renders the plugin's spam symbols as "NAME=score", in order.
func symbols(syms []filter.Symbol) string {
	var b []string
	for _, s := range syms {
		if s.Plugin == "helo" {
			b = append(b, s.Name+"="+strconv.FormatFloat(s.Score, 'g', -1, 64))
		}
	}
	return strings.Join(b, " ")
}

func TestRules(t *testing.T) {
	with := func(tx sdktest.Txn, f func(*sdktest.Txn)) sdktest.Txn { f(&tx); return tx }
	tests := []struct {
		name string
		tx   sdktest.Txn
		want string // the symbols added
	}{
		{"clean", confirmed("mail.client.test"), ""},
		{"clean, other fqdn", confirmed("Relay.Other.Example."), ""},
		{"no ptr", with(confirmed("mail.client.test"), func(tx *sdktest.Txn) { tx.RDNS, tx.RDNSStatus, tx.PTR = "", "none", "" }), "NO_PTR=1.5"},
		{"ptr unconfirmed", with(confirmed("mail.client.test"), func(tx *sdktest.Txn) { tx.RDNS, tx.RDNSStatus = "", "unconfirmed" }), "PTR_UNCONFIRMED=1.25"},
		{"rdns tempfail", with(confirmed("mail.client.test"), func(tx *sdktest.Txn) { tx.RDNS, tx.RDNSStatus, tx.PTR = "", "tempfail", "" }), "RDNS_TEMPFAIL=0.5"},
		{"not looked up", with(confirmed("mail.client.test"), func(tx *sdktest.Txn) { tx.RDNS, tx.RDNSStatus, tx.PTR = "", "", "" }), ""},
		{"helo single label", confirmed("localhost"), "HELO_NOT_FQDN=1"},
		{"helo bad syntax", confirmed("my host.example"), "HELO_NOT_FQDN=1"},
		{"helo numeric tld", confirmed("host.123"), "HELO_NOT_FQDN=1"},
		{"helo underscore", confirmed("desk_top.client.test"), ""},
		{"helo our hostname", confirmed("MX.example.test"), "HELO_OURS=4"},
		{"helo our domain", confirmed("example.test."), "HELO_OURS=4"},
		{"helo our configured address", confirmed("[192.0.2.25]"), "HELO_OURS=4"},
		{"helo our v6 network", confirmed("[IPv6:2001:db8:25::9]"), "HELO_OURS=4"},
		{"helo the local address", confirmed("[192.0.2.30]"), "HELO_OURS=4"},
		{"helo bare local address", confirmed("192.0.2.30"), "HELO_OURS=4"},
		{"helo own literal", confirmed("[198.51.100.7]"), ""},
		{"helo other literal", confirmed("[203.0.113.1]"), "HELO_IP_MISMATCH=2"},
		{"helo other bare address", confirmed("203.0.113.1"), "HELO_IP_MISMATCH=2"},
		{"helo broken literal", confirmed("[203.0.113]"), "HELO_NOT_FQDN=1"},
		{"helo v6 literal without tag", confirmed("[2001:db8::1]"), "HELO_NOT_FQDN=1"},
		{"several", with(confirmed("example.test"), func(tx *sdktest.Txn) { tx.RDNS, tx.RDNSStatus, tx.PTR = "", "none", "" }), "NO_PTR=1.5 HELO_OURS=4"},
		{"authenticated never judged", with(confirmed("localhost"), func(tx *sdktest.Txn) {
			tx.AuthUser, tx.Listener, tx.RDNSStatus = "alice", "submission", "none"
		}), ""},
		{"skipped network", with(confirmed("localhost"), func(tx *sdktest.Txn) { tx.ClientIP, tx.RDNSStatus = "10.1.2.3", "none" }), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := tc.tx
			tx.Config = conf
			for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
				res := r.Run(pluginapi.HookMail)
				if res.Verdict != pluginapi.Continue {
					t.Errorf("%s: verdict %v %s, want continue", mode, res.Verdict, res.Reply())
				}
				if got := symbols(res.Symbols); got != tc.want {
					t.Errorf("%s: symbols %q, want %q", mode, got, tc.want)
				}
			}
		})
	}
}

func TestReject(t *testing.T) {
	rejectAll := map[string]any{
		"our_names": []any{"mx.example.test"}, "skip_networks": []any{},
		"reject": []any{"no_ptr", "ptr_unconfirmed", "rdns_tempfail", "helo_not_fqdn", "helo_ours", "helo_ip_mismatch"},
	}
	tests := []struct {
		name                   string
		helo, status, clientIP string
		want                   string
	}{
		{"no ptr", "mail.client.test", "none", "198.51.100.7", "550 5.7.25 Client host rejected: cannot find your reverse hostname, [198.51.100.7]"},
		{"unconfirmed", "mail.client.test", "unconfirmed", "198.51.100.7", "550 5.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]"},
		{"tempfail", "mail.client.test", "tempfail", "198.51.100.7", "450 4.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]"},
		{"not fqdn", "localhost", "confirmed", "198.51.100.7", "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"},
		{"ours", "mx.example.test", "confirmed", "198.51.100.7", "550 5.7.1 <mx.example.test>: Helo command rejected: that is this server, not you"},
		{"mismatch", "[203.0.113.1]", "confirmed", "198.51.100.7", "550 5.7.1 <[203.0.113.1]>: Helo command rejected: not your address [198.51.100.7]"},
		{"loopback judged with skip_networks = []", "localhost", "confirmed", "127.0.0.1", "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"},
		{"clean", "mail.client.test", "confirmed", "198.51.100.7", ""},
	}
	for _, tc := range tests {
		tx := sdktest.Txn{ClientIP: tc.clientIP, Helo: tc.helo, RDNSStatus: tc.status, Config: rejectAll}
		if tc.status == "confirmed" {
			tx.RDNS = "mail.client.test"
		}
		for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
			if res := r.Run(pluginapi.HookMail); res.Reply() != tc.want {
				t.Errorf("%s %s: %v %q, want %q", mode, tc.name, res.Verdict, res.Reply(), tc.want)
			}
		}
	}
	// Default loopback skip: nothing judged from 127.0.0.1.
	tx := sdktest.Txn{ClientIP: "127.0.0.1", Helo: "localhost", RDNSStatus: "none",
		Config: map[string]any{"reject": []any{"no_ptr", "helo_not_fqdn"}}}
	if res := sdktest.Native(t, tx).Run(pluginapi.HookMail); res.Verdict != pluginapi.Continue || len(res.Symbols) != 0 {
		t.Errorf("loopback with the default skip_networks: %v %q %v", res.Verdict, res.Reply(), res.Symbols)
	}
}

func TestDefaults(t *testing.T) {
	// No [config]: the default scores.
	tx := sdktest.Txn{ClientIP: "198.51.100.7", Helo: "localhost", RDNSStatus: "unconfirmed", PTR: "x.client.test"}
	for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
		res := r.Run(pluginapi.HookMail)
		if got := symbols(res.Symbols); got != "PTR_UNCONFIRMED=1 HELO_NOT_FQDN=1" {
			t.Errorf("%s: %q", mode, got)
		}
		if !res.HasLog("x.client.test does not resolve") {
			t.Errorf("%s: logs %q", mode, res.Logs)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		config map[string]any
		want   string
	}{
		{map[string]any{"scores": map[string]any{"nope": 1}}, `scores: unknown rule "nope"`},
		{map[string]any{"reject": []any{"helo"}}, `reject: unknown rule "helo"`},
		{map[string]any{"our_addresses": []any{"not an address"}}, "our_addresses"},
		{map[string]any{"skip_networks": []any{"300.0.0.0/8"}}, "skip_networks"},
		{map[string]any{"our_names": []any{"[192.0.2.1]"}}, "our_names"},
		{map[string]any{"our_name": []any{"x"}}, "known keys"},
	} {
		if got := sdktest.LoadError(t, ".", sdktest.Txn{Config: tc.config}); !strings.Contains(got, tc.want) {
			t.Errorf("config %v: load error %q, want it to mention %q", tc.config, got, tc.want)
		}
	}
	if got := sdktest.ExampleLoadError(t, ".", "helo.toml"); got != "" {
		t.Errorf("helo.toml: %s", got)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
