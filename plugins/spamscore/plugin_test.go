package spamscore

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// msg builds a message from header lines (a "Name:" line without value
// removes the default field) and a body.
func msg(extra []string, body string) []byte {
	fields := []string{
		"From: Alice <alice@example.org>",
		"To: <bob@example.com>",
		"Subject: Meeting notes",
		"Date: Sun, 22 Nov 2026 18:00:00 +0000",
		"Message-ID: <1@example.org>",
		"Content-Type: text/plain; charset=utf-8",
	}
	for _, e := range extra {
		name, _, _ := strings.Cut(e, ":")
		fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(strings.ToLower(f), strings.ToLower(name)+":") })
		if strings.TrimSpace(strings.TrimPrefix(e, name+":")) != "" || strings.HasSuffix(e, ": ") {
			fields = append(fields, e)
		}
	}
	return []byte(strings.Join(fields, "\n") + "\n\n" + body)
}

// multipartMsg is a multipart/mixed message with a text part and one
// attachment named name.
func multipartMsg(name, ctype string) []byte {
	return msg([]string{"MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\""},
		"--b1\nContent-Type: text/plain\n\nSee attached.\n--b1\nContent-Type: "+ctype+"\n"+
			"Content-Disposition: attachment; filename=\""+name+"\"\nContent-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA\n--b1--\n")
}

const htmlAlt = "--a\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<p>Hi <a href=3D\"http://192.0.2.9/x\">here</a></p>\n--a--\n"

func TestSymbols(t *testing.T) {
	local := map[string]any{"local_domains": []any{"example.com", "hosting.test"}}
	tests := []struct {
		name    string
		message []byte
		from    string
		ar      string
		config  map[string]any
		want    []string
	}{
		{"clean", msg(nil, "Hello Bob, see https://example.org/agenda.\n"), "alice@example.org", "", local, nil},
		{"missing date", msg([]string{"Date:"}, "hi\n"), "alice@example.org", "", nil, []string{symMissingDate.String()}},
		{"missing message-id", msg([]string{"Message-ID:"}, "hi\n"), "alice@example.org", "", nil, []string{symMissingMsgID.String()}},
		{"missing from", msg([]string{"From:"}, "hi\n"), "alice@example.org", "", nil, []string{symMissingFrom.String()}},
		{"reply-to elsewhere", msg([]string{"Reply-To: <collect@evil.test>"}, "hi\n"), "alice@example.org", "", nil, []string{symReplyToMismatch.String()}},
		{"reply-to subdomain is fine", msg([]string{"Reply-To: <list@lists.example.org>"}, "hi\n"), "alice@example.org", "", nil, nil},
		{"envelope mismatch", msg(nil, "hi\n"), "bounce@mailer.test", "", nil, []string{symEnvMismatch.String()}},
		{"null sender is no mismatch", msg(nil, "hi\n"), "", "", nil, nil},
		{"display name spoof", msg([]string{"From: \"support@example.com\" <x@evil.test>"}, "hi\n"), "x@evil.test", "", local, []string{symDisplaySpoof.String()}},
		{"display name with domain word", msg([]string{"From: \"Hosting.test Billing\" <x@evil.test>"}, "hi\n"), "x@evil.test", "", local, []string{symDisplaySpoof.String()}},
		{"display name of a real local sender", msg([]string{"From: \"support@example.com\" <support@example.com>"}, "hi\n"), "support@example.com", "", local, nil},
		{"display name partial word", msg([]string{"From: \"myexample.community\" <x@evil.test>"}, "hi\n"), "x@evil.test", "", local, nil},
		{"all caps subject", msg([]string{"Subject: FREE MONEY NOW!!!"}, "hi\n"), "alice@example.org", "", nil, []string{symSubjectCaps.String()}},
		{"encoded all caps subject", msg([]string{"Subject: =?utf-8?q?GRATUIT_=C3=89T=C3=89?="}, "hi\n"), "alice@example.org", "", nil, []string{symSubjectCaps.String()}},
		{"short caps subject", msg([]string{"Subject: FYI OK"}, "hi\n"), "alice@example.org", "", nil, nil},
		{"empty subject", msg([]string{"Subject: "}, "hi\n"), "alice@example.org", "", nil, []string{symSubjectEmpty.String()}},
		{"no subject", msg([]string{"Subject:"}, "hi\n"), "alice@example.org", "", nil, []string{symSubjectEmpty.String()}},
		{"html only", msg([]string{"Content-Type: text/html"}, "<p>hi</p>\n"), "alice@example.org", "", nil, []string{symHTMLOnly.String()}},
		{"html alternative without plain, IP URL in QP", msg([]string{"Content-Type: multipart/alternative; boundary=a"}, htmlAlt), "alice@example.org", "", nil, []string{symHTMLOnly.String(), symURLIP.String()}},
		{"html with plain alternative", msg([]string{"Content-Type: multipart/alternative; boundary=a"},
			"--a\nContent-Type: text/plain\n\nhi\n--a\nContent-Type: text/html\n\n<p>hi</p>\n--a--\n"), "alice@example.org", "", nil, nil},
		{"IP URL", msg(nil, "go to http://203.0.113.5:8080/login now\n"), "alice@example.org", "", nil, []string{symURLIP.String()}},
		{"IPv6 URL", msg(nil, "go to https://[2001:db8::1]/login\n"), "alice@example.org", "", nil, []string{symURLIP.String()}},
		{"decimal IP URL", msg(nil, "go to http://3405803781/login\n"), "alice@example.org", "", nil, []string{symURLIP.String()}},
		{"shortener", msg(nil, "see HTTPS://bit.ly/3abc\n"), "alice@example.org", "", nil, []string{symURLShortener.String()}},
		{"configured shortener", msg(nil, "see https://sho.rt/3abc and https://bit.ly/x\n"), "alice@example.org", "",
			map[string]any{"shorteners": []any{"sho.rt"}}, []string{symURLShortener.String()}},
		{"shortener list emptied", msg(nil, "see https://bit.ly/x\n"), "alice@example.org", "", map[string]any{"shorteners": []any{}}, nil},
		{"base64 text with shortener", msg([]string{"Content-Transfer-Encoding: base64"}, "c2VlIGh0dHBzOi8v\ndGlueXVybC5jb20v\neA==\n"), "alice@example.org", "", nil, []string{symURLShortener.String()}},
		{"executable", multipartMsg("setup.exe", "application/octet-stream"), "alice@example.org", "", nil, []string{symAttachExe.String()}},
		{"double extension", multipartMsg("Invoice.PDF.exe", "application/octet-stream"), "alice@example.org", "", nil, []string{symAttachDoubleExt.String(), symAttachExe.String()}},
		{"macro document", multipartMsg("report.xlsm", "application/vnd.ms-excel.sheet.macroEnabled.12"), "alice@example.org", "", nil, []string{symAttachMacro.String()}},
		{"encoded file name", multipartMsg("=?utf-8?b?cmVwb3J0LmRvY20=?=", "application/octet-stream"), "alice@example.org", "", nil, []string{symAttachMacro.String()}},
		{"harmless attachment", multipartMsg("report.pdf", "application/pdf"), "alice@example.org", "", nil, nil},
		{"spf fail", msg(nil, "hi\n"), "alice@example.org", "mx.test; spf=fail smtp.mailfrom=example.org; dkim=none; dmarc=none", nil, []string{symSPFFail.String()}},
		{"spf softfail", msg(nil, "hi\n"), "alice@example.org", "mx.test; spf=softfail (not designated) smtp.mailfrom=example.org", nil, []string{symSPFSoftfail.String()}},
		{"dkim and dmarc fail", msg(nil, "hi\n"), "alice@example.org", "mx.test; spf=pass smtp.mailfrom=example.org; dkim=fail header.d=example.org; dmarc=fail header.from=example.org", nil, []string{symDKIMFail.String(), symDMARCFail.String()}},
		{"all pass", msg(nil, "hi\n"), "alice@example.org", "mx.test; spf=pass; dkim=pass; dmarc=pass", nil, nil},
		{"URL beyond max_scan_bytes", msg(nil, strings.Repeat("padding\n", 30)+"http://192.0.2.1/\n"), "alice@example.org", "",
			map[string]any{"max_scan_bytes": 100}, nil},
		{"URL within max_scan_bytes", msg(nil, strings.Repeat("padding\n", 30)+"http://192.0.2.1/\n"), "alice@example.org", "",
			map[string]any{"max_scan_bytes": 1000}, []string{symURLIP.String()}},
		{"weight zero switches off", msg([]string{"Date:"}, "hi\n"), "alice@example.org", "", map[string]any{"weights": map[string]any{"MISSING_DATE": 0.0}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{ClientIP: "192.0.2.1", From: tc.from, Rcpts: []string{"bob@example.com"}, Message: tc.message, Config: tc.config}
			for mode, r := range map[string]*sdktest.Runner{"native": sdktest.Native(t, tx), "wasm": sdktest.Wasm(t, ".", tx)} {
				r.Txn().Conn.AuthResults = tc.ar
				res := r.Run(pluginapi.HookData)
				if res.Verdict != pluginapi.Continue {
					t.Errorf("%s: verdict %v, want continue", mode, res.Verdict)
				}
				var got []string
				sum := 0.0
				for _, s := range res.Symbols {
					got = append(got, s.Name)
					sum += s.Score
					if sy, ok := symByName(s.Name); !ok || s.Score != defaultWeights[sy] {
						w := defaultWeights[sy]
						t.Errorf("%s: %s scored %v, want its default weight %v", mode, s.Name, s.Score, w)
					}
				}
				slices.Sort(got)
				want := slices.Clone(tc.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s: symbols %v, want %v (logs %q)", mode, got, want, res.Logs)
				}
				if res.Score != sum {
					t.Errorf("%s: score %v, want the sum of the symbols %v", mode, res.Score, sum)
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
		{"full", map[string]any{"weights": map[string]any{"SPF_FAIL": 5.0, "HTML_ONLY": 0}, "local_domains": []any{"example.com"},
			"shorteners": []any{"bit.ly"}, "max_scan_bytes": 65536, "score_authenticated": true, "trust_header": true}, ""},
		{"unknown symbol", map[string]any{"weights": map[string]any{"SPF_FAILED": 5.0}}, `weights: unknown symbol "SPF_FAILED"`},
		{"weight not a number", map[string]any{"weights": map[string]any{"SPF_FAIL": "high"}}, "[config] does not decode"},
		{"weight out of range", map[string]any{"weights": map[string]any{"SPF_FAIL": 1000.0}}, "out of range"},
		{"bad local domain", map[string]any{"local_domains": []any{"@example.com"}}, `local_domains: "@example.com" is not a domain name`},
		{"bad shortener", map[string]any{"shorteners": []any{"https://bit.ly/"}}, `shorteners: "https://bit.ly/" is not a host name`},
		{"negative max_scan_bytes", map[string]any{"max_scan_bytes": -1}, "max_scan_bytes must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{Config: tc.config}
			err := sdktest.Native(t, tx).Init()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("native Init: %v, want %q", err, tc.want)
			}
			got := sdktest.LoadError(t, ".", tx)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("wasm load error %q, want %q", got, tc.want)
			}
		})
	}
}
