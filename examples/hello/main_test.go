package main

import (
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

func TestHello(t *testing.T) {
	tx := sdktest.Txn{
		ClientIP: "192.0.2.7", Helo: "client.example.org",
		From: "alice@example.org", Rcpt: "bob@example.com",
		Message:     []byte("From: alice@example.org\nSubject: greetings\n\nHi Bob.\n"),
		Destination: "example.com", Attempt: 1,
	}
	wantLogs := map[pluginapi.Hook]string{
		pluginapi.HookConnect: "INFO hello: connect from 192.0.2.7",
		pluginapi.HookHelo:    "INFO hello: helo client.example.org",
		pluginapi.HookMail:    "INFO hello: mail from <alice@example.org>",
		pluginapi.HookRcpt:    "INFO hello: rcpt to <bob@example.com>",
		pluginapi.HookData:    `INFO hello: data, 56 bytes, subject "greetings"`,
		pluginapi.HookDeliver: "INFO hello: deliver to example.com, attempt 1",
	}
	for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
		for h := pluginapi.HookConnect; h < pluginapi.NumHooks; h++ {
			res := r.Run(h)
			if res.Verdict != pluginapi.Continue {
				t.Errorf("%s %s: verdict %v, want continue", mode, h, res.Verdict)
			}
			if !res.HasLog(wantLogs[h]) {
				t.Errorf("%s %s: logs %q, want %q", mode, h, res.Logs, wantLogs[h])
			}
			wantHeader := "From: alice@example.org\r\nSubject: greetings\r\n"
			if h >= pluginapi.HookData {
				wantHeader = "X-Hello: world\r\n" + wantHeader
			}
			if h == pluginapi.HookDeliver {
				// deliver runs on the same transaction: the header stays edited once.
				continue
			}
			if res.Header != wantHeader {
				t.Errorf("%s %s: header %q, want %q", mode, h, res.Header, wantHeader)
			}
		}
	}
}
